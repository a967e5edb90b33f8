"""What AIPerf's and GenAI-Perf's profile exports share (AIPerf's were made to mimic GenAI-Perf's).

The JSON export is an object of metrics, each ``{"unit": ..., "avg": ..., "p50": ..., ...}``
(or null), beside ``input_config`` (the run's configuration). The CSV export is sections of
rows separated by a blank row, each section headed by a row whose first cell is ``Metric``:
per-request metrics with their statistics (``Metric,avg,min,max,...``), then run-level
metrics (``Metric,Value``); a metric's name carries its unit, ``"Time to First Token (ms)"``.
The CSV has no configuration: the load is read from the JSON export the same run wrote beside
it (:func:`sibling_json`).

Nothing here knows which metrics a format has; :mod:`.aiperf` and :mod:`.genai_perf` do.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfubench.analysis.load import Load
from mfubench.analysis.measurement import Measurement
from mfubench.errors import InputFileError
from mfubench.io.importers._common import Entry, kind, parse_json, read_text, short
from mfubench.io.importers.vllm_bench import _mean_in_flight

#: Seconds per unit of the time units both tools write.
TIME_UNITS: Mapping[str, float] = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "sec": 1.0}
_NAME_UNIT = re.compile(r"(.*\S) \(([^()]*)\)")


def stat(entry: Entry, doc: Mapping[str, Any], tag: str, units: Mapping[str, float],
         labels: Mapping[str, str] | None = None) -> float | None:
    """``doc[tag]["avg"]`` in the unit the metric declares, times ``units[unit]``; None when
    the metric or its average is absent or null. Negative, NaN and infinite values, and a unit
    not in ``units``, are errors naming the field: ``tag.avg`` / ``tag.unit``, or the CSV's
    name of the metric when ``labels`` (tag -> name, from :func:`csv_as_json`) has it."""
    if doc.get(tag) is None:
        return None
    label = (labels or {}).get(tag)
    body = entry.mapping(label or tag, doc[tag])
    unit = body.get("unit")
    if not isinstance(unit, str):
        raise entry.error(label or f"{tag}.unit", f"expected the metric's unit, got {kind(unit)} {short(unit)}")
    if unit not in units:
        raise entry.error(label or f"{tag}.unit", f"unit {unit!r}: expected {' or '.join(map(repr, units))}")
    if body.get("avg") is None:
        return None
    return entry.number(label or f"{tag}.avg", body["avg"], strict=False) * units[unit]


@dataclass(frozen=True)
class CsvMetric:
    """One row of a metrics CSV: its row number, unit (None when the name carries none) and
    its cells by column header (``avg``, ``min``, ... or ``Value``)."""

    row: int
    unit: str | None
    cells: Mapping[str, str]


def read_metric_csv(text: str, path: Path) -> dict[str, CsvMetric]:
    """The rows of a metrics CSV by metric name (its unit cut off); a row before any header
    row, with more cells than its header, or naming a metric twice is an error."""
    metrics: dict[str, CsvMetric] = {}
    header: list[str] | None = None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise InputFileError(f"{path}: not a readable CSV: {exc}") from None
    for number, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            header = None  # a blank row ends a section
            continue
        if row[0] == "Metric":
            header = row[1:]
            continue
        if header is None:
            raise InputFileError(f"{path}: row {number}: a metric row outside a section (no 'Metric,...' header above it)")
        if len(row) - 1 > len(header):
            raise InputFileError(f"{path}: row {number}: {len(row) - 1} values, but its header has {len(header)}")
        match = _NAME_UNIT.fullmatch(row[0])
        name, unit = (match.group(1), match.group(2)) if match else (row[0], None)
        if name in metrics:
            raise InputFileError(f"{path}: row {number}: metric {row[0]!r} appears twice")
        metrics[name] = CsvMetric(number, unit, dict(zip(header, row[1:], strict=False)))
    if not metrics:
        raise InputFileError(f"{path}: no metric rows")
    return metrics


def csv_as_json(metrics: Mapping[str, CsvMetric], names: Mapping[str, str],
                default_units: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The CSV's metrics as the JSON export holds them, ``{tag: {"unit": u, "avg": x}}``, for
    the metric names in ``names`` (name -> tag) that the CSV has, and each tag's label for
    messages (the CSV's name, ``Time to First Token (ms)``). The figure is the ``avg`` cell of a
    per-request row, the ``Value`` cell of a run-level one; a cell ``""`` or ``N/A`` (no value)
    is null; thousands separators are dropped (``1,234.56``); a cell that is not a number stays
    text, for :func:`stat` to refuse by name. A name without a unit takes
    ``default_units[tag]`` (a writer that leaves out "requests")."""
    doc: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for name, tag in names.items():
        metric = metrics.get(name)
        if metric is None:
            continue
        cell = metric.cells.get("avg", metric.cells.get("Value", "")).strip()
        value: float | str | None = None
        if cell not in ("", "N/A"):
            try:
                value = float(cell.replace(",", ""))
            except ValueError:
                value = cell
        unit = metric.unit if metric.unit is not None else (default_units or {}).get(tag)
        doc[tag] = {"unit": unit, "avg": value}
        labels[tag] = f"{name} ({metric.unit})" if metric.unit else name
    return doc, labels


def sibling_json(path: Path, name: str, tool: str) -> tuple[Path, dict[str, Any]]:
    """The JSON export ``name`` beside the CSV at ``path``, parsed: where the run's load is."""
    json_path = path.with_name(name)
    if not json_path.is_file():
        raise InputFileError(
            f"{path}: a {tool} CSV export has no configuration, so its load (concurrency or "
            f"request rate) is read from the {name} the same run wrote beside it: {json_path} "
            "not found")
    doc = parse_json(read_text(json_path), json_path)
    if not isinstance(doc, dict) or not isinstance(doc.get("input_config"), dict):
        raise InputFileError(f"{json_path}: not a {tool} JSON export (no 'input_config' object), "
                             f"so the load of {path.name} is unknown")
    return json_path, doc


def run_measurement(entry: Entry, load: Load, batch_size: int, values: dict[str, Any],
                    extra: dict[str, Any]) -> Measurement:
    """The run's Measurement under ``load``: per-request means (``ttft_s``, ``tpot_s``) and the
    run's totals (``duration_s``, ``completed``, ``request_throughput``); ``batch_size`` is the
    concurrency, or under a rate or a trace the mean in flight by Little's law."""
    values = {k: v for k, v in values.items() if v is not None}
    values.update(load=load, batch_size=batch_size)
    if load.kind in ("rate", "trace"):
        values["batch_size"] = _mean_in_flight(values, extra)
    return entry.measurement(extra=extra, **values)
