"""The `simulate` command: oracle, gold reading, and a tiny end-to-end run."""

import json
import random
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin, Span

from spacy_binary_ner.__main__ import main as cli
from spacy_binary_ner.loop import LOOP_THRESHOLD
from spacy_binary_ner.simulate import gold_index, oracle, read_gold_records, table

CITIES = ["Berlin", "Paris", "London", "Madrid", "Rome"]
PEOPLE = ["Anna", "Omar", "Lena", "Tom"]


def gold_records(n: int, seed: int):
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        person, city = rng.choice(PEOPLE), rng.choice(CITIES)
        text = f"{person} flew to {city} ."
        spans = [
            {"start": 0, "end": len(person), "label": "PER"},
            {"start": text.index(city), "end": text.index(city) + len(city), "label": "LOC"},
        ]
        records.append({"text": text, "spans": spans})
    return records


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf8")
    return path


def test_oracle_accepts_exactly_the_gold_span_and_label():
    pool = gold_records(3, seed=0)
    gold = gold_index(pool)
    from spacy_binary_ner.loop import set_hashes

    text = pool[0]["text"]
    person_end = pool[0]["spans"][0]["end"]
    task = set_hashes({"text": text, "spans": [{"start": 0, "end": person_end, "label": "PER"}]})
    assert oracle(task, gold) == "accept"
    wrong_label = set_hashes({"text": text, "spans": [{"start": 0, "end": person_end, "label": "LOC"}]})
    assert oracle(wrong_label, gold) == "reject"
    wrong_span = set_hashes({"text": text, "spans": [{"start": 0, "end": person_end + 1, "label": "PER"}]})
    assert oracle(wrong_span, gold) == "reject"


def test_read_gold_from_docbin(tmp_path):
    nlp = spacy.blank("en")
    doc = nlp("Anna flew to Paris .")
    doc.ents = [Span(doc, 0, 1, label="PER"), Span(doc, 3, 4, label="LOC")]
    DocBin(docs=[doc]).to_disk(tmp_path / "gold.spacy")
    (record,) = read_gold_records(tmp_path / "gold.spacy", nlp)
    assert record["text"] == "Anna flew to Paris ."
    assert record["spans"] == [{"start": 0, "end": 4, "label": "PER"}, {"start": 13, "end": 18, "label": "LOC"}]
    assert [t["text"] for t in record["tokens"]] == ["Anna", "flew", "to", "Paris", "."]


def test_simulate_writes_a_curve_per_strategy(tmp_path, capsys):
    pool = write_jsonl(tmp_path / "train.jsonl", gold_records(40, seed=1))
    test = write_jsonl(tmp_path / "test.jsonl", gold_records(10, seed=2))
    patterns = write_jsonl(tmp_path / "patterns.jsonl", [{"label": "LOC", "pattern": "Paris"}])
    out = tmp_path / "out"
    rc = cli(
        [
            "simulate",
            "--pool",
            str(pool),
            "--test",
            str(test),
            "--patterns",
            str(patterns),
            "--strategy",
            "uncertainty,beam_ner",
            "--batch-size",
            "5",
            "--budget",
            "20",
            "--eval-every",
            "10",
            "--lang",
            "en",
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    points = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [(p["strategy"], p["decisions"]) for p in points] == [
        ("uncertainty", 10),
        ("uncertainty", 20),
        ("beam_ner", 10),
        ("beam_ner", 20),
    ]
    for p in points:
        assert p["accepts"] + p["rejects"] == p["decisions"]
        assert p["pattern_accepts"] + p["pattern_rejects"] + p["model_accepts"] + p["model_rejects"] == p["decisions"]
        assert 0.0 <= p["f"] <= 1.0
    # The cold start: the first batch held pattern questions, and "Paris" is gold LOC.
    assert points[0]["pattern_accepts"] >= 1
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (out / "curve.png").exists()
    else:
        assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "| uncertainty |" in printed and "| beam_ner |" in printed


def test_simulate_rejects_an_unknown_strategy(tmp_path):
    pool = write_jsonl(tmp_path / "train.jsonl", gold_records(5, seed=1))
    with pytest.raises(SystemExit):
        cli(
            [
                "simulate",
                "--pool",
                str(pool),
                "--test",
                str(pool),
                "--strategy",
                "greedy",
                "--lang",
                "en",
                "--output",
                str(tmp_path / "out"),
            ]
        )


def test_simulate_rejects_a_threshold_outside_0_1(tmp_path, capsys):
    pool = write_jsonl(tmp_path / "train.jsonl", gold_records(5, seed=1))
    with pytest.raises(SystemExit):
        cli(
            [
                "simulate",
                "--pool",
                str(pool),
                "--test",
                str(pool),
                "--threshold",
                "1",
                "--lang",
                "en",
                "--output",
                str(tmp_path / "out"),
            ]
        )
    assert "--threshold 1.0: must be between 0 and 1" in capsys.readouterr().err


def test_table_lists_every_point():
    points = [
        {"strategy": "a", "decisions": 10, "f": 0.5, "accepts": 3, "update_ms_median": 1.0},
        {"strategy": "a", "decisions": 20, "f": 0.6, "accepts": 5, "update_ms_median": 1.0},
        {"strategy": "b", "decisions": 10, "f": 0.1, "accepts": 1, "update_ms_median": 2.0},
    ]
    lines = table(points).splitlines()
    assert lines[0].startswith("| strategy | 10 | 20 |")
    assert lines[2] == "| a | 0.500 | 0.600 | 5 | 1.0 |"
    assert lines[3] == "| b | 0.100 |  | 1 | 2.0 |"


def test_spacy_peer_components_share_our_cnn_tok2vec():
    from spacy_binary_ner.simulate import spacy_peer_components

    ner = spacy_peer_components("ner")["components"]["ner"]
    beam = spacy_peer_components("beam_ner")["components"]["beam_ner"]
    assert ner["factory"] == "ner" and beam["factory"] == "beam_ner"
    assert "beam_width" in beam and "beam_width" not in ner
    assert ner["incorrect_spans_key"] == beam["incorrect_spans_key"] == "incorrect_spans"
    ours = spacy.util.load_config(Path(__file__).resolve().parent.parent / "configs" / "en_cnn.cfg")
    assert ner["model"]["tok2vec"] == beam["model"]["tok2vec"] == ours["components"]["binary_ner"]["model"]["tok2vec"]
    with pytest.raises(ValueError, match="factory"):
        spacy_peer_components("spancat")


def test_scores_by_threshold_agree_with_evaluate_and_dev_picks_one(tmp_path):
    from spacy_binary_ner.data import records_to_examples
    from spacy_binary_ner.loop import AnnotationLoop, initialize_pipeline
    from spacy_binary_ner.simulate import THRESHOLDS, scores_by_threshold

    from .util import SMALL_MODEL

    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    pool = gold_records(40, seed=1)
    optimizer = initialize_pipeline(nlp, ["LOC", "PER"], pool[:5])
    loop = AnnotationLoop(nlp, optimizer=optimizer, seed=0)
    train = records_to_examples(nlp, pool, complete=True)
    for _ in range(15):
        nlp.update(train, sgd=optimizer)  # the averages follow these steps too
    examples = records_to_examples(nlp, gold_records(10, seed=2), complete=True)
    scores = scores_by_threshold(loop, examples, (0.2, 0.5))
    found = {t: float(s["ents_f"] or 0.0) for t, s in scores.items()}
    assert found[0.2] > 0.3, found  # a model that found entities: the comparison below means something
    pipe = nlp.get_pipe("binary_ner")
    for threshold in (0.2, 0.5):
        pipe.cfg["threshold"] = threshold
        with loop.averaged_params():
            assert found[threshold] == pytest.approx(nlp.evaluate(examples)["ents_f"] or 0.0)
        tp, fp, fn = scores[threshold]["doc_counts"].sum(axis=0)
        assert found[threshold] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert pipe.cfg["threshold"] == 0.5

    test = write_jsonl(tmp_path / "test.jsonl", gold_records(10, seed=2))
    dev = write_jsonl(tmp_path / "dev.jsonl", gold_records(10, seed=3))
    out = tmp_path / "out"
    rc = cli(
        [
            "simulate",
            "--pool",
            str(write_jsonl(tmp_path / "train.jsonl", pool)),
            "--test",
            str(test),
            "--dev",
            str(dev),
            "--strategy",
            "uncertainty",
            "--batch-size",
            "5",
            "--budget",
            "10",
            "--eval-every",
            "10",
            "--lang",
            "en",
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    point = json.loads((out / "curve.jsonl").read_text().splitlines()[-1])
    assert point["dev_threshold"] in THRESHOLDS
    assert set(point["f_per_label"]) <= {"LOC", "PER"}
    assert point["f_dev_threshold"] == pytest.approx(
        point["test_f_by_threshold"][str(point["dev_threshold"])], abs=1e-4
    )
    # The loop's threshold is the one dev chose: its test F1 is the point's.
    assert point["f"] == pytest.approx(point["f_dev_threshold"], abs=1e-4)
    assert point["f_configured_threshold"] == pytest.approx(point["test_f_by_threshold"]["0.2"], abs=1e-4)


def loop_built_by_simulate(tmp_path, monkeypatch, flags):
    """The pipeline and keyword arguments `run_strategy` builds its
    `AnnotationLoop` with, for these command-line flags."""
    import spacy_binary_ner.simulate as simulate

    seen = []

    class Stop(Exception):
        pass

    def fake_loop(nlp, **kwargs):
        seen.append((nlp, kwargs))
        raise Stop

    monkeypatch.setattr(simulate, "AnnotationLoop", fake_loop)
    pool = write_jsonl(tmp_path / "train.jsonl", gold_records(10, seed=1))
    args = simulate.parse_args(
        ["--pool", str(pool), "--test", str(pool), "--lang", "en", "--output", str(tmp_path)] + flags
    )
    with pytest.raises(Stop):
        simulate.run_strategy("uncertainty", simulate.read_gold_records(pool), [], ["LOC"], args, progress=False)
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize("flag,expected", [([], False), (["--self-training"], True)])
def test_self_training_flag_reaches_the_loop(tmp_path, monkeypatch, flag, expected):
    _, kwargs = loop_built_by_simulate(tmp_path, monkeypatch, flag)
    assert kwargs["self_training"] is expected


@pytest.mark.parametrize("flag,expected", [([], LOOP_THRESHOLD), (["--threshold", "0.5"], 0.5)])
def test_threshold_flag_sets_the_evaluated_threshold(tmp_path, monkeypatch, flag, expected):
    nlp, _ = loop_built_by_simulate(tmp_path, monkeypatch, flag)
    assert nlp.get_pipe("binary_ner").cfg["threshold"] == expected


@pytest.mark.parametrize("flag,use_blis", [([], True), (["--blas", "numpy"], False)])
def test_blas_flag_chooses_the_models_matrix_products_and_restores_the_ops(tmp_path, monkeypatch, flag, use_blis):
    from thinc.api import get_current_ops

    before = get_current_ops()
    nlp, _ = loop_built_by_simulate(tmp_path, monkeypatch, flag)
    assert all(node.ops.use_blis is use_blis for node in nlp.get_pipe("binary_ner").model.walk())
    assert get_current_ops() is before
