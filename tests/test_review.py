"""`review`: the grouping of answers into versions, the `Reviewer` over the
answer store, and its API in-process (Starlette's TestClient)."""

import json
import os
import uuid
import warnings

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")

from spacy_binary_ner.__main__ import main as cli  # noqa: E402
from spacy_binary_ner.agreement import latest_by_session  # noqa: E402
from spacy_binary_ner.server.app import create_app  # noqa: E402
from spacy_binary_ner.server.review import AGREED_SESSION, Reviewer, make_item  # noqa: E402
from spacy_binary_ner.server.storage import Storage  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TEXT = "Anna lives in Berlin."


def binary(h: int, answer: str, label: str = "LOC") -> dict:
    return {
        "text": TEXT,
        "spans": [{"start": 14, "end": 20, "label": label}],
        "answer": answer,
        "_input_hash": 7,
        "_task_hash": h,
    }


def correction(spans, answer: str = "accept", h: int = 50) -> dict:
    spans = [{"start": s, "end": e, "label": label} for s, e, label in spans]
    return {
        "text": TEXT,
        "spans": spans,
        "answer": answer,
        "complete": ["LOC", "PER"],
        "_input_hash": 8,
        "_task_hash": h,
    }


def test_latest_by_session_groups_as_the_figures_do():
    answers = [
        ("a", binary(1, "accept")),
        ("b", binary(1, "reject")),
        ("a", binary(1, "reject")),  # a's later answer wins
        ("c", binary(1, "accept")),
        ("c", binary(1, "ignore")),  # and an ignore withdraws c's
        ("a", correction([(0, 4, "PER")], h=50)),
        ("b", correction([(0, 4, "PER")], h=51)),  # grouped by text, not by task
        ("c", correction([], h=52)),
        ("c", correction([], answer="reject", h=52)),
        ("d", binary(2, "ignore")),
    ]
    groups = latest_by_session(answers)
    assert list(groups) == [("task", 1), ("text", 8)]
    assert {s: t["answer"] for s, t in groups[("task", 1)].items()} == {"a": "reject", "b": "reject"}
    assert list(groups[("text", 8)]) == ["a", "b"]


@pytest.mark.parametrize(
    "answers,versions,selected",
    [
        (["accept", "reject", "reject"], [("accept", ["a"]), ("reject", ["b", "c"])], 1),
        (["reject", "accept"], [("reject", ["a"]), ("accept", ["b"])], 0),  # a tie: the first given
        (["accept", "accept"], [("accept", ["a", "b"])], 0),
    ],
)
def test_versions_name_their_sessions_and_the_majority_is_selected(answers, versions, selected):
    by_session = {s: binary(1, answer) for s, answer in zip("abc", answers)}
    item, tasks = make_item(("task", 1), by_session)
    assert [(v["answer"], v["sessions"]) for v in item["versions"]] == versions
    assert item["selected"] == selected and [t["answer"] for t in tasks] == [v for v, _ in versions]


def test_corrections_are_versions_by_their_spans():
    by_session = {
        "a": correction([(0, 4, "PER"), (14, 20, "LOC")]),
        "b": correction([(14, 20, "LOC"), (0, 4, "PER")], h=51),
        "c": correction([(0, 4, "PER")], h=52),
    }
    item, _ = make_item(("text", 8), by_session)
    assert [v["sessions"] for v in item["versions"]] == [["a", "b"], ["c"]] and item["selected"] == 0
    assert item["_task_hash"] == 50 and item["kind"] == "text"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A database URL and a fresh dataset prefix; PostgreSQL where SBN_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}", ""
        return
    url = os.environ.get("SBN_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL tests need SBN_TEST_POSTGRES_URL")
    pytest.importorskip("psycopg")
    prefix = f"t-{uuid.uuid4().hex[:12]}-"
    yield url, prefix
    storage = Storage(url)
    for name in ("in", "out"):
        storage.drop(prefix + name)
    storage.close()


def _fill(url: str, dataset: str = "in") -> None:
    storage = Storage(url)
    rows = {
        "a": [binary(1, "accept"), binary(2, "accept"), binary(3, "reject"), correction([(0, 4, "PER")])],
        "b": [binary(1, "reject"), binary(2, "accept"), binary(3, "accept"), correction([(0, 4, "ORG")], h=51)],
        "c": [binary(1, "reject")],
    }
    for session, tasks in rows.items():
        storage.add(dataset, session, [(f"{session}{i}", t) for i, t in enumerate(tasks)])
    storage.close()


def test_the_reviewer_stores_agreement_unseen_and_a_restart_shows_no_choice_again(database):
    url, prefix = database
    _fill(url, prefix + "in")
    reviewer = Reviewer(url, prefix + "in", prefix + "out")
    # Task 2 is agreed on: stored at start, not shown; 1 and 3 and the text disagree.
    assert reviewer.to_review == [1, 3, 50] and reviewer.n_agreed == 1
    tasks = reviewer.questions("r", 5)
    assert [t["_task_hash"] for t in tasks] == [1, 3, 50]
    assert [t["selected"] for t in tasks] == [1, 0, 0]  # 2 of 3 rejected task 1; ties go to the first
    choice = reviewer.validate({"_task_hash": 3, "version": 1, "key": "k1"})
    assert [new for _, new in reviewer.answer("r", [choice])] == [True]
    out = prefix + "out"
    with pytest.raises(ValueError, match="version"):
        reviewer.validate({"_task_hash": 3, "version": 2})
    with pytest.raises(ValueError, match="no task"):
        reviewer.validate({"_task_hash": 99, "version": 0})
    assert [t["_task_hash"] for t in reviewer.questions("r", 5)] == [1, 50]
    assert reviewer.history("r", 5)[0]["version"] == 1
    reviewer.close()
    again = Reviewer(url, prefix + "in", out)
    assert [t["_task_hash"] for t in again.questions("r2", 5)] == [1, 50]
    assert again.progress("r2")["reviewed"] == 1 and again.storage.count(out) == 2
    stored = {s.task["_task_hash"]: s for s in again.storage.latest(out)}
    assert stored[2].session == AGREED_SESSION and stored[2].task["meta"]["review"]["sessions"] == ["a", "b"]
    assert stored[3].session == "r" and stored[3].task["answer"] == "accept"
    assert stored[3].task["meta"]["review"] == {
        "version": 1,
        "sessions": ["b"],
        "versions": 2,
        "majority": False,
        "by": "reviewer",
    }
    again.close()
    storage = Storage(url)
    assert len({s.task["_task_hash"] for s in storage.iter_answers(out)}) == 2
    storage.close()


def test_show_all_shows_the_agreed_tasks_too(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    _fill(url)
    reviewer = Reviewer(url, "in", "out", show_all=True)
    assert [t["_task_hash"] for t in reviewer.questions("r", 5)] == [1, 2, 3, 50]
    assert reviewer.storage.count("out") == 0
    reviewer.close()


def test_the_review_api_serves_its_page_tasks_choices_and_queue(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    _fill(url)
    reviewer = Reviewer(url, "in", "out")
    with TestClient(create_app(reviewer, token="t0k", on_shutdown=reviewer.close)) as client:
        assert client.get("/api/queue").status_code == 401
        auth = {"Authorization": "Bearer t0k"}
        assert "review.js" in client.get("/", headers=auth).text
        info = client.get("/api/info", headers=auth).json()
        assert info["view"] == "review" and info["dataset"] == "out" and info["labels"] == ["LOC", "ORG", "PER"]
        tasks = client.get("/api/questions?session=r&n=2", headers=auth).json()["tasks"]
        queue = client.get("/api/queue", headers=auth).json()
        assert [t["_task_hash"] for t in queue["ready"]] == [50] and list(queue["open"]) == ["r"]
        bad = client.post("/api/answers?session=r", json={"answers": [{"_task_hash": 1, "version": 7}]}, headers=auth)
        assert bad.status_code == 422 and "version" in bad.json()["error"]
        body = {"answers": [{"_task_hash": tasks[0]["_task_hash"], "version": 0, "key": "x"}]}
        r = client.post("/api/answers?session=r&next=2", json=body, headers=auth).json()
        assert r["stored"] == 1 and [t["_task_hash"] for t in r["tasks"]] == [3, 50]
        # The same key again (an acknowledgement lost): stored once.
        assert client.post("/api/answers?session=r", json=body, headers=auth).json()["duplicates"] == 1
        progress = client.get("/api/progress?session=r", headers=auth).json()
        assert progress["reviewed"] == 1 and progress["to_review"] == 3 and progress["agreed"] == 1
    out = tmp_path / "out.jsonl"
    assert cli(["db-out", "out", str(out), "--db", url]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["_task_hash"] for r in records) == [1, 2]
    assert {r["_task_hash"]: r["answer"] for r in records} == {1: "accept", 2: "accept"}


def test_the_command_refuses_a_missing_database_the_same_dataset_twice_and_an_empty_one(tmp_path, capsys):
    db = str(tmp_path / "db.sqlite3")
    with pytest.raises(SystemExit) as exit_:
        cli(["review", "in", "out", "--db", db])
    assert exit_.value.code == 2 and "no SQLite file" in capsys.readouterr().err
    Storage(f"sqlite:///{db}").close()
    with pytest.raises(SystemExit) as exit_:
        cli(["review", "in", "in", "--db", db])
    assert exit_.value.code == 2 and "DATASET_OUT must not be DATASET_IN" in capsys.readouterr().err
    assert cli(["review", "none", "out", "--db", db]) == 1
    assert "no answers in the dataset 'none'" in capsys.readouterr().err
