"""The loss targets of binary_textcat, as a table of hand-made examples (no
training), and the loss's gradient against PyTorch's autograd."""

import numpy
import pytest
import spacy
import torch
from spacy.training import Example

from spacy_binary_ner.textcat.targets import (
    IGNORED_CATS_KEY,
    answered_labels,
    build_textcat_targets,
    textcat_loss,
    textcat_probabilities,
)

LABELS = ("A", "B", "C")
U = 0.1  # unknown_weight


def example(cats, ignored=()):
    nlp = spacy.blank("en")
    eg = Example.from_dict(nlp.make_doc("some text"), {"cats": cats})
    if ignored:
        eg.reference.user_data[IGNORED_CATS_KEY] = list(ignored)
    return eg


TABLE = [
    # (name, exclusive, cats, ignored, truths, weights)
    ("multi: accept A", False, {"A": 1.0}, (), [1, 0, 0], [1, U, U]),
    ("multi: reject A", False, {"A": 0.0}, (), [0, 0, 0], [1, U, U]),
    ("multi: accept A, reject B", False, {"A": 1.0, "B": 0.0}, (), [1, 0, 0], [1, 1, U]),
    ("multi: ignore A, reject B", False, {"B": 0.0}, ("A",), [0, 0, 0], [0, 1, U]),
    ("multi: complete", False, {"A": 1.0, "B": 0.0, "C": 1.0}, (), [1, 0, 1], [1, 1, 1]),
    ("multi: complete, soft value", False, {"A": 0.25, "B": 0.0, "C": 1.0}, (), [0.25, 0, 1], [1, 1, 1]),
    ("multi: only an unknown label answered", False, {"Z": 1.0}, (), [0, 0, 0], [U, U, U]),
    # exclusive: a known class is the cross-entropy target alone.
    ("excl: accept A", True, {"A": 1.0}, (), [1, 0, 0], [1, 0, 0]),
    ("excl: accept A, reject B", True, {"A": 1.0, "B": 0.0}, (), [1, 0, 0], [1, 0, 0]),
    ("excl: complete", True, {"A": 0.0, "B": 1.0, "C": 0.0}, (), [0, 1, 0], [0, 1, 0]),
    ("excl: two accepted share the class", True, {"A": 1.0, "C": 1.0}, (), [1, 0, 1], [0.5, 0, 0.5]),
    # exclusive, no class known: rejects, ignores and the prior.
    ("excl: reject A", True, {"A": 0.0}, (), [0, 0, 0], [1, U, U]),
    ("excl: reject A, ignore B", True, {"A": 0.0}, ("B",), [0, 0, 0], [1, 0, U]),
    ("excl: reject A and B", True, {"A": 0.0, "B": 0.0}, (), [0, 0, 0], [1, 1, U]),
]


@pytest.mark.parametrize("name,exclusive,cats,ignored,truths,weights", TABLE, ids=[row[0] for row in TABLE])
def test_targets_table(name, exclusive, cats, ignored, truths, weights):
    got_truths, got_weights = build_textcat_targets([example(cats, ignored)], LABELS, exclusive, U)
    numpy.testing.assert_allclose(got_truths[0], truths)
    numpy.testing.assert_allclose(got_weights[0], weights)


def test_targets_of_a_batch_are_the_rows_of_each():
    rows = [(cats, ignored, exclusive) for _, exclusive, cats, ignored, _, _ in TABLE if not exclusive]
    truths, weights = build_textcat_targets([example(c, i) for c, i, _ in rows], LABELS, False, U)
    for k, (cats, ignored, _) in enumerate(rows):
        one_t, one_w = build_textcat_targets([example(cats, ignored)], LABELS, False, U)
        numpy.testing.assert_array_equal(truths[k], one_t[0])
        numpy.testing.assert_array_equal(weights[k], one_w[0])


def torch_loss(logits, truths, weights, exclusive):
    """The loss of the targets module's docstring, written with torch ops."""
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    p = torch.softmax(z, dim=1) if exclusive else torch.sigmoid(z)
    t, w = torch.tensor(truths, dtype=torch.float64), torch.tensor(weights, dtype=torch.float64)
    loss = -(w * t * torch.log(p) + w * (1 - t) * torch.log(1 - p)).sum() / len(logits)
    loss.backward()
    return float(loss.detach()), z.grad.numpy()


@pytest.mark.parametrize("exclusive", [False, True])
def test_loss_and_gradient_match_autograd(exclusive):
    rng = numpy.random.default_rng(0)
    logits = rng.normal(size=(len(TABLE), len(LABELS)))
    examples = [example(cats, ignored) for _, _, cats, ignored, _, _ in TABLE]
    truths, weights = build_textcat_targets(examples, LABELS, exclusive, U)
    loss, d_logits = textcat_loss(logits, truths, weights, exclusive)
    expected_loss, expected_d = torch_loss(logits, truths, weights, exclusive)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    numpy.testing.assert_allclose(d_logits, expected_d, rtol=1e-4, atol=1e-6)


def test_exclusive_reject_pushes_that_class_only_down():
    """-log(1 - p_r) under the softmax: the rejected logit goes down by p_r,
    every other logit k up by p_k p_r / (1 - p_r), so the others share the
    mass in proportion to their probabilities; a text's row sums to 0."""
    logits = numpy.array([[1.0, 0.5, -0.5, 2.0]])
    labels = ("A", "B", "C", "D")
    truths, weights = build_textcat_targets([example({"D": 0.0})], labels, True, unknown_weight=0.0)
    loss, d = textcat_loss(logits, truths, weights, exclusive=True)
    p = textcat_probabilities(logits, exclusive=True)[0]
    assert loss == pytest.approx(-numpy.log(1 - p[3]), rel=1e-5)
    # Gradient descent moves the logits by -d.
    assert d[0, 3] == pytest.approx(p[3], rel=1e-5)
    for k in range(3):
        assert d[0, k] == pytest.approx(-p[k] * p[3] / (1 - p[3]), rel=1e-5)
        assert d[0, k] < 0
    assert d[0].sum() == pytest.approx(0.0, abs=1e-6)
    # One step down the gradient: D loses mass and every other class gains it.
    p_after = textcat_probabilities(logits - 0.5 * d, exclusive=True)[0]
    assert p_after[3] < p[3]
    assert all(p_after[k] > p[k] for k in range(3))


def test_exclusive_accept_is_cross_entropy():
    logits = numpy.array([[0.3, -1.0, 2.0]])
    truths, weights = build_textcat_targets([example({"B": 1.0})], LABELS, True, U)
    loss, d = textcat_loss(logits, truths, weights, exclusive=True)
    p = textcat_probabilities(logits, exclusive=True)[0]
    assert loss == pytest.approx(-numpy.log(p[1]), rel=1e-5)
    numpy.testing.assert_allclose(d[0], p - numpy.array([0, 1, 0]), rtol=1e-5)


def test_multilabel_gradient_is_weighted_p_minus_t():
    logits = numpy.array([[0.0, 1.0, -2.0]])
    truths, weights = build_textcat_targets([example({"A": 1.0}, ignored=("B",))], LABELS, False, U)
    _, d = textcat_loss(logits, truths, weights, exclusive=False)
    p = textcat_probabilities(logits, exclusive=False)[0]
    numpy.testing.assert_allclose(d[0], [p[0] - 1, 0.0, U * p[2]], rtol=1e-5)


def test_answered_labels():
    assert answered_labels([example({"B": 1.0}, ignored=("C",)), example({"A": 0.0})]) == ["A", "B", "C"]
