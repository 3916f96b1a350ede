"""The learning engine's process: it dies with the server, and a crashed
engine is reported to requests instead of keeping them waiting."""

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from typing import Set

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
httpx = pytest.importorskip("httpx")

import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from spacy_binary_ner.server.app import create_app  # noqa: E402
from spacy_binary_ner.server.storage import Storage  # noqa: E402
from spacy_binary_ner.server.teach import build_teacher, parse_args  # noqa: E402

from .server_util import teach_args, toy_records, write_config, write_jsonl  # noqa: E402
from .test_server_process import ServerProcess  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_config(tmp_path / "small.cfg")
    write_jsonl(tmp_path / "source.jsonl", [{"text": r["text"]} for r in toy_records(200)])
    return tmp_path


def _descendants(pid: int) -> Set[int]:
    """Every living process below `pid`, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name (field 2) may hold spaces: the fields after it are split.
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found: Set[int] = set()
    frontier = {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")
def test_the_engine_process_dies_with_the_server_after_kill_9(workdir):
    server = ServerProcess(workdir, "--queue-size", "5")
    try:
        server.start()
        with httpx.Client(timeout=30) as client:
            (task,) = client.get(server.url + "/api/questions?session=s&n=1").json()["tasks"]
            r = client.post(server.url + "/api/answers?session=s", json={"answers": [dict(task, answer="reject")]})
            assert r.status_code == 200
        below = _descendants(server.proc.pid)
        assert below, "the server has no engine process"
    finally:
        server.kill()
        server.log.close()
    deadline = time.monotonic() + 20
    alive = below
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {pid for pid in alive if Path(f"/proc/{pid}").exists() and _running(pid)}
    assert not alive, f"processes left after kill -9 of the server: {sorted(alive)}"


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_a_crashed_engine_is_reported_and_no_request_waits_for_it(workdir):
    args = teach_args(workdir, queue_size=4)
    teacher = build_teacher(args)
    with TestClient(create_app(teacher, on_shutdown=teacher.close)) as client:
        (task,) = client.get("/api/questions?session=a&n=1").json()["tasks"]
        os.kill(teacher.engine_pid, signal.SIGKILL)
        begin = time.monotonic()
        while True:
            r = client.get("/api/questions?session=b&n=50")
            if r.status_code != 200:
                break
            assert time.monotonic() - begin < 10, "the crash was not noticed"
            # Questions the engine sent before it died are still handed out.
            assert r.json()["tasks"]
            client.post(
                "/api/answers?session=b", json={"answers": [dict(t, answer="ignore") for t in r.json()["tasks"]]}
            )
        assert time.monotonic() - begin < 10
        assert r.status_code == 503 and "learning engine exited" in r.json()["error"]
        # Answers are still stored, and the reply says what happened.
        r = client.post("/api/answers?session=a&next=1", json={"answers": [dict(task, answer="accept", key="after")]})
        assert r.status_code == 200 and r.json()["stored"] == 1 and "restart" in r.json()["error"]
        assert r.json()["tasks"] == []
        assert "learning engine exited" in client.get("/api/progress").json()["error"]
    keys = [s.key for s in Storage(f"sqlite:///{workdir / 'answers.sqlite3'}").iter_answers("ds")]
    assert "after" in keys


def test_an_engine_that_cannot_load_its_pipeline_says_why(workdir):
    args = parse_args(["ds", str(workdir / "no-such-model"), str(workdir / "source.jsonl"), "--label", "LOC"])
    args = dataclasses.replace(args, db=str(workdir / "answers.sqlite3"), output=workdir / "out")
    with pytest.raises(ValueError, match="no-such-model"):
        build_teacher(args)


class _FakeConn:
    def __init__(self) -> None:
        self.sent = []

    def poll(self, timeout=None) -> bool:
        return False

    def send(self, message) -> None:
        self.sent.append(message[0])


class _FakeLoop:
    """Counts what the engine asks of the loop: questions and updates."""

    def __init__(self, log) -> None:
        self.log = log
        self.nlp = None
        self.answer_counts = {"accept": 0, "reject": 0}

    def __call__(self, stream):
        for i, task in enumerate(stream):
            self.log.append("q")
            yield {"text": task["text"], "_task_hash": i, "_input_hash": i, "spans": []}

    def update(self, tasks) -> float:
        self.log.append(f"learn {len(tasks)}")
        return 0.0


def _make_fake_loop(log):
    return _FakeLoop(log), None, {}


def _source():
    return ({"text": f"t{i}", "_input_hash": i} for i in range(10_000))


def test_an_engine_behind_on_answers_and_questions_takes_turns(tmp_path):
    from functools import partial

    from spacy_binary_ner.server.engine import Engine, EngineSettings

    log = []
    settings = EngineSettings(
        partial(_make_fake_loop, log), _source, f"sqlite:///{tmp_path / 'db.sqlite3'}", "ds", queue_size=40
    )
    engine = Engine(_FakeConn(), settings)
    # 30 answers waiting for more than 2 s, and an empty buffer.
    engine.inbox.extend((time.monotonic() - 10, i, {"_task_hash": 1000 + i}) for i in range(30))
    for _ in range(60):
        engine._step()
    steps = [entry if entry == "q" else "L" for entry in log]
    # Ten questions, then the 30 overdue answers in one catch-up batch (up to
    # 4 x batch_size while behind), not all of them before a question.
    assert "".join(steps[:11]) == "q" * 10 + "L" and log[10] == "learn 30"
    # Not behind: questions first while the buffer is below half.
    log.clear()
    engine.inbox.extend((time.monotonic(), i, {"_task_hash": 2000 + i}) for i in range(10))
    engine.buffered = 0
    for _ in range(21):
        engine._step()
    assert [entry for entry in log if entry != "q"] == ["learn 10"] and log.index("learn 10") == 20
