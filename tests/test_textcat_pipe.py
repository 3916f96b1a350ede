"""The binary_textcat pipe: settings written once, training from answers
until it overfits, save and load, empty docs, and a user's own torch module
behind the same loss."""

import inspect
from typing import get_type_hints

import numpy
import pytest
import spacy
import torch
from spacy.language import Language
from spacy.training import Example
from spacy.util import fix_random_seed, load_model_from_config, make_tempdir, registry
from torch import nn

from spacy_binary_ner.textcat.pipe import BinaryTextcat, make_binary_textcat
from spacy_binary_ner.textcat.reader import textcat_records_to_examples
from spacy_binary_ner.textcat.settings import TextcatSettings

from .util import SMALL_MODEL as NER_SMALL_MODEL

# The small tok2vec of the binary_ner tests.
SMALL_MODEL = {
    "@architectures": "spacy-binary-ner.TextcatScorer.v1",
    "hidden_width": 32,
    "dropout": 0.0,
    "tok2vec": NER_SMALL_MODEL["tok2vec"],
}
# Answers as teach tools write them: one label per text, accepted or
# rejected, and one choice answer.
ANSWERS = [
    {"text": "I love this film", "label": "POS", "answer": "accept"},
    {"text": "What a great day", "label": "NEG", "answer": "reject"},
    {"text": "This is awful", "label": "NEG", "answer": "accept"},
    {"text": "I hate rainy mornings", "label": "POS", "answer": "reject"},
    {"text": "Nothing to say about it", "label": "NEU", "answer": "accept"},
    {
        "text": "Such a wonderful gift",
        "options": [{"id": "POS"}, {"id": "NEG"}, {"id": "NEU"}],
        "accept": ["POS"],
        "answer": "accept",
    },
]
EXPECTED = {
    "I love this film": "POS",
    "What a great day": "POS",
    "This is awful": "NEG",
    "I hate rainy mornings": "NEG",
    "Nothing to say about it": "NEU",
    "Such a wonderful gift": "POS",
}
NOT_SETTINGS = {"nlp", "name", "model", "scorer"}


def make_nlp(exclusive: bool, model=None) -> Language:
    fix_random_seed(0)  # the torch module is built, and its weights drawn, with the pipe
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_textcat", config={"model": model or SMALL_MODEL, "exclusive": exclusive})
    return nlp


def train(nlp: Language, examples, steps: int = 60):
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    for _ in range(steps):
        losses = nlp.update(examples, sgd=optimizer)
    return losses


def test_factory_signature_default_config_and_cfg_name_every_setting():
    names = TextcatSettings.names()
    assert [n for n in inspect.signature(make_binary_textcat).parameters if n not in NOT_SETTINGS] == list(names)
    factory_types = get_type_hints(make_binary_textcat)
    assert {n: factory_types[n] for n in names} == get_type_hints(TextcatSettings)
    defaults = Language.get_factory_meta("binary_textcat").default_config
    assert [key for key in defaults if key not in NOT_SETTINGS] == list(names)
    assert {n: defaults[n] for n in names} == TextcatSettings().to_dict()
    pipe = make_nlp(True).get_pipe("binary_textcat")
    assert set(pipe.cfg) == {"labels", *names}
    assert pipe.cfg["exclusive"] is True
    settings = TextcatSettings(threshold=0.3)
    assert BinaryTextcat(spacy.blank("en").vocab, pipe.model, settings=settings).cfg["threshold"] == 0.3


def check_answers_learned(nlp: Language, examples, exclusive: bool):
    """Accepted labels above 0.5, rejected ones below; in exclusive mode the
    accepted class first and the probabilities summing to 1."""
    docs = list(nlp.pipe(eg.reference.text for eg in examples))
    for doc, eg in zip(docs, examples):
        for label, value in eg.reference.cats.items():
            assert (doc.cats[label] > 0.5) == (value == 1.0), (doc.text, doc.cats)
        if exclusive:
            assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)
            if 1.0 in eg.reference.cats.values():
                assert max(doc.cats, key=doc.cats.get) == EXPECTED[doc.text], doc.cats
    return docs


@pytest.mark.parametrize("exclusive", [True, False])
def test_overfitting_IO(exclusive):
    nlp = make_nlp(exclusive)
    examples = textcat_records_to_examples(nlp, ANSWERS)
    losses = train(nlp, examples)
    assert losses["binary_textcat"] < 0.05
    pipe = nlp.get_pipe("binary_textcat")
    assert pipe.labels == ("NEG", "NEU", "POS")
    texts = list(EXPECTED)
    docs = check_answers_learned(nlp, examples, exclusive)
    # Rejects are learned: "What a great day" was only ever "not NEG"; in
    # exclusive mode the other two share its mass.
    assert docs[1].cats["NEG"] < 0.1
    if exclusive:
        assert docs[1].cats["POS"] > 0.3 and docs[1].cats["NEU"] > 0.3
    with make_tempdir() as d:
        nlp.to_disk(d)
        loaded = spacy.load(d)
    assert loaded.get_pipe("binary_textcat").cfg == pipe.cfg
    for doc, again in zip(docs, loaded.pipe(texts)):
        assert list(doc.cats) == list(again.cats)
        numpy.testing.assert_allclose(list(doc.cats.values()), list(again.cats.values()), rtol=1e-5, atol=1e-6)
    if exclusive:  # scored on the texts whose class an answer gives
        gold = [
            Example.from_dict(nlp.make_doc(t), {"cats": {k: float(k == EXPECTED[t]) for k in pipe.labels}})
            for t in (eg.reference.text for eg in examples if 1.0 in eg.reference.cats.values())
        ]
        assert len(gold) == 4
        scores = nlp.evaluate(gold)
        assert scores["cats_micro_f"] == 1.0


def test_config_round_trip():
    nlp = make_nlp(True)
    assert load_model_from_config(nlp.config, auto_fill=False).config == nlp.config


def test_empty_docs_and_batches():
    nlp = make_nlp(True)
    train(nlp, textcat_records_to_examples(nlp, ANSWERS), steps=2)
    docs = list(nlp.pipe(["", "I love this film", " "]))
    assert sum(docs[0].cats.values()) == pytest.approx(1.0)
    assert set(docs[1].cats) == {"NEG", "NEU", "POS"}
    assert list(nlp.pipe([])) == []
    empty = [Example.from_dict(nlp.make_doc(""), {"cats": {"POS": 1.0}})]
    assert nlp.update(empty)["binary_textcat"] == 0.0


def test_no_labels():
    nlp = make_nlp(True)
    with pytest.raises(ValueError, match="exclusive labels need at least two"):
        nlp.initialize(lambda: textcat_records_to_examples(nlp, ANSWERS[:1]))
    nlp = make_nlp(False)
    unanswered = [Example.from_dict(nlp.make_doc("a text"), {})]
    nlp.get_pipe("binary_textcat").initialize(lambda: unanswered, labels=["ONE"])
    assert nlp.get_pipe("binary_textcat").labels == ("ONE",)


class BagOfVectors(nn.Module):
    """A user's own module: token vectors in, the sum of a projection out."""

    def __init__(self, n_in: int, width: int) -> None:
        super().__init__()
        self.project = nn.Linear(n_in, width)

    def forward(self, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.project(X)).sum(dim=1)


class WrongShape(nn.Module):
    def forward(self, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return X


@registry.misc("test_textcat_pipe.BagOfVectors.v1")
def make_bag_of_vectors(n_in: int, width: int) -> nn.Module:
    return BagOfVectors(n_in, width)


@registry.misc("test_textcat_pipe.WrongShape.v1")
def make_wrong_shape() -> nn.Module:
    return WrongShape()


def custom_model(module):
    return {
        "@architectures": "spacy-binary-ner.TorchTextcatScorer.v1",
        "module": module,
        "width": 16,
        "tok2vec": SMALL_MODEL["tok2vec"],
    }


def test_custom_module_behind_the_same_loss():
    model = custom_model({"@misc": "test_textcat_pipe.BagOfVectors.v1", "n_in": 32, "width": 16})
    nlp = make_nlp(True, model)
    examples = textcat_records_to_examples(nlp, ANSWERS)
    losses = train(nlp, examples)
    assert losses["binary_textcat"] < 0.05
    check_answers_learned(nlp, examples, exclusive=True)
    assert isinstance(nlp.get_pipe("binary_textcat").model.get_ref("module").layers[0].shims[0]._model, BagOfVectors)
    with make_tempdir() as d:
        nlp.to_disk(d)
        loaded = spacy.load(d)
    assert loaded("I love this film").cats == pytest.approx(nlp("I love this film").cats, abs=1e-6)


def test_custom_module_of_the_wrong_shape_is_named():
    nlp = make_nlp(True, custom_model({"@misc": "test_textcat_pipe.WrongShape.v1"}))
    with pytest.raises(ValueError, match=r"shape \(batch, width\)"):
        nlp.initialize(lambda: textcat_records_to_examples(nlp, ANSWERS))


def test_no_hidden_layer():
    """hidden_width = 0: the pooled mean and maximum go to the output layer."""
    nlp = make_nlp(True, {**SMALL_MODEL, "hidden_width": 0})
    examples = textcat_records_to_examples(nlp, ANSWERS)
    assert train(nlp, examples)["binary_textcat"] < 0.05
    model = nlp.get_pipe("binary_textcat").model
    assert model.get_ref("module").get_dim("nO") == model.get_ref("output_layer").get_dim("nI") == 2 * 32
    check_answers_learned(nlp, examples, exclusive=True)
