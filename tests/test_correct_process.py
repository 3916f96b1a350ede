"""`correct` as a real process on 127.0.0.1: kill -9 at random moments
loses no acknowledged correction and stores none twice (teach's test, for
corrections, with the model learning from them)."""

import time
from collections import Counter
from pathlib import Path
from typing import Dict

import pytest

pytest.importorskip("uvicorn", reason="the server extra is not installed: pip install '.[server]'")
httpx = pytest.importorskip("httpx")

from spacy_binary_ner.server.storage import Storage  # noqa: E402

from .server_util import CITIES, Resender, run_through_kills, toy_records, write_config, write_jsonl  # noqa: E402
from .test_server_process import ServerProcess  # noqa: E402

KILLS = 5


class CorrectProcess(ServerProcess):
    """`python -m spacy_binary_ner correct ...` in a subprocess."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        super().__init__(workdir, *extra)
        self.argv[self.argv.index("teach")] = "correct"


def _corrected(task: Dict, key: str) -> Dict:
    """The task with its city as the only LOC: a whole token of the toy texts."""
    city = next(c for c in CITIES if f" {c} " in f" {task['text']} ")
    start = f" {task['text']} ".index(f" {city} ")
    return dict(task, spans=[{"start": start, "end": start + len(city), "label": "LOC"}], answer="accept", key=key)


class Annotator(Resender):
    """A person correcting texts over HTTP (see `Resender`)."""

    def next_answer(self, url: str, key: str) -> Dict:
        tasks, until = [], time.monotonic() + 60
        while not tasks and time.monotonic() < until:
            # A restarted server may need a while for its first text.
            tasks = self.client.get(url + f"/api/questions?session={self.session}&n=1").json()["tasks"]
        assert tasks, "the server ran out of texts (none within 60 s)"
        return _corrected(tasks[0], key)


def test_kill_9_during_correct_loses_no_acknowledged_correction(tmp_path):
    write_config(tmp_path / "small.cfg")
    write_jsonl(tmp_path / "source.jsonl", [{"text": r["text"]} for r in toy_records(400)])
    server = CorrectProcess(tmp_path, "--update", "--save-every", "3", "--batch-size", "2")
    with httpx.Client(timeout=10) as client:
        person = Annotator(client)
        run_through_kills(server, person, KILLS, seed=0, seconds=600)
    stored = list(Storage(f"sqlite:///{tmp_path / 'db.sqlite3'}").iter_answers("ds"))
    keys = Counter(s.key for s in stored)
    assert len(person.acked) >= KILLS
    assert set(person.acked) <= set(keys), "an acknowledged correction was lost"
    assert max(keys.values()) == 1, "a correction was stored twice"
    assert {s.key: s.id for s in stored if s.key in person.acked} == person.acked
    texts = Counter(s.task["text"] for s in stored)
    assert max(texts.values()) == 1, "a corrected text was asked again after a restart"
    assert all(s.task["complete"] == ["LOC"] and s.task["spans"] == person.sent[s.key]["spans"] for s in stored)
    assert server.proc.returncode == 0
