"""Relation answers read into training examples, and the reader registered
for `spacy train` (`spacy-binary-ner.RelCorpus.v1`).

A record is the teach format's (`records.parse_record`: `text`, optional
`tokens`, `spans` of entities, `answer`, `complete`) with `relations`, a list
of `{"head", "child", "label"}`:

- a teach answer: `"answer"` accept, reject or ignore applies to each of its
  relations (usually one: the question asked). Every other pair of its
  entities stays unknown;
- a complete annotation (`"complete": true`, or every record of a file read
  as complete): its relations are all the relations among its entities, so
  every other pair and label is "no relation". No `answer` is needed; a reject
  is skipped.

`head` and `child` name the relation's two entities in one of two ways:

- as indices into `spans` (`0` is the first span): the default, and what
  `"relation_index": "spans"` on a record says;
- as the token index of the entity's **last** token, as Prodigy's relation
  tools write them: where a relation has `head_span` / `child_span` objects
  (`{start, end, label}`, as in `spans`), those are its entities and
  `head` / `child` must be their last tokens; without them, a record's
  `"relation_index": "tokens"` (or the reader's `relation_index`) says so, and
  the entity is the one span in `spans` that ends on that token.

Spans are read by the record parser every reader shares
(`records.parse_record`) and put on the tokens (the record's own `tokens`,
else the pipeline's tokenizer) with `records.align_span`. Answers of one text
are merged across records and files: a later answer to the same (head, child,
label) wins ("conflicting answers"), the same answer again is counted once
("duplicate answer"). Every record is accounted for in a `ReadStats`: used, or
skipped under one reason of `REL_REASONS`; its relations are counted in the
account's `spans` (read, used, or dropped by reason).
"""

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import filter_spans, registry

from ..readstats import ReadStats, TeachDataError
from ..records import REASONS, RecordError, align_span, parse_record, record_doc
from ..teach_reader import PathsArg, as_paths
from ..textcat.reader import HARMLESS, TextcatReader
from .targets import IGNORE, REL_ANSWERS_KEY, REL_COMPLETE_KEY, REL_ENTITIES_KEY, AnswerValue, Pair

logger = logging.getLogger("spacy.binary_ner")

READER_NAME = "spacy-binary-ner.RelCorpus.v1"
RELATION_INDEXES = ("spans", "tokens")
# The teach format's reasons, and those of relations.
REL_REASONS: Dict[str, str] = {
    **REASONS,
    "no spans": "a relation answer needs the spans of its entities",
    "no relations": "a relation answer needs `relations`, with the relation it answers; a text with no "
    'relation belongs in a complete file (`"complete": true`)',
    "bad relation": "each relation needs `head` and `child` (integers: indices into `spans`, or the last "
    'token of each entity, with `head_span` / `child_span` or `"relation_index": "tokens"`), two different '
    "entities, and a non-empty string `label`",
    "relation argument not found": "`head` / `child` must be the index of a span in `spans`, or the last token "
    'of one of them (`"relation_index": "tokens"`); with `head_span` / `child_span`, their last tokens',
    "ambiguous relation argument": "two spans end on the token that `head` or `child` names: give "
    "`head_span` / `child_span`, or use span indices",
    "unknown label": "add the relation label to `labels`, or drop the answer",
}
_ACCEPT, _REJECT = 1.0, 0.0
RelKey = Tuple[Pair, str]


@dataclass
class RelRecord:
    """One valid relation record, on the tokens of its doc.

    doc (Doc): The text's doc (the record's tokens, or the tokenizer's).
    entities (List[Tuple[int, int, str]]): Its entities: token start, end, label.
    relations (List[RelKey]): Its relations: (pair, label).
    value (AnswerValue): 1.0 (accept or complete), 0.0 (reject) or "ignore".
    complete (bool): Whether it is a complete annotation.
    """

    doc: Doc
    entities: List[Tuple[int, int, str]]
    relations: List[RelKey]
    value: AnswerValue
    complete: bool


def parse_rel_record(nlp: Language, value: Any, complete: bool = False, relation_index: str = "spans") -> RelRecord:
    """Check one relation record (the module's format) and put it on tokens.

    nlp (Language): Its tokenizer makes the doc where the record has no tokens.
    value (Any): The parsed JSON value, or the `json.JSONDecodeError` or
        `RecordError` of its line (see `records.iter_lines`).
    complete (bool): Whether the record's source holds complete annotations.
    relation_index (str): What `head` / `child` are where a record does not
        say: "spans" (indices into `spans`) or "tokens" (last token of the entity).
    RETURNS (RelRecord): The record.
    RAISES (RecordError): Why it cannot be used; `reason` is one of `REL_REASONS`.
    """
    if isinstance(value, dict) and "relations" in value:
        relations = value["relations"]
        if not isinstance(relations, list) or not all(isinstance(r, dict) for r in relations):
            raise RecordError("bad relation", "`relations` must be a list of objects")
        spans = value.get("spans") or []
        given = [r[k] for r in relations for k in ("head_span", "child_span") if k in r]
        ignore = value.get("answer") == IGNORE
        # Spans that are not a list are left to the record parser to refuse.
        value = {
            **value,
            **({"spans": [*spans, *given]} if isinstance(spans, list) else {}),
            **({"answer": "accept"} if ignore else {}),
        }
    else:
        relations, spans, given, ignore = None, [], [], False
    record = parse_record(value, complete=complete)
    if ignore and record.complete:
        raise RecordError("ignore answer")
    if relations is None or (not relations and not record.complete):
        raise RecordError("no relations", "no `relations` in the record")
    doc, starts, ends = record_doc(nlp, record.text, record.parsed_tokens)
    if not len(doc):
        raise RecordError("no tokens")
    aligned = []
    for start, end, label in record.spans:
        span = align_span(starts, ends, start, end, "strict")
        if span is None:
            raise RecordError("misaligned span", f"span {start}-{end} does not sit on token boundaries")
        aligned.append((*span, label))
    index = value.get("relation_index", relation_index)
    if index not in RELATION_INDEXES:
        raise RecordError("bad field", f"`relation_index` must be one of {RELATION_INDEXES}, not {index!r:.40}")
    keys = [_relation(r, aligned[: len(spans)], iter(aligned[len(spans) :]), index) for r in relations]
    entities = sorted(set(aligned))
    value_ = IGNORE if ignore else (_ACCEPT if record.answer == "accept" else _REJECT)
    return RelRecord(doc, entities, keys, value_, record.complete)


def _relation(
    relation: dict, spans: List[Tuple[int, int, str]], given: Iterator[Tuple[int, int, str]], index: str
) -> RelKey:
    label = relation.get("label")
    if not isinstance(label, str) or not label.strip():
        raise RecordError("bad relation", f"`label` must be a non-empty string, got {label!r:.40}")
    args = []
    for key in ("head", "child"):
        ref = relation.get(key)
        if type(ref) is not int:
            raise RecordError("bad relation", f"`{key}` must be an integer, got {ref!r:.40}")
        if f"{key}_span" in relation:
            entity = next(given)
            if entity[1] - 1 != ref:
                raise RecordError(
                    "relation argument not found",
                    f"`{key}` {ref} is not the last token of `{key}_span` ({entity[1] - 1})",
                )
        elif index == "spans":
            if not 0 <= ref < len(spans):
                raise RecordError("relation argument not found", f"`{key}` {ref} of {len(spans)} spans")
            entity = spans[ref]
        else:
            ending = {s for s in spans if s[1] - 1 == ref}
            if len(ending) != 1:
                reason = "ambiguous relation argument" if ending else "relation argument not found"
                raise RecordError(reason, f"`{key}` {ref}: {len(ending)} spans end on that token")
            entity = ending.pop()
        args.append(entity[:2])
    if args[0] == args[1]:
        raise RecordError("bad relation", "`head` and `child` are the same entity")
    return (*args[0], *args[1]), label


@dataclass
class _Text:
    """The merged records of one text: its doc, entities, answers (value and
    the record that gave it) and whether a complete annotation was read."""

    doc: Doc
    entities: Dict[Tuple[int, int, str], None] = field(default_factory=dict)
    answers: Dict[RelKey, Tuple[AnswerValue, int]] = field(default_factory=dict)
    records: List[int] = field(default_factory=list)
    complete_records: List[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether a complete annotation of the text was read."""
        return bool(self.complete_records)


class RelReader(TextcatReader):
    """Reads relation records into examples, one per text, merging the
    answers of each text across records and files, with an account of every
    record per source (the account is kept as `TextcatReader` keeps it).

    nlp (Language): Its tokenizer makes the docs of records without tokens.
    labels (Optional[Sequence[str]]): If given, answers to other relation
        labels are dropped ("unknown label").
    strict (bool): Raise a `TeachDataError` at the first record skipped for a
        reason that is a fault of the data.
    relation_index (str): What `head` / `child` are where a record does not
        say: "spans" or "tokens" (see the module docstring).
    """

    def __init__(
        self, nlp: Language, labels: Optional[Sequence[str]] = None, strict: bool = False, relation_index: str = "spans"
    ) -> None:
        super().__init__(nlp, labels, strict)
        if relation_index not in RELATION_INDEXES:
            raise ValueError(f"relation_index must be one of {RELATION_INDEXES}, not {relation_index!r}")
        self.relation_index = relation_index
        self._rel_texts: Dict[str, _Text] = {}

    def _read(self, source: str, values: Iterator[Tuple[str, Any]], complete: bool) -> None:
        if self._examples is not None:
            raise RuntimeError("RelReader: the examples were made; read every source before calling examples().")
        self.sources.append(source)
        stats = ReadStats()
        self.stats.append(stats)
        for where, value in values:
            stats.records += 1
            try:
                record = parse_rel_record(self.nlp, value, complete, self.relation_index)
            except RecordError as error:
                self._skip(stats, error.reason, where, str(error))
                continue
            record_id = len(self._records)
            self._records.append((len(self.sources) - 1, where))
            state = self._rel_texts.setdefault(record.doc.text, _Text(record.doc))
            state.records.append(record_id)
            if record.complete:
                state.complete_records.append(record_id)
            state.entities.update(dict.fromkeys(record.entities))
            for key in record.relations:
                stats.spans["read"] += 1
                self._merge(state, key, record.value, record_id)

    def _merge(self, state: _Text, key: RelKey, value: AnswerValue, record_id: int) -> None:
        """Keep one answer of a text, later answers winning."""
        if self.labels is not None and key[1] not in self.labels:
            return self._drop(record_id, "unknown label")
        earlier_value, earlier_id = state.answers.get(key, (None, -1))
        if earlier_value == value:
            return self._drop(record_id, "duplicate answer")
        if earlier_id >= 0:
            self._drop(earlier_id, "conflicting answers")
        state.answers[key] = (value, record_id)
        return None

    def _skip(self, stats: ReadStats, reason: str, where: str, message: str) -> None:
        # The account as TextcatReader keeps it; the fix named from REL_REASONS.
        strict, self.strict = self.strict, False
        try:
            super()._skip(stats, reason, where, message)
        finally:
            self.strict = strict
        if strict and reason not in HARMLESS:
            raise TeachDataError(f"{where}: {message}. Fix: {REL_REASONS[reason]}.")

    def _build(self) -> List[Example]:
        used: Counter = Counter()
        examples = []
        for state in self._rel_texts.values():
            known = {key: v for key, (v, _) in state.answers.items() if v != IGNORE}
            if not known and not state.complete:
                for _, record_id in state.answers.values():
                    self._drop(record_id, "ignore answer")
                continue
            for _, record_id in state.answers.values():
                used[record_id] += 1
            for record_id in state.complete_records:
                used[record_id] = max(used[record_id], 1)
            examples.append(self._example(state))
            first, *rest = sorted(r for r in state.records if used[r])
            self.stats[self._records[first][0]].examples += 1
            for record_id in rest:
                self.stats[self._records[record_id][0]].merged += 1
        for record_id, (index, where) in enumerate(self._records):
            n_used = used[record_id]
            if not n_used:
                reason = self._dropped.get(record_id, ["ignore answer"])[0]
                self._skip(self.stats[index], reason, where, reason)
                continue
            self.stats[index].used += 1
            self.stats[index].spans["used"] += n_used
        return examples

    @staticmethod
    def _example(state: _Text) -> Example:
        reference = state.doc.copy()
        entities = [Span(reference, s, e, label) for s, e, label in state.entities]
        reference.spans[REL_ENTITIES_KEY] = entities
        # binary_ner, trained beside, reads the entities as accepted ones.
        reference.set_ents(filter_spans(entities), default="outside" if state.complete else "missing")
        reference.user_data[REL_ANSWERS_KEY] = [[*pair, label, v] for (pair, label), (v, _) in state.answers.items()]
        reference.user_data[REL_COMPLETE_KEY] = state.complete
        predicted = Doc(
            reference.vocab, words=[t.text for t in reference], spaces=[bool(t.whitespace_) for t in reference]
        )
        return Example(predicted, reference)


def read_rel_data(
    nlp: Language,
    paths: PathsArg = None,
    complete_paths: PathsArg = None,
    labels: Optional[Sequence[str]] = None,
    strict: bool = False,
    relation_index: str = "spans",
) -> Tuple[List[Example], RelReader]:
    """Read relation answers and complete relation annotations into
    examples, merged across files.

    nlp (Language): Its tokenizer makes the docs of records without tokens.
    paths (PathsArg): Answers: JSONL files or folders.
    complete_paths (PathsArg): Complete annotations: JSONL files or folders.
    labels (Optional[Sequence[str]]): If given, the only relation labels kept.
    strict (bool): Raise at the first record skipped for a fault of the data.
    relation_index (str): What `head` / `child` are where a record does not say.
    RETURNS (Tuple[List[Example], RelReader]): The examples (answers on the
        references, see `spacy_binary_ner.rel.targets`), and the reader holding
        the account (`reader.sources`, `reader.stats`, `reader.total()`).
    """
    reader = RelReader(nlp, labels, strict, relation_index)
    for path in as_paths(paths):
        reader.read_path(path, complete=False)
    for path in as_paths(complete_paths):
        reader.read_path(path, complete=True)
    return reader.examples(), reader


@dataclass
class RelCorpus:
    """Relation answers and complete annotations as a corpus for `spacy
    train`: called with the pipeline, it yields the examples (copies), read
    once per pipeline, and logs the account of every file.

    path (PathsArg): JSONL file(s) or folder(s) of answers.
    complete_path (PathsArg): JSONL file(s) or folder(s) of complete annotations.
    labels (Optional[List[str]]): If given, the only relation labels kept.
    strict (bool): Raise at the first record skipped for a fault of the data.
    relation_index (str): "spans" or "tokens": what `head` / `child` are
        where a record does not say.
    entities_key (Optional[str]): If given, each example's entities are also
        put on its predicted doc, in this span group (for a `binary_rel` with
        the same `spans_key`, trained or evaluated on given entities).
    limit (int): Use at most this many examples (0 for all).
    """

    path: PathsArg
    complete_path: PathsArg
    labels: Optional[List[str]] = None
    strict: bool = False
    relation_index: str = "spans"
    entities_key: Optional[str] = None
    limit: int = 0
    _cache: Dict[int, List[Example]] = field(default_factory=dict, init=False, repr=False)

    def __call__(self, nlp: Language) -> Iterator[Example]:
        """The examples, read with the pipeline's tokenizer.

        nlp (Language): The pipeline.
        YIELDS (Example): Copies of the examples.
        """
        if id(nlp) not in self._cache:
            self._cache = {id(nlp): self._read(nlp)}
        return (eg.copy() for eg in self._cache[id(nlp)])

    def _read(self, nlp: Language) -> List[Example]:
        if not as_paths(self.path) and not as_paths(self.complete_path):
            raise ValueError(
                f"{READER_NAME} needs a `path` (answers) or a `complete_path` (complete annotations), or both: "
                "set them in [corpora] or with --paths.train / --paths.dev on the command line."
            )
        examples, reader = read_rel_data(
            nlp, self.path, self.complete_path, self.labels, self.strict, self.relation_index
        )
        for source, stats in zip(reader.sources, reader.stats):
            problems = {reason: n for reason, n in stats.skipped.items() if reason not in HARMLESS}
            log = logger.warning if problems else logger.info
            log("Read %s: %s%s", source, stats, f" (skipped: {json.dumps(problems)})" if problems else "")
        examples = examples[: self.limit] if self.limit else examples
        if self.entities_key is not None:
            give_entities(examples, self.entities_key)
        return examples


def give_entities(examples: Iterable[Example], key: str) -> None:
    """Put each example's entities (its reference's) on its predicted doc,
    in the span group `key`: the entities given, for a `binary_rel` with
    `spans_key = key`.

    examples (Iterable[Example]): Examples made by the reader.
    key (str): The span group.
    """
    for eg in examples:
        eg.predicted.spans[key] = [
            Span(eg.predicted, s.start, s.end, s.label_) for s in eg.reference.spans[REL_ENTITIES_KEY]
        ]


@registry.readers(READER_NAME)
def create_rel_corpus(
    path: PathsArg = None,
    complete_path: PathsArg = None,
    labels: Optional[List[str]] = None,
    strict: bool = False,
    relation_index: str = "spans",
    entities_key: Optional[str] = None,
    limit: int = 0,
) -> RelCorpus:
    """Read relation answers and complete relation annotations for `spacy
    train`. Answers of the same text are merged across all the files; the
    account of every file is logged.

    path (PathsArg): JSONL file(s) or folder(s) of answers (plain or .gz).
    complete_path (PathsArg): JSONL file(s) or folder(s) of complete
        annotations (every relation of the text's entities).
    labels (Optional[List[str]]): If given, the only relation labels kept.
    strict (bool): Raise at the first record skipped for a fault of the data.
    relation_index (str): "spans" or "tokens": what `head` / `child` are
        where a record does not say (see `spacy_binary_ner.rel.reader`).
    entities_key (Optional[str]): If given, the entities are also put on the
        predicted docs in this span group.
    limit (int): Use at most this many examples (0 for all).
    RETURNS (RelCorpus): The corpus, a callable of the pipeline.
    """
    return RelCorpus(path, complete_path, labels, strict, relation_index, entities_key, limit)
