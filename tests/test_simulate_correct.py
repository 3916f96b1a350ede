"""`simulate --mode`: the cost model, the simulated clock, and each mode end to end."""

import contextlib
import json
import random
from collections import Counter

import pytest
import spacy

from spacy_binary_ner.__main__ import main as cli
from spacy_binary_ner.consistent import Edits
from spacy_binary_ner.simulate_correct import CostModel, TimedRun, correct_phase, table

CITIES = ["Berlin", "Paris", "London", "Madrid", "Rome", "Oslo", "Lima", "Cairo"]
PEOPLE = ["Anna", "Omar", "Lena", "Tom", "Ines", "Karl", "Mia", "Raj"]
VERBS = ["flew to", "lives in", "visited", "left"]


def gold_records(n, seed):
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        person, city, verb = rng.choice(PEOPLE), rng.choice(CITIES), rng.choice(VERBS)
        text = f"{person} {verb} {city} ."
        spans = [
            {"start": 0, "end": len(person), "label": "PER"},
            {"start": text.index(city), "end": text.index(city) + len(city), "label": "LOC"},
        ]
        records.append({"text": text, "spans": spans})
    return records


class StubLoop:
    """What `TimedRun` and `correct_phase` use of an `AnnotationLoop`: an
    EntityRuler pre-highlights known spans, updates are recorded."""

    def __init__(self, patterns, labels=("LOC", "PER")):
        self.nlp = spacy.blank("en")
        self.nlp.add_pipe("entity_ruler").add_patterns(patterns)
        self.pipe = type("Pipe", (), {"labels": labels})()
        self.answer_counts = Counter()
        self.batches = []
        self.evaluations = 0

    def averaged_params(self):
        return contextlib.nullcontext()

    def update(self, batch):
        self.batches.append(list(batch))
        return 0.0


def stub_run(loop, minutes=10.0, every_minutes=1.0, batch_size=10, texts_per_update=1):
    run = TimedRun("correct", loop, [], minutes * 60, every_minutes * 60, batch_size, texts_per_update)
    run.evaluated_at = []

    def evaluate():
        run.learn()
        run.evaluated_at.append((run.next_eval, run.seconds, sum(len(b) for b in loop.batches)))
        run.points.append({"seconds": run.next_eval, "minutes": run.next_eval / 60})
        run.next_eval = min(run.next_eval + run.every, run.budget)

    run.evaluate = evaluate
    return run


@pytest.mark.parametrize(
    "edits,seconds",
    [(Edits(0, 0, 0), 3.0), (Edits(2, 0, 0), 6.0), (Edits(1, 1, 1), 7.5), (Edits(0, 3, 2), 10.5)],
)
def test_correction_cost_is_per_text_plus_per_edit(edits, seconds):
    assert CostModel().correction(edits) == seconds
    assert CostModel(seconds_per_text=2.0, seconds_per_edit=0.5).correction(edits) == 2.0 + 0.5 * edits.total


def test_a_known_pre_highlight_costs_the_known_seconds_and_is_learned_as_complete():
    patterns = [{"label": "PER", "pattern": "Paris"}, {"label": "LOC", "pattern": "flew"}]
    pool = [
        # Pre-highlighted: Paris as PER (relabel), "flew" as LOC (remove); Anna missing (add): 3 + 3 x 1.5.
        {
            "text": "Anna flew to Paris .",
            "spans": [{"start": 0, "end": 4, "label": "PER"}, _span("Anna flew to Paris .", "Paris", "LOC")],
        },
        # Nothing pre-highlighted, one entity: 3 + 1.5.
        {"text": "Omar left .", "spans": [{"start": 0, "end": 4, "label": "PER"}]},
        # Nothing pre-highlighted, nothing to add: 3.
        {"text": "It rained .", "spans": []},
    ]
    loop = StubLoop(patterns)
    run = stub_run(loop, texts_per_update=2)
    tasks = [{"text": r["text"], "_input_hash": i} for i, r in enumerate(pool)]
    gold = {i: {(s["start"], s["end"], s["label"]) for s in r["spans"]} for i, r in enumerate(pool)}
    assert correct_phase(run, tasks, gold, CostModel()) is False  # the texts ran out first
    assert run.seconds == pytest.approx(7.5 + 4.5 + 3.0)
    assert (run.counts["texts"], run.counts["edits"]) == (3, 4)
    run.learn()
    assert [len(batch) for batch in loop.batches] == [2, 1]
    first = loop.batches[0][0]
    assert first["complete"] is True and first["answer"] == "accept"
    assert [(s["start"], s["end"], s["label"]) for s in first["spans"]] == [(0, 4, "PER"), (13, 18, "LOC")]


def _span(text, word, label):
    return {"start": text.index(word), "end": text.index(word) + len(word), "label": label}


def test_the_budget_stops_a_correction_that_would_run_past_it():
    loop = StubLoop([{"label": "LOC", "pattern": "nowhere"}])
    run = stub_run(loop, minutes=10 / 60, every_minutes=10 / 60)  # 10 simulated seconds
    tasks = [{"text": "Omar left .", "_input_hash": i} for i in range(5)]
    gold = {i: {(0, 4, "PER")} for i in range(5)}
    assert correct_phase(run, tasks, gold, CostModel()) is True
    assert run.counts["texts"] == 2 and run.seconds == 9.0
    assert [at for at, *_ in run.evaluated_at] == [10.0]


def test_the_clock_evaluates_at_each_interval_after_learning_what_ended_before_it():
    loop = StubLoop([{"label": "LOC", "pattern": "nowhere"}])
    run = stub_run(loop, minutes=3, every_minutes=1, batch_size=100)
    for _ in range(59):
        assert run.charge(1.0)
        run.add({"text": "x"})
    # A 2-second action from 59 s would end past 60 s: the model is evaluated at 60 s first,
    # with the 59 answers that ended before it.
    assert run.charge(2.0)
    assert run.evaluated_at == [(60.0, 59.0, 59)]
    assert run.charge(100.0)
    assert [at for at, *_ in run.evaluated_at] == [60.0, 120.0] and run.seconds == 161.0
    # An action that would end past the budget does not happen; the last evaluation, at the budget, does.
    assert not run.charge(100.0)
    assert [at for at, *_ in run.evaluated_at] == [60.0, 120.0, 180.0] and run.seconds == 161.0


def test_table_reads_the_last_point_at_or_before_each_time():
    points = [
        {"mode": "teach", "minutes": 30.0, "f": 0.5, "decisions": 1800, "texts": 0},
        {"mode": "teach", "minutes": 60.0, "f": 0.6, "decisions": 3600, "texts": 0},
        {"mode": "correct", "minutes": 30.0, "f": 0.7, "decisions": 0, "texts": 200},
    ]
    lines = table(points, [30, 60]).splitlines()
    assert lines[2] == "| teach | 0.500 | 1800 / 0 | 0.600 | 3600 / 0 |"
    assert lines[3] == "| correct | 0.700 | 0 / 200 | 0.700 | 0 / 200 |"


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf8")
    return path


def test_each_mode_runs_and_teach_then_correct_switches(tmp_path, capsys):
    pool = write_jsonl(tmp_path / "train.jsonl", gold_records(60, seed=1))
    test = write_jsonl(tmp_path / "test.jsonl", gold_records(10, seed=2))
    out = tmp_path / "out"
    args = ["simulate", "--pool", str(pool), "--test", str(test), "--lang", "en", "--output", str(out)]
    args += ["--mode", "teach,correct,teach-then-correct", "--strategy", "random", "--minutes", "1.5"]
    args += ["--eval-minutes", "0.5", "--switch-minutes", "0.5", "--batch-size", "4", "--no-progress"]
    assert cli(args) == 0
    points = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    by_mode = {m: [p for p in points if p["mode"] == m] for m in ("teach", "correct", "teach-then-correct")}
    for mine in by_mode.values():
        assert [p["minutes"] for p in mine] == [0.5, 1.0, 1.5]
        assert all(0.0 <= p["f"] <= 1.0 and p["seconds_per_edit"] == 1.5 for p in mine)
    teach, correct, switched = by_mode["teach"], by_mode["correct"], by_mode["teach-then-correct"]
    # One second per decision, and every evaluation time is reached exactly.
    assert [p["decisions"] for p in teach] == [30, 60, 90] and all(p["texts"] == 0 for p in teach)
    assert all(p["decisions"] == 0 for p in correct) and 0 < correct[0]["texts"] < correct[-1]["texts"]
    # Each corrected text cost at least 3 s: at most 10 in 30 s.
    assert correct[0]["texts"] <= 10 and correct[0]["texts"] * 3 + correct[0]["edits"] * 1.5 <= 30
    # Binary answers until 0.5 minutes, then corrections of the texts answered, none asked again.
    assert switched[0]["decisions"] == 30 and switched[0]["texts"] == 0
    assert [p["decisions"] for p in switched[1:]] == [30, 30]
    assert 0 < switched[1]["texts_answered_then_corrected"] <= switched[-1]["texts"]
    assert (out / "curve.png").exists() or "matplotlib is not installed" in capsys.readouterr().err
    assert "| teach-then-correct |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--mode", "fix"], "argument --mode: unknown mode"),
        (["--mode", "correct", "--strategy", "beam_ner"], "argument --strategy: the timed modes"),
        (["--mode", "correct", "--minutes", "0"], "argument --minutes: must be positive"),
        (["--mode", "correct", "--seconds-per-edit", "-1"], "argument --seconds-per-edit: must be 0 or more"),
    ],
)
def test_bad_timed_arguments_exit_2_with_one_line(tmp_path, capsys, extra, message):
    pool = write_jsonl(tmp_path / "train.jsonl", gold_records(3, seed=1))
    args = ["simulate", "--pool", str(pool), "--test", str(pool), "--lang", "en", "--output", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exit_info:
        cli(args + extra)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
