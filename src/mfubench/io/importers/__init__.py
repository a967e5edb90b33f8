"""Read measured points from the files people have: :func:`load_measurements`.

Four formats, told apart by content (the file name's suffix only settles CSV vs JSON):

1. **Seed** (:mod:`.seed`): ``{"results": {"<batch>": {"avg_input_tokens", ...}}}`` or the same
   mapping bare.
2. **Measurement table** (:mod:`.table`): CSV with a header row, or JSON rows (a list of row
   objects, or ``{"rows": [...]}``), columns ``batch_size, input_tokens, output_tokens`` and
   timings (``ttft_s``, ``itl_s``, ``elapsed_s``, ``output_tokens_per_s``; aliases ``ttft_ms``,
   ``itl_ms``, ``elapsed_ms``).
3. **vllm bench serve** result JSON (:mod:`.vllm_bench`), one run per file or per line.
4. **mfubench results** JSONL (:mod:`.results`): ``header``, ``request`` and ``point`` lines.

Detection, in order:

- a ``.csv`` suffix: a CSV table;
- else, text whose first non-blank character is neither ``{`` nor ``[``: a CSV table, unless
  the suffix is ``.json``, ``.jsonl`` or ``.ndjson``;
- else the whole text as one JSON document:
  a list -> table rows; an object with ``type`` -> mfubench results (one line);
  with ``results`` -> seed; with ``rows`` -> table rows; with ``duration`` and ``completed``
  -> vllm bench serve; whose values are all objects and some key is an integer -> bare seed;
  anything else is an error naming the formats;
- if the text is several JSON documents (one per line): every line an object; the first line
  with ``type`` -> mfubench results; with ``duration`` and ``completed`` -> vllm bench serve
  results appended with ``--append-result`` (one Measurement per line).

``requested_output_tokens``, when given, is set on every point (overriding the file's value
and the seed's inference). Every malformed input raises
:class:`~mfubench.errors.InputFileError`, whose message names the file, the entry (batch key,
row, line) and the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mfubench.analysis.measurement import Measurement
from mfubench.errors import InputFileError, MfubenchError
from mfubench.io.importers._common import (
    Entry,
    is_json_extra_data,
    json_lines,
    kind,
    parse_json,
    read_text,
)
from mfubench.io.importers.results import looks_like_results, read_results
from mfubench.io.importers.seed import looks_like_bare_seed, read_seed
from mfubench.io.importers.table import read_csv, read_json_rows
from mfubench.io.importers.vllm_bench import looks_like_vllm_bench, read_vllm_bench

__all__ = ["FORMATS", "load_measurements"]

#: The formats' names, as ``Measurement.extra["format"]`` gives them.
FORMATS = ("seed", "table.csv", "table.json", "vllm-bench-serve", "mfubench-results")

_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
_EXPECTED = (
    "expected the seed's {'results': {batch: {...}}}, a table ({'rows': [...]} or a list of "
    "rows), a 'vllm bench serve' result, or mfubench results lines"
)


def load_measurements(
    path: str | Path, *, requested_output_tokens: float | None = None
) -> list[Measurement]:
    """Every measured point of the file at ``path``, whatever its format (see the module doc).

    Raises :class:`~mfubench.errors.InputFileError` for a file that cannot be read or is
    malformed, and :class:`~mfubench.errors.MfubenchError` for a ``requested_output_tokens``
    that is not a finite number >= 1.
    """
    path = Path(path)
    if requested_output_tokens is not None and (
        isinstance(requested_output_tokens, bool)
        or not isinstance(requested_output_tokens, int | float)
        or not math.isfinite(requested_output_tokens)
        or requested_output_tokens < 1
    ):
        raise MfubenchError(
            f"requested output tokens must be a number >= 1, got {requested_output_tokens!r}"
        )
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(text, path, requested_output_tokens)
    if text.lstrip()[:1] not in ("{", "[") and suffix not in _JSON_SUFFIXES:
        return read_csv(text, path, requested_output_tokens)
    if is_json_extra_data(text):
        return _read_lines(text, path, requested_output_tokens)
    return _read_document(parse_json(text, path), path, requested_output_tokens)


def _read_document(doc: Any, path: Path, requested: float | None) -> list[Measurement]:
    if isinstance(doc, list):
        return read_json_rows(doc, path, requested)
    if not isinstance(doc, dict):
        raise InputFileError(f"{path}: the document is {kind(doc)}; {_EXPECTED}")
    if looks_like_results(doc):
        return read_results([(1, doc)], path, requested)
    if "results" in doc:
        return read_seed(doc, path, requested)
    if "rows" in doc:
        rows = doc["rows"]
        if isinstance(rows, list) and any(isinstance(r, dict) and "phase" in r for r in rows):
            raise InputFileError(
                f"{path}: this is mfubench analysis output (rows with 'phase'), not measurements"
            )
        extra_keys = [k for k in doc if k != "rows"]
        if extra_keys:
            raise InputFileError(
                f"{path}: unknown top-level field(s) {', '.join(map(repr, extra_keys))} beside 'rows'"
            )
        return read_json_rows(doc["rows"], path, requested)
    if looks_like_vllm_bench(doc):
        return [read_vllm_bench(doc, Entry(path, "result", path.name), requested)]
    if looks_like_bare_seed(doc):
        return read_seed(doc, path, requested)
    keys = ", ".join(repr(k) for k in list(doc)[:5]) or "none"
    raise InputFileError(f"{path}: format not recognised (top-level keys: {keys}); {_EXPECTED}")


def _read_lines(text: str, path: Path, requested: float | None) -> list[Measurement]:
    lines = json_lines(text, path)
    first_number, first = lines[0]
    if looks_like_results(first):
        return read_results(lines, path, requested)
    if looks_like_vllm_bench(first):
        out = []
        for number, obj in lines:
            entry = Entry(path, f"line {number}", f"{path.name}:line {number}")
            if not looks_like_vllm_bench(obj):
                raise entry.error(None, "not a 'vllm bench serve' result like line 1 (no 'duration'/'completed')")
            out.append(read_vllm_bench(obj, entry, requested))
        return out
    raise InputFileError(
        f"{path}: line {first_number}: several JSON documents, but the first is neither an "
        "mfubench results line (no 'type') nor a 'vllm bench serve' result (no 'duration')"
    )
