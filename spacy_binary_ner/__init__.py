"""spacy-binary-ner: spaCy NER trained from accept/reject answers."""

from .about import __version__
from .data import ReadStats, create_teach_corpus, records_to_examples
from .models.span_scorer import build_span_scorer
from .pipe_settings import PipeSettings
from .pipeline import BinaryNER, find_binary_ner, make_binary_ner
from .reader_settings import ReaderSettings
from .targets import ConflictingAnswersError, build_targets
from .threshold import choose_threshold, create_dev_threshold_callback

__all__ = [
    "__version__",
    "BinaryNER",
    "ConflictingAnswersError",
    "PipeSettings",
    "ReadStats",
    "ReaderSettings",
    "build_span_scorer",
    "build_targets",
    "choose_threshold",
    "create_dev_threshold_callback",
    "create_teach_corpus",
    "find_binary_ner",
    "make_binary_ner",
    "records_to_examples",
]
