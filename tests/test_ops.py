"""The CPU matrix-product switch: numpy's BLAS instead of BLIS, same results."""

import numpy
import pytest
import spacy
from thinc.api import NumpyOps, get_current_ops, set_current_ops, use_ops

from spacy_binary_ner.ops import CPU_OPS_CALLBACK, cpu_ops, use_cpu_ops

from .util import SMALL_MODEL


@pytest.fixture
def restore_ops():
    ops = get_current_ops()
    yield
    set_current_ops(ops)


@pytest.mark.parametrize("trans1", [False, True])
@pytest.mark.parametrize("trans2", [False, True])
def test_numpy_gemm_equals_blis(trans1, trans2):
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(7, 5) if not trans1 else (5, 7)).astype("f")
    y = rng.normal(size=(5, 3) if not trans2 else (3, 5)).astype("f")
    blis = NumpyOps(use_blis=True).gemm(x, y, trans1=trans1, trans2=trans2)
    out = numpy.zeros((7, 3), dtype="f")
    via_numpy = NumpyOps(use_blis=False).gemm(x, y, out=out, trans1=trans1, trans2=trans2)
    assert via_numpy is out
    numpy.testing.assert_allclose(via_numpy, blis, rtol=1e-5, atol=1e-5)


def test_use_cpu_ops_sets_and_leaves_other_ops(restore_ops):
    assert use_cpu_ops(use_blis=False)
    assert isinstance(get_current_ops(), NumpyOps) and not get_current_ops().use_blis
    assert use_cpu_ops(use_blis=True)
    assert get_current_ops().use_blis

    class OtherOps(NumpyOps):  # e.g. thinc-apple-ops, or a GPU's ops
        name = "other"

    with use_ops("numpy"):
        set_current_ops(OtherOps())
        assert not use_cpu_ops(use_blis=False)
        assert type(get_current_ops()) is OtherOps


def test_cpu_ops_block_builds_models_with_those_ops_and_restores(restore_ops):
    before = NumpyOps()
    set_current_ops(before)
    with cpu_ops(use_blis=False):
        assert not get_current_ops().use_blis
        nlp = spacy.blank("en")
        ner = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    assert get_current_ops() is before
    assert all(not node.ops.use_blis for node in ner.model.walk())

    class OtherOps(NumpyOps):  # e.g. a GPU's ops: left alone
        name = "other"

    other = OtherOps()
    set_current_ops(other)
    with cpu_ops(use_blis=False):
        assert get_current_ops() is other
    assert get_current_ops() is other


@pytest.mark.parametrize("use_blis", [False, True])
def test_callback_in_config_builds_the_models_with_those_ops(restore_ops, use_blis):
    set_current_ops(NumpyOps())
    nlp = spacy.blank("en", config={"nlp": {"before_creation": {"@callbacks": CPU_OPS_CALLBACK, "use_blis": use_blis}}})
    ner = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    ner.add_label("LOC")
    nlp.initialize()
    assert all(node.ops.use_blis is use_blis for node in ner.model.walk())
    doc = nlp("Anna lives in Paris .")
    assert "binary_ner_scores" in doc.spans


def test_same_scores_with_either_ops(restore_ops):
    scores = []
    for use_blis in (True, False):
        use_cpu_ops(use_blis)
        spacy.util.fix_random_seed(0)
        nlp = spacy.blank("en")
        ner = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
        ner.add_label("LOC")
        nlp.initialize()
        doc = nlp.make_doc("Anna lives in Paris , near the river .")
        scores.append(ner.model.ops.to_numpy(ner.predict([doc])))
    numpy.testing.assert_allclose(scores[0], scores[1], rtol=1e-4, atol=1e-5)
