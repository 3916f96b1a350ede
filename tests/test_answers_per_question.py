"""`--answers-per-question N`: the book hands each question to N different
sessions, whichever come, with leases; `/api/queue` reads the book without
taking anything."""

from typing import List

import pytest

from spacy_binary_ner.server.book import QuestionBook


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _add(book: QuestionBook, n: int) -> None:
    for h in range(n):
        book.add({"_task_hash": h, "_input_hash": 100 + h, "text": f"t{h}"})


def _hashes(tasks) -> List[int]:
    return [t["_task_hash"] for t in tasks]


def _answer(book: QuestionBook, session: str, tasks) -> None:
    book.record(session, [(f"{session}-{t['_task_hash']}", t) for t in tasks], [(1, True)] * len(tasks))


def test_each_question_goes_to_two_different_sessions_whichever_come():
    book = QuestionBook(4, answers_per_question=2)
    _add(book, 4)
    assert _hashes(book.top_up("a", 2)) == [0, 1]
    # b gets a's questions first (each still has a slot), then c the next ones.
    assert _hashes(book.top_up("b", 2)) == [0, 1]
    assert _hashes(book.top_up("c", 2)) == [2, 3]
    assert book.shared.keys() == {2, 3} and not book.ready
    # a never gets a question twice: only what c holds is left for it.
    _answer(book, "a", book.top_up("a", 2))
    assert _hashes(book.top_up("a", 2)) == [2, 3] and not book.shared
    assert book.pop_taken() == 4


def test_answers_close_a_question_for_the_answering_session_only():
    book = QuestionBook(4, answers_per_question=2)
    _add(book, 1)
    a, b = book.top_up("a", 1), book.top_up("b", 1)
    _answer(book, "a", a)
    assert _hashes(book.open["b"].values()) == [0]
    assert book.answer_counts() == {1: 1, 2: 0}
    _answer(book, "b", b)
    assert book.answer_counts() == {1: 0, 2: 1}
    assert book.finished("c", exhausted=True) and book.top_up("c", 1) == []


def test_an_expired_lease_frees_the_slot_for_another_session():
    clock = Clock()
    book = QuestionBook(4, lease=10, answers_per_question=2, clock=clock)
    _add(book, 1)
    _answer(book, "a", book.top_up("a", 1))
    book.top_up("b", 1)
    assert book.top_up("c", 1) == [] and not book.finished("c", exhausted=False)
    clock.now = 11
    # b's lease ran out; a answered it already, so the slot waits for c.
    assert book.top_up("a", 1) == [] and book.snapshot()["shared"][0]["sessions"] == ["a"]
    assert _hashes(book.top_up("c", 1)) == [0] and 0 not in book.open["b"]
    assert book.n_reassigned == 1 and not book.shared


def test_one_answer_per_question_is_unchanged():
    book = QuestionBook(4)
    _add(book, 2)
    assert _hashes(book.top_up("a", 1)) == [0] and _hashes(book.top_up("b", 1)) == [1]
    assert not book.shared and book.answer_counts() == {1: 0}


def test_feed_overlap_overrides_answers_per_question():
    book = QuestionBook(4, feed_overlap=True, answers_per_question=3)
    assert book.answers_per_question == 1


def test_the_snapshot_takes_nothing_and_shows_leases():
    clock = Clock()
    book = QuestionBook(4, lease=30, answers_per_question=2, clock=clock)
    _add(book, 3)
    book.top_up("a", 1)
    clock.now = 10
    before = (list(book.ready), {s: dict(o) for s, o in book.open.items()}, dict(book.shared), book.target())
    state = book.snapshot()
    assert _hashes(state["ready"]) == [1, 2] and _hashes(state["shared"]) == [0]
    assert state["open"] == {"a": [dict(text="t0", _task_hash=0, _input_hash=100, lease_left=20.0)]}
    after = (list(book.ready), {s: dict(o) for s, o in book.open.items()}, dict(book.shared), book.target())
    assert before == after and book.pop_taken() == 1


@pytest.mark.parametrize("sessions", [2, 3, 7])
def test_many_sessions_answer_every_question_exactly_twice(sessions):
    book = QuestionBook(4, lease=5, answers_per_question=2, clock=Clock())
    _add(book, 30)
    given = {}
    for turn in range(200):
        session = f"s{turn % sessions}"
        for task in book.top_up(session, 2)[:1]:
            given.setdefault(task["_task_hash"], []).append(session)
            _answer(book, session, [task])
    assert sorted(given) == list(range(30))
    assert all(len(s) == 2 and len(set(s)) == 2 for s in given.values()), given


# Over HTTP, in-process ---------------------------------------------------------


def test_two_sessions_get_the_same_questions_and_the_queue_is_read_without_taking(tmp_path):
    pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
    from .test_server_api import _workdir, gold_answer, make_client

    workdir = _workdir(tmp_path)
    with make_client(workdir, "--answers-per-question", "2", "--lease", "60") as client:
        a = client.get("/api/questions?session=a&n=3").json()["tasks"]
        before = client.get("/api/queue").json()
        assert [t["_task_hash"] for t in before["shared"]] == [t["_task_hash"] for t in a]
        assert [t["_task_hash"] for t in before["open"]["a"]] == [t["_task_hash"] for t in a]
        assert all(0 < t["lease_left"] <= 60 for t in before["open"]["a"])
        # Reading the queue again and again takes nothing: the state is the same but for the leases' clocks.
        for _ in range(3):
            again = client.get("/api/queue").json()
        # The engine may still be filling the buffer: nothing was taken from it, more may have come.
        assert again["ready"][: len(before["ready"])] == before["ready"]
        assert _without_clocks(dict(again, ready=[])) == _without_clocks(dict(before, ready=[]))
        b = client.get("/api/questions?session=b&n=3").json()["tasks"]
        assert [t["_task_hash"] for t in b] == [t["_task_hash"] for t in a]
        c = client.get("/api/questions?session=c&n=3").json()["tasks"]
        assert not {t["_task_hash"] for t in c} & {t["_task_hash"] for t in a}
        for session, tasks in (("a", a[:2]), ("b", b[:1])):
            answers = [dict(t, answer=gold_answer(t), key=f"{session}{i}") for i, t in enumerate(tasks)]
            r = client.post(f"/api/answers?session={session}", json={"answers": answers})
            assert r.json()["stored"] == len(tasks)
        progress = client.get("/api/progress").json()
        assert progress["answers_per_question"] == 2 and progress["questions_by_answers"] == {"1": 1, "2": 1}
    with make_client(workdir, token="s3cret") as client:
        assert client.get("/api/queue").status_code == 401
        assert client.get("/api/queue?token=s3cret").status_code == 200


def test_after_a_restart_a_question_with_fewer_answers_is_offered_again(tmp_path):
    """Answered by one session of two before the stop: after the restart it
    goes to another session (and is accepted, its signature made anew), never
    to the one that answered it."""
    pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
    from .test_server_api import _workdir, gold_answer, make_client

    workdir = _workdir(tmp_path)
    with make_client(workdir, "--answers-per-question", "2") as client:
        a = client.get("/api/questions?session=a&n=2").json()["tasks"]
        answers = [dict(t, answer=gold_answer(t), key=f"a{i}") for i, t in enumerate(a)]
        assert client.post("/api/answers?session=a", json={"answers": answers}).json()["stored"] == 2
    with make_client(workdir, "--answers-per-question", "2") as client:
        assert client.get("/api/progress").json()["questions_by_answers"] == {"1": 2, "2": 0}
        again = client.get("/api/questions?session=a&n=4").json()["tasks"]
        assert not {t["_task_hash"] for t in again} & {t["_task_hash"] for t in a}
        b = client.get("/api/questions?session=b&n=2").json()["tasks"]
        assert [t["_task_hash"] for t in b] == [t["_task_hash"] for t in a]
        answers = [dict(t, answer=gold_answer(t), key=f"b{i}") for i, t in enumerate(b)]
        r = client.post("/api/answers?session=b", json={"answers": answers})
        assert r.status_code == 200 and r.json()["stored"] == 2, r.text
        assert client.get("/api/progress").json()["questions_by_answers"]["2"] == 2
        c = client.get("/api/questions?session=c&n=4").json()["tasks"]
        assert not {t["_task_hash"] for t in c} & {t["_task_hash"] for t in a}


def _without_clocks(state):
    return {**state, "open": {s: [dict(t, lease_left=0) for t in v] for s, v in state["open"].items()}}


@pytest.mark.parametrize("extra", [["--answers-per-question", "0"], ["--answers-per-question", "2", "--feed-overlap"]])
def test_answers_per_question_must_be_positive_and_not_with_feed_overlap(tmp_path, extra, capsys):
    pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
    from spacy_binary_ner.server.teach import parse_args

    from .server_util import teach_argv
    from .test_server_api import _workdir

    with pytest.raises(SystemExit) as exit_:
        parse_args(teach_argv(_workdir(tmp_path), *extra))
    assert exit_.value.code == 2 and "--answers-per-question" in capsys.readouterr().err
