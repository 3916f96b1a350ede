"""The teach record format: one parser and one doc builder for every reader.

A record is a JSON object with `text`, optional `tokens` ({text, start, end,
ws}), `spans` ({start, end, label}, character offsets), an `answer` ("accept",
"reject" or "ignore"), optional `complete` and `_input_hash`. `parse_record`
checks one record and returns a `Record`, or raises a `RecordError` whose
`reason` is one of `REASONS`; `parse_tokens` and `record_doc` turn its text and
tokens into a `Doc` with the character offsets of its tokens; `align_span`
maps character offsets onto tokens. The training reader (`data.TeachReader`),
`evaluate` and the annotation loop all go through these.
"""
import bisect
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from .constants import ANSWERS

SpanKey = Tuple[int, int, str]  # character start, character end, label

# Record-level reasons are decided when a record is read; span-level reasons
# when its sentence is built.
REASONS: Dict[str, str] = {
    "malformed JSON": "fix or delete the line: it is not valid JSON",
    "not an object": "each line must be one JSON object ({...})",
    "missing key": "add the key (`text`; `answer` in a teach file, or read the file as complete)",
    "bad field": "fix the field's type: `text` a string, `spans` a list of {start, end, label} "
    "with integer character offsets inside the text, `answer` a string",
    "bad tokens": "`tokens` must be {text, start, end} objects in order, inside the text, "
    "not overlapping; or drop `tokens` to use the pipeline's tokenizer",
    "empty text": "drop the record, or give it a text",
    "unknown answer": "`answer` must be accept, reject or ignore",
    "ignore answer": "none needed: ignored answers carry no information",
    "no spans": "a teach answer needs the span it answers; a text with no entities belongs in a complete file",
    "rejected complete annotation": "a rejected manual annotation says nothing reliable; "
    "drop it, or set its answer to accept",
    "input hash clash": "two different texts share one `_input_hash`; fix the hash or drop one",
    "duplicate answer": "none needed: the same answer was given earlier and is kept once",
    "conflicting answers": "the later answer was kept; drop the answer that is wrong",
    "overlapping accept": "entities are flat: the later accept was kept; drop the other",
    "misaligned span": "offsets must sit on token boundaries: fix them, pass the tokens used "
    "when annotating, or use alignment = expand / contract",
    "unknown label": "add the label to `labels`, or drop the span",
    "spaCy v2 label": "spaCy v3 has no negated labels: a span that is not LABEL is a span with label LABEL "
    "and answer reject",
    "no tokens": "the tokenizer found no tokens in the text",
    "text too long": "raise `max_length`, or use long_texts = split",
    "span cut by split": "raise `max_length`: this span crosses every possible cut",
}
# Reasons that are no fault of the data: never an error in strict mode.
HARMLESS_REASONS = frozenset({"ignore answer"})
# Reasons that are an error even when not strict: read as labels, they would train the wrong thing.
FATAL_REASONS = frozenset({"spaCy v2 label"})
ALIGNMENT_MODES = ("strict", "expand", "contract")


class RecordError(ValueError):
    """A record (or one of its spans) that cannot be used, and why.

    reason (str): One of `REASONS`.
    detail (str): What exactly is wrong, for the message.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason = reason
        self.detail = detail


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
    complete (bool): Whether the spans are all the entities of the text.
    input_hash (Optional[Union[int, str]]): The record's `_input_hash`, if given.
    tokens (Any): The record's raw `tokens`, checked by `parse_tokens`.
    """

    text: str
    spans: List[SpanKey] = field(default_factory=list)
    answer: str = "accept"
    complete: bool = False
    input_hash: Optional[Union[int, str]] = None
    tokens: Any = None


def parse_record(value: Any, complete: bool = False) -> Record:
    """Check one record of the teach format.

    value (Any): The parsed JSON value, or the `json.JSONDecodeError` of its line.
    complete (bool): Whether the record's source holds complete annotations
        (a record's own `complete` field wins).
    RETURNS (Record): The record.
    RAISES (RecordError): Why the record cannot be used (an "ignore" answer too).
    """
    if isinstance(value, json.JSONDecodeError):
        raise RecordError("malformed JSON", str(value))
    if not isinstance(value, dict):
        raise RecordError("not an object", f"got {type(value).__name__}")
    if "text" not in value:
        raise RecordError("missing key", "no `text`")
    text = value["text"]
    if not isinstance(text, str):
        raise RecordError("bad field", f"`text` is {type(text).__name__}")
    is_complete = value.get("complete", complete)
    if not isinstance(is_complete, bool):
        raise RecordError("bad field", "`complete` must be true or false")
    answer = value.get("answer")
    if answer is None:
        if not is_complete:
            raise RecordError("missing key", "no `answer` in a teach record")
        answer = "accept"
    if not isinstance(answer, str):
        raise RecordError("bad field", f"`answer` is {type(answer).__name__}")
    if answer not in ANSWERS:
        raise RecordError("unknown answer", f"answer {answer!r}")
    if answer == "ignore":
        raise RecordError("ignore answer")
    if not text.strip():
        raise RecordError("empty text")
    given_hash = value.get("_input_hash")
    if not isinstance(given_hash, (int, str, type(None))):
        raise RecordError("bad field", "`_input_hash` must be an integer or a string")
    if is_complete and answer == "reject":
        raise RecordError("rejected complete annotation")
    spans = value.get("spans", [])
    if spans is None:
        spans = []
    if not isinstance(spans, list):
        raise RecordError("bad field", f"`spans` is {type(spans).__name__}")
    keys = [_span_key(span, len(text)) for span in spans]
    if not keys and not is_complete:
        raise RecordError("no spans", f"a teach {answer} with no spans")
    return Record(text, keys, answer, is_complete, given_hash, value.get("tokens"))


def v2_label_error(label: str) -> Optional[str]:
    """What is wrong with a label in spaCy v2's notation, or None if nothing.

    spaCy v2 wrote "not PERSON" as the entity label `!PERSON` and a missing
    label as `-`; in spaCy v3 and here, "not PERSON" is a span with label
    PERSON and answer reject (spaCy's `ner` raises E869 on `!`)."""
    if label.startswith("!") and len(label) > 1:
        return (
            f"label {label!r} is spaCy v2's notation for 'not {label[1:]}': write the span with label "
            f"{label[1:]!r} and \"answer\": \"reject\" (a teach reject) instead"
        )
    if label == "-":
        return "label '-' is spaCy v2's notation for a missing label: drop the span (unannotated is unknown)"
    return None


def _span_key(span: Any, n_chars: int) -> SpanKey:
    if not isinstance(span, dict):
        raise RecordError("bad field", "a span is not an object")
    start, end, label = span.get("start"), span.get("end"), span.get("label")
    if start is None or end is None or label is None:
        raise RecordError("bad field", "a span needs `start`, `end` and `label`")
    if type(start) is not int or type(end) is not int or not isinstance(label, str) or not label:
        raise RecordError("bad field", "span `start`/`end` must be integers and `label` a non-empty string")
    problem = v2_label_error(label)
    if problem:
        raise RecordError("spaCy v2 label", problem)
    if not 0 <= start < end <= n_chars:
        raise RecordError("bad field", f"span {start}-{end} is empty or outside the text of {n_chars} characters")
    return start, end, label


def parse_tokens(tokens: Any, text: str) -> Tokens:
    """Check a record's `tokens` against its text.

    tokens (Any): The record's `tokens` value.
    text (str): The record's text.
    RETURNS (Tokens): Words, trailing spaces (`ws`, else a gap to the next
        token) and character offsets.
    RAISES (RecordError): "bad tokens", with what is wrong.
    """
    if not isinstance(tokens, list):
        raise RecordError("bad tokens", "`tokens` is not a list")
    try:
        words = [t["text"] for t in tokens]
        starts = [t["start"] for t in tokens]
        ends = [t["end"] for t in tokens]
    except (TypeError, KeyError):
        raise RecordError("bad tokens", "each token needs `text`, `start` and `end`") from None
    previous_end = 0
    for word, start, end in zip(words, starts, ends):
        if type(start) is not int or type(end) is not int or not isinstance(word, str) or not word:
            raise RecordError("bad tokens", "token `start`/`end` must be integers and `text` a non-empty string")
        if start < previous_end or end <= start or end > len(text):
            raise RecordError(
                "bad tokens", f"token {word!r} at {start}-{end} overlaps, is empty or is outside the text"
            )
        previous_end = end
    spaces = [
        bool(t["ws"]) if "ws" in t else (k + 1 < len(tokens) and starts[k + 1] > ends[k])
        for k, t in enumerate(tokens)
    ]
    return Tokens(words, spaces, starts, ends)


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


def input_hash(record: dict) -> Union[int, str]:
    """The record's `_input_hash`, or a hash of its text."""
    if record.get("_input_hash") is not None:
        return record["_input_hash"]
    return hashlib.sha1(record["text"].encode("utf8")).hexdigest()


def jsonl_files(path: Union[str, Path]) -> List[Path]:
    """The JSONL files (plain or .gz) of a path: the file itself, or a folder's
    files in sorted order.

    path (Union[str, Path]): A file or a folder.
    RETURNS (List[Path]): The files.
    """
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")))
    if path.exists():
        return [path]
    raise FileNotFoundError(f"No such file or directory: '{path}'")


def iter_lines(file: Path) -> Iterator[Tuple[int, Any]]:
    """Each non-blank line of a JSONL file, parsed.

    file (Path): A JSONL file, plain or .gz.
    YIELDS (Tuple[int, Any]): The line number and the parsed value, or the
        `json.JSONDecodeError` of a line that is not valid JSON.
    """
    loads = json.loads
    opened = gzip.open(file, "rt", encoding="utf8") if file.name.endswith(".gz") else open(file, encoding="utf8")
    with opened as f:
        for line_no, line in enumerate(f, 1):
            if not line or line.isspace():
                continue
            try:
                yield line_no, loads(line)
            except json.JSONDecodeError as err:
                yield line_no, err


def iter_jsonl(path: Union[str, Path]) -> Iterator[dict]:
    """Read records from a JSONL file (plain or .gz), or every such file in a
    directory, in sorted order. A line that is not valid JSON raises a
    `ValueError` naming the file and line (the reader counts such lines instead).

    path (Union[str, Path]): The file or directory.
    YIELDS (dict): The records.
    """
    for file in jsonl_files(path):
        for line_no, value in iter_lines(file):
            if isinstance(value, json.JSONDecodeError):
                raise ValueError(f"{file}:{line_no}: not valid JSON ({value})") from None
            yield value
