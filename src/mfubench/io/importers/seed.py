"""The seed's results format: one entry per batch size, averages over the batch.

``{"results": {"<batch>": {...}}}`` or the same mapping bare, each entry with

- ``avg_input_tokens`` -> ``input_tokens`` (required);
- ``avg_output_tokens`` -> ``output_tokens`` (required);
- ``elapsed_time`` -> ``elapsed_s``: seconds for the whole batch (required);
- ``tokens_per_second_in_batch`` -> ``output_tokens_per_s``: output tokens of the batch /
  elapsed (optional; kept as information, the analysis times from ``elapsed_s``);
- ``avg_tokens_per_second``: per request (optional; kept in ``extra``).

The key is the batch size. Nothing in the file says how many output tokens were asked for: when
every entry has the same input length (one sweep over batch sizes) the requested output is taken
as the largest average output of the file, so that entries below it are flagged as stopped
early (the seed's decode runs asked for 900 and got 868.75 at batch 16, 846.06 at batch 32).
A caller who knows the requested length passes it and the guess is not made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mfubench.analysis.measurement import Measurement
from mfubench.errors import InputFileError
from mfubench.io.importers._common import Entry, kind, short

#: Fields of one entry, required first.
REQUIRED = ("avg_input_tokens", "avg_output_tokens", "elapsed_time")
OPTIONAL = ("tokens_per_second_in_batch", "avg_tokens_per_second")

_BATCH_KEY = re.compile(r"[0-9]+")


def looks_like_bare_seed(doc: Mapping[str, Any]) -> bool:
    """A non-empty object whose values are all objects and at least one key is a batch size."""
    return (
        bool(doc)
        and all(isinstance(v, dict) for v in doc.values())
        and any(_BATCH_KEY.fullmatch(k) for k in doc)
    )


def read_seed(
    doc: Mapping[str, Any], path: Path, requested_output_tokens: float | None
) -> list[Measurement]:
    """One Measurement per batch key, in increasing batch size."""
    if "results" in doc:
        extra_keys = [k for k in doc if k != "results"]
        if extra_keys:
            raise InputFileError(
                f"{path}: unknown top-level field(s) {', '.join(map(repr, extra_keys))} beside "
                "'results' (the seed's format has only 'results')"
            )
        results = doc["results"]
        if not isinstance(results, dict):
            raise InputFileError(f"{path}: field 'results': expected an object, got {kind(results)}")
    else:
        results = dict(doc)
    if not results:
        raise InputFileError(f"{path}: field 'results': no entries")

    parsed: list[tuple[int, Entry, dict[str, Any]]] = []
    for key, raw in results.items():
        entry = Entry(path, f"batch {key!r}", f"{path.name}[batch={key}]")
        if not _BATCH_KEY.fullmatch(key) or int(key) < 1:
            raise entry.error(None, f"the key must be a batch size (a positive integer), got {short(key)}")
        fields = entry.mapping(None, raw)
        entry.unknown_keys(fields, REQUIRED + OPTIONAL)
        for name in REQUIRED:
            if name not in fields:
                raise entry.error(name, "missing")
        values: dict[str, Any] = {
            "batch_size": int(key),
            "input_tokens": entry.number("avg_input_tokens", fields["avg_input_tokens"], minimum=1.0, strict=False),
            "output_tokens": entry.number("avg_output_tokens", fields["avg_output_tokens"], strict=False),
            "elapsed_s": entry.seconds("elapsed_time", fields["elapsed_time"]),
        }
        if fields.get("tokens_per_second_in_batch") is not None:
            values["output_tokens_per_s"] = entry.number(
                "tokens_per_second_in_batch", fields["tokens_per_second_in_batch"]
            )
        extra: dict[str, Any] = {"format": "seed"}
        if fields.get("avg_tokens_per_second") is not None:
            extra["avg_tokens_per_second"] = entry.number(
                "avg_tokens_per_second", fields["avg_tokens_per_second"]
            )
        values["extra"] = extra
        parsed.append((int(key), entry, values))

    requested, how = _requested(parsed, requested_output_tokens)
    out = []
    for _, entry, values in sorted(parsed, key=lambda item: item[0]):
        if how:
            values["extra"]["requested_output_tokens_from"] = how
        out.append(entry.measurement(requested_output_tokens=requested, **values))
    return out


def _requested(
    parsed: list[tuple[int, Entry, dict[str, Any]]], given: float | None
) -> tuple[float | None, str | None]:
    """The requested output length and how it was found (None, None when it cannot be told)."""
    if given is not None:
        return given, "caller"
    largest = max(values["output_tokens"] for _, _, values in parsed)
    if len({values["input_tokens"] for _, _, values in parsed}) != 1 or largest < 1:
        return None, None
    return (
        largest,
        "inferred: the largest avg_output_tokens of the file (all entries share one input length)",
    )
