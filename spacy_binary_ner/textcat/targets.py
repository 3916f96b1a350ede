"""The loss of `binary_textcat`: targets per text and label, built in one
place from the answers on the reference docs, and the weighted loss.

The answers of a text are on its reference doc: `doc.cats[label]` is 1.0 for
an accept, 0.0 for a reject (a complete annotation gives every label a
value), and `doc.user_data[IGNORED_CATS_KEY]` lists its ignored labels. A
label in neither is unknown. `build_textcat_targets` turns them into a truth
and a weight per text and label:

| mode        | answer                         | truth | weight            |
|-------------|--------------------------------|-------|-------------------|
| multi-label | accept / reject / complete v   | 1 / 0 / v | 1             |
| multi-label | ignore                         | 0     | 0                 |
| multi-label | unknown                        | 0     | `unknown_weight`  |
| exclusive   | the text's class (accept, 1.0) | 1     | 1 (split among several) |
| exclusive   | any other label of that text   | 0     | 0: the class's cross-entropy covers it |
| exclusive, no class known | reject       | 0     | 1                 |
| exclusive, no class known | ignore       | 0     | 0                 |
| exclusive, no class known | unknown      | 0     | `unknown_weight`  |

`textcat_loss` reads the same pair in both modes as `-sum(w * t * log(p) + w
* (1 - t) * log(1 - p))`: with independent sigmoids that is binary
cross-entropy; under the softmax of exclusive labels the truth-1 term is the
class's cross-entropy and a reject's `-log(1 - p)` pushes that class only
down, so the other classes share the mass it loses.
"""

from typing import Iterable, List, Sequence, Tuple

import numpy
from spacy.training import Example

# Key in a reference doc's `user_data` of the labels whose answer was "ignore".
IGNORED_CATS_KEY = "binary_textcat_ignored"
_EPS = 1e-7


def build_textcat_targets(
    examples: Iterable[Example], labels: Sequence[str], exclusive: bool, unknown_weight: float
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """The truth and weight of every text and label (see the module's table).

    examples (Iterable[Example]): The batch; answers on the reference docs.
    labels (Sequence[str]): The pipe's labels, in the model's column order.
    exclusive (bool): Whether the labels are mutually exclusive.
    unknown_weight (float): Weight of the "label does not hold" prior on unknown labels.
    RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): Truths and weights, float32,
        each of shape (n_texts, n_labels).
    """
    examples = list(examples)
    truths = numpy.zeros((len(examples), len(labels)), dtype="float32")
    weights = numpy.zeros((len(examples), len(labels)), dtype="float32")
    for i, eg in enumerate(examples):
        cats = eg.reference.cats
        ignored = set(eg.reference.user_data.get(IGNORED_CATS_KEY, ()))
        if exclusive:
            positive = {j: float(cats[label]) for j, label in enumerate(labels) if cats.get(label, 0.0) > 0.0}
            if positive:
                total = sum(positive.values())
                for j, value in positive.items():
                    truths[i, j] = 1.0
                    weights[i, j] = value / total
                continue
        for j, label in enumerate(labels):
            if label in ignored:
                continue
            if label in cats:
                truths[i, j] = cats[label]
                weights[i, j] = 1.0
            else:
                weights[i, j] = unknown_weight
    return truths, weights


def textcat_probabilities(logits: numpy.ndarray, exclusive: bool) -> numpy.ndarray:
    """Probabilities from logits: softmax over the labels if exclusive, else
    a sigmoid each.

    logits (numpy.ndarray): (n_texts, n_labels).
    exclusive (bool): Whether the labels are mutually exclusive.
    RETURNS (numpy.ndarray): The probabilities, same shape.
    """
    if exclusive:
        shifted = numpy.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + numpy.exp(-logits))


def textcat_loss(
    logits: numpy.ndarray, truths: numpy.ndarray, weights: numpy.ndarray, exclusive: bool
) -> Tuple[float, numpy.ndarray]:
    """The weighted loss of the module's table, summed over labels and
    averaged over texts, and its gradient for the logits.

    logits (numpy.ndarray): (n_texts, n_labels).
    truths (numpy.ndarray): From `build_textcat_targets`.
    weights (numpy.ndarray): From `build_textcat_targets`.
    exclusive (bool): Whether the labels are mutually exclusive.
    RETURNS (Tuple[float, numpy.ndarray]): The loss and d(loss)/d(logits), float32.
    """
    n = max(len(logits), 1)
    probs = textcat_probabilities(logits.astype("float64"), exclusive)
    up = weights * truths  # weight of -log(p)
    down = weights * (1.0 - truths)  # weight of -log(1 - p)
    loss = -(up * numpy.log(probs + _EPS) + down * numpy.log(1.0 - probs + _EPS)).sum() / n
    if exclusive:
        # d/dz_k of -sum_j up_j log p_j is p_k sum(up) - up_k; of -sum_j
        # down_j log(1 - p_j) it is p_k (h_k - sum_j h_j p_j), h = down / (1 - p):
        # a reject of r lowers z_r by p_r and raises every other z_k by
        # p_k p_r / (1 - p_r), in proportion to its probability.
        h = down / numpy.maximum(1.0 - probs, _EPS)
        d_logits = probs * up.sum(axis=1, keepdims=True) - up
        d_logits += probs * (h - (h * probs).sum(axis=1, keepdims=True))
    else:
        # Binary cross-entropy: p - t, positive pushes the logit down.
        d_logits = weights * (probs - truths)
    return float(loss), (d_logits / n).astype("float32")


def answered_labels(examples: Iterable[Example]) -> List[str]:
    """Every label answered or annotated in the examples, sorted (what the
    pipe learns when no labels are given).

    examples (Iterable[Example]): The examples.
    RETURNS (List[str]): The labels.
    """
    found = set()
    for eg in examples:
        found.update(eg.reference.cats)
        found.update(eg.reference.user_data.get(IGNORED_CATS_KEY, ()))
    return sorted(found)
