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
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

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
        # busy-wait and "database is locked" under many sessions.
        self._write_lock = threading.Lock() if self.is_sqlite else None
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

        dataset (str): The dataset.
        session (str): The session that answered.
        items (Sequence[Tuple[str, Dict[str, Any]]]): `(key, task)` pairs, each
            task with `answer`, `_input_hash` and `_task_hash` set.
        RETURNS (List[Tuple[int, bool]]): Per item its row id and whether it is
            new (False: the key was stored before, by this or another call).
        """
        now = time.time()
        out: List[Tuple[int, bool]] = []
        lock = self._write_lock or _NO_LOCK
        with lock, self.engine.begin() as conn:
            for key, task in items:
                row = {
                    "dataset": dataset,
                    "session": session,
                    "key": key,
                    "input_hash": int(task["_input_hash"]),
                    "task_hash": int(task["_task_hash"]),
                    "answer": task["answer"],
                    "task": json.dumps(task, ensure_ascii=False),
                    "created": now,
                }
                stmt = (
                    self._insert(answers_table)
                    .values(**row)
                    .on_conflict_do_nothing(
                        index_elements=["dataset", "key"],
                    )
                )
                result = conn.execute(stmt.returning(answers_table.c.id))
                new_id = result.scalar()
                if new_id is not None:
                    out.append((int(new_id), True))
                else:
                    old = conn.execute(
                        select(answers_table.c.id).where(
                            answers_table.c.dataset == dataset,
                            answers_table.c.key == key,
                        )
                    ).scalar_one()
                    out.append((int(old), False))
        return out

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
    with open(path, "w", encoding="utf8") as f:
        for stored in answers:
            task = dict(stored.task)
            task["meta"] = {**(task.get("meta") or {}), "session": stored.session}
            f.write(json.dumps(task, ensure_ascii=False) + "\n")
            n += 1
    return n
