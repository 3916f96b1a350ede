"""`python -m spacy_binary_ner teach --task textcat` as a process: SIGTERM saves, kill -9 loses no stored answer,
and a restart asks no answered text again and re-learns what the saved model had not learned."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

pytest.importorskip("uvicorn", reason="the server extra is not installed: pip install '.[server]'")
httpx = pytest.importorskip("httpx")

from spacy_binary_ner.server.storage import Storage  # noqa: E402

from .server_util import free_port, textcat_argv, topic_records, write_jsonl, write_textcat_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def start(workdir: Path, port: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "spacy_binary_ner", "teach", *textcat_argv(workdir, "--port", str(port))]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    log = open(workdir / "server.log", "ab")
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, (workdir / "server.log").read_text()[-2000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not answer in 120 s")


def answer_some(url: str, n: int, prefix: str) -> List[Dict]:
    given = []
    tasks = httpx.get(f"{url}/api/questions?session=a&n=3").json()["tasks"]
    for i in range(n):
        task = dict(tasks[0], answer="accept" if i % 2 else "reject", key=f"{prefix}{i}")
        r = httpx.post(f"{url}/api/answers?session=a&next=3", json={"answers": [task]})
        assert r.status_code == 200, r.text
        given.append(task)
        tasks = r.json()["tasks"]
    return given


def test_sigterm_saves_kill_keeps_answers_and_a_restart_resumes(tmp_path):
    write_textcat_config(tmp_path / "textcat.cfg")
    write_jsonl(tmp_path / "source.jsonl", [{"text": r["text"]} for r in topic_records(60)])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port)
    first = answer_some(url, 6, "a")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert "stopped (SIGTERM)" in (tmp_path / "server.log").read_text()
    state = json.loads((tmp_path / "out" / "model" / "sbn_teach_state.json").read_text())
    assert state["max_id"] == 6
    proc = start(tmp_path, port)
    second = answer_some(url, 4, "b")
    proc.kill()
    proc.wait(timeout=30)
    proc = start(tmp_path, port)
    try:
        info = httpx.get(f"{url}/api/progress?session=a").json()
        assert info["dataset_answers"] == 10
        asked = {t["text"] for t in httpx.get(f"{url}/api/questions?session=a&n=5").json()["tasks"]}
        assert asked and not asked & {t["text"] for t in first + second}
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/api/progress").json()["learned"] < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert httpx.get(f"{url}/api/progress").json()["learned"] == 4  # the four the killed run had not saved
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    stored = list(Storage(f"sqlite:///{tmp_path / 'answers.sqlite3'}").iter_answers("ds"))
    assert [(s.task["text"], s.task["label"], s.task["answer"]) for s in stored] == [
        (t["text"], t["label"], t["answer"]) for t in first + second
    ]
