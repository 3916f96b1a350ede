"""Loss targets for binary_ner: what every answer says about every span.

One helper, `build_targets`, turns the reference docs of a batch into a target
and a weight for every (span, label) cell the model scores. The pipe's loss is
then a weighted binary cross-entropy with one independent sigmoid per label, so
a reject touches exactly one cell.

The reference doc says what is known, in spaCy's own conventions:

- `doc.ents` are entities known to be right (an accepted answer, or the
  entities of a complete annotation);
- tokens whose `ent_iob_` is "O" are known to be outside every entity, and so
  are blocked tokens (`doc.set_ents(..., blocked=...)`: "B" with no type);
- tokens with no entity annotation (`ent_iob_ == ""`) are unknown;
- `doc.spans[incorrect_spans_key]` holds rejected (span, label) pairs.

From these, per cell:

=====================================  ==========  ==========================
span                                    target      weight
=====================================  ==========  ==========================
a known entity, its label               1           1
a known entity, any other label         0           1
overlaps a known entity, or holds an    0           1 (flat entities: it cannot
"O" token                                           be an entity)
rejected (span, label)                  0           1 (that label only)
inside a run of `COMPLETE_LABELS_KEY`   0           1 (that run's label only)
with its label, not a known entity
a weak entity (an accepted string       1           `weak_weight` (that label
found again), its label, if unknown                 only)
another place of an accepted string     0           0 (that label only; still
(the reader's `propagate_unpushed`)                 unknown to self-training)
anything else (unknown)                 0           `unknown_weight`
longer than the doc                     0           0
=====================================  ==========  ==========================

A teach accept is a reference with one entity and every other token unknown;
a complete annotation has every token either in an entity or "O"; one
complete for some labels only (`"complete": [labels]`) has its entities, every
other token unknown, and in `doc.spans[COMPLETE_LABELS_KEY]` the runs of
tokens where each of those labels is known (other labels stay unknown); a
reject leaves the tokens unknown and adds one span to the incorrect-spans group.
Weak entities are in `doc.spans[weak_spans_key]` (see
`spacy_binary_ner.propagate`); a weak entity's cell is not unknown, so the
mask and self-training below leave it alone.
"""

from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
from spacy.tokens import Doc, Span
from spacy.training import Example

from .constants import COMPLETE_LABELS_KEY
from .propagate import unpushed_spans_key
from .records import v2_label_error
from .spans import cell_coordinates, n_span_cells, span_cells

# The span layout (`spans`) is named here too: the targets' rows follow it.
__all__ = [
    "ConflictingAnswersError",
    "Targets",
    "blocked_tokens",
    "build_targets",
    "cell_coordinates",
    "n_span_cells",
    "span_cells",
]

Targets = Tuple[numpy.ndarray, numpy.ndarray]
ENT_IOB_OUTSIDE = 2
ENT_IOB_BEGIN = 3


class ConflictingAnswersError(ValueError):
    """The same span and label is both a known entity and a rejected span."""


def build_targets(
    examples: Iterable[Example],
    labels: Sequence[str],
    max_span_length: int,
    unknown_weight: Union[float, Sequence[float]],
    incorrect_spans_key: str,
    probs: Optional[numpy.ndarray] = None,
    unknown_mask_above: Optional[float] = None,
    pseudo_above: Optional[float] = None,
    pseudo_weight: float = 0.1,
    weak_spans_key: Optional[str] = None,
    weak_weight: float = 0.0,
    weak_until: Optional[float] = None,
) -> Targets:
    """Build the targets and weights of a batch.

    examples (Iterable[Example]): The batch, in the order the model scored it.
    labels (Sequence[str]): The labels, in the order of the model's columns.
    max_span_length (int): Longest span the model scores, in tokens.
    unknown_weight (Union[float, Sequence[float]]): Weight of the "no entity"
        prior on unknown cells: one for the batch, or one per example.
    incorrect_spans_key (str): Key of the rejected spans in `reference.spans`.
    probs (Optional[numpy.ndarray]): The model's current probabilities, one row
        per span as returned; needed for `unknown_mask_above`.
    unknown_mask_above (Optional[float]): Unknown cells the model already gives
        at least this probability get weight 0 instead of `unknown_weight`: they
        are more likely unannotated entities than evidence of "no entity".
    pseudo_above (Optional[float]): Unknown cells the model gives at least
        this probability become targets 1 with weight `pseudo_weight`
        (self-training); needs `probs`. None: never.
    pseudo_weight (float): Weight of those targets.
    weak_spans_key (Optional[str]): Key of the weak entities in
        `reference.spans`; None: none are read.
    weak_weight (float): Weight of a weak entity's cell; 0 reads none.
    weak_until (Optional[float]): Weak cells the model already gives at least
        this probability get weight 0: weak evidence lifts a span to the
        decision boundary, not beyond. Needs `probs`; None: never.
    RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): `(truths, weights)`, both
        float32 of shape (n_spans, n_labels), one row per span the model scores,
        in the model's order (see `spacy_binary_ner.spans`).
    """
    label_index = {label: i for i, label in enumerate(labels)}
    truths: List[numpy.ndarray] = []
    weights: List[numpy.ndarray] = []
    unknowns: List[numpy.ndarray] = []
    weaks: List[Optional[numpy.ndarray]] = []
    examples = list(examples)
    if isinstance(unknown_weight, (int, float)):
        unknown_weights: Sequence[float] = [float(unknown_weight)] * len(examples)
    else:
        unknown_weights = list(unknown_weight)
        if len(unknown_weights) != len(examples):
            raise ValueError(f"{len(unknown_weights)} unknown weights for {len(examples)} examples: give one each")
    for eg, uw in zip(examples, unknown_weights):
        truth, weight, unknown = _doc_targets(eg, label_index, max_span_length, uw, incorrect_spans_key)
        cells = span_cells(len(eg.predicted), max_span_length)
        if weak_spans_key is not None and weak_weight > 0 and weak_spans_key in eg.reference.spans:
            # Weak entities become targets 1 with `weak_weight`, in unknown cells only.
            weak = numpy.zeros_like(unknown)
            found = _unknown_cells(eg, eg.reference.spans[weak_spans_key], label_index, max_span_length, unknown)
            truth[found], weight[found], unknown[found], weak[found] = 1.0, weak_weight, False, True
            weaks.append(weak[cells])
        else:
            weaks.append(None)
        if weak_spans_key is not None:
            unpushed = eg.reference.spans.get(unpushed_spans_key(weak_spans_key))
            if unpushed:
                # No prior on them; they stay unknown, so self-training may still take them.
                weight[_unknown_cells(eg, unpushed, label_index, max_span_length, unknown)] = 0.0
        truths.append(truth[cells])
        weights.append(weight[cells])
        unknowns.append(unknown[cells])
    if not truths:
        empty = numpy.zeros((0, len(labels)), dtype="float32")
        return empty, empty.copy()
    truth_rows, weight_rows = numpy.concatenate(truths), numpy.concatenate(weights)
    if probs is not None and (unknown_mask_above is not None or pseudo_above is not None):
        unknown_rows = numpy.concatenate(unknowns)
        if unknown_mask_above is not None:
            weight_rows[unknown_rows & (probs >= unknown_mask_above)] = 0.0
        if pseudo_above is not None:
            pseudo = unknown_rows & (probs >= pseudo_above)
            truth_rows[pseudo] = 1.0
            weight_rows[pseudo] = pseudo_weight
    # Only batches holding weak entities pay for their mask.
    if probs is not None and weak_until is not None and any(w is not None for w in weaks):
        weak_rows = numpy.concatenate([numpy.zeros_like(u) if w is None else w for w, u in zip(weaks, unknowns)])
        weight_rows[weak_rows & (probs >= weak_until)] = 0.0
    return truth_rows, weight_rows


def _doc_targets(
    eg: Example,
    label_index: Dict[str, int],
    L: int,
    unknown_weight: float,
    incorrect_spans_key: str,
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    n = len(eg.predicted)
    K = len(label_index)
    truth = numpy.zeros((n, L, K), dtype="float32")
    weight = numpy.zeros((n, L, K), dtype="float32")
    unknown = numpy.zeros((n, L, K), dtype=bool)
    if n == 0:
        return truth, weight, unknown
    outside = _outside_tokens(eg)
    entities = eg.get_aligned_spans_y2x(eg.reference.ents, allow_overlap=False)
    in_entity = numpy.zeros(n, dtype="int32")
    for ent in entities:
        in_entity[ent.start : ent.end] = 1
    starts = numpy.arange(n)[:, None]
    ends = starts + numpy.arange(L)[None, :]  # inclusive end token of each cell
    valid = ends < n
    ends_c = numpy.minimum(ends, n - 1)
    cum_outside = numpy.concatenate([[0], numpy.cumsum(outside)])
    cum_entity = numpy.concatenate([[0], numpy.cumsum(in_entity)])
    known_negative = (cum_outside[ends_c + 1] - cum_outside[starts] > 0) | (
        cum_entity[ends_c + 1] - cum_entity[starts] > 0
    )
    weight[valid] = unknown_weight
    weight[valid & known_negative] = 1.0
    unknown[valid & ~known_negative] = True
    for ent in entities:
        width = ent.end - ent.start - 1
        if width >= L:
            continue
        k = label_index.get(ent.label_)
        if k is not None:
            truth[ent.start, width, k] = 1.0
        elif v2_label_error(ent.label_):
            problem = v2_label_error(ent.label_)
            raise ValueError(f"The entity '{ent.text}' of '{_preview(eg.reference.text)}' has the {problem}.")
    if COMPLETE_LABELS_KEY in eg.reference.spans:
        for run in eg.get_aligned_spans_y2x(eg.reference.spans[COMPLETE_LABELS_KEY], allow_overlap=True):
            k = label_index.get(run.label_)
            if k is None:
                continue
            inside = valid & (starts >= run.start) & (ends < run.end)
            weight[inside, k] = 1.0
            unknown[inside, k] = False
    if incorrect_spans_key in eg.reference.spans:
        rejected = eg.get_aligned_spans_y2x(eg.reference.spans[incorrect_spans_key], allow_overlap=True)
        for span in rejected:
            width = span.end - span.start - 1
            k = label_index.get(span.label_)
            if k is None or width >= L:
                continue
            if truth[span.start, width, k] == 1.0:
                raise ConflictingAnswersError(
                    f"The span '{span.text}' ({span.start}-{span.end}, label "
                    f"{span.label_}) is both an entity and rejected in the doc "
                    f"'{_preview(eg.reference.text)}'. Keep one answer per span and "
                    f"label: spacy_binary_ner's reader lets the later answer win."
                )
            weight[span.start, width, k] = 1.0
            unknown[span.start, width, k] = False
    return truth, weight, unknown


def _unknown_cells(
    eg: Example, spans: Iterable[Span], label_index: Dict[str, int], L: int, unknown: numpy.ndarray
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """The (start, width, label) cells of `spans` that are unknown, as index
    arrays into a doc's (n_tokens, L, n_labels) targets; other labels and
    spans longer than L are left out."""
    cells = [
        (span.start, span.end - span.start - 1, label_index[span.label_])
        for span in eg.get_aligned_spans_y2x(spans, allow_overlap=True)
        if span.label_ in label_index and span.end - span.start <= L
    ]
    cells = [cell for cell in cells if unknown[cell]]
    if not cells:
        empty = numpy.zeros(0, dtype="int64")
        return empty, empty, empty
    starts, widths, labels = (numpy.array(column, dtype="int64") for column in zip(*cells))
    return starts, widths, labels


def blocked_tokens(doc: Doc) -> numpy.ndarray:
    """True for each token that `doc.set_ents(..., blocked=...)` keeps out of
    every entity (spaCy's convention: IOB "B" with no entity type)."""
    if not len(doc):
        return numpy.zeros(0, dtype=bool)
    iob_type = doc.to_array(["ENT_IOB", "ENT_TYPE"]).reshape(len(doc), 2)
    return (iob_type[:, 0] == ENT_IOB_BEGIN) & (iob_type[:, 1] == 0)


def _outside_tokens(eg: Example) -> numpy.ndarray:
    """1 for each predicted token known to be outside every entity ("O" or
    blocked in the reference)."""
    x, y = eg.predicted, eg.reference
    blocked = blocked_tokens(y)
    if len(x) == len(y) and numpy.array_equal(x.to_array(["IDX", "LENGTH"]), y.to_array(["IDX", "LENGTH"])):
        return ((y.to_array("ENT_IOB") == ENT_IOB_OUTSIDE) | blocked).astype("int32")
    tags = eg.get_aligned_ner()
    outside = numpy.array([tag == "O" for tag in tags], dtype="int32")
    if blocked.any():
        spans = [Span(y, int(i), int(i) + 1) for i in numpy.flatnonzero(blocked)]
        for span in eg.get_aligned_spans_y2x(spans, allow_overlap=True):
            outside[span.start : span.end] = 1
    return outside


def _preview(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
