"""The decision threshold chosen on dev: from one prediction, in training as a
`before_to_disk` callback, saved with the pipeline."""

import json
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.training.initialize import init_nlp
from spacy.training.loop import train
from spacy.util import load_config, registry

from spacy_binary_ner.data import records_to_examples
from spacy_binary_ner.targets import cell_coordinates
from spacy_binary_ner.threshold import (
    THRESHOLDS,
    best_threshold,
    bootstrap_wins,
    choose_threshold,
    create_dev_threshold_callback,
    is_complete,
)

from .util import GOLD_RECORDS, SMALL_MODEL, TEACH_RECORDS, make_example

REPO = Path(__file__).resolve().parent.parent
WORDS = ["Anna", "met", "Shaka", "Khan", "in", "London", "."]
GOLD = [(0, 1, "PERSON"), (2, 4, "PERSON"), (5, 6, "LOC")]


def logit(p: float) -> float:
    return float(numpy.log(p / (1 - p)))


def crafted(monkeypatch):
    """A binary_ner whose prediction for WORDS gives the gold PERSONs 0.32,
    the gold LOC 0.7 and a wrong LOC ("met") 0.15; all else near 0."""
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    eg = make_example(nlp, WORDS, GOLD, default="outside")
    nlp.initialize(lambda: [eg])
    labels = list(pipe.labels)
    starts, widths = cell_coordinates(len(WORDS), pipe.max_span_length)
    logits = numpy.full((len(starts), len(labels)), -10.0, dtype="float32")
    for start, end, label, p in [
        (0, 1, "PERSON", 0.32),
        (2, 4, "PERSON", 0.32),
        (5, 6, "LOC", 0.7),
        (1, 2, "LOC", 0.15),
    ]:
        row = int(numpy.flatnonzero((starts == start) & (widths == end - start - 1))[0])
        logits[row, labels.index(label)] = logit(p)
    monkeypatch.setattr(pipe, "predict", lambda docs: logits)
    return nlp, pipe, eg


def test_choose_threshold_decodes_one_prediction_at_every_threshold(monkeypatch):
    nlp, pipe, eg = crafted(monkeypatch)
    best, scores = choose_threshold(nlp, [eg], thresholds=[0.1, 0.2, 0.25, 0.3, 0.4, 0.5])
    f = {t: s["ents_f"] for t, s in scores.items()}
    assert f[0.5] == pytest.approx(0.5)  # London only
    assert f[0.4] == pytest.approx(0.5)
    assert f[0.2] == f[0.25] == f[0.3] == pytest.approx(1.0)
    assert f[0.1] == pytest.approx(6 / 7)  # and the wrong LOC
    # Ties go to the threshold nearest the pipe's own (0.5).
    assert best == 0.3
    assert pipe.cfg["threshold"] == 0.5
    assert pipe.cfg["scores_key"] == "binary_ner_scores"


def test_choose_threshold_always_scores_the_pipes_own_threshold(monkeypatch):
    nlp, pipe, eg = crafted(monkeypatch)
    pipe.cfg["threshold"] = 0.45
    best, scores = choose_threshold(nlp, [eg], thresholds=[0.6, 0.7])
    assert sorted(scores) == [0.45, 0.6, 0.7]
    assert best == 0.45


def test_best_threshold_ties_go_to_the_default():
    assert best_threshold({0.2: 0.8, 0.4: 0.8, 0.6: 0.7}, 0.5) == 0.4
    assert best_threshold({0.2: 0.8, 0.4: 0.8, 0.6: 0.7}, 0.1) == 0.2
    assert best_threshold({0.2: 0.7, 0.4: 0.8}, 0.2) == 0.4


def counts(rows):
    return numpy.asarray(rows, dtype="int64")


def test_bootstrap_wins_counts_paired_resamples():
    same = counts([[3, 1, 1]] * 50)
    assert bootstrap_wins(same, same) == 0.0  # never strictly better
    better = counts([[4, 0, 0]] * 50)
    assert bootstrap_wins(better, same) == 1.0
    assert bootstrap_wins(same, better) == 0.0
    # One doc of 50 gains a true positive, another loses one: a coin toss.
    mixed = same.copy()
    mixed[0] = [4, 1, 0]
    mixed[1] = [2, 1, 2]
    assert 0.2 < bootstrap_wins(mixed, same) < 0.8
    assert bootstrap_wins(counts([]).reshape(0, 3), counts([]).reshape(0, 3)) == 0.0


@pytest.mark.parametrize(
    "gain_docs,loss_docs,expected",
    [
        (20, 0, 0.3),  # better on many docs, worse on none: taken
        (6, 5, 0.5),  # the best dev F1 by a hair, within the noise: the default stays
    ],
)
def test_best_threshold_with_counts_needs_a_consistent_gain(gain_docs, loss_docs, expected):
    base = counts([[2, 1, 1]] * 100)
    other = base.copy()
    other[:gain_docs] = [3, 1, 0]
    other[gain_docs : gain_docs + loss_docs] = [1, 1, 2]
    by_t = {0.3: other, 0.5: base}
    f = {t: float(2 * c[:, 0].sum() / (2 * c[:, 0].sum() + c[:, 1].sum() + c[:, 2].sum())) for t, c in by_t.items()}
    assert f[0.3] > f[0.5]
    assert best_threshold(f, 0.5, by_t) == expected
    assert best_threshold(f, 0.5, by_t, confidence=0.0) == 0.3
    assert best_threshold(f, 0.5) == 0.3  # without counts: the best F1


def test_choose_threshold_needs_complete_annotations(monkeypatch):
    nlp, pipe, eg = crafted(monkeypatch)
    teach = make_example(nlp, WORDS, [(0, 1, "PERSON")], default="missing")
    assert is_complete(eg) and not is_complete(teach)
    with pytest.raises(ValueError, match="1 of 2 examples .*gold dev split"):
        choose_threshold(nlp, [eg, teach])


def test_choose_threshold_names_a_missing_component():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="No binary_ner component"):
        choose_threshold(nlp, [])


def test_callback_rejects_bad_thresholds():
    with pytest.raises(ValueError, match="between 0 and 1"):
        create_dev_threshold_callback(thresholds=[0.0, 0.5])
    assert registry.callbacks.get("spacy-binary-ner.dev_threshold.v1") is create_dev_threshold_callback


def write(path: Path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf8")
    return str(path)


def small_config(tmp_path, dev_records=GOLD_RECORDS, **callback):
    config = load_config(REPO / "configs" / "en_cnn.cfg")
    model = config["components"]["binary_ner"]["model"]
    model["hidden_width"] = model["lstm_width"] = 16
    model["tok2vec"]["embed"]["width"] = model["tok2vec"]["encode"]["width"] = 16
    model["tok2vec"]["encode"]["depth"] = 1
    config["paths"]["train"] = write(tmp_path / "teach.jsonl", TEACH_RECORDS)
    config["paths"]["train_complete"] = write(tmp_path / "gold.jsonl", GOLD_RECORDS)
    config["paths"]["dev"] = write(tmp_path / "dev.jsonl", dev_records)
    config["training"]["max_steps"] = 20
    config["training"]["eval_frequency"] = 10
    config["training"]["before_to_disk"].update(callback)
    return config


def train_and_load(config, tmp_path):
    nlp = init_nlp(config)
    out = tmp_path / "out"
    out.mkdir()
    train(nlp, out)
    return spacy.load(out / "model-best")


def test_configs_choose_the_threshold_on_dev_by_default():
    for path in sorted((REPO / "configs").glob("*.cfg")):
        callback = load_config(path, interpolate=False)["training"]["before_to_disk"]
        assert callback["@callbacks"] == "spacy-binary-ner.dev_threshold.v1", path.name
        assert callback["dev_corpus"] == "corpora.dev"


def test_training_saves_and_logs_the_threshold_chosen_on_dev(tmp_path, capsys):
    # The config's own callback and thresholds; no dev gain on 3 docs is beyond noise, so no bootstrap test.
    config = small_config(tmp_path, confidence=0.0)
    config["training"]["max_steps"] = 40
    config["training"]["optimizer"]["learn_rate"] = 0.01
    # Too low for this model (a flood of false entities): the callback has something to choose.
    config["components"]["binary_ner"]["threshold"] = 0.02
    loaded = train_and_load(config, tmp_path)
    out = capsys.readouterr().out
    chosen = [line for line in out.splitlines() if "chosen on corpora.dev" in line]
    assert len(chosen) == 6  # one per save: after each evaluation (steps 0 to 40) and the final one
    saved = loaded.get_pipe("binary_ner").cfg["threshold"]
    assert saved in THRESHOLDS
    # The saved pipeline's own weights choose the same threshold on the same dev split,
    # and it scores better there than the configured one.
    dev = records_to_examples(loaded, GOLD_RECORDS, complete=True)
    best, scores = choose_threshold(loaded, dev, thresholds=[*THRESHOLDS, 0.02], confidence=0.0)
    assert best == saved
    assert scores[saved]["ents_f"] > scores[0.02]["ents_f"]
    assert f"threshold {saved:g} chosen" in chosen[-1] and "at the configured 0.02" in chosen[-1]


def test_training_keeps_the_configured_threshold_where_dev_gains_are_noise(tmp_path, capsys, monkeypatch):
    import spacy_binary_ner.threshold as threshold

    monkeypatch.setattr(threshold, "bootstrap_wins", lambda *args, **kwargs: 0.5)
    config = small_config(tmp_path)
    config["training"]["max_steps"] = 40
    config["training"]["optimizer"]["learn_rate"] = 0.01
    config["components"]["binary_ner"]["threshold"] = 0.02
    loaded = train_and_load(config, tmp_path)
    assert loaded.get_pipe("binary_ner").cfg["threshold"] == 0.02
    kept = [line for line in capsys.readouterr().out.splitlines() if "kept on corpora.dev" in line]
    assert kept and "better on 50% of 1000 resamples, below the confidence 90%" in kept[-1]


def test_callback_rejects_a_bad_confidence():
    with pytest.raises(ValueError, match="confidence"):
        create_dev_threshold_callback(confidence=1.0)


def test_null_thresholds_keep_the_configured_threshold(tmp_path, capsys):
    config = small_config(tmp_path, thresholds=None)
    config["components"]["binary_ner"]["threshold"] = 0.05
    loaded = train_and_load(config, tmp_path)
    assert loaded.get_pipe("binary_ner").cfg["threshold"] == 0.05
    assert "chosen on" not in capsys.readouterr().out


def test_teach_answers_as_dev_keep_the_configured_threshold(tmp_path, capsys):
    config = small_config(tmp_path, thresholds=[0.05, 0.1])
    # The dev corpus reads teach answers: no F1 can be trusted on them.
    config["corpora"]["dev"]["path"] = config["paths"]["train"]
    config["corpora"]["dev"]["complete_path"] = None
    loaded = train_and_load(config, tmp_path)
    assert loaded.get_pipe("binary_ner").cfg["threshold"] == 0.5
    captured = capsys.readouterr()
    assert "chosen on" not in captured.out
    assert captured.err.count("corpora.dev has no complete annotations") == 1


def test_callback_leaves_other_pipelines_alone(capsys):
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    callback = create_dev_threshold_callback()
    assert callback(nlp) is nlp
    assert callback(nlp) is nlp
    assert capsys.readouterr().err.count("no binary_ner component") == 1


LOGGED: list = []


@registry.loggers("test-binary-ner.record_scores.v1")
def record_scores_logger():
    def setup(nlp, stdout=None, stderr=None):
        def log_step(info):
            if info is not None:
                LOGGED.append(info["other_scores"]["ents_f"])

        return log_step, lambda: None

    return setup


def test_training_logs_and_selects_by_the_dev_score_at_the_saved_threshold(tmp_path, capsys):
    # spaCy evaluates, then saves (the callback runs), then logs. Each evaluation
    # after the first must be scored at the threshold chosen for its own weights,
    # the one printed and saved with them, not at the previous evaluation's.
    LOGGED.clear()
    logged = LOGGED
    config = small_config(tmp_path, confidence=0.0)
    config["training"]["max_steps"] = 60
    config["training"]["optimizer"]["learn_rate"] = 0.01
    config["components"]["binary_ner"]["threshold"] = 0.02
    config["training"]["logger"] = {"@loggers": "test-binary-ner.record_scores.v1"}
    loaded = train_and_load(config, tmp_path)
    out = capsys.readouterr().out
    chosen = [line for line in out.splitlines() if "chosen on corpora.dev" in line]
    thresholds = [float(line.split("threshold ")[1].split()[0]) for line in chosen]
    f_at_chosen = [float(line.split("(ents_f ")[1].split(";")[0]) for line in chosen]
    assert len(logged) == 7 and len(chosen) == 8  # evaluations at steps 0-60, then the final save
    assert len(set(thresholds)) > 1  # the choice moved, so a stale one would show
    # chosen[k] was made for evaluation k (chosen[0] after the first evaluation, for its save).
    for k in range(1, len(logged)):
        assert logged[k] == pytest.approx(f_at_chosen[k], abs=5e-5), (k, thresholds)
    assert loaded.get_pipe("binary_ner").cfg["threshold"] in thresholds
