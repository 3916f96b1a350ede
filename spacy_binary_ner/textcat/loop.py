"""The annotation loop for text categories: scored questions from a stream of
texts, and `update(answers) -> loss`.

A question is one text and one label (`{"text", "label", "meta": {"score"}}`,
answered accept / reject / ignore) or, with `choice=True`, one text with every
label as an option and the model's choice pre-selected (`{"text", "options",
"accept"}`): the two answer shapes the text-category reader reads. Questions
are chosen by uncertainty (a label's probability closest to 0.5, each label
with its own moving average: `loop.sorters.prefer_uncertain`), or taken in
stream order (`sorter="none"`). Answers go through the reader
(`TextcatReader`), the one parser of text-category records, so the loop
learns exactly what `spacy train` would learn from the same answers.
"""

import contextlib
import random
from collections import Counter
from typing import Any, ContextManager, Dict, Iterable, Iterator, List, Sequence, Tuple, Union

from spacy.language import Language
from thinc.api import Optimizer

from ..loop.sorters import prefer_uncertain
from ..loop.tasks import ScoredTask, Task
from ..records import RecordError, parse_task, stable_hash
from .reader import TextcatReader, TextcatRecord, parse_textcat_record

SORTERS = ("uncertainty", "none")


def textcat_task_hash(task: Task) -> int:
    """A question's `_task_hash`: its text's input hash and its label (or
    its options), so each label of a text is its own question."""
    if "options" in task:
        ids = [str(option.get("id", option.get("text", ""))) for option in task["options"]]
        return stable_hash(task["_input_hash"], "options", *ids)
    return stable_hash(task["_input_hash"], "label", str(task.get("label", "")))


class TextcatLoop:
    """Questions and updates for a `binary_textcat` pipe.

    nlp (Language): A pipeline with the text-category component, initialized.
    component (str): The component's name.
    choice (bool): One question per text with every label as an option.
    sorter (str): "uncertainty" or "none" (every question, in stream order).
    per_text (int): Most label questions per text (the most uncertain first).
    chunk_size (int): Texts scored at a time.
    replay (int): Earlier answered texts rehearsed per update.
    seed (int): Seed of the replay draw.
    drop (float): Dropout of the updates.
    """

    def __init__(
        self,
        nlp: Language,
        component: str = "binary_textcat",
        *,
        choice: bool = False,
        sorter: str = "uncertainty",
        per_text: int = 1,
        chunk_size: int = 16,
        replay: int = 10,
        seed: int = 0,
        drop: float = 0.0,
    ) -> None:
        if sorter not in SORTERS:
            raise ValueError(f"sorter {sorter!r}: use one of {', '.join(SORTERS)}")
        if per_text < 1 or chunk_size < 1 or replay < 0:
            raise ValueError("per_text and chunk_size must be at least 1, replay at least 0")
        self.nlp = nlp
        self.component = component
        self.pipe = nlp.get_pipe(component)
        if not self.pipe.labels:
            raise ValueError(f"the component {component!r} has no labels: initialize it with the labels first")
        self.choice = choice
        self.sorter = sorter
        self.per_text = per_text
        self.chunk_size = chunk_size
        self.replay = replay
        self.drop = drop
        self.rng = random.Random(seed)
        self.optimizer: Optimizer = nlp.resume_training()
        self.exhausted = False
        self.n_answers = 0
        self.answer_counts: Counter = Counter()
        # "source skipped: REASON", "answer skipped: REASON": what was left out and why.
        self.stats: Counter = Counter()
        self._memory: Dict[Any, List[Any]] = {}

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.pipe.labels)

    def averaged_params(self) -> ContextManager:
        """Within this context the pipeline has the weights the loop proposes
        with (to evaluate or save): its current ones, as the loop keeps no
        average."""
        return contextlib.nullcontext()

    def questions(self, stream: Iterable[Task]) -> Iterator[Task]:
        """The questions for a stream of texts, best first within what the
        sorter sees; `exhausted` is True once the stream has run out.

        stream (Iterable[Task]): Tasks with a `text` (and optional `meta`,
            `_input_hash`); one that cannot be read is counted in `stats`.
        YIELDS (Task): Questions with `_input_hash`, `_task_hash` and
            `meta.score`.
        """
        scored = self._scored(stream)
        if self.sorter == "none":
            return (task for _, task in scored)
        return prefer_uncertain(scored, key=lambda task: task.get("label", ""))

    def _scored(self, stream: Iterable[Task]) -> Iterator[ScoredTask]:
        chunk: List[Task] = []
        for task in stream:
            try:
                record = parse_task(task)
            except RecordError as err:
                self.stats[f"source skipped: {err.reason}"] += 1
                continue
            given = task.get("_input_hash")
            input_hash = record.input_hash if given is not None else stable_hash(record.text)
            chunk.append({"text": record.text, "_input_hash": input_hash, "meta": dict(task.get("meta") or {})})
            if len(chunk) >= self.chunk_size:
                yield from self._score_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._score_chunk(chunk)
        self.exhausted = True

    def _score_chunk(self, chunk: List[Task]) -> Iterator[ScoredTask]:
        docs = list(self.nlp.pipe(task["text"] for task in chunk))
        for base, doc in zip(chunk, docs):
            cats = {label: float(doc.cats.get(label, 0.0)) for label in self.labels}
            if self.choice:
                yield self._choice_question(base, cats)
                continue
            ranked = sorted(cats.items(), key=lambda item: abs(item[1] - 0.5))
            for label, p in ranked[: self.per_text]:
                task = {**base, "label": label, "meta": {**base["meta"], "score": round(p, 4)}}
                task["_task_hash"] = textcat_task_hash(task)
                yield p, task

    def _choice_question(self, base: Task, cats: Dict[str, float]) -> ScoredTask:
        if self.pipe.exclusive:
            best = max(cats, key=cats.__getitem__)
            chosen, score = [best], cats[best]
        else:
            chosen = [label for label, p in cats.items() if p >= 0.5]
            score = min(cats.values(), key=lambda p: abs(p - 0.5))
        task = {
            **base,
            "options": [{"id": label, "text": label} for label in self.labels],
            "accept": chosen,
            "meta": {**base["meta"], "score": round(score, 4)},
        }
        task["_task_hash"] = textcat_task_hash(task)
        return score, task

    def update(self, answers: Sequence[Union[Task, TextcatRecord]]) -> float:
        """Learn from a batch of answered questions: one optimizer step, with
        every earlier answer about the same texts and `replay` other texts.

        answers (Sequence[Union[Task, TextcatRecord]]): Questions with
            `answer` set ("accept", "reject" or "ignore"), parsed here once
            (`parse_textcat_record`), or records already parsed (e.g. by the
            teach server), used as they are; one that cannot be read is
            counted in `stats` as "answer skipped: REASON" and never raises.
        RETURNS (float): The loss of the step (0.0 if nothing was learnable).
        """
        fresh: Dict[Any, List[TextcatRecord]] = {}
        for answer in answers:
            try:
                record = answer if isinstance(answer, TextcatRecord) else parse_textcat_record(answer)
            except RecordError as err:
                self.stats[f"answer skipped: {err.reason}"] += 1
                continue
            self.answer_counts[record.answer] += 1
            key = record.input_hash if record.input_hash is not None else record.text
            fresh.setdefault(key, []).append(record)
        self.n_answers += len(answers)
        keys = list(fresh)
        if self.replay:
            others = [k for k in self._memory if k not in fresh]
            keys += self.rng.sample(others, min(self.replay, len(others)))
        records = [r for key in keys for r in self._memory.get(key, []) + fresh.get(key, [])]
        for key, new in fresh.items():
            self._memory.setdefault(key, []).extend(new)
        if not records:
            return 0.0
        reader = TextcatReader(self.nlp, labels=self.labels)
        reader.read_records(records, source="answers")
        examples = reader.examples()
        for reason, count in reader.total().skipped.items():
            if reason not in ("ignore answer", "duplicate answer", "conflicting answers"):
                self.stats[f"answer skipped: {reason}"] += count
        if not examples:
            return 0.0
        losses: Dict[str, float] = {}
        self.nlp.update(examples, sgd=self.optimizer, drop=self.drop, losses=losses)
        return float(losses.get(self.component, 0.0))


def oracle_answer(task: Task, gold: Dict[str, float]) -> Task:
    """A question answered from gold categories (1.0 = the text has the
    label): a label question accepted iff gold, a choice accepted with the
    gold labels chosen. For simulations and tests."""
    if "options" in task:
        chosen = [o["id"] for o in task["options"] if gold.get(o["id"], 0.0) >= 0.5]
        return {**task, "accept": chosen, "answer": "accept"}
    return {**task, "answer": "accept" if gold.get(task["label"], 0.0) >= 0.5 else "reject"}


def accuracy(nlp: Language, texts: Sequence[str], gold: Sequence[Dict[str, float]]) -> float:
    """Share of texts whose top category is a gold one."""
    hits = 0
    for doc, cats in zip(nlp.pipe(texts), gold):
        if doc.cats:
            hits += cats.get(max(doc.cats, key=doc.cats.__getitem__), 0.0) >= 0.5
    return hits / max(len(texts), 1)
