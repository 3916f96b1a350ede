"""`teach --task textcat`'s page in a real browser: Debian's Chromium driven by Playwright."""

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install playwright")

from spacy_binary_ner.__main__ import main as cli  # noqa: E402
from spacy_binary_ner.server.app import create_app  # noqa: E402
from spacy_binary_ner.server.teach import build_teacher, parse_args  # noqa: E402

from .server_util import (  # noqa: E402
    TOPICS,
    ThreadServer,
    free_port,
    textcat_argv,
    topic_records,
    write_jsonl,
    write_textcat_config,
)
from .test_server_browser import ARGS, CHROMIUM  # noqa: E402

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"no Chromium at {CHROMIUM}: apt-get install chromium (Playwright cannot download its own browser here)",
)
LABELS = list(TOPICS)
# Chinese, an emoji outside the BMP and a tag: shown as text, whole.
SPECIAL = ["😀 北京队赢了比赛", "<script>window.pwned = 1</script> the bank raised its price"]


@pytest.fixture
def browser(tmp_path):
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=ARGS, headless=True
        )
        try:
            yield context
        finally:
            context.close()


@contextmanager
def served(browser, workdir: Path, *extra: str, exclusive: bool = True):
    write_textcat_config(workdir / "textcat.cfg", exclusive=exclusive)
    records = topic_records(20)
    write_jsonl(workdir / "source.jsonl", [{"text": t} for t in SPECIAL + [r["text"] for r in records]])
    write_jsonl(workdir / "gold.jsonl", records)
    settings = parse_args(textcat_argv(workdir, "--sorter", "none", "--queue-size", "4", *extra))
    teacher = build_teacher(settings)
    with ThreadServer(create_app(teacher, on_shutdown=teacher.close), free_port()) as server:
        page = browser.new_page()
        page.goto(server.url + "/?session=alice")
        page.wait_for_selector("body[data-ready='1']")
        yield teacher, page


def db_out(workdir: Path):
    out = workdir / "out.jsonl"
    assert cli(["db-out", "ds", str(out), "--db", str(workdir / "answers.sqlite3")]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()]


def test_label_questions_answered_a_x_a_and_db_out_holds_exactly_them(tmp_path, browser):
    expect = sync_api.expect
    given = []
    with served(browser, tmp_path, "--eval", str(tmp_path / "gold.jsonl")) as (teacher, page):
        for key in ["a", "x", "a"]:
            text = page.locator("#text")
            expect(text).not_to_have_attribute("data-task-hash", "")
            task_hash = int(text.get_attribute("data-task-hash"))
            task = teacher.book.open["alice"][task_hash]
            assert text.inner_text() == task["text"]
            expect(page.locator("#label")).to_have_text(task["label"])
            expect(page.locator("#options button")).to_have_count(0)
            page.keyboard.press(key)
            given.append({"text": task["text"], "label": task["label"], "answer": {"a": "accept", "x": "reject"}[key]})
            expect(page.locator("#history li").first).to_have_attribute("data-task-hash", str(task_hash))
        # Backspace takes the last answer back; space ignores it instead.
        page.keyboard.press("Backspace")
        expect(page.locator("#label")).to_have_text(given[-1]["label"])
        page.keyboard.press("Space")
        given[-1]["answer"] = "ignore"
        expect(page.locator("#history li").first.locator(".answer")).to_have_text("ignore")
        page.wait_for_function("document.querySelector('#p-session').textContent === '4'")
        expect(page.locator("#p-f1-name")).to_have_text("accuracy")
        expect(page.locator("#p-f1")).to_have_text(re.compile(r"^[01]\.[0-9]{3}$"))
        assert page.evaluate("window.pwned") is None
    assert [s["text"] for s in given[:2]] == SPECIAL
    latest = {}
    for record in db_out(tmp_path):
        latest[record["_task_hash"]] = {k: record[k] for k in ("text", "label", "answer")}
    assert list(latest.values()) == given


def test_a_choice_question_answered_with_number_keys(tmp_path, browser):
    expect = sync_api.expect
    with served(browser, tmp_path, "--choice") as (teacher, page):
        options = page.locator("#options button")
        expect(options).to_have_count(len(LABELS))
        expect(page.locator("#options button.selected")).to_have_count(1)
        expect(page.locator("#label")).to_have_text("")
        first = int(page.locator("#text").get_attribute("data-task-hash"))
        # Exclusive: a number selects exactly its option.
        page.keyboard.press("3")
        expect(page.locator("#options button.selected")).to_have_text(f"3 {LABELS[2]}")
        page.keyboard.press("1")
        expect(page.locator("#options button.selected")).to_have_text(f"1 {LABELS[0]}")
        page.keyboard.press("a")
        expect(page.locator("#history li").first).to_have_attribute("data-task-hash", str(first))
        second = int(page.locator("#text").get_attribute("data-task-hash"))
        page.keyboard.press("2")
        page.keyboard.press("x")
        expect(page.locator("#history li").first).to_have_attribute("data-task-hash", str(second))
        page.wait_for_function("document.querySelector('#p-session').textContent === '2'")
    records = db_out(tmp_path)
    assert [(r["text"], r["accept"], r["answer"]) for r in records] == [
        (SPECIAL[0], [LABELS[0]], "accept"),
        (SPECIAL[1], [LABELS[1]], "reject"),
    ]
    assert all([o["id"] for o in r["options"]] == LABELS for r in records)


def test_multi_label_number_keys_toggle(tmp_path, browser):
    expect = sync_api.expect
    with served(browser, tmp_path, "--choice", exclusive=False) as (teacher, page):
        expect(page.locator("#options button")).to_have_count(len(LABELS))
        expect(page.locator("#p-f1-name")).to_have_text("macro-F1")
        task = teacher.book.open["alice"][int(page.locator("#text").get_attribute("data-task-hash"))]
        before = set(task["accept"])
        expect(page.locator("#options button.selected")).to_have_count(len(before))
        for key in ["1", "2", "3", "2"]:
            page.keyboard.press(key)
        page.keyboard.press("a")
        expect(page.locator("#history li")).to_have_count(1)
        page.wait_for_function("document.querySelector('#p-session').textContent === '1'")
    # The first and third options toggled (the second twice), in the options' order.
    toggled = before ^ {LABELS[0], LABELS[2]}
    stored = db_out(tmp_path)[0]
    assert stored["answer"] == "accept" and stored["accept"] == [label for label in LABELS if label in toggled]
