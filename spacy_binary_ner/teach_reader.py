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
  and every other token is "O";
- a record with `"complete": [labels]` is complete for those labels only: its
  spans become entities, the tokens stay missing, and
  `reference.spans[COMPLETE_LABELS_KEY]` holds, per label, the runs of tokens
  where every span of that label is known (see `targets`).

When two answers about a sentence cannot both hold (the same span and label
accepted and rejected, or two overlapping accepts), the answer that comes later
in the input wins. Every record read ends up either used or skipped under one
named reason, counted per file in a `ReadStats` (see `REASONS`); with
`strict=True` any skip but an "ignore" answer raises a `TeachDataError`. A
record is used only where all its fields agree (`records.parse_record`): its
doc has the record's text, and each entity the characters of its span. Labels
are case-sensitive; labels that differ only in case are a warning in the
account (`WARNINGS`), an error with `strict=True`. How the reader reads is one
`ReaderSettings`.
"""

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example

from .constants import COMPLETE_LABELS_KEY
from .propagate import propagate_accepts
from .reader_settings import ReaderSettings
from .readstats import MAX_WHERE, ReadStats, TeachDataError
from .records import (
    FATAL_REASONS,
    HARMLESS_REASONS,
    REASONS,
    WARNINGS,
    Record,
    RecordError,
    SpanKey,
    Tokens,
    align_span,
    check_finite,
    iter_lines,
    jsonl_files,
    parse_record,
    parse_tokens,
    record_doc,
)

PathsArg = Union[None, str, Path, Sequence[Union[str, Path]]]

_SENT_END_CHARS = set("。！？!?.;；…\n")


class _Answer:
    __slots__ = ("answer", "record", "replaced_accept")

    def __init__(self, answer: str, record: int, replaced_accept: bool = False) -> None:
        self.answer = answer
        self.record = record
        # A reject that replaced an accept of a complete annotation leaves
        # those tokens unknown rather than "O".
        self.replaced_accept = replaced_accept


class _Sentence:
    __slots__ = ("text", "tokens", "answers", "records", "owner", "owner_spans", "owner_labels")

    def __init__(self, text: str, tokens: Optional[Tokens]) -> None:
        self.text = text
        self.tokens = tokens
        self.answers: Dict[SpanKey, _Answer] = {}
        self.records: List[int] = []
        self.owner: Optional[int] = None  # the complete record in force
        self.owner_spans: Optional[frozenset] = None
        self.owner_labels: Optional[Tuple[str, ...]] = None  # None: complete for every label


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
    settings (Optional[ReaderSettings]): How to read (the defaults if None).
    overrides: Fields of `ReaderSettings` to set (on top of `settings`).

    The account is in `self.sources`, `self.complete`, `self.stats` (one per
    source) and, with `propagate_accepts`, `self.propagated`.
    """

    def __init__(self, nlp: Language, settings: Optional[ReaderSettings] = None, **overrides: Any) -> None:
        if settings is None:
            settings = ReaderSettings(**overrides)
        elif overrides:
            settings = replace(settings, **overrides)
        self.nlp = nlp
        self.settings = settings
        self._labels = set(settings.labels) if settings.labels is not None else None
        # Each label read, by its lowercase form: the first place of each.
        self._seen_labels: Dict[str, Dict[str, int]] = {}
        # The first checked tokens of each text: the same tokens again are not checked again.
        self._checked_tokens: Dict[str, Tokens] = {}
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
            self._add(value, source, f"record {i}", complete, in_memory=True)

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
        if len(places) < MAX_WHERE and self._place(rec) not in places:
            places.append(self._place(rec))
        if (self.settings.strict and reason not in HARMLESS_REASONS) or reason in FATAL_REASONS:
            detail = f" ({detail})" if detail else ""
            fix = REASONS[reason] if reason in REASONS else WARNINGS[reason]
            raise TeachDataError(f"{self._place(rec)}: {reason}{detail}. Fix: {fix}.")

    def _drop_span(self, rec: int, reason: str, detail: str = "") -> None:
        state = self._records[rec]
        self.stats[state.source].spans[reason] += 1
        if state.reason is None:
            state.reason = reason
        self._note(rec, reason, detail)

    def _add(self, value: Any, source: int, place: Union[int, str], complete: bool, in_memory: bool = False) -> None:
        rec = len(self._records)
        state = _RecordState(source, place)
        self._records.append(state)
        self.stats[source].records += 1
        try:
            if isinstance(value, Record):
                record = value
                if record.answer == "ignore":
                    raise RecordError("ignore answer")
                if record.complete and record.answer == "reject":
                    raise RecordError("rejected complete annotation")
            else:
                if in_memory:  # a file's lines were checked as they were decoded
                    check_finite(value)
                record = parse_record(value, complete, self.settings.offsets, self._checked_tokens)
                if record.parsed_tokens is not None:
                    self._checked_tokens.setdefault(record.text, record.parsed_tokens)
            sentence = self._sentence(record)
        except RecordError as err:
            self.stats[source].skipped[err.reason] += 1
            state.reason = "skipped"
            state.first_reason = err.reason
            self._note(rec, err.reason, err.detail)
            return
        spans = record.spans
        stats = self.stats[source]
        stats.spans["read"] += len(spans)
        for _, _, label in spans:
            stats.labels[label] += 1
            if label not in self._seen_labels.get(label.lower(), ()):
                self._new_label(label, rec)
        state.n_spans = len(spans)
        sentence.records.append(rec)
        if record.complete:
            span_set = frozenset(spans)
            same_labels = sentence.owner_labels == record.complete_labels
            if sentence.owner is not None and span_set == sentence.owner_spans and same_labels:
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
            sentence.owner, sentence.owner_spans, sentence.owner_labels = rec, span_set, record.complete_labels
        for span_key in spans:
            self._add_answer(sentence, span_key, record.answer, rec)

    def _new_label(self, label: str, rec: int) -> None:
        alike = self._seen_labels.setdefault(label.lower(), {})
        alike[label] = rec
        if len(alike) > 1:
            first = [self._place(r) for other, r in alike.items() if other != label]
            self._note(
                rec, "labels differ only in case", f"{label!r} here, {', '.join(map(repr, alike))} first at {first[0]}"
            )

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
            tokens = None
            if self.settings.use_tokens and record.tokens:
                tokens = record.parsed_tokens or parse_tokens(record.tokens, text)
            sentence = _Sentence(text, tokens)
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
        if self.settings.propagate_accepts:
            self.propagated = propagate_accepts(
                examples,
                weak_spans_key=self.settings.weak_spans_key,
                incorrect_spans_key=self.settings.incorrect_spans_key,
                min_rate=self.settings.propagate_min_rate,
                max_nested=self.settings.propagate_max_nested,
                max_rejected=self.settings.propagate_max_rejected,
                unpushed=self.settings.propagate_unpushed,
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
            if self._labels is not None and label not in self._labels:
                self._drop_span(rec, "unknown label", _unknown_label(label, self._labels))
                if ans.answer == "accept" and owner is not None:
                    unknown.append(align_span(starts, ends, start, end, "expand") or (0, 0))
                continue
            tok = align_span(starts, ends, start, end, self.settings.alignment)
            if tok is None:
                self._drop_span(rec, "misaligned span", f"characters {start}-{end}")
                if ans.answer == "accept" and owner is not None:
                    unknown.append(align_span(starts, ends, start, end, "expand") or (0, 0))
                continue
            if self.settings.alignment != "strict" and align_span(starts, ends, start, end, "strict") is None:
                name = "span expanded" if self.settings.alignment == "expand" else "span contracted"
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
        if self.settings.max_length and len(doc) > self.settings.max_length:
            if self.settings.long_texts == "skip":
                for rec in sentence.records:
                    self._records[rec].reason = "text too long"
                    self._note(rec, "text too long", f"{len(doc)} tokens > max_length {self.settings.max_length}")
                return []
            pieces = self._cut(doc, [(i, j) for i, j, *_ in spans], self.settings.max_length)
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
            examples.append(self._example(piece, inside, unknown, complete, a, sentence.owner_labels))
            for s in inside:
                used[s[3]] = True
                self.stats[self._records[s[3]].source].spans["used"] += 1
        if complete and examples:
            used[owner] = True
        return examples

    def _example(
        self,
        doc: Doc,
        spans: list,
        unknown: List[Tuple[int, int]],
        complete: bool,
        offset: int,
        complete_labels: Optional[Tuple[str, ...]] = None,
    ) -> Example:
        reference = doc.copy()
        n = len(doc)
        ents = [
            Span(reference, i - offset, j - offset, label=label) for i, j, label, _, kind in spans if kind == "accept"
        ]
        missing = None
        toks: List[int] = []
        if complete and unknown:
            taken = {t for e in ents for t in range(e.start, e.end)}
            toks = sorted({t - offset for i, j in unknown for t in range(i, j) if 0 <= t - offset < n} - taken)
            missing = [Span(reference, t, t + 1) for t in toks]
        outside = complete and complete_labels is None
        reference.set_ents(ents, missing=missing, default="outside" if outside else "missing")
        if complete and complete_labels is not None:
            runs = _runs(n, set(toks))
            reference.spans[COMPLETE_LABELS_KEY] = [
                Span(reference, a, b, label=label) for label in complete_labels for a, b in runs
            ]
        rejects = [
            Span(reference, i - offset, j - offset, label=label) for i, j, label, _, kind in spans if kind == "reject"
        ]
        if rejects:
            reference.spans[self.settings.incorrect_spans_key] = rejects
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


def _unknown_label(label: str, labels: Iterable[str]) -> str:
    alike = [known for known in labels if known.lower() == label.lower()]
    hint = f"; labels are case-sensitive: {alike[0]!r} is known" if alike else ""
    return f"label {label!r}{hint}"


def _slice_doc(doc: Doc, a: int, b: int) -> Doc:
    words = [t.text for t in doc[a:b]]
    spaces = [bool(t.whitespace_) for t in doc[a:b]]
    if spaces:
        spaces[-1] = False
    return Doc(doc.vocab, words=words, spaces=spaces)


def records_to_examples(
    nlp: Language,
    records: Iterable[Union[dict, Record]],
    settings: Optional[ReaderSettings] = None,
    *,
    complete: bool = False,
    stats: Optional[ReadStats] = None,
    **overrides: Any,
) -> List[Example]:
    """Merge records by sentence and turn them into training examples.

    nlp (Language): Its vocab and, for records without `tokens`, its tokenizer.
    records (Iterable[Union[dict, Record]]): Teach answers, or complete
        annotations: dicts, or `Record`s from `parse_record` (not parsed again).
    settings (Optional[ReaderSettings]): How to read (the defaults if None).
    complete (bool): Whether the records are complete annotations.
    stats (Optional[ReadStats]): The account is added here if given.
    overrides: Fields of `ReaderSettings` to set (on top of `settings`).
    RETURNS (List[Example]): One example per sentence, in first-seen order.
    """
    reader = TeachReader(nlp, settings, **overrides)
    reader.read_records(records, complete=complete)
    examples = reader.examples()
    if stats is not None:
        stats.add(reader.total())
    return examples


def as_paths(value: PathsArg) -> List[Union[str, Path]]:
    """The paths of a `path` setting: none, one, or several; empty ones left out.

    value (PathsArg): None, "", a path, or a sequence of paths.
    RETURNS (List[Union[str, Path]]): The paths.
    """
    if value is None or value == "":
        return []
    if isinstance(value, (str, Path)):
        return [value]
    return [v for v in value if v]


def read_teach_data(
    nlp: Language,
    paths: PathsArg = None,
    complete_paths: PathsArg = None,
    settings: Optional[ReaderSettings] = None,
    **overrides: Any,
) -> Tuple[List[Example], TeachReader]:
    """Read teach files and complete files into examples, merged across files.

    nlp (Language): Its vocab and tokenizer.
    paths (PathsArg): Teach answers: JSONL files or folders.
    complete_paths (PathsArg): Complete annotations: JSONL files or folders.
    settings (Optional[ReaderSettings]): How to read (the defaults if None).
    overrides: Fields of `ReaderSettings` to set (on top of `settings`).
    RETURNS (Tuple[List[Example], TeachReader]): The examples, and the reader
        holding the account (`reader.sources`, `reader.stats`, `reader.total()`).
    """
    reader = TeachReader(nlp, settings, **overrides)
    for path in as_paths(paths):
        reader.read_path(path, complete=False)
    for path in as_paths(complete_paths):
        reader.read_path(path, complete=True)
    return reader.examples(), reader


__all__ = ["PathsArg", "TeachReader", "as_paths", "read_teach_data", "records_to_examples"]


def _runs(n: int, holes: set) -> List[Tuple[int, int]]:
    """The maximal runs [a, b) of range(n) that hold no token of `holes`."""
    runs: List[Tuple[int, int]] = []
    start = None
    for t in range(n + 1):
        if t < n and t not in holes:
            if start is None:
                start = t
        elif start is not None:
            runs.append((start, t))
            start = None
    return runs
