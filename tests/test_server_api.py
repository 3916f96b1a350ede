"""The teach server's JSON API, in-process (Starlette's TestClient)."""

import importlib
import json
import time
from pathlib import Path
from typing import Dict, List

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
pytest.importorskip("sqlalchemy")

import warnings  # noqa: E402

import spacy  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from spacy_binary_ner.__main__ import COMMANDS  # noqa: E402
from spacy_binary_ner.__main__ import main as cli  # noqa: E402
from spacy_binary_ner.data import records_to_examples  # noqa: E402
from spacy_binary_ner.server.app import MAX_BODY, create_app  # noqa: E402
from spacy_binary_ner.server.storage import Storage  # noqa: E402
from spacy_binary_ner.server.teach import build_teacher, parse_args, read_source  # noqa: E402

from .server_util import teach_args, toy_records, write_config, write_jsonl  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _workdir(tmp_path: Path) -> Path:
    write_config(tmp_path / "small.cfg")
    records = toy_records(120)
    write_jsonl(tmp_path / "source.jsonl", [{"text": r["text"]} for r in records])
    write_jsonl(tmp_path / "gold.jsonl", records[:30])
    return tmp_path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return _workdir(tmp_path)


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory):
    # Its requests send hand-made answers (GOOD): tasks it never asked.
    with make_client(_workdir(tmp_path_factory.mktemp("shared")), "--allow-new-tasks") as client:
        yield client


def make_client(workdir: Path, *extra: str, token=None) -> TestClient:
    args = teach_args(workdir, *extra)
    teacher = build_teacher(args)
    return TestClient(create_app(teacher, token=token, on_shutdown=teacher.close))


def gold_answer(task: Dict) -> str:
    span = task["spans"][0]
    gold = {"Berlin", "Paris", "London", "Madrid", "Rome", "Vienna", "Oslo", "Prague", "Lisbon", "Dublin"}
    return "accept" if task["text"][span["start"] : span["end"]] in gold else "reject"


def answer_all(client: TestClient, session: str, n: int, key_prefix: str = "k") -> List[Dict]:
    given = []
    tasks = client.get(f"/api/questions?session={session}&n=3").json()["tasks"]
    for i in range(n):
        task = dict(tasks[0], answer=gold_answer(tasks[0]), key=f"{key_prefix}{session}{i}")
        r = client.post(f"/api/answers?session={session}&next=3", json={"answers": [task]})
        assert r.status_code == 200, r.text
        assert r.json()["stored"] == 1
        given.append(task)
        tasks = r.json()["tasks"]
    return given


def test_every_command_is_importable_with_main():
    for name, module in COMMANDS.items():
        assert callable(importlib.import_module(module).main), name


def test_questions_stay_open_for_their_session_until_answered(workdir):
    with make_client(workdir) as client:
        first = client.get("/api/questions?session=a&n=4").json()["tasks"]
        assert len(first) == 4
        for task in first:
            assert task["spans"][0]["label"] == "LOC"
            assert 0.0 <= task["meta"]["score"] <= 1.0 and task["meta"]["source"] == "model"
            assert isinstance(task["_task_hash"], int) and isinstance(task["_input_hash"], int)
        again = client.get("/api/questions?session=a&n=4").json()["tasks"]
        assert [t["_task_hash"] for t in again] == [t["_task_hash"] for t in first]
        r = client.post("/api/answers?session=a&next=4", json={"answers": [dict(first[0], answer="reject")]})
        after = [t["_task_hash"] for t in r.json()["tasks"]]
        assert first[0]["_task_hash"] not in after and after[:3] == [t["_task_hash"] for t in first[1:]]


def test_answers_are_stored_once_per_key_and_learned_from(workdir):
    with make_client(workdir) as client:
        given = answer_all(client, "a", 25)
        r = client.post("/api/answers?session=a", json={"answers": [given[3]]})
        assert r.json() == {"stored": 0, "duplicates": 1, "ids": [4]}
        progress = client.get("/api/progress?session=a").json()
        assert progress["session_answers"] == 25 and progress["dataset_answers"] == 25
    storage = Storage(f"sqlite:///{workdir / 'answers.sqlite3'}")
    stored = list(storage.iter_answers("ds"))
    assert [s.key for s in stored] == [g["key"] for g in given]
    assert [s.task["answer"] for s in stored] == [g["answer"] for g in given]


def test_a_correction_supersedes_and_db_out_writes_what_the_reader_takes(workdir):
    with make_client(workdir) as client:
        given = answer_all(client, "a", 6)
        corrected = dict(given[2], answer="ignore" if given[2]["answer"] != "ignore" else "accept", key="fix")
        assert client.post("/api/answers?session=a", json={"answers": [corrected]}).json()["stored"] == 1
        history = client.get("/api/history?session=a&n=10").json()["answers"]
        assert len(history) == 6 and history[0]["answer"] == corrected["answer"]
        assert history[0]["_task_hash"] == corrected["_task_hash"]
    db = str(workdir / "answers.sqlite3")
    assert cli(["db-out", "ds", str(workdir / "latest.jsonl"), "--db", db]) == 0
    assert cli(["db-out", "ds", str(workdir / "all.jsonl"), "--db", db, "--all"]) == 0
    latest = [json.loads(line) for line in (workdir / "latest.jsonl").open()]
    every = [json.loads(line) for line in (workdir / "all.jsonl").open()]
    assert len(latest) == 6 and len(every) == 7
    assert latest[2]["answer"] == corrected["answer"] and every[2]["answer"] == given[2]["answer"]
    assert all(r["meta"]["session"] == "a" for r in latest)
    nlp = spacy.blank("en")
    examples = records_to_examples(nlp, latest, labels=["LOC"], strict=False)
    accepted = sum(1 for r in latest if r["answer"] == "accept")
    assert sum(len(eg.reference.ents) for eg in examples) == accepted


def test_sessions_get_disjoint_questions_unless_feed_overlap(workdir):
    with make_client(workdir) as client:
        a = {t["_task_hash"] for t in client.get("/api/questions?session=a&n=4").json()["tasks"]}
        b = {t["_task_hash"] for t in client.get("/api/questions?session=b&n=4").json()["tasks"]}
        assert len(a) == len(b) == 4 and not a & b
    (workdir / "answers.sqlite3").unlink()
    with make_client(workdir, "--feed-overlap") as client:
        a = [t["_task_hash"] for t in client.get("/api/questions?session=a&n=4").json()["tasks"]]
        b = [t["_task_hash"] for t in client.get("/api/questions?session=b&n=4").json()["tasks"]]
        assert a == b
        answer_all(client, "a", 3)
        b_after = [t["_task_hash"] for t in client.get("/api/questions?session=b&n=4").json()["tasks"]]
        assert b_after == b


def test_a_question_not_answered_within_its_lease_goes_to_another_session(workdir):
    with make_client(workdir, "--lease", "1") as client:
        a = [t["_task_hash"] for t in client.get("/api/questions?session=a&n=3").json()["tasks"]]
        b = [t["_task_hash"] for t in client.get("/api/questions?session=b&n=3").json()["tasks"]]
        assert len(a) == len(b) == 3 and not set(a) & set(b)
        # Within the lease a reload gets the session's own questions back.
        assert [t["_task_hash"] for t in client.get("/api/questions?session=a&n=3").json()["tasks"]] == a
        time.sleep(1.2)
        # a and b went away: their questions go to the next sessions, oldest first.
        assert [t["_task_hash"] for t in client.get("/api/questions?session=c&n=3").json()["tasks"]] == a
        assert [t["_task_hash"] for t in client.get("/api/questions?session=a&n=3").json()["tasks"]] == b
        assert client.get("/api/progress").json()["reassigned"] == 6
        # Each question is open for one session at a time; an answer from the session that lost it still counts.
        assert not set(a) & {t["_task_hash"] for t in client.get("/api/questions?session=b&n=3").json()["tasks"]}
        questions = client.get("/api/questions?session=c&n=3").json()["tasks"]
        r = client.post("/api/answers?session=a", json={"answers": [dict(questions[0], answer="reject", key="late")]})
        assert r.json()["stored"] == 1
        assert questions[0]["_task_hash"] not in {
            t["_task_hash"] for t in client.get("/api/questions?session=c&n=3").json()["tasks"]
        }


def test_a_token_is_checked_on_every_request(workdir):
    with make_client(workdir, token="s3cret") as client:
        for path in ("/", "/api/info", "/api/questions", "/static/app.js"):
            r = client.get(path)
            assert r.status_code == 401 and "token" in r.json()["error"]
        assert client.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/api/info?token=s3cret").status_code == 200
        r = client.post("/api/answers", json={"answers": [{"text": "x", "spans": [], "answer": "accept"}]})
        assert r.status_code == 401
    assert Storage(f"sqlite:///{workdir / 'answers.sqlite3'}").count("ds") == 0


def test_a_host_off_loopback_gets_a_token(workdir):
    args = parse_args(["ds", "blank:en", str(workdir / "source.jsonl"), "--label", "LOC", "--host", "0.0.0.0"])
    assert args.auth and len(args.auth) >= 16


GOOD = {"text": "We met Anna in Paris .", "spans": [{"start": 15, "end": 20, "label": "LOC"}], "answer": "accept"}


@pytest.mark.parametrize(
    "method,path,body,status,message",
    [
        ("POST", "/api/answers", b"{not json", 400, "not valid JSON"),
        ("POST", "/api/answers", json.dumps([GOOD]).encode(), 400, '{"answers"'),
        ("POST", "/api/answers", json.dumps({"answers": []}).encode(), 400, '{"answers"'),
        ("POST", "/api/answers", json.dumps({"answers": [dict(GOOD, answer="maybe")]}).encode(), 422, "`answer`"),
        ("POST", "/api/answers", json.dumps({"answers": [dict(GOOD, text=5)]}).encode(), 422, "`text`"),
        ("POST", "/api/answers", json.dumps({"answers": [dict(GOOD, spans=[])]}).encode(), 422, "`spans`"),
        (
            "POST",
            "/api/answers",
            json.dumps({"answers": [dict(GOOD, spans=[{"start": 15, "end": 99, "label": "LOC"}])]}).encode(),
            422,
            "offsets",
        ),
        (
            "POST",
            "/api/answers",
            json.dumps({"answers": [dict(GOOD, spans=[{"start": 15, "end": 20, "label": "ORG"}])]}).encode(),
            422,
            "unknown label",
        ),
        ("POST", "/api/answers", json.dumps({"answers": [GOOD, dict(GOOD, answer=None)]}).encode(), 422, "answer 1"),
        (
            "POST",
            "/api/answers",
            json.dumps({"answers": [dict(GOOD, spans=[{"start": 16, "end": 20, "label": "LOC"}])]}).encode(),
            422,
            "misaligned span",
        ),
        (
            "POST",
            "/api/answers",
            json.dumps({"answers": [dict(GOOD, tokens=[{"text": "We", "start": 5, "end": 1}])]}).encode(),
            422,
            "bad tokens",
        ),
        ("POST", "/api/answers", json.dumps({"answers": [dict(GOOD, key=7)]}).encode(), 422, "`key`"),
        ("POST", "/api/answers", json.dumps({"answers": [GOOD] * 101}).encode(), 413, "at most"),
        ("POST", "/api/answers", b"{" + b" " * (MAX_BODY + 1) + b"}", 413, "over"),
        ("POST", "/api/answers?session=a/b", json.dumps({"answers": [GOOD]}).encode(), 400, "session"),
        ("GET", "/api/questions?n=0", None, 400, "between"),
        ("GET", "/api/questions?n=x", None, 400, "integer"),
        ("GET", "/api/answers", None, 405, ""),
        ("GET", "/api/nothing", None, 404, ""),
    ],
)
def test_a_bad_request_gets_a_4xx_is_not_stored_and_the_server_goes_on(
    shared_client, method, path, body, status, message
):
    client = shared_client
    before = client.get("/api/progress").json()["dataset_answers"]
    r = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status
    if message:
        assert message in r.json()["error"]
    assert client.get("/api/progress").json()["dataset_answers"] == before
    r = client.post("/api/answers", json={"answers": [GOOD]})
    assert r.status_code == 200 and r.json()["ids"]


GOOD_TOKENS = [
    {"text": w, "start": s, "end": s + len(w), "id": i, "ws": i < 5}
    for i, (w, s) in enumerate([("We", 0), ("met", 3), ("Anna", 7), ("in", 12), ("Paris", 15), (".", 21)])
]


@pytest.mark.parametrize(
    "change,message",
    [
        ({"tokens": GOOD_TOKENS[:2] + GOOD_TOKENS[3:]}, "tokens leave out text"),
        ({"tokens": [dict(GOOD_TOKENS[0], ws=False)] + GOOD_TOKENS[1:]}, "whitespace disagrees with text"),
        (
            {"tokens": GOOD_TOKENS, "spans": [dict(GOOD["spans"][0], token_start=3, token_end=4)]},
            "span disagrees with tokens",
        ),
        ({"spans": [dict(GOOD["spans"][0], label="loc")]}, "unknown label"),
        ({"_input_hash": "abc"}, "`_input_hash` must be an integer"),
        ({"_input_hash": 7.5}, "`_input_hash`"),
        ({"_input_hash": 2**63}, "`_input_hash` 9223372036854775808 is out of the range"),
        ({"_input_hash": str(-(2**63) - 1)}, "is out of the range"),
    ],
)
def test_an_answer_the_reader_would_not_use_gets_a_422_with_the_fix(shared_client, change, message):
    before = shared_client.get("/api/progress").json()["dataset_answers"]
    r = shared_client.post("/api/answers", json={"answers": [dict(GOOD, **change)]})
    assert r.status_code == 422
    error = r.json()["error"]
    assert message in error and ("Fix:" in error or "leave it out" in error), error
    assert shared_client.get("/api/progress").json()["dataset_answers"] == before


def test_input_hash_7_and_the_string_7_are_one_text(workdir):
    with make_client(workdir, "--allow-new-tasks") as client:
        for i, given in enumerate([7, "7", str(2**63 - 1)]):
            r = client.post("/api/answers", json={"answers": [dict(GOOD, key=f"h{i}", _input_hash=given)]})
            assert r.status_code == 200, r.text
    stored = list(Storage(f"sqlite:///{workdir / 'answers.sqlite3'}").iter_answers("ds"))
    assert [s.task["_input_hash"] for s in stored] == [7, 7, 2**63 - 1]
    assert stored[0].task["_task_hash"] == stored[1].task["_task_hash"]


def test_a_source_input_hash_is_read_by_the_readers_rule(tmp_path):
    source = tmp_path / "source.jsonl"
    write_jsonl(source, [{"text": "a b", "_input_hash": "7"}, {"text": "c d", "_input_hash": 8}])
    assert [t["_input_hash"] for t in read_source(source)] == [7, 8]
    write_jsonl(source, [{"text": "a b"}, {"text": "c d", "_input_hash": "x7"}])
    with pytest.raises(ValueError, match="source.jsonl:2: `_input_hash` must be an integer"):
        list(read_source(source))


def test_restart_resumes_the_model_and_asks_no_answered_task(workdir):
    with make_client(workdir, "--save-every", "10") as client:
        given = answer_all(client, "a", 15)
    answered = {g["_task_hash"] for g in given}
    answered_texts = {g["text"] for g in given}
    # A clean stop saved the model with all 15 answers: nothing to replay.
    with make_client(workdir) as client:
        progress = client.get("/api/progress").json()
        assert progress["learned"] == 0
        tasks = client.get("/api/questions?session=a&n=10").json()["tasks"]
        assert tasks and not {t["_task_hash"] for t in tasks} & answered
        assert not {t["text"] for t in tasks} & answered_texts
        more = answer_all(client, "a", 5, key_prefix="m")
    state = json.loads((workdir / "out" / "model" / "sbn_teach_state.json").read_text())
    assert state["max_id"] == 20
    # A model saved before the last answers: those are replayed on start.
    (workdir / "out" / "model" / "sbn_teach_state.json").write_text(json.dumps({"max_id": 16, "recent_ids": []}))
    with make_client(workdir) as client:
        # Re-learned in the background, after the first questions.
        for _ in range(400):
            if client.get("/api/progress").json()["learned"] >= 4:
                break
            time.sleep(0.05)
        assert client.get("/api/progress").json()["learned"] == 4
    assert len(more) == 5


def test_the_saved_model_proposes_as_the_server_did(workdir):
    with make_client(workdir, "--save-every", "0") as client:
        answer_all(client, "a", 20)
    nlp = spacy.load(workdir / "out" / "model")
    text = "We met Anna in Madrid ."
    first = nlp.get_pipe("binary_ner").predict([nlp.make_doc(text)])
    with make_client(workdir) as client:
        pass
    nlp2 = spacy.load(workdir / "out" / "model")
    second = nlp2.get_pipe("binary_ner").predict([nlp2.make_doc(text)])
    assert (first == second).all()


def test_eval_f1_is_reported(workdir):
    with make_client(workdir, "--eval", str(workdir / "gold.jsonl"), "--eval-every", "10") as client:
        before = client.get("/api/progress").json()
        assert before["f1"] is not None and before["f1_at"] == 0
        answer_all(client, "a", 12)
        # The learner evaluates off the request path.
        for _ in range(200):
            progress = client.get("/api/progress").json()
            if progress["f1_at"]:
                break
            time.sleep(0.05)
        assert progress["f1_at"] >= 10 and 0.0 <= progress["f1"] <= 1.0


def test_sources_plain_text_gz_and_chinese(tmp_path):
    import gzip

    (tmp_path / "texts.txt").write_text("Anna flew to Paris .\n\n  \nWe met Tom in Rome .\n", encoding="utf8")
    tasks = list(read_source(tmp_path / "texts.txt"))
    assert [t["text"] for t in tasks] == ["Anna flew to Paris .", "We met Tom in Rome ."]
    with gzip.open(tmp_path / "zh.jsonl.gz", "wt", encoding="utf8") as f:
        f.write(
            json.dumps(
                {"text": "李明在北京工作。", "spans": [{"start": 0, "end": 2, "label": "NAME"}], "answer": "accept"},
                ensure_ascii=False,
            )
            + "\n"
        )
    (task,) = read_source(tmp_path / "zh.jsonl.gz")
    assert task["text"] == "李明在北京工作。" and "spans" not in task and "answer" not in task


def test_db_stats_and_drop(workdir, capsys):
    with make_client(workdir) as client:
        answer_all(client, "a", 4)
        answer_all(client, "b", 3)
    db = str(workdir / "answers.sqlite3")
    assert cli(["db-stats", "ds", "--db", db, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["answers stored"] == 7
    assert {k: sum(v.values()) for k, v in stats["by session"].items()} == {"a": 4, "b": 3}
    assert sum(stats["by answer"].values()) == 7 and sum(stats["by label"]["LOC"].values()) == 7
    assert cli(["db-stats", "nope", "--db", db]) == 1
    assert cli(["db-drop", "ds", "--db", db]) == 0
    assert "deleted 7" in capsys.readouterr().out
    assert Storage(f"sqlite:///{db}").count("ds") == 0
    assert cli(["db-out", "ds", str(workdir / "x.jsonl"), "--db", db]) == 1


def test_an_answer_resent_after_a_restart_takes_its_question_off_the_queue(workdir):
    with make_client(workdir) as client:
        (question,) = client.get("/api/questions?session=a&n=1").json()["tasks"]
    # The restarted server queues the same question again (nobody answered it)...
    with make_client(workdir) as client:
        for _ in range(200):
            if client.get("/api/progress").json()["queue"] >= 8:
                break
            time.sleep(0.02)
        # ...then the answer the client could not send before arrives.
        assert (
            client.post("/api/answers?session=a", json={"answers": [dict(question, answer="accept")]}).status_code
            == 200
        )
        tasks = client.get("/api/questions?session=a&n=10").json()["tasks"]
        assert tasks and question["_task_hash"] not in {t["_task_hash"] for t in tasks}


def test_the_readme_teach_command_parses_and_its_labels_are_the_samples(monkeypatch):
    import re
    import shlex

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf8")
    match = re.search(r"python -m spacy_binary_ner teach (.*?\\\n.*?)\n", readme)
    assert match, "README has no teach command"
    argv = shlex.split(match.group(1).replace("\\\n", " "))
    monkeypatch.chdir(root)
    args = parse_args(argv)
    gold = [json.loads(line) for line in (root / args.eval).open(encoding="utf8")]
    assert sorted(args.label.split(",")) == sorted({s["label"] for r in gold for s in r["spans"]})
    assert args.host == "127.0.0.1" and args.auth is None


def test_a_trained_pipeline_is_taught_a_new_label(workdir):
    """PIPELINE a trained folder and --label naming a label it lacks: the label
    is added, the old one keeps its predictions, and questions propose both."""
    with make_client(workdir, "--save-every", "0") as client:
        answer_all(client, "a", 10)
    trained = workdir / "out" / "model"
    text = "We met Anna in Madrid ."
    nlp = spacy.load(trained)
    before = nlp.get_pipe("binary_ner").predict([nlp.make_doc(text)])
    args = parse_args(
        [
            "ds2",
            str(trained),
            str(workdir / "source.jsonl"),
            "--label",
            "LOC,PER",
            "--db",
            str(workdir / "answers2.sqlite3"),
            "--output",
            str(workdir / "out2"),
            "--queue-size",
            "8",
        ]
    )
    teacher = build_teacher(args)
    with TestClient(create_app(teacher, on_shutdown=teacher.close)) as client:
        assert client.get("/api/info").json()["labels"] == ["LOC", "PER"]
    # The engine saved the grown model on close (no answer learned: its weights as loaded).
    grown = spacy.load(workdir / "out2" / "model")
    pipe = grown.get_pipe("binary_ner")
    assert pipe.labels == ("LOC", "PER")
    after = pipe.predict([grown.make_doc(text)])
    assert after.shape[-1] == before.shape[-1] + 1
    assert abs(after[..., 0] - before[..., 0]).max() < 1e-4
