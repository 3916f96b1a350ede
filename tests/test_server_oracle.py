"""An HTTP-only oracle client teaches the server on the embedded sample."""

import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the server extra is not installed: pip install '.[server]'")

from spacy_binary_ner.data import iter_jsonl  # noqa: E402
from spacy_binary_ner.server.app import create_app  # noqa: E402
from spacy_binary_ner.server.client import TeachClient, gold_by_text, run_oracle  # noqa: E402
from spacy_binary_ner.server.teach import build_teacher, parse_args  # noqa: E402

from .server_util import ThreadServer, free_port, write_config, write_jsonl  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def test_an_oracle_over_http_raises_f1_on_the_sample(tmp_path):
    # The pool: both gold files of the sample (210 texts), so that 500
    # questions are there to ask; F1 is measured on the evaluation file.
    records = list(iter_jsonl(ASSETS / "en_gold_dev.jsonl")) + list(iter_jsonl(ASSETS / "en_gold_eval.jsonl"))
    pool = write_jsonl(tmp_path / "pool.jsonl", records)
    labels = sorted({s["label"] for r in records for s in r["spans"]})
    write_config(tmp_path / "small.cfg")
    args = parse_args(
        [
            "sample",
            str(tmp_path / "small.cfg"),
            str(pool),
            "--label",
            ",".join(labels),
            "--patterns",
            str(ASSETS / "en_patterns.jsonl"),
            "--eval",
            str(ASSETS / "en_gold_eval.jsonl"),
            "--eval-every",
            "100",
            "--db",
            str(tmp_path / "db.sqlite3"),
            "--output",
            str(tmp_path / "out"),
            "--save-every",
            "0",
        ]
    )
    teacher = build_teacher(args)
    with ThreadServer(create_app(teacher, on_shutdown=teacher.close), free_port()) as server:
        client = TeachClient(server.url, session="oracle")
        start = client.progress()["f1"]
        given = run_oracle(client, gold_by_text(records), 500)
        deadline = time.monotonic() + 120
        while (progress := client.progress())["f1_at"] < 500 and time.monotonic() < deadline:
            time.sleep(0.1)
    print(f"F1 on the sample's gold: {start:.3f} before, {progress['f1']:.3f} after 500 answers")
    assert given == 500
    assert progress["dataset_answers"] == 500 and progress["f1_at"] >= 500
    assert progress["f1"] > start + 0.3, (start, progress["f1"])
