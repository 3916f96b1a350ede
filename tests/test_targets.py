"""The loss targets, as a table of hand-made examples (no training)."""

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.training import Example

from spacy_binary_ner.targets import ConflictingAnswersError, build_targets, cell_coordinates, n_span_cells, span_cells

from .util import make_example

WORDS = ["a", "b", "c", "d"]
LABELS = ("X", "Y")
L = 3
U = 0.1  # unknown_weight
# The 9 spans of a 4-token doc with max_span_length 3, in the model's row order.
CELLS = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]


def expected(positives=(), known=(), rejected=(), unknown_weight=U):
    """Targets spelled out per span: `positives` are (start, end, label) cells
    with truth 1, `known` are spans whose every label has weight 1, and
    `rejected` (start, end, label) cells have weight 1; the rest weigh `U`."""
    truth = numpy.zeros((len(CELLS), len(LABELS)), dtype="float32")
    weight = numpy.full((len(CELLS), len(LABELS)), unknown_weight, dtype="float32")
    for row, span in enumerate(CELLS):
        if span in known:
            weight[row] = 1
        for k, label in enumerate(LABELS):
            if span + (label,) in positives:
                truth[row, k] = 1
            if span + (label,) in rejected:
                weight[row, k] = 1
    return truth, weight


ALL = set(CELLS)
CROSSING_BC = {(0, 2), (0, 3), (1, 2), (1, 3), (1, 4), (2, 3), (2, 4)}  # overlap b-c

TABLE = [
    # accept X on b-c: X right there, Y wrong there, every span overlapping it
    # is no entity (flat), the spans of a and of d alone stay unknown.
    ("accept", dict(ents=[(1, 3, "X")]), expected({(1, 3, "X")}, CROSSING_BC)),
    # reject X on b-c: that one cell known, nothing else touched.
    ("reject", dict(rejects=[(1, 3, "X")]), expected(rejected={(1, 3, "X")})),
    # nothing answered (an ignore): every cell at the prior.
    ("no answer", dict(), expected()),
    # complete annotation: every span known.
    ("complete", dict(ents=[(1, 3, "X")], default="outside"), expected({(1, 3, "X")}, ALL)),
    ("complete, no entities", dict(default="outside"), expected(known=ALL)),
    # accept of a label the model does not have: that span is an entity of another
    # type, so none of our labels, and crossing spans are no entity.
    ("accept unknown label", dict(ents=[(1, 3, "Z")]), expected(known=CROSSING_BC)),
    # a reject of the other label on an accepted span changes nothing.
    (
        "accept + reject other label",
        dict(ents=[(1, 3, "X")], rejects=[(1, 3, "Y")]),
        expected({(1, 3, "X")}, CROSSING_BC),
    ),
    # two rejects on one span: just those two cells.
    ("two rejects", dict(rejects=[(0, 1, "X"), (0, 1, "Y")]), expected(rejected={(0, 1, "X"), (0, 1, "Y")})),
    # an entity longer than max_span_length: no cell can be it, all overlap it.
    ("accept too long", dict(ents=[(0, 4, "X")]), expected(known=ALL)),
    # token a known "O" (partial annotation): spans holding it are no entity.
    ("one O token", dict(ents=[(0, 1, "X")], default="missing"), expected({(0, 1, "X")}, {(0, 1), (0, 2), (0, 3)})),
    ("unknown_weight 0", dict(ents=[(1, 3, "X")]), expected({(1, 3, "X")}, CROSSING_BC, unknown_weight=0.0)),
]


@pytest.mark.parametrize("name,spec,targets", TABLE, ids=[row[0] for row in TABLE])
def test_targets_table(name, spec, targets):
    nlp = spacy.blank("en")
    eg = make_example(nlp, WORDS, **spec)
    u = 0.0 if name == "unknown_weight 0" else U
    truth, weight = build_targets([eg], LABELS, L, u, "incorrect_spans")
    numpy.testing.assert_array_equal(truth, targets[0])
    numpy.testing.assert_array_equal(weight, targets[1])


def test_rows_follow_cells():
    assert [tuple(x) for x in numpy.argwhere(span_cells(4, 3))] == [(s, e - s - 1) for s, e in CELLS]
    for n in range(0, 12):
        for max_len in (1, 3, 30):
            assert n_span_cells(n, max_len) == span_cells(n, max_len).sum()


def test_batch_concatenates_docs_and_skips_empty():
    nlp = spacy.blank("en")
    egs = [
        make_example(nlp, WORDS, ents=[(1, 3, "X")]),
        make_example(nlp, []),
        make_example(nlp, ["z"], default="outside"),
    ]
    truth, weight = build_targets(egs, LABELS, L, U, "incorrect_spans")
    assert truth.shape == (len(CELLS) + 1, 2)
    numpy.testing.assert_array_equal(weight[-1], [1, 1])
    assert build_targets([], LABELS, L, U, "incorrect_spans")[0].shape == (0, 2)


def test_accept_and_reject_same_span_label_is_an_error():
    nlp = spacy.blank("en")
    eg = make_example(nlp, WORDS, ents=[(1, 3, "X")], rejects=[(1, 3, "X")])
    with pytest.raises(ConflictingAnswersError, match="'b c'.*both an entity and rejected"):
        build_targets([eg], LABELS, L, U, "incorrect_spans")


def test_rejects_under_another_key_are_not_read():
    nlp = spacy.blank("en")
    eg = make_example(nlp, WORDS, rejects=[(1, 3, "X")], key="other")
    truth, weight = build_targets([eg], LABELS, L, U, "incorrect_spans")
    numpy.testing.assert_array_equal(weight, expected()[1])


def test_different_tokenization_is_aligned():
    nlp = spacy.blank("en")
    # The reference has "bc" as one token; the predicted doc splits it in two.
    ref = Doc(nlp.vocab, words=["a", "bc", "d"])
    predicted = Doc(nlp.vocab, words=["a", "b", "c", "d"], spaces=[True, False, True, False])
    ref.set_ents([Span(ref, 1, 2, label="X")], default="outside")
    truth, weight = build_targets([Example(predicted, ref)], LABELS, L, U, "incorrect_spans")
    exp_truth, exp_weight = expected({(1, 3, "X")}, ALL)
    numpy.testing.assert_array_equal(truth, exp_truth)
    numpy.testing.assert_array_equal(weight, exp_weight)


def test_unknown_mask_above_drops_only_confident_unknown_cells():
    nlp = spacy.blank("en")
    eg = make_example(nlp, WORDS, ents=[(1, 3, "X")], rejects=[(3, 4, "Y")])
    probs = numpy.full((len(CELLS), len(LABELS)), 0.9, dtype="float32")
    probs[0] = 0.2  # span "a": below the threshold, keeps the prior
    truth, weight = build_targets([eg], LABELS, L, U, "incorrect_spans", probs=probs, unknown_mask_above=0.5)
    exp_truth, exp_weight = expected({(1, 3, "X")}, CROSSING_BC, rejected={(3, 4, "Y")})
    exp_weight[CELLS.index((3, 4)), 0] = 0.0  # span "d", X: unknown and confident
    numpy.testing.assert_array_equal(truth, exp_truth)
    numpy.testing.assert_array_equal(weight, exp_weight)


def test_pseudo_above_makes_only_confident_unknown_cells_positive():
    nlp = spacy.blank("en")
    eg = make_example(nlp, WORDS, ents=[(1, 3, "X")], rejects=[(3, 4, "Y")])
    probs = numpy.full((len(CELLS), len(LABELS)), 0.2, dtype="float32")
    probs[CELLS.index((0, 1))] = [0.95, 0.6]  # "a": X confident, Y masked only
    probs[CELLS.index((3, 4))] = 0.95  # "d": X unknown and confident; Y rejected
    probs[CELLS.index((1, 2))] = 0.95  # "b": crosses the accepted entity
    truth, weight = build_targets(
        [eg], LABELS, L, U, "incorrect_spans", probs=probs, unknown_mask_above=0.5, pseudo_above=0.9, pseudo_weight=0.3
    )
    exp_truth, exp_weight = expected({(1, 3, "X")}, CROSSING_BC, rejected={(3, 4, "Y")})
    a, d = CELLS.index((0, 1)), CELLS.index((3, 4))
    exp_truth[a, 0] = exp_truth[d, 0] = 1.0
    exp_weight[a, 0] = exp_weight[d, 0] = 0.3
    exp_weight[a, 1] = 0.0
    numpy.testing.assert_array_equal(truth, exp_truth)
    numpy.testing.assert_array_equal(weight, exp_weight)
    # Without probabilities nothing changes.
    plain = build_targets([eg], LABELS, L, U, "incorrect_spans", pseudo_above=0.9)
    numpy.testing.assert_array_equal(plain[0], expected({(1, 3, "X")}, CROSSING_BC, rejected={(3, 4, "Y")})[0])


def test_cell_coordinates_are_the_cells_in_row_order():
    from spacy_binary_ner.targets import cell_coordinates

    for n, L in [(0, 3), (1, 3), (4, 3), (5, 10)]:
        starts, widths = cell_coordinates(n, L)
        assert list(zip(starts.tolist(), widths.tolist())) == [tuple(x) for x in numpy.argwhere(span_cells(n, L))]
        assert len(starts) == n_span_cells(n, L)
        assert not starts.flags.writeable  # shared by every doc of that length


@pytest.mark.parametrize("n_tokens", [0, 1, 3, 10, 4096, 4097, 5000])
@pytest.mark.parametrize("max_span_length", [1, 4, 10])
def test_cell_coordinates_are_the_span_cells_in_row_order(n_tokens, max_span_length):
    starts, widths = cell_coordinates(n_tokens, max_span_length)
    expected_starts, expected_widths = numpy.nonzero(span_cells(n_tokens, max_span_length))
    assert starts.tolist() == expected_starts.tolist() and widths.tolist() == expected_widths.tolist()
    assert len(starts) == n_span_cells(n_tokens, max_span_length) and starts.dtype == numpy.int32


def test_weak_entities_are_positive_only_in_unknown_cells():
    nlp = spacy.blank("en")
    eg = make_example(nlp, WORDS, ents=[(1, 3, "X")], rejects=[(3, 4, "Y")])
    weak = [(0, 1, "X"), (3, 4, "Y"), (1, 2, "X"), (3, 4, "X"), (0, 1, "Z")]
    eg.reference.spans["weak"] = [Span(eg.reference, s, e, label=lab) for s, e, lab in weak]
    truth, weight = build_targets([eg], LABELS, L, U, "incorrect_spans", weak_spans_key="weak", weak_weight=0.4)
    exp_truth, exp_weight = expected({(1, 3, "X")}, CROSSING_BC, rejected={(3, 4, "Y")})
    # "a" X and "d" X were unknown: weak positives. "d" Y was rejected and "b"
    # crosses the accepted entity: both stay known negatives. Z is no label.
    a, d = CELLS.index((0, 1)), CELLS.index((3, 4))
    exp_truth[a, 0] = exp_truth[d, 0] = 1.0
    exp_weight[a, 0] = exp_weight[d, 0] = 0.4
    numpy.testing.assert_array_equal(truth, exp_truth)
    numpy.testing.assert_array_equal(weight, exp_weight)
    # A weak cell is not unknown: the mask and self-training leave it as it is.
    probs = numpy.full((len(CELLS), len(LABELS)), 0.95, dtype="float32")
    truth2, weight2 = build_targets(
        [eg],
        LABELS,
        L,
        U,
        "incorrect_spans",
        probs=probs,
        unknown_mask_above=0.5,
        pseudo_above=0.9,
        pseudo_weight=0.1,
        weak_spans_key="weak",
        weak_weight=0.4,
    )
    assert weight2[a, 0] == weight2[d, 0] == 0.4
    # Weight 0, or another key: the weak entities are not read.
    for kwargs in (dict(weak_spans_key="weak", weak_weight=0.0), dict(weak_spans_key="other", weak_weight=0.4)):
        plain = build_targets([eg], LABELS, L, U, "incorrect_spans", **kwargs)
        numpy.testing.assert_array_equal(plain[1], expected({(1, 3, "X")}, CROSSING_BC, rejected={(3, 4, "Y")})[1])


def test_weak_until_stops_the_push_at_the_boundary():
    nlp = spacy.blank("en")
    eg = make_example(nlp, WORDS, ents=[(1, 3, "X")])
    eg.reference.spans["weak"] = [Span(eg.reference, 0, 1, label="X"), Span(eg.reference, 3, 4, label="X")]
    a, d = CELLS.index((0, 1)), CELLS.index((3, 4))
    probs = numpy.full((len(CELLS), len(LABELS)), 0.2, dtype="float32")
    probs[a, 0] = 0.6  # "a" X: already past the boundary
    truth, weight = build_targets(
        [eg], LABELS, L, U, "incorrect_spans", probs=probs, weak_spans_key="weak", weak_weight=0.4, weak_until=0.5
    )
    assert truth[a, 0] == truth[d, 0] == 1.0
    assert (weight[a, 0], weight[d, 0]) == (0.0, numpy.float32(0.4))
    # The other cells are as without weak entities.
    exp_weight = expected({(1, 3, "X")}, CROSSING_BC)[1]
    mask = numpy.ones_like(weight, dtype=bool)
    mask[a, 0] = mask[d, 0] = False
    numpy.testing.assert_array_equal(weight[mask], exp_weight[mask])


def test_one_unknown_weight_per_example():
    nlp = spacy.blank("en")
    egs = [make_example(nlp, WORDS, ents=[(1, 3, "X")]), make_example(nlp, WORDS)]
    truth, weight = build_targets(egs, LABELS, L, [0.1, 0.4], "incorrect_spans")
    first, second = expected({(1, 3, "X")}, CROSSING_BC, unknown_weight=0.1), expected(unknown_weight=0.4)
    numpy.testing.assert_array_equal(truth, numpy.concatenate([first[0], second[0]]))
    numpy.testing.assert_array_equal(weight, numpy.concatenate([first[1], second[1]]))
    with pytest.raises(ValueError, match="2 unknown weights for 1 examples"):
        build_targets(egs[:1], LABELS, L, [0.1, 0.4], "incorrect_spans")
