"""Helpers of the teach-server tests: a tiny pipeline config and sources."""

import json
import random
from pathlib import Path
from typing import Dict, List

import spacy

from .util import SMALL_MODEL

CITIES = ["Berlin", "Paris", "London", "Madrid", "Rome", "Vienna", "Oslo", "Prague", "Lisbon", "Dublin"]
PEOPLE = ["Anna", "Omar", "Lena", "Tom", "Mia", "Ravi", "Sara", "Ivan"]
TEMPLATES = ["{p} flew to {c} today .", "{p} said {c} is large .", "We met {p} in {c} .", "{c} welcomed {p} ."]


def write_config(path: Path, lang: str = "en") -> Path:
    """A `binary_ner` config with the tests' small span scorer."""
    nlp = spacy.blank(lang)
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    nlp.config.to_disk(path)
    return path


def toy_records(n: int, seed: int = 0) -> List[Dict]:
    """Distinct sentences with one city (LOC) each, gold spans included."""
    rng = random.Random(seed)
    records, seen = [], set()
    i = 0
    while len(records) < n:
        i += 1
        person, city = rng.choice(PEOPLE), rng.choice(CITIES)
        text = rng.choice(TEMPLATES).format(p=person, c=city) + f" ({i})"
        if text in seen:
            continue
        seen.add(text)
        start = text.index(city)
        records.append({"text": text, "spans": [{"start": start, "end": start + len(city), "label": "LOC"}]})
    return records


def write_jsonl(path: Path, records: List[Dict]) -> Path:
    with path.open("w", encoding="utf8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def teach_argv(workdir: Path, *extra: str, db: str = "answers.sqlite3") -> List[str]:
    """`teach` arguments for a test server: the small config, the toy source
    and a SQLite file that a test wrote in `workdir`."""
    return [
        "ds",
        str(workdir / "small.cfg"),
        str(workdir / "source.jsonl"),
        "--label",
        "LOC",
        "--db",
        str(workdir / db),
        "--output",
        str(workdir / "out"),
        *extra,
    ]


def teach_args(workdir: Path, *extra: str, queue_size: int = 8):
    """`teach_argv`, parsed, for an in-process server."""
    from spacy_binary_ner.server.teach import parse_args

    return parse_args(teach_argv(workdir, "--queue-size", str(queue_size), *extra))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """uvicorn on 127.0.0.1 in a thread of the test process, stopped on exit."""

    def __init__(self, app, port: int) -> None:
        import threading

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> "ThreadServer":
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start in 30 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *args) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def write_ruler_pipeline(path: Path, lang: str, patterns: List[Dict], labels: List[str]) -> Path:
    """A pipeline whose entities are known: an `entity_ruler` with `patterns`,
    then an initialized `binary_ner` (the tests' small scorer) whose threshold
    is so high that it adds none of its own."""
    from spacy_binary_ner.loop import initialize_pipeline

    nlp = spacy.blank(lang)
    ruler = nlp.add_pipe("entity_ruler")
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    initialize_pipeline(nlp, labels, ["x"], threshold=0.999)
    ruler.add_patterns(patterns)  # after `initialize`, which clears them
    nlp.to_disk(path)
    return path


def ruler_argv(workdir: Path, *extra: str, db: str = "db.sqlite3") -> List[str]:
    """`teach` or `correct` arguments for the pipeline `write_ruler_pipeline`
    wrote in `workdir/ruler`, labels LOC and PER, saving only on stop."""
    return [
        "ds",
        str(workdir / "ruler"),
        str(workdir / "source.jsonl"),
        "--label",
        "LOC,PER",
        "--db",
        str(workdir / db),
        "--output",
        str(workdir / "out"),
        "--save-every",
        "0",
        *extra,
    ]


def run_through_kills(server, person, kills: int, seed: int = 0, seconds: float = 300) -> None:
    """Start `server` and call `person.step(server.url)` until a kill -9 at a
    random moment (0.2-1.5 s) cuts it off, `kills` times; then start it once
    more, let `person` send what was not acknowledged, and stop it (SIGINT).
    `server` has `start`, `kill`, `stop` and `url` (`test_server_process.ServerProcess`)."""
    import contextlib
    import threading
    import time

    import httpx

    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    try:
        for kill in range(kills):
            assert time.monotonic() < deadline, f"only {kill} kills in time"
            server.start()
            with contextlib.suppress(httpx.TransportError):
                killer = threading.Timer(rng.uniform(0.2, 1.5), server.kill)
                killer.start()
                while True:
                    person.step(server.url)
            killer.join()
            server.kill()
        server.start()
        if person.pending is not None:
            person.step(server.url)
        server.stop()
    finally:
        server.kill()


class Resender:
    """A person over HTTP: each answer is sent until it is acknowledged, with
    the same key, whatever happens to the server (for `run_through_kills`).
    A subclass says what the next answer is (`next_answer`)."""

    session = "s"

    def __init__(self, client) -> None:
        self.client = client
        self.sent: Dict[str, Dict] = {}
        self.acked: Dict[str, int] = {}
        self.pending = None

    def next_answer(self, url: str, key: str) -> Dict:
        raise NotImplementedError

    def step(self, url: str) -> None:
        """Answer one question (or send the unacknowledged answer again)."""
        if self.pending is None:
            key = f"k{len(self.sent) + 1}"
            self.sent[key] = self.next_answer(url, key)  # may fail (the server killed): nothing is pending then
            self.pending = key
        r = self.client.post(f"{url}/api/answers?session={self.session}", json={"answers": [self.sent[self.pending]]})
        assert r.status_code == 200, r.text
        self.acked[self.pending] = r.json()["ids"][0]
        self.pending = None


# Texts of three news categories, two topic words each among filler, for `teach --task textcat`.
TOPICS = {
    "SPORT": ["goal", "match", "team", "coach", "league"],
    "MONEY": ["bank", "stock", "market", "price", "loan"],
    "VOTE": ["election", "party", "minister", "vote", "senate"],
}
_FILLER = ["the", "a", "today", "news", "big", "new", "said", "report"]


def write_textcat_config(path: Path, exclusive: bool = True, lang: str = "en") -> Path:
    """A `binary_textcat` config with the textcat tests' small model."""
    from .test_textcat_pipe import SMALL_MODEL as TEXTCAT_SMALL_MODEL

    nlp = spacy.blank(lang)
    nlp.add_pipe("binary_textcat", config={"model": TEXTCAT_SMALL_MODEL, "exclusive": exclusive})
    nlp.config.to_disk(path)
    return path


def topic_records(n: int, seed: int = 0) -> List[Dict]:
    """Distinct texts, each with its complete `cats` (one topic of `TOPICS`)."""
    rng = random.Random(seed)
    records, seen = [], set()
    while len(records) < n:
        label = rng.choice(list(TOPICS))
        words = rng.sample(TOPICS[label], 2) + rng.sample(_FILLER, 3)
        rng.shuffle(words)
        text = " ".join(words) + f" {len(records)}"
        if text not in seen:
            seen.add(text)
            records.append({"text": text, "cats": {other: float(other == label) for other in TOPICS}})
    return records


def textcat_argv(workdir: Path, *extra: str, db: str = "answers.sqlite3") -> List[str]:
    """`teach --task textcat` arguments for a test server: `textcat.cfg`,
    `source.jsonl` and a SQLite file in `workdir`."""
    return [
        "ds",
        str(workdir / "textcat.cfg"),
        str(workdir / "source.jsonl"),
        "--task",
        "textcat",
        "--label",
        ",".join(TOPICS),
        "--db",
        str(workdir / db),
        "--output",
        str(workdir / "out"),
        *extra,
    ]
