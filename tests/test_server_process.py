"""The teach server as a real process on 127.0.0.1: kill -9 and restart, and
20 concurrent sessions. Both are bounded and stop by themselves."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

pytest.importorskip("uvicorn", reason="the server extra is not installed: pip install '.[server]'")
httpx = pytest.importorskip("httpx")

from spacy_binary_ner.server.storage import Storage  # noqa: E402

from .server_util import free_port, teach_argv, toy_records, write_config, write_jsonl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NETWORK_ERRORS = (httpx.TransportError,)


class ServerProcess:
    """`python -m spacy_binary_ner teach ...` in a subprocess."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [
            sys.executable,
            "-m",
            "spacy_binary_ner",
            "teach",
            *teach_argv(workdir, "--port", str(self.port), *extra, db="db.sqlite3"),
        ]
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 180) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        self.log = open(self.workdir / "server.log", "ab")
        self.proc = subprocess.Popen(self.argv, cwd=self.workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {(self.workdir / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/info", timeout=1).status_code == 200:
                    return
            except NETWORK_ERRORS:
                time.sleep(0.1)
        raise RuntimeError(f"the server did not answer in {timeout} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_config(tmp_path / "small.cfg")
    write_jsonl(tmp_path / "source.jsonl", [{"text": r["text"]} for r in toy_records(1500)])
    return tmp_path


def _answer(task: Dict) -> str:
    span = task["spans"][0]
    return "accept" if task["text"][span["start"] : span["end"]] in ("Berlin", "Paris", "Oslo") else "reject"


def test_kill_9_loses_no_acknowledged_answer_and_stores_none_twice(workdir):
    rng = random.Random(0)
    server = ServerProcess(workdir, "--save-every", "7", "--queue-size", "5")
    acked: Dict[str, int] = {}
    sent: Dict[str, Dict] = {}
    pending: Optional[Tuple[str, Dict]] = None
    kills, seq = 0, 0
    deadline = time.monotonic() + 900
    try:
        with httpx.Client(timeout=10) as client:
            while kills < 10:
                assert time.monotonic() < deadline, f"only {kills} kills in time"
                server.start()
                timer = threading.Timer(rng.uniform(0.1, 1.0), server.kill)
                timer.start()
                try:
                    while True:
                        if pending is None:
                            # A GET waits 5 s for the engine; after a restart it may need longer
                            # (it learns the stored answers first), so "none yet" is asked again.
                            tasks, until = [], time.monotonic() + 60
                            while not tasks and time.monotonic() < until:
                                tasks = client.get(server.url + "/api/questions?session=s&n=1").json()["tasks"]
                            assert tasks, "the server ran out of questions (none within 60 s)"
                            seq += 1
                            key = f"k{seq}"
                            pending = (key, dict(tasks[0], answer=_answer(tasks[0]), key=key))
                            sent[key] = pending[1]
                        # Resent as is after a crash: the key makes it idempotent.
                        r = client.post(server.url + "/api/answers?session=s", json={"answers": [pending[1]]})
                        assert r.status_code == 200, r.text
                        acked[pending[0]] = r.json()["ids"][0]
                        pending = None
                except NETWORK_ERRORS:
                    pass
                timer.join()
                server.kill()
                kills += 1
            server.start()
            if pending is not None:
                r = client.post(server.url + "/api/answers?session=s", json={"answers": [pending[1]]})
                acked[pending[0]] = r.json()["ids"][0]
            progress = client.get(server.url + "/api/progress?session=s").json()
            server.stop()
    finally:
        server.kill()
    storage = Storage(f"sqlite:///{workdir / 'db.sqlite3'}")
    stored = list(storage.iter_answers("ds"))
    keys = Counter(s.key for s in stored)
    assert len(acked) >= 10
    assert set(acked) <= set(keys), "an acknowledged answer was lost"
    assert max(keys.values()) == 1, "an answer was stored twice"
    assert set(keys) <= set(sent)
    tasks = Counter(int(s.task["_task_hash"]) for s in stored)
    assert max(tasks.values()) == 1, "an answered task was asked again after a restart"
    assert {s.key: s.id for s in stored if s.key in acked} == acked
    assert progress["dataset_answers"] == len(stored)


def test_twenty_sessions_of_a_hundred_answers_are_all_stored_once(workdir):
    # Rejected questions make the model propose one span per text, and the
    # uncertainty sorter asks about fewer texts as the model learns (with the
    # engine keeping up, 8,000 texts gave about 1,600 questions): 2,000
    # questions need many thousand texts.
    write_jsonl(workdir / "source.jsonl", [{"text": r["text"]} for r in toy_records(20000)])
    server = ServerProcess(workdir, "--queue-size", "40", "--save-every", "500")
    errors: List[str] = []
    acked: Dict[str, List[str]] = {}

    def session(name: str) -> None:
        keys = acked.setdefault(name, [])
        try:
            with httpx.Client(timeout=30) as client:
                tasks = []
                while not tasks:
                    tasks = client.get(f"{server.url}/api/questions?session={name}&n=1").json()["tasks"]
                for i in range(100):
                    if not tasks:
                        errors.append(f"{name}: no question after {i} answers")
                        return
                    key = f"{name}-{i}"
                    task = dict(tasks[0], answer=_answer(tasks[0]), key=key)
                    r = client.post(f"{server.url}/api/answers?session={name}&next=1", json={"answers": [task]})
                    if r.status_code != 200 or r.json()["stored"] != 1:
                        errors.append(f"{name}: {r.status_code} {r.text[:200]}")
                        return
                    keys.append(key)
                    tasks = r.json()["tasks"]
                    while not tasks and not r.json()["finished"]:
                        # The queue is being refilled: ask again.
                        r = client.get(f"{server.url}/api/questions?session={name}&n=1")
                        tasks = r.json()["tasks"]
        except Exception as err:  # reported below
            errors.append(f"{name}: {type(err).__name__}: {err}")

    try:
        server.start()
        threads = [threading.Thread(target=session, args=(f"s{i}",)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=240)
        assert not any(t.is_alive() for t in threads), "a session did not finish in 240 s"
    finally:
        server.stop()
    assert not errors, errors[:5]
    stored = list(Storage(f"sqlite:///{workdir / 'db.sqlite3'}").iter_answers("ds"))
    assert len(stored) == 2000
    assert sorted(s.key for s in stored) == sorted(k for keys in acked.values() for k in keys)
    assert len({int(s.task["_task_hash"]) for s in stored}) == 2000, "a task went to two sessions"
    assert Counter(s.session for s in stored) == {f"s{i}": 100 for i in range(20)}
    # Ctrl-C (SIGINT) stopped it cleanly, the model saved with every answer learned.
    assert server.proc.returncode == 0
    state = json.loads((workdir / "out" / "model" / "sbn_teach_state.json").read_text())
    assert state["max_id"] == max(s.id for s in stored)
