"""A client of the teach server's JSON API that answers as an oracle (accept
iff the span and label are gold). It speaks nothing but HTTP, with the
standard library, so it shows what a script or a custom front end needs.
"""

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

GoldIndex = Dict[str, Set[Tuple[int, int, str]]]


def gold_by_text(records: Iterable[Dict[str, Any]]) -> GoldIndex:
    """Gold spans `(start, end, label)` by text."""
    index: GoldIndex = {}
    for record in records:
        spans = index.setdefault(record["text"], set())
        spans.update((s["start"], s["end"], s["label"]) for s in record.get("spans", []))
    return index


class TeachClient:
    """Calls of the teach server's API.

    url (str): The server, e.g. `http://127.0.0.1:8080`.
    session (str): The session name.
    token (Optional[str]): The server's token, if it needs one.
    timeout (float): Seconds per request.
    """

    def __init__(self, url: str, session: str = "default", token: Optional[str] = None, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        self.session = session
        self.token = token
        self.timeout = timeout

    def _call(self, path: str, params: Dict[str, Any], body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        query = urllib.parse.urlencode({"session": self.session, **params})
        data = json.dumps(body).encode("utf8") if body is not None else None
        request = urllib.request.Request(f"{self.url}/api/{path}?{query}", data=data, method="POST" if data else "GET")
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{path}: HTTP {err.code}: {err.read()[:300]!r}") from None

    def questions(self, n: int = 10, *, at_least: int = 1, timeout: float = 600) -> List[Dict[str, Any]]:
        """The session's open questions, up to `n`; asks again until there are
        `at_least` of them, the source is used up, or `timeout` seconds passed."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self._call("questions", {"n": n})
            if len(reply["tasks"]) >= at_least or reply.get("finished") or time.monotonic() > deadline:
                return reply["tasks"]
            time.sleep(0.05)

    def answer(self, tasks: List[Dict[str, Any]], next_n: int = 0) -> Dict[str, Any]:
        """Send answered tasks (each with `answer`, optional `key`)."""
        return self._call("answers", {"next": next_n}, {"answers": tasks})

    def progress(self) -> Dict[str, Any]:
        return self._call("progress", {})


def oracle_answer(task: Dict[str, Any], gold: GoldIndex) -> str:
    """Accept iff the task's span and label are gold for its text."""
    span = task["spans"][0]
    return "accept" if (span["start"], span["end"], span["label"]) in gold.get(task["text"], set()) else "reject"


def run_oracle(
    client: TeachClient,
    gold: GoldIndex,
    n_answers: int,
    *,
    batch_size: int = 10,
    on_batch: Optional[Any] = None,
) -> int:
    """Answer `n_answers` questions, `batch_size` at a time (one request each).
    `on_batch(n_answered)` is called after each batch. RETURNS (int): Answers
    given (fewer if the server ran out of questions)."""
    given = 0
    while given < n_answers:
        # A whole batch at once, as the simulator answers: one update per batch.
        want = min(batch_size, n_answers - given)
        batch = client.questions(want, at_least=want)
        if not batch:
            break
        for task in batch:
            task["answer"] = oracle_answer(task, gold)
            task["key"] = f"{client.session}-{task['_task_hash']}-{given}"
            given += 1
        client.answer(batch)
        if on_batch is not None:
            on_batch(given)
    return given


def wait_learned(client: TeachClient, n: int, timeout: float = 120) -> Dict[str, Any]:
    """Poll the progress until the model learned from `n` answers."""
    deadline = time.monotonic() + timeout
    while True:
        progress = client.progress()
        if progress["learned"] >= n or time.monotonic() > deadline:
            return progress
        time.sleep(0.05)
