"""The correct view in a real browser (Debian's Chromium driven by Playwright):
spans added by mouse selection, removed by a click, relabelled by a number
key; the stored complete annotation; a reload; undo; and teach's `e` key."""

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install playwright")

from spacy_binary_ner.__main__ import main as cli  # noqa: E402
from spacy_binary_ner.server.app import create_app  # noqa: E402
from spacy_binary_ner.server.settings import CorrectSettings, SilverSettings  # noqa: E402
from spacy_binary_ner.server.teach import build_teacher, parse_args  # noqa: E402

from .server_util import ThreadServer, free_port, ruler_argv, write_jsonl, write_ruler_pipeline  # noqa: E402
from .test_server_browser import CHROMIUM  # noqa: E402
from .test_server_browser import browser as _browser  # noqa: E402

browser = _browser  # the fixture: Debian's Chromium

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")

# Per language: the texts, the ruler's patterns, and for the first text the
# tokens to select (first, last), the span to remove and the span to relabel.
SAMPLES = {
    "en": {
        "texts": ["Anna flew to Paris today .", "We met Lena in Oslo .", "Tom stayed home ."],
        "patterns": [("PER", "Anna"), ("LOC", "Paris"), ("PER", "Lena"), ("LOC", "Oslo")],
        "select": (4, 4),  # today
        "remove": "Paris",
        "relabel": "Anna",
        # Anna relabelled LOC; "today" added, then relabelled PER.
        "expect": [(0, 4, "LOC", 0, 0), (19, 24, "PER", 4, 4)],
    },
    "zh": {
        # An emoji outside the BMP first: the page counts UTF-16, storage code points.
        "texts": ["😀 李明在北京工作。", "王芳去了上海。", "今天下雨。"],
        "patterns": [("PER", "李明"), ("LOC", "北京"), ("PER", "王芳"), ("LOC", "上海")],
        "select": (6, 7),  # 工作
        "remove": "北京",
        "relabel": "李明",
        "expect": [(2, 4, "LOC", 1, 2), (7, 9, "PER", 6, 7)],
    },
}


def _workdir(tmp_path: Path, lang: str) -> Path:
    sample = SAMPLES[lang]
    patterns = [{"label": label, "pattern": text} for label, text in sample["patterns"]]
    write_ruler_pipeline(tmp_path / "ruler", lang, patterns, ["LOC", "PER"])
    write_jsonl(tmp_path / "source.jsonl", [{"text": text} for text in sample["texts"]])
    return tmp_path


@contextlib.contextmanager
def _served(browser, settings, session: str) -> Iterator[Tuple[Any, Any]]:
    """A server for `settings` and a page of the session, loaded."""
    teacher = build_teacher(settings)
    with ThreadServer(create_app(teacher, on_shutdown=teacher.close), free_port()) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/?session={session}")
        page.wait_for_selector("body[data-ready='1']")
        yield teacher, page


def _mark(page, text: str):
    """The highlighted span whose tokens spell `text`."""
    for mark in page.locator("#text mark.ent").all():
        if "".join(mark.locator(".tok").all_inner_texts()) == text:
            return mark
    raise AssertionError(f"no span {text!r} on the page")


def _drag(page, first: int, last: int) -> None:
    """Select from token `first` to token `last` with the mouse."""
    a = page.locator(f"#text .tok[data-i='{first}']").bounding_box()
    b = page.locator(f"#text .tok[data-i='{last}']").bounding_box()
    page.mouse.move(a["x"] + 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] - 2, b["y"] + b["height"] / 2, steps=5)
    page.mouse.up()


def _db_out(workdir: Path, *extra: str) -> List[Dict]:
    out = workdir / "out.jsonl"
    assert cli(["db-out", "ds", str(out), "--db", str(workdir / "db.sqlite3"), *extra]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_correct_by_mouse_and_keys_then_reload_and_undo(tmp_path, browser, lang):
    expect = sync_api.expect
    sample = SAMPLES[lang]
    workdir = _workdir(tmp_path, lang)
    with _served(browser, parse_args(ruler_argv(workdir), CorrectSettings), "alice") as (_, page):
        expect(page.locator("body")).to_have_attribute("data-view", "correct")
        expect(page.locator("#labels .pick-label")).to_have_count(2)
        first = page.locator("#text").get_attribute("data-task-hash")
        assert (
            page.locator("#text").inner_text().replace("\n", "").replace("LOC", "").replace("PER", "")
            == (sample["texts"][0])
        )
        expect(page.locator("#text mark.ent")).to_have_count(2)
        # Remove one by a click, relabel one (select it by its tag, then 1 = LOC).
        _mark(page, sample["remove"]).locator(".tok").first.click()
        expect(page.locator("#text mark.ent")).to_have_count(1)
        _mark(page, sample["relabel"]).locator(".ent-label").click()
        page.keyboard.press("1")
        expect(_mark(page, sample["relabel"])).to_have_attribute("data-label", "LOC")
        # Add one by mouse selection (it gets the current label, LOC), then 2 = PER relabels it.
        _drag(page, *sample["select"])
        expect(page.locator("#text mark.ent")).to_have_count(2)
        page.keyboard.press("2")
        page.keyboard.press("a")
        expect(page.locator("#history li").first).to_have_attribute("data-task-hash", first)
        page.wait_for_function("document.querySelector('#p-session').textContent === '1'")
        (record,) = _db_out(workdir)
        expected = [
            {"start": s, "end": e, "label": label, "token_start": ts, "token_end": te}
            for s, e, label, ts, te in sample["expect"]
        ]
        assert record["text"] == sample["texts"][0] and record["answer"] == "accept"
        assert record["spans"] == expected and record["complete"] == ["LOC", "PER"]

        # The next text, edited, then reloaded: the same text and the edit.
        second = page.locator("#text").get_attribute("data-task-hash")
        assert second != first
        expect(page.locator("#text mark.ent")).to_have_count(2)
        page.locator("#text mark.ent .tok").first.click()
        expect(page.locator("#text mark.ent")).to_have_count(1)
        # The first two tokens by keyboard: shift+arrows, then enter (the current label, PER).
        for key in ("Shift+ArrowRight", "Shift+ArrowRight", "Enter"):
            page.keyboard.press(key)
        words = "".join(page.locator("#text .tok").all_inner_texts()[:2])
        expect(_mark(page, words)).to_have_attribute("data-label", "PER")
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        expect(page.locator("#text")).to_have_attribute("data-task-hash", second)
        expect(page.locator("#text mark.ent")).to_have_count(2)
        expect(_mark(page, words)).to_have_attribute("data-label", "PER")

        # Undo from the history: the first text again, as answered; changed, it supersedes.
        page.keyboard.press("Backspace")
        expect(page.locator("#text")).to_have_attribute("data-task-hash", first)
        expect(page.locator("#text mark.ent")).to_have_count(2)
        page.locator("#text mark.ent .tok").first.click()
        page.keyboard.press("a")
        expect(page.locator("#text")).to_have_attribute("data-task-hash", second)
        page.wait_for_function("document.querySelector('#p-dataset').textContent === '2'")
        (latest,) = _db_out(workdir)
        assert latest["spans"] == expected[1:] and latest["_task_hash"] == record["_task_hash"]
        assert [r["spans"] for r in _db_out(workdir, "--all")] == [expected, expected[1:]]


def test_the_e_key_in_teach_corrects_the_whole_text(tmp_path, browser):
    expect = sync_api.expect
    workdir = _workdir(tmp_path, "en")
    with _served(browser, parse_args(ruler_argv(workdir, "--queue-size", "3")), "bob") as (teacher, page):
        expect(page.locator("body")).to_have_attribute("data-view", "teach")
        question = teacher.book.open["bob"][int(page.locator("#text").get_attribute("data-task-hash"))]
        page.keyboard.press("e")
        expect(page.locator("body")).to_have_attribute("data-view", "correct")
        asked = question["spans"][0]
        proposed = question["text"][asked["start"] : asked["end"]]
        expect(_mark(page, proposed.replace(" ", ""))).to_have_attribute("data-label", asked["label"])
        page.keyboard.press("a")
        expect(page.locator("#history li").first.locator(".answer")).to_have_text("accept")
        page.wait_for_function("document.querySelector('#p-session').textContent === '1'")
    (record,) = _db_out(workdir)
    ruler = {"Anna": "PER", "Paris": "LOC", "Lena": "PER", "Oslo": "LOC"}
    expected = {(asked["start"], asked["end"], asked["label"])}
    for name, label in ruler.items():
        start = question["text"].find(name)
        if start >= 0 and (start + len(name) <= asked["start"] or start >= asked["end"]):
            expected.add((start, start + len(name), label))
    assert record["text"] == question["text"] and record["complete"] == ["LOC", "PER"]
    assert {(s["start"], s["end"], s["label"]) for s in record["spans"]} == expected


def test_silver_to_gold_shows_the_analysis_consistent_with_the_binary_answers(tmp_path, browser):
    pytest.importorskip("spacy_binary_ner.consistent")
    expect = sync_api.expect
    workdir = _workdir(tmp_path, "zh")
    text = SAMPLES["zh"]["texts"][0]  # 😀 李明在北京工作。
    binary = [
        {"text": text, "spans": [{"start": 7, "end": 9, "label": "LOC"}], "answer": "accept"},
        {"text": text, "spans": [{"start": 2, "end": 4, "label": "PER"}], "answer": "reject"},
    ]
    teacher = build_teacher(parse_args(["binary", *ruler_argv(workdir, "--allow-new-tasks")[1:]]))
    with TestClient(create_app(teacher, on_shutdown=teacher.close)) as client:
        assert client.post("/api/answers?session=a", json={"answers": binary}).json()["stored"] == 2
    # DATASET_IN DATASET_OUT PIPELINE, then the flags (no source).
    settings = parse_args(["binary", "gold", str(workdir / "ruler"), *ruler_argv(workdir)[3:]], SilverSettings)
    with _served(browser, settings, "carol") as (_, page):
        expect(page.locator("body")).to_have_attribute("data-view", "correct")
        # The accept kept; the rejected PER not; no model span reaches the pipe's threshold.
        expect(page.locator("#text mark.ent")).to_have_count(1)
        expect(_mark(page, "工作")).to_have_attribute("data-label", "LOC")
        page.keyboard.press("a")
        page.wait_for_function("document.querySelector('#p-session').textContent === '1'")
    out = workdir / "gold.jsonl"
    assert cli(["db-out", "gold", str(out), "--db", str(workdir / "db.sqlite3")]) == 0
    (record,) = [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()]
    assert record["text"] == text and record["complete"] == ["LOC", "PER"] and record["meta"]["source"] == "silver"
    assert record["spans"] == [{"start": 7, "end": 9, "label": "LOC", "token_start": 6, "token_end": 7}]
