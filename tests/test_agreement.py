"""Agreement figures against values worked out by hand."""

import random

import pytest

from spacy_binary_ner.agreement import (
    agreement_report,
    binary_agreement,
    cohen_kappa,
    correction_agreement,
    fleiss_kappa,
    format_report,
)


def _task(h, answer, label="NAME", start=0, end=2):
    return {"text": "t", "spans": [{"start": start, "end": end, "label": label}], "answer": answer, "_task_hash": h}


def test_cohen_kappa_worked_example():
    # 50 items: both yes 20, both no 15, A yes B no 5, A no B yes 10.
    # p_o = 35/50 = 0.7; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.4.
    pairs = [("y", "y")] * 20 + [("n", "n")] * 15 + [("y", "n")] * 5 + [("n", "y")] * 10
    kappa, why = cohen_kappa(pairs)
    assert kappa == pytest.approx(0.4) and why is None


def test_fleiss_kappa_worked_example():
    # 10 items, 14 raters, 5 categories: P = 0.378, P_e = 0.213, kappa = 0.210.
    rows = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    counts = [{str(j): n for j, n in enumerate(row) if n} for row in rows]
    kappa, why = fleiss_kappa(counts)
    assert kappa == pytest.approx(0.2099, abs=1e-4) and why is None


@pytest.mark.parametrize(
    "pairs,expected,why",
    [
        ([("accept", "accept"), ("reject", "reject")], 1.0, None),  # perfect agreement
        ([("accept", "accept")] * 3, None, "every answer is the same"),  # one answer only
        ([("accept", "reject"), ("reject", "accept")], -1.0, None),  # perfect disagreement
        ([], None, "no task in common"),
    ],
)
def test_cohen_kappa_edges(pairs, expected, why):
    kappa, reason = cohen_kappa(pairs)
    assert kappa == (pytest.approx(expected) if expected is not None else None)
    assert (reason is None) if why is None else (why in reason)


def test_fleiss_kappa_edges():
    assert fleiss_kappa([{"accept": 2}, {"reject": 3}]) == (pytest.approx(1.0), None)
    kappa, why = fleiss_kappa([{"accept": 2}, {"accept": 3}])
    assert kappa is None and "every answer is the same" in why
    assert fleiss_kappa([{"accept": 1}]) == (None, "no task has two answers")


def test_binary_agreement_per_label():
    answers = [
        ("alice", _task(1, "accept")),
        ("bob", _task(1, "accept")),
        ("alice", _task(2, "accept")),
        ("bob", _task(2, "reject")),
        ("alice", _task(3, "reject", "ORG")),
        ("bob", _task(3, "reject", "ORG")),
        ("carol", _task(3, "accept", "ORG")),
        ("alice", _task(4, "accept")),  # one session only: not counted
        ("bob", _task(5, "ignore")),
        ("carol", _task(5, "accept")),
    ]
    result = binary_agreement(answers)
    assert sorted(result) == ["NAME", "ORG"]
    name = result["NAME"]
    assert (name.tasks, name.answers, name.percent) == (2, 4, 0.5)
    # p_o = 0.5; alice 2 accepts, bob 1 accept 1 reject: p_e = (2*1 + 0*1) / 4 = 0.5; kappa 0.
    assert name.cohen == {"alice|bob": pytest.approx(0.0)} and name.cohen_tasks == {"alice|bob": 2}
    org = result["ORG"]
    # One task, three sessions: one agreeing pair of three.
    assert (org.tasks, org.answers, org.percent) == (1, 3, pytest.approx(1 / 3))
    assert set(org.cohen) == {"alice|bob", "alice|carol", "bob|carol"}
    assert org.cohen["alice|bob"] is None and any("alice|bob" in note for note in org.notes)


def test_later_answer_of_a_session_wins_and_ignore_withdraws():
    answers = [("a", _task(1, "accept")), ("b", _task(1, "reject")), ("b", _task(1, "accept"))]
    assert binary_agreement(answers)["NAME"].percent == 1.0
    answers.append(("b", _task(1, "ignore")))
    assert binary_agreement(answers)["NAME"].tasks == 0


def test_two_annotators_with_known_noise():
    """One oracle, and one that flips 10% of its answers: observed agreement
    about 0.9, chance about 0.5, so kappa about 0.8."""
    rng = random.Random(0)
    answers = []
    for h in range(2000):
        gold = "accept" if rng.random() < 0.5 else "reject"
        noisy = gold if rng.random() >= 0.1 else ("reject" if gold == "accept" else "accept")
        answers += [("oracle", _task(h, gold)), ("noisy", _task(h, noisy))]
    figures = binary_agreement(answers)["NAME"]
    assert figures.tasks == 2000
    assert 0.87 <= figures.percent <= 0.93
    assert 0.74 <= figures.cohen["noisy|oracle"] <= 0.86
    assert figures.fleiss == pytest.approx(figures.cohen["noisy|oracle"], abs=0.01)


def test_correction_agreement_span_f1():
    def fix(h, spans, answer="accept"):
        return {"text": "t", "spans": spans, "answer": answer, "complete": ["A", "B"], "_input_hash": h}

    a1 = [{"start": 0, "end": 2, "label": "A"}, {"start": 3, "end": 5, "label": "B"}]
    b1 = [{"start": 0, "end": 2, "label": "A"}, {"start": 3, "end": 5, "label": "A"}]
    answers = [
        ("a", fix(1, a1)),
        ("b", fix(1, b1)),
        ("a", fix(2, [])),
        ("b", fix(2, [])),
        ("a", fix(3, a1)),
        ("b", fix(3, b1, "reject")),  # an unusable text: not compared
        ("a", _task(9, "accept")),  # a binary answer: not a correction
    ]
    result = correction_agreement(answers)
    assert result.texts == {"a|b": 2}
    # One span of two agrees on each side: 2 * 1 / 4.
    assert result.f1 == {"a|b": 0.5}
    # A: a has 1, b has 2, 1 shared: 2/3; B: a has 1, b none: 0.
    assert result.by_label == {"A": {"a|b": pytest.approx(2 / 3)}, "B": {"a|b": 0.0}}


def test_report_is_json_ready_and_printable():
    answers = [("a", _task(1, "accept")), ("b", _task(1, "accept"))]
    report = agreement_report(answers)
    assert report["binary"]["NAME"]["fleiss"] is None
    text = format_report(report)
    assert "NAME  1  1.000  n/a" in text and "every answer is the same" in text
    assert "(no text corrected by two sessions)" in text


def test_db_stats_agreement_reads_the_database(tmp_path, capsys):
    import json

    from spacy_binary_ner.__main__ import main as cli
    from spacy_binary_ner.server.storage import Storage

    db = tmp_path / "answers.sqlite3"
    storage = Storage(f"sqlite:///{db}")
    for session, answers in (("a", ["accept", "accept", "reject"]), ("b", ["accept", "reject", "reject"])):
        items = [(f"{session}-{h}", {**_task(h, answer), "_input_hash": h}) for h, answer in enumerate(answers)]
        storage.add("ds", session, items)
    storage.close()
    assert cli(["db-stats", "ds", "--db", str(db), "--agreement", "--json"]) == 0
    name = json.loads(capsys.readouterr().out)["binary"]["NAME"]
    # p_o = 2/3; a: 2 accepts of 3, b: 1 of 3; p_e = (2 + 2) / 9; kappa = (2/3 - 4/9) / (5/9) = 0.4.
    assert (name["tasks"], name["percent"]) == (3, pytest.approx(2 / 3))
    assert name["cohen"] == {"a|b": pytest.approx(0.4)}
    assert cli(["db-stats", "ds", "--db", str(db), "--agreement"]) == 0
    assert "NAME  3  0.667" in capsys.readouterr().out
