"""`with_groups`: inference in bounded groups, training on the whole batch."""

import numpy
import pytest
from thinc.api import Model

from spacy_binary_ner.models.grouping import groups, with_groups


@pytest.mark.parametrize(
    "sizes,limit,expected",
    [
        ([1, 2, 3], 3, [(0, 2), (2, 3)]),
        ([5, 1], 3, [(0, 1), (1, 2)]),  # an item larger than the limit is a group alone
        ([0, 0, 2], 1, [(0, 2), (2, 3)]),
        ([], 4, []),
    ],
)
def test_groups_are_consecutive_and_bounded(sizes, limit, expected):
    assert groups(sizes, limit, lambda n: n) == expected


def test_with_groups_calls_the_layer_per_group_at_inference_only():
    calls = []

    def forward(model, X, is_train):
        calls.append((len(X), is_train))
        Y = numpy.concatenate([x for x in X]) if X else numpy.zeros((0, 2), dtype="f")
        return Y, lambda dY: dY

    grouped = with_groups(Model("rows", forward), 4, len)
    X = [numpy.full((n, 2), n, dtype="f") for n in (3, 1, 2, 4)]
    Y = grouped.predict(X)
    numpy.testing.assert_array_equal(Y, numpy.concatenate(X))
    assert calls == [(2, False), (1, False), (1, False)]
    calls.clear()
    Y, _ = grouped.begin_update(X)
    assert calls == [(4, True)]
