"""Whole-text questions: a text with the model's entities, to correct.

`correct` asks about every text in order with the entities the model finds
at its threshold (`Corrector.__call__`), `silver-to-gold` with the best
analysis consistent with the text's binary answers (`Corrector.silver`), and
`teach` turns a question into one (`Corrector.correction_of`). A question is
a task whose `complete` lists the labels being annotated: answered, it is a
complete annotation for those labels (every span of them that is not in
`spans` is not an entity; other labels stay unknown).

A correction's `_task_hash` depends on its text and labels only (not on its
spans, which the person changes): a later correction of the same text
supersedes the earlier one.
"""

from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from spacy.tokens import Doc, Span

from ..records import Record, RecordError, parse_answer, stable_hash
from .loop import AnnotationLoop
from .tasks import Task, TaskText

# A span on tokens: (start token, end token exclusive, label).
TokenSpan = Tuple[int, int, str]
# `consistent.best_consistent`'s signature: (doc, answers, labels, threshold) -> spans.
Consistent = Callable[[Doc, Sequence[Record], Optional[Sequence[str]], Optional[float]], List[Span]]
# The key of a silver-to-gold source task holding its text's stored answers.
ANSWERS_KEY = "_answers"


def correction_hash(input_hash: Any, labels: Sequence[str]) -> int:
    """The `_task_hash` of a correction: of its text's `_input_hash` and the
    labels it is complete for (in any order), not of its spans.

    input_hash (Any): The text's `_input_hash`.
    labels (Sequence[str]): The labels of `complete`.
    RETURNS (int): The hash.
    """
    return stable_hash(input_hash, "complete", *sorted(labels))


def is_correction(task: Dict[str, Any]) -> bool:
    """Whether a task is a whole-text correction (`complete` is a list of labels)."""
    return isinstance(task.get("complete"), list)


class Corrector:
    """Whole-text questions predicted by a loop's model (the weights it proposes with).

    loop (AnnotationLoop): The loop; its pipeline predicts the entities.
    labels (Sequence[str]): The labels being annotated: only their entities
        are shown, and the questions are complete for them.
    """

    def __init__(self, loop: AnnotationLoop, labels: Sequence[str]) -> None:
        self.loop = loop
        self.labels = list(labels)

    def predict(self, texts: List[TaskText]) -> List[Doc]:
        """The texts' docs run through the pipeline: entities at the pipe's
        threshold, and its span groups."""
        with self.loop.averaged_params():
            return list(self.loop.nlp.pipe(text.doc for text in texts))

    def entities(self, doc: Doc) -> List[TokenSpan]:
        """A predicted doc's entities of the labels being annotated."""
        return [(ent.start, ent.end, ent.label_) for ent in doc.ents if ent.label_ in self.labels]

    def question(self, text: TaskText, spans: Iterable[TokenSpan], source: str) -> Task:
        """The correction task of a text with these spans: its tokens (so that
        a page snaps selections to them), spans with character and token
        offsets, `complete` (the labels) and the correction's hashes.

        text (TaskText): The text.
        spans (Iterable[TokenSpan]): Non-overlapping spans on its tokens.
        source (str): Where the spans came from, for `meta["source"]`.
        RETURNS (Task): The task.
        """
        doc, starts, ends = text.doc, text.starts, text.ends
        task: Task = {"text": text.task["text"]}
        task["tokens"] = [
            {"text": token.text, "start": starts[i], "end": ends[i], "id": i, "ws": bool(token.whitespace_)}
            for i, token in enumerate(doc)
        ]
        task["spans"] = [
            {"start": starts[s], "end": ends[e - 1], "token_start": s, "token_end": e - 1, "label": label}
            for s, e, label in sorted(spans)
        ]
        task["complete"] = list(self.labels)
        task["meta"] = {**(text.task.get("meta") or {}), "source": source}
        input_hash = text.task.get("_input_hash")
        task["_input_hash"] = input_hash if input_hash is not None else stable_hash(task["text"])
        task["_task_hash"] = correction_hash(task["_input_hash"], self.labels)
        return task

    def _texts(self, stream: Iterable[Task]) -> Iterator[TaskText]:
        """The stream's tasks read as the loop reads them; one that cannot be
        read is counted in the loop's `stats` and skipped."""
        for task in stream:
            try:
                yield TaskText.from_task(self.loop.nlp, task)
            except RecordError as err:
                self.loop.stats[f"task skipped: {err.reason}"] += 1

    def __call__(self, stream: Iterable[Task]) -> Iterator[Task]:
        """Every text of the stream, in order, with the model's entities. Each
        text is predicted when it is asked for, so that a model updated in
        between predicts the texts after the update.

        stream (Iterable[Task]): Incoming tasks (`text`, optional `tokens`).
        YIELDS (Task): One correction task per text.
        """
        for text in self._texts(stream):
            doc = self.predict([text])[0]
            self.loop.stats["asked: model"] += 1
            yield self.question(text, self.entities(doc), "model")

    def correction_of(self, question: Task) -> Task:
        """A teach question turned into a correction of its whole text: the
        model's entities plus the question's spans (which win where they
        overlap an entity).

        question (Task): A question as `AnnotationLoop` asked it.
        RETURNS (Task): The correction task.
        RAISES (RecordError): The question cannot be read, or a span of it is
            not on the text's tokens.
        """
        text = TaskText.from_task(self.loop.nlp, question)
        token_of_start = {start: i for i, start in enumerate(text.starts)}
        token_of_end = {end: i + 1 for i, end in enumerate(text.ends)}
        asked: List[TokenSpan] = []
        for span in question.get("spans") or []:
            start, end = token_of_start.get(span.get("start")), token_of_end.get(span.get("end"))
            if start is None or end is None or start >= end or span.get("label") not in self.labels:
                raise RecordError("span disagrees with tokens", f"span {span.get('start')}-{span.get('end')}")
            asked.append((start, end, span["label"]))
        doc = self.predict([text])[0]
        kept = [e for e in self.entities(doc) if not any(e[0] < a[1] and a[0] < e[1] for a in asked)]
        return self.question(text, kept + asked, "model")

    def silver(self, stream: Iterable[Task], consistent: Consistent) -> Iterator[Task]:
        """Every text of the stream that has binary answers (its task's
        `_answers`: the stored answers), with the best analysis consistent
        with them (`consistent`, e.g. `consistent.best_consistent`).

        stream (Iterable[Task]): Tasks with `text`, optional `tokens` and
            `_answers`.
        consistent (Consistent): `(doc, answers, labels, threshold) -> spans`.
        YIELDS (Task): One correction task per text with a usable answer.
        """
        threshold = float(self.loop.pipe.cfg["threshold"])
        for text in self._texts(stream):
            answers = []
            for stored in text.task.get(ANSWERS_KEY) or []:
                try:
                    record = parse_answer(stored)
                except RecordError as err:
                    self.loop.stats[f"answer skipped: {err.reason}"] += 1
                    continue
                if record.answer != "ignore" and not record.complete:
                    answers.append(record)
            if not answers:
                self.loop.stats["text skipped: no binary answer"] += 1
                continue
            doc = self.predict([text])[0]
            spans = consistent(doc, answers, self.labels, threshold)
            self.loop.stats["asked: silver"] += 1
            yield self.question(text, [(s.start, s.end, s.label_) for s in spans], "silver")
