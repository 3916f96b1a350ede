"""bench/textcat_benchmark.py: the simulated teach-1x answers as defined, and
the whole benchmark end to end on the tiny sample, so it cannot rot."""

import importlib.util
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "assets" / "textcat"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("textcat_benchmark", REPO / "bench" / "textcat_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LABELS = ["A", "B", "C", "D"]


def records(n, golds_of):
    return [{"text": f"text {i}", "cats": {k: float(k in golds_of(i)) for k in LABELS}} for i in range(n)]


@pytest.mark.parametrize("multi_label", [False, True])
def test_teach_1x_is_seeded_and_as_defined(bench, multi_label):
    gold = records(
        4000, (lambda i: [LABELS[i % 4], LABELS[(i + 1) % 4]]) if multi_label else (lambda i: [LABELS[i % 4]])
    )
    answers = bench.simulate_teach_1x(gold, LABELS, seed=0)
    assert answers == bench.simulate_teach_1x(gold, LABELS, seed=0)
    assert answers != bench.simulate_teach_1x(gold, LABELS, seed=1)
    assert [a["text"] for a in answers] == [r["text"] for r in gold]
    for answer, record in zip(answers, gold):
        assert answer["answer"] == ("accept" if record["cats"][answer["label"]] == 1.0 else "reject")
    # The gold label (or a gold one) with probability 0.5, a uniformly chosen other one otherwise.
    accepted = sum(a["answer"] == "accept" for a in answers) / len(answers)
    assert accepted == pytest.approx(0.5, abs=0.03)
    rejected = Counter(a["label"] for a in answers if a["answer"] == "reject")
    assert all(n == pytest.approx(len(answers) / 2 / 4, rel=0.15) for n in rejected.values())


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_benchmark_runs_end_to_end(bench, lang, tmp_path):
    data = tmp_path / f"sample_{lang}"
    data.mkdir()
    for split in ("train", "dev", "test"):
        shutil.copy(ASSETS / f"{lang}_gold_dev.jsonl", data / f"{split}.jsonl")
    out = tmp_path / "result.json"
    rows = bench.main(["--data", str(data), "--lang", lang, "--steps", "2", "--batch-size", "8", "--out", str(out)])
    systems = [row["system"] for row in rows]
    expected = list(bench.SYSTEMS)
    if lang == "en":  # multi-label data: no exclusive textcat on full gold
        expected.remove("textcat_gold")
    assert systems == expected
    result = json.loads(out.read_text(encoding="utf8"))
    assert result["meta"]["metric"] == ("accuracy" if lang == "zh" else "macro-F1")
    assert result["meta"]["answers"] == 40 and result["meta"]["steps"] == 2
    for row in result["rows"]:
        assert 0.0 <= row["test"] <= 1.0 and row["words_per_second"] > 0
