"""Two sessions answer the same questions differently (`--answers-per-question
2`), then `review` in a real browser (Debian's Chromium driven by Playwright)
shows exactly the tasks they disagree on, the first version selected on a
tie; the reviewer changes one, takes it back and confirms again; `db-out`
of DATASET_OUT holds one answer per task with the reviewer's choices."""

import json
import os
from collections import defaultdict

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install playwright")

from spacy_binary_ner.__main__ import main as cli  # noqa: E402
from spacy_binary_ner.server.app import create_app  # noqa: E402
from spacy_binary_ner.server.review import Reviewer  # noqa: E402
from spacy_binary_ner.server.storage import Storage  # noqa: E402
from spacy_binary_ner.server.teach import build_teacher  # noqa: E402

from .server_util import ThreadServer, free_port, teach_args, toy_records, write_config, write_jsonl  # noqa: E402
from .test_server_browser import CHROMIUM  # noqa: E402
from .test_server_browser import browser as _browser  # noqa: E402

browser = _browser  # the fixture: Debian's Chromium

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")

# Per session, the keys pressed for the first four questions.
KEYS = {"alice": "aaaa", "bob": "axax"}


def _shown(page) -> str:
    return page.locator("#text").get_attribute("data-task-hash")


def _answer_by_keys(page, keys: str) -> list:
    expect = sync_api.expect
    shown = []
    for key in keys:
        expect(page.locator("#text")).not_to_have_attribute("data-task-hash", "")
        shown.append(_shown(page))
        page.keyboard.press(key)
        expect(page.locator("#history li").first).to_have_attribute("data-task-hash", shown[-1])
    return shown


def test_two_sessions_disagree_and_the_review_keeps_the_reviewers_choices(tmp_path, browser):
    expect = sync_api.expect
    write_config(tmp_path / "small.cfg")
    write_jsonl(tmp_path / "source.jsonl", [{"text": r["text"]} for r in toy_records(40)])
    url = f"sqlite:///{tmp_path / 'answers.sqlite3'}"
    teacher = build_teacher(teach_args(tmp_path, "--answers-per-question", "2", queue_size=4))
    shown = {}
    with ThreadServer(create_app(teacher, on_shutdown=teacher.close), free_port()) as server:
        for session, keys in KEYS.items():
            page = browser.new_page()
            page.goto(f"{server.url}/?session={session}")
            page.wait_for_selector("body[data-ready='1']")
            shown[session] = _answer_by_keys(page, keys)
            # The progress counts the questions by their answers: alice's four have 1, then 2 after bob's.
            counts = "1: 4, 2: 0" if session == "alice" else "1: 0, 2: 4"
            expect(page.locator("#p-by-answers")).to_have_text(counts, timeout=10000)
            expect(page.locator("#p-answers")).to_be_visible()
            page.close()
    # Both got the same four questions, in the same order.
    assert shown["alice"] == shown["bob"] and len(set(shown["alice"])) == 4
    by_task = defaultdict(dict)
    for stored in Storage(url).iter_answers("ds"):
        by_task[str(stored.task["_task_hash"])][stored.session] = stored.task["answer"]
    assert {h: by_task[h] for h in shown["alice"]} == {
        h: {"alice": "accept", "bob": "accept" if k == "a" else "reject"} for h, k in zip(shown["alice"], KEYS["bob"])
    }
    disagree = [h for h, k in zip(shown["alice"], KEYS["bob"]) if k == "x"]

    reviewer = Reviewer(url, "ds", "reviewed")
    with ThreadServer(create_app(reviewer, on_shutdown=reviewer.close), free_port()) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/?session=rev")
        page.wait_for_selector("body[data-ready='1']")
        expect(page.locator("body")).to_have_attribute("data-view", "review")
        expect(page.locator("#p-total")).to_have_text("2")
        # The first disagreement: alice's accept (a tie: the first given) selected; the reviewer picks bob's.
        expect(page.locator("#text")).to_have_attribute("data-task-hash", disagree[0])
        versions = page.locator("#versions li")
        expect(versions).to_have_count(2)
        expect(versions.nth(0)).to_have_class("selected")
        expect(versions.nth(0).locator(".sessions")).to_have_text("alice")
        expect(versions.nth(1).locator(".sessions")).to_have_text("bob")
        page.keyboard.press("2")
        expect(versions.nth(1)).to_have_class("selected")
        page.keyboard.press("a")
        expect(page.locator("#text")).to_have_attribute("data-task-hash", disagree[1])
        # Backspace brings the choice back, still on bob's version; a click picks alice's, `a` confirms.
        page.keyboard.press("Backspace")
        expect(page.locator("#text")).to_have_attribute("data-task-hash", disagree[0])
        expect(versions.nth(1)).to_have_class("selected")
        versions.nth(0).click()
        page.keyboard.press("a")
        page.keyboard.press("Backspace")
        expect(versions.nth(0)).to_have_class("selected")
        page.keyboard.press("2")
        page.keyboard.press("a")
        # The second: kept as selected.
        expect(page.locator("#text")).to_have_attribute("data-task-hash", disagree[1])
        expect(versions.nth(0)).to_have_class("selected")
        page.keyboard.press("a")
        expect(page.locator("#text")).to_have_text("Nothing left to review.")
        expect(page.locator("#history li")).to_have_count(2)
        expect(page.locator("#p-reviewed")).to_have_text("2")
    out = tmp_path / "reviewed.jsonl"
    assert cli(["db-out", "reviewed", str(out), "--db", url]) == 0
    lines = out.read_text().splitlines()
    records = {str(r["_task_hash"]): r for r in map(json.loads, lines)}
    assert len(lines) == len(records) == 4
    answered_by_both = [h for h, sessions in by_task.items() if len(sessions) == 2]
    assert sorted(records) == sorted(answered_by_both)
    assert {h: records[h]["answer"] for h in shown["alice"]} == dict(
        zip(shown["alice"], ["accept", "reject", "accept", "accept"])
    )
    assert records[disagree[0]]["meta"]["review"]["sessions"] == ["bob"]
    assert records[disagree[1]]["meta"]["review"]["sessions"] == ["alice"]
    assert {records[h]["meta"]["review"]["by"] for h in disagree} == {"reviewer"}


def test_corrections_of_one_text_are_versions_with_their_spans(tmp_path, browser):
    # An emoji outside the BMP first: the page counts UTF-16 units, offsets are code points.
    text = "😀 Anna met Tom in Oslo ."
    complete = {"text": text, "complete": ["LOC", "PER"], "_input_hash": 5, "answer": "accept"}
    given = {
        "a": [(2, 6, "PER"), (18, 22, "LOC")],
        "b": [(2, 6, "PER"), (11, 14, "PER"), (18, 22, "LOC")],
        "c": [(18, 22, "LOC"), (2, 6, "PER")],
    }
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    storage = Storage(url)
    for i, (session, spans) in enumerate(given.items()):
        task = dict(complete, _task_hash=10 + i, spans=[{"start": s, "end": e, "label": lab} for s, e, lab in spans])
        storage.add("in", session, [(session, task)])
    storage.close()
    reviewer = Reviewer(url, "in", "out")
    with ThreadServer(create_app(reviewer, on_shutdown=reviewer.close), free_port()) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/?session=rev")
        page.wait_for_selector("body[data-ready='1']")
        versions = page.locator("#versions li")
        expect = sync_api.expect
        expect(versions).to_have_count(2)
        # a and c marked the same spans (in another order): the majority, selected.
        expect(versions.nth(0)).to_have_class("selected")
        expect(versions.nth(0).locator(".sessions")).to_have_text("a, c")
        marks = versions.nth(1).locator(".version-text mark")
        expect(marks).to_have_text(["AnnaPER", "TomPER", "OsloLOC"])
        page.keyboard.press("2")
        page.keyboard.press("a")
        expect(page.locator("#text")).to_have_text("Nothing left to review.")
    stored = list(Storage(url).latest("out"))
    assert len(stored) == 1 and stored[0].task["meta"]["review"]["sessions"] == ["b"]
    assert stored[0].task["spans"] == [{"start": s, "end": e, "label": lab} for s, e, lab in given["b"]]
