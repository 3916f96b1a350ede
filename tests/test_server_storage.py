"""The answer store on SQLite and, where SBN_TEST_POSTGRES_URL is set, on PostgreSQL."""

import os
import threading
import uuid

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed: pip install '.[server]'")

from spacy_binary_ner.data import records_to_examples  # noqa: E402
from spacy_binary_ner.loop import set_hashes  # noqa: E402
from spacy_binary_ner.server.storage import Storage, database_url, write_jsonl  # noqa: E402

POSTGRES_ENV = "SBN_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path):
    if request.param == "sqlite":
        url = database_url(str(tmp_path / "answers.sqlite3"))
    else:
        url = os.environ.get(POSTGRES_ENV)
        if not url:
            pytest.skip(
                f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://sbn:sbn@127.0.0.1:5432/sbn_test)"
            )
        pytest.importorskip("psycopg")
    store = Storage(url)
    store.test_dataset = f"t-{uuid.uuid4().hex[:12]}"
    yield store
    for dataset in list(store.datasets()):
        if dataset.startswith(store.test_dataset):
            store.drop(dataset)
    store.close()


def task(text: str, start: int, end: int, answer: str, label: str = "LOC") -> dict:
    return set_hashes({"text": text, "spans": [{"start": start, "end": end, "label": label}], "answer": answer})


def test_sqlite_is_in_wal_mode(tmp_path):
    store = Storage(database_url(str(tmp_path / "a.sqlite3")))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_add_is_idempotent_per_key_and_keeps_order(storage):
    ds = storage.test_dataset
    first = storage.add(
        ds, "a", [("k1", task("I like Paris .", 7, 12, "accept")), ("k2", task("Go to Rome .", 6, 10, "reject"))]
    )
    assert [new for _, new in first] == [True, True] and first[0][0] < first[1][0]
    again = storage.add(
        ds, "b", [("k2", task("Go to Rome .", 6, 10, "accept")), ("k3", task("Oslo .", 0, 4, "accept"))]
    )
    assert again[0] == (first[1][0], False) and again[1][1] is True
    stored = list(storage.iter_answers(ds, batch=1))
    assert [s.key for s in stored] == ["k1", "k2", "k3"]
    assert stored[1].task["answer"] == "reject" and stored[1].session == "a"
    assert storage.count(ds) == 3 and storage.count(ds, session="b") == 1
    assert storage.count(ds + "-other") == 0


def test_latest_answer_per_task_wins_and_reads_back(storage, tmp_path):
    ds = storage.test_dataset
    storage.add(ds, "a", [("1", task("I like Paris .", 7, 12, "reject"))])
    storage.add(ds, "a", [("2", task("Go to Rome .", 6, 10, "accept"))])
    storage.add(ds, "a", [("3", task("I like Paris .", 7, 12, "accept"))])
    latest = storage.latest(ds)
    assert [s.task["answer"] for s in latest] == ["accept", "accept"]
    assert [s.key for s in latest] == ["3", "2"]
    assert [s.key for s in storage.latest(ds, by_last=True)] == ["2", "3"]
    inputs, tasks = storage.hashes(ds)
    assert len(inputs) == 2 and len(tasks) == 2
    assert write_jsonl(latest, tmp_path / "out.jsonl") == 2
    import spacy

    from spacy_binary_ner.data import iter_jsonl

    examples = records_to_examples(spacy.blank("en"), list(iter_jsonl(tmp_path / "out.jsonl")), labels=["LOC"])
    assert sorted(e.text for eg in examples for e in eg.reference.ents) == ["Paris", "Rome"]


def test_stats_and_drop(storage):
    ds = storage.test_dataset
    storage.add(
        ds, "a", [("1", task("I like Paris .", 7, 12, "accept")), ("2", task("I like Paris .", 0, 1, "reject", "PER"))]
    )
    storage.add(ds, "b", [("3", task("Go .", 0, 2, "ignore"))])
    stats = storage.stats(ds)
    assert stats["answers stored"] == 3 and stats["tasks answered"] == 3
    assert stats["by answer"] == {"accept": 1, "reject": 1, "ignore": 1}
    assert stats["by label"] == {"LOC": {"accept": 1, "ignore": 1}, "PER": {"reject": 1}}
    assert stats["by session"] == {"a": {"accept": 1, "reject": 1}, "b": {"ignore": 1}}
    assert storage.datasets()[ds] == 3
    assert storage.drop(ds) == 3 and storage.count(ds) == 0


def test_concurrent_writers_store_every_answer_once(storage):
    ds = storage.test_dataset
    errors = []

    def writer(w: int) -> None:
        try:
            for i in range(40):
                # Every key is written twice, by two threads.
                key = f"{(w // 2)}-{i}"
                storage.add(ds, f"s{w}", [(key, task(f"Text {key} in Rome .", 11 + len(key), 15 + len(key), "accept"))])
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    keys = [s.key for s in storage.iter_answers(ds)]
    assert len(keys) == len(set(keys)) == 4 * 40


def test_the_server_on_postgresql_resumes_without_asking_again(tmp_path):
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://sbn:sbn@127.0.0.1:5432/sbn_test)")
    pytest.importorskip("starlette")
    from spacy_binary_ner.server.teach import build_teacher, parse_args

    from .server_util import toy_records, write_config, write_jsonl

    write_config(tmp_path / "small.cfg")
    write_jsonl(tmp_path / "source.jsonl", [{"text": r["text"]} for r in toy_records(100)])
    dataset = f"t-{uuid.uuid4().hex[:12]}"
    argv = [
        dataset,
        str(tmp_path / "small.cfg"),
        str(tmp_path / "source.jsonl"),
        "--label",
        "LOC",
        "--db",
        url,
        "--output",
        str(tmp_path / "out"),
    ]
    teacher = build_teacher(parse_args(argv))
    try:
        asked = []
        for i in range(12):
            (question,) = teacher.questions("a", 1)
            asked.append(question["_task_hash"])
            teacher.answer("a", [teacher.validate(dict(question, answer="reject", key=f"k{i}"))])
        assert teacher.wait_learned()
        teacher.close()
        again = build_teacher(parse_args(argv))
        try:
            assert again.storage.count(dataset) == 12
            questions = again.questions("a", 10)
            assert questions and not {q["_task_hash"] for q in questions} & set(asked)
        finally:
            again.close(save=False)
    finally:
        teacher.storage.drop(dataset)
