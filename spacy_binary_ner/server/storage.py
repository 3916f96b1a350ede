"""Answers in a real database: SQLAlchemy 2 Core, SQLite (WAL) by default, PostgreSQL by URL.

One table, `answers`: every answer ever given, in order, with its dataset,
session, the task's `_input_hash` / `_task_hash`, the answer and the whole task
as JSON. A later answer to the same `_task_hash` supersedes an earlier one (the
reader's rule: the later answer wins); nothing is ever updated in place. Each
answer carries a `key` unique within its dataset, so a client that resends an
answer whose acknowledgement it never received does not store it twice.
"""

import json
import os
import secrets
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine

metadata = MetaData()
# One `Storage.add` call: dataset, session and its `(key, task)` pairs.
_AddCall = Tuple[str, str, Sequence[Tuple[str, Dict[str, Any]]]]

answers_table = Table(
    "sbn_answers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset", String(200), nullable=False),
    Column("session", String(200), nullable=False),
    Column("key", String(100), nullable=False),
    Column("input_hash", BigInteger, nullable=False),
    Column("task_hash", BigInteger, nullable=False),
    Column("answer", String(10), nullable=False),
    Column("task", Text, nullable=False),
    Column("created", Float, nullable=False),
    UniqueConstraint("dataset", "key", name="sbn_answers_dataset_key"),
    Index("sbn_answers_dataset_id", "dataset", "id"),
)

# One random key per dataset, kept with its answers: the server signs the
# questions it hands out with it, so that an answer to a question asked before
# a restart is still known as one.
secrets_table = Table(
    "sbn_secrets",
    metadata,
    Column("dataset", String(200), primary_key=True),
    Column("secret", String(64), nullable=False),
)

DB_ENV = "SBN_TEACH_DB"
DEFAULT_DB = "sbn-teach.sqlite3"
DB_HELP = f"SQLAlchemy URL or SQLite file (default: env {DB_ENV}, else ./{DEFAULT_DB})"


def database_url(value: Optional[str] = None) -> str:
    """The database URL: `value` (a URL, or the path of a SQLite file), else
    the environment variable `SBN_TEACH_DB`, else `./sbn-teach.sqlite3`."""
    value = value or os.environ.get(DB_ENV) or DEFAULT_DB
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).resolve()}"


def database_error(value: Optional[str], argument: str = "--db") -> Optional[str]:
    """Whether a command that reads answers can open this database, or None:
    a SQLite file (given, or the default) must exist, so that reading does
    not make an empty one. A URL is not checked here.

    value (Optional[str]): The `--db` given, or None.
    argument (str): The argument's name, for the message.
    RETURNS (Optional[str]): The message, or None.
    """
    url = database_url(value)
    if not url.startswith("sqlite:///"):
        return None
    path = Path(url[len("sqlite:///") :])
    if not path.is_file():
        return f"argument {argument}: no SQLite file '{path}': give the file teach wrote (or a database URL)"
    return None


class StoredAnswer:
    """One stored answer: its row id, session, key and the task with `answer`."""

    __slots__ = ("id", "session", "key", "task", "created")

    def __init__(self, id: int, session: str, key: str, task: Dict[str, Any], created: float) -> None:
        self.id = id
        self.session = session
        self.key = key
        self.task = task
        self.created = created


class Storage:
    """The answer store.

    url (str): A SQLAlchemy URL: `sqlite:///answers.db` (WAL mode, synchronous
        FULL: an acknowledged answer survives a crash) or
        `postgresql+psycopg://user:password@host/db`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: Dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        # SQLite takes one writer at a time; taking turns here avoids its
        # busy-wait and "database is locked" under many sessions, and answers
        # that arrive together are committed together.
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._group = _GroupCommit(self._add_all, self._write_lock) if self._write_lock is not None else None
        metadata.create_all(self.engine)
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        self._insert = insert

    def close(self) -> None:
        """Close every connection."""
        self.engine.dispose()

    def add(self, dataset: str, session: str, items: Sequence[Tuple[str, Dict[str, Any]]]) -> List[Tuple[int, bool]]:
        """Store answers in one transaction, committed when this returns.

        On SQLite, calls from several threads at once are committed together
        (one transaction, one sync to disk for all: a group commit); each call
        still returns only after the commit that holds its answers.

        dataset (str): The dataset.
        session (str): The session that answered.
        items (Sequence[Tuple[str, Dict[str, Any]]]): `(key, task)` pairs, each
            task with `answer`, `_input_hash` and `_task_hash` set.
        RETURNS (List[Tuple[int, bool]]): Per item its row id and whether it is
            new (False: the key was stored before, by this or another call).
        """
        if self._group is not None:
            return self._group.submit((dataset, session, items))
        return self._add_all([(dataset, session, items)])[0]

    def _add_all(self, calls: Sequence[_AddCall]) -> List[List[Tuple[int, bool]]]:
        now = time.time()
        outs: List[List[Tuple[int, bool]]] = []
        with self.engine.begin() as conn:
            for dataset, session, items in calls:
                out: List[Tuple[int, bool]] = []
                for key, task in items:
                    out.append(self._insert_one(conn, dataset, session, key, task, now))
                outs.append(out)
        return outs

    def _insert_one(
        self, conn: Any, dataset: str, session: str, key: str, task: Dict[str, Any], now: float
    ) -> Tuple[int, bool]:
        row = {
            "dataset": dataset,
            "session": session,
            "key": key,
            "input_hash": int(task["_input_hash"]),
            "task_hash": int(task["_task_hash"]),
            "answer": task["answer"],
            "task": json.dumps(task, ensure_ascii=False, allow_nan=False),
            "created": now,
        }
        stmt = self._insert(answers_table).values(**row).on_conflict_do_nothing(index_elements=["dataset", "key"])
        new_id = conn.execute(stmt.returning(answers_table.c.id)).scalar()
        if new_id is not None:
            return int(new_id), True
        old = conn.execute(
            select(answers_table.c.id).where(answers_table.c.dataset == dataset, answers_table.c.key == key)
        ).scalar_one()
        return int(old), False

    def secret(self, dataset: str) -> str:
        """The dataset's signing key, made the first time it is asked for."""
        lock = self._write_lock or _NO_LOCK
        query = select(secrets_table.c.secret).where(secrets_table.c.dataset == dataset)
        with lock, self.engine.begin() as conn:
            stmt = self._insert(secrets_table).values(dataset=dataset, secret=secrets.token_hex(32))
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["dataset"]))
            return str(conn.execute(query).scalar_one())

    def iter_answers(
        self,
        dataset: str,
        *,
        session: Optional[str] = None,
        after_id: int = 0,
        batch: int = 1000,
    ) -> Iterator[StoredAnswer]:
        """Every answer of a dataset in the order given (row id), read in
        batches so that a large dataset is never held in memory at once."""
        last = after_id
        while True:
            query = select(
                answers_table.c.id,
                answers_table.c.session,
                answers_table.c.key,
                answers_table.c.task,
                answers_table.c.created,
            ).where(answers_table.c.dataset == dataset, answers_table.c.id > last)
            if session is not None:
                query = query.where(answers_table.c.session == session)
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(answers_table.c.id).limit(batch)).all()
            if not rows:
                return
            for row in rows:
                yield StoredAnswer(row.id, row.session, row.key, json.loads(row.task), row.created)
            last = rows[-1].id

    def latest(self, dataset: str, *, session: Optional[str] = None, by_last: bool = False) -> List[StoredAnswer]:
        """One answer per task (`_task_hash`): the latest, in the order the
        tasks were first answered (`by_last`: in the order of those latest
        answers)."""
        latest: Dict[int, StoredAnswer] = {}
        first: Dict[int, int] = {}
        for stored in self.iter_answers(dataset, session=session):
            h = int(stored.task["_task_hash"])
            first.setdefault(h, stored.id)
            latest[h] = stored
        if by_last:
            return sorted(latest.values(), key=lambda stored: stored.id)
        return [latest[h] for h in sorted(latest, key=first.__getitem__)]

    def hashes(self, dataset: str) -> Tuple[Set[int], Set[int]]:
        """The `_input_hash` and `_task_hash` values answered in a dataset."""
        query = select(answers_table.c.input_hash, answers_table.c.task_hash).where(
            answers_table.c.dataset == dataset,
        )
        inputs: Set[int] = set()
        tasks: Set[int] = set()
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                inputs.add(int(row.input_hash))
                tasks.add(int(row.task_hash))
        return inputs, tasks

    def count(self, dataset: str, *, session: Optional[str] = None) -> int:
        """Answers stored in a dataset (every answer, corrections included)."""
        query = select(func.count()).select_from(answers_table).where(answers_table.c.dataset == dataset)
        if session is not None:
            query = query.where(answers_table.c.session == session)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def datasets(self) -> Dict[str, int]:
        """Every dataset and its number of stored answers."""
        query = select(answers_table.c.dataset, func.count()).group_by(answers_table.c.dataset)
        with self.engine.connect() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}

    def stats(self, dataset: str) -> Dict[str, Any]:
        """Counts of a dataset's latest answers per label, per answer and per
        session, and the number of answers stored in all."""
        latest = self.latest(dataset)
        by_label: Dict[str, Counter] = {}
        by_answer: Counter = Counter()
        by_session: Dict[str, Counter] = {}
        for stored in latest:
            answer = stored.task["answer"]
            by_answer[answer] += 1
            by_session.setdefault(stored.session, Counter())[answer] += 1
            for span in stored.task.get("spans") or [{}]:
                by_label.setdefault(str(span.get("label", "")), Counter())[answer] += 1
        return {
            "dataset": dataset,
            "answers stored": self.count(dataset),
            "tasks answered": len(latest),
            "by answer": dict(by_answer),
            "by label": {k: dict(v) for k, v in sorted(by_label.items())},
            "by session": {k: dict(v) for k, v in sorted(by_session.items())},
        }

    def drop(self, dataset: str) -> int:
        """Delete a dataset's answers. RETURNS (int): The number deleted."""
        lock = self._write_lock or _NO_LOCK
        with lock, self.engine.begin() as conn:
            return int(conn.execute(delete(answers_table).where(answers_table.c.dataset == dataset)).rowcount)


class _GroupCommit:
    """Runs calls that arrive while a commit is under way together, in the
    next commit: the first caller to find no commit running commits for every
    call waiting, the others wait for it and take their results."""

    def __init__(self, run: Callable[[Sequence[_AddCall]], List[Any]], lock: threading.Lock) -> None:
        self.run = run
        self.lock = lock
        self.cond = threading.Condition()
        self.waiting: List[List[Any]] = []
        self.busy = False

    def submit(self, call: _AddCall) -> Any:
        # A slot: [call, done, result, error].
        slot: List[Any] = [call, False, None, None]
        with self.cond:
            self.waiting.append(slot)
            while self.busy and not slot[1]:
                self.cond.wait()
            if not slot[1]:
                self.busy = True
                batch, self.waiting = self.waiting, []
        if not slot[1]:
            try:
                with self.lock:
                    results: List[Any] = self.run([s[0] for s in batch])
                error: Optional[BaseException] = None
            except BaseException as err:  # every call of the batch gets it
                results, error = [None] * len(batch), err
            with self.cond:
                for s, result in zip(batch, results):
                    s[1:] = [True, result, error]
                self.busy = False
                self.cond.notify_all()
        if slot[3] is not None:
            raise slot[3]
        return slot[2]


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: Any) -> None:
        return None


_NO_LOCK = _NoLock()


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def write_jsonl(answers: Iterable[StoredAnswer], path: Union[str, Path]) -> int:
    """Write stored answers as teach records (our JSONL format), each with its
    `session` in `meta`. RETURNS (int): The number of records written."""
    n = 0
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf8") as f:
        for stored in answers:
            task = dict(stored.task)
            task["meta"] = {**(task.get("meta") or {}), "session": stored.session}
            f.write(json.dumps(task, ensure_ascii=False, allow_nan=False) + "\n")
            n += 1
    return n
