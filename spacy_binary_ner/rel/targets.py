"""Candidate pairs and the loss of `binary_rel`: targets per (ordered pair,
relation label) cell, built in one place from the answers on the reference
docs.

A pair is `(head_start, head_end, child_start, child_end)`, token offsets
(ends exclusive) of two entities; both orders of two entities are two pairs.
The answers of a text are on its reference doc, as the reader writes them:
`doc.user_data[REL_ANSWERS_KEY]` lists `[head_start, head_end, child_start,
child_end, label, value]` with value 1.0 (accept), 0.0 (reject) or "ignore";
`doc.user_data[REL_COMPLETE_KEY]` is true for a complete annotation (its
relations are every relation among its entities); the entities are in
`doc.spans[REL_ENTITIES_KEY]`. `build_rel_targets` turns them into a truth
and a weight per row (pair) and column (label):

| answer on the cell (pair, label)              | truth | weight           |
|-----------------------------------------------|-------|------------------|
| accept                                        | 1     | 1                |
| reject (that label only)                      | 0     | 1                |
| ignore                                        | 0     | 0                |
| none, the text is a complete annotation       | 0     | 1                |
| none, the label is not allowed for the pair's entity labels | 0 | 0     |
| none, another label of the pair is accepted and `exclusive_labels` | 0 | 1 |
| none (unknown)                                | 0     | `unknown_weight` |
| none (unknown), the model's probability ≥ `unknown_mask_above` | 0 | 0 |

An accept of one label says nothing of the pair's other labels (a pair may
hold several relations) unless the labels are exclusive, nor of other
pairs: they stay unknown. The loss is
`textcat_loss` in its multi-label form, one independent sigmoid per label:
binary cross-entropy weighted cell by cell, averaged over pairs.
"""

from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
from spacy.tokens import Doc, Span
from spacy.training import Example

from ..textcat.targets import textcat_loss, textcat_probabilities

# Keys of a reference doc's answers (`user_data`) and entities (`spans`).
REL_ANSWERS_KEY = "binary_rel_answers"
REL_COMPLETE_KEY = "binary_rel_complete"
REL_ENTITIES_KEY = "binary_rel_entities"

Pair = Tuple[int, int, int, int]
Entity = Tuple[int, int, str]  # token start, token end (exclusive), label
LabelPairs = Dict[str, List[List[str]]]
AnswerValue = Union[float, str]
IGNORE = "ignore"

__all__ = [
    "IGNORE",
    "REL_ANSWERS_KEY",
    "REL_COMPLETE_KEY",
    "REL_ENTITIES_KEY",
    "allowed_labels",
    "answered_label_pairs",
    "build_rel_targets",
    "candidate_pairs",
    "doc_answers",
    "rel_loss",
    "rel_probabilities",
]


def candidate_pairs(
    entities: Iterable[Entity], max_distance: int, labels: Sequence[str], label_pairs: Optional[LabelPairs]
) -> Tuple[List[Pair], numpy.ndarray]:
    """Every ordered pair of two different entities at most `max_distance`
    tokens apart with at least one allowed label, in a stable order.

    entities (Iterable[Entity]): The entities; nested or overlapping ones are
        allowed (an entity with two labels allows the labels of both).
    max_distance (int): Most tokens between the two entities.
    labels (Sequence[str]): The relation labels, in the model's column order.
    label_pairs (Optional[LabelPairs]): Allowed entity label pairs per
        relation label; None allows every pair.
    RETURNS (Tuple[List[Pair], numpy.ndarray]): The pairs, and a bool array
        (n_pairs, n_labels): whether each label is allowed for each pair.
    """
    by_offsets: Dict[Tuple[int, int], List[str]] = {}
    for start, end, label in entities:
        by_offsets.setdefault((start, end), []).append(label)
    spans = sorted(by_offsets)
    pairs: List[Pair] = []
    rows = []
    for head in spans:
        for child in spans:
            if head == child or max(head[0], child[0]) - min(head[1], child[1]) > max_distance:
                continue
            row = allowed_labels(by_offsets[head], by_offsets[child], labels, label_pairs)
            if row.any():
                pairs.append((*head, *child))
                rows.append(row)
    allowed = numpy.array(rows, dtype=bool).reshape(len(rows), len(labels))
    return pairs, allowed


def allowed_labels(
    head_labels: Sequence[str], child_labels: Sequence[str], labels: Sequence[str], label_pairs: Optional[LabelPairs]
) -> numpy.ndarray:
    """Which relation labels an entity pair of these labels may hold.

    head_labels (Sequence[str]): The head entity's label(s).
    child_labels (Sequence[str]): The child entity's label(s).
    labels (Sequence[str]): The relation labels.
    label_pairs (Optional[LabelPairs]): Allowed entity label pairs per
        relation label; None allows all.
    RETURNS (numpy.ndarray): Bool, one per relation label.
    """
    if label_pairs is None:
        return numpy.ones(len(labels), dtype=bool)
    return numpy.array(
        [any([h, c] in label_pairs.get(label, ()) for h in head_labels for c in child_labels) for label in labels],
        dtype=bool,
    )


def doc_answers(doc: Doc) -> Dict[Tuple[Pair, str], AnswerValue]:
    """The relation answers on a reference doc, by (pair, label)."""
    return {(tuple(a[:4]), a[4]): a[5] for a in doc.user_data.get(REL_ANSWERS_KEY, ())}  # type: ignore[misc]


def doc_entities(doc: Doc, spans_key: Optional[str] = None) -> List[Span]:
    """The entities of a doc: `doc.spans[REL_ENTITIES_KEY]` on a reference
    doc made by the reader, else `doc.spans[spans_key]`, else `doc.ents`."""
    for key in (REL_ENTITIES_KEY, spans_key):
        if key is not None and key in doc.spans:
            return list(doc.spans[key])
    return list(doc.ents)


def build_rel_targets(
    examples: Sequence[Example],
    pairs: Sequence[Sequence[Pair]],
    allowed: numpy.ndarray,
    labels: Sequence[str],
    unknown_weight: float,
    exclusive: bool = False,
    probs: Optional[numpy.ndarray] = None,
    mask_above: Optional[float] = None,
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """The truth and weight of every (pair, label) cell (the module's table).

    examples (Sequence[Example]): The batch; answers on the reference docs.
    pairs (Sequence[Sequence[Pair]]): Each example's pairs, in reference token
        offsets, the rows in order.
    allowed (numpy.ndarray): Bool (n_rows, n_labels): the labels allowed for
        each pair by the entity label pairs.
    labels (Sequence[str]): The relation labels, in the model's column order.
    unknown_weight (float): Weight of the "no relation" prior on unknown cells.
    exclusive (bool): Whether a pair holds at most one relation label.
    probs (Optional[numpy.ndarray]): The model's probabilities of the cells,
        read with `mask_above`.
    mask_above (Optional[float]): Unknown cells whose probability is at least
        this get weight 0 instead of `unknown_weight` (likely relations no
        question asked about); None: every unknown cell has the prior.
    RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): Truths and weights, float32,
        each of shape (n_rows, n_labels).
    """
    n_rows = sum(len(p) for p in pairs)
    truths = numpy.zeros((n_rows, len(labels)), dtype="float32")
    weights = numpy.where(allowed, numpy.float32(unknown_weight), numpy.float32(0.0)).astype("float32")
    unknown = allowed.copy()
    column = {label: j for j, label in enumerate(labels)}
    row = 0
    for eg, doc_pairs in zip(examples, pairs):
        answers = doc_answers(eg.reference)
        if eg.reference.user_data.get(REL_COMPLETE_KEY):
            weights[row : row + len(doc_pairs)] = allowed[row : row + len(doc_pairs)]
            unknown[row : row + len(doc_pairs)] = False
        rows = {pair: row + i for i, pair in enumerate(doc_pairs)}
        if exclusive:
            for pair, _ in (key for key, value in answers.items() if value == 1.0):
                if pair in rows:
                    weights[rows[pair]] = allowed[rows[pair]]
                    unknown[rows[pair]] = False
        for (pair, label), value in answers.items():
            if pair not in rows or label not in column:
                continue
            i, j = rows[pair], column[label]
            truths[i, j] = 0.0 if value == IGNORE else float(value)
            weights[i, j] = 0.0 if value == IGNORE else 1.0
            unknown[i, j] = False
        row += len(doc_pairs)
    if mask_above is not None and probs is not None:
        weights[unknown & (probs >= mask_above)] = 0.0
    return truths, weights


def rel_probabilities(logits: numpy.ndarray, allowed: numpy.ndarray) -> numpy.ndarray:
    """One sigmoid per cell; 0 where the label is not allowed for the pair.

    logits (numpy.ndarray): (n_pairs, n_labels).
    allowed (numpy.ndarray): Bool, same shape.
    RETURNS (numpy.ndarray): The probabilities.
    """
    return textcat_probabilities(logits, exclusive=False) * allowed


def rel_loss(logits: numpy.ndarray, truths: numpy.ndarray, weights: numpy.ndarray) -> Tuple[float, numpy.ndarray]:
    """The weighted binary cross-entropy of the module's table, summed over
    labels and averaged over pairs, and its gradient for the logits.

    logits (numpy.ndarray): (n_pairs, n_labels).
    truths (numpy.ndarray): From `build_rel_targets`.
    weights (numpy.ndarray): From `build_rel_targets`.
    RETURNS (Tuple[float, numpy.ndarray]): The loss and d(loss)/d(logits), float32.
    """
    return textcat_loss(logits, truths, weights, exclusive=False)


def answered_label_pairs(examples: Iterable[Example]) -> Tuple[List[str], LabelPairs]:
    """The relation labels answered or annotated in the examples, sorted, and
    per label the entity label pairs of its accepted or annotated relations
    (what the pipe learns when no labels or label pairs are given).

    examples (Iterable[Example]): The examples.
    RETURNS (Tuple[List[str], LabelPairs]): The labels and the label pairs.
    """
    labels = set()
    found: Dict[str, set] = {}
    for eg in examples:
        entity_labels: Dict[Tuple[int, int], List[str]] = {}
        for span in doc_entities(eg.reference):
            entity_labels.setdefault((span.start, span.end), []).append(span.label_)
        for (pair, label), value in doc_answers(eg.reference).items():
            labels.add(label)
            if value == 1.0:
                for h in entity_labels.get(pair[:2], ()):
                    for c in entity_labels.get(pair[2:], ()):
                        found.setdefault(label, set()).add((h, c))
    return sorted(labels), {label: [list(p) for p in sorted(found[label])] for label in sorted(found)}
