"""`python -m spacy_binary_ner convert`: DocBin files that spaCy's own Corpus
reader turns into the same training signal as the JSONL reader."""

import json

import numpy
import pytest
import spacy
from spacy.training import Corpus

from spacy_binary_ner.__main__ import main as cli
from spacy_binary_ner.convert import convert
from spacy_binary_ner.data import read_teach_data
from spacy_binary_ner.targets import build_targets

from .util import GOLD_RECORDS, TEACH_RECORDS, zh_records


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf8")
    return path


def targets(examples, labels):
    return build_targets(examples, labels, 4, 0.01, "incorrect_spans")


@pytest.mark.parametrize("lang,teach,gold", [("en", TEACH_RECORDS, GOLD_RECORDS), ("zh", zh_records(), [])])
def test_docbin_through_spacy_corpus_gives_the_same_targets(tmp_path, lang, teach, gold):
    teach_path = write_jsonl(tmp_path / "teach.jsonl", teach)
    gold_path = write_jsonl(tmp_path / "gold.jsonl", gold)
    nlp = spacy.blank(lang)
    report = convert(nlp, [str(teach_path)], [str(gold_path)], tmp_path / "train.spacy")
    ours, _ = read_teach_data(nlp, teach_path, gold_path)
    corpus = Corpus(tmp_path / "train.spacy")
    theirs = list(corpus(nlp))
    assert report["docs"] == len(ours) == len(theirs)
    labels = sorted({e.label_ for eg in ours for e in eg.reference.ents})
    for a, b in zip(ours, theirs):
        assert [t.text for t in a.predicted] == [t.text for t in b.predicted]
        # Missing vs "O" survives the DocBin: that is how the pipe tells partial from complete.
        assert [t.ent_iob_ for t in a.reference] == [t.ent_iob_ for t in b.reference]
        truth_a, weight_a = targets([a], labels)
        truth_b, weight_b = targets([b], labels)
        numpy.testing.assert_array_equal(truth_a, truth_b)
        numpy.testing.assert_array_equal(weight_a, weight_b)
    truths, weights = targets(theirs, labels)
    assert (weights == 1.0).sum() > 0 and truths.sum() == sum(len(eg.reference.ents) for eg in ours)


def test_binary_ner_trains_on_the_docbin(tmp_path):
    write_jsonl(tmp_path / "teach.jsonl", TEACH_RECORDS)
    nlp = spacy.blank("en")
    convert(nlp, [str(tmp_path / "teach.jsonl")], [], tmp_path / "train.spacy")
    nlp.add_pipe("binary_ner", config={"model": {"hidden_width": 16, "lstm_depth": 0}})
    examples = list(Corpus(tmp_path / "train.spacy")(nlp))
    optimizer = nlp.initialize(lambda: examples)
    assert set(nlp.get_pipe("binary_ner").labels) == {"LOC", "PERSON"}
    losses = [nlp.update(examples, sgd=optimizer, losses={})["binary_ner"] for _ in range(15)]
    assert losses[-1] < losses[0] / 2


def test_cli_prints_the_account_and_writes_the_report(tmp_path, capsys):
    teach = write_jsonl(tmp_path / "teach.jsonl", TEACH_RECORDS)
    (tmp_path / "teach.jsonl").open("a").write("{broken\n")
    gold = write_jsonl(tmp_path / "gold.jsonl", GOLD_RECORDS)
    out, report = tmp_path / "out" / "train.spacy", tmp_path / "report.json"
    assert cli(["convert", str(teach), str(out), "--complete", str(gold), "--lang", "en", "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "records read" in printed and "malformed JSON" in printed and f"{teach}:13" in printed
    data = json.loads(report.read_text())
    assert [f["complete"] for f in data["files"]] == [False, True]
    teach_stats, gold_stats = data["files"]
    assert teach_stats["records"] == len(TEACH_RECORDS) + 1
    assert teach_stats["skipped_by_reason"] == {"ignore answer": 1, "malformed JSON": 1}
    assert gold_stats["used"] == 3
    assert data["total"]["records"] == data["total"]["used"] + data["total"]["skipped"]
    assert data["docs"] == data["total"]["examples"] == 8 and out.exists()


def test_cli_strict_fails_with_the_place(tmp_path, capsys):
    teach = write_jsonl(
        tmp_path / "teach.jsonl",
        [{"text": "Paris", "spans": [{"start": 0, "end": 3, "label": "LOC"}], "answer": "accept"}],
    )
    assert cli(["convert", str(teach), str(tmp_path / "t.spacy"), "--strict"]) == 1
    assert f"{teach}:1: misaligned span" in capsys.readouterr().err
    assert cli(["convert", str(teach), str(tmp_path / "t.spacy"), "--alignment", "expand", "--strict"]) == 0


def test_cli_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        cli(["convert", str(tmp_path / "out.spacy")])
    with pytest.raises(SystemExit):
        cli(["convert", str(tmp_path / "in.jsonl"), str(tmp_path / "out.json")])
    # Issue 44: a missing input is a wrong argument, exit 2 (it was 1, after the output's folder was made).
    with pytest.raises(SystemExit) as exit_info:
        cli(["convert", str(tmp_path / "missing.jsonl"), str(tmp_path / "out.spacy")])
    assert exit_info.value.code == 2
