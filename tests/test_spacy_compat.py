"""spaCy's own NER and spancat tests (spacy/tests/parser/test_ner.py,
test_add_label.py, spacy/tests/pipeline/test_spancat.py), ported to
`binary_ner`, and the conventions of spaCy's `ner` the pipe follows: blocked
tokens, `overwrite_ents`, spaCy v2's `!LABEL`, labels added after training,
settings given at load."""

import json
import warnings

import numpy
import pytest
import spacy
from numpy.testing import assert_equal
from spacy import util
from spacy.attrs import ENT_IOB
from spacy.lang.en import English
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import fix_random_seed, make_tempdir

from spacy_binary_ner.data import TeachDataError, records_to_examples
from spacy_binary_ner.loop import AnnotationLoop
from spacy_binary_ner.targets import build_targets, span_cells

from .util import SMALL_MODEL, TEACH_RECORDS

TRAIN_DATA = [
    ("Who is Shaka Khan?", {"entities": [(7, 17, "PERSON")]}),
    ("I like London and Berlin.", {"entities": [(7, 13, "LOC"), (18, 24, "LOC")]}),
]
NEG_KEY = "non_entities"


def make_nlp(**cfg) -> Language:
    nlp = English()
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL, **cfg})
    return nlp


def make_examples(nlp: Language, data=TRAIN_DATA):
    # Complete annotations, as Example.from_dict makes them: every other token "O".
    return [Example.from_dict(nlp.make_doc(text), annots) for text, annots in data]


def overfit(nlp: Language, examples, steps: int = 50):
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    history = [nlp.update(examples, sgd=optimizer)["binary_ner"] for _ in range(steps)]
    return optimizer, history


def ents(doc: Doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


def cell_targets(eg: Example, labels, L: int, key: str = "incorrect_spans"):
    """(truths, weights) of one example as (start, width, label) arrays."""
    truths, weights = build_targets([eg], labels, L, 0.01, key)
    n = len(eg.predicted)
    full_t = numpy.full((n, L, len(labels)), numpy.nan, dtype="float32")
    full_w = numpy.full((n, L, len(labels)), numpy.nan, dtype="float32")
    full_t[span_cells(n, L)] = truths
    full_w[span_cells(n, L)] = weights
    return full_t, full_w


# test_ner.py: negative annotations ------------------------------------------------


def test_neg_annotation():
    """Negative annotations of another label, and partly overlapping ones, train."""
    nlp = make_nlp(incorrect_spans_key=NEG_KEY)
    ner = nlp.get_pipe("binary_ner")
    ner.add_label("PERSON")
    ner.add_label("ORG")
    example = Example.from_dict(nlp.make_doc("Who is Shaka Khan?"), {"entities": [(7, 17, "PERSON")]})
    example.reference.spans[NEG_KEY] = [
        Span(example.reference, 2, 4, "ORG"),
        Span(example.reference, 2, 3, "PERSON"),
        Span(example.reference, 1, 4, "PERSON"),
    ]
    optimizer = nlp.initialize()
    for _ in range(2):
        losses = {}
        nlp.update([example], sgd=optimizer, losses=losses)
        assert numpy.isfinite(losses["binary_ner"])
    truth, weight = cell_targets(example, ner.labels, ner.max_span_length, NEG_KEY)
    person, org = ner.labels.index("PERSON"), ner.labels.index("ORG")
    assert truth[2, 1, person] == 1 and truth[2, 1, org] == 0 and weight[2, 1, org] == 1
    assert truth[2, 0, person] == 0 and weight[2, 0, person] == 1


def test_neg_annotation_conflict():
    """A negative annotation that is the same as an entity raises."""
    nlp = make_nlp(incorrect_spans_key=NEG_KEY)
    ner = nlp.get_pipe("binary_ner")
    ner.add_label("PERSON")
    ner.add_label("LOC")
    example = Example.from_dict(nlp.make_doc("Who is Shaka Khan?"), {"entities": [(7, 17, "PERSON")]})
    example.reference.spans[NEG_KEY] = [Span(example.reference, 2, 4, "PERSON")]
    assert example.reference.ents[0].text == "Shaka Khan"
    assert example.reference.spans[NEG_KEY][0].text == "Shaka Khan"
    optimizer = nlp.initialize()
    with pytest.raises(ValueError, match="both an entity and rejected"):
        nlp.update([example], sgd=optimizer)


def test_train_negative_deprecated():
    """spaCy v2's `!PERSON` raises a ValueError that says how to write it now."""
    nlp = make_nlp()
    nlp.get_pipe("binary_ner").add_label("PERSON")
    optimizer = nlp.initialize()
    example = Example.from_dict(nlp.make_doc("Who is Shaka Khan?"), {"entities": [(7, 17, "!PERSON")]})
    with pytest.raises(ValueError, match="reject"):
        nlp.update([example], sgd=optimizer)
    with pytest.raises(ValueError, match='\'PERSON\' and "answer": "reject"'):
        nlp.get_pipe("binary_ner").add_label("!PERSON")


@pytest.mark.parametrize("strict", [False, True])
def test_v2_label_in_a_record_names_the_record(tmp_path, strict):
    path = tmp_path / "answers.jsonl"
    records = [
        {"text": "Anna lives here .", "spans": [{"start": 0, "end": 4, "label": "PERSON"}], "answer": "accept"},
        {"text": "Who is Shaka Khan ?", "spans": [{"start": 7, "end": 17, "label": "!PERSON"}], "answer": "accept"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf8")
    from spacy_binary_ner.data import read_teach_data

    with pytest.raises(TeachDataError, match=r"answers.jsonl:2: spaCy v2 label .*answer\": \"reject"):
        read_teach_data(English(), path, strict=strict)


# test_ner.py: blocked tokens -------------------------------------------------------


@Language.factory("test_spacy_compat_blocker")
def make_blocker(nlp: Language, name: str, start: int, end: int):
    def block(doc: Doc) -> Doc:
        doc.set_ents([], blocked=[doc[start:end]], default="unmodified")
        return doc

    return block


def test_block_ner():
    """Blocked tokens stay out of every entity, and stay blocked."""
    nlp = English()
    nlp.add_pipe("test_spacy_compat_blocker", config={"start": 2, "end": 5})
    untrained = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    untrained.add_label("MY_LABEL")
    nlp.initialize()
    doc = nlp("This is Antti L Korhonen speaking in Finland")
    assert [token.ent_iob_ for token in doc] == ["O", "O", "B", "B", "B", "O", "O", "O"]
    assert [token.ent_type_ for token in doc] == [""] * 8


def test_block_ner_with_every_span_over_threshold():
    """With threshold 0 every span passes: entities cover every token that is not blocked."""
    nlp = English()
    nlp.add_pipe("test_spacy_compat_blocker", config={"start": 2, "end": 5})
    ner = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL, "threshold": 0.0})
    ner.add_label("MY_LABEL")
    nlp.initialize()
    doc = nlp("This is Antti L Korhonen speaking in Finland")
    assert [token.ent_iob_ for token in doc][2:5] == ["B", "B", "B"]
    assert [token.ent_type_ for token in doc][2:5] == ["", "", ""]
    assert all(e.end <= 2 or e.start >= 5 for e in doc.ents)
    assert {t.i for e in doc.ents for t in e} == {0, 1, 5, 6, 7}
    # Without the blocker the same pipe puts entities there.
    nlp.disable_pipe("test_spacy_compat_blocker")
    assert {t.i for e in nlp("This is Antti L Korhonen speaking in Finland").ents for t in e} == set(range(8))


def test_accept_blocked_token():
    """A doc blocked by hand keeps its blocked tokens through the pipe."""
    nlp = make_nlp(threshold=0.0)
    nlp.get_pipe("binary_ner").add_label("GPE")
    nlp.initialize()
    doc = nlp.make_doc("I live in New York")
    doc.set_ents([], blocked=[doc[3:5]], default="unmodified")
    assert [token.ent_iob_ for token in doc] == ["", "", "", "B", "B"]
    doc = nlp.get_pipe("binary_ner")(doc)
    assert [token.ent_iob_ for token in doc][3:] == ["B", "B"]
    assert [token.ent_type_ for token in doc][3:] == ["", ""]
    assert [t.ent_type_ for t in doc][:3] == ["GPE"] * 3


@pytest.mark.parametrize("same_tokens", [True, False])
def test_blocked_tokens_are_not_entities_in_targets(same_tokens):
    """A blocked token in the reference is known to be outside every entity."""
    nlp = make_nlp()
    words = ["I", "live", "in", "New", "York"]
    predicted = (
        Doc(nlp.vocab, words=words) if same_tokens else Doc(nlp.vocab, words=["I", "live", "in", "New", "Yo", "rk"])
    )
    reference = Doc(nlp.vocab, words=words)
    reference.set_ents([], blocked=[reference[3:5]], default="missing")
    eg = Example(predicted, reference)
    truth, weight = cell_targets(eg, ("GPE",), 4)
    assert weight[3, 1, 0] == 1.0 and truth[3, 1, 0] == 0.0  # "New York" / "New Yo"
    assert weight[2, 0, 0] == pytest.approx(0.01)  # "in": unknown
    assert weight[2, 1, 0] == 1.0  # "in New": holds a blocked token


# test_ner.py: earlier components' entities -----------------------------------------


def test_ruler_before_ner():
    """An untrained binary_ner keeps the entity_ruler's entities and marks the rest "O"."""
    nlp = English()
    ruler = nlp.add_pipe("entity_ruler")
    untrained = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    untrained.add_label("MY_LABEL")
    nlp.initialize()
    ruler.add_patterns([{"label": "THING", "pattern": "This"}])
    doc = nlp("This is Antti Korhonen speaking in Finland")
    assert [token.ent_iob_ for token in doc] == ["B", "O", "O", "O", "O", "O", "O"]
    assert [token.ent_type_ for token in doc] == ["THING", "", "", "", "", "", ""]


@pytest.mark.parametrize("overwrite", [False, True])
def test_overwrite_ents_keeps_entities_it_does_not_compete_with(overwrite):
    """`overwrite_ents` replaces only the earlier entities a prediction overlaps
    (the EntityRuler's semantics); the others stay, kb_id included."""
    nlp = make_nlp(overwrite_ents=overwrite)
    examples = make_examples(nlp)
    overfit(nlp, examples, steps=50)
    ruler = nlp.add_pipe("entity_ruler", before="binary_ner")
    ruler.add_patterns([{"label": "MISC", "pattern": "2019"}, {"label": "THING", "pattern": "London"}])
    doc = nlp("I like London and Berlin since 2019 .")
    labels = {e.text: e.label_ for e in doc.ents}
    assert labels["2019"] == "MISC"
    assert labels["Berlin"] == "LOC"
    assert labels["London"] == ("LOC" if overwrite else "THING")


# test_ner.py / test_spancat.py: overfitting, IO, new labels ----------------------------


def test_overfitting_IO():
    nlp = make_nlp()
    train_examples = make_examples(nlp)
    _, losses = overfit(nlp, train_examples, steps=100)
    # Complete annotations have no unknown spans, so no "no entity" prior keeps the loss up.
    assert losses[-1] < 0.05 * losses[0]
    test_text = "I like London."
    assert [(e.text, e.label_) for e in nlp(test_text).ents] == [("London", "LOC")]
    with make_tempdir() as tmp_dir:
        nlp.to_disk(tmp_dir)
        nlp2 = util.load_model_from_path(tmp_dir)
        assert [(e.text, e.label_) for e in nlp2(test_text).ents] == [("London", "LOC")]
        # The predictions are still the same after adding a new label.
        ner2 = nlp2.get_pipe("binary_ner")
        before = ner2.model.ops.to_numpy(ner2.predict([nlp2.make_doc(test_text)]))
        ner2.add_label("RANDOM_NEW_LABEL")
        after = ner2.model.ops.to_numpy(ner2.predict([nlp2.make_doc(test_text)]))
        assert after.shape == (before.shape[0], before.shape[1] + 1)
        numpy.testing.assert_allclose(after[:, :-1], before, rtol=1e-5, atol=1e-6)
        assert [(e.text, e.label_) for e in nlp2(test_text).ents] == [("London", "LOC")]
    # Running pipe twice, or comparing to call, gives the same predictions.
    texts = ["Just a sentence.", "Then one more sentence about London.", "Here is another one.", "I like London."]
    batch_1 = [doc.to_array([ENT_IOB]) for doc in nlp.pipe(texts)]
    batch_2 = [doc.to_array([ENT_IOB]) for doc in nlp.pipe(texts)]
    no_batch = [doc.to_array([ENT_IOB]) for doc in [nlp(text) for text in texts]]
    assert_equal(batch_1, batch_2)
    assert_equal(batch_1, no_batch)
    # kb_id of an earlier entity is preserved.
    doc = nlp.make_doc("I like London and London.")
    doc.ents = [Span(doc, 2, 3, label="LOC", kb_id=1234)]
    doc = nlp.get_pipe("binary_ner")(doc)
    assert [(e.text, e.label_, e.kb_id) for e in doc.ents] == [("London", "LOC", 1234), ("London", "LOC", 0)]


def test_add_label_after_load():
    """A trained, saved and loaded pipeline learns a new label; the old ones
    keep their weights and predictions, through another save and load, and in
    the annotation loop."""
    nlp = make_nlp()
    overfit(nlp, make_examples(nlp), steps=40)
    texts = ["I like London.", "Who is Shaka Khan?", "Anna founded Acme Corp in Berlin."]
    with make_tempdir() as tmp:
        nlp.to_disk(tmp / "old")
        loaded = spacy.load(tmp / "old")
        ner = loaded.get_pipe("binary_ner")
        docs = [loaded.make_doc(t) for t in texts]
        before = ner.model.ops.to_numpy(ner.predict(docs))
        old_ents = [ents(d) for d in loaded.pipe(texts)]
        assert ner.add_label("ORG") == 1
        assert ner.labels == ("LOC", "PERSON", "ORG")
        assert ner.model.get_ref("output_layer").get_dim("nO") == 3
        after = ner.model.ops.to_numpy(ner.predict(docs))
        numpy.testing.assert_allclose(after[:, :2], before, rtol=1e-5, atol=1e-6)
        # The new label starts at the pipe's prior probability, whatever the span.
        numpy.testing.assert_allclose(1 / (1 + numpy.exp(-after[:, 2])), 0.01, rtol=1e-4)
        assert [ents(d) for d in loaded.pipe(texts)] == old_ents
        # Teach it: accepts of ORG, in the annotation loop.
        optimizer = loaded.resume_training()
        optimizer.learn_rate = 0.005  # the loop's (initialize_pipeline)
        loop = AnnotationLoop(loaded, optimizer=optimizer, sorter="random")
        answer = {"text": texts[2], "spans": [{"start": 13, "end": 22, "label": "ORG"}], "answer": "accept"}
        org = ner.labels.index("ORG")
        acme = loaded.make_doc(texts[2])

        def p_acme() -> float:
            scores = ner.model.ops.to_numpy(ner.predict([acme]))
            row = [i for i, (s, w) in enumerate(zip(*numpy.nonzero(span_cells(len(acme), 4)))) if s == 2 and w == 1]
            return float(1 / (1 + numpy.exp(-scores[row[0], org])))

        start = p_acme()
        fix_random_seed(0)  # the loop's dropout
        history = [start]
        for _ in range(30):
            assert numpy.isfinite(loop.update([answer]))
            history.append(p_acme())
        assert history[-1] > 0.5 > start
        loaded.to_disk(tmp / "new")
        reloaded = spacy.load(tmp / "new")
        assert reloaded.get_pipe("binary_ner").labels == ("LOC", "PERSON", "ORG")
        ner2 = reloaded.get_pipe("binary_ner")
        numpy.testing.assert_allclose(
            ner2.model.ops.to_numpy(ner2.predict([acme])), ner.model.ops.to_numpy(ner.predict([acme])), rtol=1e-5
        )


def test_add_label_deserializes_correctly():
    """A pipe with more labels than its config loads into a fresh one resized first."""
    nlp = make_nlp()
    ner = nlp.get_pipe("binary_ner")
    for label in ("C", "B", "A"):
        ner.add_label(label)
    nlp.initialize()
    nlp2 = make_nlp()
    ner2 = nlp2.get_pipe("binary_ner")
    ner2.model.attrs["resize_output"](ner2.model, 3)
    ner2.model.initialize()
    ner2.from_bytes(ner.to_bytes())
    assert ner2.labels == ("C", "B", "A")
    doc = nlp.make_doc("a b c")
    numpy.testing.assert_allclose(
        ner2.model.ops.to_numpy(ner2.predict([doc])), ner.model.ops.to_numpy(ner.predict([doc]))
    )


def test_add_label_after_update_trains_on():
    """Optimizer state of the old output layer does not break the next steps."""
    nlp = make_nlp()
    optimizer, _ = overfit(nlp, make_examples(nlp), steps=5)
    nlp.get_pipe("binary_ner").add_label("ORG")
    examples = make_examples(nlp, TRAIN_DATA + [("Acme Corp is here.", {"entities": [(0, 9, "ORG")]})])
    for _ in range(3):
        losses = nlp.update(examples, sgd=optimizer)
        assert numpy.isfinite(losses["binary_ner"])


# test_spancat.py: labels, empty docs ----------------------------------------------------


def test_no_label():
    nlp = make_nlp()
    with pytest.raises(ValueError, match="has no labels"):
        nlp.initialize()


def test_resize():
    """spaCy's spancat cannot add a label after initialization (test_no_resize); binary_ner can."""
    nlp = make_nlp()
    ner = nlp.get_pipe("binary_ner")
    ner.add_label("Thing")
    ner.add_label("Phrase")
    assert ner.labels == ("Thing", "Phrase")
    nlp.initialize()
    assert ner.model.get_ref("output_layer").get_dim("nO") == 2
    ner.add_label("Stuff")
    assert ner.model.get_ref("output_layer").get_dim("nO") == 3
    assert ner.predict([nlp.make_doc("a b")]).shape == (3, 3)


def test_implicit_labels():
    nlp = make_nlp()
    ner = nlp.get_pipe("binary_ner")
    assert len(ner.labels) == 0
    train_examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: train_examples)
    assert ner.labels == ("LOC", "PERSON")


def test_explicit_labels():
    nlp = make_nlp()
    ner = nlp.get_pipe("binary_ner")
    assert len(ner.labels) == 0
    ner.add_label("PERSON")
    ner.add_label("LOC")
    nlp.initialize()
    assert ner.labels == ("PERSON", "LOC")


def test_zero_suggestions():
    """Empty docs, one-token docs and mixed batches, in update and predict."""
    nlp = make_nlp()
    train_examples = make_examples(nlp, TRAIN_DATA + [("", {"entities": []})])
    optimizer = nlp.initialize(get_examples=lambda: train_examples)
    assert set(nlp.get_pipe("binary_ner").labels) == {"LOC", "PERSON"}
    nlp.update(train_examples, sgd=optimizer)
    assert len(nlp("")) == 0
    nlp("one")
    nlp("two two")
    list(nlp.pipe(["one", "two two", "three three three", "", "four four four four"]))
    list(nlp.pipe(["", "one", "three three three"]))
    list(nlp.pipe(["", ""]))


def test_train_empty():
    """Training on an empty text does not throw."""
    nlp = make_nlp()
    examples = make_examples(nlp, [TRAIN_DATA[0], ("", {"entities": []})])
    nlp.get_pipe("binary_ner").add_label("PERSON")
    nlp.initialize()
    for _ in range(2):
        for batch in util.minibatch(examples, size=8):
            nlp.update(batch)


# Settings given at load -------------------------------------------------------------------


def test_settings_given_at_load_apply(tmp_path):
    nlp = make_nlp()
    overfit(nlp, make_examples(nlp), steps=5)
    nlp.to_disk(tmp_path)
    assert spacy.load(tmp_path).get_pipe("binary_ner").cfg["threshold"] == 0.5
    loaded = spacy.load(tmp_path, config={"components": {"binary_ner": {"threshold": 0.3}}})
    assert loaded.get_pipe("binary_ner").cfg["threshold"] == 0.3
    assert loaded.config["components"]["binary_ner"]["threshold"] == 0.3
    # A value set on cfg after building (a tuned threshold) is saved and wins
    # over the config's unchanged value.
    tuned = spacy.load(tmp_path)
    tuned.get_pipe("binary_ner").cfg["threshold"] = 0.7
    tuned.to_disk(tmp_path / "tuned")
    assert spacy.load(tmp_path / "tuned").get_pipe("binary_ner").cfg["threshold"] == pytest.approx(0.7)
    again = spacy.load(tmp_path / "tuned", config={"components": {"binary_ner": {"threshold": 0.2}}})
    assert again.get_pipe("binary_ner").cfg["threshold"] == 0.2
    # The same through bytes.
    fresh = English()
    fresh.add_pipe("binary_ner", config={"model": SMALL_MODEL, "threshold": 0.25})
    fresh.from_bytes(nlp.to_bytes())
    assert fresh.get_pipe("binary_ner").cfg["threshold"] == 0.25


def test_settings_given_at_load_warn_for_a_pipe_saved_without_its_config(tmp_path):
    nlp = make_nlp()
    overfit(nlp, make_examples(nlp), steps=5)
    nlp.to_disk(tmp_path)
    cfg_path = tmp_path / "binary_ner" / "cfg"
    cfg = json.loads(cfg_path.read_text(encoding="utf8"))
    del cfg["config_settings"]
    cfg_path.write_text(json.dumps(cfg), encoding="utf8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spacy.load(tmp_path).get_pipe("binary_ner").cfg["threshold"] == 0.5
    with pytest.warns(UserWarning, match=r"threshold=0\.3 \(saved: 0\.5\)"):
        loaded = spacy.load(tmp_path, config={"components": {"binary_ner": {"threshold": 0.3}}})
    assert loaded.get_pipe("binary_ner").cfg["threshold"] == 0.5


@pytest.mark.parametrize("kind", ["tokens", "spans"])
def test_add_label_with_a_custom_torch_module(kind, tmp_path):
    """spacy-binary-ner.TorchSpanScorer.v1 grows its output layer too, in both layouts."""
    from .test_custom_module import make_nlp as make_custom_nlp
    from .test_custom_module import spans_model, tokens_model

    nlp = make_custom_nlp(tokens_model() if kind == "tokens" else spans_model())
    examples = records_to_examples(nlp, TEACH_RECORDS)
    optimizer = nlp.initialize(lambda: examples)
    nlp.update(examples, sgd=optimizer)
    nlp.to_disk(tmp_path)
    loaded = spacy.load(tmp_path)
    ner = loaded.get_pipe("binary_ner")
    doc = loaded.make_doc("Anna lives in Paris .")
    before = ner.model.ops.to_numpy(ner.predict([doc]))
    ner.add_label("ORG")
    after = ner.model.ops.to_numpy(ner.predict([doc]))
    numpy.testing.assert_allclose(after[:, :-1], before, rtol=1e-5, atol=1e-6)
    assert after.shape[1] == len(ner.labels) == before.shape[1] + 1
    eg = records_to_examples(
        loaded, [{"text": "Acme hired Anna .", "spans": [{"start": 0, "end": 4, "label": "ORG"}], "answer": "accept"}]
    )
    assert numpy.isfinite(loaded.update(eg, sgd=loaded.resume_training())["binary_ner"])
