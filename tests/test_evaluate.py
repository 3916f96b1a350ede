"""`python -m spacy_binary_ner evaluate`: gold P/R/F, held-out answers, calibration."""

import json
import sys

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.util import fix_random_seed

from spacy_binary_ner.data import records_to_examples
from spacy_binary_ner.evaluate import evaluate, find_binary_ner, main, prf, read_answers, reliability
from spacy_binary_ner.targets import n_span_cells

from .util import GOLD_RECORDS, SMALL_MODEL, TEACH_RECORDS

# Held-out answers about sentences the model was trained on, and new ones.
ANSWERS = [
    {
        "text": "Anna met Shaka Khan in London .",
        "spans": [{"start": 0, "end": 4, "label": "PERSON"}],
        "answer": "accept",
    },
    {
        "text": "Anna met Shaka Khan in London .",
        "spans": [{"start": 23, "end": 29, "label": "PERSON"}],
        "answer": "reject",
    },
    {"text": "Berlin is big .", "spans": [{"start": 0, "end": 6, "label": "LOC"}], "answer": "accept"},
    {"text": "Shaka Khan met Anna .", "spans": [{"start": 0, "end": 5, "label": "PERSON"}], "answer": "reject"},
    {"text": "Shaka Khan met Anna .", "spans": [{"start": 6, "end": 10, "label": "LOC"}], "answer": "ignore"},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    examples = records_to_examples(nlp, TEACH_RECORDS) + records_to_examples(nlp, GOLD_RECORDS, complete=True)
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(25):
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("model")
    nlp.to_disk(path)
    return path


@pytest.fixture
def files(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(r) + "\n" for r in GOLD_RECORDS), encoding="utf8")
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps(r) + "\n" for r in ANSWERS), encoding="utf8")
    return gold, answers


@pytest.mark.parametrize(
    "probs,outcomes,n_bins,counts,ece,brier",
    [
        # Two bins: [0, .5) holds 0.1 and 0.3 (one event), [.5, 1] holds 0.9 and 1.0 (both events).
        (
            [0.1, 0.3, 0.9, 1.0],
            [0, 1, 1, 1],
            2,
            [2, 2],
            (2 * abs(0.5 - 0.2) + 2 * abs(1.0 - 0.95)) / 4,
            (0.01 + 0.49 + 0.01 + 0.0) / 4,
        ),
        # Perfectly calibrated at 0.5 in one bin.
        ([0.5, 0.5], [1, 0], 1, [2], 0.0, 0.25),
        # A probability on an inner edge goes to the upper bin.
        ([0.5], [1], 2, [0, 1], 0.5, 0.25),
    ],
)
def test_reliability_bins(probs, outcomes, n_bins, counts, ece, brier):
    rel = reliability(numpy.asarray(probs, dtype="f"), numpy.asarray(outcomes, dtype="f"), n_bins)
    assert [b["n"] for b in rel["bins"]] == counts
    assert rel["ece"] == pytest.approx(ece, abs=1e-6)
    assert rel["brier"] == pytest.approx(brier, abs=1e-6)
    assert rel["positives"] == sum(outcomes)


def test_prf_counts():
    assert prf(2, 4, 3) == {
        "p": 0.5,
        "r": pytest.approx(2 / 3),
        "f": pytest.approx(4 / 7),
        "tp": 2,
        "predicted": 4,
        "gold": 3,
    }
    assert prf(0, 0, 0)["f"] == 0.0


def test_scores_match_the_pipeline(model_dir, files, tmp_path):
    gold, answers = files
    report = evaluate(model_dir, gold, answers, tmp_path / "out")
    nlp = spacy.load(model_dir)
    # Gold counts recomputed straight from the pipeline's own predictions.
    examples = records_to_examples(nlp, GOLD_RECORDS, complete=True)
    tp = n_pred = n_gold = 0
    for eg in examples:
        doc = nlp(eg.predicted.text)
        pred = {(e.start, e.end, e.label_) for e in doc.ents}
        ref = {(e.start, e.end, e.label_) for e in eg.reference.ents}
        tp, n_pred, n_gold = tp + len(pred & ref), n_pred + len(pred), n_gold + len(ref)
    micro = report["gold"]["micro"]
    assert (micro["tp"], micro["predicted"], micro["gold"]) == (tp, n_pred, n_gold)
    assert n_gold == 4
    assert sum(s["gold"] for s in report["gold"]["per_label"].values()) == n_gold
    # Answers: the ignore answer is counted, not asked.
    agree = 0
    for record in ANSWERS[:4]:
        doc = nlp(record["text"])
        span = doc.char_span(record["spans"][0]["start"], record["spans"][0]["end"])
        predicted = (span.start, span.end, record["spans"][0]["label"]) in {
            (e.start, e.end, e.label_) for e in doc.ents
        }
        agree += predicted == (record["answer"] == "accept")
    assert report["answers"]["questions"] == 4
    assert report["answers"]["account"]["skipped"] == {"ignore answer": 1}
    assert report["answers"]["accuracy"] == pytest.approx(agree / 4)
    assert report["answers"]["accept"]["n"] == 2 and report["answers"]["reject"]["n"] == 2
    # Every candidate span and label is in the gold calibration at min_prob 0.
    n_labels = len(report["labels"])
    cells = sum(n_span_cells(len(eg.reference), 4) for eg in examples)
    assert report["calibration"]["gold candidates"]["n"] == cells * n_labels
    assert report["calibration"]["gold candidates"]["positives"] == n_gold
    # The pipe's own settings are back as they were.
    assert spacy.load(model_dir).get_pipe("binary_ner").cfg["candidates_threshold"] == 0.05


def test_cli_writes_json_markdown_and_figure(model_dir, files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    gold, answers = files
    out = tmp_path / "metrics"
    assert main([str(model_dir), "--gold", str(gold), "--answers", str(answers), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "evaluation.json").read_text(encoding="utf8"))
    markdown = (out / "evaluation.md").read_text(encoding="utf8")
    assert markdown in printed
    assert f"**{report['gold']['micro']['f']:.3f}**" in markdown
    assert f"**{report['answers']['accuracy']:.3f}**" in markdown
    assert f"{report['gold']['docs']} docs, 4 entities from {len(GOLD_RECORDS)} records" in markdown
    assert (out / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["figure"] == "reliability.png"


def test_gold_from_docbin_equals_gold_from_jsonl(model_dir, files, tmp_path):
    gold, _ = files
    nlp = spacy.load(model_dir)
    doc_bin = DocBin()
    for eg in records_to_examples(nlp, GOLD_RECORDS, complete=True):
        doc_bin.add(eg.reference)
    doc_bin.to_disk(tmp_path / "gold.spacy")
    from_jsonl = evaluate(nlp, gold)
    from_docbin = evaluate(nlp, tmp_path / "gold.spacy")
    assert from_docbin["gold"]["micro"] == from_jsonl["gold"]["micro"]
    assert from_docbin["calibration"] == from_jsonl["calibration"]


def test_gold_with_missing_annotation_is_not_counted_against_the_model(model_dir, tmp_path):
    """Predictions on tokens the gold does not annotate are reported, not counted."""
    nlp = spacy.load(model_dir)
    # Threshold 0: entities cover every token, so some fall on the unannotated ones.
    nlp.get_pipe("binary_ner").cfg["threshold"] = 0.0
    words = "Anna met Shaka Khan in London .".split()
    predicted = nlp(Doc(nlp.vocab, words=words))
    reference = Doc(nlp.vocab, words=words)
    # Only "in London ." is annotated: London a LOC, the rest of it "O".
    reference.set_ents(
        [Span(reference, 5, 6, label="LOC")],
        outside=[Span(reference, 4, 5), Span(reference, 6, 7)],
        default="unmodified",
    )
    assert [t.ent_iob_ for t in reference] == ["", "", "", "", "O", "B", "O"]
    doc_bin = DocBin()
    doc_bin.add(reference)
    doc_bin.to_disk(tmp_path / "partial.spacy")
    report = evaluate(nlp, tmp_path / "partial.spacy")["gold"]
    on_missing = [e for e in predicted.ents if e.start < 4]
    counted = {(e.start, e.end, e.label_) for e in predicted.ents if e.start >= 4}
    assert on_missing
    assert report["predicted_on_missing_annotation"] == len(on_missing)
    assert report["micro"]["predicted"] == len(counted)
    assert report["micro"]["tp"] == len(counted & {(5, 6, "LOC")})


def test_answers_account_names_every_skipped_record(tmp_path):
    nlp = spacy.blank("en")
    path = tmp_path / "answers.jsonl"
    lines = [
        json.dumps(
            {"text": "Anna lives here .", "spans": [{"start": 0, "end": 4, "label": "PERSON"}], "answer": "accept"}
        ),
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"text": "", "spans": [], "answer": "accept"}),
        json.dumps(
            {"text": "Anna lives here .", "spans": [{"start": 0, "end": 3, "label": "PERSON"}], "answer": "reject"}
        ),
        json.dumps(
            {"text": "Anna lives here .", "spans": [{"start": 0, "end": 4, "label": "PERSON"}], "answer": "maybe"}
        ),
        json.dumps({"text": "Anna lives here .", "spans": [], "answer": "reject"}),
        json.dumps(
            {"text": "Anna lives here .", "spans": [{"start": 0, "end": 4, "label": "PERSON"}], "answer": "ignore"}
        ),
        json.dumps(
            {"text": "Anna lives here .", "spans": [{"start": 0, "end": 99, "label": "PERSON"}], "answer": "reject"}
        ),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    docs, questions, account = read_answers(nlp, path)
    assert len(questions) == 1 and len(docs) == 1
    assert account["records"] == len(lines)
    assert account["skipped"] == {
        "malformed JSON": 1,
        "not an object": 1,
        "empty text": 1,
        "misaligned span": 1,
        "unknown answer": 1,
        "no spans": 1,
        "ignore answer": 1,
        "bad field": 1,
    }
    assert account["first_skipped"]["misaligned span"] == f"{path}:5"


def test_answers_use_the_records_tokens(tmp_path):
    """Character tokens given in the record are used, not the pipeline's tokenizer."""
    nlp = spacy.blank("en")
    text = "AB CD"
    tokens = [
        {"text": "A", "start": 0, "end": 1},
        {"text": "B", "start": 1, "end": 2},
        {"text": "CD", "start": 3, "end": 5},
    ]
    path = tmp_path / "answers.jsonl"
    path.write_text(
        json.dumps(
            {"text": text, "tokens": tokens, "answer": "accept", "spans": [{"start": 1, "end": 2, "label": "X"}]}
        )
        + "\n",
        encoding="utf8",
    )
    docs, questions, _ = read_answers(nlp, path)
    assert [t.text for t in docs[0]] == ["A", "B", "CD"]
    assert (questions[0].start, questions[0].end) == (1, 2)


def test_no_figure_without_matplotlib(model_dir, files, tmp_path, monkeypatch):
    gold, _ = files
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    report = evaluate(model_dir, gold, output=tmp_path / "out")
    assert report["figure"] is None
    assert "pip install" in report["figure_missing"]
    assert not (tmp_path / "out" / "reliability.png").exists()
    assert "No figure" in (tmp_path / "out" / "evaluation.md").read_text(encoding="utf8")


def test_errors_are_clear(model_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="no binary_ner component"):
        find_binary_ner(spacy.blank("en"))
    with pytest.raises(SystemExit):
        main([str(model_dir)])
    assert "--gold, --answers or both" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(model_dir), "--gold", str(tmp_path / "missing.jsonl")])
    assert exit_info.value.code == 2
    assert "argument --gold" in capsys.readouterr().err


def test_a_metric_that_is_not_a_number_is_written_as_null(model_dir, files, tmp_path, monkeypatch):
    import spacy_binary_ner.evaluate as module

    real = module.reliability
    monkeypatch.setattr(module, "reliability", lambda *args: {**real(*args), "ece": float("nan")})
    gold, _ = files
    evaluate(model_dir, gold, output=tmp_path / "out")
    text = (tmp_path / "out" / "evaluation.json").read_text(encoding="utf8")
    report = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in evaluation.json"))
    assert report["calibration"]["gold candidates"]["ece"] is None


def test_answer_labels_differing_in_case_are_in_the_account(model_dir, tmp_path):
    path = tmp_path / "answers.jsonl"
    answers = [dict(ANSWERS[2]), dict(ANSWERS[2], spans=[{"start": 0, "end": 6, "label": "loc"}])]
    path.write_text("".join(json.dumps(a) + "\n" for a in answers), encoding="utf8")
    report = evaluate(model_dir, answers=path, output=tmp_path / "out")
    assert report["answers"]["account"]["labels_differing_in_case"] == [{"LOC": 1, "loc": 1}]
    markdown = (tmp_path / "out" / "evaluation.md").read_text(encoding="utf8")
    assert "labels that differ only in case are different labels: LOC (1 spans), loc (1 spans)" in markdown


@pytest.mark.parametrize("use_gold", [True, False])
def test_displacy_path_writes_the_predicted_entities(model_dir, files, tmp_path, capsys, use_gold):
    gold, answers = files
    out = tmp_path / "displacy"
    data = ["--gold", str(gold)] if use_gold else ["--answers", str(answers)]
    assert main([str(model_dir), *data, "--displacy-path", str(out), "--displacy-limit", "2"]) == 0
    assert f"Wrote {out / 'entities.html'}" in capsys.readouterr().out
    html = (out / "entities.html").read_text(encoding="utf8")
    nlp = spacy.load(model_dir)
    texts = [r["text"] for r in (GOLD_RECORDS if use_gold else ANSWERS)]
    texts = list(dict.fromkeys(texts))[:2]
    for doc in nlp.pipe(texts):
        for ent in doc.ents:
            assert ent.text in html and ent.label_ in html
    assert html.count('class="entities"') == 2
