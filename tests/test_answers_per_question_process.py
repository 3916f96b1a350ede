"""20 concurrent sessions against a real teach process with
`--answers-per-question 2`, until the source is used up: every question is
answered exactly twice, by two different sessions (checked in the database).
Loopback only; bounded, it stops by itself."""

import threading
import time
from collections import Counter, defaultdict
from typing import Dict, List

import pytest

pytest.importorskip("uvicorn", reason="the server extra is not installed: pip install '.[server]'")
httpx = pytest.importorskip("httpx")

from spacy_binary_ner.server.storage import Storage  # noqa: E402

from .server_util import toy_records, write_config, write_jsonl  # noqa: E402
from .test_server_process import ServerProcess, _answer  # noqa: E402

SESSIONS = 20


def test_twenty_sessions_answer_every_question_exactly_twice(tmp_path):
    write_config(tmp_path / "small.cfg")
    write_jsonl(tmp_path / "source.jsonl", [{"text": r["text"]} for r in toy_records(1000)])
    server = ServerProcess(tmp_path, "--answers-per-question", "2", "--queue-size", "40", "--save-every", "0")
    errors: List[str] = []
    acked: Dict[str, int] = defaultdict(int)
    deadline = time.monotonic() + 240

    def session(name: str) -> None:
        try:
            with httpx.Client(timeout=30) as client:
                r = client.get(f"{server.url}/api/questions?session={name}&n=1")
                while time.monotonic() < deadline:
                    tasks, finished = r.json()["tasks"], r.json()["finished"]
                    if not tasks:
                        if finished:
                            return
                        r = client.get(f"{server.url}/api/questions?session={name}&n=1")
                        continue
                    task = dict(tasks[0], answer=_answer(tasks[0]), key=f"{name}-{acked[name]}")
                    r = client.post(f"{server.url}/api/answers?session={name}&next=1", json={"answers": [task]})
                    if r.status_code != 200 or r.json()["stored"] != 1:
                        errors.append(f"{name}: {r.status_code} {r.text[:200]}")
                        return
                    acked[name] += 1
                errors.append(f"{name}: not finished in time")
        except Exception as err:  # reported below
            errors.append(f"{name}: {type(err).__name__}: {err}")

    try:
        server.start()
        threads = [threading.Thread(target=session, args=(f"s{i}",)) for i in range(SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        progress = httpx.get(f"{server.url}/api/progress").json()
        queue = httpx.get(f"{server.url}/api/queue").json()
    finally:
        server.stop()
    assert not errors, errors[:5]
    stored = list(Storage(f"sqlite:///{tmp_path / 'db.sqlite3'}").iter_answers("ds"))
    sessions = defaultdict(list)
    for s in stored:
        sessions[int(s.task["_task_hash"])].append(s.session)
    print(f"{len(sessions)} questions, {len(stored)} answers by {len(acked)} sessions: {dict(acked)}")
    assert len(stored) == sum(acked.values()) and len(sessions) >= 100
    assert Counter(len(v) for v in sessions.values()) == {2: len(sessions)}, "a question not answered twice"
    assert all(len(set(v)) == 2 for v in sessions.values()), "a session answered a question twice"
    assert len(acked) == SESSIONS and min(acked.values()) > 0
    assert progress["questions_by_answers"] == {"1": 0, "2": len(sessions)}
    assert not queue["ready"] and not queue["shared"] and not queue["open"]
    assert server.proc.returncode == 0
