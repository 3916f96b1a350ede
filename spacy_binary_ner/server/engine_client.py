"""The server's end of the pipe to the learning engine (`engine.py`).

`EngineClient` starts the engine process, waits until it is ready, and runs
two threads: a sender that hands the engine what requests queued (answers,
counts of questions taken, commands), so that no request ever writes to the
pipe, and a receiver that files what the engine sends (questions, through a
callback, and the counts the progress shows). Everything shared is guarded by
the condition the `Teacher` passes in.
"""

import multiprocessing
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..records import Record
from .engine import EngineSettings, run_engine

Task = Dict[str, Any]


class EngineError(RuntimeError):
    """The learning engine could not start."""


def _context() -> Any:
    """The way to start the engine: `forkserver` where there is one (a clean
    process, the package imported once, forks each engine, so a second engine
    in the same server starts in a moment), else `spawn`. Never `fork`: the
    server's threads and torch's thread pools do not survive it."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["spacy_binary_ner.server.teach"])
    return ctx


class EngineClient:
    """The engine process, the pipe and its two threads.

    settings (EngineSettings): What the engine builds and serves.
    cond (threading.Condition): Guards everything shared with requests;
        notified on every message received.
    on_question (Callable[[Task], None]): Called (with `cond` held) for each
        question the engine sends.
    start_timeout (float): Most seconds to wait for the engine to be ready.
    """

    def __init__(
        self,
        settings: EngineSettings,
        cond: threading.Condition,
        on_question: Callable[[Task], None],
        start_timeout: float = 600.0,
    ) -> None:
        self.cond = cond
        self.on_question = on_question
        self.failure: Optional[str] = None
        self.error: Optional[str] = None
        self.stopped = False
        self.saves = 0
        self.handed = 0
        self._unsent: List[Tuple[str, Any]] = []
        self._unsent_answers: List[Tuple[int, int, Record]] = []
        self._closed = False
        self._requests = 0
        self._replies: Dict[int, Any] = {}
        ctx = _context()
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=run_engine, args=(child, settings), name="sbn-engine", daemon=True)
        self.process.start()
        child.close()
        self.info: Dict[str, Any] = self._wait_ready(start_timeout)
        self.status: Dict[str, Any] = self.info["status"]
        self._receiver = threading.Thread(target=self._receive, name="sbn-receiver", daemon=True)
        self._sender = threading.Thread(target=self._send, name="sbn-sender", daemon=True)
        self._receiver.start()
        self._sender.start()

    @property
    def exhausted(self) -> bool:
        """Whether the engine sends no more questions (the source is used up,
        or the engine stopped)."""
        return bool(self.status.get("exhausted")) or self.failure is not None

    # Called with `cond` held ---------------------------------------------------

    def queue_answers(self, answers: List[Tuple[int, int, Record]]) -> None:
        """Hand committed answers `(row id, task hash, record)` to the engine."""
        self._unsent_answers.extend(answers)
        self.handed += len(answers)
        self.cond.notify_all()

    def queue(self, kind: str, value: Any = None) -> None:
        """Send a message after the answers queued before it."""
        self._unsent.append((kind, value))
        self.cond.notify_all()

    # Called without `cond` -----------------------------------------------------

    def wait_learned(self, timeout: float = 60.0) -> bool:
        """Wait until the engine has learned from every answer handed to it.
        RETURNS (bool): False if `timeout` seconds passed first or the engine stopped."""
        return self._wait(lambda: self.status["handled"] >= self.handed, timeout)

    def correction(self, question: Task, timeout: float = 30.0) -> Optional[Any]:
        """Have the engine turn a question into a correction of its whole
        text (`loop.Corrector.correction_of`).
        RETURNS (Optional[Any]): The correction task, the engine's message
            saying why not (a str), or None if no reply came within `timeout`
            seconds."""
        with self.cond:
            self._requests += 1
            request = self._requests
            self.queue("correction", (request, question))
        self._wait(lambda: request in self._replies, timeout)
        with self.cond:
            return self._replies.pop(request, None)

    def save(self, timeout: float = 600.0) -> bool:
        """Have the engine save the model. RETURNS (bool): Whether it saved
        within `timeout` seconds."""
        with self.cond:
            target = self.saves + 1
            self.queue("save")
        return self._wait(lambda: self.saves >= target, timeout)

    def close(self, save: bool = True, timeout: float = 600.0) -> bool:
        """Stop the engine: it learns from the answers left, then saves the
        model if `save`; past `timeout` seconds it saves what it learned and
        exits, and past that it is killed.
        RETURNS (bool): Whether the engine stopped cleanly."""
        if self._closed:
            return self.stopped
        self._closed = True
        deadline = time.monotonic() + timeout
        # Two thirds of the time to learn, the rest to save.
        with self.cond:
            self.queue("stop", (save, time.time() + timeout * 2 / 3))
        clean = self._wait(lambda: self.stopped, timeout)
        clean = clean and self.failure is None
        self.process.join(timeout=max(1.0, deadline - time.monotonic()))
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=30)
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self._sender.join(timeout=30)
        self._receiver.join(timeout=30)
        self._conn.close()
        return clean

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0 or self.stopped:
                    return done()
                self.cond.wait(left)
        return True

    # The threads ---------------------------------------------------------------

    def _wait_ready(self, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not self._conn.poll(0.2):
                    if not self.process.is_alive():
                        raise EOFError
                    continue
                kind, value = self._conn.recv()
            except (EOFError, OSError):
                self.process.join(5)
                raise EngineError(
                    f"the learning engine exited (code {self.process.exitcode}) before it was ready: see its "
                    "output above"
                ) from None
            if kind == "ready":
                return value
            if kind == "failed":
                self.process.join(30)
                name, message = value
                if name in ("ValueError", "OSError", "FileNotFoundError"):
                    raise ValueError(message)
                raise EngineError(f"the learning engine could not start: {name}: {message}")
        self.process.kill()
        raise EngineError(f"the learning engine was not ready after {timeout:.0f} s")

    def _receive(self) -> None:
        while True:
            try:
                kind, value = self._conn.recv()
            except (EOFError, OSError):
                break
            with self.cond:
                if kind == "question":
                    self.on_question(value)
                elif kind in ("status", "stopped"):
                    self.status = value
                    self.error = value.get("error")
                    self.stopped = kind == "stopped"
                elif kind == "saved":
                    self.saves += 1
                elif kind == "correction":
                    self._replies[value[0]] = value[1]
                elif kind == "failed":
                    self.failure = f"{value[0]}: {value[1]}"
                self.cond.notify_all()
        self.process.join(5)
        with self.cond:
            if not self.stopped and self.failure is None:
                self.failure = f"the learning engine exited (code {self.process.exitcode})"
            if self.failure is not None:
                self.error = (
                    f"{self.failure}; answers are still stored, and a restart resumes the model from its "
                    "last save plus the answers stored after it"
                )
            self.stopped = True
            self.cond.notify_all()

    def _send(self) -> None:
        while True:
            with self.cond:
                while not (self._unsent_answers or self._unsent or self.stopped):
                    self.cond.wait()
                if self.stopped:
                    return
                answers, self._unsent_answers = self._unsent_answers, []
                messages, self._unsent = self._unsent, []
            try:
                if answers:
                    self._conn.send(("answers", answers))
                taken = sum(value for kind, value in messages if kind == "taken")
                if taken:
                    self._conn.send(("taken", taken))
                for message in messages:
                    if message[0] != "taken":
                        self._conn.send(message)
            except (OSError, ValueError):
                return  # the receiver reports the engine gone
