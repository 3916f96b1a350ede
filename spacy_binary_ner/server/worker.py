"""The teach server's side of the engine: answers in, questions out.

`Teacher` stores the answers (committed before a request is acknowledged) and
keeps each session's open questions; the model lives in the learning engine,
a process of its own (`engine.py`), started when the `Teacher` is made. The
engine sends questions ahead into a buffer of `queue_size`; a request takes
its next question from there and hands the answers it stored to a sender
thread, so it never waits for the model, the pipe or the other process. A
receiver thread files what the engine sends: questions, and the counts the
progress shows.

If the engine dies, the server goes on storing answers and says so: a request
for questions, when none is left, gets the reason instead of waiting.
"""

import multiprocessing
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Set, Tuple

import spacy
from spacy.language import Language

from .answers import BadAnswer, check_answer
from .engine import EngineSettings, load_state, run_engine
from .storage import Storage

Task = Dict[str, Any]

__all__ = ["BadAnswer", "EngineError", "Teacher", "load_state"]


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


class Teacher:
    """Questions out, answers in, the model learning in another process.

    settings (EngineSettings): How the engine builds its loop and source,
        the database, dataset, output folder, batch and queue sizes.
    feed_overlap (bool): Give every session every question (default: each
        question goes to one session).
    lease (float): Seconds a question handed to a session stays its own: a
        question not answered by then goes to the next session that asks for
        one (a session that went away leaves nothing stuck). 0: never.
    start_timeout (float): Most seconds to wait for the engine to be ready
        (it loads the model and learns the answers stored after its save).
    """

    def __init__(
        self,
        settings: EngineSettings,
        *,
        feed_overlap: bool = False,
        lease: float = 0.0,
        start_timeout: float = 600.0,
    ) -> None:
        self.settings = settings
        self.storage = Storage(settings.storage_url)
        self.dataset = settings.dataset
        self.output = settings.output
        self.batch_size = settings.batch_size
        self.queue_size = settings.queue_size
        self.feed_overlap = feed_overlap
        self.lease = lease
        self.cond = threading.Condition()
        self._ready: Deque[Task] = deque()
        self._issued: List[Task] = []
        self._cursor: Dict[str, int] = {}
        self._open: Dict[str, Dict[int, Task]] = {}
        # (when, session, task hash) of each question handed out, oldest first.
        self._leases: Deque[Tuple[float, str, int]] = deque()
        self.n_reassigned = 0
        self._answered_by: Dict[str, Set[int]] = {}
        self.session_counts: Dict[str, int] = {}
        _, self.answered_tasks = self.storage.hashes(self.dataset)
        self.skipped_here = 0
        # Waiting for the sender thread.
        self._unsent_answers: List[Tuple[int, Task]] = []
        self._unsent_taken = 0
        self._unsent_commands: List[Tuple[str, Any]] = []
        self._handed = 0
        self._saves = 0
        self._stopped = False
        self._closed = False
        self.engine_failure: Optional[str] = None
        self.error: Optional[str] = None
        ctx = _context()
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=run_engine, args=(child, settings), name="sbn-engine", daemon=True)
        # A first blank pipeline loads every package's registered factories
        # (spacy-transformers imports transformers: seconds), so it is made
        # while the engine starts rather than after.
        warm_up = threading.Thread(target=spacy.blank, args=("xx",), name="sbn-warm-up", daemon=True)
        warm_up.start()
        self.process.start()
        child.close()
        deadline = time.monotonic() + start_timeout
        info = self._wait_ready(start_timeout)
        warm_up.join()
        self.labels: List[str] = info["labels"]
        self.has_eval: bool = info["eval"]
        self.n_resumed: int = info["resumed"]
        self._status: Dict[str, Any] = info["status"]
        # The tokenizer of the engine's pipeline, to check answers as the reader will read them.
        self.nlp: Language = spacy.blank(info["lang"], config={"nlp": {"tokenizer": info["tokenizer_config"]}})
        self.nlp.tokenizer.from_bytes(info["tokenizer"])
        self._receiver = threading.Thread(target=self._receive, name="sbn-receiver", daemon=True)
        self._sender = threading.Thread(target=self._send, name="sbn-sender", daemon=True)
        self._receiver.start()
        self._sender.start()
        # Ready means questions ready: the first page load gets a full set.
        with self.cond:
            while len(self._ready) < self.queue_size and not self.exhausted and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))

    @property
    def engine_pid(self) -> Optional[int]:
        """The process id of the learning engine."""
        return self.process.pid

    @property
    def exhausted(self) -> bool:
        """Whether the engine sends no more questions (the source is used up,
        or the engine stopped)."""
        return bool(self._status.get("exhausted")) or self.engine_failure is not None

    # The pipe ------------------------------------------------------------------

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
                    self._ready.append(value)
                elif kind in ("status", "stopped"):
                    self._status = value
                    self.error = value.get("error")
                    self._stopped = kind == "stopped"
                elif kind == "saved":
                    self._saves += 1
                elif kind == "failed":
                    self.engine_failure = f"{value[0]}: {value[1]}"
                self.cond.notify_all()
        self.process.join(5)
        with self.cond:
            if not self._stopped and self.engine_failure is None:
                self.engine_failure = f"the learning engine exited (code {self.process.exitcode})"
            if self.engine_failure is not None:
                self.error = (
                    f"{self.engine_failure}; answers are still stored, and a restart resumes the model from its "
                    "last save plus the answers stored after it"
                )
            self._stopped = True
            self.cond.notify_all()

    def _send(self) -> None:
        while True:
            with self.cond:
                while not (self._unsent_answers or self._unsent_taken or self._unsent_commands or self._stopped):
                    self.cond.wait()
                if self._stopped:
                    return
                answers, self._unsent_answers = self._unsent_answers, []
                taken, self._unsent_taken = self._unsent_taken, 0
                commands, self._unsent_commands = self._unsent_commands, []
            try:
                if answers:
                    self._conn.send(("answers", answers))
                if taken:
                    self._conn.send(("taken", taken))
                for command in commands:
                    self._conn.send(command)
            except (OSError, ValueError):
                return  # the receiver reports the engine gone

    def _command(self, kind: str, value: Any = None) -> None:
        with self.cond:
            self._unsent_commands.append((kind, value))
            self.cond.notify_all()

    # Questions -----------------------------------------------------------------

    def questions(self, session: str, n: int, wait: float = 5.0) -> List[Task]:
        """The session's open questions, topped up to `n` from the queue.

        A question handed out and not yet answered stays open for its session,
        so a reloaded page gets it again. Waits up to `wait` seconds for the
        first question if none is ready.

        RETURNS (List[Task]): The open questions, oldest first.
        """
        deadline = time.monotonic() + wait
        with self.cond:
            opened = self._open.setdefault(session, {})
            while len(opened) < n:
                task = self._take(session)
                if task is not None:
                    h = int(task["_task_hash"])
                    opened[h] = task
                    if self.lease and not self.feed_overlap:
                        self._leases.append((time.monotonic(), session, h))
                    continue
                if self.exhausted and (not self.feed_overlap or self._cursor.get(session, 0) >= len(self._issued)):
                    break
                left = deadline - time.monotonic()
                if opened or left <= 0:
                    break
                self.cond.wait(left)
            return list(opened.values())[:n]

    def finished(self, session: str) -> bool:
        """Whether the source is used up: no question is left for the session,
        now or later (a session that gets no question and no `finished` should
        ask again: the queue is being refilled)."""
        with self.cond:
            if not self.exhausted or self._ready:
                return False
            if self.feed_overlap:
                answered = self._answered_by.get(session, set())
                return all(int(t["_task_hash"]) in answered for t in self._issued[self._cursor.get(session, 0) :])
            return True

    def _take(self, session: str) -> Optional[Task]:
        if not self.feed_overlap:
            expired = self._take_expired(session)
            if expired is not None:
                return expired
            while self._ready:
                task = self._ready.popleft()
                self._unsent_taken += 1
                self.cond.notify_all()
                # Answered since it was queued: a client resending an answer
                # to a question it got before a restart.
                if int(task["_task_hash"]) not in self.answered_tasks:
                    return task
                self.skipped_here += 1
            return None
        answered = self._answered_by.setdefault(session, set())
        cursor = self._cursor.get(session, 0)
        while True:
            if cursor >= len(self._issued):
                if not self._ready:
                    self._cursor[session] = cursor
                    return None
                self._issued.append(self._ready.popleft())
                self._unsent_taken += 1
                self.cond.notify_all()
            task = self._issued[cursor]
            cursor += 1
            if int(task["_task_hash"]) not in answered:
                self._cursor[session] = cursor
                return task

    def _take_expired(self, session: str) -> Optional[Task]:
        """A question whose lease ran out, taken from the session it was
        handed to (None if there is none)."""
        horizon = time.monotonic() - self.lease
        while self.lease and self._leases and self._leases[0][0] <= horizon:
            _, holder, h = self._leases.popleft()
            task = self._open.get(holder, {}).get(h)
            if task is None or holder == session:
                continue  # answered since, or asked again by its own session
            del self._open[holder][h]
            self.n_reassigned += 1
            return task
        return None

    # Answers -------------------------------------------------------------------

    def validate(self, item: Any) -> Tuple[str, Task]:
        """Check an answer as a client sent it (see `answers.check_answer`).
        RETURNS (Tuple[str, Task]): Its key and the task to store. Raises `BadAnswer`."""
        return check_answer(item, self.labels, self.nlp)

    def answer(self, session: str, items: Sequence[Tuple[str, Task]]) -> List[Tuple[int, bool]]:
        """Commit answers, then hand the new ones to the engine.

        RETURNS (List[Tuple[int, bool]]): Per answer its row id and whether it
            was new (False: already stored under its key).
        """
        results = self.storage.add(self.dataset, session, items)
        with self.cond:
            opened = self._open.setdefault(session, {})
            answered = self._answered_by.setdefault(session, set())
            for (key, task), (row_id, new) in zip(items, results):
                h = int(task["_task_hash"])
                opened.pop(h, None)
                answered.add(h)
                if not self.feed_overlap:
                    for other in self._open.values():
                        other.pop(h, None)
                if new:
                    self.answered_tasks.add(h)
                    self.session_counts[session] = self.session_counts.get(session, 0) + 1
                    self._unsent_answers.append((row_id, task))
                    self._handed += 1
            self.cond.notify_all()
        return results

    def wait_learned(self, timeout: float = 60.0) -> bool:
        """Wait until the engine has learned from every answer handed to it.
        RETURNS (bool): False if `timeout` seconds passed first or the engine stopped."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._status["handled"] < self._handed:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopped:
                    return False
                self.cond.wait(left)
        return True

    def save(self, timeout: float = 600.0) -> bool:
        """Have the engine save the model (the weights it proposes with) and
        the ids of the answers it learned from, to `output/model`.
        RETURNS (bool): Whether it saved within `timeout` seconds."""
        if self.output is None:
            return False
        deadline = time.monotonic() + timeout
        with self.cond:
            target = self._saves + 1
            self._unsent_commands.append(("save", None))
            self.cond.notify_all()
            while self._saves < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopped:
                    return False
                self.cond.wait(left)
        return True

    def progress(self, session: Optional[str] = None) -> Dict[str, Any]:
        """Counts for the page: answers in the session and the dataset, the
        accept rate, the recent loss and the F1 on the gold set."""
        with self.cond:
            status = dict(self._status)
            ready = len(self._ready)
            error = self.error
        decided = status["accept"] + status["reject"]
        skipped = dict(status["skipped"])
        skipped["question answered before"] = skipped.get("question answered before", 0) + self.skipped_here
        return {
            "session": session,
            "session_answers": self.session_counts.get(session, 0) if session else None,
            "dataset_answers": self.storage.count(self.dataset),
            "learned": status["learned"],
            "updates": status["updates"],
            "accept_rate": status["accept"] / decided if decided else None,
            "loss": status["loss"],
            "f1": status["f1"],
            "f1_at": status["f1_at"],
            "queue": ready,
            "exhausted": self.exhausted and not ready,
            "skipped": skipped,
            "reassigned": self.n_reassigned,
            "error": error,
        }

    def close(self, save: bool = True, timeout: float = 600.0) -> None:
        """Stop the engine (it first learns from the answers left, then saves
        the model if `save`) and wait for it to exit."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        self._command("stop", save)
        with self.cond:
            while not self._stopped and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=30)
        with self.cond:
            self._stopped = True
            self.cond.notify_all()
        self._sender.join(timeout=30)
        self._receiver.join(timeout=30)
        self._conn.close()
        self.storage.close()
