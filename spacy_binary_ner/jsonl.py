"""Reading JSONL files (plain or .gz, a file or a folder of them) as standard
JSON only: NaN and Infinity are refused at decoding, and a value can be
checked for them, or made writable with them as null."""

import gzip
import json
import math
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Optional, Tuple, Union

from .readstats import TeachDataError
from .reasons import REASONS, RecordError

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def check_finite(value: Any) -> None:
    """Check that a parsed JSON value holds no NaN or Infinity, at any depth
    (Python's `json` reads and writes them; they are not standard JSON).

    value (Any): The value.
    RAISES (RecordError): "non-finite number", naming where.
    """
    where = _non_finite(value)
    if where is not None:
        raise RecordError("non-finite number", f"at {where}" if where else "")


def nan_to_null(value: Any) -> Any:
    """A copy of a JSON-like value with every NaN or Infinity float, at any
    depth, made None: what a report writes as null, where a metric is
    undefined (e.g. F1 with nothing predicted), so that it can be written
    with `allow_nan=False`.

    value (Any): The value.
    RETURNS (Any): The value, tuples as lists.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: nan_to_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_null(v) for v in value]
    return value


def _non_finite(value: Any, where: str = "") -> Optional[str]:
    if type(value) is float:
        return None if math.isfinite(value) else where
    if isinstance(value, dict):
        items: Iterable[Tuple[Any, Any]] = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(item, (float, dict, list, tuple)):
            found = _non_finite(item, f"{where}[{key!r}]" if where else f"`{key}`")
            if found is not None:
                return found
    return None


def jsonl_files(path: Union[str, Path]) -> List[Path]:
    """The JSONL files (plain or .gz) of a path: the file itself, or a folder's
    files in sorted order.

    path (Union[str, Path]): A file or a folder.
    RETURNS (List[Path]): The files.
    RAISES (FileNotFoundError): No such path.
    RAISES (TeachDataError): A folder with no .jsonl or .jsonl.gz file, or a
        file not named so that holds a JSON array (it begins with `[`), not
        JSON Lines (a `.jsonl` file is read line by line, whatever it holds).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")))
        if not files:
            raise TeachDataError(
                f"The folder '{path}' holds no .jsonl or .jsonl.gz files: give a file, or another folder."
            )
        return files
    if path.exists():
        if not path.name.endswith((".jsonl", ".jsonl.gz")) and _first_byte(path) == b"[":
            raise TeachDataError(
                f"'{path}' is a JSON array, not JSON Lines (one record per line, .jsonl or .jsonl.gz): "
                f"convert it first, e.g. jq -c '.[]' {path.name} > records.jsonl"
            )
        return [path]
    raise FileNotFoundError(f"No such file or directory: '{path}'")


def _first_byte(path: Path) -> bytes:
    """The first byte of a file's text that is not whitespace or a BOM (b"" if
    it cannot be read here; reading it says why)."""
    try:
        with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as f:
            head = f.read(256)
    except (OSError, EOFError, zlib.error):
        return b""
    return head.removeprefix(_UTF8_BOM).lstrip()[:1]


def _refuse_constant(name: str) -> Any:
    raise RecordError("non-finite number", f"{name} is not standard JSON")


# `json.loads`, except that NaN and Infinity are a "non-finite number" (json reads them by default).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def loads(line: str) -> Any:
    """One JSON value, as `json.loads` reads it, except for NaN and Infinity.

    line (str): The JSON text.
    RETURNS (Any): The value.
    RAISES (json.JSONDecodeError): Not valid JSON.
    RAISES (RecordError): "non-finite number": it holds NaN or Infinity.
    """
    return _DECODER.decode(line)


def iter_lines(file: Path) -> Iterator[Tuple[int, Any]]:
    """Each non-blank line of a JSONL file, parsed.

    The file is read as UTF-8, a leading byte order mark skipped. A line that
    is not valid UTF-8 yields a `RecordError` ("not UTF-8") and reading goes
    on; a file that cannot be read on (a damaged or truncated .gz, a .gz that
    is not gzip, UTF-16 text) yields one `RecordError` ("unreadable file") at
    the line where it stopped, after the lines read before it.

    file (Path): A JSONL file, plain or .gz.
    YIELDS (Tuple[int, Any]): The line number and the parsed value, or the
        `json.JSONDecodeError` or `RecordError` of the line.
    """
    decode = _DECODER.decode
    line_no = 0
    try:
        with gzip.open(file, "rb") if file.name.endswith(".gz") else open(file, "rb") as f:
            for line_no, line in enumerate(f, 1):
                if line_no == 1:
                    if line.startswith(_UTF8_BOM):
                        line = line[3:]
                    elif line.startswith(_UTF16_BOMS):
                        yield 1, RecordError("unreadable file", "UTF-16 text (a UTF-16 byte order mark)")
                        return
                if not line or line.isspace():
                    continue
                try:
                    decoded = line.decode("utf8")
                except UnicodeDecodeError as err:
                    yield line_no, RecordError("not UTF-8", f"byte {err.start} is {line[err.start : err.start + 1]!r}")
                    continue
                try:
                    yield line_no, decode(decoded)
                except (json.JSONDecodeError, RecordError) as err:
                    yield line_no, err
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        yield line_no + 1, RecordError("unreadable file", f"{type(err).__name__}: {err}")


def iter_jsonl(path: Union[str, Path]) -> Iterator[dict]:
    """Read records from a JSONL file (plain or .gz), or every such file in a
    directory, in sorted order. A line that cannot be read or is not valid
    JSON raises a `ValueError` naming the file and line (the reader counts
    such lines instead).

    path (Union[str, Path]): The file or directory.
    YIELDS (dict): The records.
    """
    for file in jsonl_files(path):
        for line_no, value in iter_lines(file):
            if isinstance(value, json.JSONDecodeError):
                raise ValueError(f"{file}:{line_no}: not valid JSON ({value})") from None
            if isinstance(value, RecordError):
                raise ValueError(f"{file}:{line_no}: {value}. Fix: {REASONS[value.reason]}.") from None
            yield value
