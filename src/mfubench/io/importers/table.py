"""A measurement table: figures from any tool or paper, one row per measured point.

CSV with a header row (comma-separated; blank lines and lines starting with ``#`` skipped), or
JSON: a list of row objects, or ``{"rows": [...]}``. Columns (JSON keys):

- required: ``input_tokens``, ``output_tokens`` (per request, means over the batch), and the
  load, exactly one of ``batch_size`` (a static batch: requests sent at once), ``concurrency``
  (requests kept in flight, a closed loop) or ``request_rate`` (requests per second, an open
  loop; with ``arrival``: ``poisson``, ``gamma`` or ``constant``);
- timings, at least one: ``ttft_s`` (a static batch: seconds until the batch's first tokens;
  under a load: the mean TTFT per request), ``itl_s`` (seconds between two tokens in decode),
  ``tpot_s`` (mean time per output token after the first, per request), ``elapsed_s`` (the
  whole batch), ``duration_s`` (the whole run under a load), ``output_tokens_per_s`` (output
  tokens of the batch or run per second), ``request_throughput`` (completed requests per
  second); ``completed`` (requests completed in the run);
- optional: ``requested_output_tokens`` (flags rows that stopped early), ``server_flops``,
  ``server_read_bytes``, ``server_write_bytes`` (an engine's own counters over the point),
  ``note`` (free text, kept in ``extra``);
- unit-bearing aliases, converted to seconds: ``ttft_ms``, ``itl_ms``, ``tpot_ms``,
  ``elapsed_ms`` (value / 1000). A column and its alias in the same row is an error.

A ``concurrency`` or ``request_rate`` row is analysed under continuous batching
(:mod:`mfubench.analysis.under_load`), never as a batch of that size.

Any other column is an error that names it, so that ``ttft_msec`` or ``latency`` is not
silently dropped. An empty CSV cell or a JSON ``null`` is an absent value. Rows are numbered
from 1, the header not counted: ``table.csv:row 3`` is the third data row.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mfubench.analysis.load import Load
from mfubench.analysis.measurement import Measurement
from mfubench.counting.workload import MAX_COUNT
from mfubench.errors import InputFileError
from mfubench.io.importers._common import Entry, kind, short

#: Column -> (Measurement field, factor to SI units).
COLUMNS: Mapping[str, tuple[str, float]] = {
    "batch_size": ("batch_size", 1.0),
    "input_tokens": ("input_tokens", 1.0),
    "output_tokens": ("output_tokens", 1.0),
    "requested_output_tokens": ("requested_output_tokens", 1.0),
    "ttft_s": ("ttft_s", 1.0),
    "ttft_ms": ("ttft_s", 1e-3),
    "itl_s": ("itl_s", 1.0),
    "itl_ms": ("itl_s", 1e-3),
    "elapsed_s": ("elapsed_s", 1.0),
    "elapsed_ms": ("elapsed_s", 1e-3),
    "tpot_s": ("tpot_s", 1.0),
    "tpot_ms": ("tpot_s", 1e-3),
    "duration_s": ("duration_s", 1.0),
    "completed": ("completed", 1.0),
    "request_throughput": ("request_throughput", 1.0),
    "concurrency": ("concurrency", 1.0),
    "request_rate": ("request_rate", 1.0),
    "output_tokens_per_s": ("output_tokens_per_s", 1.0),
    "server_flops": ("server_flops", 1.0),
    "server_read_bytes": ("server_read_bytes", 1.0),
    "server_write_bytes": ("server_write_bytes", 1.0),
}
#: Columns of free text, kept in ``extra``.
TEXT_COLUMNS = ("note", "arrival")
REQUIRED = ("input_tokens", "output_tokens")
#: Exactly one of these says how the requests arrived.
LOAD_COLUMNS = ("batch_size", "concurrency", "request_rate")


def read_csv(text: str, path: Path, requested_output_tokens: float | None) -> list[Measurement]:
    """One Measurement per data row of a CSV table."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    out: list[Measurement] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = _header([c.strip() for c in cells], path, reader.line_num)
                continue
            number = len(out) + 1
            entry = Entry(path, f"row {number} (line {reader.line_num})", f"{path.name}:row {number}")
            if len(cells) != len(header):
                raise entry.error(None, f"{len(cells)} cells under a header of {len(header)} columns")
            row: dict[str, Any] = {}
            for name, cell in zip(header, cells, strict=True):
                row[name] = _cell(entry, name, cell.strip())
            out.append(_measurement(entry, row, requested_output_tokens, "table.csv"))
    except csv.Error as exc:
        raise InputFileError(f"{path}: line {reader.line_num}: not readable as CSV: {exc}") from None
    if header is None:
        raise InputFileError(f"{path}: no header row")
    if not out:
        raise InputFileError(f"{path}: a header but no rows")
    return out


def read_json_rows(
    rows: object, path: Path, requested_output_tokens: float | None
) -> list[Measurement]:
    """One Measurement per object of a JSON list of rows."""
    if not isinstance(rows, list):
        raise InputFileError(f"{path}: field 'rows': expected a list, got {kind(rows)}")
    if not rows:
        raise InputFileError(f"{path}: no rows")
    out = []
    for number, raw in enumerate(rows, start=1):
        entry = Entry(path, f"row {number}", f"{path.name}:row {number}")
        row = entry.mapping(None, raw)
        if "phase" in row:
            raise entry.error(
                None, "this is mfubench analysis output (rows with 'phase'), not measurements"
            )
        out.append(_measurement(entry, row, requested_output_tokens, "table.json"))
    return out


def _header(names: list[str], path: Path, line: int) -> list[str]:
    where = f"{path}: header (line {line})"
    for position, name in enumerate(names, start=1):
        if not name:
            raise InputFileError(f"{where}: column {position} has no name")
    counts = Counter(names)  # linear: a header of 10^5 columns must not take minutes
    duplicates = sorted(n for n, c in counts.items() if c > 1)
    if duplicates:
        raise InputFileError(f"{where}: column(s) {_some(duplicates)} appear twice")
    unknown = [n for n in counts if n not in COLUMNS and n not in TEXT_COLUMNS]
    if unknown:
        raise InputFileError(
            f"{where}: unknown column(s) {_some(unknown)}; "
            f"expected some of {', '.join([*COLUMNS, *TEXT_COLUMNS])}"
        )
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise InputFileError(f"{where}: missing required column(s) {', '.join(map(repr, missing))}")
    if not any(n in names for n in LOAD_COLUMNS):
        raise InputFileError(f"{where}: no load column: give one of {', '.join(LOAD_COLUMNS)}")
    return names


def _some(names: list[str], shown: int = 5) -> str:
    """The first few names, quoted, and how many more (a message stays one readable line)."""
    text = ", ".join(short(n) for n in names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _cell(entry: Entry, name: str, cell: str) -> object:
    """A CSV cell as a number (or text for text columns); empty is None."""
    if not cell:
        return None
    if name in TEXT_COLUMNS:
        return cell
    try:
        return float(cell)
    except ValueError:
        raise entry.error(name, f"expected a number, got {short(cell)}") from None


def _measurement(
    entry: Entry, row: Mapping[str, Any], requested_override: float | None, fmt: str
) -> Measurement:
    entry.unknown_keys(row, [*COLUMNS, *TEXT_COLUMNS])
    values: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    extra: dict[str, Any] = {"format": fmt}
    for name, value in row.items():
        if value is None:
            continue
        if name in TEXT_COLUMNS:
            if not isinstance(value, str):
                raise entry.error(name, f"expected text, got {kind(value)}")
            extra[name] = value
            continue
        field, scale = COLUMNS[name]
        if field in given_as:
            raise entry.error(name, f"given twice, as {given_as[field]!r} and {name!r}")
        given_as[field] = name
        values[field] = entry.field(name, field, value, scale)
    for name in REQUIRED:
        if name not in values:
            raise entry.error(name, "missing")
    _set_load(entry, values, extra)
    if requested_override is not None:
        values["requested_output_tokens"] = requested_override
    return entry.measurement(extra=extra, **values)


def _set_load(entry: Entry, values: dict[str, Any], extra: dict[str, Any]) -> None:
    """Turn the row's one load column into ``values["load"]`` (and a ``batch_size``)."""
    given = [n for n in LOAD_COLUMNS if n in values]
    if len(given) != 1:
        raise entry.error(" / ".join(LOAD_COLUMNS),
                          f"a row needs exactly one of them, got {', '.join(given) or 'none'}")
    arrival = extra.pop("arrival", None)
    if arrival is not None and given[0] != "request_rate":
        raise entry.error("arrival", "only a request_rate row has arrivals")
    try:
        if given[0] == "concurrency":
            values["load"] = Load("concurrency", float(values["concurrency"]))
            values["batch_size"] = values.pop("concurrency")
        elif given[0] == "request_rate":
            rate = values.pop("request_rate")
            values["load"] = Load("rate", rate, arrival)
            values["batch_size"] = _mean_in_flight(values, rate, extra)
    except InputFileError as exc:
        raise entry.error(given[0], str(exc)) from None
    if "completed" in values:
        values["completed"] = int(values["completed"])


def _mean_in_flight(values: Mapping[str, Any], rate: float, extra: dict[str, Any]) -> int:
    """Requests in flight on average at ``rate`` (Little's law: rate x mean end-to-end time,
    from TTFT and TPOT), rounded and at least 1; said in ``extra["batch_size_from"]``."""
    ttft, tpot = values.get("ttft_s"), values.get("tpot_s") or values.get("itl_s")
    out = float(values.get("output_tokens", 1))
    if ttft is None or (tpot is None and out > 1):
        extra["batch_size_from"] = "unknown (no TTFT and TPOT): 1"
        return 1
    in_flight = rate * (ttft + max(0.0, out - 1) * (tpot or 0.0))
    extra["batch_size_from"] = f"Little's law: {rate:g} req/s x {ttft + max(0.0, out - 1) * (tpot or 0.0):.4g} s"
    return int(max(1, min(round(in_flight), MAX_COUNT)))
