"""Text-category answers read into training examples, and the reader
registered for `spacy train` (`spacy-binary-ner.TextcatCorpus.v1`).

A record is a JSON object with a `text` and one of three shapes:

- one label answered: `{"text", "label": L, "answer": "accept" | "reject" | "ignore"}`;
- a choice among options: `{"text", "options": [{"id": ..., "text": ...}, ...],
  "accept": [ids], "answer": ...}`. An option's label is its `id` where that is
  a string, else its `text`. Answer accept: the chosen options are accepted, the
  others rejected (they were seen and not chosen); reject: the chosen ones are
  rejected, nothing is said of the others; ignore: every option is ignored;
- a complete annotation: `{"text", "cats": {label: value, ...}}`, every label
  with a value in [0, 1] (all records of a complete file are read so; an
  `answer`, if any, must be accept).

Lines are read with the teach format's own conventions (`records.iter_lines`:
UTF-8, .gz, NaN refused). Answers of one text are merged across records and
files: a later answer to the same label wins over an earlier one (counted as
"conflicting answers"), the same answer again is counted once ("duplicate
answer"). Every record is accounted for in a `ReadStats`: used, or skipped
under one reason of `TEXTCAT_REASONS`; its label answers are counted in the
account's `spans` (read, used, or dropped by reason).
"""

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.training import Example
from spacy.util import registry

from ..constants import ANSWERS
from ..readstats import MAX_WHERE, ReadStats, TeachDataError
from ..records import REASONS, RecordError, iter_lines, jsonl_files, parse_task
from ..teach_reader import PathsArg, as_paths
from .targets import IGNORED_CATS_KEY

logger = logging.getLogger("spacy.binary_ner")

READER_NAME = "spacy-binary-ner.TextcatCorpus.v1"
# The teach format's reasons, and those whose fix differs for text categories.
TEXTCAT_REASONS: Dict[str, str] = {
    **REASONS,
    "missing key": "add the key: `text`, and `label` or `options` with an `answer` (or `cats` for a "
    "complete annotation)",
    "bad field": "fix the field's type: `text` a string, `label` a non-empty string, `options` a list of "
    "{id, text} objects, `accept` a list of their ids, `cats` an object of labels to numbers in [0, 1], "
    "`answer` a string",
    "ignore answer": "none needed: an ignored label of a text with no other answer carries no information",
    "unknown label": "add the label to `labels`, or drop the answer",
}
# Reasons that are no fault of the data: never an error in strict mode.
HARMLESS = frozenset({"ignore answer", "duplicate answer"})
_ACCEPT, _REJECT = 1.0, 0.0
_IGNORE = "ignore"


@dataclass
class TextcatRecord:
    """One valid text-category record.

    text (str): The text.
    cats (Dict[str, Union[float, str]]): Per label: 1.0 (accepted), 0.0
        (rejected), a value in [0, 1] (complete annotation), or "ignore".
    complete (bool): Whether it is a complete annotation.
    answer (str): The record's answer ("accept" for a complete annotation
        without one).
    input_hash (Any): Its `_input_hash`, if given.
    """

    text: str
    cats: Dict[str, Union[float, str]] = field(default_factory=dict)
    complete: bool = False
    answer: str = "accept"
    input_hash: Any = None


def parse_textcat_record(value: Any, complete: bool = False) -> TextcatRecord:
    """Check one text-category record (the module's three shapes).

    value (Any): The parsed JSON value, or the `json.JSONDecodeError` or
        `RecordError` of its line (see `records.iter_lines`).
    complete (bool): Whether the record's source holds complete annotations.
    RETURNS (TextcatRecord): The record.
    RAISES (RecordError): Why the record cannot be used; `reason` is one of
        `TEXTCAT_REASONS`.
    """
    if isinstance(value, RecordError):
        raise value
    if isinstance(value, json.JSONDecodeError):
        raise RecordError("malformed JSON", str(value))
    # `text` (and `tokens`, `meta`, `_input_hash` where given) checked as every reader checks a task.
    task = parse_task(value)
    text = task.text
    answer = value.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise RecordError("bad field", f"`answer` is {type(answer).__name__}")
    if answer is not None and answer not in ANSWERS:
        raise RecordError("unknown answer", f"answer {answer[:40]!r}")
    if complete or "cats" in value:
        return TextcatRecord(text, _complete_cats(value, answer), True, answer or "accept", task.input_hash)
    if answer is None:
        raise RecordError("missing key", "no `answer` in a teach record")
    if "label" in value:
        label = value["label"]
        if not isinstance(label, str) or not label.strip():
            raise RecordError("bad field", f"`label` must be a non-empty string, got {label!r:.40}")
        cats = {label: _IGNORE if answer == _IGNORE else _value(answer)}
        return TextcatRecord(text, cats, False, answer, task.input_hash)
    if "options" in value:
        return TextcatRecord(text, _choice_cats(value, answer), False, answer, task.input_hash)
    raise RecordError("missing key", "no `label`, `options` or `cats`")


def _value(answer: str) -> float:
    return _ACCEPT if answer == "accept" else _REJECT


def _complete_cats(value: dict, answer: Optional[str]) -> Dict[str, Union[float, str]]:
    if answer == "reject":
        raise RecordError("rejected complete annotation")
    if answer == _IGNORE:
        raise RecordError("ignore answer")
    cats = value.get("cats")
    if cats is None:
        raise RecordError("missing key", "no `cats` in a complete annotation")
    if not isinstance(cats, dict) or not cats:
        raise RecordError("bad field", "`cats` must be a non-empty object of labels to numbers")
    for label, v in cats.items():
        if not label.strip() or isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise RecordError("bad field", f"`cats` {label!r:.40}: {v!r:.40} is not a number in [0, 1]")
    return {label: float(v) for label, v in cats.items()}


def _choice_cats(value: dict, answer: str) -> Dict[str, Union[float, str]]:
    options, chosen = value["options"], value.get("accept", [])
    if not isinstance(options, list) or not options or not all(isinstance(o, dict) and "id" in o for o in options):
        raise RecordError("bad field", "`options` must be a non-empty list of objects with an `id`")
    labels = {}
    for option in options:
        label = option["id"] if isinstance(option["id"], str) else option.get("text")
        if not isinstance(label, str) or not label.strip():
            raise RecordError("bad field", f"option {option['id']!r:.40} has no string `id` or `text` for a label")
        labels[_hashable(option["id"])] = label
    if not isinstance(chosen, list) or any(_hashable(i) not in labels for i in chosen):
        raise RecordError("bad field", f"`accept` must list ids of the options, got {chosen!r:.60}")
    chosen_labels = {labels[_hashable(i)] for i in chosen}
    if answer == _IGNORE:
        return {label: _IGNORE for label in labels.values()}
    if answer == "reject":
        return {label: _REJECT for label in chosen_labels}
    return {label: _ACCEPT if label in chosen_labels else _REJECT for label in labels.values()}


def _hashable(option_id: Any) -> Any:
    return json.dumps(option_id, sort_keys=True) if isinstance(option_id, (dict, list)) else option_id


@dataclass
class _Text:
    """The merged answers of one text: per label, its value and the record
    (index into `TextcatReader._records`) that gave it."""

    answers: Dict[str, Tuple[Union[float, str], int]] = field(default_factory=dict)


class TextcatReader:
    """Reads text-category records into examples, one per text, merging the
    answers of each text across records and files, with an account of every
    record per source.

    nlp (Language): Its tokenizer makes the docs.
    labels (Optional[Sequence[str]]): If given, answers to other labels are
        dropped ("unknown label").
    strict (bool): Raise a `TeachDataError` at the first record skipped for a
        reason that is a fault of the data.
    """

    def __init__(self, nlp: Language, labels: Optional[Sequence[str]] = None, strict: bool = False) -> None:
        self.nlp = nlp
        self.labels = None if labels is None else set(labels)
        self.strict = strict
        self.sources: List[str] = []
        self.stats: List[ReadStats] = []
        self._texts: Dict[str, _Text] = {}
        # Per record read: its source index and place, and its labels' fate.
        self._records: List[Tuple[int, str]] = []
        self._dropped: Dict[int, List[str]] = {}
        self._examples: Optional[List[Example]] = None

    def read_path(self, path: Union[str, Path], complete: bool = False) -> None:
        """Read every JSONL file (plain or .gz) of a file or folder.

        path (Union[str, Path]): The file or folder.
        complete (bool): Whether its records are complete annotations.
        """
        for file in jsonl_files(path):
            self._read(str(file), ((f"{file}:{line}", value) for line, value in iter_lines(file)), complete)

    def read_records(self, records: Iterable[Any], complete: bool = False, source: str = "records") -> None:
        """Read records given in memory.

        records (Iterable[Any]): The records: dicts, or `TextcatRecord`s already parsed (used as they are).
        complete (bool): Whether they are complete annotations.
        source (str): The name of the source in the account.
        """
        self._read(source, ((f"record {i}", value) for i, value in enumerate(records, 1)), complete)

    def _read(self, source: str, values: Iterator[Tuple[str, Any]], complete: bool) -> None:
        if self._examples is not None:
            raise RuntimeError("TextcatReader: the examples were made; read every source before calling examples().")
        self.sources.append(source)
        stats = ReadStats()
        self.stats.append(stats)
        index = len(self.sources) - 1
        for where, value in values:
            stats.records += 1
            try:
                # A record parsed before (e.g. by the teach server) is taken as it is.
                record = value if isinstance(value, TextcatRecord) else parse_textcat_record(value, complete=complete)
                if not self.nlp.make_doc(record.text):
                    raise RecordError("no tokens")
            except RecordError as error:
                self._skip(stats, error.reason, where, str(error))
                continue
            record_id = len(self._records)
            self._records.append((index, where))
            state = self._texts.setdefault(record.text, _Text())
            for label, value_ in record.cats.items():
                stats.spans["read"] += 1
                if self.labels is not None and label not in self.labels:
                    self._drop(record_id, "unknown label")
                    continue
                earlier = state.answers.get(label)
                if earlier is not None and earlier[0] == value_:
                    self._drop(record_id, "duplicate answer")
                    continue
                if earlier is not None:
                    self._drop(earlier[1], "conflicting answers")
                state.answers[label] = (value_, record_id)

    def _drop(self, record_id: int, reason: str) -> None:
        self._dropped.setdefault(record_id, []).append(reason)
        self.stats[self._records[record_id][0]].spans[reason] += 1

    def _skip(self, stats: ReadStats, reason: str, where: str, message: str) -> None:
        stats.skipped[reason] += 1
        places = stats.where.setdefault(reason, [])
        if len(places) < MAX_WHERE:
            places.append(where)
        if self.strict and reason not in HARMLESS:
            raise TeachDataError(f"{where}: {message}. Fix: {TEXTCAT_REASONS[reason]}.")

    def examples(self) -> List[Example]:
        """The examples, one per text with an accept, reject or complete
        value, in first-seen order. The first call ends the reading and
        completes the account (every record read is used or skipped); later
        calls return the same examples.

        RETURNS (List[Example]): The examples; answers in `reference.cats`,
            ignored labels in `reference.user_data[IGNORED_CATS_KEY]`.
        """
        if self._examples is None:
            self._examples = self._build()
        return self._examples

    def _build(self) -> List[Example]:
        used: Counter = Counter()
        examples = []
        for text, state in self._texts.items():
            record_ids = sorted({record_id for _, record_id in state.answers.values()})
            cats = {label: v for label, (v, _) in state.answers.items() if v != _IGNORE}
            if not cats:
                for _, record_id in state.answers.values():
                    self._drop(record_id, "ignore answer")
                continue
            for _, record_id in state.answers.values():
                used[record_id] += 1
            eg = Example.from_dict(self.nlp.make_doc(text), {"cats": cats})
            ignored = sorted(label for label, (v, _) in state.answers.items() if v == _IGNORE)
            if ignored:
                eg.reference.user_data[IGNORED_CATS_KEY] = ignored
            examples.append(eg)
            self.stats[self._records[record_ids[0]][0]].examples += 1
            for record_id in record_ids[1:]:
                self.stats[self._records[record_id][0]].merged += 1
        for record_id, (index, where) in enumerate(self._records):
            stats = self.stats[index]
            if used[record_id]:
                stats.used += 1
                stats.spans["used"] += used[record_id]
            else:
                reason = self._dropped.get(record_id, ["ignore answer"])[0]
                self._skip(stats, reason, where, reason)
        return examples

    def total(self) -> ReadStats:
        """The account of every source together."""
        total = ReadStats()
        for stats in self.stats:
            total.add(stats)
        return total


def read_textcat_data(
    nlp: Language,
    paths: PathsArg = None,
    complete_paths: PathsArg = None,
    labels: Optional[Sequence[str]] = None,
    strict: bool = False,
) -> Tuple[List[Example], TextcatReader]:
    """Read text-category answers and complete annotations into examples,
    merged across files.

    nlp (Language): Its tokenizer makes the docs.
    paths (PathsArg): Answers: JSONL files or folders.
    complete_paths (PathsArg): Complete annotations (`cats`): JSONL files or folders.
    labels (Optional[Sequence[str]]): If given, the only labels kept.
    strict (bool): Raise at the first record skipped for a fault of the data.
    RETURNS (Tuple[List[Example], TextcatReader]): The examples, and the reader
        holding the account (`reader.sources`, `reader.stats`, `reader.total()`).
    """
    reader = TextcatReader(nlp, labels, strict)
    for path in as_paths(paths):
        reader.read_path(path, complete=False)
    for path in as_paths(complete_paths):
        reader.read_path(path, complete=True)
    return reader.examples(), reader


def textcat_records_to_examples(
    nlp: Language, records: Iterable[Any], complete: bool = False, labels: Optional[Sequence[str]] = None
) -> List[Example]:
    """Records given in memory, merged by text, as examples.

    nlp (Language): Its tokenizer makes the docs.
    records (Iterable[Any]): The records (dicts).
    complete (bool): Whether they are complete annotations.
    labels (Optional[Sequence[str]]): If given, the only labels kept.
    RETURNS (List[Example]): One example per text, in first-seen order.
    """
    reader = TextcatReader(nlp, labels)
    reader.read_records(records, complete=complete)
    return reader.examples()


@dataclass
class TextcatCorpus:
    """Text-category answers and complete annotations as a corpus for `spacy
    train`: called with the pipeline, it yields the examples (copies), read
    once per pipeline, and logs the account of every file.

    path (PathsArg): JSONL file(s) or folder(s) of answers.
    complete_path (PathsArg): JSONL file(s) or folder(s) of complete annotations.
    labels (Optional[List[str]]): If given, the only labels kept.
    strict (bool): Raise at the first record skipped for a fault of the data.
    limit (int): Use at most this many examples (0 for all).
    """

    path: PathsArg
    complete_path: PathsArg
    labels: Optional[List[str]] = None
    strict: bool = False
    limit: int = 0
    _cache: Dict[int, List[Example]] = field(default_factory=dict, init=False, repr=False)

    def __call__(self, nlp: Language) -> Iterator[Example]:
        """The examples, read with the pipeline's tokenizer.

        nlp (Language): The pipeline.
        YIELDS (Example): Copies of the examples.
        """
        examples = self._cache.get(id(nlp))
        if examples is None:
            examples = self._read(nlp)
            self._cache = {id(nlp): examples}
        return (eg.copy() for eg in examples)

    def _read(self, nlp: Language) -> List[Example]:
        if not as_paths(self.path) and not as_paths(self.complete_path):
            raise ValueError(
                f"{READER_NAME} needs a `path` (answers) or a `complete_path` (complete annotations), or both: "
                "set them in [corpora] or with --paths.train / --paths.dev on the command line."
            )
        examples, reader = read_textcat_data(nlp, self.path, self.complete_path, self.labels, self.strict)
        for source, stats in zip(reader.sources, reader.stats):
            logger.info("Read %s: %s", source, stats)
            dropped = {reason: n for reason, n in stats.skipped.items() if reason not in HARMLESS}
            if dropped:
                logger.warning(
                    "%s: %d of %d records skipped (%s)",
                    source,
                    sum(dropped.values()),
                    stats.records,
                    ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items())),
                )
        return examples[: self.limit] if self.limit else examples


@registry.readers(READER_NAME)
def create_textcat_corpus(
    path: PathsArg = None,
    complete_path: PathsArg = None,
    labels: Optional[List[str]] = None,
    strict: bool = False,
    limit: int = 0,
) -> TextcatCorpus:
    """Read text-category answers and complete annotations for `spacy train`.
    Answers of the same text are merged across all the files; the account of
    every file is logged.

    path (PathsArg): JSONL file(s) or folder(s) of answers (plain or .gz), in
        either answer shape (`label` or `options`), or `cats`.
    complete_path (PathsArg): JSONL file(s) or folder(s) of complete
        annotations, `cats` with every label (e.g. a gold corpus).
    labels (Optional[List[str]]): If given, the only labels kept.
    strict (bool): Raise at the first record skipped for a fault of the data.
    limit (int): Use at most this many examples (0 for all).
    RETURNS (TextcatCorpus): The corpus, a callable of the pipeline.
    """
    return TextcatCorpus(path, complete_path, labels, strict, limit)
