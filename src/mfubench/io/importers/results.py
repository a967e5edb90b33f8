"""mfubench's own results file (JSONL, written by ``mfubench run``; see
:mod:`mfubench.measure.results_log` and :mod:`mfubench.measure.sweep`).

One JSON object per line, each with a ``type``:

- ``header``: provenance; at most one, first; its ``schema_version``, when given, must be the
  one this mfubench writes. Kept whole in each Measurement's ``extra["header"]``.
- ``request``: one measured request; not read here (the point carries the means).
- ``point``: a finished point (under load, ``measurement.mix`` lists ``[input, output,
  count]`` when the requests' lengths differed). The sweep writes the requested ``batch_size``,
  ``input_tokens``, ``output_tokens``, its ``flags``, ``rows`` (analysis output, ignored: the
  analysis is redone) and ``measurement``: Measurement's fields (``source`` aside) and ``extra``.
  ``measurement: null`` (nothing could be timed) is skipped. A hand-written point line may
  instead carry Measurement's fields at top level, beside ``type``, ``flags`` and ``extra``;
  any other key there, or in ``measurement``, is an error that names it.

The point's ``flags`` (why it must stay out of the figures) go to ``extra["flags"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from mfubench.analysis.load import Load
from mfubench.analysis.measurement import Measurement
from mfubench.analysis.request_mix import RequestMix
from mfubench.errors import InputFileError
from mfubench.io.importers._common import Entry, kind
from mfubench.measure.results_log import LINE_TYPES, SCHEMA_VERSION

#: Measurement fields a results line may carry (``source`` is set from the file and line).
FIELDS = tuple(f.name for f in fields(Measurement) if f.name not in ("source", "extra"))
_POINT_KEYS = ("type", "flags", "rows", "extra", "lengths")


def looks_like_results(doc: Mapping[str, Any]) -> bool:
    return "type" in doc


def read_results(
    lines: list[tuple[int, dict[str, Any]]], path: Path, requested_output_tokens: float | None
) -> list[Measurement]:
    """One Measurement per timed ``point`` line, in file order."""
    header: dict[str, Any] | None = None
    out: list[Measurement] = []
    points = 0
    for position, (number, obj) in enumerate(lines):
        entry = Entry(path, f"line {number}", f"{path.name}:line {number}")
        line_type = obj.get("type")
        if line_type not in LINE_TYPES:
            raise entry.error("type", f"{line_type!r} is not one of {', '.join(LINE_TYPES)}")
        if line_type == "header":
            if position != 0:
                raise entry.error("type", "a header after other lines (only the first line may be one)")
            version = obj.get("schema_version", SCHEMA_VERSION)
            if version != SCHEMA_VERSION:
                raise entry.error(
                    "schema_version", f"{version!r}; this mfubench reads {SCHEMA_VERSION}"
                )
            header = obj
        elif line_type == "point":
            points += 1
            m = _point(entry, obj, header, requested_output_tokens)
            if m is not None:
                out.append(m)
    if not points:
        raise InputFileError(f"{path}: no 'point' lines (no point of this run finished)")
    if not out:
        raise InputFileError(f"{path}: {points} point(s), none with a measurement (nothing was timed)")
    return out


def _load(entry: Entry, field: str, value: object) -> Load:
    """A ``load`` object (``kind``, ``level``, ``arrival``, ``burstiness``) as a :class:`Load`."""
    body = entry.mapping(field, value)
    entry.unknown_keys(body, ("kind", "level", "arrival", "burstiness"))
    try:
        level = body.get("level")
        burstiness = body.get("burstiness")
        return Load(str(body.get("kind")),  # type: ignore[arg-type]  # Load validates it
                    None if level is None else entry.number(f"{field}.level", level),
                    None if body.get("arrival") is None else str(body["arrival"]),
                    None if burstiness is None else entry.number(f"{field}.burstiness", burstiness))
    except InputFileError as exc:
        raise entry.error(field, str(exc)) from None


def _mix(entry: Entry, field: str, value: object) -> RequestMix:
    """A ``mix``: a list of ``[input, output, count]`` triples (:class:`RequestMix`)."""
    if not isinstance(value, list):
        raise entry.error(field, f"expected a list of [input, output, count], got {kind(value)}")
    pairs: list[tuple[int, int, int]] = []
    for k, item in enumerate(value):
        if not isinstance(item, list) or len(item) != 3:
            raise entry.error(f"{field}[{k}]", f"expected [input, output, count], got {kind(item)}")
        i, o, n = (entry.count(f"{field}[{k}][{j}]", v) for j, v in enumerate(item))
        pairs.append((i, o, n))
    try:
        return RequestMix(tuple(pairs))
    except InputFileError as exc:
        raise entry.error(field, str(exc)) from None


def _point(
    entry: Entry,
    obj: Mapping[str, Any],
    header: Mapping[str, Any] | None,
    requested_output_tokens: float | None,
) -> Measurement | None:
    if "measurement" in obj:
        if obj["measurement"] is None:
            return None
        body = entry.mapping("measurement", obj["measurement"])
        entry.unknown_keys(body, (*FIELDS, "extra"))
        prefix = "measurement."
    else:
        body = obj
        entry.unknown_keys(body, (*FIELDS, *_POINT_KEYS))
        prefix = ""
    values: dict[str, Any] = {}
    for name in FIELDS:
        if body.get(name) is None:
            continue
        if name == "load":
            values[name] = _load(entry, prefix + name, body[name])
        elif name == "mix":
            values[name] = _mix(entry, prefix + name, body[name])
        else:
            values[name] = entry.field(prefix + name, name, body[name])
    if "completed" in values:
        values["completed"] = int(values["completed"])
    for name in ("batch_size", "input_tokens", "output_tokens"):
        if name not in values:
            raise entry.error(prefix + name, "missing")
    extra: dict[str, Any] = {}
    if body.get("extra") is not None:
        extra.update(entry.mapping(prefix + "extra", body["extra"]))
    extra["format"] = "mfubench-results"
    flags = obj.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise entry.error("flags", f"expected a list of names, got {kind(flags)}")
    extra["flags"] = list(flags)
    if header is not None:
        extra["header"] = header
    if requested_output_tokens is not None:
        values["requested_output_tokens"] = requested_output_tokens
    return entry.measurement(extra=extra, **values)
