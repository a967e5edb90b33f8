"""The JSONL results file of a sweep, written as the run goes and read back to resume it.

One JSON object per line, each with a ``type``:

- ``header`` (first line, once): ``schema_version``, provenance (tool and engine versions,
  model, hardware, convention, arguments without secrets, UTC start time);
- ``request``: one per measured request (``point`` = ``[batch, input, output]``, ``repeat``,
  and the :class:`~mfubench.measure.client.RequestRecord` fields);
- ``point``: one per finished point (``batch_size``, ``input_tokens``, ``output_tokens``,
  ``flags``, the measurement and its ``rows``).

Non-finite floats are written as null (JSON has no NaN). Every line is flushed and fsync'ed before the next request is sent, so a crash loses at most the
point in progress. A point counts as finished only once its ``point`` line exists; ``request``
lines of a point interrupted before that stay in the file and are not part of any point.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from mfubench.errors import InputFileError

SCHEMA_VERSION = 1
LINE_TYPES = ("header", "request", "point")

PointKey = tuple[int, int, int]
"""``(batch_size, input_tokens, output_tokens)`` as requested."""


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


@dataclass
class ResultsFile:
    """A results file read back: its header and its finished points, by key."""

    path: Path
    header: dict[str, Any]
    points: dict[PointKey, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0


def point_key(obj: Mapping[str, Any]) -> PointKey:
    """The :data:`PointKey` of a ``point`` line."""
    return (int(obj["batch_size"]), int(obj["input_tokens"]), int(obj["output_tokens"]))


def read_results(path: str | Path) -> ResultsFile:
    """Read and validate a results file; :class:`InputFileError` names the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read: {exc}") from exc
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
            result.points[point_key(obj)] = obj
        else:
            raise InputFileError(f"{where}: unknown line type {kind!r} (expected one of {', '.join(LINE_TYPES)})")
    if result is None:
        raise InputFileError(f"{path}: empty results file (no header)")
    return result
