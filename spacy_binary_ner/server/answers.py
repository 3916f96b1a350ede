"""The teach server's check of one answer, as a client sent it.

An answer is parsed once, here, with the reader's parser
(`records.parse_answer`): the server stores the task, and the learning engine
learns from the parsed `Record` it is handed, without parsing it again.

A correction (`complete`: the list of labels it is complete for) is a whole
text's entities: its spans must not overlap, and its `_task_hash` is of its
text and labels (`loop.correction_hash`), so that a later correction of the
text supersedes it. One rejected as unusable is stored with answer "reject".

A text-category answer (`teach --task textcat`) is checked with the
text-category reader's parser (`textcat.reader.parse_textcat_record`) and its
labels against the server's; the engine learns from the checked task.
"""

import dataclasses
import re
import uuid
from typing import Any, Dict, NamedTuple, Optional, Sequence

from spacy.language import Language

from ..data import REASONS, TeachReader
from ..loop import correction_hash, set_hashes
from ..records import Record, RecordError, align_span, parse_answer, record_doc, stable_hash

Task = Dict[str, Any]
# The task's fields a stored answer keeps, and its spans' fields.
_META_KEYS = ("score", "source", "pattern", "pool_index")
# The fields stored as the client sent them (checked by the parser).
_PLAIN_KEYS = ("tokens", "complete", "_input_hash")
_SPAN_KEYS = ("start", "end", "label", "token_start", "token_end")
# The database keeps `_input_hash` in a 64-bit signed integer column.
_HASH_MIN, _HASH_MAX = -(2**63), 2**63 - 1
_DECIMAL = re.compile("-?[0-9]+")


class BadAnswer(ValueError):
    """An answer the server will not store; the message says why."""


class Answer(NamedTuple):
    """A checked answer.

    key (str): Its idempotency key (the client's, or a new one).
    task (Task): The task to store, its hashes set.
    record (Any): What the loop learns from, parsed once, `input_hash` set:
        a span answer's `Record`, a text-category answer's `TextcatRecord`.
    """

    key: str
    task: Task
    record: Any


def read_answer(item: Any, labels: Sequence[str], nlp: Language) -> Answer:
    """Check an answer as a client sent it: the reader's parser
    (`records.parse_answer`), then whether the reader would use it (its spans
    on token boundaries of `nlp`'s tokenizer or of its own `tokens`, its length).

    item (Any): The answer, as the client sent it.
    labels (Sequence[str]): The labels being annotated.
    nlp (Language): The pipeline whose tokenizer the reader uses.
    RETURNS (Answer): Its key, the task to store and its record.
    RAISES (BadAnswer): Why it will not be stored, with the fix.
    """
    key = _key(item)
    task = _stored_fields(item)
    # A correction rejected as unusable is checked as its accept would be.
    rejected = task.get("complete") not in (None, False) and task["answer"] == "reject"
    try:
        record = parse_answer(dict(task, answer="accept") if rejected else task, labels)
    except RecordError as err:
        raise BadAnswer(_message(err)) from None
    if record.complete:
        _check_flat(record, nlp)
    try:
        given = storable_hash(task.pop("_input_hash", None))
    except ValueError as err:
        raise BadAnswer(str(err)) from None
    if given is not None:
        task["_input_hash"] = given
    set_hashes(task)
    if record.complete:
        task["_task_hash"] = correction_hash(task["_input_hash"], record.complete_labels or labels)
    record.input_hash = task["_input_hash"]
    if record.answer != "ignore":
        reader = TeachReader(nlp, labels=list(labels))
        reader.read_records([record])
        reader.examples()
        reason = reader.outcomes()[0]
        if reason is not None:
            raise BadAnswer(f"the reader would skip it: {reason}. Fix: {REASONS.get(reason, '')}")
    if rejected:
        record = dataclasses.replace(record, answer="reject")
    return Answer(key, task, record)


def _check_flat(record: Record, nlp: Language) -> None:
    """A correction's spans are on its tokens and do not overlap (flat NER)."""
    _, starts, ends = record_doc(nlp, record.text, record.parsed_tokens)
    for start, end, label in record.spans:
        if align_span(starts, ends, start, end, "strict") is None:
            raise BadAnswer(
                f"span {start}-{end} ({label}) is not on token boundaries: a correction's entities are whole "
                "tokens. Fix: snap it to the tokens (the task's `tokens`)"
            )
    spans = sorted(record.spans)
    for (start, end, label), (next_start, next_end, next_label) in zip(spans, spans[1:]):
        if next_start < end:
            raise BadAnswer(
                f"spans {start}-{end} ({label}) and {next_start}-{next_end} ({next_label}) overlap: a correction's "
                "entities must not. Fix: keep one of them"
            )


def _stored_fields(item: Dict[str, Any]) -> Task:
    """The fields of an answer that are stored, unchecked: `text`, `spans`
    (each with its offsets and label), `answer`, `tokens`, `complete`, `meta`
    (where the question came from) and `_input_hash`."""
    spans = item.get("spans")
    if isinstance(spans, list):
        spans = [{k: s[k] for k in _SPAN_KEYS if k in s} if isinstance(s, dict) else s for s in spans]
    task: Task = {"text": item.get("text"), "spans": spans, "answer": item.get("answer")}
    for name in _PLAIN_KEYS:
        if item.get(name) is not None:
            task[name] = item[name]
    meta = item.get("meta")
    if isinstance(meta, dict):
        task["meta"] = {k: v for k, v in meta.items() if k in _META_KEYS}
    return task


def storable_hash(value: Any) -> Optional[int]:
    """A given `_input_hash` as the server stores it, by the reader's rule: an
    integer, and a string of decimal digits is its integer (7 and "7" are one
    text). The database keeps it in a 64-bit signed integer.

    value (Any): The `_input_hash` given, or None.
    RETURNS (Optional[int]): The integer, or None if none was given.
    RAISES (ValueError): It is not an integer, or out of the column's range;
        the message names the field and the fix.
    """
    if value is None:
        return None
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        value = int(value)
    if type(value) is not int:
        raise ValueError(
            f"`_input_hash` must be an integer (or a string of decimal digits) to be stored, not {str(value)[:40]!r}; "
            "leave it out to hash the text"
        )
    if not _HASH_MIN <= value <= _HASH_MAX:
        raise ValueError(
            f"`_input_hash` {str(value)[:30]} is out of the range the database stores "
            f"({_HASH_MIN} to {_HASH_MAX}); leave it out to hash the text"
        )
    return value


def _message(err: RecordError) -> str:
    detail = f" ({err.detail})" if err.detail else ""
    return f"{err.reason}{detail}. Fix: {REASONS.get(err.reason, '')}"


# The fields of a text-category answer that are stored, as the client sent them.
_TEXTCAT_KEYS = ("text", "label", "options", "accept", "answer", "_input_hash")


def read_textcat_answer(item: Any, labels: Sequence[str]) -> Answer:
    """Check a text-category answer as a client sent it: the reader's parser
    (`textcat.reader.parse_textcat_record`), then its labels against
    `labels`. A label question (`label`) or a choice (`options`, `accept`)
    is stored with its fields and `meta`; its hashes are the loop's
    (`textcat.loop.textcat_task_hash`).

    item (Any): The answer, as the client sent it.
    labels (Sequence[str]): The labels being annotated.
    RETURNS (Answer): Its key, the task to store and its parsed
        `TextcatRecord`: what `TextcatLoop.update` learns from, unparsed again.
    RAISES (BadAnswer): Why it will not be stored, with the fix.
    """
    from ..textcat.loop import textcat_task_hash
    from ..textcat.reader import TEXTCAT_REASONS, parse_textcat_record

    key = _key(item)
    task: Task = {k: item[k] for k in _TEXTCAT_KEYS if item.get(k) is not None}
    if "cats" in item:
        raise BadAnswer(
            "bad field (`cats` is a complete annotation, not an answer to a question). Fix: answer the "
            "question's `label` or `options` with `answer`; complete `cats` belong in a gold file for the reader"
        )
    if isinstance(item.get("meta"), dict):
        task["meta"] = {k: v for k, v in item["meta"].items() if k in _META_KEYS}
    try:
        record = parse_textcat_record(task)
    except RecordError as err:
        detail = f" ({err.detail})" if err.detail else ""
        raise BadAnswer(f"{err.reason}{detail}. Fix: {TEXTCAT_REASONS.get(err.reason, '')}") from None
    unknown = [label for label in record.cats if label not in labels]
    if unknown:
        raise BadAnswer(
            f"unknown label ({', '.join(repr(label[:40]) for label in unknown)}; this server asks about "
            f"{', '.join(labels)}). Fix: {TEXTCAT_REASONS['unknown label']}"
        )
    try:
        given = storable_hash(task.pop("_input_hash", None))
    except ValueError as err:
        raise BadAnswer(str(err)) from None
    task["_input_hash"] = given if given is not None else stable_hash(record.text)
    task["_task_hash"] = textcat_task_hash(task)
    return Answer(key, task, dataclasses.replace(record, input_hash=task["_input_hash"]))


def _key(item: Any) -> str:
    """An answer's idempotency key: the client's, or a new one."""
    if not isinstance(item, dict):
        raise BadAnswer(f"an answer must be a JSON object, not {type(item).__name__}")
    key = item.get("key")
    if key is None:
        key = uuid.uuid4().hex
    if not isinstance(key, str) or not 0 < len(key) <= 100:
        raise BadAnswer("`key` must be a string of 1 to 100 characters (or left out)")
    return key
