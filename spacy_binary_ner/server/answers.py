"""The teach server's check of one answer, as a client sent it."""

import uuid
from typing import Any, Dict, Sequence, Tuple

from spacy.language import Language

from ..constants import ANSWERS
from ..data import REASONS, ReadStats, records_to_examples
from ..loop import set_hashes

Task = Dict[str, Any]


class BadAnswer(ValueError):
    """An answer the server will not store; the message says why."""


def check_answer(item: Any, labels: Sequence[str], nlp: Language) -> Tuple[str, Task]:
    """Check an answer as a client sent it; RETURNS (Tuple[str, Task]) its
    key and the task to store (hashes recomputed here). Raises `BadAnswer`."""
    if not isinstance(item, dict):
        raise BadAnswer(f"an answer must be a JSON object, not {type(item).__name__}")
    answer = item.get("answer")
    if answer not in ANSWERS:
        raise BadAnswer(f"`answer` must be one of {', '.join(ANSWERS)}, not {str(answer)[:40]!r}")
    text = item.get("text")
    if not isinstance(text, str) or not text:
        raise BadAnswer("an answer needs the task's `text` (a non-empty string)")
    spans = item.get("spans")
    if not isinstance(spans, list) or not spans:
        raise BadAnswer("an answer needs the task's `spans` (a list with the span answered)")
    clean_spans = []
    for span in spans:
        if not isinstance(span, dict):
            raise BadAnswer("each span must be an object {start, end, label}")
        start, end, label = span.get("start"), span.get("end"), span.get("label")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise BadAnswer(f"span offsets {start!r}..{end!r} must be integers with 0 <= start < end <= {len(text)}")
        if label not in labels:
            raise BadAnswer(f"unknown label {str(label)[:40]!r}: the labels are {', '.join(labels)}")
        clean = {"start": start, "end": end, "label": label}
        for k in ("token_start", "token_end"):
            if isinstance(span.get(k), int):
                clean[k] = span[k]
        clean_spans.append(clean)
    key = item.get("key")
    if key is None:
        key = uuid.uuid4().hex
    if not isinstance(key, str) or not 0 < len(key) <= 100:
        raise BadAnswer("`key` must be a string of 1 to 100 characters (or left out)")
    task: Task = {"text": text, "spans": clean_spans, "answer": answer}
    if item.get("tokens") is not None:
        task["tokens"] = item["tokens"]
    meta = item.get("meta")
    if isinstance(meta, dict):
        task["meta"] = {k: v for k, v in meta.items() if k in ("score", "source", "pattern", "pool_index")}
    if isinstance(item.get("_input_hash"), int):
        task["_input_hash"] = item["_input_hash"]
    set_hashes(task)
    # The reader (the one parser of teach records) decides whether the
    # answer is usable: tokens, span alignment, length.
    read = ReadStats()
    records_to_examples(nlp, [task], labels=labels, stats=read)
    problems = {reason: n for reason, n in read.skipped.items() if reason != "ignore answer"}
    if problems:
        reason = next(iter(problems))
        raise BadAnswer(f"the reader would skip it: {reason} ({REASONS.get(reason, '')})")
    return key, task
