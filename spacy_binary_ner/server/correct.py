"""`python -m spacy_binary_ner correct DATASET PIPELINE SOURCE --label A,B`: correct the model's entities.

Serves a page showing each text of the source, in order, with the entities
the model finds (at its threshold) for the labels; a person adds, removes and
relabels spans, then accepts the whole text (`a`), rejects it as unusable
(`x`) or ignores it (space). An accepted text is stored as a complete
annotation for the labels (`"complete": [labels]`): every other span of them
is not an entity, other labels stay unknown. With `--update` the model learns
from each corrected text and predicts the next ones with what it learned.
Same server, database, sessions and model folder as `teach`.
"""

from typing import Sequence

from .settings import CorrectSettings
from .teach import parse_args, run


def main(argv: Sequence[str]) -> int:
    return run(parse_args(argv, CorrectSettings))
