"""Teach-style answers and complete annotations, read into spaCy `Example`s.

A record is a JSON object with `text`, optional `tokens`, `spans` and an
`answer` ("accept", "reject" or "ignore"); records of the same sentence (same
`_input_hash`, else the same text) are merged into one `Example`:

- accepted spans become `reference.ents`, every other token left missing;
- rejected spans go into `reference.spans[incorrect_spans_key]`;
- ignored answers are skipped;
- in a *complete* annotation (a file read with `complete=True`) the record's
  spans are all the entities of the text, and every other token is "O".

If the same span and label is both accepted and rejected, the answer that comes
later in the input wins; such cases are counted in `ReadStats`.
"""
import gzip
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry

from .pipeline import DEFAULT_INCORRECT_SPANS_KEY

logger = logging.getLogger("spacy_binary_ner")

SpanKey = Tuple[int, int, str]


@dataclass
class ReadStats:
    """What happened to the records read: how many were read and used, and
    how many were skipped or changed, by reason."""

    records: int = 0
    examples: int = 0
    reasons: Counter = field(default_factory=Counter)

    def __str__(self) -> str:
        parts = [f"{self.records} records -> {self.examples} examples"]
        parts += [f"{reason}: {count}" for reason, count in sorted(self.reasons.items())]
        return "; ".join(parts)


def iter_jsonl(path: Union[str, Path]) -> Iterator[dict]:
    """Read records from a JSONL file (plain or .gz), or every such file in a
    directory, in sorted order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")))
    elif path.exists():
        files = [path]
    else:
        raise FileNotFoundError(f"No such file or directory: '{path}'")
    for file in files:
        opener = gzip.open if file.name.endswith(".gz") else open
        with opener(file, "rt", encoding="utf8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{file}:{line_no}: not valid JSON ({err})") from None


def input_hash(record: dict) -> Union[int, str]:
    """The record's `_input_hash`, or a hash of its text."""
    if "_input_hash" in record:
        return record["_input_hash"]
    return hashlib.sha1(record["text"].encode("utf8")).hexdigest()


class _Merged:
    __slots__ = ("record", "answers", "complete")

    def __init__(self, record: dict, complete: bool) -> None:
        self.record = record
        self.answers: Dict[SpanKey, str] = {}
        self.complete = complete


def records_to_examples(
    nlp: Language,
    records: Iterable[dict],
    *,
    complete: bool = False,
    incorrect_spans_key: str = DEFAULT_INCORRECT_SPANS_KEY,
    stats: Optional[ReadStats] = None,
) -> List[Example]:
    """Merge records by sentence and turn them into training examples.

    nlp (Language): Its vocab and, for records without `tokens`, its tokenizer.
    records (Iterable[dict]): Teach answers, or complete annotations.
    complete (bool): Whether the records are complete annotations.
    incorrect_spans_key (str): Key of the rejected spans in `reference.spans`.
    stats (Optional[ReadStats]): Counts are added here if given.
    RETURNS (List[Example]): One example per sentence, in first-seen order.
    """
    stats = stats if stats is not None else ReadStats()
    merged: Dict[Union[int, str], _Merged] = {}
    for record in records:
        stats.records += 1
        answer = record.get("answer", "accept" if complete else None)
        if answer not in ("accept", "reject", "ignore"):
            stats.reasons["skipped: missing or unknown answer"] += 1
            continue
        if answer == "ignore":
            stats.reasons["skipped: ignore answer"] += 1
            continue
        if not record.get("text"):
            stats.reasons["skipped: empty text"] += 1
            continue
        key = input_hash(record)
        if key in merged:
            stats.reasons["merged into an earlier record"] += 1
        else:
            merged[key] = _Merged(record, complete)
        answers = merged[key].answers
        for span in record.get("spans", []):
            span_key = (span["start"], span["end"], span["label"])
            previous = answers.get(span_key)
            if previous is not None and previous != answer:
                stats.reasons["conflicting answers: later answer kept"] += 1
            elif previous == answer:
                stats.reasons["duplicate answer merged"] += 1
            answers.pop(span_key, None)
            answers[span_key] = answer
    examples = []
    for item in merged.values():
        eg = _make_example(nlp, item, incorrect_spans_key, stats)
        if eg is not None:
            examples.append(eg)
    stats.examples += len(examples)
    return examples


def _make_doc(nlp: Language, record: dict) -> Tuple[Doc, Dict[int, int], Dict[int, int]]:
    tokens = record.get("tokens")
    if tokens:
        words = [t["text"] for t in tokens]
        spaces = [
            i + 1 < len(tokens) and tokens[i + 1]["start"] > t["end"]
            for i, t in enumerate(tokens)
        ]
        doc = Doc(nlp.vocab, words=words, spaces=spaces)
        starts = {t["start"]: i for i, t in enumerate(tokens)}
        ends = {t["end"]: i for i, t in enumerate(tokens)}
    else:
        doc = nlp.make_doc(record["text"])
        starts = {t.idx: t.i for t in doc}
        ends = {t.idx + len(t): t.i for t in doc}
    return doc, starts, ends


def _make_example(
    nlp: Language, item: _Merged, incorrect_spans_key: str, stats: ReadStats
) -> Optional[Example]:
    doc, starts, ends = _make_doc(nlp, item.record)
    if len(doc) == 0:
        stats.reasons["skipped: no tokens"] += 1
        return None
    accepts: List[Span] = []
    rejects: List[Span] = []
    taken = [False] * len(doc)
    for (start, end, label), answer in item.answers.items():
        if start not in starts or end not in ends or ends[end] < starts[start]:
            stats.reasons["span skipped: offsets not on token boundaries"] += 1
            continue
        span = Span(doc, starts[start], ends[end] + 1, label=label)
        if answer == "reject":
            rejects.append(span)
        elif any(taken[span.start : span.end]):
            stats.reasons["span skipped: accept overlaps an earlier accept"] += 1
        else:
            taken[span.start : span.end] = [True] * len(span)
            accepts.append(span)
    if not accepts and not rejects and not item.complete:
        stats.reasons["skipped: no usable span"] += 1
        return None
    reference = doc.copy()
    reference.set_ents(
        [Span(reference, s.start, s.end, label=s.label) for s in accepts],
        default="outside" if item.complete else "missing",
    )
    if rejects:
        reference.spans[incorrect_spans_key] = [
            Span(reference, s.start, s.end, label=s.label) for s in rejects
        ]
    return Example(doc, reference)


@registry.readers("spacy-binary-ner.TeachCorpus.v1")
def create_teach_corpus(
    path: Optional[Union[str, Path]] = None,
    complete_path: Optional[Union[str, Path]] = None,
    incorrect_spans_key: str = DEFAULT_INCORRECT_SPANS_KEY,
    limit: int = 0,
) -> Callable[[Language], Iterable[Example]]:
    """Read teach answers and complete annotations for `spacy train`.

    path (Optional[Union[str, Path]]): JSONL file or directory of teach answers.
    complete_path (Optional[Union[str, Path]]): JSONL file or directory of complete
        annotations, every entity marked (e.g. a gold corpus).
    incorrect_spans_key (str): Must match the pipe's `incorrect_spans_key`.
    limit (int): Use at most this many examples of each kind (0 for all).
    RETURNS (Callable[[Language], Iterable[Example]]): The corpus.
    """
    cache: Dict[int, List[Example]] = {}

    def read(nlp: Language) -> Iterator[Example]:
        if not path and not complete_path:
            raise ValueError(
                "spacy-binary-ner.TeachCorpus.v1 needs a `path` (teach answers) or a "
                "`complete_path` (complete annotations), or both: set them in "
                "[corpora] or with --paths.train / --paths.dev on the command line."
            )
        if id(nlp) not in cache:
            examples: List[Example] = []
            for source, complete in ((path, False), (complete_path, True)):
                if not source:
                    continue
                stats = ReadStats()
                found = records_to_examples(
                    nlp,
                    iter_jsonl(source),
                    complete=complete,
                    incorrect_spans_key=incorrect_spans_key,
                    stats=stats,
                )
                logger.info("Read %s: %s", source, stats)
                examples.extend(found[:limit] if limit else found)
            cache.clear()
            cache[id(nlp)] = examples
        for eg in cache[id(nlp)]:
            yield eg.copy()

    return read
