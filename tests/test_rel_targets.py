"""The loss targets of binary_rel, as a table of answers read by the reader
(no training): what each answer kind says about each (pair, label) cell; the
candidate pairs; and the loss's gradient against PyTorch's autograd."""

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Span
from spacy.training import Example

from spacy_binary_ner.rel.reader import RelReader
from spacy_binary_ner.rel.targets import (
    REL_ANSWERS_KEY,
    REL_COMPLETE_KEY,
    REL_ENTITIES_KEY,
    answered_label_pairs,
    build_rel_targets,
    candidate_pairs,
    rel_loss,
    rel_probabilities,
)

LABELS = ("Based_In", "Live_In", "Work_For")
U = 0.1  # unknown_weight
TEXT = "Anna works for Acme in Paris ."
SPANS = [
    {"start": 0, "end": 4, "label": "PER"},
    {"start": 15, "end": 19, "label": "ORG"},
    {"start": 23, "end": 28, "label": "LOC"},
]
PER, ORG, LOC = (0, 1), (3, 4), (5, 6)


def answer(head, child, label, ans, **extra):
    return {
        "text": TEXT,
        "spans": SPANS,
        "relations": [{"head": head, "child": child, "label": label}],
        "answer": ans,
        **extra,
    }


def targets(records, complete=False, label_pairs=None, exclusive=False, mask_above=None):
    nlp = spacy.blank("en")
    reader = RelReader(nlp)
    reader.read_records(records, complete=complete)
    (eg,) = reader.examples()
    entities = [(s.start, s.end, s.label_) for s in eg.reference.spans[REL_ENTITIES_KEY]]
    pairs, allowed = candidate_pairs(entities, 50, LABELS, label_pairs)
    # The model's probability is 0.6 on the first label of every cell, 0.1 elsewhere.
    probs = numpy.tile(numpy.array([0.6, 0.1, 0.1], dtype="float32"), (len(pairs), 1))
    truths, weights = build_rel_targets([eg], [pairs], allowed, LABELS, U, exclusive, probs, mask_above)
    return {pair: (truths[i].tolist(), weights[i].tolist()) for i, pair in enumerate(pairs)}


PAIRS = {"Work_For": [["PER", "ORG"]], "Live_In": [["PER", "LOC"]]}
GOLD = [{"text": TEXT, "spans": SPANS, "relations": [{"head": 0, "child": 1, "label": "Work_For"}]}]
ACCEPT, REJECT = [answer(0, 1, "Work_For", "accept")], [answer(0, 1, "Work_For", "reject")]
TABLE = [
    # (name, records, options of `targets`, pair, truths, weights)
    ("accept: that cell 1", ACCEPT, {}, PER + ORG, [0, 0, 1], [U, U, 1]),
    ("accept: the reverse pair unknown", ACCEPT, {}, ORG + PER, [0, 0, 0], [U, U, U]),
    ("accept: another pair unknown", ACCEPT, {}, PER + LOC, [0, 0, 0], [U, U, U]),
    ("reject: that label only", REJECT, {}, PER + ORG, [0, 0, 0], [U, U, 1]),
    (
        "ignore: weight 0",
        [answer(0, 1, "Work_For", "ignore"), answer(1, 2, "Based_In", "accept")],
        {},
        PER + ORG,
        [0, 0, 0],
        [U, U, 0],
    ),
    ("two answers of a text", ACCEPT + [answer(0, 1, "Live_In", "reject")], {}, PER + ORG, [0, 0, 1], [U, 1, 1]),
    ("later answer wins", REJECT + ACCEPT, {}, PER + ORG, [0, 0, 1], [U, U, 1]),
    ("complete: its relation 1", GOLD, {"complete": True}, PER + ORG, [0, 0, 1], [1, 1, 1]),
    ("complete: every other pair 0", GOLD, {"complete": True}, ORG + LOC, [0, 0, 0], [1, 1, 1]),
    ("complete with no relation", [{**GOLD[0], "relations": []}], {"complete": True}, PER + LOC, [0, 0, 0], [1, 1, 1]),
    ("label pairs: disallowed labels weigh 0", ACCEPT, {"label_pairs": PAIRS}, PER + ORG, [0, 0, 1], [0, 0, 1]),
    ("label pairs: unknown where allowed", ACCEPT, {"label_pairs": PAIRS}, PER + LOC, [0, 0, 0], [0, U, 0]),
    (
        "exclusive: an accept rejects the pair's other labels",
        ACCEPT,
        {"exclusive": True},
        PER + ORG,
        [0, 0, 1],
        [1, 1, 1],
    ),
    ("exclusive: other pairs stay unknown", ACCEPT, {"exclusive": True}, ORG + PER, [0, 0, 0], [U, U, U]),
    ("exclusive: a reject says nothing more", REJECT, {"exclusive": True}, PER + ORG, [0, 0, 0], [U, U, 1]),
    ("mask: a likely unknown cell weighs 0", ACCEPT, {"mask_above": 0.5}, ORG + LOC, [0, 0, 0], [0, U, U]),
    (
        "mask: answered cells keep theirs",
        REJECT + [answer(0, 1, "Based_In", "reject")],
        {"mask_above": 0.5},
        PER + ORG,
        [0, 0, 0],
        [1, U, 1],
    ),
    ("mask: complete cells keep theirs", GOLD, {"complete": True, "mask_above": 0.5}, ORG + LOC, [0, 0, 0], [1, 1, 1]),
    (
        "exclusive: an ignore still weighs 0",
        ACCEPT + [answer(0, 1, "Live_In", "ignore")],
        {"exclusive": True},
        PER + ORG,
        [0, 0, 1],
        [1, 0, 1],
    ),
]


@pytest.mark.parametrize("name,records,options,pair,truths,weights", TABLE, ids=[r[0] for r in TABLE])
def test_targets_table(name, records, options, pair, truths, weights):
    got = targets(records, **options)
    numpy.testing.assert_allclose(got[pair][0], truths)
    numpy.testing.assert_allclose(got[pair][1], weights, rtol=1e-6)


def test_label_pairs_drop_pairs_with_no_allowed_label():
    got = targets([answer(0, 1, "Work_For", "accept")], label_pairs={"Work_For": [["PER", "ORG"]]})
    assert sorted(got) == [PER + ORG]


def test_candidates_both_orders_within_max_distance():
    entities = [(0, 1, "A"), (2, 3, "B"), (10, 12, "C")]
    pairs, allowed = candidate_pairs(entities, 5, LABELS, None)
    assert pairs == [(0, 1, 2, 3), (2, 3, 0, 1)]
    assert allowed.shape == (2, 3) and allowed.all()
    pairs, _ = candidate_pairs(entities, 7, LABELS, None)
    assert (2, 3, 10, 12) in pairs and (10, 12, 2, 3) in pairs and (0, 1, 10, 12) not in pairs
    assert candidate_pairs([(0, 1, "A")], 5, LABELS, None)[0] == []


def test_answered_label_pairs_come_from_accepts_only():
    nlp = spacy.blank("en")
    ref = nlp.make_doc(TEXT)
    ref.spans[REL_ENTITIES_KEY] = [Span(ref, *PER, "PER"), Span(ref, *ORG, "ORG"), Span(ref, *LOC, "LOC")]
    ref.user_data[REL_ANSWERS_KEY] = [[*PER, *ORG, "Work_For", 1.0], [*ORG, *LOC, "Based_In", 0.0]]
    ref.user_data[REL_COMPLETE_KEY] = False
    labels, pairs = answered_label_pairs([Example(nlp.make_doc(TEXT), ref)])
    assert labels == ["Based_In", "Work_For"]
    assert pairs == {"Work_For": [["PER", "ORG"]]}


def test_loss_gradient_matches_autograd():
    rng = numpy.random.default_rng(0)
    logits = rng.normal(size=(4, 3)).astype("float32")
    truths = numpy.array([[1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype="float32")
    weights = numpy.array([[1, U, U], [0, 1, U], [1, 1, 1], [U, U, 0]], dtype="float32")
    loss, grad = rel_loss(logits, truths, weights)
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        z, torch.tensor(truths, dtype=torch.float64), weight=torch.tensor(weights, dtype=torch.float64), reduction="sum"
    ) / len(logits)
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-4)
    numpy.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_probabilities_are_zero_where_not_allowed():
    probs = rel_probabilities(numpy.zeros((2, 3), dtype="float32"), numpy.array([[1, 0, 1], [0, 0, 0]], dtype=bool))
    numpy.testing.assert_allclose(probs, [[0.5, 0, 0.5], [0, 0, 0]])
