"""`use_averages`: the optimizer's moving average reaches the PyTorch weights too."""

import numpy
import pytest
import spacy
import torch
from spacy.util import fix_random_seed
from thinc.api import Adam

from spacy_binary_ner.data import records_to_examples

from .test_custom_module import spans_model
from .util import SMALL_MODEL, TEACH_RECORDS


def torch_state(nlp):
    (shim,) = [shim for node in nlp.get_pipe("binary_ner").model.walk() for shim in node.shims]
    return shim, {name: tensor.detach().clone() for name, tensor in shim._model.state_dict().items()}


@pytest.mark.parametrize("model", [SMALL_MODEL, spans_model()], ids=["SpanScorer", "TorchSpanScorer"])
def test_averaged_weights_reach_the_torch_module_and_are_saved(model):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"model": model})
    examples = records_to_examples(nlp, TEACH_RECORDS)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01, use_averages=True)
    for _ in range(10):
        nlp.update(examples, sgd=optimizer)
    shim, live = torch_state(nlp)
    # Thinc layers and shims are numbered apart, so a Thinc layer can share the
    # shim's id: its parameters ("E", "W") are not the module's.
    averages = {
        key[1]: value
        for key, value in optimizer.averages.items()
        if isinstance(key, tuple) and key[0] == shim.id and key[1] in live
    }
    assert averages
    with nlp.use_params(optimizer.averages):
        _, inside = torch_state(nlp)
        saved = nlp.to_bytes()
    for name, average in averages.items():
        assert numpy.allclose(inside[name].numpy(), average)
    assert any(not torch.equal(live[name], inside[name]) for name in averages)
    # The live weights are back afterwards, and what was saved is the average.
    _, after = torch_state(nlp)
    assert all(torch.equal(live[name], after[name]) for name in live)
    loaded = spacy.blank("en")
    loaded.add_pipe("binary_ner", config={"model": model})
    loaded.from_bytes(saved)
    _, reloaded = torch_state(loaded)
    assert all(torch.equal(inside[name], reloaded[name]) for name in inside)
