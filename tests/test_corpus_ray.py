"""The Ray engine against a local Ray (2 CPUs), one session for the module:
it writes what the local engine writes, survives a killed worker, and counts
bad lines."""

import json
from collections import Counter
from pathlib import Path

import pytest

from spacy_binary_ner.__main__ import main as cli_main

from .corpus_util import BAD_LINES, add_crash_pipe, read_jsonl_folder, train_pipeline, write_corpus

ray = pytest.importorskip("ray", reason="the Ray engine needs Ray: pip install 'spacy-binary-ner[ray]'")


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("ray")
    pipeline = train_pipeline(root / "nlp")
    texts = write_corpus(root / "corpus", n_files=3, per_file=40)
    return root, pipeline, texts


def cli(*args) -> int:
    return cli_main([*map(str, args), "--quiet"])


def test_ray_and_local_annotate_and_select_agree(setup):
    root, pipeline, texts = setup
    for engine in ("local", "ray"):
        assert (
            cli(
                "annotate",
                pipeline,
                root / "corpus",
                root / f"ann-{engine}",
                "--engine",
                engine,
                "--workers",
                "2",
                "--shard-size",
                "16",
            )
            == 0
        )
        assert (
            cli(
                "select",
                pipeline,
                root / "corpus",
                root / f"sel-{engine}.jsonl",
                "--n",
                "9",
                "--engine",
                engine,
                "--workers",
                "2",
                "--shard-size",
                "16",
            )
            == 0
        )
    local, remote = read_jsonl_folder(root / "ann-local"), read_jsonl_folder(root / "ann-ray")
    assert sorted(r["id"] for r in remote) == list(range(len(texts)))
    assert remote == local
    assert (root / "sel-ray.jsonl").read_text() == (root / "sel-local.jsonl").read_text()
    account = json.loads((root / "ann-ray" / "account.json").read_text())
    assert account["skipped_by_reason"] == dict(Counter(reason for _, reason in BAD_LINES))
    assert account["used"] == len(texts)


def test_a_killed_worker_still_gives_complete_output_without_duplicates(setup):
    root, pipeline, texts = setup
    src = root / "crash-corpus"
    src.mkdir()
    for path in sorted((root / "corpus").iterdir()):
        (src / path.name).write_bytes(path.read_bytes())
    with open(src / "part1.jsonl", "a") as f:
        f.write('{"text": "CRASH", "id": -1}\n')
    marker = root / "crashed"
    crash = add_crash_pipe(pipeline, root / "crash-nlp", root / "crash.py", marker, hard=True)
    out = root / "crash-out"
    assert (
        cli(
            "annotate",
            crash,
            src,
            out,
            "--engine",
            "ray",
            "--workers",
            "2",
            "--shard-size",
            "16",
            "--code",
            root / "crash.py",
        )
        == 0
    )
    assert marker.exists(), "the worker never met the crash text"
    ids = [r["id"] for r in read_jsonl_folder(out)]
    assert sorted(ids) == [-1] + list(range(len(texts)))
    assert not list(Path(out).glob("*.tmp-*"))


def test_ray_reads_a_url_input(setup):
    pytest.importorskip("pyarrow")
    root, pipeline, texts = setup
    url = "file://" + str(root / "corpus")
    assert cli("annotate", pipeline, root / "corpus", root / "url-local", "--shard-size", "16") == 0
    assert (
        cli("annotate", pipeline, url, root / "url-ray", "--engine", "ray", "--workers", "2", "--shard-size", "16") == 0
    )
    assert read_jsonl_folder(root / "url-ray") == read_jsonl_folder(root / "url-local")
    assert sorted(r["id"] for r in read_jsonl_folder(root / "url-ray")) == list(range(len(texts)))


# A Ray started by the engine: a new local one, with a small object store and
# its workers at the command's niceness (Ray's default is 15).
START_CODE = """
import json, os, ray
from spacy_binary_ner.corpus.engines import OBJECT_STORE_BYTES, start_ray
assert start_ray(1)
nice = ray.remote(num_cpus=1)(lambda: os.nice(0))
store = ray.cluster_resources()["object_store_memory"]
print(json.dumps({"nice": ray.get(nice.remote()), "driver": os.nice(0), "store": store, "cap": OBJECT_STORE_BYTES}))
ray.shutdown()
"""


def test_a_ray_started_by_the_engine_is_small_and_not_niced():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", START_CODE], capture_output=True, text=True, timeout=180, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["nice"] == data["driver"]
    assert data["store"] <= data["cap"]
