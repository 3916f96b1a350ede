"""`review` as a real process on 127.0.0.1: kill -9 at random moments loses
no acknowledged choice, stores none twice, and a restart shows no task
already chosen (teach's and correct's kill test, for review)."""

import sys
from collections import Counter
from pathlib import Path
from typing import Dict

import pytest

pytest.importorskip("uvicorn", reason="the server extra is not installed: pip install '.[server]'")
httpx = pytest.importorskip("httpx")

from spacy_binary_ner.server.review import AGREED_SESSION  # noqa: E402
from spacy_binary_ner.server.storage import Storage  # noqa: E402

from .server_util import Resender, run_through_kills  # noqa: E402
from .test_server_process import ServerProcess  # noqa: E402

KILLS = 5
# Half disagree: more than a quiet machine reviews between 5 kills (up to 1.5 s each, ~300 choices/s).
TASKS = 16000


class ReviewProcess(ServerProcess):
    """`python -m spacy_binary_ner review in out ...` in a subprocess."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        db = str(workdir / "db.sqlite3")
        self.argv = [sys.executable, "-m", "spacy_binary_ner", "review", "in", "out", "--db", db]
        self.argv += ["--port", str(self.port)]


def _fill(url: str) -> None:
    """Sessions a and b disagree on the even tasks and agree on the odd ones."""
    storage = Storage(url)
    for session in ("a", "b"):
        items = []
        for h in range(1, TASKS + 1):
            answer = "accept" if session == "a" or h % 2 else "reject"
            task = {"text": f"Anna met Tom ({h})", "spans": [{"start": 0, "end": 4, "label": "PER"}]}
            items.append((f"{session}{h}", dict(task, answer=answer, _input_hash=h, _task_hash=h)))
        storage.add("in", session, items)
    storage.close()


class Person(Resender):
    """A reviewer choosing one version of each task, by its hash."""

    session = "r"

    def next_answer(self, url: str, key: str) -> Dict:
        tasks = self.client.get(f"{url}/api/questions?session=r&n=1").json()["tasks"]
        assert tasks, "no task left to review"
        h = tasks[0]["_task_hash"]
        return {"_task_hash": h, "version": (h // 2) % 2, "key": key}


def test_kill_9_during_review_loses_no_acknowledged_choice(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    _fill(url)
    server = ReviewProcess(tmp_path)
    with httpx.Client(timeout=10) as client:
        person = Person(client)
        run_through_kills(server, person, KILLS)
    stored = list(Storage(url).iter_answers("out"))
    keys = Counter(s.key for s in stored)
    print(f"{len(person.acked)} choices acknowledged over {KILLS} kills")
    assert len(person.acked) >= KILLS
    assert set(person.acked) <= set(keys), "an acknowledged choice was lost"
    assert max(keys.values()) == 1, "a choice was stored twice"
    assert {s.key: s.id for s in stored if s.key in person.acked} == person.acked
    chosen = [s for s in stored if s.session == "r"]
    assert max(Counter(s.task["_task_hash"] for s in chosen).values()) == 1, "a task was shown again after a restart"
    assert all(s.task["meta"]["review"]["version"] == person.sent[s.key]["version"] for s in chosen)
    agreed = [s.task["_task_hash"] for s in stored if s.session == AGREED_SESSION]
    assert sorted(agreed) == list(range(1, TASKS + 1, 2)), "the agreed tasks are stored once each"
    assert server.proc.returncode == 0
