"""The engine behind the teach server: the annotation loop, a prefetch queue of
questions, and a worker thread that learns from stored answers.

Two threads own the model, taking turns through one lock: the *producer*
keeps `queue_size` questions ready (it pulls them from `AnnotationLoop`, which
scores texts with the weights of the latest update), and the *learner* takes
the answers the server has committed and calls `AnnotationLoop.update` with up
to `batch_size` of them at a time. Request handlers never touch the model:
they take questions from the queue and hand answers over, so a question is
served without waiting for an update.

The model is saved to `output/model` every `save_every` answers and on
`close()`, with the ids of the answers it has learned from; a restart loads
it and replays the answers stored after it.
"""

import json
import shutil
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from spacy.language import Language

from ..data import REASONS, ReadStats, records_to_examples
from ..loop import AnnotationLoop, set_hashes
from .storage import ANSWERS, Storage

Task = Dict[str, Any]
STATE_FILE = "sbn_teach_state.json"
_RECENT_IDS = 1000
_YIELD_SECONDS = 2.0


class BadAnswer(ValueError):
    """An answer the server will not store; the message says why."""


class Teacher:
    """Questions out, answers in, the model learning in between.

    loop (AnnotationLoop): The loop, with its pipeline and optimizer.
    storage (Storage): Where answers are committed.
    dataset (str): The dataset name.
    source (Iterable[Task]): Incoming tasks (`text`, optional `tokens`, `meta`).
    output (Optional[Path]): Folder for the saved model; None to never save.
    batch_size (int): Most answers per update.
    queue_size (int): Questions kept ready.
    save_every (int): Answers between saves (0: only on close).
    feed_overlap (bool): Give every session every question (default: each
        question goes to one session).
    evaluate (Optional[Callable[[], float]]): Computes the F1 on a gold set,
        called by the learner every `eval_every` answers.
    eval_every (int): Answers between evaluations.
    learned_ids (Sequence[int]): Ids of stored answers the loaded model has
        learned from already (see `load_state`).
    """

    def __init__(
        self,
        loop: AnnotationLoop,
        storage: Storage,
        dataset: str,
        source: Iterable[Task],
        *,
        output: Optional[Path] = None,
        batch_size: int = 10,
        queue_size: int = 20,
        save_every: int = 100,
        feed_overlap: bool = False,
        evaluate: Optional[Callable[[], float]] = None,
        eval_every: int = 100,
        state: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.loop = loop
        self.nlp: Language = loop.nlp
        self.storage = storage
        self.dataset = dataset
        self.output = output
        self.batch_size = batch_size
        self.queue_size = queue_size
        self.save_every = save_every
        self.feed_overlap = feed_overlap
        self.evaluate = evaluate
        self.eval_every = eval_every
        self.labels = list(loop.pipe.labels)
        self.model_lock = threading.Lock()
        self.cond = threading.Condition()
        self._stop = False
        self._ready: Deque[Task] = deque()
        self._issued: List[Task] = []
        self._cursor: Dict[str, int] = {}
        self._open: Dict[str, Dict[int, Task]] = {}
        self._inbox: Deque[Tuple[int, Task]] = deque()
        self._updating = False
        self._low_water = max(1, queue_size // 2)
        self.exhausted = False
        self.error: Optional[str] = None
        answered_inputs, self.answered_tasks = storage.hashes(dataset)
        self._answered_by: Dict[str, Set[int]] = {}
        self.session_counts: Dict[str, int] = {}
        self.losses: Deque[float] = deque(maxlen=20)
        self.n_updates = 0
        self.n_learned = 0
        self.f1: Optional[float] = None
        self.f1_at: Optional[int] = None
        self.skipped: Dict[str, int] = {
            "text answered before": 0,
            "text repeated in the source": 0,
            "question answered before": 0,
        }
        state = state or {}
        self._learned_max = int(state.get("max_id", 0))
        self._recent: Deque[int] = deque(state.get("recent_ids", []), maxlen=_RECENT_IDS)
        self._since_save = 0
        self._resume()
        if evaluate is not None:
            self._run_eval()
        self._questions = loop(self._filtered(source, answered_inputs))
        self._producer = threading.Thread(target=self._produce, name="sbn-producer", daemon=True)
        self._learner = threading.Thread(target=self._learn, name="sbn-learner", daemon=True)
        self._producer.start()
        self._learner.start()

    # Source and questions ----------------------------------------------------

    def _filtered(self, source: Iterable[Task], answered_inputs: Set[int]) -> Iterator[Task]:
        seen: Set[int] = set()
        for task in source:
            if self._stop:
                return
            h = int(task["_input_hash"])
            if h in answered_inputs:
                self.skipped["text answered before"] += 1
                continue
            if h in seen:
                self.skipped["text repeated in the source"] += 1
                continue
            seen.add(h)
            yield task

    def _produce(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self._stop and len(self._ready) >= self.queue_size:
                        self.cond.wait()
                    if self._stop:
                        return
                with self.model_lock:
                    task = next(self._questions, None)
                with self.cond:
                    if task is None:
                        self.exhausted = True
                        self.cond.notify_all()
                        return
                    if int(task["_task_hash"]) in self.answered_tasks:
                        self.skipped["question answered before"] += 1
                        continue
                    self._ready.append(task)
                    self.cond.notify_all()
        except Exception as err:  # the server stays up and reports it
            with self.cond:
                self.error = f"{type(err).__name__}: {err}"
                self.exhausted = True
                self.cond.notify_all()

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
                    opened[int(task["_task_hash"])] = task
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
            while self._ready:
                task = self._ready.popleft()
                self.cond.notify_all()
                # Answered since it was queued: a client resending an answer
                # to a question it got before a restart.
                if int(task["_task_hash"]) not in self.answered_tasks:
                    return task
                self.skipped["question answered before"] += 1
            return None
        answered = self._answered_by.setdefault(session, set())
        cursor = self._cursor.get(session, 0)
        while True:
            if cursor >= len(self._issued):
                if not self._ready:
                    self._cursor[session] = cursor
                    return None
                self._issued.append(self._ready.popleft())
                self.cond.notify_all()
            task = self._issued[cursor]
            cursor += 1
            if int(task["_task_hash"]) not in answered:
                self._cursor[session] = cursor
                return task

    # Answers -----------------------------------------------------------------

    def validate(self, item: Any) -> Tuple[str, Task]:
        """Check an answer as a client sent it; RETURNS (Tuple[str, Task]) its
        key and the task to store (hashes recomputed here). Raises `BadAnswer`."""
        if not isinstance(item, dict):
            raise BadAnswer(f"an answer must be a JSON object, not {type(item).__name__}")
        answer = item.get("answer")
        if answer not in ANSWERS:
            raise BadAnswer(f"`answer` must be one of {', '.join(ANSWERS)}, not {str(answer)[:40]!r}")
        text = item.get("text")
        if not isinstance(text, str) or not text:
            raise BadAnswer("an answer needs the task's `text` (a non-empty string)")
        spans = item.get("spans")
        if not isinstance(spans, list) or not spans:
            raise BadAnswer("an answer needs the task's `spans` (a list with the span answered)")
        clean_spans = []
        for span in spans:
            if not isinstance(span, dict):
                raise BadAnswer("each span must be an object {start, end, label}")
            start, end, label = span.get("start"), span.get("end"), span.get("label")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
                raise BadAnswer(
                    f"span offsets {start!r}..{end!r} must be integers with 0 <= start < end <= {len(text)}"
                )
            if label not in self.labels:
                raise BadAnswer(f"unknown label {str(label)[:40]!r}: the labels are {', '.join(self.labels)}")
            clean = {"start": start, "end": end, "label": label}
            for k in ("token_start", "token_end"):
                if isinstance(span.get(k), int):
                    clean[k] = span[k]
            clean_spans.append(clean)
        key = item.get("key")
        if key is None:
            key = uuid.uuid4().hex
        if not isinstance(key, str) or not 0 < len(key) <= 100:
            raise BadAnswer("`key` must be a string of 1 to 100 characters (or left out)")
        task: Task = {"text": text, "spans": clean_spans, "answer": answer}
        if item.get("tokens") is not None:
            task["tokens"] = item["tokens"]
        meta = item.get("meta")
        if isinstance(meta, dict):
            task["meta"] = {k: v for k, v in meta.items() if k in ("score", "source", "pattern", "pool_index")}
        if isinstance(item.get("_input_hash"), int):
            task["_input_hash"] = item["_input_hash"]
        set_hashes(task)
        # The reader (the one parser of teach records) decides whether the
        # answer is usable: tokens, span alignment, length.
        read = ReadStats()
        records_to_examples(self.nlp, [task], labels=self.labels, stats=read)
        problems = {reason: n for reason, n in read.skipped.items() if reason != "ignore answer"}
        if problems:
            reason = next(iter(problems))
            raise BadAnswer(f"the reader would skip it: {reason} ({REASONS.get(reason, '')})")
        return key, task

    def answer(self, session: str, items: Sequence[Tuple[str, Task]]) -> List[Tuple[int, bool]]:
        """Commit answers, then hand the new ones to the learner.

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
                    self._inbox.append((row_id, task))
            self.cond.notify_all()
        return results

    # Learning ----------------------------------------------------------------

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
        self.n_resumed = self.n_learned

    def _update(self, batch: List[Tuple[int, Task]]) -> None:
        with self.model_lock:
            loss = self.loop.update([dict(task) for _, task in batch])
        self.losses.append(loss)
        self.n_updates += 1
        self.n_learned += len(batch)
        self._since_save += len(batch)
        for row_id, _ in batch:
            self._recent.append(row_id)
            self._learned_max = max(self._learned_max, row_id)

    def _learn(self) -> None:
        while True:
            with self.cond:
                while not self._stop and not self._inbox:
                    self.cond.wait()
                if self._stop and not self._inbox:
                    return
                # Questions first: while the queue is low the producer gets the
                # model, so that a session never waits for an update (for at
                # most `_YIELD_SECONDS` per update, so that learning goes on).
                deadline = time.monotonic() + _YIELD_SECONDS
                while (
                    not self._stop
                    and not self.exhausted
                    and len(self._ready) < self._low_water
                    and time.monotonic() < deadline
                ):
                    self.cond.wait(max(0.0, deadline - time.monotonic()))
                batch = [self._inbox.popleft() for _ in range(min(self.batch_size, len(self._inbox)))]
                self._updating = True
            try:
                self._update(batch)
                if self.save_every and self._since_save >= self.save_every:
                    self.save()
                if (
                    self.evaluate is not None
                    and self.n_learned // self.eval_every > (self.f1_at or 0) // self.eval_every
                ):
                    self._run_eval()
            except Exception as err:
                self.error = f"{type(err).__name__}: {err}"
            finally:
                with self.cond:
                    self._updating = False
                    self.cond.notify_all()

    def wait_learned(self, timeout: float = 60.0) -> bool:
        """Wait until every answer handed over has been learned from.
        RETURNS (bool): False if `timeout` seconds passed first."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._inbox or self._updating:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def _run_eval(self) -> None:
        assert self.evaluate is not None
        with self.model_lock:
            self.f1 = float(self.evaluate())
        self.f1_at = self.n_learned

    def save(self) -> Optional[Path]:
        """Save the model (the weights the loop proposes with) and the ids of
        the answers it learned from. RETURNS (Optional[Path]): The folder."""
        if self.output is None:
            return None
        self.output.mkdir(parents=True, exist_ok=True)
        final, tmp, old = self.output / "model", self.output / "model.tmp", self.output / "model.old"
        shutil.rmtree(tmp, ignore_errors=True)
        with self.model_lock:
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

    def progress(self, session: Optional[str] = None) -> Dict[str, Any]:
        """Counts for the page: answers in the session and the dataset, the
        accept rate, the recent loss and the F1 on the gold set."""
        counts = self.loop.answer_counts
        decided = counts["accept"] + counts["reject"]
        with self.cond:
            ready = len(self._ready)
        return {
            "session": session,
            "session_answers": self.session_counts.get(session, 0) if session else None,
            "dataset_answers": self.storage.count(self.dataset),
            "learned": self.n_learned,
            "updates": self.n_updates,
            "accept_rate": counts["accept"] / decided if decided else None,
            "loss": sum(self.losses) / len(self.losses) if self.losses else None,
            "f1": self.f1,
            "f1_at": self.f1_at,
            "queue": ready,
            "exhausted": self.exhausted and not ready,
            "skipped": dict(self.skipped),
            "error": self.error,
        }

    def close(self, save: bool = True) -> None:
        """Stop the threads (the learner first takes in the answers left), and save."""
        with self.cond:
            self._stop = True
            self.cond.notify_all()
        self._learner.join()
        self._producer.join(timeout=30)
        if save:
            self.save()


def load_state(model_dir: Path) -> Dict[str, Any]:
    """The state saved with a model (`{}` where there is none)."""
    path = Path(model_dir) / STATE_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf8"))
