"""The teach server's question book: which question is whose.

Pure Python, no locks, no pipe and no database: the `Teacher` holds its lock
around every call. The book keeps the questions the engine sent ahead (the
buffer), the questions each session holds open, the leases on them, and the
sessions seen lately, from which it sizes the buffer (two questions ready per
active session, at least `queue_size`). With `answers_per_question` N above 1,
a question handed to fewer than N sessions stays on offer (`shared`) to the
next session that has not had it, whichever comes.
"""

import time
from collections import Counter, deque
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Sequence, Set, Tuple

Task = Dict[str, Any]

# A session that asked or answered within this many seconds counts as active.
ACTIVE_SECONDS = 60.0
# Questions kept ready per active session.
READY_PER_SESSION = 2


class QuestionBook:
    """Sessions, their open questions, leases and the buffer of questions.

    queue_size (int): Questions kept ready at least.
    feed_overlap (bool): Give every session every question (default: each
        question goes to one session).
    lease (float): Seconds a question handed to a session stays its own;
        0: never taken back.
    answers_per_question (int): How many different sessions each question
        goes to (ignored with `feed_overlap`).
    answered (Iterable[int]): The `_task_hash` of every task answered before.
    clock (Callable[[], float]): The time in seconds (for tests).
    """

    def __init__(
        self,
        queue_size: int,
        *,
        feed_overlap: bool = False,
        lease: float = 0.0,
        answers_per_question: int = 1,
        answered: Iterable[int] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue_size = queue_size
        self.feed_overlap = feed_overlap
        self.lease = lease
        self.answers_per_question = 1 if feed_overlap else answers_per_question
        self.clock = clock
        self.ready: Deque[Task] = deque()
        self.open: Dict[str, Dict[int, Task]] = {}
        self.answered_tasks: Set[int] = set(answered)
        self.corrected_texts: Set[Any] = set()
        self.session_counts: Dict[str, int] = {}
        self.n_reassigned = 0
        self.n_answered_before = 0
        self._issued: List[Task] = []
        self._cursor: Dict[str, int] = {}
        # (when, session, task hash) of each question handed out, oldest first.
        self._leases: Deque[Tuple[float, str, int]] = deque()
        self._answered_by: Dict[str, Set[int]] = {}
        self._seen: Dict[str, float] = {}
        self._taken = 0
        # Questions handed to fewer than `answers_per_question` sessions, in
        # the order first handed out, and the sessions each went to (holding
        # it open or having answered it).
        self.shared: Dict[int, Task] = {}
        self._takers: Dict[int, Set[str]] = {}
        # Per question answered since the start, the sessions that answered it.
        self._answers: Dict[int, int] = {}

    def add(self, task: Task) -> None:
        """A question the engine sent: ready to be handed out."""
        self.ready.append(task)

    def reoffer(self, task: Task, sessions: Iterable[str]) -> None:
        """A question answered before a restart by fewer than
        `answers_per_question` sessions: on offer again to the sessions that
        have not had it (`sessions` have)."""
        h = int(task["_task_hash"])
        takers = set(sessions)
        self._takers[h] = takers
        self._answers[h] = len(takers)
        if len(takers) < self.answers_per_question:
            self.shared[h] = task

    def target(self) -> int:
        """How many questions the buffer should hold now: `queue_size`, or two
        per session active in the last minute if that is more."""
        horizon = self.clock() - ACTIVE_SECONDS
        for session in [s for s, when in self._seen.items() if when < horizon]:
            del self._seen[session]
        return max(self.queue_size, READY_PER_SESSION * len(self._seen))

    def pop_taken(self) -> int:
        """Questions taken from the buffer since the last call."""
        taken, self._taken = self._taken, 0
        return taken

    def top_up(self, session: str, n: int) -> List[Task]:
        """The session's open questions, topped up to `n` from the buffer (a
        question handed out and not answered stays open for its session).
        RETURNS (List[Task]): Up to `n` open questions, oldest first."""
        now = self.clock()
        self._seen[session] = now
        opened = self.open.setdefault(session, {})
        while len(opened) < n:
            task = self._take(session, now)
            if task is None:
                break
            h = int(task["_task_hash"])
            opened[h] = task
            if self.answers_per_question > 1:
                takers = self._takers.setdefault(h, set())
                takers.add(session)
                if len(takers) < self.answers_per_question:
                    self.shared[h] = task
                else:
                    self.shared.pop(h, None)
            if self.lease and not self.feed_overlap:
                self._leases.append((now, session, h))
        return list(opened.values())[:n]

    def may_get_more(self, session: str, exhausted: bool) -> bool:
        """Whether waiting can bring the session another question."""
        return not exhausted or (self.feed_overlap and self._cursor.get(session, 0) < len(self._issued))

    def finished(self, session: str, exhausted: bool) -> bool:
        """Whether no question is left for the session, now or later."""
        if not exhausted or self.ready or self._shared_for(session) is not None:
            return False
        if self.feed_overlap:
            answered = self._answered_by.get(session, set())
            return all(int(t["_task_hash"]) in answered for t in self._issued[self._cursor.get(session, 0) :])
        return True

    def record(
        self, session: str, items: Sequence[Tuple[str, Task]], results: Sequence[Tuple[int, bool]]
    ) -> List[Tuple[int, Task]]:
        """Answers just stored: their questions are closed (for every session
        unless `feed_overlap` or `answers_per_question` above 1); a correction (complete for its labels) closes
        every question about its text. RETURNS (List[Tuple[int, Task]]): The
        new answers, `(row id, task)`, for the engine."""
        self._seen[session] = self.clock()
        opened = self.open.setdefault(session, {})
        answered = self._answered_by.setdefault(session, set())
        new: List[Tuple[int, Task]] = []
        for (_, task), (row_id, is_new) in zip(items, results):
            h = int(task["_task_hash"])
            closed = [h]
            if task.get("complete"):
                text = task["_input_hash"]
                closed += [k for k, t in opened.items() if k != h and t.get("_input_hash") == text]
                self.corrected_texts.add(text)
            for question in closed:
                opened.pop(question, None)
                if question not in answered:
                    self._answers[question] = self._answers.get(question, 0) + 1
                answered.add(question)
                if not self.feed_overlap and self.answers_per_question == 1:
                    for other in self.open.values():
                        other.pop(question, None)
            if is_new:
                self.answered_tasks.add(h)
                self.session_counts[session] = self.session_counts.get(session, 0) + 1
                new.append((row_id, task))
        return new

    def answer_counts(self) -> Dict[int, int]:
        """How many questions have 1, 2, ... answers (from different sessions)
        since the start; a question with more than `answers_per_question`
        (answers to questions handed out before a restart) counts at the top."""
        top = self.answers_per_question
        counts = Counter(min(n, top) for n in self._answers.values())
        return {n: counts.get(n, 0) for n in range(1, top + 1)}

    def snapshot(self) -> Dict[str, Any]:
        """The state of the buffer, the open questions of each session and
        their leases, read without taking or changing anything.
        RETURNS (Dict[str, Any]): JSON-ready: `ready` and `shared` questions,
        `open` per session (each with `lease_left`, seconds, or None), the
        settings."""
        now = self.clock()
        until: Dict[Tuple[str, int], float] = {}
        for when, holder, h in self._leases:
            until[(holder, h)] = when + self.lease
        open_ = {
            session: [
                dict(_brief(task), lease_left=max(0.0, until[(session, h)] - now) if (session, h) in until else None)
                for h, task in opened.items()
            ]
            for session, opened in self.open.items()
            if opened
        }
        shared = [dict(_brief(task), sessions=sorted(self._takers.get(h, ()))) for h, task in self.shared.items()]
        return {
            "ready": [_brief(task) for task in self.ready],
            "shared": shared,
            "open": open_,
            "answers_per_question": self.answers_per_question,
            "feed_overlap": self.feed_overlap,
            "lease": self.lease,
            "reassigned": self.n_reassigned,
        }

    def _take(self, session: str, now: float) -> Optional[Task]:
        if not self.feed_overlap:
            expired = self._take_expired(session, now)
            if expired is not None:
                return expired
            task = self._shared_for(session)
            if task is not None:
                return task
            while self.ready:
                task = self.ready.popleft()
                self._taken += 1
                # Answered since it was queued: a client resending an answer
                # to a question it got before a restart, or a question about a
                # text corrected whole since.
                if int(task["_task_hash"]) not in self.answered_tasks and (
                    task.get("_input_hash") not in self.corrected_texts
                ):
                    return task
                self.n_answered_before += 1
            return None
        answered = self._answered_by.setdefault(session, set())
        cursor = self._cursor.get(session, 0)
        while True:
            if cursor >= len(self._issued):
                if not self.ready:
                    self._cursor[session] = cursor
                    return None
                self._issued.append(self.ready.popleft())
                self._taken += 1
            task = self._issued[cursor]
            cursor += 1
            if int(task["_task_hash"]) not in answered:
                self._cursor[session] = cursor
                return task

    def _take_expired(self, session: str, now: float) -> Optional[Task]:
        """A question whose lease ran out, taken from the session it was
        handed to (None if there is none)."""
        horizon = now - self.lease
        while self.lease and self._leases and self._leases[0][0] <= horizon:
            _, holder, h = self._leases.popleft()
            task = self.open.get(holder, {}).get(h)
            if task is None or holder == session:
                continue  # answered since, or asked again by its own session
            del self.open[holder][h]
            self.n_reassigned += 1
            if self.answers_per_question > 1:
                # The holder's slot is free again, for a session that has not
                # had the question yet.
                takers = self._takers.setdefault(h, set())
                takers.discard(holder)
                if session in takers:
                    self.shared[h] = task
                    continue
            return task
        return None

    def _shared_for(self, session: str) -> Optional[Task]:
        """The oldest question still on offer that the session has not had."""
        for h, task in self.shared.items():
            if session not in self._takers.get(h, ()):
                return task
        return None


def _brief(task: Task) -> Dict[str, Any]:
    """A question as `snapshot` lists it: its hashes, text and spans."""
    brief = {k: task[k] for k in ("_task_hash", "_input_hash", "text", "spans", "complete") if k in task}
    return brief
