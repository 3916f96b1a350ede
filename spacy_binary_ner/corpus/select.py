"""Choosing the questions to ask from a large pool: every candidate span of
every text gets a priority, each shard keeps its best N (a bounded heap,
written as a part file), and the parts are merged into the N best overall."""

import hashlib
import heapq
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from ..data import ReadStats
from ..loop import set_hashes
from .annotate import DROPPED_FIELDS, PipelineJob
from .sources import Shard, ShardOutput, SourceRecord, account_dict, write_atomic

STRATEGIES = ("uncertainty", "high", "random")
# Priorities are compared rounded, so that the last bits of a score, which can
# differ between batchings of the same text, do not change the selection.
PRIORITY_DIGITS = 6
TASK_FIELDS_DROPPED = DROPPED_FIELDS + ("spans", "answer", "_task_hash")


def priority(strategy: str, score: float, task_hash: int, seed: int = 0) -> float:
    """How much a question is worth asking: `1 - |2p - 1|` for "uncertainty",
    `p` for "high", and for "random" a number in [0, 1) drawn from the task's
    hash and the seed (the same on every engine and rerun)."""
    if strategy == "uncertainty":
        value = 1.0 - abs(2.0 * score - 1.0)
    elif strategy == "high":
        value = score
    elif strategy == "random":
        digest = hashlib.blake2b(f"{seed}\x1f{task_hash}".encode("utf8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little") / 2**64
    else:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    return round(value, PRIORITY_DIGITS)


class TopN:
    """The N tasks of highest priority seen, each task hash once; ties go to
    the larger task hash, so the result does not depend on the order seen.

    n (int): How many to keep.
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"--n must be at least 1, not {n}")
        self.n = n
        self._heap: List[Tuple[float, int, Dict[str, Any]]] = []
        self._hashes: set = set()

    def __len__(self) -> int:
        return len(self._heap)

    def would_take(self, prio: float, task_hash: int) -> bool:
        """Whether a task of this priority and hash would enter (cheap: lets
        callers skip building tasks that would not)."""
        if task_hash in self._hashes:
            return False
        return len(self._heap) < self.n or (prio, task_hash) > self._heap[0][:2]

    def push(self, prio: float, task: Dict[str, Any]) -> None:
        task_hash = task["_task_hash"]
        if not self.would_take(prio, task_hash):
            return
        entry = (prio, task_hash, task)
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, entry)
        else:
            _, old_hash, _ = heapq.heapreplace(self._heap, entry)
            self._hashes.discard(old_hash)
        self._hashes.add(task_hash)

    def best(self) -> List[Dict[str, Any]]:
        """The tasks kept, best first."""
        return [task for _, _, task in sorted(self._heap, key=lambda e: (-e[0], -e[1]))]


def span_tasks(doc: Doc, record: SourceRecord, key: str) -> Iterator[Tuple[float, Dict[str, Any]]]:
    """(probability rounded to PRIORITY_DIGITS, teach task) for each candidate span of an annotated text:
    the record's fields, one span, `meta.score`, and stable hashes."""
    if key not in doc.spans:
        return
    base = {k: v for k, v in record.fields.items() if k not in TASK_FIELDS_DROPPED}
    base.setdefault("meta", {})
    group = doc.spans[key]
    for span, p in zip(group, group.attrs.get("scores", [])):
        p = round(float(p), PRIORITY_DIGITS)
        task = dict(base)
        task["spans"] = [
            {
                "start": span.start_char,
                "end": span.end_char,
                "token_start": span.start,
                "token_end": span.end - 1,
                "label": span.label_,
            }
        ]
        task["meta"] = {**base["meta"], "score": p, "source": "select"}
        yield p, set_hashes(task)


@dataclass
class SelectJob(PipelineJob):
    """Pick the N most informative questions from shards of texts.

    pipeline (str): Path (or package name) of the pipeline.
    output (str): The final JSONL file; shard parts go to `<output>.parts/`.
    n (int): How many questions to write.
    strategy (str): "uncertainty", "high" or "random" (see `priority`).
    seed (int): Seed of the "random" strategy.
    max_length (int): Longest text scored, in characters.
    code (Optional[str]): A Python file to import before loading the pipeline.
    """

    pipeline: str
    output: str
    n: int
    strategy: str = "uncertainty"
    seed: int = 0
    max_length: int = 100000
    code: Optional[str] = None
    _nlp: Optional[Language] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if self.n < 1:
            raise ValueError(f"--n must be at least 1, not {self.n}")

    @property
    def parts_folder(self) -> str:
        return self.output + ".parts"

    @property
    def shard_output(self) -> ShardOutput:
        return ShardOutput(self.parts_folder, ".jsonl")

    def settings(self) -> Dict[str, Any]:
        return {
            "command": "select",
            "n": self.n,
            "strategy": self.strategy,
            "seed": self.seed,
            "max_length": self.max_length,
        }

    def begin(self, shard: Shard) -> Any:
        self.nlp
        return (shard, TopN(self.n))

    def add(self, state: Any, doc: Doc, record: SourceRecord) -> None:
        top = state[1]
        for p, task in span_tasks(doc, record, self._key):
            top.push(priority(self.strategy, p, task["_task_hash"], self.seed), task)

    def finish(self, state: Any, stats: ReadStats) -> Dict[str, Any]:
        shard, top = state
        writer = self.shard_output.open_shard(shard)
        for task in top.best():
            writer.write(task)
        writer.close(stats)
        return {"shard": shard.name, "records": stats.records, "used": stats.used}

    def abort(self, state: Any) -> None:
        pass

    def complete(self, shards: List[Shard]) -> ReadStats:
        """Merge the parts into the output file (and its account beside it)."""
        parts = [self.shard_output.path(s) for s in shards]
        best = merge_parts(parts, self.n, self.strategy, self.seed)
        tmp = f"{self.output}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf8") as f:
            for task in best:
                f.write(json.dumps(task, ensure_ascii=False, allow_nan=False) + "\n")
        os.replace(tmp, self.output)
        total = self.shard_output.total(shards)
        if not best:
            print(
                "select: no candidate spans in any text: the pipeline scored every span below its "
                "candidates_threshold; lower it in the binary_ner config or train the model further",
                file=sys.stderr,
            )
        data = account_dict(total)
        data["selected"] = len(best)
        write_atomic(self.output + ".account.json", json.dumps(data, indent=1, allow_nan=False))
        return total


def merge_parts(paths: Iterable[str], n: int, strategy: str, seed: int = 0) -> List[Dict[str, Any]]:
    """The N best tasks of several part files (each holding its shard's best),
    read one line at a time."""
    top = TopN(n)
    for path in paths:
        with open(path, encoding="utf8") as f:
            for line in f:
                task = json.loads(line)
                top.push(priority(strategy, task["meta"]["score"], task["_task_hash"], seed), task)
    return top.best()
