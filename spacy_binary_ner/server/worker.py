"""The teach server's side of the engine: answers in, questions out.

`Teacher` joins three parts that change apart: the answer store (`storage`,
committed before a request is acknowledged), the question book (`book`:
sessions, open questions, leases, the buffer) and the engine client
(`engine_client`: the learning engine's process, its pipe and threads). The
engine sends questions ahead into the book's buffer; a request takes its next
question from there and hands the answers it stored to the sender thread, so
it never waits for the model, the pipe or the other process.

Every question handed out carries `_sig`, a keyed hash of the dataset, its
`_task_hash`, text and spans; an answer must bring it back unchanged with the
question's text and spans (the key is kept in the database, so a question
handed out before a restart can still be answered). A correction's `_sig` is
of its text and the labels it is complete for, not of its spans, which the
person changes. A server started with `allow_new_tasks` also stores answers
to tasks it never asked.

If the engine dies, the server goes on storing answers and says so: a request
for questions, when none is left, gets the reason instead of waiting.
"""

import hashlib
import hmac
import json
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import spacy
from spacy.language import Language

from ..loop import is_correction
from .answers import Answer, BadAnswer, read_answer, read_textcat_answer
from .book import QuestionBook
from .engine import EngineSettings, learnable, load_state
from .engine_client import EngineClient, EngineError
from .storage import Storage

Task = Dict[str, Any]

__all__ = ["BadAnswer", "EngineError", "Teacher", "load_state"]

SIGNATURE = "_sig"


class Teacher:
    """Questions out, answers in, the model learning in another process.

    settings (EngineSettings): How the engine builds its loop and source,
        the database, dataset, output folder, batch and queue sizes.
    feed_overlap (bool): Give every session every question (default: each
        question goes to one session).
    lease (float): Seconds a question handed to a session stays its own: a
        question not answered by then goes to the next session that asks for
        one (a session that went away leaves nothing stuck). 0: never.
    answers_per_question (int): How many different sessions each question
        goes to.
    allow_new_tasks (bool): Store answers to tasks the server never asked
        (default: only answers to questions it handed out in this dataset).
    start_timeout (float): Most seconds to wait for the engine to be ready.
    """

    def __init__(
        self,
        settings: EngineSettings,
        *,
        feed_overlap: bool = False,
        lease: float = 0.0,
        answers_per_question: int = 1,
        allow_new_tasks: bool = False,
        start_timeout: float = 600.0,
    ) -> None:
        self.settings = settings
        self.storage = Storage(settings.storage_url)
        self.dataset = settings.dataset
        self.output = settings.output
        self.batch_size = settings.batch_size
        self.feed_overlap = feed_overlap
        self.allow_new_tasks = allow_new_tasks
        # The page's view: one span a question, text categories, or whole texts to correct.
        self.view = settings.questions if settings.questions in ("teach", "textcat") else "correct"
        self.learns = settings.learns
        self.accepting = True
        self.cond = threading.Condition()
        self._secret = self.storage.secret(self.dataset).encode("utf8")
        self.n_stored = self.storage.count(self.dataset)
        _, answered = self.storage.hashes(self.dataset)
        self.book = QuestionBook(
            settings.queue_size,
            feed_overlap=feed_overlap,
            lease=lease,
            answers_per_question=answers_per_question,
            answered=answered,
        )
        self._want = settings.queue_size
        if self.book.answers_per_question > 1:
            self._reoffer_unfinished()
        # A first blank pipeline loads every package's registered factories
        # (spacy-transformers imports transformers: seconds), so it is made
        # while the engine starts rather than after.
        warm_up = threading.Thread(target=spacy.blank, args=("xx",), name="sbn-warm-up", daemon=True)
        warm_up.start()
        deadline = time.monotonic() + start_timeout
        self.engine = EngineClient(settings, self.cond, self._add_question, start_timeout)
        warm_up.join()
        info = self.engine.info
        self.labels: List[str] = info["labels"]
        # For text categories: whether they exclude each other (a choice selects one).
        self.exclusive: Optional[bool] = info.get("exclusive")
        self.has_eval: bool = info["eval"]
        self.n_resumed: int = info["resumed"]
        # The tokenizer of the engine's pipeline, to check answers as the reader will read them.
        self.nlp: Language = spacy.blank(info["lang"], config={"nlp": {"tokenizer": info["tokenizer_config"]}})
        self.nlp.tokenizer.from_bytes(info["tokenizer"])
        # Ready means questions ready: the first page load gets a full set.
        with self.cond:
            while len(self.book.ready) < settings.queue_size and not self.exhausted and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))

    def _reoffer_unfinished(self) -> None:
        """After a restart, each question answered by fewer than
        `answers_per_question` sessions goes on offer again to the others: a
        span or label question as it was asked (its answer taken off). A
        correction or a choice is not: the answer changed what it shows, and
        a second person would see the first one's work."""
        sessions: Dict[int, set] = {}
        asked: Dict[int, Task] = {}
        for stored in self.storage.iter_answers(self.dataset):
            task = stored.task
            if is_correction(task) or "options" in task:
                continue
            h = int(task["_task_hash"])
            sessions.setdefault(h, set()).add(stored.session)
            asked[h] = task
        for h, had in sessions.items():
            if len(had) < self.book.answers_per_question:
                question = {k: v for k, v in asked[h].items() if k not in ("answer", "key")}
                question[SIGNATURE] = self.signature(question)
                self.book.reoffer(question, had)

    @property
    def engine_pid(self) -> Optional[int]:
        """The process id of the learning engine."""
        return self.engine.process.pid

    @property
    def exhausted(self) -> bool:
        """Whether the engine sends no more questions (the source is used up,
        or the engine stopped)."""
        return self.engine.exhausted

    @property
    def engine_failure(self) -> Optional[str]:
        """Why the engine stopped, if it stopped of itself."""
        return self.engine.failure

    @property
    def error(self) -> Optional[str]:
        """The engine's last error, to show on the page."""
        return self.engine.error

    def _add_question(self, task: Task) -> None:
        task[SIGNATURE] = self.signature(task)
        self.book.add(task)

    def signature(self, task: Task) -> str:
        """The keyed hash an answer to `task` must bring back: of the dataset,
        the task's `_task_hash`, text and spans (offsets and labels); of a
        correction, its labels instead of its spans; of a text-category
        question, its label or its options' ids (not the options chosen)."""
        if self.view == "textcat":
            asked: Any = ["label", task.get("label")]
            if "options" in task:
                options = task["options"] if isinstance(task["options"], list) else []
                asked = ["options", [o.get("id") if isinstance(o, dict) else o for o in options]]
        elif is_correction(task):
            asked = ["complete", task["complete"]]
        else:
            asked = [[s.get("start"), s.get("end"), s.get("label")] for s in task.get("spans") or []]
        message = json.dumps([self.dataset, task.get("_task_hash"), task.get("text"), asked], ensure_ascii=False)
        return hmac.new(self._secret, message.encode("utf8"), hashlib.sha256).hexdigest()[:32]

    # Questions -----------------------------------------------------------------

    def questions(self, session: str, n: int, wait: float = 5.0) -> List[Task]:
        """The session's open questions, topped up to `n` from the buffer.

        A question handed out and not yet answered stays open for its session,
        so a reloaded page gets it again. Waits up to `wait` seconds for the
        first question if none is ready.

        RETURNS (List[Task]): The open questions, oldest first.
        """
        deadline = time.monotonic() + wait
        with self.cond:
            while True:
                tasks = self.book.top_up(session, n)
                self._tell_engine()
                left = deadline - time.monotonic()
                if tasks or left <= 0 or not self.book.may_get_more(session, self.exhausted):
                    return tasks
                self.cond.wait(left)

    def _tell_engine(self) -> None:
        """Queue for the engine the questions taken and the buffer's new size."""
        taken = self.book.pop_taken()
        if taken:
            self.engine.queue("taken", taken)
        want = self.book.target()
        if want != self._want:
            self._want = want
            self.engine.queue("want", want)

    def correction(self, question: Any, timeout: float = 30.0) -> Task:
        """A question handed out (as it was) turned into a correction of its
        whole text: the model's entities plus the question's span, signed.

        question (Any): The question, as the client has it.
        timeout (float): Most seconds to wait for the engine.
        RETURNS (Task): The correction task.
        RAISES (BadAnswer): It is no question of this server, or cannot be
            corrected; `EngineError` if the engine gave no reply.
        """
        if not isinstance(question, dict) or not isinstance(question.get("text"), str):
            raise BadAnswer("send the question as handed out: a JSON object with its `text`")
        if not self.allow_new_tasks and not (
            isinstance(question.get(SIGNATURE), str)
            and hmac.compare_digest(question[SIGNATURE], self.signature(question))
        ):
            raise BadAnswer(f"it is no question of this server: send it back as handed out, with its `{SIGNATURE}`")
        fields = ("text", "tokens", "spans", "meta", "_input_hash", "_task_hash")
        reply = self.engine.correction({k: question[k] for k in fields if k in question}, timeout)
        if reply is None:
            raise EngineError(f"the learning engine gave no correction within {timeout:.0f} s: {self.error or 'busy'}")
        if isinstance(reply, str):
            raise BadAnswer(f"its text cannot be corrected: {reply}")
        reply[SIGNATURE] = self.signature(reply)
        return reply

    def finished(self, session: str) -> bool:
        """Whether the source is used up: no question is left for the session,
        now or later (a session that gets no question and no `finished` should
        ask again: the buffer is being refilled)."""
        with self.cond:
            return self.book.finished(session, self.exhausted)

    # Answers -------------------------------------------------------------------

    def validate(self, item: Any) -> Answer:
        """Check an answer as a client sent it (see `answers.read_answer`),
        and that it answers a question handed out in this dataset, as asked
        (unless `allow_new_tasks`).
        RETURNS (Answer): Its key, the task to store and the parsed record.
        Raises `BadAnswer`."""
        if self.view == "textcat":
            checked = read_textcat_answer(item, self.labels)
        else:
            checked = read_answer(item, self.labels, self.nlp)
        task = checked.task
        if self.allow_new_tasks:
            return checked
        given = item.get(SIGNATURE)
        if not isinstance(given, str) or not isinstance(item.get("_task_hash"), int):
            raise BadAnswer(
                "it answers no question of this server: send back the task as handed out, with its "
                f"`_task_hash` and `{SIGNATURE}` (or start the server with --allow-new-tasks)"
            )
        if task["_task_hash"] != item["_task_hash"] or not hmac.compare_digest(
            given, self.signature(dict(task, _task_hash=item["_task_hash"]))
        ):
            raise BadAnswer(
                "its text, spans (label, options) or `_task_hash` are not those of the question handed out in this "
                "dataset "
                "(altered, or asked in another dataset)"
            )
        return checked

    def answer(self, session: str, items: Sequence[Answer]) -> List[Tuple[int, bool]]:
        """Commit answers, then hand the new ones to the engine, parsed.

        items (Sequence[Answer]): Answers from `validate`.
        RETURNS (List[Tuple[int, bool]]): Per answer its row id and whether it
            was new (False: already stored under its key).
        """
        pairs = [(item.key, item.task) for item in items]
        results = self.storage.add(self.dataset, session, pairs)
        learn = [
            (row_id, int(a.task["_task_hash"]), a.record)
            for a, (row_id, is_new) in zip(items, results)
            if is_new and self.learns and learnable(a.record)
        ]
        with self.cond:
            self.n_stored += len(self.book.record(session, pairs, results))
            self.engine.queue_answers(learn)
        return results

    def history(self, session: str, n: int) -> List[Task]:
        """The session's latest answers, newest first, each signed so that it
        can be answered again (a correction)."""
        latest = self.storage.latest(self.dataset, session=session, by_last=True)
        tasks = [dict(stored.task) for stored in latest[::-1][:n]]
        for task in tasks:
            task[SIGNATURE] = self.signature(task)
        return tasks

    def wait_learned(self, timeout: float = 60.0) -> bool:
        """Wait until the engine has learned from every answer handed to it.
        RETURNS (bool): False if `timeout` seconds passed first or the engine stopped."""
        return self.engine.wait_learned(timeout)

    def save(self, timeout: float = 600.0) -> bool:
        """Have the engine save the model (the weights it proposes with) and
        the ids of the answers it learned from, to `output/model`.
        RETURNS (bool): Whether it saved within `timeout` seconds."""
        if self.output is None:
            return False
        return self.engine.save(timeout)

    def progress(self, session: Optional[str] = None) -> Dict[str, Any]:
        """Counts for the page: answers in the session and the dataset, the
        accept rate, the recent loss and the F1 on the gold set."""
        with self.cond:
            status = dict(self.engine.status)
            ready = len(self.book.ready)
            error = self.error
            session_answers = self.book.session_counts.get(session, 0) if session else None
            answered_before = self.book.n_answered_before
            n_stored = self.n_stored
            answer_counts = self.book.answer_counts()
        decided = status["accept"] + status["reject"]
        skipped = dict(status["skipped"])
        skipped["question answered before"] = skipped.get("question answered before", 0) + answered_before
        return {
            "session": session,
            "session_answers": session_answers,
            "dataset_answers": n_stored,
            "learned": status["learned"],
            "relearning": status.get("backlog", 0),
            "updates": status["updates"],
            "accept_rate": status["accept"] / decided if decided else None,
            "loss": status["loss"],
            "f1": status["f1"],
            "f1_at": status["f1_at"],
            "queue": ready,
            "exhausted": self.exhausted and not ready,
            "skipped": skipped,
            "reassigned": self.book.n_reassigned,
            "answers_per_question": self.book.answers_per_question,
            "questions_by_answers": {str(n): count for n, count in answer_counts.items()},
            "error": error,
        }

    def queue_state(self) -> Dict[str, Any]:
        """The book's buffer, open questions and leases (`QuestionBook.snapshot`),
        taking nothing."""
        with self.cond:
            return self.book.snapshot()

    def stop_taking_answers(self) -> None:
        """From now on answers are refused (the server is stopping)."""
        self.accepting = False

    def close(self, save: bool = True, timeout: float = 600.0) -> bool:
        """Stop the engine (it first learns from the answers left, then saves
        the model if `save`; past `timeout` seconds it saves what it learned)
        and wait for it to exit. RETURNS (bool): Whether it stopped cleanly."""
        self.accepting = False
        clean = self.engine.close(save and self.output is not None, timeout)
        self.storage.close()
        return clean
