"""The JSONL results file of a sweep, written as the run goes and read back to resume it.

One JSON object per line, each with a ``type``:

- ``header`` (first line, once): ``schema_version``, provenance (tool and engine versions,
  model, hardware, convention, arguments without secrets, UTC start time);
- ``request``: one per measured request (``point`` = ``[batch, input, output]``, ``repeat``,
  and the :class:`~mfubench.measure.client.RequestRecord` fields);
- ``point``: one per finished point (``batch_size``, ``input_tokens``, ``output_tokens``,
  ``flags``, the measurement and its ``rows``).

Non-finite floats are written as null (JSON has no NaN). Every line is flushed and fsync'ed
before the next request is sent, so a crash loses at most the point in progress. A point counts
as finished only once its ``point`` line exists; ``request`` lines of a point interrupted before
that stay in the file and are not part of any point.

A crash (SIGKILL, a full disk) in the middle of a write leaves a **torn final line**: the last
line is not a whole JSON object. Every reader reports it (:class:`~mfubench.errors.
InputFileWarning`) and skips it; ``run --resume`` truncates it (:func:`truncate_torn`) before
appending and measures what is missing. A bad line anywhere else is still an error naming the
file and line.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from mfubench.errors import InputFileError, InputFileWarning

SCHEMA_VERSION = 1
LINE_TYPES = ("header", "request", "point")

PointKey = tuple[int, int, int]
"""``(batch_size, input_tokens, output_tokens)`` as requested."""

ResultKey = tuple[Any, ...]
"""A :data:`PointKey`, or for a level of a load run ``(kind, level, input_tokens, output_tokens)``
(:data:`mfubench.measure.load_driver.LevelKey`)."""


class ResultsLog:
    """Append-only JSONL writer: each :meth:`write` is one line, flushed and fsync'ed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None

    def __enter__(self) -> ResultsLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in __exit__)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, obj: Mapping[str, Any]) -> None:
        """Append ``obj`` (which must carry a known ``type``) as one durable line."""
        if obj.get("type") not in LINE_TYPES:
            raise ValueError(f"results line without a known type: {obj.get('type')!r}")
        if self._file is None:
            raise RuntimeError("ResultsLog used outside 'with'")
        self._file.write(json.dumps(_finite(obj), allow_nan=False, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None: JSON has no spelling for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass(frozen=True)
class TornLine:
    """A final line cut by a crash: its 1-based number, the byte offset where it starts (the
    length the file should be truncated to) and its length in bytes."""

    number: int
    offset: int
    size: int

    def describe(self, path: str | Path) -> str:
        return (f"{path}:{self.number}: the last line is torn ({self.size} bytes, not a whole "
                "JSON object: a write cut by a crash); skipped")


def split_torn_tail(text: str, alone: bool = False) -> tuple[str, TornLine | None]:
    """``text`` without a torn final line, and that line (None when there is none).

    A line is written with its newline in one call, so a crash leaves the file without a final
    newline: the last line is torn when the text does not end with one and that line is not a
    JSON object. It must follow a whole line (a lone line is the file's content, for its reader
    to refuse), unless ``alone`` (a resumed run whose very header was cut). What comes before
    is kept untouched, so a reader still refuses a bad line elsewhere with its own message."""
    if not text or text.endswith("\n"):
        return text, None
    start = text.rfind("\n") + 1
    if start == 0 and not alone:
        return text, None
    last = text[start:]
    if not last.strip():
        return text, None
    try:
        whole = isinstance(json.loads(last), dict)
    except (json.JSONDecodeError, RecursionError):
        whole = False
    if whole:
        return text, None
    kept = text[:start]
    torn = TornLine(kept.count("\n") + 1, len(kept.encode("utf-8")), len(last.encode("utf-8")))
    return kept, torn


def decode_lines(data: bytes, path: str | Path) -> str:
    """UTF-8 text of a JSON-lines file; a bad byte in the final line after whole ones (a
    multi-byte character cut by a crash) is replaced, so :func:`split_torn_tail` sees that line
    as torn; a bad byte anywhere else is an :class:`InputFileError` naming its offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        in_last_line = b"\n" not in data[exc.start:].rstrip() and b"\n" in data[:exc.start]
        if not in_last_line:
            raise InputFileError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
        return data.decode("utf-8", errors="replace")


def truncate_torn(path: str | Path, torn: TornLine) -> None:
    """Cut ``path`` back to before its torn line (what ``--resume`` does before appending)."""
    with open(path, "r+b") as f:
        f.truncate(torn.offset)
        f.flush()
        os.fsync(f.fileno())


@dataclass
class ResultsFile:
    """A results file read back: its header, its finished points by key, and the torn final
    line it skipped, if any."""

    path: Path
    header: dict[str, Any]
    points: dict[ResultKey, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    torn: TornLine | None = None


def point_key(obj: Mapping[str, Any]) -> ResultKey:
    """The key of a ``point`` line: its :data:`PointKey`, or with a ``load`` its level's key."""
    load = obj.get("load")
    if isinstance(load, Mapping):
        lengths = obj.get("lengths")  # drawn lengths or a workload: the source's key
        if isinstance(lengths, list) and len(lengths) == 2:
            return (str(load.get("kind")), float(load.get("level") or 0), *map(_key_part, lengths))
        return (str(load.get("kind")), float(load.get("level") or 0), int(obj["input_tokens"]),
                int(obj["output_tokens"]))
    return (int(obj["batch_size"]), int(obj["input_tokens"]), int(obj["output_tokens"]))


def _key_part(value: Any) -> int | str:
    return value if isinstance(value, int | str) and not isinstance(value, bool) else str(value)


def read_results(path: str | Path) -> ResultsFile:
    """Read and validate a results file; :class:`InputFileError` names the file and line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc}") from exc
    text, torn = split_torn_tail(decode_lines(data, path))
    if torn is not None:
        warnings.warn(torn.describe(path), InputFileWarning, stacklevel=2)
    result: ResultsFile | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise InputFileError(f"{where}: a line must be a JSON object")
        kind = obj.get("type")
        if result is None:
            if kind != "header":
                raise InputFileError(f"{where}: the first line must be the header, got type {kind!r}")
            if obj.get("schema_version") != SCHEMA_VERSION:
                raise InputFileError(
                    f"{where}: schema_version {obj.get('schema_version')!r}, this mfubench reads {SCHEMA_VERSION}"
                )
            result = ResultsFile(path=path, header=obj)
        elif kind == "header":
            raise InputFileError(f"{where}: a second header")
        elif kind == "request":
            result.requests += 1
        elif kind == "point":
            for name in ("batch_size", "input_tokens", "output_tokens"):
                value = obj.get(name)
                if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "output_tokens" else 1):
                    raise InputFileError(f"{where}: point field {name} must be a positive integer, got {value!r}")
            if not isinstance(obj.get("rows", []), list):
                raise InputFileError(f"{where}: point field rows must be a list")
            load = obj.get("load")
            if load is not None and (
                    not isinstance(load, dict) or load.get("kind") not in ("concurrency", "rate", "trace")
                    or not (isinstance(load.get("level"), int | float)
                            or (load.get("kind") == "trace" and load.get("level") is None))):
                raise InputFileError(f"{where}: point field load must be an object with a kind "
                                     f"(concurrency, rate, trace) and a level, got {load!r}"[:300])
            lengths = obj.get("lengths")
            if lengths is not None and (not isinstance(lengths, list) or len(lengths) != 2 or not all(
                    isinstance(v, int | str) and not isinstance(v, bool) for v in lengths)):
                raise InputFileError(f"{where}: point field lengths must be [input, output] "
                                     f"(lengths or labels), got {lengths!r}"[:300])
            result.points[point_key(obj)] = obj
        else:
            raise InputFileError(f"{where}: unknown line type {kind!r} (expected one of {', '.join(LINE_TYPES)})")
    if result is None:
        raise InputFileError(f"{path}: empty results file (no header)")
    result.torn = torn
    return result
