"""Corpus input and output: finding the input files, cutting them into shards,
reading a shard's records with an account of what was skipped, and writing
each shard's output so that a rerun does only the shards still missing.

A run's output folder holds `plan.json` (the inputs and the shard size; a rerun
must give the same ones), one output file per shard, written under a temporary
name and renamed when complete, an `<shard>.account.json` beside each, and
`account.json`, the total, when every shard is done.
"""

import glob
import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from ..data import ReadStats
from ..records import REASONS, RecordError, parse_task

INPUT_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
DEFAULT_SHARD_SIZE = 10000
PLAN_FILE = "plan.json"
ACCOUNT_FILE = "account.json"


class CorpusError(ValueError):
    """Bad input or output for a corpus run: the message names the path and the fix."""


@dataclass(frozen=True)
class Shard:
    """A piece of one input file: its records `start` to `end` (0-based line or
    row numbers, end exclusive), and the name of its output.

    path (str): The input file.
    start (int): First line (JSONL) or row (Parquet) of the shard.
    end (int): One past its last line or row.
    name (str): The output's file name without suffix, unique in a run.
    """

    path: str
    start: int
    end: int
    name: str

    def to_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "start": self.start, "end": self.end, "name": self.name}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Shard":
        return cls(str(data["path"]), int(data["start"]), int(data["end"]), str(data["name"]))


def _stem(path: str) -> str:
    name = os.path.basename(path.split("?")[0])
    for suffix in INPUT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_url(spec: str) -> bool:
    """Whether an input is a URL (`s3://…`, `gs://…`, `hdfs://…`, `file://…`) rather than a path."""
    return "://" in spec


def _filesystem(url: str) -> Tuple[Any, str]:
    """(pyarrow filesystem, path in it) of an input URL."""
    try:
        import pyarrow
        import pyarrow.fs
    except ImportError:
        raise CorpusError(
            f"Reading '{url}' needs pyarrow: pip install pyarrow (or spacy-binary-ner[ray], which brings it)"
        ) from None
    try:
        return pyarrow.fs.FileSystem.from_uri(url)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, OSError) as err:
        raise CorpusError(f"Cannot open input '{url}': {err}") from None


def _find_url_inputs(spec: str) -> List[str]:
    import pyarrow.fs

    fs, path = _filesystem(spec)
    info = fs.get_file_info(path)
    if info.type == pyarrow.fs.FileType.NotFound:
        raise CorpusError(f"No such input: '{spec}'. Give a file or a folder URL (no glob patterns in URLs).")
    if info.type != pyarrow.fs.FileType.Directory:
        return [spec]
    scheme = spec[: spec.index("://") + 3]
    query = spec[spec.index("?") :] if "?" in spec else ""
    found = fs.get_file_info(pyarrow.fs.FileSelector(path))
    return [
        scheme + f.path + query for f in found if f.type == pyarrow.fs.FileType.File and f.path.endswith(INPUT_SUFFIXES)
    ]


def find_inputs(spec: Union[str, Path]) -> List[str]:
    """The input files a spec names: a file, a folder (its `.jsonl`,
    `.jsonl.gz` and `.parquet` files) or a glob pattern, sorted. A URL
    (`s3://bucket/corpus/`, `file:///data/corpus.jsonl`) is read through
    pyarrow's filesystems: a file or a folder, no patterns.

    spec (Union[str, Path]): The file, folder, pattern or URL.
    RETURNS (List[str]): The files.
    """
    spec = str(spec)
    if is_url(spec):
        files = sorted(_find_url_inputs(spec))
    elif os.path.isdir(spec):
        files = [os.path.join(spec, n) for n in os.listdir(spec) if n.endswith(INPUT_SUFFIXES)]
    elif os.path.isfile(spec):
        files = [spec]
    elif glob.has_magic(spec):
        files = [f for f in glob.glob(spec, recursive=True) if os.path.isfile(f)]
    else:
        raise CorpusError(f"No such input: '{spec}'. Give a file, a folder or a glob pattern (quoted).")
    if not is_url(spec):
        files = sorted(os.path.abspath(f) for f in files)
    if not files:
        raise CorpusError(f"No input files in '{spec}': expected names ending in {', '.join(INPUT_SUFFIXES)}.")
    for f in files:
        if not f.split("?")[0].endswith(INPUT_SUFFIXES):
            raise CorpusError(f"Unknown input format: '{f}'. Expected one of {', '.join(INPUT_SUFFIXES)}.")
    return files


def _import_parquet():
    try:
        import pyarrow.parquet
    except ImportError:
        raise CorpusError(
            "Reading Parquet needs pyarrow: pip install pyarrow (or spacy-binary-ner[ray], which brings it)"
        ) from None
    return pyarrow.parquet


def _is_parquet(path: str) -> bool:
    return path.split("?")[0].endswith(".parquet")


def _parquet_file(path: str) -> Any:
    pq = _import_parquet()
    if is_url(path):
        fs, inner = _filesystem(path)
        return pq.ParquetFile(fs.open_input_file(inner))
    return pq.ParquetFile(path)


def _open_lines(path: str) -> IO[str]:
    """A JSONL file (gzipped if it ends in .gz; a path or a URL) as text."""
    if is_url(path):
        fs, inner = _filesystem(path)
        # pyarrow decompresses by the file's extension
        return io.TextIOWrapper(fs.open_input_stream(inner), encoding="utf8")
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf8")
    return open(path, encoding="utf8")


def count_records(path: str) -> int:
    """Lines of a JSONL file (blank ones included: they keep line numbers), or
    rows of a Parquet file (from its metadata)."""
    if _is_parquet(path):
        return int(_parquet_file(path).metadata.num_rows)
    n = 0
    with _open_lines(path) as f:
        for _ in f:
            n += 1
    return n


def plan_shards(files: Iterable[str], shard_size: int = DEFAULT_SHARD_SIZE) -> List[Shard]:
    """Cut each file into shards of at most `shard_size` records.

    files (Iterable[str]): The input files, e.g. from `find_inputs`.
    shard_size (int): Most records (lines or rows) per shard.
    RETURNS (List[Shard]): The shards, in file order.
    """
    if shard_size < 1:
        raise CorpusError(f"--shard-size must be at least 1, not {shard_size}")
    files = list(files)
    stems = [_stem(f) for f in files]
    if len(set(stems)) < len(stems):
        # Same names in different folders: name outputs by the path below the
        # folder the files share.
        root = os.path.commonpath([os.path.dirname(f) for f in files])
        stems = [_stem(os.path.relpath(f, root)).replace(os.sep, "__") for f in files]
    shards = []
    for path, stem in zip(files, stems):
        n = count_records(path)
        starts = range(0, max(n, 1), shard_size)
        for k, start in enumerate(starts):
            name = stem if len(starts) == 1 else f"{stem}-{k:05d}"
            shards.append(Shard(path, start, min(start + shard_size, n), name))
    return shards


@dataclass
class SourceRecord:
    """A record read from a shard: where it is, its text and its other fields."""

    line: int
    text: str
    fields: Dict[str, Any]


def _skip(stats: ReadStats, where: str, reason: str) -> None:
    stats.skipped[reason] += 1
    places = stats.where.setdefault(reason, [])
    if len(places) < 5:
        places.append(where)


def _check(value: Any, max_length: int) -> Tuple[Optional[str], Any]:
    """(None, text) for a record the loop can read (`records.parse_task`'s
    checks) no longer than `max_length`, else (reason, None)."""
    if isinstance(value, dict) and value.get("text") is None:
        return "missing key", None  # a null text (e.g. a parquet row) is an absent one
    try:
        text = parse_task(value).text
    except RecordError as err:
        return err.reason, None
    if len(text) > max_length:
        return "text too long", None
    return None, text


def _raw_values(shard: Shard) -> Iterator[Tuple[int, Any]]:
    """(1-based line or row number, parsed value or a JSON error) of each
    non-blank record of the shard."""
    if _is_parquet(shard.path):
        pf = _parquet_file(shard.path)
        row = 0
        for batch in pf.iter_batches(batch_size=4096):
            n = batch.num_rows
            if row + n <= shard.start:
                row += n
                continue
            for value in batch.to_pylist():
                row += 1
                if row > shard.end:
                    return
                if row > shard.start:
                    yield row, value
        return
    with _open_lines(shard.path) as f:
        for line_no, line in enumerate(f, 1):
            if line_no <= shard.start:
                continue
            if line_no > shard.end:
                return
            if line.isspace() or not line:
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as err:
                yield line_no, err


def read_shard(shard: Shard, stats: ReadStats, max_length: int = 1000000) -> Iterator[SourceRecord]:
    """The usable records of a shard; every other non-blank one is counted in
    `stats.skipped` under its reason (one of `records.REASONS`).

    shard (Shard): The shard.
    stats (ReadStats): The account to count into (records, used, skipped).
    max_length (int): Longest text read, in characters.
    YIELDS (SourceRecord): The records.
    """
    for line_no, value in _raw_values(shard):
        stats.records += 1
        where = f"{shard.path}:{line_no}"
        if isinstance(value, json.JSONDecodeError):
            _skip(stats, where, "malformed JSON")
            continue
        reason, text = _check(value, max_length)
        if reason is not None:
            _skip(stats, where, reason)
            continue
        stats.used += 1
        stats.examples += 1
        yield SourceRecord(line_no, text, value)


def account_dict(stats: ReadStats) -> Dict[str, Any]:
    """A shard's account as written beside its output, with the fix for each
    skip reason."""
    data = stats.to_dict()
    data["fixes"] = {reason: REASONS.get(reason, "") for reason in sorted(stats.skipped)}
    return data


def stats_from_dict(data: Dict[str, Any]) -> ReadStats:
    """The `ReadStats` of an account written by `account_dict`."""
    stats = ReadStats()
    stats.records = int(data["records"])
    stats.used = int(data["used"])
    stats.examples = int(data["examples"])
    stats.skipped.update(data["skipped_by_reason"])
    stats.where = {k: list(v) for k, v in data["where"].items()}
    return stats


def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf8") as f:
        f.write(text)
    os.replace(tmp, path)


class ShardOutput:
    """Where one run writes its shards: one output file per shard and its
    account, each complete or absent.

    folder (Union[str, Path]): The output folder (created if missing).
    suffix (str): The output files' suffix, e.g. ".jsonl".
    """

    def __init__(self, folder: Union[str, Path], suffix: str) -> None:
        self.folder = str(folder)
        self.suffix = suffix

    def path(self, shard: Shard) -> str:
        return os.path.join(self.folder, shard.name + self.suffix)

    def account_path(self, shard: Shard) -> str:
        return os.path.join(self.folder, shard.name + ".account.json")

    def is_done(self, shard: Shard) -> bool:
        return os.path.exists(self.path(shard)) and os.path.exists(self.account_path(shard))

    def start(self, inputs: List[str], shard_size: int, command: Dict[str, Any]) -> List[Shard]:
        """Plan the run, or take the plan of the run this folder holds.

        RETURNS (List[Shard]): Every shard of the run, done or not.
        """
        os.makedirs(self.folder, exist_ok=True)
        for name in os.listdir(self.folder):
            if ".tmp-" in name:  # left by a run that was killed
                os.remove(os.path.join(self.folder, name))
        plan_path = os.path.join(self.folder, PLAN_FILE)
        wanted = {"inputs": inputs, "shard_size": shard_size, **command}
        if os.path.exists(plan_path):
            with open(plan_path, encoding="utf8") as f:
                plan = json.load(f)
            old = {k: plan.get(k) for k in wanted}
            if old != wanted:
                diff = ", ".join(k for k in wanted if old[k] != wanted[k])
                raise CorpusError(
                    f"'{self.folder}' holds a run with other settings ({diff}): rerun with the same "
                    f"input and options to complete it, or give a new output folder."
                )
            return [Shard.from_dict(s) for s in plan["shards"]]
        shards = plan_shards(inputs, shard_size)
        write_atomic(
            plan_path, json.dumps({**wanted, "shards": [s.to_dict() for s in shards]}, indent=1, allow_nan=False)
        )
        return shards

    def open_shard(self, shard: Shard) -> "ShardWriter":
        """A writer for a shard's output, moved into place by `ShardWriter.close`."""
        return ShardWriter(self, shard)

    def total(self, shards: Iterable[Shard]) -> ReadStats:
        """The account of every shard, summed, written to `account.json`;
        temporary files of killed workers are removed."""
        for name in os.listdir(self.folder):
            if ".tmp-" in name:
                os.remove(os.path.join(self.folder, name))
        total = ReadStats()
        for shard in shards:
            with open(self.account_path(shard), encoding="utf8") as f:
                total.add(stats_from_dict(json.load(f)))
        write_atomic(
            os.path.join(self.folder, ACCOUNT_FILE), json.dumps(account_dict(total), indent=1, allow_nan=False)
        )
        return total


class ShardWriter:
    """Writes one shard's output under a temporary name; `close` writes its
    account and then moves the output into place, so a shard whose output
    exists is complete. Lines are JSON records, or bytes for other formats."""

    def __init__(self, output: ShardOutput, shard: Shard) -> None:
        self.output = output
        self.shard = shard
        self.final = output.path(shard)
        self.tmp = f"{self.final}.tmp-{os.getpid()}"
        self._file = open(self.tmp, "w", encoding="utf8") if output.suffix.endswith(".jsonl") else None
        self._chunks: List[bytes] = []

    def write(self, record: Dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")

    def write_bytes(self, data: bytes) -> None:
        self._chunks.append(data)

    def close(self, stats: ReadStats) -> None:
        if self._file is not None:
            self._file.close()
        else:
            with open(self.tmp, "wb") as f:
                for chunk in self._chunks:
                    f.write(chunk)
        write_atomic(self.output.account_path(self.shard), json.dumps(account_dict(stats), indent=1, allow_nan=False))
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)
