"""The training reader's settings: each written once, with its default and doc.

`ReaderSettings` is passed whole to `data.TeachReader`, `records_to_examples`,
`read_teach_data` and `convert`; the registered `spacy-binary-ner.TeachCorpus.v1`
builds one from its config arguments, and convert's command-line flags are
made from its fields (`tests/test_reader_settings.py` fails where a setting is
added in one place only).
"""

from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from .constants import DEFAULT_INCORRECT_SPANS_KEY, DEFAULT_WEAK_SPANS_KEY
from .records import ALIGNMENT_MODES, OFFSET_UNITS

LONG_TEXT_MODES = ("split", "skip")


def _setting(
    default: Any,
    doc: str,
    *,
    choices: Optional[Sequence[str]] = None,
    bounds: Optional[Tuple[float, Optional[float]]] = None,
    flag: Optional[str] = None,
    flag_help: Optional[str] = None,
) -> Any:
    """A field of `ReaderSettings`: its default, its doc, the values it
    allows (`choices`, or inclusive `bounds` (low, high), high None for no
    upper bound) and, for a true-by-default switch, the name and help of the
    flag that turns it off."""
    metadata = {"doc": doc, "choices": choices, "bounds": bounds, "flag": flag, "flag_help": flag_help}
    return field(default=default, metadata=metadata)


_SHARE = (0.0, 1.0)


@dataclass(frozen=True)
class ReaderSettings:
    # The docstring is made from the fields' docs below.
    incorrect_spans_key: str = _setting(
        DEFAULT_INCORRECT_SPANS_KEY,
        "Key of the rejected spans in `reference.spans`; must match the pipe's `incorrect_spans_key`.",
    )
    alignment: str = _setting(
        "strict",
        'Spans whose offsets are not on token boundaries: "strict" (skip them), "expand" or "contract" '
        "(as `Doc.char_span`'s alignment_mode).",
        choices=ALIGNMENT_MODES,
    )
    labels: Optional[Tuple[str, ...]] = _setting(None, "If given, spans with other labels are skipped.")
    max_length: int = _setting(0, "Longest text in tokens (0 for no limit).", bounds=(0, None))
    long_texts: str = _setting(
        "split",
        'Texts longer than `max_length`: "split" them at sentence or token boundaries, keeping the spans '
        'inside, or "skip" them.',
        choices=LONG_TEXT_MODES,
    )
    strict: bool = _setting(
        False, "Raise a `TeachDataError` at the first skipped record (ignored answers excepted) instead of counting it."
    )
    use_tokens: bool = _setting(
        True,
        "Use the records' `tokens`; if false, always the pipeline's tokenizer.",
        flag="--ignore-tokens",
        flag_help="tokenize every text, ignoring the records' tokens",
    )
    offsets: str = _setting(
        "chars",
        'What span and token offsets count: "chars" (Unicode code points, as Python and spaCy count) or "utf16" '
        "(UTF-16 code units, as JavaScript counts; converted).",
        choices=OFFSET_UNITS,
    )
    propagate_accepts: bool = _setting(
        False,
        "Find accepted strings again in the other answered texts and add them as weak entities in "
        "`reference.spans[weak_spans_key]`, trained with the pipe's `weak_weight` (see "
        "`spacy_binary_ner.propagate`).",
    )
    propagate_min_rate: float = _setting(
        0.03, "Strings accepted in fewer than this share of the places they occur are not propagated.", bounds=_SHARE
    )
    propagate_max_nested: float = _setting(
        0.3,
        "Strings that, of their places in accepted entities, are inside a longer accepted entity more often than "
        "this share are not propagated.",
        bounds=_SHARE,
    )
    propagate_max_rejected: float = _setting(
        0.0,
        "Strings rejected with their label in more than this share of their answers with it are not propagated "
        "(0: one reject leaves a string out).",
        bounds=_SHARE,
    )
    propagate_unpushed: bool = _setting(
        False,
        "With `propagate_accepts`: also store every other place of a string with a label it was accepted with in "
        'at least `propagate_min_rate` of its places; the pipe gives those cells no "no entity" prior.',
    )
    weak_spans_key: str = _setting(
        DEFAULT_WEAK_SPANS_KEY,
        "Key of the weak entities in `reference.spans`; must match the pipe's `weak_spans_key`.",
    )

    def __post_init__(self) -> None:
        if self.labels is not None:
            if isinstance(self.labels, str):
                raise ValueError(f"labels must be a list of labels, not the string {self.labels!r}")
            object.__setattr__(self, "labels", tuple(self.labels))
            for label in self.labels:
                if not isinstance(label, str) or not label or label != label.strip():
                    raise ValueError(
                        f"labels must be non-empty strings with no whitespace at their ends, not {label!r}"
                    )
        for f in fields(self):
            value = getattr(self, f.name)
            choices, bounds = f.metadata["choices"], f.metadata["bounds"]
            if choices is not None and value not in choices:
                raise ValueError(f"{f.name} must be one of {choices}, not {value!r}")
            if bounds is None:
                continue
            low, high = bounds
            if high is None and value < low:
                raise ValueError(f"{f.name} must be {low:g} (no limit) or positive, not {value}")
            if high is not None and not low <= value <= high:
                raise ValueError(f"{f.name} must be between {low:g} and {high:g}, not {value}")
        if self.propagate_unpushed and not self.propagate_accepts:
            raise ValueError("propagate_unpushed works with propagate_accepts: set both, or neither")

    @classmethod
    def pick(cls, values: Mapping[str, Any]) -> "ReaderSettings":
        """The settings among a mapping that holds other names too (a
        function's arguments).

        values (Mapping[str, Any]): Names to values; those that are not
            settings are left out.
        RETURNS (ReaderSettings): The settings.
        """
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def to_dict(self) -> Dict[str, Any]:
        """The settings as a JSON-serializable dict (`labels` a list or None)."""
        out = asdict(self)
        if self.labels is not None:
            out["labels"] = list(self.labels)
        return out


def setting_fields() -> Tuple[Field, ...]:
    """The fields of `ReaderSettings`, each with `default` and, in
    `metadata`, its `doc`, `choices`, `bounds`, `flag` and `flag_help`."""
    return fields(ReaderSettings)


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


ReaderSettings.__doc__ = "How `TeachReader` reads records into examples; frozen, so it can be shared.\n\n" + "\n".join(
    f"{f.name} ({_type_name(f.type)}): {f.metadata['doc']} Default: {f.default!r}."
    for f in setting_fields()
    if f.default is not MISSING
)

__all__ = ["LONG_TEXT_MODES", "ReaderSettings", "setting_fields"]
