"""The teach server's learning engine: the annotation loop in a process of its own.

The engine owns the model. It reads the source, proposes questions with the
`AnnotationLoop` (the loop the simulator drives) and learns from the answers
the server has committed, one `AnnotationLoop.update` per batch; it saves the
model and evaluates it. The server process only stores answers and hands out
questions the engine sent ahead, so a request never waits for the model and
never competes with it for the interpreter lock.

Both sides speak over one `multiprocessing` pipe, in `(kind, value)` messages:

| server → engine | engine → server |
| --- | --- |
| `("answers", [(row_id, task_hash, record), ...])`: parsed answers | `("ready", info)`: built, resumed, first F1 |
| `("taken", n)`: n questions left the server's buffer | `("question", task)`: one more question |
| `("want", n)`: keep n questions in the buffer | `("status", counts)`: after updates and evaluations |
| `("save", None)` | `("saved", path)`, `("stopped", counts)` |
| `("stop", (save, deadline))`: learn what is left until the | `("failed", (type, message))`: could not start |
| `time.time()` deadline, save if asked, exit | or crashed |
| `("correction", (id, question))`: the question as a | `("correction", (id, task or error message))` |
| correction of its whole text (`teach`'s `e` key) | |

The questions are `teach`'s (spans chosen by the loop's sorter; text
categories by a `TextcatLoop` with `--task textcat`) or, for
`correct` and `silver-to-gold`, whole texts in order with the spans to
correct (`loop.Corrector`). A correction rejected as unusable or ignored is
never learned from, and nothing is learned from without `--update` there.

The engine is ready as soon as the model is loaded: the answers stored after
the model's last save are learned in the background, after the questions the
server needs and the answers it sends now.

The engine process ignores SIGINT and SIGTERM (the server stops it, so that it
saves first) and exits at once when the server process is gone, even after
`kill -9`.
"""

import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing import parent_process
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

from ..loop import AnnotationLoop, Corrector
from ..loop.correct import Consistent
from ..records import Record, RecordError
from ..textcat.loop import TextcatLoop
from ..textcat.reader import TextcatRecord
from .storage import Storage

Task = Dict[str, Any]
# An answer to learn from: parsed by the server (a `Record`, or a
# `TextcatRecord`), or a stored task read back.
Learnable = Union[Record, "TextcatRecord", Task]
# What a `make_loop` callable returns: the loop, a function computing F1 on a
# gold set (or None) and the state saved with the loaded model ({} for a new one).
LoopParts = Tuple[Union[AnnotationLoop, TextcatLoop], Optional[Callable[[], float]], Dict[str, Any]]

STATE_FILE = "sbn_teach_state.json"
# The reason a source record or a question is not served: JSON cannot carry it.
UNSERVABLE = "not JSON (NaN, Infinity)"
# Set by the source reader on a record it could not make a task of.
UNSERVABLE_KEY = "_unservable"
_RECENT_IDS = 1000
# Most seconds answers wait to be learned from while the server's question
# buffer is below half: questions first, so that no session waits, but the
# model does not fall behind for long (past it, learning and proposing take
# turns).
_YIELD_SECONDS = 2.0
# Past that wait, a batch takes up to this many times `batch_size` answers: an
# update costs its replayed texts and a fixed part whatever the batch, so
# larger batches learn more answers per second while the engine is behind.
_CATCH_UP = 4
# Source records skipped as not JSON that are logged one by one.
_LOGGED_SKIPS = 20
# Most seconds between reports of new skip counts while the engine is busy.
_STATUS_SECONDS = 0.5
# Added to the engine's niceness: where the two processes share a core, a
# request is served before the next bit of an update.
_NICE = 5


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs besides its loop: all picklable, as the engine is
    started in a process of its own. The sizes and intervals have the names
    and meanings of `teach`'s settings (`settings.TeachSettings`).

    make_loop (Callable[[], LoopParts]): Builds the loop in the engine process.
    make_source (Callable[[], Iterable[Task]]): The incoming tasks.
    storage_url (str): The database (the engine only reads it).
    dataset (str): The dataset name.
    output (Optional[Path]): Folder for the saved model; None to never save.
    batch_size (int): Most answers per update.
    queue_size (int): Questions kept ready in the server (the server may ask for more).
    save_every (int): Answers between saves (0: only on stop).
    eval_every (int): Answers between evaluations.
    questions (str): Which questions: "teach" (the loop's), "correct" or
        "silver-to-gold" (whole texts to correct), or "textcat" (a
        `textcat.loop.TextcatLoop`'s, the loop `make_loop` builds then).
    learns (bool): Whether answers are learned from.
    labels (Tuple[str, ...]): The labels being annotated (what corrections
        are complete for).
    consistent (Optional[Consistent]): `silver-to-gold`'s best analysis
        consistent with a text's answers (`consistent.best_consistent`).
    """

    make_loop: Callable[[], LoopParts]
    make_source: Callable[[], Iterable[Task]]
    storage_url: str
    dataset: str
    output: Optional[Path] = None
    batch_size: int = 10
    queue_size: int = 20
    save_every: int = 100
    eval_every: int = 100
    questions: str = "teach"
    learns: bool = True
    labels: Tuple[str, ...] = ()
    consistent: Optional[Consistent] = None


def learnable(answer: Learnable) -> bool:
    """Whether the loop learns from an answer: not a correction rejected as
    unusable or ignored (the reader skips those; they are only stored)."""
    if isinstance(answer, Record):
        return not (answer.complete and answer.answer != "accept")
    if not isinstance(answer, dict):  # a text-category record: never a correction
        return True
    return not (answer.get("complete") not in (None, False) and answer.get("answer") != "accept")


def run_engine(conn: Connection, settings: EngineSettings) -> None:
    """The engine process's entry point: build, resume, then serve `conn`
    until told to stop or the server is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_parent()
    try:
        os.nice(_NICE)
    except OSError:
        pass
    try:
        engine = Engine(conn, settings)
    except Exception as err:
        conn.send(("failed", (type(err).__name__, str(err))))
        return
    try:
        engine.run()
    except (EOFError, BrokenPipeError):
        return
    except Exception as err:
        detail = "".join(traceback.format_exception_only(type(err), err)).strip()
        conn.send(("failed", (type(err).__name__, f"{detail}\n{traceback.format_exc()}")))


def _exit_with_parent() -> None:
    """A daemon thread that ends this process when the parent process ends,
    however it ended: no engine outlives its server."""
    parent = parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(3)

    threading.Thread(target=watch, name="sbn-engine-watchdog", daemon=True).start()


class Engine:
    """The loop's side of the pipe (see the module docstring)."""

    def __init__(self, conn: Connection, settings: EngineSettings) -> None:
        self.conn = conn
        self.settings = settings
        self.loop, self.evaluate, state = settings.make_loop()
        self.nlp = self.loop.nlp
        self.storage = Storage(settings.storage_url)
        self.dataset = settings.dataset
        self.output = settings.output
        self.batch_size = settings.batch_size
        self.queue_size = settings.queue_size
        self.low_water = max(1, settings.queue_size // 2)
        answered_inputs, self.answered_tasks = self.storage.hashes(self.dataset)
        # Texts corrected whole in this run: no more questions about them.
        self.corrected: Set[Any] = set()
        self.inbox: Deque[Tuple[float, int, Learnable]] = deque()
        self.buffered = 0
        self.exhausted = False
        self.stopping: Optional[bool] = None
        self.stop_deadline = float("inf")
        self._status_due = False
        self._reported = 0.0
        self._proposed_since_update = 0
        self._last_batch = 0
        self.error: Optional[str] = None
        self.losses: Deque[float] = deque(maxlen=20)
        self.n_updates = 0
        self.n_learned = 0
        self.n_handled = 0
        self.f1: Optional[float] = None
        self.f1_at: Optional[int] = None
        self.skipped: Dict[str, int] = {
            "text answered before": 0,
            "text repeated in the source": 0,
            "question answered before": 0,
            UNSERVABLE: 0,
        }
        self._learned_max = int(state.get("max_id", 0))
        self._recent: Deque[int] = deque(state.get("recent_ids", []), maxlen=_RECENT_IDS)
        self._since_save = 0
        self.backlog = self._stored_after_save()
        self.n_resumed = len(self.backlog)
        if self.evaluate is not None:
            self._run_eval()
        self._corrector: Optional[Corrector] = None
        source = self._filtered(settings.make_source(), answered_inputs)
        if settings.questions == "correct":
            self.questions: Iterator[Task] = self.corrector(source)
        elif settings.questions == "silver-to-gold":
            assert settings.consistent is not None
            self.questions = self.corrector.silver(source, settings.consistent)
        elif settings.questions == "textcat":
            self.questions = self.loop.questions(source)
        else:
            self.questions = self.loop(source)

    @property
    def corrector(self) -> Corrector:
        """Whole-text questions of the loop's model (made when first needed)."""
        if self._corrector is None:
            self._corrector = Corrector(self.loop, self.settings.labels or self.loop.pipe.labels)
        return self._corrector

    def ready_info(self) -> Dict[str, Any]:
        tokenizer_cfg = self.nlp.config["nlp"]["tokenizer"]
        return {
            "lang": self.nlp.lang,
            "tokenizer_config": dict(tokenizer_cfg),
            "tokenizer": self.nlp.tokenizer.to_bytes(),
            "labels": list(self.loop.pipe.labels),
            # Whether the text categories exclude each other (None for spans).
            "exclusive": getattr(self.loop.pipe, "exclusive", None) if self.settings.questions == "textcat" else None,
            "resumed": self.n_resumed,  # to re-learn in the background
            "eval": self.evaluate is not None,
            "status": self.status(),
        }

    def status(self) -> Dict[str, Any]:
        counts = self.loop.answer_counts
        return {
            "learned": self.n_learned,
            "handled": self.n_handled,
            "updates": self.n_updates,
            "accept": counts["accept"],
            "reject": counts["reject"],
            "loss": sum(self.losses) / len(self.losses) if self.losses else None,
            "f1": self.f1,
            "f1_at": self.f1_at,
            "exhausted": self.exhausted,
            "skipped": dict(self.skipped),
            "error": self.error,
            "backlog": len(self.backlog),
        }

    # The work loop -------------------------------------------------------------

    def run(self) -> None:
        self.conn.send(("ready", self.ready_info()))
        while True:
            idle = not self._has_work()
            if self._status_due and (idle or time.monotonic() - self._reported > _STATUS_SECONDS):
                self._send_status()
            self._receive(block=idle)
            if self.stopping is not None:
                self._stop()
                return
            self._step()

    def _step(self) -> None:
        """One piece of work: propose a question or learn a batch."""
        can_propose = not self.exhausted and self.buffered < self.queue_size
        overdue = bool(self.inbox) and time.monotonic() - self.inbox[0][0] > _YIELD_SECONDS
        # Behind on both (more answers than it keeps up with): a batch
        # learned, then as many questions proposed, so that neither the
        # buffer runs dry nor the answers wait without end.
        turn = not overdue or self._proposed_since_update < max(self.batch_size, self._last_batch)
        if can_propose and self.buffered < self.low_water and turn:
            self._propose()
        elif self.inbox:
            self._learn_batch()
        elif can_propose:
            self._propose()
        elif self.backlog:
            self._learn_backlog()

    def _stop(self) -> None:
        """Learn what is left (the answers sent, then the backlog) until the
        deadline, save if asked, and say so."""
        save, deadline = self.stopping, self.stop_deadline
        while (self.inbox or self.backlog) and time.time() < deadline:
            if self.inbox:
                self._learn_batch()
            else:
                self._learn_backlog()
        if save:
            self.save()
        self.conn.send(("stopped", self.status()))

    def _send_status(self) -> None:
        self.conn.send(("status", self.status()))
        self._reported = time.monotonic()
        self._status_due = False

    def _has_work(self) -> bool:
        return bool(self.inbox or self.backlog) or (not self.exhausted and self.buffered < self.queue_size)

    def _receive(self, block: bool) -> None:
        """Handle every message waiting (and wait for one if `block`)."""
        while self.conn.poll(None if block else 0):
            block = False
            kind, value = self.conn.recv()
            if kind == "answers":
                now = time.monotonic()
                for row_id, task_hash, record in value:
                    self.answered_tasks.add(task_hash)
                    if isinstance(record, Record) and record.complete:
                        self.corrected.add(record.input_hash)
                    self.inbox.append((now, row_id, record))
            elif kind == "taken":
                self.buffered -= value
            elif kind == "want":
                self.queue_size = max(1, int(value))
                self.low_water = max(1, self.queue_size // 2)
            elif kind == "correction":
                request, question = value
                self.conn.send(("correction", (request, self._correction(question))))
            elif kind == "save":
                self.conn.send(("saved", str(self.save()) if self.output is not None else None))
            elif kind == "stop":
                save, deadline = value if isinstance(value, tuple) else (value, float("inf"))
                self.stopping, self.stop_deadline = bool(save), deadline

    def _correction(self, question: Task) -> Union[Task, str]:
        """A question as a correction of its whole text, or why not."""
        try:
            return self.corrector.correction_of(question)
        except RecordError as err:
            return f"{err.reason}: {err.detail}"

    def _propose(self) -> None:
        skipped = sum(self.skipped.values())
        task = next(self.questions, None)
        self._status_due = self._status_due or sum(self.skipped.values()) != skipped
        if task is None:
            self.exhausted = True
            self._send_status()
            return
        if int(task["_task_hash"]) in self.answered_tasks or task["_input_hash"] in self.corrected:
            self.skipped["question answered before"] += 1
            return
        if not json_safe(task):
            self._skip_unservable(f"the question about {task.get('text', '')[:40]!r}")
            return
        self.buffered += 1
        self._proposed_since_update += 1
        self.conn.send(("question", task))

    def _skip_unservable(self, where: str) -> None:
        self.skipped[UNSERVABLE] += 1
        n = self.skipped[UNSERVABLE]
        if n <= _LOGGED_SKIPS:
            more = "; no more of these are logged, /api/progress counts them" if n == _LOGGED_SKIPS else ""
            print(f"teach: skipped {where}: {UNSERVABLE}{more}", file=sys.stderr, flush=True)

    def _filtered(self, source: Iterable[Task], answered_inputs: Set[int]) -> Iterator[Task]:
        seen: Set[int] = set()
        for task in source:
            if task.get(UNSERVABLE_KEY) or not json_safe(task):
                self._skip_unservable(task.get(UNSERVABLE_KEY) or f"the text {task.get('text', '')[:40]!r}")
                continue
            h = int(task["_input_hash"])
            if h in answered_inputs:
                self.skipped["text answered before"] += 1
                continue
            if h in seen:
                self.skipped["text repeated in the source"] += 1
                continue
            seen.add(h)
            yield task

    # Learning ------------------------------------------------------------------

    def _learn_batch(self) -> None:
        size = self.batch_size
        if time.monotonic() - self.inbox[0][0] > _YIELD_SECONDS:
            size *= _CATCH_UP
        batch = [self.inbox.popleft() for _ in range(min(size, len(self.inbox)))]
        self._last_batch = len(batch)
        self._learn([(row_id, task) for _, row_id, task in batch])
        self._proposed_since_update = 0
        self.n_handled += len(batch)
        self._send_status()

    def _learn_backlog(self) -> None:
        self._learn([self.backlog.popleft() for _ in range(min(self.batch_size, len(self.backlog)))])
        self._send_status()

    def _learn(self, batch: List[Tuple[int, Learnable]]) -> None:
        """One update, then a save and an evaluation when they are due."""
        try:
            self._update(batch)
            if self.settings.save_every and self._since_save >= self.settings.save_every:
                self.save()
            every = self.settings.eval_every
            if self.evaluate is not None and self.n_learned // every > (self.f1_at or 0) // every:
                self._run_eval()
        except Exception as err:  # reported; the engine goes on
            self.error = f"{type(err).__name__}: {err}"

    def _stored_after_save(self) -> Deque[Tuple[int, Task]]:
        """The answers stored after the loaded model's save, to learn from."""
        if not self.settings.learns:
            return deque()
        recent = set(self._recent)
        low = min(recent) if recent else self._learned_max
        return deque(
            (stored.id, stored.task)
            for stored in self.storage.iter_answers(self.dataset, after_id=low)
            if stored.id not in recent and learnable(stored.task)
        )

    def _update(self, batch: List[Tuple[int, Learnable]]) -> None:
        # A record is learned from as the server parsed it, never parsed again.
        loss = self.loop.update([dict(item) if isinstance(item, dict) else item for _, item in batch])
        self.losses.append(loss)
        self.n_updates += 1
        self.n_learned += len(batch)
        self._since_save += len(batch)
        for row_id, _ in batch:
            self._recent.append(row_id)
            self._learned_max = max(self._learned_max, row_id)

    def _run_eval(self) -> None:
        assert self.evaluate is not None
        self.f1 = float(self.evaluate())
        self.f1_at = self.n_learned

    def save(self) -> Optional[Path]:
        """Save the model (the weights the loop proposes with) and the ids of
        the answers it learned from; the folder is replaced in one rename.
        RETURNS (Optional[Path]): The folder."""
        if self.output is None:
            return None
        self.output.mkdir(parents=True, exist_ok=True)
        final, tmp, old = self.output / "model", self.output / "model.tmp", self.output / "model.old"
        shutil.rmtree(tmp, ignore_errors=True)
        with self.loop.averaged_params():
            self.nlp.to_disk(tmp)
        state = {"max_id": self._learned_max, "recent_ids": list(self._recent), "dataset": self.dataset}
        (tmp / STATE_FILE).write_text(json.dumps(state), encoding="utf8")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        self._since_save = 0
        return final


def json_safe(value: Any) -> bool:
    """Whether standard JSON can carry `value` (no NaN or Infinity, nothing
    but dicts, lists, strings, numbers, booleans and None)."""
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError):
        return False
    return True


def load_state(model_dir: Path) -> Dict[str, Any]:
    """The state saved with a model (`{}` where there is none)."""
    path = Path(model_dir) / STATE_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf8"))
