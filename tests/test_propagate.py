"""Accepted strings propagated to other answered texts as weak entities."""

import json

import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.util import fix_random_seed

from spacy_binary_ner.__main__ import main as cli
from spacy_binary_ner.data import read_teach_data
from spacy_binary_ner.propagate import propagate_accepts
from spacy_binary_ner.targets import cell_coordinates

from .util import SMALL_MODEL


def record(text, start, end, label, answer):
    return {"text": text, "spans": [{"start": start, "end": end, "label": label}], "answer": answer}


def weak_of(examples, key="binary_ner_weak"):
    return {
        eg.reference.text: [(s.text, s.label_) for s in eg.reference.spans[key]]
        for eg in examples
        if key in eg.reference.spans
    }


def read(records, tmp_path, complete=(), **settings):
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf8")
    complete_path = None
    if complete:
        complete_path = tmp_path / "complete.jsonl"
        complete_path.write_text("\n".join(json.dumps(r) for r in complete) + "\n", encoding="utf8")
    return read_teach_data(spacy.blank("en"), path, complete_path, **settings)


RECORDS = [
    record("I met Anna Smith today .", 6, 16, "PER", "accept"),
    record("Anna Smith lives in Paris .", 20, 25, "LOC", "accept"),
    record("Later Anna Smith went to Paris .", 0, 5, "PER", "reject"),
    # "Jordan": accepted as PER and as LOC, so never propagated.
    record("Jordan spoke .", 0, 6, "PER", "accept"),
    record("We flew to Jordan .", 11, 17, "LOC", "accept"),
    record("Jordan again .", 7, 12, "LOC", "reject"),
    # "Nile": accepted, but also rejected as LOC in another text.
    record("The Nile is long .", 4, 8, "LOC", "accept"),
    record("Nile Rodgers plays .", 0, 4, "LOC", "reject"),
]


def test_reader_adds_weak_entities_where_tokens_are_unknown(tmp_path):
    examples, reader = read(RECORDS, tmp_path, propagate_accepts=True)
    weak = weak_of(examples)
    # Where nothing is known of their tokens: not on the accepted "Paris" itself.
    assert weak == {
        "Anna Smith lives in Paris .": [("Anna Smith", "PER")],
        "Later Anna Smith went to Paris .": [("Anna Smith", "PER"), ("Paris", "LOC")],
    }
    assert reader.propagated == {
        "strings accepted": 4,
        "strings propagated": 2,
        "strings left out: several labels": 1,
        "strings left out: rejected": 1,
        "weak entities": 3,
    }
    # Off by default.
    examples, reader = read(RECORDS, tmp_path)
    assert weak_of(examples) == {} and not reader.propagated


def test_accepted_span_and_rejected_cell_are_not_weak(tmp_path):
    records = [
        record("Paris and Paris .", 0, 5, "LOC", "accept"),
        record("Rome or Paris .", 8, 13, "LOC", "reject"),
        record("Rome or Paris .", 0, 4, "LOC", "accept"),
    ]
    # "Paris" is rejected as LOC once, so it is not propagated; "Rome" is.
    examples, reader = read(records, tmp_path, propagate_accepts=True)
    assert weak_of(examples) == {}
    assert reader.propagated["strings left out: rejected"] == 1
    records[1] = record("Rome or Paris .", 8, 13, "PER", "reject")
    examples, _ = read(records, tmp_path, propagate_accepts=True)
    # The second "Paris" of the first text is weak, not the accepted one.
    assert weak_of(examples) == {"Paris and Paris .": [("Paris", "LOC")], "Rome or Paris .": [("Paris", "LOC")]}


def test_rarely_accepted_strings_are_left_out(tmp_path):
    texts = [f"a {i} b ." for i in range(40)]
    records = [record("x a y .", 2, 3, "LOC", "accept")] + [
        record(t, len(t) - 1, len(t), "LOC", "reject") for t in texts
    ]
    # "a" occurs 41 times, accepted once: a rate of 1/41 < 0.03.
    examples, reader = read(records, tmp_path, propagate_accepts=True)
    assert reader.propagated["strings left out: rarely accepted"] == 1 and weak_of(examples) == {}
    examples, reader = read(records, tmp_path, propagate_accepts=True, propagate_min_rate=0.02)
    assert reader.propagated["weak entities"] == 40


def test_complete_annotations_are_neither_source_nor_target(tmp_path):
    complete = [{"text": "Anna Smith is here .", "spans": [], "answer": "accept"}]
    records = [
        record("I met Anna Smith today .", 6, 16, "PER", "accept"),
        record("Call Anna Smith .", 0, 4, "PER", "reject"),
    ]
    examples, _ = read(records, tmp_path, complete=complete, propagate_accepts=True)
    assert weak_of(examples) == {"Call Anna Smith .": [("Anna Smith", "PER")]}
    complete = [{"text": "Bob Lee is here .", "spans": [{"start": 0, "end": 7, "label": "PER"}], "answer": "accept"}]
    records = [record("Call Bob Lee .", 0, 4, "PER", "reject")]
    examples, reader = read(records, tmp_path, complete=complete, propagate_accepts=True)
    assert weak_of(examples) == {} and reader.propagated["strings accepted"] == 0


def test_bad_min_rate_is_an_error():
    with pytest.raises(ValueError, match="propagate_min_rate must be between 0 and 1"):
        read_teach_data(spacy.blank("en"), None, propagate_min_rate=2.0)
    with pytest.raises(ValueError, match="min_rate must be between 0 and 1"):
        propagate_accepts([], weak_spans_key="w", incorrect_spans_key="i", min_rate=-1)


def test_weak_entities_push_the_other_places_up(tmp_path):
    others = [f"Then Zorblat saw {city} ." for city in ("Rome", "Oslo", "Lima")]
    records = [record("I met Zorblat today .", 6, 13, "PER", "accept")]
    records += [record(text, len(text) - 1, len(text), "LOC", "reject") for text in others]
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf8")
    pushes = {}
    for weak_weight in (0.0, 0.5):
        nlp = spacy.blank("en")
        ner = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL, "weak_weight": weak_weight})
        examples, reader = read_teach_data(nlp, path, propagate_accepts=True)
        assert reader.propagated["weak entities"] == len(others)
        fix_random_seed(0)
        nlp.initialize(lambda: examples)
        scores = ner.model.predict([eg.predicted for eg in examples])
        _, d_scores = ner.get_loss(examples, scores)
        per = ner.labels.index("PER")
        rows, offset = [], 0
        for eg in examples:
            starts, widths = cell_coordinates(len(eg.predicted), ner.max_span_length)
            if eg.reference.text in others:  # "Zorblat" is token 1, one token wide
                rows.append(offset + int(numpy.flatnonzero((starts == 1) & (widths == 0))[0]))
            offset += len(starts)
        pushes[weak_weight] = ner.model.ops.to_numpy(d_scores)[rows, per]
    # The loss's gradient on "Zorblat" as PER in the other texts: the "no entity"
    # prior pushes it down (positive) without weak entities, they push it up.
    assert (pushes[0.0] > 0).all() and (pushes[0.5] < 0).all()


def test_converter_keeps_the_weak_entities(tmp_path, capsys):
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n", encoding="utf8")
    out, report = tmp_path / "train.spacy", tmp_path / "report.json"
    assert cli(["convert", str(path), str(out), "--propagate-accepts", "--report", str(report)]) == 0
    assert "weak entities: 3" in capsys.readouterr().out
    assert json.loads(report.read_text())["propagated"]["weak entities"] == 3
    docs = list(DocBin().from_disk(out).get_docs(spacy.blank("en").vocab))
    weak = {
        doc.text: [(s.text, s.label_) for s in doc.spans["binary_ner_weak"]]
        for doc in docs
        if doc.spans.get("binary_ner_weak")
    }
    assert weak["Later Anna Smith went to Paris ."] == [("Anna Smith", "PER"), ("Paris", "LOC")]
    assert cli(["convert", str(path), str(tmp_path / "plain.spacy")]) == 0
    assert not any(
        "binary_ner_weak" in doc.spans
        for doc in DocBin().from_disk(tmp_path / "plain.spacy").get_docs(spacy.blank("en").vocab)
    )


def test_strings_mostly_inside_longer_entities_are_left_out(tmp_path):
    records = [
        record("Lee spoke .", 0, 3, "PER", "accept"),
        record("Bob Lee spoke .", 0, 7, "PER", "accept"),
        record("Ann Lee spoke .", 0, 7, "PER", "accept"),
        record("Then Lee left .", 0, 4, "PER", "reject"),
    ]
    # "Lee" is accepted once alone and seen twice inside longer accepted names: 2 of 3.
    examples, reader = read(records, tmp_path, propagate_accepts=True, propagate_max_nested=0.5)
    assert reader.propagated["strings left out: part of longer entities"] == 1
    assert weak_of(examples) == {}
    examples, reader = read(records, tmp_path, propagate_accepts=True, propagate_max_nested=0.7)
    assert weak_of(examples) == {"Then Lee left .": [("Lee", "PER")]}
    with pytest.raises(ValueError, match="propagate_max_nested must be between 0 and 1"):
        read(records, tmp_path, propagate_accepts=True, propagate_max_nested=1.5)


def test_strings_seldom_rejected_can_be_kept(tmp_path):
    records = [record(f"{who} flew to Paris .", len(who) + 9, len(who) + 14, "LOC", "accept") for who in "ABCD"]
    records += [
        # One reject of four accepts: "Paris" inside a longer name.
        record("Paris Hilton smiled .", 0, 5, "LOC", "reject"),
        record("Paris Hilton met E in Paris .", 6, 12, "PER", "reject"),
    ]
    examples, reader = read(records, tmp_path, propagate_accepts=True)
    assert reader.propagated["strings left out: rejected"] == 1 and weak_of(examples) == {}
    examples, reader = read(records, tmp_path, propagate_accepts=True, propagate_max_rejected=0.15)
    assert reader.propagated["strings left out: rejected"] == 1
    examples, reader = read(records, tmp_path, propagate_accepts=True, propagate_max_rejected=0.2)
    # 1 reject of 5 answers: kept, but never where it was rejected.
    assert weak_of(examples) == {"Paris Hilton met E in Paris .": [("Paris", "LOC"), ("Paris", "LOC")]}
    assert reader.propagated["strings propagated"] == 1
    with pytest.raises(ValueError, match="propagate_max_rejected must be between 0 and 1"):
        read(records, tmp_path, propagate_accepts=True, propagate_max_rejected=-0.1)
    path, out = tmp_path / "answers.jsonl", tmp_path / "train.spacy"
    args = ["convert", str(path), str(out), "--propagate-accepts", "--report", str(tmp_path / "r.json")]
    assert cli(args + ["--propagate-max-rejected", "0.2"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["propagated"]["weak entities"] == 2
    assert cli(args) == 0
    assert "weak entities" not in json.loads((tmp_path / "r.json").read_text())["propagated"]


def test_unpushed_places_are_every_other_place_of_an_accepted_string(tmp_path):
    examples, reader = read(RECORDS, tmp_path, propagate_accepts=True, propagate_unpushed=True)
    # "Jordan" has two labels, so it is not weak; where its tokens are unknown
    # neither label is pushed down. The rejected "Nile" and the weak entities
    # are not marked again; the accepted places are known.
    assert weak_of(examples, "binary_ner_weak_unpushed") == {"Jordan again .": [("Jordan", "PER"), ("Jordan", "LOC")]}
    assert reader.propagated["unpushed places"] == 2
    assert weak_of(examples) == weak_of(read(RECORDS, tmp_path, propagate_accepts=True)[0])
    # A label accepted in fewer than min_rate of the string's places is pushed as before.
    examples, _ = read(RECORDS, tmp_path, propagate_accepts=True, propagate_unpushed=True, propagate_min_rate=0.5)
    assert weak_of(examples, "binary_ner_weak_unpushed") == {}


def test_unpushed_places_get_no_prior(tmp_path):
    others = [f"Then Jordan saw {city} ." for city in ("Rome", "Oslo", "Lima")]
    records = [record("I met Jordan today .", 6, 12, "PER", "accept"), record("To Jordan .", 3, 9, "LOC", "accept")]
    records += [record(text, len(text) - 1, len(text), "LOC", "reject") for text in others]
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf8")
    pushes = {}
    for unpushed in (False, True):
        nlp = spacy.blank("en")
        ner = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL, "pseudo_above": None})
        examples, _ = read_teach_data(nlp, path, propagate_accepts=True, propagate_unpushed=unpushed)
        fix_random_seed(0)
        nlp.initialize(lambda: examples)
        scores = ner.model.predict([eg.predicted for eg in examples])
        _, d_scores = ner.get_loss(examples, scores)
        rows, offset = [], 0
        for eg in examples:
            starts, widths = cell_coordinates(len(eg.predicted), ner.max_span_length)
            if eg.reference.text in others:  # "Jordan" and "Then": tokens 1 and 0
                rows.append(offset + int(numpy.flatnonzero((starts == 1) & (widths == 0))[0]))
                rows.append(offset + int(numpy.flatnonzero((starts == 0) & (widths == 0))[0]))
            offset += len(starts)
        grads = ner.model.ops.to_numpy(d_scores)
        pushes[unpushed] = grads[rows][:, [ner.labels.index("PER"), ner.labels.index("LOC")]]
    # Without the setting the prior pushes "Jordan" down (positive gradient) as
    # every unknown cell; with it both of its labels are left alone, "Then" not.
    assert (pushes[False] > 0).all()
    assert (pushes[True][0::2] == 0).all() and (pushes[True][1::2] > 0).all()


def test_unpushed_needs_propagation_and_survives_the_converter(tmp_path):
    with pytest.raises(ValueError, match="propagate_unpushed works with propagate_accepts"):
        read(RECORDS, tmp_path, propagate_unpushed=True)
    path, out = tmp_path / "answers.jsonl", tmp_path / "train.spacy"
    args = ["convert", str(path), str(out), "--propagate-accepts", "--propagate-unpushed", "--lang", "en"]
    assert cli(args + ["--report", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["propagated"]["unpushed places"] == 2
    docs = list(DocBin().from_disk(out).get_docs(spacy.blank("en").vocab))
    marked = {
        d.text: [(s.text, s.label_) for s in d.spans["binary_ner_weak_unpushed"]]
        for d in docs
        if d.spans.get("binary_ner_weak_unpushed")
    }
    assert marked == {"Jordan again .": [("Jordan", "PER"), ("Jordan", "LOC")]}
