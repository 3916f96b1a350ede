"""The settings of the `binary_textcat` pipe, each written once with its
default and its meaning.

The factory's `default_config` and the pipe's `cfg` (saved with the pipe) are
built from `TextcatSettings`; the factory's signature names the same
settings, as spaCy's config validation reads it, and a test checks that they
agree.
"""

from dataclasses import dataclass

from ..pipe_settings import PipeSettings


@dataclass(frozen=True)
class TextcatSettings:
    """The settings of a `binary_textcat` pipe that a config gives: all its
    factory's arguments but the model and the scorer."""

    exclusive: bool = False
    """Whether the labels are mutually exclusive (one softmax over them, a
    text has exactly one) or independent (one sigmoid each, a text has any
    number)."""

    threshold: float = 0.5
    """Smallest probability for a label to count as predicted when scoring
    (multi-label F1)."""

    unknown_weight: float = 0.05
    """Weight of the prior that a label the answers say nothing about does not
    hold (a known answer weighs 1). In exclusive mode it applies only to texts
    whose class is not known."""

    # The helpers of binary_ner's settings, which read only the dataclass's fields.
    names = classmethod(PipeSettings.names.__func__)  # type: ignore[attr-defined]
    pick = classmethod(PipeSettings.pick.__func__)  # type: ignore[attr-defined]
    to_dict = PipeSettings.to_dict
