"""Tasks: the dicts a teach tool shows and sends back, and their stable hashes."""

from typing import Any, Callable, Dict, List, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from ..records import parse_task, record_doc, stable_hash

Task = Dict[str, Any]
ScoredTask = Tuple[float, Task]
# A proposed span: (start token, end token exclusive, label, probability).
Candidate = Tuple[int, int, str, float]
# The probability of any (start token, end token exclusive, label) of one text.
Lookup = Callable[[int, int, str], float]


def set_hashes(task: Task) -> Task:
    """Give a task stable hashes, as teach tools expect (in place).

    `_input_hash` is kept if present, else hashed from the text; `_task_hash`
    is hashed from the input hash and the task's spans and labels, so the same
    question about the same text always gets the same hash, across runs.

    task (Task): A task with `text` and optional `spans`.
    RETURNS (Task): The same task.
    """
    if task.get("_input_hash") is None:
        task["_input_hash"] = stable_hash(task["text"])
    spans = sorted((s["start"], s["end"], s.get("label", "")) for s in task.get("spans", []))
    task["_task_hash"] = stable_hash(task["_input_hash"], *spans)
    return task


class TaskText:
    """An incoming task's doc and the character offsets of its tokens."""

    __slots__ = ("task", "doc", "starts", "ends")

    def __init__(self, task: Task, doc: Doc, starts: List[int], ends: List[int]) -> None:
        self.task = task
        self.doc = doc
        self.starts = starts
        self.ends = ends

    @classmethod
    def from_task(cls, nlp: Language, task: Task) -> "TaskText":
        """Read a task (`text`, optional `tokens`) with the training reader's
        checks (`records.parse_task`).

        nlp (Language): Its vocab and tokenizer.
        task (Task): The task.
        RETURNS (TaskText): Its doc and token offsets.
        RAISES (RecordError): Why the task cannot be read (a `ValueError`).
        """
        record = parse_task(task)
        doc, starts, ends = record_doc(nlp, record.text, record.parsed_tokens)
        return cls(task, doc, starts, ends)

    def question(self, start: int, end: int, label: str, score: float, source: str, **meta: Any) -> Task:
        """A question about one span of this text: a copy of the task with the
        span, the model's probability and where the question came from in
        `meta`, and fresh hashes.

        start (int): First token.
        end (int): End token (exclusive).
        label (str): The label asked about.
        score (float): The model's probability of the span and label.
        source (str): "model" or "pattern".
        meta: More `meta` entries (e.g. `pattern`, the pattern's index).
        RETURNS (Task): The question.
        """
        task = {k: v for k, v in self.task.items() if k not in ("spans", "answer", "_task_hash", "meta")}
        task["spans"] = [
            {
                "start": self.starts[start],
                "end": self.ends[end - 1],
                "token_start": start,
                "token_end": end - 1,
                "label": label,
            }
        ]
        task["meta"] = {**(self.task.get("meta") or {}), "score": score, "source": source, **meta}
        return set_hashes(task)
