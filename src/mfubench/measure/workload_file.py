"""``--workload FILE``: the requests of a run under load, one JSON object per line.

Each line is ``{"input_tokens": I, "output_tokens": O}``, optionally with ``"arrival_s": T``
(seconds from the start of the run). Either every line has ``arrival_s`` or none has:

- with arrival times the file is a **trace**: the requests are sent at those times (sorted;
  the first arrival is the start), whatever the server does: ``Load("trace")``;
- without, the file gives the lengths of the requests, in order (cycled when more are sent),
  under ``--concurrency`` or ``--request-rate``.

Blank lines and lines starting with ``#`` are skipped. Every other line is checked here: a
malformed one is an :class:`~mfubench.errors.InputFileError` naming the file, line and field.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from mfubench.counting.workload import MAX_COUNT
from mfubench.errors import InputFileError

#: The most requests a workload file may hold, and its largest size in bytes.
MAX_REQUESTS = 1_000_000
MAX_BYTES = 256 * 1024 * 1024
_KEYS = ("input_tokens", "output_tokens", "arrival_s")


@dataclass(frozen=True)
class Workload:
    """The requests of a workload file.

    Attributes:
        name: the file's name, for labels.
        digest: the first 12 hex digits of the file's SHA-256 (a resumed run must replay the
            same file).
        lengths: ``(input_tokens, output_tokens)`` per request, in file order (a trace's sorted
            by arrival).
        arrivals_s: each request's arrival, seconds after the first; None without times.
    """

    name: str
    digest: str
    lengths: tuple[tuple[int, int], ...]
    arrivals_s: tuple[float, ...] | None = None

    @property
    def is_trace(self) -> bool:
        return self.arrivals_s is not None

    @property
    def longest(self) -> tuple[int, int]:
        """The request with the longest prompt and output together."""
        return max(self.lengths, key=lambda io: (io[0] + io[1], io[0]))

    @property
    def label(self) -> str:
        return f"workload {self.name} ({self.digest})"


def read_workload(path: str | Path) -> Workload:
    """Read and check a workload file (module doc)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputFileError(f"{path}: {size} bytes; a workload file may hold at most {MAX_BYTES}")
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{path}: is a directory, not a workload file") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    rows: list[tuple[int, int, float | None]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if len(rows) >= MAX_REQUESTS:
            raise InputFileError(f"{path}: more than {MAX_REQUESTS} requests")
        rows.append(_line(path, number, line))
    if not rows:
        raise InputFileError(f"{path}: no requests (expected one JSON object per line)")
    timed = [r[2] is not None for r in rows]
    if any(timed) and not all(timed):
        first = timed.index(not timed[0]) + 1
        raise InputFileError(f"{path}: request {first} {'has' if timed[first - 1] else 'lacks'} "
                             "'arrival_s' and request 1 does not: give it on every line or on none")
    digest = hashlib.sha256(data).hexdigest()[:12]
    if not all(timed):
        return Workload(path.name, digest, tuple((i, o) for i, o, _ in rows))
    ordered = sorted(rows, key=lambda r: r[2] or 0.0)
    start = ordered[0][2] or 0.0
    return Workload(path.name, digest, tuple((i, o) for i, o, _ in ordered),
                    tuple((t or 0.0) - start for _, _, t in ordered))


def _line(path: Path, number: int, line: str) -> tuple[int, int, float | None]:
    where = f"{path}: line {number}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{where}: not valid JSON: {exc.msg} at column {exc.colno}") from None
    except (RecursionError, ValueError):
        raise InputFileError(f"{where}: not valid JSON") from None
    if not isinstance(obj, dict):
        raise InputFileError(f"{where}: expected a JSON object with input_tokens and output_tokens")
    unknown = [k for k in obj if k not in _KEYS]
    if unknown:
        raise InputFileError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
                             f"expected {', '.join(_KEYS)}")
    counts = []
    for key in ("input_tokens", "output_tokens"):
        if key not in obj:
            raise InputFileError(f"{where}: field {key!r}: missing")
        value = obj[key]
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value != int(value) or not 1 <= value <= MAX_COUNT):
            raise InputFileError(f"{where}: field {key!r}: expected a whole number of tokens from 1 "
                                 f"to 2^40, got {value!r}"[:200])
        counts.append(int(value))
    arrival = obj.get("arrival_s")
    if arrival is not None and (isinstance(arrival, bool) or not isinstance(arrival, int | float)
                                or not math.isfinite(arrival) or arrival < 0 or arrival > 1e9):
        raise InputFileError(f"{where}: field 'arrival_s': expected seconds >= 0, got {arrival!r}"[:200])
    return counts[0], counts[1], None if arrival is None else float(arrival)
