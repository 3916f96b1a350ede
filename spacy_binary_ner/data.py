"""The data side of the package in one place: the reader registered for
`spacy train` (`spacy-binary-ner.TeachCorpus.v1`), and every name a caller
needs to read teach answers and complete annotations into spaCy `Example`s.

The record format is checked in `records`, read and merged by sentence in
`teach_reader.TeachReader` (see there for how answers combine), with the
settings of `reader_settings.ReaderSettings` and an account in
`readstats.ReadStats`; all of them are importable from here.
"""

import logging
from typing import Dict, Iterator, List, Optional

from spacy.language import Language
from spacy.training import Example
from spacy.util import registry

from .constants import DEFAULT_INCORRECT_SPANS_KEY, DEFAULT_WEAK_SPANS_KEY
from .reader_settings import LONG_TEXT_MODES, ReaderSettings
from .readstats import ReadStats, TeachDataError
from .records import ALIGNMENT_MODES, HARMLESS_REASONS, OFFSET_UNITS, REASONS, input_hash, iter_jsonl
from .teach_reader import PathsArg, TeachReader, as_paths, read_teach_data, records_to_examples

# A child of spaCy's logger, so `spacy train --verbose` shows the accounts.
logger = logging.getLogger("spacy.binary_ner")

READER_NAME = "spacy-binary-ner.TeachCorpus.v1"


class TeachCorpus:
    """Teach answers and complete annotations as a corpus for `spacy train`:
    called with the pipeline, it yields the examples (copies), read once per
    pipeline, and logs the account of every file.

    path (PathsArg): JSONL file(s) or folder(s) of teach answers.
    complete_path (PathsArg): JSONL file(s) or folder(s) of complete annotations.
    settings (ReaderSettings): How to read.
    limit (int): Use at most this many examples (0 for all).
    """

    def __init__(self, path: PathsArg, complete_path: PathsArg, settings: ReaderSettings, limit: int = 0) -> None:
        self.path = path
        self.complete_path = complete_path
        self.settings = settings
        self.limit = limit
        self._cache: Dict[int, List[Example]] = {}

    def __call__(self, nlp: Language) -> Iterator[Example]:
        """The examples, read with the pipeline's vocab and tokenizer.

        nlp (Language): The pipeline.
        YIELDS (Example): Copies of the examples.
        """
        if not as_paths(self.path) and not as_paths(self.complete_path):
            raise ValueError(
                f"{READER_NAME} needs a `path` (teach answers) or a `complete_path` (complete annotations), or "
                "both: set them in [corpora] or with --paths.train / --paths.dev on the command line."
            )
        if id(nlp) not in self._cache:
            examples, reader = read_teach_data(nlp, self.path, self.complete_path, self.settings)
            _log_account(reader)
            self._cache.clear()
            self._cache[id(nlp)] = examples[: self.limit] if self.limit else examples
        for eg in self._cache[id(nlp)]:
            yield eg.copy()


def _log_account(reader: TeachReader) -> None:
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
    for group in reader.total().labels_differing_in_case:
        logger.warning(
            "Labels that differ only in case are two labels: %s (spans read); first places: %s",
            ", ".join(f"{label} {n}" for label, n in group.items()),
            "; ".join(p for stats in reader.stats for p in stats.where.get("labels differ only in case", [])[:1]),
        )
    if reader.propagated:
        logger.info(
            "Accepted strings propagated as weak entities: %s",
            ", ".join(f"{name} {n}" for name, n in sorted(reader.propagated.items())),
        )


# The config arguments are kept as they are (configs name them); every one but
# path, complete_path and limit is a field of ReaderSettings, with its default.
@registry.readers(READER_NAME)
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
) -> TeachCorpus:
    """Read teach answers and complete annotations for `spacy train`. Records
    of the same sentence are merged across all the files; the account of every
    file is logged. Bad settings fail here, before any file is read.

    path (PathsArg): JSONL file(s) or folder(s) of teach answers (plain or .gz).
    complete_path (PathsArg): JSONL file(s) or folder(s) of complete annotations,
        every entity marked (e.g. a gold corpus).
    limit (int): Use at most this many examples (0 for all).
    Every other argument is the field of `ReaderSettings` of its name, with
    its default and doc there (`incorrect_spans_key` and `weak_spans_key`
    must match the pipe's).
    RETURNS (TeachCorpus): The corpus, a callable of the pipeline.
    """
    return TeachCorpus(path, complete_path, ReaderSettings.pick(locals()), limit)


__all__ = [
    "ALIGNMENT_MODES",
    "LONG_TEXT_MODES",
    "OFFSET_UNITS",
    "READER_NAME",
    "REASONS",
    "PathsArg",
    "ReadStats",
    "ReaderSettings",
    "TeachCorpus",
    "TeachDataError",
    "TeachReader",
    "as_paths",
    "create_teach_corpus",
    "input_hash",
    "iter_jsonl",
    "read_teach_data",
    "records_to_examples",
]
