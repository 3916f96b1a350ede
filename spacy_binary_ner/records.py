"""The teach record format: one parser and one doc builder for every reader.

A record is a JSON object with `text`, optional `tokens` ({text, start, end,
ws}), `spans` ({start, end, label}, character offsets), an `answer` ("accept",
"reject" or "ignore"), optional `complete` (true, or the list of labels the
annotation is complete for) and `_input_hash`. `parse_record`
checks one record and returns a `Record`, or raises a `RecordError` whose
`reason` is one of `REASONS`; `parse_tokens` and `record_doc` turn its text and
tokens into a `Doc` with the character offsets of its tokens; `align_span`
maps character offsets onto tokens. The training reader (`teach_reader.TeachReader`),
`evaluate` and the annotation loop all go through these.
"""

import bisect
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from .constants import ANSWERS
from .jsonl import check_finite, iter_jsonl, iter_lines, jsonl_files, loads, nan_to_null
from .reasons import FATAL_REASONS, HARMLESS_REASONS, REASONS, WARNINGS, RecordError

SpanKey = Tuple[int, int, str]  # character start, character end, label
# A span's `token_start` / `token_end` as given, with its character offsets.
TokenRef = Tuple[int, int, Any, Any]

ALIGNMENT_MODES = ("strict", "expand", "contract")
# What the `start` / `end` of spans and tokens count: Unicode code points (as
# Python and spaCy count), or UTF-16 code units (as JavaScript counts).
OFFSET_UNITS = ("chars", "utf16")

_SURROGATE = re.compile("[\ud800-\udfff]")
_DECIMAL = re.compile("-?[0-9]+")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


class Tokens(NamedTuple):
    """A record's own tokenization: words, trailing spaces and character offsets."""

    words: List[str]
    spaces: List[bool]
    starts: List[int]
    ends: List[int]


@dataclass
class Record:
    """One valid teach record.

    text (str): The text.
    spans (List[SpanKey]): The spans it answers about, character offsets.
    answer (str): "accept" or "reject" ("accept" for a complete annotation
        without one).
    complete (bool): Whether the spans are all the entities of the text (of
        `complete_labels`' labels, where given).
    input_hash (Optional[Union[int, str]]): The record's `_input_hash`, if
        given: an integer (a string of decimal digits is read as its integer),
        or another string.
    tokens (Any): The record's raw `tokens`, checked by `parse_tokens`.
    meta (Optional[Dict[str, Any]]): The record's `meta` object, if it has one
        (where a question came from: `source`, `pattern`, `score`).
    parsed_tokens (Optional[Tokens]): `tokens` as `parse_tokens` read them
        (None without tokens, or where they were not parsed).
    complete_labels (Optional[Tuple[str, ...]]): The labels a complete
        annotation is complete for (`"complete": [labels]`): every other span
        is not an entity of these labels, and other labels stay unknown.
        None: every label (`"complete": true`), or not complete.
    """

    text: str
    spans: List[SpanKey] = field(default_factory=list)
    answer: str = "accept"
    complete: bool = False
    input_hash: Optional[Union[int, str]] = None
    tokens: Any = None
    meta: Optional[Dict[str, Any]] = None
    parsed_tokens: Optional[Tokens] = None
    complete_labels: Optional[Tuple[str, ...]] = None


def parse_record(
    value: Any, complete: bool = False, offsets: str = "chars", checked: Optional[Mapping[str, Tokens]] = None
) -> Record:
    """Check one record of the teach format.

    value (Any): The parsed JSON value, or the `json.JSONDecodeError` or
        `RecordError` of its line (see `iter_lines`).
    complete (bool): Whether the record's source holds complete annotations
        (a record's own `complete` field wins).
    offsets (str): What span and token offsets count: "chars" (Unicode code
        points) or "utf16" (UTF-16 code units, converted to code points).
    checked (Optional[Mapping[str, Tokens]]): Tokens already checked, by
        text (see `parse_tokens`' `checked`): a reader's earlier records.
    RETURNS (Record): The record, offsets in code points; its `tokens`, if
        any, checked and parsed (`parse_tokens`), and each span's
        `token_start` / `token_end`, where given, checked against them.
    RAISES (RecordError): Why the record cannot be used (an "ignore" answer too).
    """
    if isinstance(value, RecordError):
        raise value
    if isinstance(value, json.JSONDecodeError):
        raise RecordError("malformed JSON", str(value))
    if not isinstance(value, dict):
        raise RecordError("not an object", f"got {type(value).__name__}")
    if "text" not in value:
        raise RecordError("missing key", "no `text`")
    text = _check_text(value["text"])
    is_complete, complete_labels = _check_complete(value.get("complete", complete))
    answer = value.get("answer")
    if answer is None:
        if not is_complete:
            raise RecordError("missing key", "no `answer` in a teach record")
        answer = "accept"
    if not isinstance(answer, str):
        raise RecordError("bad field", f"`answer` is {type(answer).__name__}")
    if answer not in ANSWERS:
        raise RecordError("unknown answer", f"answer {answer[:40]!r}")
    if answer == "ignore":
        raise RecordError("ignore answer")
    if not text.strip():
        raise RecordError("empty text")
    given_hash = _check_hash(value.get("_input_hash"))
    if is_complete and answer == "reject":
        raise RecordError("rejected complete annotation")
    keys, tokens, refs = _spans_and_tokens(value, text, offsets)
    if not keys and not is_complete:
        raise RecordError("no spans", f"a teach {answer} with no `spans`")
    parsed = _checked_tokens(tokens, text, refs, checked.get(text) if checked and tokens else None)
    meta = value.get("meta")
    if complete_labels is not None:
        for start, end, label in keys:
            if label not in complete_labels:
                raise RecordError(
                    "bad field", f"span {start}-{end} has label {label[:40]!r}, not one of `complete`'s labels"
                )
    meta = meta if isinstance(meta, dict) else None
    return Record(text, keys, answer, is_complete, given_hash, tokens, meta, parsed, complete_labels)


def _check_complete(value: Any) -> Tuple[bool, Optional[Tuple[str, ...]]]:
    """`complete` as (whether complete, the labels it is complete for or None)."""
    if isinstance(value, bool):
        return value, None
    if isinstance(value, list) and value and all(isinstance(label, str) and label for label in value):
        return True, tuple(dict.fromkeys(value))
    raise RecordError("bad field", "`complete` must be true, false or a non-empty list of labels")


def parse_answer(value: Any, labels: Optional[Sequence[str]] = None) -> Record:
    """Check one answer as a teach tool sends it back, with `parse_record`'s
    checks; the one parse an answer gets between the server and the loss.

    An "ignore" answer, and a rejected complete annotation (a text marked
    unusable), are checked as an accept would be and returned with their
    answer (the reader skips them; the server stores them). Its
    `tokens`, if any, are checked (`parse_tokens`), and it holds no NaN or
    Infinity anywhere ("non-finite number": what is stored is written out).

    value (Any): The answered task.
    labels (Optional[Sequence[str]]): If given, every span's label must be
        one of them ("unknown label").
    RETURNS (Record): The answer, parsed.
    RAISES (RecordError): Why the answer cannot be used.
    """
    check_finite(value)
    given = value.get("answer") if isinstance(value, dict) else None
    # An ignore, and the reject of a whole complete annotation ("unusable"),
    # are stored as given, so they are checked as an accept would be.
    unlearned = given == "ignore" or (given == "reject" and value.get("complete") not in (None, False))
    record = parse_record({**value, "answer": "accept"} if unlearned else value)
    if unlearned:
        record.answer = given
    if labels is not None:
        for start, end, label in record.spans:
            if label not in labels:
                raise RecordError(
                    "unknown label", f"{label[:40]!r} at {start}-{end}; the labels are {', '.join(labels)}"
                )
    return record


def parse_task(value: Any, offsets: str = "chars") -> Record:
    """Check one incoming task (a text to score, no answer yet), with the
    checks of `parse_record`: `text`, optional `spans`, `tokens`,
    `_input_hash` and `meta` (an object or null).

    value (Any): The task.
    offsets (str): "chars" or "utf16", as in `parse_record`.
    RETURNS (Record): The task as a record (answer "accept", not complete);
        its `tokens` are checked too (`parse_tokens`), and it holds no NaN or
        Infinity anywhere (what is copied from a task is written out).
    RAISES (RecordError): Why the task cannot be used.
    """
    if not isinstance(value, dict):
        raise RecordError("not an object", f"got {type(value).__name__}")
    if "text" not in value:
        raise RecordError("missing key", "no `text`")
    text = _check_text(value["text"])
    if not text.strip():
        raise RecordError("empty text")
    check_finite(value)
    meta = value.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise RecordError("bad field", f"`meta` is {type(meta).__name__}, not an object")
    given_hash = _check_hash(value.get("_input_hash"))
    keys, tokens, refs = _spans_and_tokens(value, text, offsets)
    parsed = _checked_tokens(tokens, text, refs)
    return Record(text, keys, "accept", False, given_hash, tokens, parsed_tokens=parsed)


def _spans_and_tokens(value: dict, text: str, offsets: str) -> Tuple[List[SpanKey], Any, List[TokenRef]]:
    """A record's checked span keys, its tokens, offsets in code points, and
    its spans' token references."""
    units = _units(text, offsets)
    refs: List[TokenRef] = []
    keys = _span_keys(value.get("spans", []), text, units, refs)
    tokens = value.get("tokens")
    if tokens and units is not None:
        tokens = _tokens_in_chars(tokens, units)
    return keys, tokens, refs


def _checked_tokens(tokens: Any, text: str, refs: List[TokenRef], checked: Optional[Tokens] = None) -> Optional[Tokens]:
    """The record's tokens parsed, its spans' `token_start` / `token_end`
    checked against them (None without tokens: nothing to check against)."""
    if not tokens:
        return None
    parsed = parse_tokens(tokens, text, checked)
    n = len(parsed.starts)
    for start, end, first, last in refs:
        if type(first) is not int or type(last) is not int or not 0 <= first <= last < n:
            raise RecordError(
                "span disagrees with tokens", f"span {start}-{end} names tokens {first!r}-{last!r} of {n}"
            )
        if parsed.starts[first] != start or parsed.ends[last] != end:
            raise RecordError(
                "span disagrees with tokens",
                f"span {start}-{end} names tokens {first}-{last}, which are characters "
                f"{parsed.starts[first]}-{parsed.ends[last]}",
            )
    return parsed


def v2_label_error(label: str) -> Optional[str]:
    """What is wrong with a label in spaCy v2's notation, or None if nothing.

    spaCy v2 wrote "not PERSON" as the entity label `!PERSON` and a missing
    label as `-`; in spaCy v3 and here, "not PERSON" is a span with label
    PERSON and answer reject (spaCy's `ner` raises E869 on `!`)."""
    if label.startswith("!") and len(label) > 1:
        return (
            f"label {label!r} is spaCy v2's notation for 'not {label[1:]}': write the span with label "
            f'{label[1:]!r} and "answer": "reject" (a teach reject) instead'
        )
    if label == "-":
        return "label '-' is spaCy v2's notation for a missing label: drop the span (unannotated is unknown)"
    return None


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise RecordError("bad field", f"`text` is {type(text).__name__}")
    found = _SURROGATE.search(text)
    if found is not None:
        raise RecordError("lone surrogate", f"U+{ord(found.group()):04X} at character {found.start()} of `text`")
    return text


def _check_hash(given_hash: Any) -> Optional[Union[int, str]]:
    """The `_input_hash`: an integer; a string of decimal digits is its
    integer (7 and "7" are one text, as the teach server stores them); any
    other string is a key of its own."""
    if given_hash is None or type(given_hash) is int:
        return given_hash
    if not isinstance(given_hash, str):
        raise RecordError("bad field", f"`_input_hash` must be an integer, not {type(given_hash).__name__}")
    if _DECIMAL.fullmatch(given_hash):
        return int(given_hash)
    if _SURROGATE.search(given_hash):
        raise RecordError("lone surrogate", "in `_input_hash`")
    return given_hash


def _units(text: str, offsets: str) -> Optional[List[int]]:
    """For UTF-16 offsets, the code point index of each UTF-16 code unit
    offset (-1 inside a surrogate pair); None where offsets are code points or
    the text is all in the BMP (where the two agree)."""
    if offsets == "chars":
        return None
    if offsets != "utf16":
        raise ValueError(f"offsets must be one of {OFFSET_UNITS}, not {offsets!r}")
    if _ASTRAL.search(text) is None:
        return None
    units: List[int] = []
    for k, char in enumerate(text):
        units.append(k)
        if ord(char) > 0xFFFF:
            units.append(-1)
    units.append(len(text))
    return units


def _to_chars(units: List[int], offset: Any, what: str) -> Any:
    if type(offset) is not int or not 0 <= offset < len(units):
        return offset  # left for the usual checks
    char = units[offset]
    if char < 0:
        raise RecordError("bad field", f"{what} offset {offset} falls inside a UTF-16 surrogate pair")
    return char


def _tokens_in_chars(tokens: Any, units: List[int]) -> Any:
    if not isinstance(tokens, list) or not all(isinstance(t, dict) for t in tokens):
        return tokens
    return [
        {**t, "start": _to_chars(units, t.get("start"), "token"), "end": _to_chars(units, t.get("end"), "token")}
        for t in tokens
    ]


def _span_keys(spans: Any, text: str, units: Optional[List[int]], refs: List[TokenRef]) -> List[SpanKey]:
    if spans is None:
        return []
    if not isinstance(spans, list):
        raise RecordError("bad field", f"`spans` is {type(spans).__name__}")
    keys = [_span_key(span, text, units) for span in spans]
    for span, (start, end, _) in zip(spans, keys):
        if "token_start" in span or "token_end" in span:
            refs.append((start, end, span.get("token_start"), span.get("token_end")))
    return keys


def _span_key(span: Any, text: str, units: Optional[List[int]]) -> SpanKey:
    if not isinstance(span, dict):
        raise RecordError("bad field", "a span is not an object")
    start, end, label = span.get("start"), span.get("end"), span.get("label")
    if start is None or end is None or label is None:
        raise RecordError("bad field", "a span needs `start`, `end` and `label`")
    if type(start) is not int or type(end) is not int or not isinstance(label, str) or not label:
        raise RecordError("bad field", "span `start`/`end` must be integers and `label` a non-empty string")
    if label[0].isspace() or label[-1].isspace():
        what = "only whitespace" if label.isspace() else "whitespace at its ends"
        raise RecordError("bad field", f"label {label[:40]!r} is {what}: labels are compared as written")
    if _SURROGATE.search(label):
        raise RecordError("lone surrogate", "in a span's `label`")
    problem = v2_label_error(label)
    if problem:
        raise RecordError("spaCy v2 label", problem)
    if units is not None:
        start, end = _to_chars(units, start, "span"), _to_chars(units, end, "span")
    n_chars = len(text)
    if not 0 <= start < end <= n_chars:
        raise RecordError("bad field", f"span {start}-{end} is empty or outside the text of {n_chars} characters")
    declared = span.get("text")
    if declared is not None and declared != text[start:end]:
        hint = ""
        if units is None and isinstance(declared, str) and _ASTRAL.search(text):
            as_utf16 = _units(text, "utf16")
            a, b = _to_chars(as_utf16, start, "span"), _to_chars(as_utf16, end, "span")
            if text[a:b] == declared:
                hint = "; the offsets look like UTF-16 code units (as JavaScript counts): read with offsets = utf16"
        raise RecordError(
            "span text mismatch",
            f"span {start}-{end} says {str(declared)[:40]!r}, the text there is {text[start:end][:40]!r}{hint}",
        )
    return start, end, label


def parse_tokens(tokens: Any, text: str, checked: Optional[Tokens] = None) -> Tokens:
    """Check a record's `tokens` against its text: each token's `text` is
    `text[start:end]`, and the tokens, each followed by one space or none,
    spell the text exactly (as the words and spaces of a spaCy `Doc` do), so
    the doc made of them has the record's text.

    tokens (Any): The record's `tokens` value (offsets in code points; see
        `parse_record` for UTF-16 ones).
    text (str): The record's text.
    checked (Optional[Tokens]): Tokens of this text that passed these checks
        (another record's): where the words and offsets are the same, they
        are not checked again (only each token's `ws`), and these are returned.
    RETURNS (Tokens): Words, trailing spaces (read from the text; a token's
        `ws`, where given, must agree) and character offsets.
    RAISES (RecordError): "bad tokens", with what is wrong; "tokens disagree
        with text" where a token's `text` is not `text[start:end]`; "tokens
        leave out text" where a character other than one space after a token
        is in no token; "whitespace disagrees with text" where a `ws` does.
    """
    if not isinstance(tokens, list):
        raise RecordError("bad tokens", "`tokens` is not a list")
    try:
        words = [t["text"] for t in tokens]
        starts = [t["start"] for t in tokens]
        ends = [t["end"] for t in tokens]
    except (TypeError, KeyError):
        raise RecordError("bad tokens", "each token needs `text`, `start` and `end`") from None
    if not words:
        return Tokens(words, [], starts, ends)
    if (
        checked is not None
        and starts == checked.starts
        and ends == checked.ends
        and words == checked.words
        and {*map(type, starts), *map(type, ends)} == {int}  # not 1.0 or True, which equal 1
    ):
        _check_ws(tokens, text, checked)
        return checked
    n_chars = len(text)
    previous_end = 0
    for word, start, end in zip(words, starts, ends):
        if type(start) is not int or type(end) is not int or not isinstance(word, str) or not word:
            raise RecordError("bad tokens", "token `start`/`end` must be integers and `text` a non-empty string")
        if start < previous_end or end <= start or end > n_chars:
            raise RecordError(
                "bad tokens", f"token {word[:40]!r} at {start}-{end} overlaps, is empty or is outside the text"
            )
        if text[start:end] != word:
            raise RecordError(
                "tokens disagree with text",
                f"token {word[:40]!r} at {start}-{end}, the text there is {text[start:end][:40]!r}",
            )
        previous_end = end
    # A space after a token is a gap before the next one (or the text's end).
    spaces = [following != end for following, end in zip(starts[1:], ends)]
    spaces.append(ends[-1] != n_chars)
    n_spaces = sum(spaces)
    # In order and inside the text, the tokens spell it exactly where every gap is one " ".
    if (
        starts[0] != 0
        or sum(map(len, words)) + n_spaces != n_chars
        or (n_spaces and any(text[end] != " " for end, space in zip(ends, spaces) if space))
    ):
        _left_out(text, starts + [n_chars], [0] + ends)
    parsed = Tokens(words, spaces, starts, ends)
    _check_ws(tokens, text, parsed)
    return parsed


def _check_ws(tokens: List[Any], text: str, parsed: Tokens) -> None:
    """Each token's `ws`, where given, against the spaces of the text."""
    words, spaces, starts, ends = parsed
    given = [token.get("ws") for token in tokens]
    if given.count(None) != len(given):
        for k, ws in enumerate(given):
            if ws is not None and ws is not spaces[k]:
                if not isinstance(ws, bool):
                    raise RecordError("bad tokens", f"a token's `ws` must be true or false, not {ws!r}"[:120])
                after = text[ends[k] : ends[k] + 1]
                raise RecordError(
                    "whitespace disagrees with text",
                    f"token {words[k][:40]!r} at {starts[k]}-{ends[k]} has ws {ws}, the text after it is {after!r}",
                )


def _left_out(text: str, gap_ends: List[int], gap_starts: List[int]) -> None:
    """Raise "tokens leave out text" for the first gap that is not empty or one space."""
    for start, end in zip(gap_starts, gap_ends):
        if end > start and (start == 0 or end - start > 1 or text[start] != " "):
            break
    raise RecordError("tokens leave out text", f"characters {start}-{end} ({text[start:end][:40]!r}) are in no token")


def record_doc(nlp: Language, text: str, tokens: Optional[Tokens] = None) -> Tuple[Doc, List[int], List[int]]:
    """The doc of a record's text: from its own tokens if given, else from the
    pipeline's tokenizer.

    nlp (Language): Its vocab and tokenizer.
    text (str): The text.
    tokens (Optional[Tokens]): The record's tokens, from `parse_tokens`.
    RETURNS (Tuple[Doc, List[int], List[int]]): The doc, and the character
        start and end of each of its tokens.
    """
    if tokens is not None:
        return Doc(nlp.vocab, words=tokens.words, spaces=tokens.spaces), tokens.starts, tokens.ends
    doc = nlp.make_doc(text)
    starts = [t.idx for t in doc]
    ends = [t.idx + len(t) for t in doc]
    return doc, starts, ends


def align_span(starts: List[int], ends: List[int], start: int, end: int, mode: str) -> Optional[Tuple[int, int]]:
    """The token span `[i, j)` of character offsets, or None.

    starts (List[int]): Character start of each token, ascending.
    ends (List[int]): Character end of each token, ascending.
    start (int): Character start of the span.
    end (int): Character end of the span.
    mode (str): "strict" (both offsets on token boundaries), "expand" (every
        token the span touches) or "contract" (every token inside it), as
        `Doc.char_span`'s alignment modes.
    RETURNS (Optional[Tuple[int, int]]): First token and end token (exclusive).
    """
    if mode == "strict":
        i = bisect.bisect_left(starts, start)
        j = bisect.bisect_left(ends, end)
        if i < len(starts) and starts[i] == start and j < len(ends) and ends[j] == end and i <= j:
            return i, j + 1
        return None
    if mode == "expand":
        i = bisect.bisect_right(ends, start)  # first token ending after start
        j = bisect.bisect_left(starts, end)  # tokens starting before end
    else:
        i = bisect.bisect_left(starts, start)  # first token starting at or after start
        j = bisect.bisect_right(ends, end)  # tokens ending at or before end
    return (i, j) if i < j else None


def stable_hash(*parts: Any) -> int:
    """A 32-bit signed hash of the parts' string forms, the same across runs
    and machines: what `_input_hash` and `_task_hash` are made of."""
    text = "\x1f".join(str(p) for p in parts).encode("utf8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "little", signed=True)


def input_hash(record: dict) -> Union[int, str]:
    """The record's `_input_hash`, or the hash of its text that
    `loop.set_hashes` gives it."""
    if record.get("_input_hash") is not None:
        return record["_input_hash"]
    return stable_hash(record["text"])


__all__ = [
    "ALIGNMENT_MODES",
    "FATAL_REASONS",
    "HARMLESS_REASONS",
    "OFFSET_UNITS",
    "REASONS",
    "WARNINGS",
    "Record",
    "RecordError",
    "SpanKey",
    "Tokens",
    "align_span",
    "check_finite",
    "input_hash",
    "iter_jsonl",
    "iter_lines",
    "jsonl_files",
    "loads",
    "nan_to_null",
    "parse_answer",
    "parse_record",
    "parse_task",
    "parse_tokens",
    "record_doc",
    "stable_hash",
    "v2_label_error",
]
