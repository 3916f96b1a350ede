"""The binary_rel pipe: settings written once, overfitting three relations on
five texts from answers, save and load, what DocBin keeps, empty docs, and a
user's own torch module behind the same loss."""

import inspect
from typing import get_type_hints

import pytest
import spacy
import torch
from spacy.language import Language
from spacy.tokens import DocBin, Span
from spacy.util import fix_random_seed, load_model_from_config, make_tempdir, registry
from torch import nn

from spacy_binary_ner.rel.pipe import make_binary_rel, predicted_relations
from spacy_binary_ner.rel.reader import RelReader, give_entities
from spacy_binary_ner.rel.settings import RelSettings

from .util import SMALL_MODEL as NER_SMALL_MODEL

SMALL_MODEL = {
    "@architectures": "spacy-binary-ner.RelScorer.v1",
    "hidden_width": 32,
    "embed_width": 8,
    "dropout": 0.0,
    "tok2vec": NER_SMALL_MODEL["tok2vec"],
}
NOT_SETTINGS = {"nlp", "name", "model", "scorer"}
KEY = "given"


def span(text, word, label):
    start = text.index(word)
    return {"start": start, "end": start + len(word), "label": label}


def answer(text, entities, relation, ans="accept"):
    spans = [span(text, w, label) for w, label in entities]
    head, child, label = relation
    return {"text": text, "spans": spans, "relations": [{"head": head, "child": child, "label": label}], "answer": ans}


T = [
    ("Anna works for Acme .", [("Anna", "PER"), ("Acme", "ORG")]),
    ("Tom lives in Oslo .", [("Tom", "PER"), ("Oslo", "LOC")]),
    ("Globex is based in Lima .", [("Globex", "ORG"), ("Lima", "LOC")]),
    ("Eva , who works for Initech , lives in Kyoto .", [("Eva", "PER"), ("Initech", "ORG"), ("Kyoto", "LOC")]),
    ("Omar met Sara in Paris .", [("Omar", "PER"), ("Sara", "PER"), ("Paris", "LOC")]),
]
ANSWERS = [
    answer(*T[0], (0, 1, "Work_For")),
    answer(*T[0], (1, 0, "Work_For"), "reject"),
    answer(*T[1], (0, 1, "Live_In")),
    answer(*T[1], (0, 1, "Work_For"), "reject"),
    answer(*T[2], (0, 1, "Based_In")),
    answer(*T[2], (1, 0, "Based_In"), "reject"),
    answer(*T[3], (0, 1, "Work_For")),
    answer(*T[3], (0, 2, "Live_In")),
    answer(*T[3], (1, 2, "Based_In"), "reject"),
    answer(*T[3], (0, 2, "Work_For"), "reject"),
    answer(*T[4], (0, 2, "Live_In"), "reject"),
    answer(*T[4], (1, 2, "Live_In"), "reject"),
    answer(*T[4], (0, 1, "Work_For"), "reject"),
]
EXPECTED = {
    ("Anna", "Acme", "Work_For"),
    ("Tom", "Oslo", "Live_In"),
    ("Globex", "Lima", "Based_In"),
    ("Eva", "Initech", "Work_For"),
    ("Eva", "Kyoto", "Live_In"),
}


def make_nlp(model=None, **settings) -> Language:
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_rel", config={"model": model or SMALL_MODEL, "spans_key": KEY, **settings})
    return nlp


def examples(nlp, records=ANSWERS, complete=False):
    """The records read, their entities also on the predicted docs (`spans_key`)."""
    reader = RelReader(nlp)
    reader.read_records(records, complete=complete)
    out = reader.examples()
    give_entities(out, KEY)
    return out


def train(nlp, egs, steps=80):
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = 0.01
    for _ in range(steps):
        losses = nlp.update(egs, sgd=optimizer)
    return losses


def relations(nlp, egs):
    docs = list(nlp.pipe(eg.predicted.copy() for eg in egs))
    return {(h.text, c.text, label) for doc in docs for h, c, label, _ in predicted_relations(doc)}, docs


def test_factory_signature_default_config_and_cfg_name_every_setting():
    names = RelSettings.names()
    assert [n for n in inspect.signature(make_binary_rel).parameters if n not in NOT_SETTINGS] == list(names)
    factory_types = get_type_hints(make_binary_rel)
    assert {n: factory_types[n] for n in names} == get_type_hints(RelSettings)
    defaults = Language.get_factory_meta("binary_rel").default_config
    assert [key for key in defaults if key not in NOT_SETTINGS] == list(names)
    assert {n: defaults[n] for n in names} == RelSettings().to_dict()
    pipe = make_nlp(max_distance=7).get_pipe("binary_rel")
    assert pipe.cfg == {"labels": [], **RelSettings(max_distance=7, spans_key=KEY).to_dict()}


def test_overfitting_IO():
    nlp = make_nlp()
    egs = examples(nlp)
    assert len(egs) == 5
    losses = train(nlp, egs)
    assert losses["binary_rel"] < 0.05
    pipe = nlp.get_pipe("binary_rel")
    assert pipe.labels == ("Based_In", "Live_In", "Work_For")
    assert pipe.cfg["label_pairs"] == {
        "Based_In": [["ORG", "LOC"]],
        "Live_In": [["PER", "LOC"]],
        "Work_For": [["PER", "ORG"]],
    }
    found, docs = relations(nlp, egs)
    assert found == EXPECTED
    rel = docs[0]._.rel
    assert set(rel) == {(0, 3)} and rel[(0, 3)]["Work_For"] > 0.5 and rel[(0, 3)]["Live_In"] == 0.0
    with make_tempdir() as d:
        nlp.to_disk(d)
        nlp2 = spacy.load(d)
    found2, docs2 = relations(nlp2, egs)
    assert found2 == found
    assert [d._.rel for d in docs2] == [d._.rel for d in docs]
    scores = nlp.evaluate(examples(nlp2, [answer(*T[0], (0, 1, "Work_For"))]))
    assert scores["rel_micro_f"] == 1.0


def test_docbin_keeps_the_predictions_without_user_data():
    nlp = make_nlp()
    egs = examples(nlp)
    train(nlp, egs, steps=5)
    _, docs = relations(nlp, egs)
    restored = list(DocBin(docs=docs, store_user_data=False).get_docs(nlp.vocab))
    assert [d._.rel for d in restored] == [d._.rel for d in docs]
    assert docs[3]._.rel and all(len(scores) == 3 for scores in docs[3]._.rel.values())


def test_config_round_trip():
    nlp = make_nlp()
    assert load_model_from_config(nlp.config, auto_fill=False).config == nlp.config


def test_empty_docs_and_docs_without_pairs():
    nlp = make_nlp()
    train(nlp, examples(nlp), steps=2)
    docs = list(nlp.pipe(["", "Anna .", "Nobody here ."]))
    assert [d._.rel for d in docs] == [{}, {}, {}]
    doc = nlp.make_doc("Anna .")
    doc.spans[KEY] = [Span(doc, 0, 1, "PER")]
    assert nlp(doc)._.rel == {}
    egs = examples(nlp, [{"text": "Nobody is here .", "spans": [], "relations": []}], complete=True)
    assert nlp.update(egs) == {"binary_rel": 0.0}


def test_entities_from_doc_ents_by_default():
    nlp = make_nlp(spans_key=None)
    egs = examples(nlp)
    train(nlp, egs, steps=60)
    doc = nlp.make_doc("Anna works for Acme .")
    doc.ents = [Span(doc, 0, 1, "PER"), Span(doc, 3, 4, "ORG")]
    assert {(h.text, c.text, lb) for h, c, lb, _ in predicted_relations(nlp(doc))} == {("Anna", "Acme", "Work_For")}


def test_no_labels():
    nlp = make_nlp()
    with pytest.raises(ValueError, match="no relation label"):
        nlp.initialize(lambda: examples(nlp, [{"text": "A b .", "spans": [], "relations": []}], complete=True))


class EndpointPairs(nn.Module):
    """A user's own module: the first token vectors of the two entities."""

    def __init__(self, n_in: int, width: int) -> None:
        super().__init__()
        self.project = nn.Linear(2 * n_in, width)

    def forward(self, X: torch.Tensor, lengths: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.project(torch.cat([X[pairs[:, 0], pairs[:, 1]], X[pairs[:, 0], pairs[:, 3]]], dim=1)))


class WrongShape(nn.Module):
    def forward(self, X: torch.Tensor, lengths: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(1, 3)


@registry.misc("test_rel_pipe.EndpointPairs.v1")
def make_endpoint_pairs(n_in: int, width: int) -> nn.Module:
    return EndpointPairs(n_in, width)


@registry.misc("test_rel_pipe.WrongShape.v1")
def make_wrong_shape() -> nn.Module:
    return WrongShape()


def torch_model(module):
    return {
        "@architectures": "spacy-binary-ner.TorchRelScorer.v1",
        "module": module,
        "width": 32,
        "tok2vec": NER_SMALL_MODEL["tok2vec"],
    }


def test_custom_module_behind_the_same_loss():
    nlp = make_nlp(torch_model({"@misc": "test_rel_pipe.EndpointPairs.v1", "n_in": 32, "width": 32}))
    egs = examples(nlp)
    losses = train(nlp, egs, steps=100)
    assert losses["binary_rel"] < 0.05
    assert relations(nlp, egs)[0] == EXPECTED


def test_custom_module_of_the_wrong_shape_is_named():
    nlp = make_nlp(torch_model({"@misc": "test_rel_pipe.WrongShape.v1"}))
    egs = examples(nlp)
    with pytest.raises(ValueError, match=r"TorchRelScorer.v1: the module must return .* \(n_pairs, width\)"):
        train(nlp, egs, steps=1)
