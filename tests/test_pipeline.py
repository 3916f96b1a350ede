"""The binary_ner pipe, in the style of spaCy's spancat tests."""

import numpy
import pytest
import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import fix_random_seed, load_model_from_config, make_tempdir

from spacy_binary_ner.data import records_to_examples
from spacy_binary_ner.pipeline import find_binary_ner

from .util import GOLD_RECORDS, SMALL_MODEL, TEACH_RECORDS, make_example


def make_nlp(**cfg) -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL, **cfg})
    return nlp


def teach_examples(nlp):
    return records_to_examples(nlp, TEACH_RECORDS) + records_to_examples(nlp, GOLD_RECORDS, complete=True)


def train(nlp, examples, steps=60):
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    history = [nlp.update(examples, sgd=optimizer)["binary_ner"] for _ in range(steps)]
    return history


def test_factory_defaults():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("binary_ner")
    assert ner.cfg["threshold"] == 0.5
    assert ner.cfg["incorrect_spans_key"] == "incorrect_spans"
    assert ner.max_span_length == 10
    assert nlp.config["components"]["binary_ner"]["unknown_weight"] == ner.cfg["unknown_weight"]


def test_labels_from_data_include_rejected_labels():
    nlp = make_nlp()
    # "ORG" only ever occurs rejected: it is still a label the model scores.
    eg = make_example(nlp, ["a", "b"], ents=[(0, 1, "PER")], rejects=[(1, 2, "ORG")])
    nlp.initialize(lambda: [eg])
    assert nlp.get_pipe("binary_ner").labels == ("ORG", "PER")


def test_labels_given():
    nlp = make_nlp()
    nlp.initialize(lambda: teach_examples(nlp))
    nlp2 = make_nlp()
    nlp2.get_pipe("binary_ner").initialize(lambda: teach_examples(nlp2), nlp=nlp2, labels=["LOC", "PERSON", "ORG"])
    assert nlp2.get_pipe("binary_ner").labels == ("LOC", "PERSON", "ORG")


def test_no_label():
    nlp = make_nlp()
    eg = make_example(nlp, ["a", "b"])
    with pytest.raises(ValueError, match="has no labels"):
        nlp.initialize(lambda: [eg])


def test_add_label_after_initialize_grows_the_output_layer():
    nlp = make_nlp()
    nlp.initialize(lambda: teach_examples(nlp))
    ner = nlp.get_pipe("binary_ner")
    ner.add_label("NEW")
    assert ner.predict([nlp.make_doc("a b")]).shape == (3, len(ner.labels))


@pytest.mark.parametrize("texts", [[""], ["", "one"], ["one"], ["", ""]])
def test_empty_and_one_token_docs(texts):
    nlp = make_nlp()
    train(nlp, teach_examples(nlp), steps=2)
    docs = list(nlp.pipe(texts))
    assert [len(doc) for doc in docs] == [len(t.split()) for t in texts]
    for doc in docs:
        assert all(0 <= s <= 1 for s in doc.spans["binary_ner_scores"].attrs["scores"])


def test_predict_in_groups_gives_the_same_scores():
    import spacy_binary_ner.models.span_scorer as span_scorer

    nlp = make_nlp()
    train(nlp, teach_examples(nlp), steps=2)
    ner = nlp.get_pipe("binary_ner")
    docs = [nlp.make_doc(t) for t in ["Anna flew to Paris today .", "", "Rome", "We met Omar in Oslo .", ""]]
    whole = ner.predict(docs)
    # The training path (the plain chain, span vectors then the output layer)
    # gives the same scores as the fused inference path.
    from thinc.api import set_dropout_rate

    set_dropout_rate(ner.model, 0.0)
    trained, _ = ner.model.begin_update(docs)
    numpy.testing.assert_allclose(trained, whole, rtol=1e-5, atol=1e-5)
    # The architecture's groups (`with_groups`): a call per doc or less, then one doc a call.
    (grouping,) = [node for node in ner.model.walk() if node.name.startswith("with_groups")]
    assert grouping.attrs["limit"] == span_scorer.PREDICT_TOKENS_PER_CALL
    grouping.attrs["limit"] = 3
    grouped = ner.predict(docs)
    assert grouped.shape == whole.shape
    numpy.testing.assert_allclose(grouped, whole, rtol=1e-5, atol=1e-5)
    grouping.attrs["limit"] = 1
    grouped = ner.predict(docs)
    assert grouped.shape == whole.shape
    numpy.testing.assert_allclose(grouped, whole, rtol=1e-5, atol=1e-5)


def test_update_without_tokens_returns_zero_loss():
    nlp = make_nlp()
    nlp.initialize(lambda: teach_examples(nlp))
    eg = Example(nlp.make_doc(""), nlp.make_doc(""))
    assert nlp.get_pipe("binary_ner").update([eg]) == {"binary_ner": 0.0}


def test_overfitting_IO():
    nlp = make_nlp()
    examples = teach_examples(nlp)
    losses = train(nlp, examples, steps=80)
    # The "no entity" prior on unknown spans keeps the loss above zero.
    assert losses[-1] < 0.1 * losses[0]
    texts = ["Who is Shaka Khan ?", "I like London and Berlin .", "Anna met Shaka Khan in London ."]
    docs = list(nlp.pipe(texts))
    assert [(e.text, e.label_) for e in docs[1].ents] == [("London", "LOC"), ("Berlin", "LOC")]
    assert [(e.text, e.label_) for e in docs[0].ents] == [("Shaka Khan", "PERSON")]
    group = docs[0].spans["binary_ner_scores"]
    assert len(group.attrs["scores"]) == len(group)
    assert list(group.attrs["scores"]) == sorted(group.attrs["scores"], reverse=True)
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp2 = spacy.load(tmp)
        docs2 = list(nlp2.pipe(texts))
        for a, b in zip(docs, docs2):
            assert [(e.start, e.end, e.label_) for e in a.ents] == [(e.start, e.end, e.label_) for e in b.ents]
            numpy.testing.assert_allclose(
                a.spans["binary_ner_scores"].attrs["scores"], b.spans["binary_ner_scores"].attrs["scores"], rtol=1e-5
            )
    nlp3 = make_nlp()
    nlp3.from_bytes(nlp.to_bytes())
    assert [(e.text, e.label_) for e in nlp3(texts[1]).ents] == [("London", "LOC"), ("Berlin", "LOC")]
    scores = nlp.evaluate(records_to_examples(nlp, GOLD_RECORDS, complete=True))
    assert scores["ents_f"] == 1.0
    assert set(scores) >= {"ents_p", "ents_r", "ents_f", "ents_per_type"}


@pytest.mark.parametrize("how", ["disk", "bytes"])
@pytest.mark.parametrize(
    "change,cause",
    [
        (
            {"tok2vec": {**SMALL_MODEL["tok2vec"], "encode": {**SMALL_MODEL["tok2vec"]["encode"], "depth": 2}}},
            "mismatched structure",
        ),  # another Thinc layer tree
        ({"lstm_depth": 2}, "state_dict"),  # the same tree, another torch module
    ],
)
def test_weights_of_another_structure_name_the_cause(how, change, cause, tmp_path):
    nlp = make_nlp()
    nlp.initialize(lambda: teach_examples(nlp))
    nlp.get_pipe("binary_ner").to_disk(tmp_path / "pipe")
    other = spacy.blank("en")
    pipe = other.add_pipe("binary_ner", config={"model": {**SMALL_MODEL, **change}})
    with pytest.raises(ValueError, match="another structure.*another version of spacy-binary-ner") as info:
        if how == "disk":
            pipe.from_disk(tmp_path / "pipe")
        else:
            pipe.from_bytes(nlp.get_pipe("binary_ner").to_bytes())
    assert cause in str(info.value.__cause__)
    assert (str(tmp_path / "pipe") in str(info.value)) == (how == "disk")


def test_reject_moves_only_its_own_label():
    nlp = make_nlp(unknown_weight=0.0)
    examples = teach_examples(nlp)
    train(nlp, examples, steps=30)
    ner = nlp.get_pipe("binary_ner")
    doc = nlp.make_doc("Berlin is big .")
    before = _probs(ner, doc)[0, 0]
    eg = make_example(nlp, [t.text for t in doc], rejects=[(0, 1, "LOC")])
    optimizer = nlp.resume_training()
    for _ in range(5):
        nlp.update([eg], sgd=optimizer)
    after = _probs(ner, doc)[0, 0]
    loc, person = ner.labels.index("LOC"), ner.labels.index("PERSON")
    assert after[loc] < before[loc] - 0.05
    # The other label shares the span's representation, so it moves a little,
    # but much less than the rejected one.
    assert abs(after[person] - before[person]) < 0.25 * (before[loc] - after[loc])


def _probs(ner, doc):
    from spacy_binary_ner.targets import span_cells

    scores = ner.predict([doc])
    probs = 1 / (1 + numpy.exp(-ner.model.ops.to_numpy(scores)))
    full = numpy.zeros((len(doc), ner.max_span_length, len(ner.labels)))
    full[span_cells(len(doc), ner.max_span_length)] = probs
    return full


def test_overwrite_ents():
    for overwrite in (False, True):
        nlp = make_nlp(overwrite_ents=overwrite)
        ruler = nlp.add_pipe("entity_ruler", before="binary_ner")
        train(nlp, teach_examples(nlp), steps=60)
        ruler.add_patterns([{"label": "THING", "pattern": "London"}])
        doc = nlp("I like London and Berlin .")
        labels = {e.text: e.label_ for e in doc.ents}
        assert labels["Berlin"] == "LOC"
        assert labels["London"] == ("LOC" if overwrite else "THING")


def test_nested_spans_key_allows_overlaps():
    nlp = make_nlp(nested_spans_key="nested", threshold=0.3)
    train(nlp, teach_examples(nlp), steps=60)
    ner = nlp.get_pipe("binary_ner")
    doc = nlp("Shaka Khan met Anna .")
    assert {(s.text, s.label_) for s in doc.spans["nested"]} >= {(e.text, e.label_) for e in doc.ents}
    assert all(score >= 0.3 for score in doc.spans["nested"].attrs["scores"])
    # With a threshold of 0 every scored cell is there, overlaps included.
    ner.cfg["nested_spans_key"], ner.cfg["threshold"] = "nested", 0.0
    doc = nlp("Shaka Khan met Anna .")
    assert len(doc.spans["nested"]) == 14 * len(ner.labels)  # 5 tokens, spans up to 4


@pytest.mark.parametrize("min_p", [0.0, 0.05, 0.5, 0.97, 1.0])
def test_scores_group_matches_sigmoid_of_scores(min_p):
    # set_annotations compares logits, not probabilities: the group must hold
    # exactly the cells whose sigmoid passes, with those probabilities.
    nlp = make_nlp(candidates_threshold=min_p)
    train(nlp, teach_examples(nlp), steps=30)
    ner = nlp.get_pipe("binary_ner")
    doc = nlp.make_doc("Shaka Khan met Anna in Paris .")
    probs = ner.model.ops.to_numpy(ner.model.ops.sigmoid(ner.predict([doc])))
    ner.set_annotations([doc], ner.predict([doc]))
    group = doc.spans["binary_ner_scores"]
    expected = sorted(
        ((round(float(p), 6), row, k) for (row, k), p in numpy.ndenumerate(probs) if p >= min_p),
        key=lambda t: -t[0],
    )
    assert len(group) == len(expected)
    numpy.testing.assert_allclose(group.attrs["scores"], [t[0] for t in expected], atol=1e-6)
    assert (min_p > 0.0) == (len(group) < probs.size)


def test_scores_key_none_writes_no_group():
    nlp = make_nlp(scores_key=None)
    train(nlp, teach_examples(nlp), steps=2)
    assert "binary_ner_scores" not in nlp("Anna lives in Paris .").spans


def test_config_round_trip():
    nlp = make_nlp()
    nlp.initialize(lambda: teach_examples(nlp))
    nlp2 = load_model_from_config(nlp.config, auto_fill=False)
    assert nlp2.config == nlp.config
    default = spacy.blank("en")
    default.add_pipe("binary_ner")
    assert load_model_from_config(default.config, auto_fill=False).config == default.config


def test_shared_tok2vec_through_a_listener():
    config = {
        "@architectures": "spacy-binary-ner.SpanScorer.v1",
        "hidden_width": 16,
        "max_span_length": 3,
        "lstm_width": 16,
        "lstm_depth": 1,
        "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 32, "upstream": "*"},
    }
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": SMALL_MODEL["tok2vec"]})
    nlp.add_pipe("binary_ner", config={"model": config})
    losses = train(nlp, teach_examples(nlp), steps=40)
    assert losses[-1] < 0.5 * losses[0]
    assert nlp("Anna lives in Paris .").spans["binary_ner_scores"] is not None


def test_tok2vec_without_width_needs_tok2vec_width():
    from thinc.api import Model as ThincModel

    from spacy_binary_ner.models.span_scorer import build_span_scorer

    widthless = ThincModel("widthless", lambda model, X, is_train: (X, lambda dY: dY))
    with pytest.raises(ValueError, match="tok2vec_width"):
        build_span_scorer(widthless)
    model = build_span_scorer(widthless, tok2vec_width=8)
    assert model.get_ref("output_layer").get_dim("nI") == 128


@pytest.mark.parametrize(
    "decay,expected", [(0.0, [0.2, 0.2, 0.2]), (1.0, [0.2, 0.1, 0.2 / 3]), (0.5, [0.2, 0.2 / 2**0.5, 0.2 / 3**0.5])]
)
def test_unknown_decay_weakens_the_prior_on_each_visit(decay, expected):
    # The gradient on a cell no answer mentions is (p - 0) * weight: the prior's
    # weight that visit, read back from it.
    nlp = make_nlp(unknown_weight=0.2, unknown_decay=decay, unknown_mask_above=None)
    ner = nlp.get_pipe("binary_ner")
    eg = make_example(nlp, ["a", "b", "c", "d"], ents=[(0, 1, "PER")])
    other = make_example(nlp, ["e", "f"], ents=[(0, 1, "PER")])
    nlp.initialize(lambda: [eg, other])
    seen = []
    get_loss = ner.get_loss

    def spy(examples, scores, **kwargs):
        loss, d_scores = get_loss(examples, scores, **kwargs)
        probs = 1 / (1 + numpy.exp(-ner.model.ops.to_numpy(scores)))
        # Row 9 is the first doc's span "d": unknown. The gradient is divided by the batch size, 2.
        seen.append(float(ner.model.ops.to_numpy(d_scores)[9, 0] * 2 / probs[9, 0]))
        return loss, d_scores

    ner.get_loss = spy
    for _ in range(3):
        nlp.update([eg, other])
    numpy.testing.assert_allclose(seen, expected, rtol=1e-4)
    # A new training run starts counting again.
    nlp.initialize(lambda: [eg, other])
    nlp.update([eg, other])
    assert seen[-1] == pytest.approx(0.2, rel=1e-4)


def test_find_binary_ner_by_name_or_first():
    nlp = make_nlp()
    nlp.add_pipe("binary_ner", name="second", config={"model": SMALL_MODEL})
    assert find_binary_ner(nlp) == ("binary_ner", nlp.get_pipe("binary_ner"))
    assert find_binary_ner(nlp, "second") == ("second", nlp.get_pipe("second"))


@pytest.mark.parametrize(
    "pipes,name,message",
    [
        ([], None, "it has no components, so no binary_ner component"),
        (["sentencizer"], None, "it has sentencizer and no binary_ner component"),
        (["sentencizer"], "ner", r"No component 'ner' in the pipeline \(it has sentencizer\)"),
        (["sentencizer"], "sentencizer", "'sentencizer' is a Sentencizer, not a binary_ner pipe"),
    ],
)
def test_find_binary_ner_names_the_components(pipes, name, message):
    nlp = spacy.blank("en")
    for pipe in pipes:
        nlp.add_pipe(pipe)
    with pytest.raises(ValueError, match=message):
        find_binary_ner(nlp, name)
