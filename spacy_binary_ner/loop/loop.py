"""`AnnotationLoop`: propose spans to annotate and learn from the answers.

Teach tools drive a model through two plain callables:

- `AnnotationLoop.predict(stream)` yields `(score, task)`: one proposed span and
  label per task, the model's probability in `task["meta"]["score"]`, and
  stable `_input_hash` / `_task_hash`;
- `AnnotationLoop.update(answers) -> float`: one optimizer step on answered
  tasks, read with the same semantics as training (`records_to_examples`).

`AnnotationLoop(stream)` yields the questions to ask: a sorter's choice of the
model's proposals, mixed with cold-start pattern matches. Scoring is lazy and
chunked: the stream is scored `chunk_size` texts at a time when the sorter
needs more tasks, so questions always come from a recent model and the pool is
never scored as a whole.
"""

import contextlib
import dataclasses
import math
import random
import statistics
import time
from collections import Counter, deque
from itertools import islice
from typing import Any, ContextManager, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Optimizer

from ..data import TeachReader
from ..pipeline import BinaryNER, find_binary_ner
from ..records import Record, RecordError, parse_answer, stable_hash
from .patterns import PatternMatcher, PatternSchedule
from .propose import BinaryNERProposer, Proposals, Proposer
from .queues import EarlyMatch, QuestionQueues
from .sorters import SORTERS, Sorter, prefer_random
from .tasks import Lookup, ScoredTask, Task, TaskText

# The optimizer's learning rate `initialize_pipeline` sets (see there).
LOOP_LEARN_RATE = 0.005
# The binary_ner decision threshold `initialize_pipeline` sets (see there).
LOOP_THRESHOLD = 0.2


class AnnotationLoop:
    """Propose spans to annotate and learn from the answers, one batch at a time.

    nlp (Language): An initialized pipeline; see `initialize_pipeline`.
    component (Optional[str]): The component that learns; None for the first
        `binary_ner` in the pipeline.
    proposer (Optional[Proposer]): What the model asks about each text; None
        for a `BinaryNERProposer` of the component (with `min_score` and
        `max_per_text`). Another component needs its own.
    sorter (Union[str, Sorter]): "uncertainty", "confident", "random", or a
        function from `(score, task)` pairs to tasks.
    patterns (Optional[PatternMatcher]): Cold-start patterns.
    schedule (PatternSchedule): When pattern matches are asked: their share
        of the questions, for how many answers, which are skipped, how far
        ahead of the model they are looked for.
    min_score (float): Smallest probability of a proposed span.
    max_per_text (int): Most spans proposed per text, highest scores first; a
        text with none above `min_score` still proposes its best span.
    chunk_size (int): Texts scored at a time.
    replay (int): Earlier answered texts added to each update, at random, so
        that a step also rehearses what was learned (0: none).
    drop (float): Dropout rate of the updates.
    average_weights (bool): Propose spans with a moving average of the
        weights (the optimizer's `averages`, which `spacy train` evaluates and
        saves with `use_averages`), while updates step the live weights. An
        online step at the loop's learning rate moves the model a lot; the
        average does not follow each batch's noise. In the resume_zh
        simulation it lifted test F1 after 2,000 decisions on each of 3
        seeds (mean 0.735 to 0.778). Use `averaged_params()` to evaluate or
        save the same weights.
    self_training (bool): Let updates use the component's self-training
        targets (`pseudo_above`: unknown spans the model is confident about
        taken as entities). Off by default, whatever the config says: in the
        resume_zh simulation (seed 0, 2,000 decisions) it lowered dev F1 from
        0.786 to 0.739, as a model that has seen few answers is confidently
        wrong; in `spacy train` on the same corpus's decisions it helps.
    unknown_decay (bool): Let updates weaken the "no entity" prior each time
        a text comes back (the component's `unknown_decay`). Off by default,
        whatever the config says: replays bring a text back within a few
        updates, and in the resume_zh simulation (seed 0, 2,000 decisions,
        `configs/zh_cnn.cfg`'s weight 0.03) dev F1 was 0.748 with it against
        0.767 with the constant prior.
    optimizer (Optional[Optimizer]): The optimizer; None for `nlp.create_optimizer()`.
    seed (int): Seed of the random sorter and the replay choice.
    """

    def __init__(
        self,
        nlp: Language,
        *,
        component: Optional[str] = None,
        proposer: Optional[Proposer] = None,
        sorter: Union[str, Sorter] = "uncertainty",
        patterns: Optional[PatternMatcher] = None,
        schedule: PatternSchedule = PatternSchedule(),
        min_score: float = 0.01,
        max_per_text: int = 8,
        chunk_size: int = 8,
        replay: int = 0,
        drop: float = 0.1,
        average_weights: bool = True,
        self_training: bool = False,
        unknown_decay: bool = False,
        optimizer: Optional[Optimizer] = None,
        seed: int = 0,
    ) -> None:
        self.nlp = nlp
        self.component = component if component is not None else find_binary_ner(nlp)[0]
        self.pipe = nlp.get_pipe(self.component)
        if not self.pipe.labels:
            raise ValueError(
                f"The component '{self.component}' has no labels: initialize the pipeline first, "
                f"e.g. spacy_binary_ner.loop.initialize_pipeline(nlp, labels)."
            )
        self.is_binary = isinstance(self.pipe, BinaryNER)
        if proposer is None:
            if not self.is_binary:
                raise ValueError(
                    f"The component '{self.component}' ({type(self.pipe).__name__}) is not a binary_ner: "
                    "pass a proposer=... that proposes its scored spans."
                )
            proposer = BinaryNERProposer(self.pipe, min_score=min_score, max_per_text=max_per_text)
        if isinstance(sorter, str):
            if sorter not in SORTERS:
                raise ValueError(f"Unknown sorter {sorter!r}: use one of {sorted(SORTERS)} or a function.")
            sorter = _seeded_random(seed) if sorter == "random" else SORTERS[sorter]
        if max_per_text < 1 or chunk_size < 1 or replay < 0:
            raise ValueError("max_per_text and chunk_size must be at least 1, replay at least 0")
        self.proposer: Proposer = proposer
        self.sorter: Sorter = sorter
        self.patterns = patterns
        self.schedule = schedule
        self.pattern_answers: Dict[int, Counter] = {}
        self.chunk_size = chunk_size
        self.replay = replay
        self.drop = drop
        self.optimizer = optimizer if optimizer is not None else nlp.create_optimizer()
        self.average_weights = average_weights
        self.self_training = self_training
        self.unknown_decay = unknown_decay
        if average_weights and self.optimizer.averages is None:
            self.optimizer.averages = {}
        self.rng = random.Random(seed)
        self.n_answers = 0
        self.answer_counts: Counter = Counter()
        self.stats: Counter = Counter()
        self.update_seconds: List[float] = []
        # Per input hash, the answers kept: [task, the reason it was last not
        # used, or None], so that a reason is counted once, not at each replay.
        self._memory: Dict[Any, List[List[Any]]] = {}
        self._asked: set = set()
        self._preceding = [proc for name, proc in nlp.pipeline[: nlp.pipe_names.index(self.component)]]
        # The only trainable component, with its own tok2vec (no listener to
        # feed): it can be updated without the rest of the pipeline.
        self._alone = (
            self.is_binary
            and not nlp.config["training"]["annotating_components"]
            and all(name == self.component or not hasattr(proc, "update") for name, proc in nlp.pipeline)
            and not any(hasattr(layer, "upstream_name") or "listener" in layer.name for layer in self.pipe.model.walk())
        )

    # Scoring ---------------------------------------------------------------

    def averaged_params(self) -> ContextManager:
        """Within this context the pipeline has the weights the loop proposes
        with: the moving average with `average_weights` (once an update was
        made), else the live weights. Evaluate or save the model in it:

            with loop.averaged_params():
                nlp.to_disk("model")

        RETURNS (ContextManager): The context.
        """
        if self.average_weights and self.optimizer.averages:
            return self.nlp.use_params(self.optimizer.averages)
        return contextlib.nullcontext()

    def score_texts(self, texts: List[TaskText]) -> Proposals:
        """Per text: the proposed spans, and a lookup of any span's score."""
        docs: List[Doc] = [t.doc for t in texts]
        for proc in self._preceding:
            docs = [proc(doc) for doc in docs]
        with self.averaged_params():
            return self.proposer(docs)

    def pattern_question(
        self, text: TaskText, start: int, end: int, label: str, index: int, lookup: Lookup
    ) -> Optional[Task]:
        """The question about a pattern match, or None (counted) if its
        pattern is retired or the model already scores the match high."""
        if self.pattern_retired(index):
            self.stats["pattern match skipped: pattern retired"] += 1
            return None
        score = lookup(start, end, label)
        if score >= self.schedule.skip_above:
            self.stats["pattern match skipped: model already confident"] += 1
            return None
        return text.question(start, end, label, score, "pattern", pattern=index)

    def scored_chunks(
        self, stream: Iterable[Union[Task, TaskText]], with_patterns: bool = True
    ) -> Iterator[Tuple[List[ScoredTask], List[ScoredTask]]]:
        """Per chunk of texts: (model proposals, pattern proposals)."""
        stream = self._task_texts(stream)
        while True:
            chunk = list(islice(stream, self.chunk_size))
            if not chunk:
                return
            model_tasks: List[ScoredTask] = []
            pattern_tasks: List[ScoredTask] = []
            for text, (candidates, lookup) in zip(chunk, self.score_texts(chunk)):
                for start, end, label, score in candidates:
                    if self._finite(score):
                        model_tasks.append((score, text.question(start, end, label, score, "model")))
                if self.patterns is not None and with_patterns:
                    for start, end, label, index in self.patterns(text.doc):
                        task = self.pattern_question(text, start, end, label, index, lookup)
                        if task is not None and self._finite(task["meta"]["score"]):
                            pattern_tasks.append((task["meta"]["score"], task))
            self.stats["texts scored"] += len(chunk)
            yield model_tasks, pattern_tasks

    def _finite(self, score: float) -> bool:
        """Whether a score can be written as standard JSON; a NaN or
        infinite one (a model gone wrong) is counted, its question dropped."""
        if math.isfinite(score):
            return True
        self.stats["question skipped: non-finite score"] += 1
        return False

    def _task_texts(self, stream: Iterable[Union[Task, TaskText]]) -> Iterator[TaskText]:
        """The stream's tasks read as the training reader reads records; a
        task that cannot be read is skipped and counted in `stats` as
        "task skipped: REASON" (see `records.REASONS`)."""
        for task in stream:
            if isinstance(task, TaskText):
                yield task
                continue
            try:
                yield TaskText.from_task(self.nlp, task)
            except RecordError as err:
                self.stats[f"task skipped: {err.reason}"] += 1

    def predict(self, stream: Iterable[Task]) -> Iterator[ScoredTask]:
        """Score a stream of tasks (`text`, optional `tokens`), `chunk_size`
        texts at a time, and propose spans. A task that cannot be read (see
        `records.parse_task`; one holding NaN or Infinity anywhere too) is
        skipped and counted in `stats` as "task skipped: REASON"; the tasks
        are not changed. What it yields is standard JSON: a question whose
        score is not finite is dropped ("question skipped: non-finite score").

        stream (Iterable[Task]): Incoming tasks.
        YIELDS (ScoredTask): `(score, task)`, one span per task, its label and
            the model's probability in `task["meta"]["score"]`.
        """
        for model_tasks, _ in self.scored_chunks(stream):
            yield from model_tasks

    def match_patterns(self, stream: Iterable[Task]) -> Iterator[ScoredTask]:
        """The pattern matches of a stream, scored by the model (the score is
        the model's probability of the matched span and label)."""
        if self.patterns is None:
            return
        for _, pattern_tasks in self.scored_chunks(stream):
            yield from pattern_tasks

    def __call__(self, stream: Iterable[Task]) -> Iterator[Task]:
        """The questions to ask: the sorter's choice of the model's proposals,
        mixed with pattern matches (`schedule.ratio` of the questions, pattern
        matches first) while patterns are in use. A task already asked in this
        loop is not asked again (counted in `stats`).

        stream (Iterable[Task]): Incoming tasks (`text`, optional `tokens`).
        YIELDS (Task): One question at a time.
        """
        queues = QuestionQueues(self, stream)
        selected = self.sorter(queues.model_stream())
        n_asked = n_patterns = 0
        while True:
            task = None
            if self._patterns_active():
                if not queues.patterns and not queues.early:
                    queues.fill()
                if n_patterns < self.schedule.ratio * (n_asked + 1):
                    task = queues.next_pattern_task()
                    n_patterns += task is not None
            if task is None:
                task = next(selected, None)
            if task is None and self._patterns_active():
                task = queues.next_pattern_task()
                n_patterns += task is not None
            if task is None:
                return
            if task["_task_hash"] in self._asked:
                self.stats["question skipped: asked before"] += 1
                continue
            self._asked.add(task["_task_hash"])
            n_asked += 1
            self.stats[f"asked: {task['meta']['source']}"] += 1
            yield task

    def read_ahead(self, stream: Iterable[Task], early: Deque[EarlyMatch]) -> Iterator[TaskText]:
        """The stream's texts, in order, read `schedule.lookahead` texts ahead;
        each text's pattern matches go to `early` as it is read."""
        assert self.patterns is not None
        source = self._task_texts(stream)
        ahead: Deque[TaskText] = deque()
        while True:
            for text in islice(source, max(0, self.schedule.lookahead - len(ahead))):
                for start, end, label, index in self.patterns(text.doc):
                    early.append((text, start, end, label, index))
                ahead.append(text)
            if not ahead:
                return
            yield ahead.popleft()

    def pattern_retired(self, index: int) -> bool:
        """Whether the pattern `index` is no longer asked: `schedule.max_answers`
        of its matches were answered."""
        counts = self.pattern_answers.get(index)
        if not counts or self.schedule.max_answers is None:
            return False
        return counts["accept"] + counts["reject"] >= self.schedule.max_answers

    def _patterns_active(self) -> bool:
        return (
            self.patterns is not None
            and self.schedule.ratio > 0
            and (self.schedule.until is None or self.n_answers < self.schedule.until)
        )

    # Learning --------------------------------------------------------------

    def update(self, answers: Sequence[Union[Task, Record]]) -> float:
        """Learn from a batch of answered tasks: one optimizer step.

        Answers are read as in training (`records_to_examples`): an accept
        makes its span an entity, a reject rules out that label on that span,
        an ignore is skipped. Every earlier answer about the same texts joins
        the step, plus `replay` earlier answered texts.

        An answer is a task (parsed here, once, with `records.parse_answer`)
        or a `Record` that `parse_answer` already returned (used as it is,
        e.g. as the teach server checked it). One that cannot be read is
        skipped and counted once in `stats` as "answer skipped: REASON" (a
        span the step cannot use, e.g. of an unknown label, too), and never
        raises. The answers are never changed, and kept only once the step
        is made.

        answers (Sequence[Union[Task, Record]]): Tasks with `answer` set to
            "accept", "reject" or "ignore", or their parsed records.
        RETURNS (float): The loss of the step (0.0 if nothing was learnable).
        """
        begin = time.perf_counter()
        fresh: Dict[Any, List[List[Any]]] = {}
        answered: Counter = Counter()
        by_pattern: List[Tuple[int, str]] = []
        skipped: Counter = Counter()
        for given in answers:
            try:
                record = given if isinstance(given, Record) else parse_answer(given)
            except RecordError as err:
                skipped[f"answer skipped: {err.reason}"] += 1
                continue
            answer = record.answer
            answered[answer] += 1
            meta = record.meta or {}
            source = meta.get("source")
            if isinstance(source, str) and source:
                answered[f"answered: {source} {answer}"] += 1
            if source == "pattern" and isinstance(meta.get("pattern"), int):
                by_pattern.append((meta["pattern"], answer))
            if answer == "ignore":
                continue
            key = record.input_hash if record.input_hash is not None else stable_hash(record.text)
            fresh.setdefault(key, []).append([dataclasses.replace(record, input_hash=key), None])
        keys = list(fresh)
        if self.replay:
            others = [k for k in self._memory if k not in fresh]
            keys += self.rng.sample(others, min(self.replay, len(others)))
        entries = [entry for key in keys for entry in self._memory.get(key, []) + fresh.get(key, [])]
        loss = self._step([entry[0] for entry in entries], skipped, entries) if entries else 0.0
        # The step is made: the batch is kept and counted.
        for key, new in fresh.items():
            self._memory.setdefault(key, []).extend(new)
        for index, answer in by_pattern:
            self.pattern_answers.setdefault(index, Counter())[answer] += 1
        for name, count in answered.items():
            (self.answer_counts if name in ("accept", "reject", "ignore") else self.stats)[name] += count
        self.stats.update(skipped)
        self.n_answers += len(answers)
        if entries:
            self.update_seconds.append(time.perf_counter() - begin)
        return loss

    def _step(self, records: List[Record], skipped: Counter, entries: List[List[Any]]) -> float:
        """One optimizer step on the records; a reason a record is newly not
        used for goes into `skipped`, and into its entry."""
        reader = TeachReader(self.nlp, labels=self.pipe.labels)
        reader.read_records(records)
        examples = reader.examples()
        for entry, reason in zip(entries, reader.outcomes()):
            if reason != entry[1] and reason not in (None, "duplicate answer"):
                skipped[f"answer skipped: {reason}"] += 1
            entry[1] = reason
        if not examples:
            return 0.0
        losses: Dict[str, float] = {}
        settings = {"self_training": self.self_training, "unknown_decay": self.unknown_decay} if self.is_binary else {}
        if self._alone:
            # `Language.update` copies every doc first, for components that
            # annotate during training; with none of those, that copy was a
            # tenth of the step. The component updates and steps by itself.
            self.pipe.update(examples, sgd=self.optimizer, drop=self.drop, losses=losses, **settings)
        else:
            self.nlp.update(
                examples, sgd=self.optimizer, drop=self.drop, losses=losses, component_cfg={self.component: settings}
            )
        return float(losses.get(self.component, 0.0))

    def median_update_ms(self) -> float:
        """Median wall time of the updates so far, in milliseconds."""
        return 1000 * statistics.median(self.update_seconds) if self.update_seconds else 0.0


def _seeded_random(seed: int) -> Sorter:
    def seeded(stream: Iterable[ScoredTask]) -> Iterator[Task]:
        return prefer_random(stream, seed=seed)

    return seeded


def check_labels(labels: Sequence[str]) -> None:
    """The loop's label rule: labels are case-sensitive strings, none empty
    or with whitespace at its ends, and no two differ only in case (answers
    naming the other would all be "unknown label").

    labels (Sequence[str]): The labels.
    RAISES (ValueError): What is wrong, naming the labels.
    """
    by_case: Dict[str, str] = {}
    for label in labels:
        if not isinstance(label, str) or not label or label != label.strip():
            raise ValueError(f"labels must be non-empty strings with no whitespace at their ends, not {label!r}")
        other = by_case.setdefault(label.lower(), label)
        if other != label:
            raise ValueError(f"labels {other!r} and {label!r} differ only in case: labels are case-sensitive, keep one")


def initialize_pipeline(
    nlp: Language,
    labels: Iterable[str],
    texts: Iterable[Union[str, Task]] = (),
    *,
    component: Optional[str] = None,
    learn_rate: Optional[float] = LOOP_LEARN_RATE,
    threshold: Optional[float] = LOOP_THRESHOLD,
) -> Optimizer:
    """Initialize a new pipeline for the loop: it knows its labels before any
    answer comes in.

    nlp (Language): The pipeline, not yet initialized.
    labels (Iterable[str]): The entity labels to annotate (see `check_labels`).
    texts (Iterable[Union[str, Task]]): A few sample texts or tasks, to size
        the model's layers (optional).
    component (Optional[str]): The component; None to find it.
    learn_rate (Optional[float]): The optimizer's learning rate. The loop makes
        one step per batch of answers, far fewer than training does: 0.005
        was best on the resume_zh dev split in the simulator (dev F1 0.714
        after 2,000 decisions; 0.688 at 0.01; after 1,000, 0.60 at 0.003 and
        0.50 at spaCy's usual 0.001). None keeps the config's.
    threshold (Optional[float]): The decision threshold of a `binary_ner`
        component (its `threshold` setting: the probability from which a span
        goes into `doc.ents`; saved with the pipeline). A model that learns
        from a few thousand answers is under-confident: every span no answer
        mentions is pulled towards "no entity". 0.2 was best on the resume_zh
        dev split after 2,000 decisions on each of 3 seeds (test F1 0.810
        against 0.799 at 0.5, mean of the seeds). None keeps the config's.
    RETURNS (Optimizer): The optimizer, to pass to `AnnotationLoop`.
    """
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
    labels = list(labels)
    check_labels(labels)
    pipe = nlp.get_pipe(component if component is not None else find_binary_ner(nlp)[0])
    if threshold is not None and isinstance(pipe, BinaryNER):
        pipe.cfg["threshold"] = threshold
    for label in labels:
        pipe.add_label(label)
    docs = []
    for item in islice(texts, 10):
        text = item if isinstance(item, str) else item["text"]
        docs.append(nlp.make_doc(text))
    if not docs:
        docs = [nlp.make_doc("x")]
    examples = [Example(doc, doc.copy()) for doc in docs]
    optimizer = nlp.initialize(lambda: examples)
    if learn_rate is not None:
        optimizer.learn_rate = learn_rate
    # `AnnotationLoop(average_weights=...)` decides whether to keep averages.
    optimizer.averages = None
    return optimizer
