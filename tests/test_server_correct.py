"""`correct`, `silver-to-gold` and teach's corrections through the JSON API,
in-process (Starlette's TestClient), with a pipeline whose entities are known
(an entity ruler before a `binary_ner` that adds none)."""

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from spacy.tokens import Doc  # noqa: E402

from spacy_binary_ner.__main__ import main as cli  # noqa: E402
from spacy_binary_ner.loop import correction_hash  # noqa: E402
from spacy_binary_ner.records import Record, parse_record  # noqa: E402
from spacy_binary_ner.server import teach  # noqa: E402
from spacy_binary_ner.server.app import create_app  # noqa: E402
from spacy_binary_ner.server.settings import CorrectSettings, SilverSettings, make_parser  # noqa: E402
from spacy_binary_ner.server.teach import build_teacher, parse_args  # noqa: E402

from .server_util import ruler_argv, write_jsonl, write_ruler_pipeline  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TEXTS = [
    "Anna flew to Paris today .",
    "Omar said Rome is large .",
    "We met Lena in Oslo .",
    "Tom stayed home .",
    "Mia liked Vienna and Prague .",
    "Ravi wrote to Anna from Paris .",
]
PATTERNS = (
    [{"label": "PER", "pattern": name} for name in ("Anna", "Omar", "Lena", "Mia", "Ravi")]
    + [{"label": "LOC", "pattern": city} for city in ("Paris", "Rome", "Oslo", "Vienna")]
    + [
        # A label the command is not asked about: never shown.
        {"label": "MISC", "pattern": "today"}
    ]
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_ruler_pipeline(tmp_path / "ruler", "en", PATTERNS, ["LOC", "PER"])
    write_jsonl(tmp_path / "source.jsonl", [{"text": text} for text in TEXTS])
    return tmp_path


def _client(settings) -> TestClient:
    teacher = build_teacher(settings)
    return TestClient(create_app(teacher, on_shutdown=teacher.close))


def _spans(task: Dict) -> List[tuple]:
    return [(task["text"][s["start"] : s["end"]], s["label"]) for s in task["spans"]]


def _all_questions(client: TestClient, session: str = "a") -> List[Dict]:
    """Every question, answered in turn (ignored), as the page would."""
    asked, tasks = [], client.get(f"/api/questions?session={session}&n=1").json()["tasks"]
    while tasks:
        asked.append(tasks[0])
        r = client.post(f"/api/answers?session={session}&next=1", json={"answers": [dict(tasks[0], answer="ignore")]})
        assert r.status_code == 200, r.text
        tasks = r.json()["tasks"]
    return asked


def test_correct_asks_every_text_in_order_with_the_models_entities_of_its_labels(workdir):
    settings = parse_args(ruler_argv(workdir), CorrectSettings)
    assert settings.queue_size == 2 and settings.update is False and settings.output == workdir / "out"
    with _client(settings) as client:
        info = client.get("/api/info").json()
        assert info["view"] == "correct" and info["labels"] == ["LOC", "PER"] and info["learns"] is False
        asked = _all_questions(client)
    assert [task["text"] for task in asked] == TEXTS
    assert _spans(asked[0]) == [("Anna", "PER"), ("Paris", "LOC")]  # not today's MISC
    assert _spans(asked[3]) == []
    assert _spans(asked[4]) == [("Mia", "PER"), ("Vienna", "LOC")]
    for task in asked:
        assert task["complete"] == ["LOC", "PER"] and task["meta"]["source"] == "model"
        assert task["_task_hash"] == correction_hash(task["_input_hash"], ["PER", "LOC"])
        assert [t["text"] for t in task["tokens"]] == task["text"].split(" ")
        for span in task["spans"]:
            tokens = task["tokens"][span["token_start"] : span["token_end"] + 1]
            assert (tokens[0]["start"], tokens[-1]["end"]) == (span["start"], span["end"])


def test_a_correction_is_stored_complete_for_its_labels_and_a_later_one_supersedes(workdir):
    with _client(parse_args(ruler_argv(workdir), CorrectSettings)) as client:
        task = client.get("/api/questions?session=a&n=1").json()["tasks"][0]
        assert task["text"] == TEXTS[0]
        # "Anna" relabelled LOC, "Paris" removed, "today" added as LOC.
        corrected = [
            {"start": 0, "end": 4, "label": "LOC", "token_start": 0, "token_end": 0},
            {"start": 19, "end": 24, "label": "LOC", "token_start": 4, "token_end": 4},
        ]
        r = client.post("/api/answers?session=a", json={"answers": [dict(task, spans=corrected, answer="accept")]})
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text
        # Undone and answered again: the same task, other spans.
        again = [{"start": 13, "end": 18, "label": "LOC", "token_start": 3, "token_end": 3}]
        history = client.get("/api/history?session=a&n=1").json()["answers"]
        assert history[0]["spans"] == corrected and history[0]["complete"] == ["LOC", "PER"]
        r = client.post("/api/answers?session=a", json={"answers": [dict(history[0], spans=again, answer="accept")]})
        assert r.status_code == 200, r.text
    out = workdir / "out.jsonl"
    assert cli(["db-out", "ds", str(out), "--db", str(workdir / "db.sqlite3")]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["text"] == TEXTS[0] and record["answer"] == "accept"
    assert record["spans"] == again and record["complete"] == ["LOC", "PER"]
    assert record["_task_hash"] == task["_task_hash"] and "_sig" not in record
    parsed = parse_record(record)
    assert parsed.complete and parsed.complete_labels == ("LOC", "PER") and parsed.spans == [(13, 18, "LOC")]
    assert cli(["db-out", "ds", str(out), "--db", str(workdir / "db.sqlite3"), "--all"]) == 0
    assert [json.loads(line)["spans"] for line in out.read_text().splitlines()] == [corrected, again]


@pytest.mark.parametrize(
    "change,message",
    [
        ({"text": TEXTS[0].replace("Anna", "Anne"), "tokens": None}, "not those of the question"),
        ({"complete": ["LOC"], "spans": []}, "not those of the question"),
        (
            {
                "spans": [
                    {"start": 0, "end": 4, "label": "PER"},
                    {"start": 0, "end": 9, "label": "LOC"},
                ]
            },
            "overlap",
        ),
        ({"spans": [{"start": 0, "end": 3, "label": "PER"}]}, "not on token boundaries"),
        ({"spans": [{"start": 0, "end": 4, "label": "MISC"}]}, "'MISC'"),
    ],
)
def test_a_correction_altered_overlapping_or_off_the_tokens_gets_a_422(workdir, change, message):
    with _client(parse_args(ruler_argv(workdir), CorrectSettings)) as client:
        task = client.get("/api/questions?session=a&n=1").json()["tasks"][0]
        r = client.post("/api/answers?session=a", json={"answers": [dict(task, answer="accept", **change)]})
        assert r.status_code == 422 and message in r.json()["error"], r.text
        assert client.get("/api/progress?session=a").json()["dataset_answers"] == 0


@pytest.mark.parametrize("update", [False, True])
def test_only_accepted_corrections_are_learned_and_only_with_update(workdir, update):
    settings = parse_args(ruler_argv(workdir, *(["--update"] if update else [])), CorrectSettings)
    with _client(settings) as client:
        tasks = client.get("/api/questions?session=a&n=1").json()["tasks"]
        for answer in ["accept", "reject", "ignore"]:
            r = client.post("/api/answers?session=a&next=1", json={"answers": [dict(tasks[0], answer=answer)]})
            assert r.status_code == 200 and r.json()["stored"] == 1, r.text
            tasks = r.json()["tasks"]
        progress = _progress_after_learning(client, 1 if update else 0)
        assert progress["learned"] == (1 if update else 0) and progress["dataset_answers"] == 3
    stored = _stored(workdir)
    assert [s["answer"] for s in stored] == ["accept", "reject", "ignore"]
    assert all(s["complete"] == ["LOC", "PER"] for s in stored)
    # The model saved on close learned the accepted text: its entity's
    # probability up, and by more than another span's of its label (from an
    # untrained model's tiny probabilities, one step lifts every span).
    before, after = _lookup(workdir / "ruler", TEXTS[0]), _lookup(workdir / "out" / "model", TEXTS[0])
    paris, flew = (3, 4, "LOC"), (1, 2, "LOC")
    if update:
        assert after(*paris) - before(*paris) > max(0.0, after(*flew) - before(*flew))
    else:
        assert (after(*paris), after(*flew)) == pytest.approx((before(*paris), before(*flew)), abs=1e-6)


def _lookup(model: Path, text: str):
    """The probability of any (start token, end token, label) of `text` by the model saved in `model`."""
    import spacy

    from spacy_binary_ner.loop import BinaryNERProposer

    nlp = spacy.load(model)
    return BinaryNERProposer(nlp.get_pipe("binary_ner"))([nlp.make_doc(text)])[0][1]


def test_teach_turns_a_question_into_a_correction_of_its_whole_text(workdir):
    settings = parse_args(ruler_argv(workdir, "--queue-size", "4"))
    with _client(settings) as client:
        question = client.get("/api/questions?session=a&n=4").json()["tasks"][0]
        r = client.post("/api/correction?session=a", json={"task": question})
        assert r.status_code == 200, r.text
        task = r.json()["task"]
        asked = question["spans"][0]
        entities = dict(_spans_by_offsets(task))
        # The model's entities, the question's span winning where they overlap.
        assert entities[(asked["start"], asked["end"])] == asked["label"]
        for (start, end), label in _ruler_entities(question["text"]).items():
            if end <= asked["start"] or start >= asked["end"]:
                assert entities[(start, end)] == label
        assert task["complete"] == ["LOC", "PER"] and task["_task_hash"] != question["_task_hash"]
        # Altered, it is not corrected.
        bad = client.post("/api/correction?session=a", json={"task": dict(question, text=question["text"] + "!")})
        assert bad.status_code == 422
        r = client.post("/api/answers?session=a&next=4", json={"answers": [dict(task, answer="accept")]})
        assert r.status_code == 200, r.text
        # The question is closed with its text's correction.
        assert question["_task_hash"] not in [t["_task_hash"] for t in r.json()["tasks"]]
        progress = _progress_after_learning(client, 1)
        assert progress["learned"] == 1
    (stored,) = _stored(workdir)
    assert stored["complete"] == ["LOC", "PER"] and stored["text"] == question["text"]


def _stand_in(doc: Doc, answers: Sequence[Record], labels: Optional[Sequence[str]], threshold: Optional[float]):
    """The accepted spans (a stand-in for `consistent.best_consistent`, whose
    own tests are its module's)."""
    spans = []
    for record in answers:
        for start, end, label in record.spans:
            span = doc.char_span(start, end, label=label)
            if record.answer == "accept" and span is not None:
                spans.append(span)
    return sorted(spans)


def test_silver_to_gold_serves_each_answered_text_once_with_the_consistent_analysis(workdir, monkeypatch):
    monkeypatch.setattr(teach, "best_consistent", lambda: _stand_in)
    binary = [
        {"text": TEXTS[1], "spans": [{"start": 10, "end": 14, "label": "LOC"}], "answer": "accept"},
        {"text": TEXTS[0], "spans": [{"start": 0, "end": 4, "label": "PER"}], "answer": "reject"},
        {"text": TEXTS[1], "spans": [{"start": 0, "end": 4, "label": "PER"}], "answer": "accept"},
        {"text": TEXTS[2], "spans": [{"start": 7, "end": 11, "label": "PER"}], "answer": "ignore"},
    ]
    argv = ["binary", *ruler_argv(workdir, "--allow-new-tasks", db="in.sqlite3")[1:]]
    teacher = build_teacher(parse_args(argv, CorrectSettings))
    with TestClient(create_app(teacher, on_shutdown=teacher.close)) as client:
        r = client.post("/api/answers?session=a", json={"answers": binary})
        assert r.status_code == 200 and r.json()["stored"] == 4, r.text
    argv = ["binary", "gold", str(workdir / "ruler"), *ruler_argv(workdir, db="in.sqlite3")[3:]]
    settings = parse_args(argv, SilverSettings)
    assert settings.dataset_in == "binary" and settings.dataset == "gold" and settings.source is None
    with _client(settings) as client:
        assert client.get("/api/info").json()["view"] == "correct"
        asked = _all_questions(client)
    # The texts in the order first answered; the one only ignored is not asked.
    assert [task["text"] for task in asked] == [TEXTS[1], TEXTS[0]]
    assert _spans(asked[0]) == [("Omar", "PER"), ("Rome", "LOC")]
    assert _spans(asked[1]) == []
    assert all(task["meta"]["source"] == "silver" and task["complete"] == ["LOC", "PER"] for task in asked)
    assert [s["_input_hash"] for s in _stored(workdir, "gold", "in.sqlite3")] == [t["_input_hash"] for t in asked]


def test_every_correct_and_silver_setting_is_a_flag_or_an_argument():
    for cls, positionals in (
        (CorrectSettings, ["dataset", "pipeline", "source"]),
        (SilverSettings, ["dataset_in", "dataset", "pipeline"]),
    ):
        parser = make_parser("x", "", cls)
        given = [a for a in parser._actions if a.dest != "help"]
        assert [a.dest for a in given if not a.option_strings] == positionals
        shown = {a.dest for a in given} | set(cls.hidden)
        assert shown == {f.name for f in dataclasses.fields(cls)}
        assert "--sorter" not in parser.format_help() and "--update" in parser.format_help()


def _progress_after_learning(client: TestClient, n: int) -> Dict:
    import time

    deadline = time.monotonic() + 60
    while True:
        progress = client.get("/api/progress?session=a").json()
        if progress["learned"] >= n or time.monotonic() > deadline:
            time.sleep(0.3 if n == 0 else 0)
            return client.get("/api/progress?session=a").json()
        time.sleep(0.05)


def _stored(workdir: Path, dataset: str = "ds", db: str = "db.sqlite3") -> List[Dict]:
    from spacy_binary_ner.server.storage import Storage

    storage = Storage(f"sqlite:///{workdir / db}")
    try:
        return [s.task for s in storage.iter_answers(dataset)]
    finally:
        storage.close()


def _spans_by_offsets(task: Dict):
    return [((s["start"], s["end"]), s["label"]) for s in task["spans"]]


def _ruler_entities(text: str) -> Dict:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(PATTERNS)
    return {(e.start_char, e.end_char): e.label_ for e in nlp(text).ents if e.label_ in ("LOC", "PER")}


def test_silver_to_gold_needs_an_existing_database_two_datasets_and_answers(workdir, capsys):
    def exit_status(*argv: str) -> int:
        with pytest.raises(SystemExit) as exited:
            cli(["silver-to-gold", *argv])
        return exited.value.code

    tail = [str(workdir / "ruler"), "--label", "LOC", "--db"]
    assert exit_status("binary", "gold", *tail, str(workdir / "none.sqlite3")) == 2
    assert "no SQLite file" in capsys.readouterr().err and not (workdir / "none.sqlite3").exists()
    (workdir / "db.sqlite3").touch()
    assert exit_status("binary", "binary", *tail, str(workdir / "db.sqlite3")) == 2
    assert "must not be DATASET_IN" in capsys.readouterr().err
    assert cli(["silver-to-gold", "binary", "gold", *tail, str(workdir / "db.sqlite3")]) == 1
    assert "the dataset 'binary'" in capsys.readouterr().err


def test_a_correction_closes_and_skips_every_question_about_its_text():
    from spacy_binary_ner.server.book import QuestionBook

    def question(task_hash: int, text: int) -> Dict:
        return {"_task_hash": task_hash, "_input_hash": text}

    book = QuestionBook(4)
    for task in (question(1, 10), question(2, 20), question(3, 10), question(4, 30)):
        book.add(task)
    assert [t["_task_hash"] for t in book.top_up("a", 2)] == [1, 2]
    correction = dict(question(99, 10), complete=["LOC"], answer="accept")
    book.record("a", [("k", correction)], [(1, True)])
    # Question 1 (its text) is closed, question 3 (queued, its text) skipped.
    assert [t["_task_hash"] for t in book.top_up("a", 2)] == [2, 4]
    assert book.n_answered_before == 1
