"""`python -m spacy_binary_ner silver-to-gold DATASET_IN DATASET_OUT PIPELINE --label A,B`: binary answers into gold.

Serves each text that has binary answers in DATASET_IN, once, with the best
analysis consistent with them (`consistent.best_consistent`: every accept
kept, no rejected span with its label, the rest the model's highest-scoring
spans that do not overlap) for a person to correct as in `correct`; the
corrected texts go to DATASET_OUT as complete annotations for the labels.
"""

from typing import Sequence

from .settings import SilverSettings
from .teach import parse_args, run


def main(argv: Sequence[str]) -> int:
    return run(parse_args(argv, SilverSettings))
