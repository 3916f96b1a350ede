"""The benchmark script runs end to end in --quick mode, so it cannot rot.
No timing is asserted: timings belong in the printed table."""

import fnmatch
import importlib.util
import json
import math
import re
from pathlib import Path

import pytest
from thinc.api import get_current_ops, set_current_ops

REPO = Path(__file__).resolve().parent.parent
TEACHSIM = REPO.parent / "shared" / "bench" / "teachsim.py"
# The benchmark makes its decisions with the shared teachsim.py, next to the repository.
needs_teachsim = pytest.mark.skipif(not TEACHSIM.exists(), reason=f"no {TEACHSIM} (the shared benchmark tools)")


def load_bench():
    spec = importlib.util.spec_from_file_location("binary_benchmark", REPO / "bench" / "binary_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_teachsim
def test_quick_benchmark(tmp_path):
    records = [json.loads(line) for line in (REPO / "assets" / "en_gold_eval.jsonl").open(encoding="utf8")]
    data = tmp_path / "sample_en"
    data.mkdir()
    for name, part in (("train", records[:60]), ("dev", records[60:80]), ("test", records[80:])):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf8")
    bench = load_bench()
    rows = bench.main(
        [
            "--data",
            str(data),
            "--quick",
            "--systems",
            "binary_ner,ner,binary_ner_gold",
            "--out",
            str(tmp_path / "out"),
            "--keep",
            str(tmp_path / "keep"),
        ]
    )
    assert [row["system"] for row in rows] == ["binary_ner", "ner", "binary_ner_gold"]
    for row in rows:
        assert 0.0 <= row["f"] <= 1.0 and row["wps"] > 0
    assert rows[1]["time_ratio"] == 1.0 and rows[1]["wps_ratio"] == 1.0
    assert "f_of_ceiling" in rows[0]
    saved = json.loads((tmp_path / "out" / "sample_en-teach-1x-quick.json").read_text())
    assert len(saved["runs"]) == 3
    assert isinstance(saved["meta"]["code"], str)
    assert "| binary_ner |" in (tmp_path / "out" / "sample_en-teach-1x-quick.md").read_text()
    # binary_ner systems: the threshold the training callback saved is the one dev chooses again,
    # and the run's test F1 is the one at that threshold.
    for run in saved["runs"]:
        if run["system"].startswith("binary_ner"):
            assert run["saved_threshold"] == pytest.approx(run["dev_threshold"])
            assert run["f"] == pytest.approx(run["test_f_at_threshold"])
        else:
            assert "dev_threshold" not in run
    # The comparison alone, again, from the kept pipelines: the same numbers.
    again = bench.main(["--data", str(data), "--score-kept", str(tmp_path / "keep"), "--out", str(tmp_path / "out")])
    by_system = {r["system"]: r for r in saved["runs"]}
    assert [r["system"] for r in again] == ["binary_ner", "binary_ner_gold", "ner"]
    for r in again:
        assert r["f"] == pytest.approx(by_system[r["system"]]["f"])
        if r["system"] != "ner":
            for key in ("dev_threshold", "test_f_at_threshold", "test_f_at_05"):
                assert r[key] == pytest.approx(by_system[r["system"]][key])
    assert "| binary_ner_gold | 0 |" in (tmp_path / "out" / "sample_en-kept.md").read_text()
    # Speed alone, again, from the kept pipelines; systems not kept are left out.
    ops = get_current_ops()
    try:
        speeds = bench.main(
            [
                "--data",
                str(data),
                "--speed-of",
                str(tmp_path / "keep"),
                "--rounds",
                "1",
                "--systems",
                "binary_ner,ner,beam_ner",
                "--blas",
                "numpy",
            ]
        )
        assert not get_current_ops().use_blis
    finally:
        set_current_ops(ops)
    assert [r["system"] for r in speeds] == ["binary_ner", "ner"]
    # Timed by this process's CPU time instead of the wall clock.
    by_cpu = bench.main(["--data", str(data), "--speed-of", str(tmp_path / "keep"), "--rounds", "1", "--clock", "cpu"])
    assert [r["system"] for r in by_cpu] == ["binary_ner", "ner", "binary_ner_gold"]
    assert all(r["wps"] > 0 for r in by_cpu)
    # Each system alone in its own process, taking turns.
    isolated = bench.main(
        [
            "--data",
            str(data),
            "--speed-of",
            str(tmp_path / "keep"),
            "--rounds",
            "1",
            "--systems",
            "ner,binary_ner",
            "--isolated",
            "2",
        ]
    )
    assert [r["system"] for r in isolated] == ["ner", "binary_ner"]
    assert all(len(r["wps_all"]) == 2 and r["wps"] > 0 for r in isolated)
    assert all(r["wps"] > 0 for r in speeds)


@needs_teachsim
def test_crashing_system_is_reported_not_fatal(tmp_path, monkeypatch):
    """spaCy's beam_ner crashed inside thinc's Beam.advance on conll2003_en
    teach-1x: the run goes on and the table names the failure."""
    records = [json.loads(line) for line in (REPO / "assets" / "en_gold_eval.jsonl").open(encoding="utf8")]
    data = tmp_path / "sample_en"
    data.mkdir()
    for name, part in (("train", records[:40]), ("test", records[40:60])):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf8")
    bench = load_bench()

    def fake_run(system, *args):
        if system == "beam_ner":
            raise AssertionError()
        return {
            "system": system,
            "seed": 0,
            "p": 0.5,
            "r": 0.5,
            "f": 0.5,
            "wps": 100.0,
            "seconds_to_best": 1.0,
            "best_step": 0,
        }

    monkeypatch.setattr(bench, "run_system", fake_run)
    monkeypatch.setattr(bench, "measure_speed_interleaved", lambda *args: None)
    rows = bench.main(["--data", str(data), "--quick", "--systems", "ner,beam_ner", "--out", str(tmp_path)])
    assert [row["system"] for row in rows] == ["ner"]
    table = (tmp_path / "sample_en-teach-1x-quick.md").read_text()
    assert "| beam_ner | failed (seed 0): AssertionError" in table
    saved = json.loads((tmp_path / "sample_en-teach-1x-quick.json").read_text())
    assert saved["meta"]["failures"][0]["system"] == "beam_ner"


def test_loop_latency_runs(tmp_path):
    """bench/loop_latency.py end to end on a tiny pool: both systems timed."""
    records = [json.loads(line) for line in (REPO / "assets" / "en_gold_eval.jsonl").open(encoding="utf8")]
    data = tmp_path / "sample_en"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:60]), encoding="utf8")
    spec = importlib.util.spec_from_file_location("loop_latency", REPO / "bench" / "loop_latency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "latency.json"
    ops = get_current_ops()
    try:
        assert (
            module.main(
                [
                    "--data",
                    str(data),
                    "--lang",
                    "en",
                    "--batches",
                    "2",
                    "--warmup",
                    "1",
                    "--rounds",
                    "1",
                    "--predict-sentences",
                    "20",
                    "--replay",
                    "2",
                    "--json",
                    str(out),
                    "--blas",
                    "numpy",
                ]
            )
            == 0
        )
        assert not get_current_ops().use_blis
    finally:
        set_current_ops(ops)
    rows = json.loads(out.read_text())["rows"]
    assert [r["system"] for r in rows] == ["binary_ner", "beam_ner"]
    assert all(r["update_ms_median"] > 0 and r["predict_sentences_per_s"] > 0 for r in rows)
    split = tmp_path / "split.json"
    assert (
        module.main(
            [
                "--data",
                str(data),
                "--lang",
                "en",
                "--batches",
                "2",
                "--warmup",
                "1",
                "--rounds",
                "1",
                "--split",
                "--json",
                str(split),
            ]
        )
        == 0
    )
    phases = json.loads(split.read_text())["split_ms"]
    assert {"read answers", "tok2vec forward", "span layers backward", "optimizer step", "total"} <= set(phases)
    assert all(ms > 0 for ms in phases.values())
    assert phases["total"] >= max(
        ms for name, ms in phases.items() if name != "total" and not name.startswith("predict")
    )
    assert phases["predict sentences/s"] > 0
    assert phases["predict tok2vec-only sentences/s, chunks of 8"] > 0
    assert phases["predict tok2vec-only sentences/s, chunks of 256"] > 0


def test_reader_benchmark_runs(tmp_path):
    """bench/reader_benchmark.py end to end on the embedded teach sample."""
    spec = importlib.util.spec_from_file_location("reader_benchmark", REPO / "bench" / "reader_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    times = module.main(
        [
            "--decisions",
            str(REPO / "assets" / "en_teach.jsonl"),
            "--lang",
            "en",
            "--repeats",
            "1",
            "--workdir",
            str(tmp_path),
        ]
    )
    assert len(times) == 5 and all(len(v) == 1 and v[0] > 0 for v in times.values())
    assert (tmp_path / "decisions.spacy").exists()


def test_summary_of_a_zero_ceiling_is_nan():
    """A ceiling that scored F1 0 (a short run) or a peer whose best dev score
    came at step 0 gives nan in the table, not a ZeroDivisionError that loses
    the whole run."""
    bench = load_bench()
    run = {"seed": 0, "p": 0.0, "r": 0.0, "f": 0.0, "wps": 100.0, "seconds_to_best": 0.0, "best_step": 0}
    results = [
        dict(run, system="binary_ner", f=0.4, seconds_to_best=5.0),
        dict(run, system="binary_ner_gold"),
        dict(run, system="ner"),
    ]
    rows = bench.summarize(results, ["binary_ner", "binary_ner_gold", "ner"])
    by = {row["system"]: row for row in rows}
    assert math.isnan(by["binary_ner"]["f_of_ceiling"]) and math.isnan(by["binary_ner"]["time_ratio"])
    assert by["binary_ner"]["wps_ratio"] == 1.0
    assert "| binary_ner | 0.000 | 0.000 | 0.400 | nan |" in bench.markdown(
        rows,
        {
            "data": "d",
            "decisions": "teach-1x",
            "n_decisions": 1,
            "seeds": [0],
            "max_steps": 1,
            "date": "",
            "machine": "",
        },
    )


def test_bench_keeps_scripts_and_cited_results():
    """bench/ holds the scripts a user reruns and the latest result of each
    benchmark: at most 60 files, and every file in bench/results/ is named (or
    matched by a pattern) in bench/README.md's "Current results" section, so
    tries and earlier runs go to the git history instead of piling up."""
    files = [p for p in (REPO / "bench").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert len(files) <= 60, f"{len(files)} files in bench/"
    readme = (REPO / "bench" / "README.md").read_text(encoding="utf8")
    current = readme.split("\n## Current results\n", 1)[1].split("\n## ", 1)[0]
    cited = re.findall(r"`([^`\s]+)`", current)
    uncited = [
        path.name
        for path in sorted((REPO / "bench" / "results").iterdir())
        if not any(fnmatch.fnmatch(path.name, name) or fnmatch.fnmatch(path.stem, name) for name in cited)
    ]
    assert not uncited, f"bench/results/ files that bench/README.md's Current results do not name: {uncited}"
