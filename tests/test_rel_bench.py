"""The relation benchmark runs end to end on a tiny split of the sample, so it
cannot rot, and its teach-1x simulation follows its definition."""

import importlib.util
import json
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "assets" / "rel" / "en_gold_dev.jsonl"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("rel_benchmark", REPO / "bench" / "rel_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gold_records():
    return [json.loads(line) for line in SAMPLE.open(encoding="utf8")]


PAIRS = {"Based_In": [["ORG", "LOC"]], "Live_In": [["PER", "LOC"]], "Work_For": [["PER", "ORG"]]}


def test_teach_1x_is_one_question_per_text_answered_by_gold(bench):
    records = gold_records()
    answers = bench.simulate_teach_1x(records, PAIRS, seed=0)
    assert answers == bench.simulate_teach_1x(records, PAIRS, seed=0)
    assert answers != bench.simulate_teach_1x(records, PAIRS, seed=1)
    by_text = {r["text"]: r for r in records}
    assert len({a["text"] for a in answers}) == len(answers)
    for a in answers:
        gold = by_text[a["text"]]
        (rel,) = a["relations"]
        assert a["spans"] == gold["spans"]
        head, child = gold["spans"][rel["head"]]["label"], gold["spans"][rel["child"]]["label"]
        assert [head, child] in PAIRS[rel["label"]]
        truth = any(r == {"head": rel["head"], "child": rel["child"], "label": rel["label"]} for r in gold["relations"])
        assert a["answer"] == ("accept" if truth else "reject")
    # Only texts with a pair of entities whose labels allow a relation get a question.
    assert len(answers) == sum(
        any(
            [s["label"], t["label"]] in pairs
            for s in r["spans"]
            for t in r["spans"]
            if s is not t
            for pairs in PAIRS.values()
        )
        for r in records
    )


def test_quick_run_writes_every_system(bench, tmp_path):
    records = gold_records()
    random.Random(0).shuffle(records)
    data = tmp_path / "sample_en"
    data.mkdir()
    for name, part in (("train", records[:24]), ("dev", records[24:32]), ("test", records[32:])):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf8")
    out = tmp_path / "rel.json"
    bench.main(["--data", str(data), "--steps", "4", "--eval-every", "2", "--ner-steps", "2", "--output", str(out)])
    results = json.loads(out.read_text(encoding="utf8"))["datasets"]["sample_en"]
    assert set(results["systems"]) == {"binary_rel", "missing_negative", "gold"}
    assert results["systems"]["missing_negative"]["unknown_weight"] == 1.0
    for row in results["systems"].values():
        assert 0.0 <= row["test_f"] <= 1.0 and "end_to_end_test_f" in row
    assert results["ner"]["steps"] == 2
    args = ["--data", str(data), "--steps", "2", "--eval-every", "2", "--systems", "binary_rel", "--output", str(out)]
    bench.main(args + ["--suffix", "+other"])
    merged = json.loads(out.read_text(encoding="utf8"))["datasets"]["sample_en"]
    assert set(merged["systems"]) == {"binary_rel", "missing_negative", "gold", "binary_rel+other"}
    assert merged["systems"]["gold"] == results["systems"]["gold"] and merged["ner"] == results["ner"]
