"""The settings of the `binary_rel` pipe, each written once with its default
and its meaning.

The factory's `default_config` and the pipe's `cfg` (saved with the pipe) are
built from `RelSettings`; the factory's signature names the same settings, as
spaCy's config validation reads it, and a test checks that they agree.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional

from ..pipe_settings import PipeSettings


@dataclass(frozen=True)
class RelSettings:
    """The settings of a `binary_rel` pipe that a config gives: all its
    factory's arguments but the model and the scorer."""

    threshold: float = 0.5
    """Smallest probability for a relation to count as predicted (the span
    groups of predicted relations, and the scorer's micro-F1)."""

    unknown_weight: float = 0.05
    """Weight of the prior that a (pair, label) cell the answers say nothing
    about holds no relation (a known answer weighs 1). 1.0 reads every
    unanswered cell as "no relation", as a component trained on complete
    annotations does."""

    unknown_mask_above: Optional[float] = None
    """Unknown cells the model already scores at least this high are not
    pushed toward "no relation" (likely relations no question asked about).
    None: push them all."""

    exclusive_labels: bool = False
    """Whether a pair of entities holds at most one relation: an accepted
    label is then also a reject of the pair's other labels (their cells 0,
    weight 1). The probabilities stay one sigmoid per label."""

    max_distance: int = 50
    """Candidate pairs are entities at most this many tokens apart (tokens
    between the end of one and the start of the other)."""

    spans_key: Optional[str] = None
    """Where the entities are read from: `doc.spans[spans_key]`, or `doc.ents`
    if None."""

    label_pairs: Optional[Dict[str, List[List[str]]]] = None
    """Per relation label, the allowed `[head label, child label]` entity
    label pairs; a pair of entities is a candidate for a relation label only
    if its labels are allowed. None: learned at initialization from the
    accepted and annotated relations of the training data (saved in `cfg`)."""

    output_key: str = "binary_rel"
    """Prefix of the two span groups the predictions are written to:
    `doc.spans[output_key + "_head"]` and `doc.spans[output_key + "_child"]`."""

    names = classmethod(PipeSettings.names.__func__)  # type: ignore[attr-defined]
    pick = classmethod(PipeSettings.pick.__func__)  # type: ignore[attr-defined]
    to_dict = PipeSettings.to_dict
