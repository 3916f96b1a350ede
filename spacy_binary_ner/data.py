"""Teach-style answers and complete annotations, read into spaCy `Example`s.

A record is a JSON object with `text`, optional `tokens`, `spans` and an
`answer` ("accept", "reject" or "ignore"). Records of the same sentence (same
`_input_hash`, else the same text) are merged into one `Example`, across all
the files read:

- accepted spans become `reference.ents`, every other token left missing;
- rejected spans go into `reference.spans[incorrect_spans_key]`;
- ignored answers are skipped;
- in a *complete* annotation (a record of a file read as complete, or a record
  with `"complete": true`) the record's spans are all the entities of the text,
  and every other token is "O".

When two answers about a sentence cannot both hold (the same span and label
accepted and rejected, or two overlapping accepts), the answer that comes later
in the input wins. Every record read ends up either used or skipped under one
named reason, counted per file in a `ReadStats` (see `REASONS`); with
`strict=True` any skip but an "ignore" answer raises a `TeachDataError`.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry

from .constants import DEFAULT_INCORRECT_SPANS_KEY, DEFAULT_WEAK_SPANS_KEY
from .propagate import propagate_accepts
from .records import (
    ALIGNMENT_MODES,
    FATAL_REASONS,
    HARMLESS_REASONS,
    OFFSET_UNITS,
    REASONS,
    Record,
    RecordError,
    SpanKey,
    Tokens,
    align_span,
    input_hash,
    iter_jsonl,
    iter_lines,
    jsonl_files,
    parse_record,
    parse_tokens,
    record_doc,
)

# A child of spaCy's logger, so `spacy train --verbose` shows the accounts.
logger = logging.getLogger("spacy.binary_ner")

PathsArg = Union[None, str, Path, Sequence[Union[str, Path]]]

LONG_TEXT_MODES = ("split", "skip")
_SENT_END_CHARS = set("。！？!?.;；…\n")
_MAX_WHERE = 5


class TeachDataError(ValueError):
    """A record was skipped while reading in strict mode."""


@dataclass
class ReadStats:
    """An account of the records read from one source (or all of them).

    records (int): Records read (non-blank lines, valid JSON or not).
    used (int): Records that contributed to an example; `used + sum(skipped)`
        always equals `records`.
    merged (int): Used records that joined an example begun by an earlier one.
    examples (int): Examples made (more than `used - merged` if texts were split).
    skipped (Counter): Skipped records, by reason (see `REASONS`).
    spans (Counter): Spans of the records: "read", "used", and dropped ones by reason.
    changed (Counter): What was adjusted: "span expanded", "span contracted",
        "text split" (texts), "split pieces" (the examples they became).
    where (Dict[str, List[str]]): For each reason, where its first few cases are
        (`file:line`, or `record N` for records given in memory).
    """

    records: int = 0
    examples: int = 0
    used: int = 0
    merged: int = 0
    skipped: Counter = field(default_factory=Counter)
    spans: Counter = field(default_factory=Counter)
    changed: Counter = field(default_factory=Counter)
    where: Dict[str, List[str]] = field(default_factory=dict)

    @property
    def reasons(self) -> Counter:
        """Every count but records/used/merged/examples in one Counter: record
        skips as "skipped: REASON", dropped spans as "span skipped: REASON"."""
        out: Counter = Counter()
        for reason, count in self.skipped.items():
            out[f"skipped: {reason}"] += count
        for reason, count in self.spans.items():
            if reason not in ("read", "used"):
                out[f"span skipped: {reason}"] += count
        out.update(self.changed)
        return out

    def add(self, other: "ReadStats") -> None:
        """Add another account's counts to this one."""
        self.records += other.records
        self.examples += other.examples
        self.used += other.used
        self.merged += other.merged
        self.skipped.update(other.skipped)
        self.spans.update(other.spans)
        self.changed.update(other.changed)
        for reason, places in other.where.items():
            mine = self.where.setdefault(reason, [])
            mine.extend(places[: _MAX_WHERE - len(mine)])

    def to_dict(self) -> Dict[str, Any]:
        """The account as a JSON-serializable dict."""
        return {
            "records": self.records,
            "used": self.used,
            "merged": self.merged,
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "examples": self.examples,
            "spans": dict(sorted(self.spans.items())),
            "changed": dict(sorted(self.changed.items())),
            "where": {k: list(v) for k, v in sorted(self.where.items())},
        }

    def __str__(self) -> str:
        parts = [
            f"{self.records} records: {self.used} used ({self.merged} merged), "
            f"{sum(self.skipped.values())} skipped -> {self.examples} examples"
        ]
        parts += [f"skipped {reason}: {count}" for reason, count in sorted(self.skipped.items())]
        parts += [f"{name}: {count}" for name, count in sorted(self.changed.items())]
        return "; ".join(parts)


class _Answer:
    __slots__ = ("answer", "record", "replaced_accept")

    def __init__(self, answer: str, record: int, replaced_accept: bool = False) -> None:
        self.answer = answer
        self.record = record
        # A reject that replaced an accept of a complete annotation leaves
        # those tokens unknown rather than "O".
        self.replaced_accept = replaced_accept


class _Sentence:
    __slots__ = ("text", "tokens", "answers", "records", "owner", "owner_spans")

    def __init__(self, text: str, tokens: Optional[Tokens]) -> None:
        self.text = text
        self.tokens = tokens
        self.answers: Dict[SpanKey, _Answer] = {}
        self.records: List[int] = []
        self.owner: Optional[int] = None  # the complete record in force
        self.owner_spans: Optional[frozenset] = None


@dataclass
class _RecordState:
    """Where a record came from and what became of it."""

    source: int  # index into TeachReader.sources
    place: Union[int, str]  # line number, or "record N"
    reason: Optional[str] = None  # why it is not used; "skipped" once counted at reading
    n_spans: int = 0
    first_reason: Optional[str] = None  # the reason it was skipped at reading


class TeachReader:
    """Merge teach answers and complete annotations from several sources into
    examples, with an account of every record.

    nlp (Language): Its vocab and, for records without `tokens`, its tokenizer.
    incorrect_spans_key (str): Key of the rejected spans in `reference.spans`.
    alignment (str): Spans whose offsets are not on token boundaries: "strict"
        (skip them), "expand" or "contract" (as `Doc.char_span`'s alignment_mode).
    labels (Optional[Iterable[str]]): If given, spans with other labels are skipped.
    max_length (int): Longest text in tokens (0 for no limit).
    long_texts (str): Texts longer than `max_length`: "split" them at sentence or
        token boundaries, keeping the spans inside, or "skip" them.
    strict (bool): Raise a `TeachDataError` at the first skipped record
        (ignored answers excepted) instead of counting it.
    use_tokens (bool): Use the records' `tokens`; if False, always the tokenizer.
    offsets (str): What span and token offsets count: "chars" (Unicode code
        points, as Python and spaCy count) or "utf16" (UTF-16 code units, as
        JavaScript counts; converted).
    propagate_accepts (bool): Find accepted strings again in the other
        answered texts and add them as weak entities (see
        `spacy_binary_ner.propagate`); the account is in `self.propagated`.
    propagate_min_rate (float): Strings accepted in fewer than this share of
        the places they occur are not propagated.
    propagate_max_nested (float): Strings that, of their places in accepted
        entities, are inside a longer accepted entity more often than this
        share are not propagated.
    propagate_max_rejected (float): Strings rejected with their label in more
        than this share of their answers with it are not propagated (0: one
        reject leaves a string out).
    propagate_unpushed (bool): Also store every other place of a string with
        a label it was accepted with in at least `propagate_min_rate` of its
        places; the pipe gives those cells no "no entity" prior.
    weak_spans_key (str): Key of the weak entities in `reference.spans`; must
        match the pipe's `weak_spans_key`.
    """

    def __init__(
        self,
        nlp: Language,
        *,
        incorrect_spans_key: str = DEFAULT_INCORRECT_SPANS_KEY,
        alignment: str = "strict",
        labels: Optional[Iterable[str]] = None,
        max_length: int = 0,
        long_texts: str = "split",
        strict: bool = False,
        use_tokens: bool = True,
        offsets: str = "chars",
        propagate_accepts: bool = False,
        propagate_min_rate: float = 0.03,
        propagate_max_nested: float = 0.3,
        propagate_max_rejected: float = 0.0,
        propagate_unpushed: bool = False,
        weak_spans_key: str = DEFAULT_WEAK_SPANS_KEY,
    ) -> None:
        if offsets not in OFFSET_UNITS:
            raise ValueError(f"offsets must be one of {OFFSET_UNITS}, not {offsets!r}")
        if alignment not in ALIGNMENT_MODES:
            raise ValueError(f"alignment must be one of {ALIGNMENT_MODES}, not {alignment!r}")
        if long_texts not in LONG_TEXT_MODES:
            raise ValueError(f"long_texts must be one of {LONG_TEXT_MODES}, not {long_texts!r}")
        if max_length < 0:
            raise ValueError(f"max_length must be 0 (no limit) or positive, not {max_length}")
        for name, value in (
            ("propagate_min_rate", propagate_min_rate),
            ("propagate_max_nested", propagate_max_nested),
            ("propagate_max_rejected", propagate_max_rejected),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if propagate_unpushed and not propagate_accepts:
            raise ValueError("propagate_unpushed works with propagate_accepts: set both, or neither")
        self.nlp = nlp
        self.incorrect_spans_key = incorrect_spans_key
        self.alignment = alignment
        self.labels = set(labels) if labels is not None else None
        self.max_length = max_length
        self.long_texts = long_texts
        self.strict = strict
        self.use_tokens = use_tokens
        self.offsets = offsets
        self.propagate_accepts = propagate_accepts
        self.propagate_min_rate = propagate_min_rate
        self.propagate_max_nested = propagate_max_nested
        self.propagate_max_rejected = propagate_max_rejected
        self.propagate_unpushed = propagate_unpushed
        self.weak_spans_key = weak_spans_key
        self.propagated: Counter = Counter()
        self.sources: List[str] = []
        self.complete: List[bool] = []
        self.stats: List[ReadStats] = []
        self._sentences: Dict[Any, _Sentence] = {}
        # text -> (sentence, whether it was keyed by its text, not an _input_hash)
        self._by_text: Dict[str, Tuple[_Sentence, bool]] = {}
        self._order: List[_Sentence] = []
        self._records: List[_RecordState] = []
        self._used: List[bool] = []

    # Reading -----------------------------------------------------------------

    def read_path(self, path: Union[str, Path], *, complete: bool = False) -> None:
        """Read a JSONL file (plain or .gz) or every such file in a directory.

        path (Union[str, Path]): The file or directory.
        complete (bool): Whether its records are complete annotations.
        """
        for file in jsonl_files(path):
            source = self._add_source(str(file), complete)
            for line_no, value in iter_lines(file):
                self._add(value, source, line_no, complete)

    def read_records(self, records: Iterable[Any], *, name: str = "<records>", complete: bool = False) -> None:
        """Read records given in memory; places are reported as `record N`.

        records (Iterable[Any]): The records: dicts, checked here as
            `parse_record` checks them, or `Record`s that `parse_record`
            returned, used as they are (never parsed again; their own
            `complete` holds, and their offsets are code points). Anything
            else is skipped.
        name (str): The source name in the account.
        complete (bool): Whether the records are complete annotations.
        """
        source = self._add_source(name, complete)
        for i, value in enumerate(records, 1):
            self._add(value, source, f"record {i}", complete)

    def _add_source(self, name: str, complete: bool) -> int:
        self.sources.append(name)
        self.complete.append(complete)
        self.stats.append(ReadStats())
        return len(self.sources) - 1

    def _place(self, rec: int) -> str:
        place = self._records[rec].place
        source = self.sources[self._records[rec].source]
        return f"{source}:{place}" if isinstance(place, int) else f"{source} {place}"

    def _note(self, rec: int, reason: str, detail: str = "") -> None:
        stats = self.stats[self._records[rec].source]
        places = stats.where.setdefault(reason, [])
        if len(places) < _MAX_WHERE and self._place(rec) not in places:
            places.append(self._place(rec))
        if (self.strict and reason not in HARMLESS_REASONS) or reason in FATAL_REASONS:
            detail = f" ({detail})" if detail else ""
            raise TeachDataError(f"{self._place(rec)}: {reason}{detail}. Fix: {REASONS[reason]}.")

    def _drop_span(self, rec: int, reason: str, detail: str = "") -> None:
        state = self._records[rec]
        self.stats[state.source].spans[reason] += 1
        if state.reason is None:
            state.reason = reason
        self._note(rec, reason, detail)

    def _add(self, value: Any, source: int, place: Union[int, str], complete: bool) -> None:
        rec = len(self._records)
        state = _RecordState(source, place)
        self._records.append(state)
        self.stats[source].records += 1
        try:
            record = value if isinstance(value, Record) else parse_record(value, complete, self.offsets)
            sentence = self._sentence(record)
        except RecordError as err:
            self.stats[source].skipped[err.reason] += 1
            state.reason = "skipped"
            state.first_reason = err.reason
            self._note(rec, err.reason, err.detail)
            return
        spans = record.spans
        self.stats[source].spans["read"] += len(spans)
        state.n_spans = len(spans)
        sentence.records.append(rec)
        if record.complete:
            span_set = frozenset(spans)
            if sentence.owner is not None and span_set == sentence.owner_spans:
                for _ in spans:
                    self._drop_span(rec, "duplicate answer")
                if not spans:
                    state.reason = "duplicate answer"
                    self._note(rec, "duplicate answer")
                return
            # A new complete annotation replaces the accepts it does not repeat,
            # and the earlier complete annotation as a whole (the spans both
            # give then belong to the later one).
            old = sentence.owner
            replaced = [
                k
                for k, a in sentence.answers.items()
                if a.answer == "accept" and (k not in span_set or (old is not None and a.record == old))
            ]
            for span_key in replaced:
                self._drop_span(sentence.answers.pop(span_key).record, "conflicting answers")
            if old is not None and self._records[old].n_spans == 0 and self._records[old].reason is None:
                self._records[old].reason = "conflicting answers"
                self._note(old, "conflicting answers", "replaced by a later complete annotation")
            sentence.owner, sentence.owner_spans = rec, span_set
        for span_key in spans:
            self._add_answer(sentence, span_key, record.answer, rec)

    def _add_answer(self, sentence: _Sentence, key: SpanKey, answer: str, rec: int) -> None:
        previous = sentence.answers.get(key)
        if previous is None:
            sentence.answers[key] = _Answer(answer, rec)
        elif previous.answer == answer:
            self._drop_span(rec, "duplicate answer")
        else:
            del sentence.answers[key]
            self._drop_span(previous.record, "conflicting answers")
            replaced = previous.answer == "accept" and sentence.owner is not None
            sentence.answers[key] = _Answer(answer, rec, replaced_accept=replaced)

    def _sentence(self, record: Record) -> _Sentence:
        """The sentence a valid record belongs to: by `_input_hash`, or by text
        where one side has no `_input_hash`."""
        given, text = record.input_hash, record.text
        key = given if given is not None else ("text", text)
        sentence = self._sentences.get(key)
        if sentence is None:
            found = self._by_text.get(text)
            if found is not None and (given is None or found[1]):
                sentence = found[0]
                self._sentences[key] = sentence
        if sentence is None:
            tokens = record.tokens if self.use_tokens else None
            sentence = _Sentence(text, parse_tokens(tokens, text) if tokens else None)
            self._sentences[key] = sentence
            self._by_text.setdefault(text, (sentence, given is None))
            self._order.append(sentence)
        elif sentence.text != text:
            raise RecordError("input hash clash", f"_input_hash {key!r}")
        return sentence

    # Building ----------------------------------------------------------------

    def examples(self) -> List[Example]:
        """Build the examples of everything read, and finish the account.
        Call once, after reading.

        RETURNS (List[Example]): One example per sentence (or per piece of a
            split text), in first-seen order.
        """
        examples: List[Example] = []
        used = [False] * len(self._records)
        for sentence in self._order:
            built = self._build(sentence, used)
            examples.extend(built)
            if built:
                self.stats[self._records[sentence.records[0]].source].examples += len(built)
        for rec, state in enumerate(self._records):
            stats = self.stats[state.source]
            if used[rec]:
                stats.used += 1
            elif state.reason != "skipped":
                stats.skipped[state.reason or "conflicting answers"] += 1
        self._used = used
        if self.propagate_accepts:
            self.propagated = propagate_accepts(
                examples,
                weak_spans_key=self.weak_spans_key,
                incorrect_spans_key=self.incorrect_spans_key,
                min_rate=self.propagate_min_rate,
                max_nested=self.propagate_max_nested,
                max_rejected=self.propagate_max_rejected,
                unpushed=self.propagate_unpushed,
            )
        for sentence in self._order:
            first = True
            for rec in sentence.records:
                if used[rec]:
                    if not first:
                        self.stats[self._records[rec].source].merged += 1
                    first = False
        return examples

    def outcomes(self) -> List[Optional[str]]:
        """What became of each record read, in order: None if it was used,
        else the reason it was not (for a record skipped at reading, as for one
        of its spans, the first reason). Call after `examples()`."""
        return [
            None
            if used
            else (state.first_reason if state.reason == "skipped" else state.reason or "conflicting answers")
            for used, state in zip(self._used, self._records)
        ]

    def total(self) -> ReadStats:
        """The account of all sources together."""
        total = ReadStats()
        for stats in self.stats:
            total.add(stats)
        return total

    def _build(self, sentence: _Sentence, used: List[bool]) -> List[Example]:
        doc, starts, ends = record_doc(self.nlp, sentence.text, sentence.tokens)
        owner = sentence.owner
        if len(doc) == 0:
            for rec in sentence.records:
                if self._records[rec].reason is None:
                    self._records[rec].reason = "no tokens"
                    self._note(rec, "no tokens")
            return []
        accepts: List[Tuple[int, int, str, int]] = []
        rejects: Dict[Tuple[int, int, str], int] = {}
        unknown: List[Tuple[int, int]] = []
        # Latest answers first: where two answers cannot both hold, the later wins.
        for (start, end, label), ans in reversed(list(sentence.answers.items())):
            rec = ans.record
            if self.labels is not None and label not in self.labels:
                self._drop_span(rec, "unknown label", f"label {label!r}")
                if ans.answer == "accept" and owner is not None:
                    unknown.append(align_span(starts, ends, start, end, "expand") or (0, 0))
                continue
            tok = align_span(starts, ends, start, end, self.alignment)
            if tok is None:
                self._drop_span(rec, "misaligned span", f"characters {start}-{end}")
                if ans.answer == "accept" and owner is not None:
                    unknown.append(align_span(starts, ends, start, end, "expand") or (0, 0))
                continue
            if self.alignment != "strict" and align_span(starts, ends, start, end, "strict") is None:
                name = "span expanded" if self.alignment == "expand" else "span contracted"
                self.stats[self._records[rec].source].changed[name] += 1
            i, j = tok
            if ans.answer == "reject":
                if (i, j, label) in rejects:
                    self._drop_span(rec, "duplicate answer")
                    continue
                rejects[(i, j, label)] = rec
                if ans.replaced_accept:
                    unknown.append((i, j))
            else:
                accepts.append((i, j, label, rec))
        taken = [False] * len(doc)
        kept: List[Tuple[int, int, str, int]] = []
        for i, j, label, rec in accepts:
            reject = rejects.get((i, j, label))
            if reject is not None and reject > rec:
                self._drop_span(rec, "conflicting answers", "aligned onto the same tokens as a later reject")
                if owner is not None:
                    unknown.append((i, j))
            elif any(taken[i:j]):
                self._drop_span(rec, "overlapping accept")
                if owner is not None:
                    unknown.append((i, j))
            else:
                taken[i:j] = [True] * (j - i)
                kept.append((i, j, label, rec))
        # A later accept wins over an earlier reject aligned onto the same tokens.
        for i, j, label, rec in kept:
            reject = rejects.get((i, j, label))
            if reject is not None and reject < rec:
                self._drop_span(
                    rejects.pop((i, j, label)), "conflicting answers", "aligned onto the same tokens as a later accept"
                )
        spans = [(i, j, label, rec, "accept") for i, j, label, rec in kept]
        spans += [(i, j, label, rec, "reject") for (i, j, label), rec in rejects.items()]
        complete = owner is not None
        pieces = [(0, len(doc))]
        if self.max_length and len(doc) > self.max_length:
            if self.long_texts == "skip":
                for rec in sentence.records:
                    self._records[rec].reason = "text too long"
                    self._note(rec, "text too long", f"{len(doc)} tokens > max_length {self.max_length}")
                return []
            pieces = self._cut(doc, [(i, j) for i, j, *_ in spans], self.max_length)
            stats = self.stats[self._records[sentence.records[0]].source]
            stats.changed["text split"] += 1
            stats.changed["split pieces"] += len(pieces)
        examples = []
        for a, b in pieces:
            inside = [s for s in spans if a <= s[0] and s[1] <= b]
            if len(pieces) > 1:
                for s in spans:
                    if s[0] < b and s[1] > a and not (a <= s[0] and s[1] <= b) and s[0] >= a:
                        self._drop_span(s[3], "span cut by split")
                        if complete and s[4] == "accept":
                            unknown.append((s[0], s[1]))
            if not inside and not complete:
                continue
            piece = doc if (a, b) == (0, len(doc)) else _slice_doc(doc, a, b)
            examples.append(self._example(piece, inside, unknown, complete, a))
            for s in inside:
                used[s[3]] = True
                self.stats[self._records[s[3]].source].spans["used"] += 1
        if complete and examples:
            used[owner] = True
        return examples

    def _example(self, doc: Doc, spans: list, unknown: List[Tuple[int, int]], complete: bool, offset: int) -> Example:
        reference = doc.copy()
        n = len(doc)
        ents = [
            Span(reference, i - offset, j - offset, label=label) for i, j, label, _, kind in spans if kind == "accept"
        ]
        missing = None
        if complete and unknown:
            taken = {t for e in ents for t in range(e.start, e.end)}
            toks = sorted({t - offset for i, j in unknown for t in range(i, j) if 0 <= t - offset < n} - taken)
            missing = [Span(reference, t, t + 1) for t in toks]
        reference.set_ents(ents, missing=missing, default="outside" if complete else "missing")
        rejects = [
            Span(reference, i - offset, j - offset, label=label) for i, j, label, _, kind in spans if kind == "reject"
        ]
        if rejects:
            reference.spans[self.incorrect_spans_key] = rejects
        return Example(doc, reference)

    @staticmethod
    def _cut(doc: Doc, spans: List[Tuple[int, int]], max_length: int) -> List[Tuple[int, int]]:
        """Pieces [a, b) of at most max_length tokens, cut after a sentence end
        where possible, else at a token boundary, never inside a span if avoidable."""
        n = len(doc)
        inside = [False] * (n + 1)  # inside[k]: a cut before token k splits a span
        for i, j in spans:
            for k in range(i + 1, j):
                inside[k] = True
        pieces = []
        a = 0
        while n - a > max_length:
            limit = a + max_length
            candidates = [k for k in range(limit, a, -1) if not inside[k]]
            sent_ends = [k for k in candidates if doc[k - 1].text and doc[k - 1].text[-1] in _SENT_END_CHARS]
            b = sent_ends[0] if sent_ends else (candidates[0] if candidates else limit)
            pieces.append((a, b))
            a = b
        pieces.append((a, n))
        return pieces


def _slice_doc(doc: Doc, a: int, b: int) -> Doc:
    words = [t.text for t in doc[a:b]]
    spaces = [bool(t.whitespace_) for t in doc[a:b]]
    if spaces:
        spaces[-1] = False
    return Doc(doc.vocab, words=words, spaces=spaces)


def records_to_examples(
    nlp: Language,
    records: Iterable[Union[dict, Record]],
    *,
    complete: bool = False,
    incorrect_spans_key: str = DEFAULT_INCORRECT_SPANS_KEY,
    stats: Optional[ReadStats] = None,
    alignment: str = "strict",
    labels: Optional[Iterable[str]] = None,
    max_length: int = 0,
    long_texts: str = "split",
    strict: bool = False,
    offsets: str = "chars",
    propagate_accepts: bool = False,
    propagate_min_rate: float = 0.03,
    propagate_max_nested: float = 0.3,
    propagate_max_rejected: float = 0.0,
    propagate_unpushed: bool = False,
) -> List[Example]:
    """Merge records by sentence and turn them into training examples.

    nlp (Language): Its vocab and, for records without `tokens`, its tokenizer.
    records (Iterable[Union[dict, Record]]): Teach answers, or complete
        annotations: dicts, or `Record`s from `parse_record` (not parsed again).
    complete (bool): Whether the records are complete annotations.
    incorrect_spans_key (str): Key of the rejected spans in `reference.spans`.
    stats (Optional[ReadStats]): The account is added here if given.
    alignment, labels, max_length, long_texts, strict, offsets,
        propagate_accepts, propagate_min_rate, propagate_max_nested,
        propagate_max_rejected, propagate_unpushed: See `TeachReader`.
    RETURNS (List[Example]): One example per sentence, in first-seen order.
    """
    reader = TeachReader(
        nlp,
        incorrect_spans_key=incorrect_spans_key,
        alignment=alignment,
        labels=labels,
        max_length=max_length,
        long_texts=long_texts,
        strict=strict,
        offsets=offsets,
        propagate_accepts=propagate_accepts,
        propagate_min_rate=propagate_min_rate,
        propagate_max_nested=propagate_max_nested,
        propagate_max_rejected=propagate_max_rejected,
        propagate_unpushed=propagate_unpushed,
    )
    reader.read_records(records, complete=complete)
    examples = reader.examples()
    if stats is not None:
        stats.add(reader.total())
    return examples


def _as_paths(value: PathsArg) -> List[Union[str, Path]]:
    if value is None or value == "":
        return []
    if isinstance(value, (str, Path)):
        return [value]
    return [v for v in value if v]


def read_teach_data(
    nlp: Language,
    paths: PathsArg = None,
    complete_paths: PathsArg = None,
    **settings: Any,
) -> Tuple[List[Example], TeachReader]:
    """Read teach files and complete files into examples, merged across files.

    nlp (Language): Its vocab and tokenizer.
    paths (PathsArg): Teach answers: JSONL files or folders.
    complete_paths (PathsArg): Complete annotations: JSONL files or folders.
    settings: Keyword arguments of `TeachReader`.
    RETURNS (Tuple[List[Example], TeachReader]): The examples, and the reader
        holding the account (`reader.sources`, `reader.stats`, `reader.total()`).
    """
    reader = TeachReader(nlp, **settings)
    for path in _as_paths(paths):
        reader.read_path(path, complete=False)
    for path in _as_paths(complete_paths):
        reader.read_path(path, complete=True)
    return reader.examples(), reader


@registry.readers("spacy-binary-ner.TeachCorpus.v1")
def create_teach_corpus(
    path: PathsArg = None,
    complete_path: PathsArg = None,
    incorrect_spans_key: str = DEFAULT_INCORRECT_SPANS_KEY,
    limit: int = 0,
    alignment: str = "strict",
    labels: Optional[List[str]] = None,
    max_length: int = 0,
    long_texts: str = "split",
    strict: bool = False,
    use_tokens: bool = True,
    offsets: str = "chars",
    propagate_accepts: bool = False,
    propagate_min_rate: float = 0.03,
    propagate_max_nested: float = 0.3,
    propagate_max_rejected: float = 0.0,
    propagate_unpushed: bool = False,
    weak_spans_key: str = DEFAULT_WEAK_SPANS_KEY,
) -> Callable[[Language], Iterable[Example]]:
    """Read teach answers and complete annotations for `spacy train`. Records
    of the same sentence are merged across all the files; the account of every
    file is logged.

    path (PathsArg): JSONL file(s) or folder(s) of teach answers (plain or .gz).
    complete_path (PathsArg): JSONL file(s) or folder(s) of complete annotations,
        every entity marked (e.g. a gold corpus).
    incorrect_spans_key (str): Must match the pipe's `incorrect_spans_key`.
    limit (int): Use at most this many examples (0 for all).
    alignment (str): "strict" (skip spans off token boundaries), "expand" or "contract".
    labels (Optional[List[str]]): If given, spans with other labels are skipped.
    max_length (int): Longest text in tokens (0 for no limit).
    long_texts (str): "split" longer texts or "skip" them.
    strict (bool): Raise at the first skipped record (ignore answers excepted).
    use_tokens (bool): Use the records' `tokens`; if false, the pipeline's tokenizer.
    offsets (str): "chars" (span and token offsets in Unicode code points) or
        "utf16" (in UTF-16 code units, as JavaScript tools write them).
    propagate_accepts (bool): Add accepted strings found again in other
        answered texts as weak entities (trained with the pipe's `weak_weight`).
    propagate_min_rate (float): Leave out strings accepted in fewer than this
        share of the places they occur.
    propagate_max_nested (float): Leave out strings that, of their places in
        accepted entities, are inside a longer one more often than this share.
    propagate_max_rejected (float): Leave out strings rejected with their label
        in more than this share of their answers with it (0: rejected once).
    propagate_unpushed (bool): Spare from the "no entity" prior every place of
        a string with a label it was accepted with in at least
        `propagate_min_rate` of its places.
    weak_spans_key (str): Must match components.binary_ner.weak_spans_key.
    RETURNS (Callable[[Language], Iterable[Example]]): The corpus.
    """
    cache: Dict[int, List[Example]] = {}
    settings = dict(
        incorrect_spans_key=incorrect_spans_key,
        alignment=alignment,
        labels=labels,
        max_length=max_length,
        long_texts=long_texts,
        strict=strict,
        use_tokens=use_tokens,
        offsets=offsets,
        propagate_accepts=propagate_accepts,
        propagate_min_rate=propagate_min_rate,
        propagate_max_nested=propagate_max_nested,
        propagate_max_rejected=propagate_max_rejected,
        propagate_unpushed=propagate_unpushed,
        weak_spans_key=weak_spans_key,
    )
    TeachReader(Language(), **settings)  # fail early on bad settings

    def read(nlp: Language) -> Iterator[Example]:
        if not _as_paths(path) and not _as_paths(complete_path):
            raise ValueError(
                "spacy-binary-ner.TeachCorpus.v1 needs a `path` (teach answers) or a "
                "`complete_path` (complete annotations), or both: set them in "
                "[corpora] or with --paths.train / --paths.dev on the command line."
            )
        if id(nlp) not in cache:
            examples, reader = read_teach_data(nlp, path, complete_path, **settings)
            for source, stats in zip(reader.sources, reader.stats):
                logger.info("Read %s: %s", source, stats)
                dropped = sum(n for reason, n in stats.skipped.items() if reason not in HARMLESS_REASONS)
                if dropped:
                    logger.warning(
                        "%s: %d of %d records skipped (%s); first places: %s",
                        source,
                        dropped,
                        stats.records,
                        ", ".join(f"{r} {n}" for r, n in sorted(stats.skipped.items()) if r not in HARMLESS_REASONS),
                        "; ".join(f"{r}: {p[0]}" for r, p in sorted(stats.where.items()) if r not in HARMLESS_REASONS),
                    )
            if reader.propagated:
                logger.info(
                    "Accepted strings propagated as weak entities: %s",
                    ", ".join(f"{name} {n}" for name, n in sorted(reader.propagated.items())),
                )
            cache.clear()
            cache[id(nlp)] = examples[:limit] if limit else examples
        for eg in cache[id(nlp)]:
            yield eg.copy()

    return read


__all__ = [
    "ALIGNMENT_MODES",
    "LONG_TEXT_MODES",
    "OFFSET_UNITS",
    "REASONS",
    "ReadStats",
    "TeachDataError",
    "TeachReader",
    "create_teach_corpus",
    "input_hash",
    "iter_jsonl",
    "read_teach_data",
    "records_to_examples",
]
