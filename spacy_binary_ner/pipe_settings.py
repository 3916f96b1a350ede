"""The settings of the `binary_ner` pipe, each written once with its default
and its meaning.

The factory's `default_config` and the pipe's `cfg` (saved with the pipe) are
built from `PipeSettings`; the factory's signature names the same settings, as
spaCy's config validation reads it, and a test checks that the four agree.
"""

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Optional, Tuple

from .constants import DEFAULT_INCORRECT_SPANS_KEY, DEFAULT_SCORES_KEY, DEFAULT_WEAK_SPANS_KEY


@dataclass(frozen=True)
class PipeSettings:
    """The settings of a `binary_ner` pipe that a config gives: all its
    factory's arguments but the model and the scorer."""

    threshold: float = 0.5
    """Smallest probability for a span to become an entity."""

    unknown_weight: float = 0.01
    """Weight of the "no entity" prior on spans the answers say nothing about,
    relative to a known answer (weight 1)."""

    unknown_decay: float = 0.0
    """The prior on an example's unknown spans is `unknown_weight / n **
    unknown_decay` the n-th time training sees the example: repeated passes
    over few answers do not keep pushing their texts' unannotated entities
    down. 0: constant."""

    unknown_mask_above: Optional[float] = 0.5
    """Unknown spans the model already scores at least this high get no "no
    entity" push; None to push them all."""

    pseudo_above: Optional[float] = None
    """Unknown spans the model scores at least this high are taken as entities
    of that label (self-training), with weight `pseudo_weight`; None to never
    do so."""

    pseudo_weight: float = 0.1
    """Weight of those self-training targets."""

    weak_weight: float = 0.2
    """Weight of the weak entities in `weak_spans_key` (accepted strings found
    again in other answered texts, added by the reader's `propagate_accepts`);
    0 to train none."""

    weak_until: Optional[float] = 0.5
    """Weak entities the model already scores at least this high get no
    further push; None: push them all."""

    weak_spans_key: str = DEFAULT_WEAK_SPANS_KEY
    """Key in `reference.spans` of the weak entities."""

    incorrect_spans_key: str = DEFAULT_INCORRECT_SPANS_KEY
    """Key in `reference.spans` of rejected spans."""

    scores_key: Optional[str] = DEFAULT_SCORES_KEY
    """Span group receiving every candidate span and label with probability >=
    `candidates_threshold`, its probabilities in
    `doc.spans[scores_key].attrs["scores"]`. None to skip."""

    candidates_threshold: float = 0.05
    """Smallest probability kept in `scores_key`."""

    nested_spans_key: Optional[str] = None
    """If set, a span group receiving every span with probability >=
    `threshold`, overlaps allowed (nested entities)."""

    overwrite_ents: bool = False
    """Whether predicted entities replace the entities of earlier components
    that they overlap (as the `EntityRuler`'s setting); earlier entities that
    overlap no prediction stay. Blocked tokens (`doc.set_ents(...,
    blocked=...)`) are never part of a prediction."""

    @classmethod
    def names(cls) -> Tuple[str, ...]:
        """The settings' names, in order."""
        return tuple(field.name for field in fields(cls))

    @classmethod
    def pick(cls, values: Mapping[str, Any]) -> "PipeSettings":
        """The settings among `values` (e.g. a factory's arguments); other
        keys are left out, missing settings take their default.

        values (Mapping[str, Any]): Values by name.
        RETURNS (PipeSettings): The settings.
        """
        return cls(**{name: values[name] for name in cls.names() if name in values})

    def to_dict(self) -> Dict[str, Any]:
        """The settings by name, as `default_config` and the pipe's `cfg` hold them."""
        return asdict(self)
