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
| `("answers", [(row_id, task), ...])`: committed answers | `("ready", info)`: built, resumed, first F1 |
| `("taken", n)`: n questions left the server's buffer | `("question", task)`: one more question |
| `("save", None)` | `("status", counts)`: after updates and evaluations |
| `("stop", save)`: learn what is left, save if asked, exit | `("saved", path)`, `("stopped", counts)` |
| | `("failed", (type, message))`: could not start or crashed |

The engine process ignores SIGINT and SIGTERM (the server stops it, so that it
saves first) and exits at once when the server process is gone, even after
`kill -9`.
"""

import json
import os
import shutil
import signal
import threading
import time
import traceback
from collections import deque
from multiprocessing import parent_process
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from ..loop import AnnotationLoop
from .storage import Storage

Task = Dict[str, Any]
# What a `make_loop` callable returns: the loop, a function computing F1 on a
# gold set (or None) and the state saved with the loaded model ({} for a new one).
LoopParts = Tuple[AnnotationLoop, Optional[Callable[[], float]], Dict[str, Any]]

STATE_FILE = "sbn_teach_state.json"
_RECENT_IDS = 1000
# Most seconds answers wait to be learned from while the server's question
# buffer is below half: questions first, so that no session waits, but the
# model does not fall behind for long.
_YIELD_SECONDS = 2.0
# Added to the engine's niceness: where the two processes share a core, a
# request is served before the next bit of an update.
_NICE = 5


class EngineSettings:
    """What the engine needs besides its loop: all picklable, as the engine is
    started with `spawn`.

    make_loop (Callable[[], LoopParts]): Builds the loop in the engine process.
    make_source (Callable[[], Iterable[Task]]): The incoming tasks.
    storage_url (str): The database (the engine only reads it).
    dataset (str): The dataset name.
    output (Optional[Path]): Folder for the saved model; None to never save.
    batch_size (int): Most answers per update.
    queue_size (int): Questions kept ready in the server.
    save_every (int): Answers between saves (0: only on stop).
    eval_every (int): Answers between evaluations.
    """

    def __init__(
        self,
        make_loop: Callable[[], LoopParts],
        make_source: Callable[[], Iterable[Task]],
        storage_url: str,
        dataset: str,
        *,
        output: Optional[Path] = None,
        batch_size: int = 10,
        queue_size: int = 20,
        save_every: int = 100,
        eval_every: int = 100,
    ) -> None:
        self.make_loop = make_loop
        self.make_source = make_source
        self.storage_url = storage_url
        self.dataset = dataset
        self.output = output
        self.batch_size = batch_size
        self.queue_size = queue_size
        self.save_every = save_every
        self.eval_every = eval_every


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
        self.inbox: Deque[Tuple[float, int, Task]] = deque()
        self.buffered = 0
        self.exhausted = False
        self.stopping: Optional[bool] = None
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
        }
        self._learned_max = int(state.get("max_id", 0))
        self._recent: Deque[int] = deque(state.get("recent_ids", []), maxlen=_RECENT_IDS)
        self._since_save = 0
        self._resume()
        self.n_resumed = self.n_learned
        if self.evaluate is not None:
            self._run_eval()
        self.questions = self.loop(self._filtered(settings.make_source(), answered_inputs))

    def ready_info(self) -> Dict[str, Any]:
        tokenizer_cfg = self.nlp.config["nlp"]["tokenizer"]
        return {
            "lang": self.nlp.lang,
            "tokenizer_config": dict(tokenizer_cfg),
            "tokenizer": self.nlp.tokenizer.to_bytes(),
            "labels": list(self.loop.pipe.labels),
            "resumed": self.n_resumed,
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
        }

    # The work loop -------------------------------------------------------------

    def run(self) -> None:
        self.conn.send(("ready", self.ready_info()))
        while True:
            self._receive(block=not self._has_work())
            if self.stopping is not None:
                while self.inbox:
                    self._learn_batch()
                if self.stopping:
                    self.save()
                self.conn.send(("stopped", self.status()))
                return
            can_propose = not self.exhausted and self.buffered < self.queue_size
            overdue = bool(self.inbox) and time.monotonic() - self.inbox[0][0] > _YIELD_SECONDS
            if can_propose and self.buffered < self.low_water and not overdue:
                self._propose()
            elif self.inbox:
                self._learn_batch()
            elif can_propose:
                self._propose()

    def _has_work(self) -> bool:
        return bool(self.inbox) or (not self.exhausted and self.buffered < self.queue_size)

    def _receive(self, block: bool) -> None:
        """Handle every message waiting (and wait for one if `block`)."""
        while self.conn.poll(None if block else 0):
            block = False
            kind, value = self.conn.recv()
            if kind == "answers":
                now = time.monotonic()
                for row_id, task in value:
                    self.answered_tasks.add(int(task["_task_hash"]))
                    self.inbox.append((now, row_id, task))
            elif kind == "taken":
                self.buffered -= value
            elif kind == "save":
                self.conn.send(("saved", str(self.save()) if self.output is not None else None))
            elif kind == "stop":
                self.stopping = bool(value)

    def _propose(self) -> None:
        task = next(self.questions, None)
        if task is None:
            self.exhausted = True
            self.conn.send(("status", self.status()))
            return
        if int(task["_task_hash"]) in self.answered_tasks:
            self.skipped["question answered before"] += 1
            return
        self.buffered += 1
        self.conn.send(("question", task))

    def _filtered(self, source: Iterable[Task], answered_inputs: Set[int]) -> Iterator[Task]:
        seen: Set[int] = set()
        for task in source:
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
        batch = [self.inbox.popleft() for _ in range(min(self.batch_size, len(self.inbox)))]
        try:
            self._update([(row_id, task) for _, row_id, task in batch])
            if self.settings.save_every and self._since_save >= self.settings.save_every:
                self.save()
            every = self.settings.eval_every
            if self.evaluate is not None and self.n_learned // every > (self.f1_at or 0) // every:
                self._run_eval()
        except Exception as err:  # reported; the engine goes on
            self.error = f"{type(err).__name__}: {err}"
        self.n_handled += len(batch)
        self.conn.send(("status", self.status()))

    def _resume(self) -> None:
        """Learn from the answers stored after the loaded model's save."""
        recent = set(self._recent)
        low = min(recent) if recent else self._learned_max
        batch: List[Tuple[int, Task]] = []
        for stored in self.storage.iter_answers(self.dataset, after_id=low):
            if stored.id in recent:
                continue
            batch.append((stored.id, stored.task))
            if len(batch) == self.batch_size:
                self._update(batch)
                batch = []
        if batch:
            self._update(batch)

    def _update(self, batch: List[Tuple[int, Task]]) -> None:
        loss = self.loop.update([dict(task) for _, task in batch])
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


def load_state(model_dir: Path) -> Dict[str, Any]:
    """The state saved with a model (`{}` where there is none)."""
    path = Path(model_dir) / STATE_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf8"))
