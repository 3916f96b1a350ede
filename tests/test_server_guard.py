"""What the teach server refuses and what it will not send: answers to tasks
it never asked (or asked otherwise), source records JSON cannot carry, and
anything but standard JSON. Also the question book alone, and the settings."""

import dataclasses
import json
import math
import pickle
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")

import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from spacy_binary_ner.__main__ import main as cli  # noqa: E402
from spacy_binary_ner.server.app import SafeJSONResponse, create_app  # noqa: E402
from spacy_binary_ner.server.book import QuestionBook  # noqa: E402
from spacy_binary_ner.server.engine import UNSERVABLE  # noqa: E402
from spacy_binary_ner.server.settings import TeachSettings, make_parser  # noqa: E402
from spacy_binary_ner.server.teach import build_teacher, parse_args  # noqa: E402

from .server_util import teach_args, toy_records, write_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _strict(content: bytes) -> Any:
    """JSON as any parser reads it: NaN and Infinity are errors."""

    def refuse(name: str) -> None:
        raise AssertionError(f"not standard JSON: {name}")

    return json.loads(content, parse_constant=refuse)


def _client(workdir: Path, *extra: str) -> TestClient:
    teacher = build_teacher(teach_args(workdir, *extra))
    return TestClient(create_app(teacher, on_shutdown=teacher.close))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_config(tmp_path / "small.cfg")
    records = [{"text": r["text"]} for r in toy_records(150)]
    bad = [
        {"text": "Mia met Tom in Oslo . (nan meta)", "meta": {"weight": float("nan")}},
        {"text": "Tom flew to Rome . (inf span)", "spans": [{"start": 12, "end": float("inf"), "label": "LOC"}]},
        {"text": "Anna said Paris is large . (-inf)", "meta": {"score": float("-inf")}},
    ]
    lines = [json.dumps(r) for r in records[:2] + bad[:2] + records[2:5] + bad[2:] + records[5:]]
    assert "NaN" in lines[2] and "Infinity" in lines[3]
    (tmp_path / "source.jsonl").write_text("\n".join(lines) + "\n", encoding="utf8")
    return tmp_path


def test_records_json_cannot_carry_are_skipped_counted_and_never_sent(workdir):
    with _client(workdir) as client:
        seen = {}
        deadline = time.monotonic() + 120
        for session in ("a", "b", "c"):
            tasks = []
            while len(tasks) < 20 and time.monotonic() < deadline:
                r = client.get(f"/api/questions?session={session}&n=20")
                assert r.status_code == 200
                tasks = _strict(r.content)["tasks"]
            seen.update((t["_task_hash"], t) for t in tasks)
        seen = list(seen.values())
        assert len(seen) == 60
        assert not any("(nan meta)" in t["text"] or "(inf" in t["text"] or "(-inf)" in t["text"] for t in seen)
        # Counted as the engine reads past them, reported within a second.
        while time.monotonic() < deadline:
            progress = _strict(client.get("/api/progress").content)
            if progress["skipped"][UNSERVABLE] >= 3:
                break
            time.sleep(0.1)
        assert progress["skipped"][UNSERVABLE] == 3


def test_an_answer_to_a_task_never_asked_or_altered_gets_422_and_is_not_stored(workdir):
    with _client(workdir) as client:
        (task,) = client.get("/api/questions?session=a&n=1").json()["tasks"]
        never = {"text": "We met Anna in Paris .", "spans": [{"start": 15, "end": 20, "label": "LOC"}]}
        altered_text = dict(task, text=task["text"] + " and more words")
        other_span = dict(task, spans=[dict(task["spans"][0], end=task["spans"][0]["end"] - 1)])
        cases = {
            "never asked": never,
            "never asked, a made-up signature": dict(never, _task_hash=task["_task_hash"], _sig=task["_sig"]),
            "words appended, hashes kept": altered_text,
            "another span": other_span,
            "another task hash": dict(task, _task_hash=task["_task_hash"] + 1),
        }
        for name, item in cases.items():
            r = client.post("/api/answers?session=a", json={"answers": [dict(item, answer="accept", key=name)]})
            assert r.status_code == 422, (name, r.text)
            assert "nothing of this request was stored" in r.json()["error"], name
        assert client.get("/api/progress").json()["dataset_answers"] == 0
        # The answer to the question as asked is stored, and a correction of it.
        r = client.post("/api/answers?session=a", json={"answers": [dict(task, answer="reject", key="ok")]})
        assert r.status_code == 200 and r.json()["stored"] == 1
        (stored,) = client.get("/api/history?session=a").json()["answers"]
        r = client.post("/api/answers?session=a", json={"answers": [dict(stored, answer="accept", key="fix")]})
        assert r.status_code == 200 and r.json()["stored"] == 1
        r = client.post("/api/answers?session=a", content=b'{"answers": [{"meta": {"score": NaN}}]}')
        assert r.status_code == 400 and "not standard JSON" in r.json()["error"]
    out = workdir / "out.jsonl"
    assert cli(["db-out", "ds", str(out), "--db", str(workdir / "answers.sqlite3"), "--all"]) == 0
    written = [json.loads(line) for line in out.open(encoding="utf8")]
    assert [r["text"] for r in written] == [task["text"], task["text"]]
    assert all("_sig" not in r for r in written)


def test_allow_new_tasks_stores_answers_to_tasks_the_client_made(workdir):
    never = {"text": "We met Anna in Paris .", "spans": [{"start": 15, "end": 20, "label": "LOC"}]}
    with _client(workdir, "--allow-new-tasks") as client:
        r = client.post("/api/answers?session=a", json={"answers": [dict(never, answer="accept")]})
        assert r.status_code == 200 and r.json()["stored"] == 1
        assert client.get("/api/info").json()["allow_new_tasks"] is True


def test_a_response_is_standard_json_whatever_it_holds():
    body = SafeJSONResponse({"loss": float("nan"), "f1": [1.0, float("inf")], "ok": "ä"}).body
    assert _strict(body) == {"loss": None, "f1": [1.0, None], "ok": "ä"}


def test_a_restart_serves_questions_while_the_stored_answers_are_relearned(workdir):
    with _client(workdir, "--save-every", "0") as client:
        stored = 0
        while stored < 30:
            tasks = client.get("/api/questions?session=a&n=5").json()["tasks"]
            answers = [dict(t, answer="reject", key=f"k{stored}-{i}") for i, t in enumerate(tasks[: 30 - stored])]
            stored += client.post("/api/answers?session=a", json={"answers": answers}).json()["stored"]
    state = workdir / "out" / "model" / "sbn_teach_state.json"
    state.write_text(json.dumps({"max_id": 0, "recent_ids": []}))
    teacher = build_teacher(teach_args(workdir))
    try:
        assert teacher.n_resumed == 30
        assert teacher.questions("b", 1, wait=0)
        for _ in range(600):
            if teacher.progress()["learned"] == 30:
                break
            time.sleep(0.1)
        assert teacher.progress()["learned"] == 30 and teacher.progress()["relearning"] == 0
    finally:
        teacher.close()


# The question book, alone ----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _tasks(n: int, start: int = 0):
    return [{"_task_hash": h, "text": f"t{h}"} for h in range(start, start + n)]


def test_the_book_hands_each_question_to_one_session_and_leases_expire():
    clock = Clock()
    book = QuestionBook(4, lease=10, clock=clock)
    for task in _tasks(6):
        book.add(task)
    a = book.top_up("a", 2)
    assert [t["_task_hash"] for t in a] == [0, 1] and book.top_up("a", 2) == a
    clock.now = 5
    b = book.top_up("b", 2)
    assert [t["_task_hash"] for t in b] == [2, 3] and book.pop_taken() == 4 and book.pop_taken() == 0
    new = book.record("a", [("k", a[0])], [(1, True)])
    assert new == [(1, a[0])] and book.session_counts == {"a": 1}
    clock.now = 11
    # a's open question 1 is past its lease: c gets it before the buffer's.
    assert [t["_task_hash"] for t in book.top_up("c", 2)] == [1, 4]
    assert book.n_reassigned == 1 and 1 not in book.open["a"]
    assert book.finished("c", exhausted=False) is False
    assert book.finished("c", exhausted=True) is False  # 5 is still ready
    book.top_up("d", 1)
    assert book.finished("d", exhausted=True) is True


def test_the_book_keeps_two_questions_ready_per_active_session():
    clock = Clock()
    book = QuestionBook(20, clock=clock)
    for i in range(15):
        book.top_up(f"s{i}", 1)
    assert book.target() == 30
    clock.now = 61
    book.top_up("s0", 1)
    assert book.target() == 20


def test_the_book_skips_a_queued_question_answered_before():
    book = QuestionBook(4, answered=[1])
    for task in _tasks(3):
        book.add(task)
    assert [t["_task_hash"] for t in book.top_up("a", 3)] == [0, 2] and book.n_answered_before == 1


# Settings --------------------------------------------------------------------


def test_every_teach_setting_is_a_flag_and_every_flag_a_setting():
    parser = make_parser("teach", "")
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    names = {f.name for f in dataclasses.fields(TeachSettings)}
    assert dests == names
    assert all(f.metadata["help"] for f in dataclasses.fields(TeachSettings))
    for action in parser._actions:
        if action.dest in names and action.option_strings:
            field = TeachSettings.__dataclass_fields__[action.dest]
            assert action.option_strings == ["--" + action.dest.replace("_", "-")]
            assert action.default == field.default or field.metadata["required"]


def test_the_engine_gets_the_settings_not_a_namespace(tmp_path):
    write_config(tmp_path / "small.cfg")
    (tmp_path / "source.jsonl").write_text('{"text": "Anna flew to Paris ."}\n')
    settings = parse_args(["ds", str(tmp_path / "small.cfg"), str(tmp_path / "source.jsonl"), "--label", "LOC"])
    assert isinstance(settings, TeachSettings) and settings.output == Path("teach-ds")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert settings.stop_timeout == 30 and settings.allow_new_tasks is False and not math.isnan(settings.lease)
    help_text = make_parser("teach", "").format_help()
    assert "default database" not in help_text
