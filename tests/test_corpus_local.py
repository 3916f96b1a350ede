"""Corpus annotate and select on the local engine: input discovery, sharding,
the account of skipped lines, restart, and bounded top-N selection."""

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_binary_ner.__main__ import main as cli_main
from spacy_binary_ner.corpus import (
    CorpusError,
    TopN,
    find_inputs,
    plan_shards,
    priority,
    read_shard,
)
from spacy_binary_ner.data import ReadStats
from spacy_binary_ner.loop import set_hashes

from .corpus_util import BAD_LINES, add_crash_pipe, read_jsonl_folder, train_pipeline, write_corpus


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    return train_pipeline(tmp_path_factory.mktemp("pipe") / "nlp")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder)


def annotate(pipeline, source, out, *extra):
    return cli_main(["annotate", str(pipeline), str(source), str(out), "--quiet", *extra])


def test_find_inputs_file_folder_glob_and_errors(tmp_path):
    write_corpus(tmp_path, n_files=3, per_file=2, bad=False)
    (tmp_path / "notes.txt").write_text("x")
    names = [Path(f).name for f in find_inputs(tmp_path)]
    assert names == ["part0.jsonl", "part1.jsonl", "part2.jsonl.gz"]
    assert [Path(f).name for f in find_inputs(str(tmp_path / "part[01].jsonl"))] == names[:2]
    assert find_inputs(tmp_path / "part1.jsonl") == [str(tmp_path / "part1.jsonl")]
    with pytest.raises(CorpusError, match="No such input"):
        find_inputs(tmp_path / "missing.jsonl")
    with pytest.raises(CorpusError, match="No input files"):
        find_inputs(str(tmp_path / "*.csv"))


def test_shards_cover_every_line_once(tmp_path):
    write_corpus(tmp_path, n_files=2, per_file=25, bad=True)
    shards = plan_shards(find_inputs(tmp_path), shard_size=7)
    assert len({s.name for s in shards}) == len(shards)
    stats = ReadStats()
    lines = [(s.path, r.line) for s in shards for r in read_shard(s, stats)]
    assert len(lines) == len(set(lines)) == 50
    assert stats.records == 50 + len(BAD_LINES)
    assert stats.skipped == Counter(reason for _, reason in BAD_LINES)
    assert stats.used + sum(stats.skipped.values()) == stats.records


def test_text_too_long_is_counted(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "short"}\n{"text": "a much longer text"}\n')
    stats = ReadStats()
    (shard,) = plan_shards(find_inputs(tmp_path))
    assert [r.text for r in read_shard(shard, stats, max_length=10)] == ["short"]
    assert stats.skipped == Counter({"text too long": 1})
    assert stats.where["text too long"] == [f"{shard.path}:2"]


def test_annotate_writes_every_record_and_the_account(pipeline, corpus, tmp_path):
    source, texts = corpus
    out = tmp_path / "out"
    assert annotate(pipeline, source, out, "--shard-size", "16") == 0
    records = read_jsonl_folder(out)
    assert sorted(r["id"] for r in records) == list(range(len(texts)))
    nlp = spacy.load(pipeline)
    by_id = {r["id"]: r for r in records}
    for i in (0, 50, len(texts) - 1):
        doc = nlp(texts[i])
        assert by_id[i]["text"] == texts[i]
        assert [(e["start"], e["end"], e["label"]) for e in by_id[i]["entities"]] == [
            (e.start_char, e.end_char, e.label_) for e in doc.ents
        ]
        scores = by_id[i]["scores"]
        assert all(s["score"] >= 0.1 for s in scores)
        assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
    account = json.loads((out / "account.json").read_text())
    assert account["used"] == len(texts)
    assert account["skipped_by_reason"] == dict(Counter(reason for _, reason in BAD_LINES))
    assert account["records"] == len(texts) + len(BAD_LINES)
    assert set(account["fixes"]) == set(account["skipped_by_reason"])


def test_n_process_2_gives_the_same_records(pipeline, corpus, tmp_path):
    source, _ = corpus
    assert annotate(pipeline, source, tmp_path / "a", "--shard-size", "30") == 0
    assert annotate(pipeline, source, tmp_path / "b", "--shard-size", "30", "--workers", "2") == 0
    one, two = read_jsonl_folder(tmp_path / "a"), read_jsonl_folder(tmp_path / "b")
    # A worker process runs torch on one thread, this process on all cores: the
    # sums are added in another order, so scores agree to float32 noise, not bit for bit.
    strip = [{k: v for k, v in r.items() if k != "scores"} for r in one]
    assert strip == [{k: v for k, v in r.items() if k != "scores"} for r in two]
    for a, b in zip(one, two):
        by_span = {(s["start"], s["end"], s["label"]): s["score"] for s in b["scores"]}
        assert {(s["start"], s["end"], s["label"]) for s in a["scores"]} == set(by_span)
        for s in a["scores"]:
            assert s["score"] == pytest.approx(by_span[s["start"], s["end"], s["label"]], abs=1e-5)


def test_docbin_output(pipeline, corpus, tmp_path):
    source, texts = corpus
    assert annotate(pipeline, source, tmp_path / "out", "--format", "spacy") == 0
    nlp = spacy.load(pipeline)
    docs = [d for p in sorted((tmp_path / "out").glob("*.spacy")) for d in DocBin().from_disk(p).get_docs(nlp.vocab)]
    assert [d.text for d in docs] == texts
    assert len(docs[0].spans["binary_ner_scores"].attrs["scores"]) == len(docs[0].spans["binary_ner_scores"])


def crash_corpus(pipeline, source, tmp_path, hard: bool):
    """A copy of the corpus with one "CRASH" text more, and the pipeline with a
    pipe that crashes on it (`hard`: kills its process)."""
    src = tmp_path / "src"
    src.mkdir()
    for path in sorted(source.iterdir()):
        (src / path.name).write_bytes(path.read_bytes())
    with open(src / "part1.jsonl", "a") as f:
        f.write('{"text": "CRASH", "id": -1}\n')
    return src, add_crash_pipe(pipeline, tmp_path / "crash", tmp_path / "crash.py", tmp_path / "marker", hard=hard)


def test_interrupted_run_completes_on_rerun_without_duplicates(pipeline, corpus, tmp_path):
    source, texts = corpus
    src, crash = crash_corpus(pipeline, source, tmp_path, hard=False)
    out = tmp_path / "out"
    args = ["--shard-size", "16", "--code", str(tmp_path / "crash.py")]
    with pytest.raises(KeyboardInterrupt):
        annotate(crash, src, out, *args)
    done = sorted(p.name for p in out.glob("*.jsonl"))
    assert done and not (out / "account.json").exists()
    assert not list(out.glob("*.tmp-*"))
    assert annotate(crash, src, out, *args) == 0
    ids = [r["id"] for r in read_jsonl_folder(out)]
    assert sorted(ids) == [-1] + list(range(len(texts)))
    assert set(done) <= {p.name for p in out.glob("*.jsonl")}


def test_a_killed_pool_worker_fails_the_run_and_the_rerun_completes_it(pipeline, corpus, tmp_path, capsys):
    source, texts = corpus
    src, crash = crash_corpus(pipeline, source, tmp_path, hard=True)
    out = tmp_path / "out"
    args = ["--shard-size", "16", "--workers", "2", "--code", str(tmp_path / "crash.py")]
    assert annotate(crash, src, out, *args) == 1
    assert "rerun the same command" in capsys.readouterr().err
    assert not (out / "account.json").exists()
    assert annotate(crash, src, out, *args) == 0
    ids = [r["id"] for r in read_jsonl_folder(out)]
    assert sorted(ids) == [-1] + list(range(len(texts)))
    assert not list(out.glob("*.tmp-*"))


# A parent that starts a pool-style worker (spawned, `_die_with_parent` first)
# which writes its pid and sleeps.
DEATH_CODE = """
import multiprocessing, os, sys, time
from spacy_binary_ner.corpus.engines import _die_with_parent

def work(path):
    _die_with_parent()
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(300)

if __name__ == "__main__":
    multiprocessing.get_context("spawn").Process(target=work, args=(sys.argv[1],)).start()
    time.sleep(300)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_pool_worker_stops_when_its_run_is_killed(tmp_path):
    script, ready = tmp_path / "parent.py", tmp_path / "worker.pid"
    script.write_text(DEATH_CODE)
    proc = subprocess.Popen([sys.executable, str(script), str(ready)])
    try:
        # the worker imports spaCy and torch first: slow on a loaded machine
        deadline = time.monotonic() + 240
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.exists(), "the worker did not start within 240 s"
        worker = int(ready.read_text())
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, waiting for init to reap it, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_url_input_reads_as_the_path_does(pipeline, corpus, tmp_path):
    pytest.importorskip("pyarrow")
    source, texts = corpus
    url = "file://" + str(source)
    assert find_inputs(url) == ["file://" + f for f in find_inputs(source)]
    assert find_inputs(url + "/part1.jsonl") == [url + "/part1.jsonl"]
    with pytest.raises(CorpusError, match="No such input"):
        find_inputs(url + "/missing.jsonl")
    assert annotate(pipeline, source, tmp_path / "path", "--shard-size", "16") == 0
    assert annotate(pipeline, url, tmp_path / "url", "--shard-size", "16") == 0
    assert read_jsonl_folder(tmp_path / "url") == read_jsonl_folder(tmp_path / "path")
    account = json.loads((tmp_path / "url" / "account.json").read_text())
    assert account["used"] == len(texts)
    assert account["skipped_by_reason"] == dict(Counter(reason for _, reason in BAD_LINES))


def test_rerun_with_other_settings_is_refused(pipeline, corpus, tmp_path, capsys):
    source, _ = corpus
    assert annotate(pipeline, source, tmp_path / "out", "--shard-size", "16") == 0
    assert annotate(pipeline, source, tmp_path / "out", "--shard-size", "17") == 2
    assert "shard_size" in capsys.readouterr().err


def test_parquet_input(pipeline, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(
        pa.table({"text": ["Anna lives in Paris .", "", None, "It rains ."], "id": [0, 1, 2, 3]}),
        tmp_path / "t.parquet",
    )
    out = tmp_path / "out"
    assert annotate(pipeline, tmp_path / "t.parquet", out, "--shard-size", "3") == 0
    assert sorted(r["id"] for r in read_jsonl_folder(out)) == [0, 3]
    account = json.loads((out / "account.json").read_text())
    assert account["skipped_by_reason"] == {"empty text": 1, "missing key": 1}


def test_top_n_is_bounded_deduplicated_and_order_free():
    tasks = [{"_task_hash": h, "x": h} for h in range(20)] * 2
    prios = {h: (h % 7) / 7 for h in range(20)}
    a, b = TopN(5), TopN(5)
    for t in tasks:
        a.push(prios[t["_task_hash"]], t)
    for t in reversed(tasks):
        b.push(prios[t["_task_hash"]], t)
    assert len(a) == 5
    assert [t["x"] for t in a.best()] == [t["x"] for t in b.best()] == [13, 6, 19, 12, 5]


def test_priorities():
    assert priority("uncertainty", 0.5, 1) == 1.0
    assert priority("uncertainty", 0.9, 1) == pytest.approx(0.2)
    assert priority("high", 0.9, 1) == 0.9
    assert (
        priority("random", 0.9, 1, seed=0) == priority("random", 0.1, 1, seed=0) != priority("random", 0.9, 1, seed=1)
    )
    with pytest.raises(ValueError, match="strategy"):
        priority("best", 0.5, 1)


@pytest.mark.parametrize("strategy", ["uncertainty", "high", "random"])
def test_select_writes_the_n_best_tasks_of_the_whole_pool(pipeline, corpus, tmp_path, strategy):
    source, texts = corpus
    out = tmp_path / "tasks.jsonl"
    assert (
        cli_main(
            [
                "select",
                str(pipeline),
                str(source),
                str(out),
                "--n",
                "7",
                "--strategy",
                strategy,
                "--shard-size",
                "16",
                "--quiet",
            ]
        )
        == 0
    )
    tasks = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(tasks) == 7 == len({t["_task_hash"] for t in tasks})
    # The reference: every candidate of every text, ranked in one list.
    nlp = spacy.load(pipeline)
    every = {}
    for text in texts:
        doc = nlp(text)
        group = doc.spans["binary_ner_scores"]
        for span, p in zip(group, group.attrs["scores"]):
            task = set_hashes(
                {"text": text, "spans": [{"start": span.start_char, "end": span.end_char, "label": span.label_}]}
            )
            every[task["_task_hash"]] = priority(strategy, round(float(p), 6), task["_task_hash"])
    expected = sorted(every, key=lambda h: (-every[h], -h))[:7]
    assert [t["_task_hash"] for t in tasks] == expected
    for t in tasks:
        assert len(t["spans"]) == 1 and t["meta"]["source"] == "select" and "_input_hash" in t
        assert t["text"][t["spans"][0]["start"] : t["spans"][0]["end"]]
    account = json.loads((tmp_path / "tasks.jsonl.account.json").read_text())
    assert account["selected"] == 7 and account["used"] == len(texts)


def test_select_rejects_bad_n(pipeline, corpus, tmp_path):
    source, _ = corpus
    with pytest.raises(SystemExit):
        cli_main(["select", str(pipeline), str(source), str(tmp_path / "t.jsonl"), "--n", "0"])


@pytest.mark.parametrize("command", ["annotate", "select"])
def test_commands_are_registered_with_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--engine" in capsys.readouterr().out
