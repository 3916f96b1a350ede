"""`teach --task textcat`: the server's API in-process (Starlette's TestClient)."""

import json
import warnings
from pathlib import Path
from typing import Dict, List

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
pytest.importorskip("sqlalchemy")

import spacy  # noqa: E402
from spacy.util import registry  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from spacy_binary_ner.__main__ import main as cli  # noqa: E402
from spacy_binary_ner.server.app import create_app  # noqa: E402
from spacy_binary_ner.server.settings import TeachSettings, TextcatTeachSettings  # noqa: E402
from spacy_binary_ner.server.storage import Storage  # noqa: E402
from spacy_binary_ner.server.teach import build_teacher, parse_args  # noqa: E402
from spacy_binary_ner.textcat.reader import READER_NAME, TextcatReader  # noqa: E402

from .server_util import TOPICS, textcat_argv, topic_records, write_jsonl, write_textcat_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
LABELS = list(TOPICS)


def _workdir(tmp_path: Path, exclusive: bool = True) -> Path:
    write_textcat_config(tmp_path / "textcat.cfg", exclusive=exclusive)
    records = topic_records(80)
    write_jsonl(tmp_path / "source.jsonl", [{"text": r["text"]} for r in records])
    write_jsonl(tmp_path / "gold.jsonl", records)
    return tmp_path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return _workdir(tmp_path_factory.mktemp("textcat"))


def make_client(workdir: Path, *extra: str, db: str = "answers.sqlite3") -> TestClient:
    settings = parse_args(textcat_argv(workdir, "--queue-size", "6", "--batch-size", "4", *extra, db=db))
    teacher = build_teacher(settings)
    return TestClient(create_app(teacher, on_shutdown=teacher.close))


def gold(workdir: Path) -> Dict[str, Dict[str, float]]:
    lines = (workdir / "gold.jsonl").read_text(encoding="utf8").splitlines()
    return {r["text"]: r["cats"] for r in map(json.loads, lines)}


def oracle(task: Dict, cats: Dict[str, float]) -> str:
    return "accept" if cats[task["label"]] >= 0.5 else "reject"


def answer(client: TestClient, task: Dict, answer: str, key: str, session: str = "a") -> Dict:
    r = client.post(f"/api/answers?session={session}&next=3", json={"answers": [dict(task, answer=answer, key=key)]})
    assert r.status_code == 200, r.text
    return r.json()


def test_teach_task_textcat_parses_to_its_settings(workdir):
    settings = parse_args(textcat_argv(workdir, "--choice", "--per-text", "2"))
    assert isinstance(settings, TextcatTeachSettings) and settings.questions == "textcat"
    assert settings.choice and settings.per_text == 2 and settings.labels == LABELS
    assert type(parse_args(textcat_argv(workdir)[:3] + ["--label", "LOC"])) is TeachSettings
    with pytest.raises(SystemExit):
        parse_args(textcat_argv(workdir, "--per-text", "0"))
    with pytest.raises(SystemExit):  # a span flag is no flag of the textcat task
        parse_args(textcat_argv(workdir, "--patterns", str(workdir / "gold.jsonl")))


def test_label_questions_answers_stored_and_the_label_learned(tmp_path):
    workdir = _workdir(tmp_path)
    by_text = gold(workdir)
    with make_client(workdir, "--eval", str(workdir / "gold.jsonl"), "--eval-every", "1000") as client:
        info = client.get("/api/info").json()
        assert info["view"] == "textcat" and info["labels"] == LABELS
        tasks = client.get("/api/questions?session=a&n=3").json()["tasks"]
        probe = tasks[0]
        for task in tasks:
            assert task["label"] in LABELS and 0.0 <= task["meta"]["score"] <= 1.0
            assert isinstance(task["_task_hash"], int) and isinstance(task["_sig"], str)
        given = []
        for i in range(40):
            task = tasks[0]
            given.append(dict(task, answer=oracle(task, by_text[task["text"]]), key=f"k{i}"))
            tasks = answer(client, task, given[-1]["answer"], f"k{i}")["tasks"]
            if not tasks:
                break
        progress = client.get("/api/progress?session=a").json()
        assert progress["session_answers"] == len(given) and progress["f1"] is not None
    stored = list(Storage(f"sqlite:///{workdir / 'answers.sqlite3'}").iter_answers("ds"))
    assert [(s.task["text"], s.task["label"], s.task["answer"]) for s in stored] == [
        (g["text"], g["label"], g["answer"]) for g in given
    ]
    assert probe["text"] in {g["text"] for g in given}


def test_the_engine_learns_a_label_from_accepts(tmp_path):
    """Every question accepted: the saved model gives the label first asked
    a higher probability on each text it was accepted for than the
    question's score (the model's probability when it asked)."""
    workdir = _workdir(tmp_path, exclusive=False)
    asked: List[Dict] = []
    with make_client(workdir, "--sorter", "none") as client:
        tasks = client.get("/api/questions?session=a&n=3").json()["tasks"]
        for i in range(24):
            asked.append(tasks[0])
            tasks = answer(client, tasks[0], "accept", f"k{i}")["tasks"]
    nlp = spacy.load(workdir / "out" / "model")
    label = asked[0]["label"]
    same = [task for task in asked if task["label"] == label]
    before = [task["meta"]["score"] for task in same]
    after = [doc.cats[label] for doc in nlp.pipe(task["text"] for task in same)]
    assert len(same) >= 10
    assert all(a > b for a, b in zip(after, before)), list(zip(before, after))
    assert sum(after) / len(after) > sum(before) / len(before) + 0.02


BAD = [
    ({"label": "WEATHER"}, "unknown label"),
    ({"label": ""}, "bad field"),
    ({"answer": "maybe"}, "unknown answer"),
    ({"answer": None}, "missing key"),
    ({"cats": {"SPORT": 1.0}}, "complete annotation"),
    ({"label": None, "options": [{"id": "SPORT"}], "accept": ["VOTE"]}, "bad field"),
    ({"label": None, "options": [{"id": "WEATHER"}], "accept": []}, "unknown label"),
    ({"text": 3}, "bad field"),
]


@pytest.fixture(scope="module")
def open_client(workdir):
    with make_client(workdir, "--allow-new-tasks", "--output", str(workdir / "out-open")) as client:
        yield client


@pytest.mark.parametrize("change,reason", BAD)
def test_bad_answers_are_422_naming_the_reason_and_fix(open_client, change, reason):
    task = {"text": "the team won the match", "label": "SPORT", "answer": "accept", **change}
    task = {k: v for k, v in task.items() if v is not None}
    r = open_client.post("/api/answers?session=a", json={"answers": [task]})
    assert r.status_code == 422, r.text
    assert reason in r.json()["error"] and "Fix:" in r.json()["error"]


def test_a_good_answer_to_no_question_is_stored_with_allow_new_tasks(open_client):
    task = {"text": "the team won the match", "label": "SPORT", "answer": "accept"}
    r = open_client.post("/api/answers?session=a", json={"answers": [task]})
    assert r.status_code == 200 and r.json()["stored"] == 1


def test_an_altered_question_is_refused(workdir):
    with make_client(workdir, "--output", str(workdir / "out-altered")) as client:
        task = client.get("/api/questions?session=a&n=1").json()["tasks"][0]
        other = next(label for label in LABELS if label != task["label"])
        r = client.post("/api/answers?session=a", json={"answers": [dict(task, label=other, answer="accept")]})
        assert r.status_code == 422 and "not those of the question" in r.json()["error"]


def test_choice_questions_db_out_and_the_reader_round_trip(tmp_path):
    workdir = _workdir(tmp_path)
    by_text = gold(workdir)
    given = []
    with make_client(workdir, "--choice") as client:
        tasks = client.get("/api/questions?session=a&n=3").json()["tasks"]
        for i in range(6):
            task = tasks[0]
            assert [o["id"] for o in task["options"]] == LABELS and len(task["accept"]) == 1
            chosen = [label for label, v in by_text[task["text"]].items() if v]
            kind = ["accept", "reject", "ignore"][i % 3]
            given.append(dict(task, accept=chosen if kind == "accept" else task["accept"], answer=kind))
            tasks = answer(client, given[-1], kind, f"k{i}")["tasks"]
    out = workdir / "answers-out.jsonl"
    assert cli(["db-out", "ds", str(out), "--db", str(workdir / "answers.sqlite3")]) == 0
    written = [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()]
    assert [(r["text"], r["accept"], r["answer"]) for r in written] == [
        (g["text"], g["accept"], g["answer"]) for g in given
    ]
    nlp = spacy.blank("en")
    reader = TextcatReader(nlp, labels=LABELS)
    reader.read_path(out)
    cats = {eg.reference.text: dict(eg.reference.cats) for eg in reader.examples()}
    for g in given:
        if g["answer"] == "accept":
            assert cats[g["text"]] == {label: float(label in g["accept"]) for label in LABELS}
        elif g["answer"] == "reject":
            assert cats[g["text"]] == {g["accept"][0]: 0.0}
        else:
            assert g["text"] not in cats
    assert reader.total().used == 4 and reader.total().skipped == {"ignore answer": 2}
    # `spacy train`'s reader, strict (a record it would skip for a fault of the data raises), reads the same.
    corpus = registry.readers.get(READER_NAME)(path=str(out), strict=True, labels=LABELS)
    assert {eg.reference.text: dict(eg.reference.cats) for eg in corpus(nlp)} == cats


def test_a_restart_relearns_what_was_stored_after_the_save(tmp_path):
    workdir = _workdir(tmp_path)
    by_text = gold(workdir)
    with make_client(workdir, "--save-every", "0") as client:
        tasks = client.get("/api/questions?session=a&n=3").json()["tasks"]
        for i in range(5):
            tasks = answer(client, tasks[0], oracle(tasks[0], by_text[tasks[0]["text"]]), f"k{i}")["tasks"]
    # The model saved on stop learned all five; answers stored after it are re-learned.
    storage = Storage(f"sqlite:///{workdir / 'answers.sqlite3'}")
    extra = topic_records(90)[80:83]
    storage.add("ds", "b", [(f"x{i}", _stored(r["text"], "VOTE")) for i, r in enumerate(extra)])
    storage.close()
    settings = parse_args(textcat_argv(workdir, "--queue-size", "6"))
    teacher = build_teacher(settings)
    try:
        assert teacher.n_resumed == 3
        assert teacher.wait_learned(60)
        asked = {t["text"] for t in teacher.questions("a", 6)}
        assert not asked & {r["text"] for r in extra}
    finally:
        teacher.close(save=False)


def _stored(text: str, label: str) -> Dict:
    from spacy_binary_ner.records import stable_hash
    from spacy_binary_ner.textcat.loop import textcat_task_hash

    task = {"text": text, "label": label, "answer": "accept", "_input_hash": stable_hash(text)}
    return dict(task, _task_hash=textcat_task_hash(task))


def test_the_pipeline_from_blank_cfg_or_trained_and_its_errors(tmp_path):
    from spacy_binary_ner.server.teach_textcat import load_textcat_pipeline

    nlp, name, state = load_textcat_pipeline("blank:en", LABELS, True, None)
    assert (name, state) == ("binary_textcat", {})
    assert nlp.get_pipe(name).exclusive and nlp.get_pipe(name).labels == tuple(LABELS)
    write_textcat_config(tmp_path / "multi.cfg", exclusive=False)
    nlp, name, _ = load_textcat_pipeline(str(tmp_path / "multi.cfg"), LABELS[:2], True, None)
    assert not nlp.get_pipe(name).exclusive and nlp.get_pipe(name).labels == tuple(LABELS[:2])
    nlp.to_disk(tmp_path / "trained")
    nlp, name, _ = load_textcat_pipeline(str(tmp_path / "trained"), LABELS[:1], False, tmp_path / "none")
    assert nlp.get_pipe(name).labels == tuple(LABELS[:2])
    with pytest.raises(ValueError, match="has no label VOTE"):
        load_textcat_pipeline(str(tmp_path / "trained"), LABELS, False, None)
    spacy.blank("en").to_disk(tmp_path / "empty")
    with pytest.raises(ValueError, match="no binary_textcat component"):
        load_textcat_pipeline(str(tmp_path / "empty"), LABELS, False, None)


def test_answers_per_question_gives_a_question_to_two_sessions(workdir):
    # A database of its own: questions answered once by the other tests would be offered again first.
    with make_client(
        workdir, "--answers-per-question", "2", "--output", str(workdir / "out-apq"), db="apq.sqlite3"
    ) as client:
        a = [t["_task_hash"] for t in client.get("/api/questions?session=a&n=3").json()["tasks"]]
        b = [t["_task_hash"] for t in client.get("/api/questions?session=b&n=3").json()["tasks"]]
        c = [t["_task_hash"] for t in client.get("/api/questions?session=c&n=3").json()["tasks"]]
        assert a == b and len(a) == 3 and not set(c) & set(a)
