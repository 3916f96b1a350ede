"""`teach` as a real process under a supervisor: SIGTERM and SIGHUP stop it as
Ctrl-C does (no more answers, the rest learned, the model saved, exit 0), and
its start message never names a folder that is not there."""

import json
import re
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the server extra is not installed: pip install '.[server]'")
httpx = pytest.importorskip("httpx")

from . import test_server_process  # noqa: E402
from .test_server_process import ServerProcess  # noqa: E402

# The same working folder: the small config and a toy source.
workdir = test_server_process.workdir

STOP_TIMEOUT = 20


def _start_message(server: ServerProcess) -> str:
    lines = (server.workdir / "server.log").read_text().splitlines()
    return [line for line in lines if line.startswith("teach: dataset")][-1]


def _answer_some(server: ServerProcess, n: int):
    ids = []
    with httpx.Client(timeout=30) as client:
        tasks = client.get(server.url + "/api/questions?session=s&n=1").json()["tasks"]
        for i in range(n):
            task = dict(tasks[0], answer="reject", key=f"k{i}")
            r = client.post(server.url + "/api/answers?session=s&next=1", json={"answers": [task]})
            assert r.status_code == 200, r.text
            ids.append(r.json()["ids"][0])
            tasks = r.json()["tasks"]
    return ids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_learns_saves_and_exits_0(workdir, sig):
    server = ServerProcess(workdir, "--save-every", "0", "--stop-timeout", str(STOP_TIMEOUT))
    model = workdir / "out" / "model"
    try:
        server.start()
        message = _start_message(server)
        # Nothing saved yet: the message says where the model will be.
        assert not model.exists() and f"will be saved to {model}" in message, message
        ids = _answer_some(server, 12)
        assert not model.exists()
        began = time.monotonic()
        server.proc.send_signal(sig)
        assert server.proc.wait(timeout=STOP_TIMEOUT + 10) == 0
        took = time.monotonic() - began
    finally:
        server.kill()
        server.log.close()
    assert took < STOP_TIMEOUT, took
    state = json.loads((model / "sbn_teach_state.json").read_text())
    assert set(ids) <= set(state["recent_ids"]) and state["max_id"] == max(ids)
    log = (workdir / "server.log").read_text()
    assert f"teach: stopped ({signal.Signals(sig).name}); model saved to {model}" in log, log[-2000:]
    if sig != signal.SIGTERM:
        return
    # Restarted: the start message names the saved model, which is there.
    server = ServerProcess(workdir, "--save-every", "0")
    try:
        server.start()
        message = _start_message(server)
    finally:
        server.stop()
    assert f"model loaded from {model}" in message, message
    for path in re.findall(r"(/\S+)", message):
        assert Path(path.rstrip(",;")).exists(), (path, message)
