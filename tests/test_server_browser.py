"""The teach page in a real browser: Debian's Chromium driven by Playwright."""

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed: pip install '.[server]'")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install playwright")

from spacy_binary_ner.server.app import create_app  # noqa: E402
from spacy_binary_ner.server.teach import build_teacher, parse_args  # noqa: E402

from .server_util import ThreadServer, free_port, write_config, write_jsonl  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The README's screenshot, rewritten when SBN_UPDATE_SCREENSHOT=1 (it needs Debian's fonts-noto-cjk to show Chinese).
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "teach.png"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"no Chromium at {CHROMIUM}: apt-get install chromium (Playwright cannot download its own browser here)",
)

# Chinese, an emoji outside the BMP (a surrogate pair in JavaScript) and a
# <script> tag: the highlight must sit on the right characters, the tag show
# as text.
SPECIAL = [
    "😀😀 李明在北京工作。",
    "<script>window.pwned = 1</script> 王芳去了上海。",
]


@pytest.fixture
def browser(tmp_path):
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            viewport={"width": 1000, "height": 700},
        )
        try:
            yield context
        finally:
            context.close()


def test_thirty_answers_by_keyboard_undo_reload_and_the_database_holds_them(tmp_path, browser):
    expect = sync_api.expect
    write_config(tmp_path / "zh.cfg", lang="zh")
    texts = SPECIAL + [f"第{i}位张伟在南京和李娜见面。" for i in range(80)]
    write_jsonl(tmp_path / "source.jsonl", [{"text": t} for t in texts])
    write_jsonl(
        tmp_path / "patterns.jsonl",
        [
            {"label": "LOC", "pattern": "北京"},
            {"label": "LOC", "pattern": "上海"},
            {"label": "PER", "pattern": "李明"},
        ],
    )
    args = parse_args(
        [
            "ds",
            str(tmp_path / "zh.cfg"),
            str(tmp_path / "source.jsonl"),
            "--label",
            "PER,LOC",
            "--patterns",
            str(tmp_path / "patterns.jsonl"),
            "--db",
            str(tmp_path / "db.sqlite3"),
            "--output",
            str(tmp_path / "out"),
            "--save-every",
            "0",
        ]
    )
    teacher = build_teacher(args)
    app = create_app(teacher, on_shutdown=teacher.close)
    with ThreadServer(app, free_port()) as server:
        page = browser.new_page()
        page.goto(server.url + "/?session=alice")
        page.wait_for_selector("body[data-ready='1']")
        given = {}  # task hash -> answer, as the page shows it
        keys = ["a", "x", " "]
        for i in range(30):
            text = page.locator("#text")
            expect(text).not_to_have_attribute("data-task-hash", "")
            task_hash = int(text.get_attribute("data-task-hash"))
            task = _task(teacher, "alice", task_hash)
            mark = page.locator("#text mark").inner_text()
            start, end = task["spans"][0]["start"], task["spans"][0]["end"]
            assert mark == task["text"][start:end], (mark, task["text"], start, end)
            assert page.locator("#text").inner_text().replace("\n", "") == task["text"]
            if i == 3:
                page.screenshot(path=str(tmp_path / "teach.png"))
            key = keys[i % 3]
            page.keyboard.press("Space" if key == " " else key)
            given[task_hash] = {"a": "accept", "x": "reject", " ": "ignore"}[key]
            expect(page.locator("#history li").first).to_have_attribute("data-task-hash", str(task_hash))
        assert page.evaluate("window.pwned") is None
        # Undo the last answer and answer it again, the other way.
        last = int(page.locator("#history li").first.get_attribute("data-task-hash"))
        page.keyboard.press("Backspace")
        expect(page.locator("#text")).to_have_attribute("data-task-hash", str(last))
        page.keyboard.press("a")
        given[last] = "accept"
        expect(page.locator("#history li").first.locator(".answer")).to_have_text("accept")
        # A click in the history changes an older answer.
        third = page.locator("#history li").nth(2)
        third_hash = int(third.get_attribute("data-task-hash"))
        new_answer = "reject" if given[third_hash] != "reject" else "accept"
        third.locator(f".change-{new_answer}").click()
        given[third_hash] = new_answer
        expect(page.locator("#history li").first.locator(".answer")).to_have_text(new_answer)
        page.wait_for_function("document.querySelector('#p-session').textContent === '32'")
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        expect(page.locator("#history li")).to_have_count(10)
        expect(page.locator("#history li").first).to_have_attribute("data-task-hash", str(third_hash))
        stored = teacher.storage.latest("ds", session="alice")
        assert {int(s.task["_task_hash"]): s.task["answer"] for s in stored} == given
        assert teacher.storage.count("ds") == 32
        assert all(s.session == "alice" for s in stored)
        # The special texts were asked (patterns), highlighted right above.
        asked = {s.task["text"] for s in stored}
        assert set(SPECIAL) <= asked, asked
    assert (tmp_path / "teach.png").stat().st_size > 0
    if os.environ.get("SBN_UPDATE_SCREENSHOT") == "1":
        shutil.copy(tmp_path / "teach.png", SCREENSHOT)


def _task(teacher, session, task_hash):
    opened = teacher.book.open.get(session, {})
    if task_hash in opened:
        return opened[task_hash]
    for stored in teacher.storage.iter_answers(teacher.dataset, session=session):
        if int(stored.task["_task_hash"]) == task_hash:
            return stored.task
    raise AssertionError(f"task {task_hash} was never handed to {session}: {json.dumps(list(opened))}")
