"""`python -m spacy_binary_ner review DATASET_IN DATASET_OUT`: one answer per task where sessions disagree.

Serves a page (the teach server's app, auth and keys) showing each task of
DATASET_IN whose sessions answered differently: binary answers grouped by
task (`_task_hash`), corrections by text (`_input_hash`), each distinct
answer a version with the sessions that gave it, the majority's (or, on a
tie, the first given) selected. The reviewer picks one (number keys or a
click) and confirms it (`a`); it goes to DATASET_OUT under the reviewer's
session, with `meta.review` saying which version was chosen and which
sessions gave it. Tasks every session agrees on go to DATASET_OUT at start,
unseen (`--show-all` shows them too). A task already in DATASET_OUT is not
shown again, so a restart resumes where the review stopped. No model and no
engine: the grouping is `agreement.latest_by_session`'s.
"""

import sys
import threading
import uuid
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..agreement import latest_by_session
from .answers import Answer, BadAnswer
from .book import QuestionBook
from .settings import ReviewSettings, parse_review_settings
from .storage import Storage, database_url

Task = Dict[str, Any]

# The session the answers every session agrees on are stored under.
AGREED_SESSION = "agreed"


def make_item(key: Tuple[str, Any], by_session: Mapping[str, Mapping[str, Any]]) -> Tuple[Task, List[Task]]:
    """A task to review: its distinct answers (versions), each with the
    sessions that gave it, in the order first given, the majority's selected.

    key (Tuple[str, Any]): The group, as `latest_by_session` names it.
    by_session (Mapping[str, Mapping[str, Any]]): Each session's latest answer.
    RETURNS (Tuple[Task, List[Task]]): The item as the page gets it, and per
        version the answer it stands for (the first session's).
    """
    versions: List[Dict[str, Any]] = []
    tasks: List[Task] = []
    index: Dict[Any, int] = {}
    for session, task in by_session.items():
        spans = [{k: s[k] for k in ("start", "end", "label") if k in s} for s in task.get("spans") or []]
        same = (task.get("answer"), frozenset((s.get("start"), s.get("end"), s.get("label")) for s in spans))
        if same not in index:
            index[same] = len(versions)
            versions.append({"answer": task.get("answer"), "spans": spans, "sessions": []})
            tasks.append(dict(task))
        versions[index[same]]["sessions"].append(session)
    first = tasks[0]
    selected = max(range(len(versions)), key=lambda i: (len(versions[i]["sessions"]), -i))
    item: Task = {
        "_task_hash": int(first["_task_hash"]),
        "_input_hash": first.get("_input_hash"),
        "text": first.get("text", ""),
        "kind": key[0],
        "versions": versions,
        "selected": selected,
    }
    return item, tasks


class Reviewer:
    """The review's side of the teach server's app: tasks out, choices in.

    It answers the calls the app makes of a `Teacher` (questions, validate,
    answer, history, progress, queue_state) over the answer store alone.

    url (str): The database.
    dataset_in (str): The dataset reviewed.
    dataset_out (str): Where the chosen answers go.
    show_all (bool): Show the tasks every session agrees on too.
    lease (float): Seconds a task handed to a reviewer stays theirs.
    """

    view = "review"
    learns = False
    feed_overlap = False
    has_eval = False
    allow_new_tasks = False
    batch_size = 1
    engine_failure: Optional[str] = None
    error: Optional[str] = None

    def __init__(
        self, url: str, dataset_in: str, dataset_out: str, *, show_all: bool = False, lease: float = 300.0
    ) -> None:
        self.storage = Storage(url)
        self.dataset_in = dataset_in
        self.dataset = dataset_out
        self.accepting = True
        self.lock = threading.Lock()
        groups = latest_by_session((a.session, a.task) for a in self.storage.iter_answers(dataset_in))
        done = self.storage.hashes(dataset_out)[1]
        self.items: Dict[int, Task] = {}
        self._tasks: Dict[int, List[Task]] = {}
        labels = set()
        for key, by_session in groups.items():
            item, tasks = make_item(key, by_session)
            self.items[item["_task_hash"]] = item
            self._tasks[item["_task_hash"]] = tasks
            labels.update(s["label"] for v in item["versions"] for s in v["spans"] if "label" in s)
        self.labels = sorted(labels)
        agreed = [] if show_all else [h for h, item in self.items.items() if len(item["versions"]) == 1]
        self.n_agreed = len(agreed)
        # Keyed by task, so that a restart stores none of them twice.
        self.storage.add(
            dataset_out, AGREED_SESSION, [(f"agreed-{h}", self.chosen(h, 0, AGREED_SESSION)) for h in agreed]
        )
        self.to_review = [h for h in self.items if h not in agreed]
        self.book = QuestionBook(max(1, len(self.to_review)), lease=lease, answered=done)
        for h in self.to_review:
            if h not in done:
                self.book.add(self.items[h])
        self.n_stored = self.storage.count(dataset_out)

    def chosen(self, task_hash: int, version: int, by: str) -> Task:
        """The answer to store for a version of a task: the answer of the
        first session that gave it, under the task's hash, with `meta.review`."""
        item = self.items[task_hash]
        task = dict(self._tasks[task_hash][version])
        task["_task_hash"] = task_hash
        meta = dict(task.get("meta") or {})
        meta["review"] = {
            "version": version,
            "sessions": list(item["versions"][version]["sessions"]),
            "versions": len(item["versions"]),
            "majority": version == item["selected"],
            "by": by,
        }
        task["meta"] = meta
        return task

    def questions(self, session: str, n: int) -> List[Task]:
        """The session's open tasks, topped up to `n`."""
        with self.lock:
            tasks = self.book.top_up(session, n)
            self.book.pop_taken()
            return tasks

    def finished(self, session: str) -> bool:
        """Whether no task is left for the session."""
        with self.lock:
            return self.book.finished(session, True)

    def validate(self, item: Any) -> Answer:
        """A choice as the page sends it: `_task_hash`, `version` (index) and
        an optional `key`. RETURNS (Answer): Its key and the task to store
        (no record: nothing learns). Raises `BadAnswer`."""
        if not isinstance(item, dict):
            raise BadAnswer("send a JSON object with `_task_hash` and `version`")
        task_hash, version = item.get("_task_hash"), item.get("version")
        if not isinstance(task_hash, int) or task_hash not in self.items:
            raise BadAnswer("its `_task_hash` is no task of this review")
        n = len(self.items[task_hash]["versions"])
        if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < n:
            raise BadAnswer(f"`version` must be an integer from 0 to {n - 1}")
        key = item.get("key") or uuid.uuid4().hex
        if not isinstance(key, str) or len(key) > 100:
            raise BadAnswer("`key` must be a string of 1 to 100 characters (or left out)")
        return Answer(key, self.chosen(task_hash, version, "reviewer"), None)  # type: ignore[arg-type]

    def answer(self, session: str, items: Sequence[Answer]) -> List[Tuple[int, bool]]:
        """Commit the choices. RETURNS (List[Tuple[int, bool]]): Per choice
        its row id and whether it was new."""
        pairs = [(item.key, item.task) for item in items]
        results = self.storage.add(self.dataset, session, pairs)
        with self.lock:
            self.n_stored += len(self.book.record(session, pairs, results))
        return results

    def history(self, session: str, n: int) -> List[Task]:
        """The session's latest choices, newest first, each as its task with
        the `version` chosen."""
        latest = self.storage.latest(self.dataset, session=session, by_last=True)
        out = []
        for stored in latest[::-1]:
            h = int(stored.task["_task_hash"])
            if h in self.items:
                out.append(dict(self.items[h], version=stored.task["meta"]["review"]["version"]))
        return out[:n]

    def progress(self, session: Optional[str] = None) -> Dict[str, Any]:
        """Counts for the page: tasks to review, reviewed, agreed."""
        with self.lock:
            reviewed = sum(h in self.book.answered_tasks for h in self.to_review)
            return {
                "session": session,
                "session_answers": self.book.session_counts.get(session, 0) if session else None,
                "dataset_answers": self.n_stored,
                "to_review": len(self.to_review),
                "reviewed": reviewed,
                "agreed": self.n_agreed,
                "error": None,
            }

    def queue_state(self) -> Dict[str, Any]:
        """The tasks not handed out, open tasks per session, leases."""
        with self.lock:
            return self.book.snapshot()

    def correction(self, question: Any) -> Task:
        """Review has no corrections. Raises `BadAnswer`."""
        raise BadAnswer("review corrects nothing: pick a version")

    def stop_taking_answers(self) -> None:
        """From now on choices are refused (the server is stopping)."""
        self.accepting = False

    def close(self) -> None:
        """Close the database."""
        self.accepting = False
        self.storage.close()


def main(argv: Sequence[str]) -> int:
    prog = "python -m spacy_binary_ner review"
    return run(parse_review_settings(argv, prog, (__doc__ or "").split("\n\n")[0]))


def run(settings: ReviewSettings) -> int:
    """Serve the review until a stop signal.
    RETURNS (int): The exit status."""
    from .app import create_app
    from .teach import _serve

    url = database_url(settings.db)
    reviewer = Reviewer(url, settings.dataset_in, settings.dataset, show_all=settings.show_all, lease=settings.lease)
    if not reviewer.items:
        reviewer.close()
        print(f"review: no answers in the dataset {settings.dataset_in!r} in {url}", file=sys.stderr)
        return 1
    app = create_app(reviewer, token=settings.auth)  # type: ignore[arg-type]
    page = f"http://{settings.host}:{settings.port}/?session=default" + (
        f"&token={settings.auth}" if settings.auth else ""
    )
    print(
        f"review: {len(reviewer.items)} tasks in {settings.dataset_in!r}: {len(reviewer.to_review)} to review, "
        f"{reviewer.n_agreed} agreed on (stored in {settings.dataset!r})",
        flush=True,
    )
    print(f"review: open {page}  (Ctrl-C, SIGTERM or SIGHUP stops)", flush=True)

    def on_signal(name: str) -> None:
        reviewer.stop_taking_answers()
        print(f"review: {name}: stopping", flush=True)

    _serve(app, settings, on_signal)  # type: ignore[arg-type]
    reviewer.close()
    print("review: stopped", flush=True)
    return 0
