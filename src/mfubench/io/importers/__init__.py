"""Read measured points from the files people have: :func:`load_measurements`.

Nine formats, told apart by content (the file name's suffix only settles CSV vs JSON):

1. **Seed** (:mod:`.seed`): ``{"results": {"<batch>": {"avg_input_tokens", ...}}}`` or the same
   mapping bare.
2. **Measurement table** (:mod:`.table`): CSV with a header row, or JSON rows (a list of row
   objects, or ``{"rows": [...]}``), columns ``batch_size, input_tokens, output_tokens`` and
   timings (``ttft_s``, ``itl_s``, ``elapsed_s``, ``output_tokens_per_s``; aliases ``ttft_ms``,
   ``itl_ms``, ``elapsed_ms``).
3. **vllm bench serve** result JSON (:mod:`.vllm_bench`), one run per file or per line.
4. **mfubench results** JSONL (:mod:`.results`): ``header``, ``request`` and ``point`` lines.
5. **SGLang bench_serving** results (:mod:`.sglang_bench`), one run per line of its
   ``--output-file``.
6. **AIPerf** profile export (:mod:`.aiperf`): ``profile_export_aiperf.json``, or its ``.csv``
   with the JSON beside it.
7. **GenAI-Perf** profile export (:mod:`.genai_perf`): ``profile_export_genai_perf.json``, or
   its ``.csv`` with the JSON beside it.
8. **guidellm** benchmark report (:mod:`.guidellm`): ``benchmarks.json``, one point per
   benchmark.
9. **llama-bench** results (:mod:`.llama_bench`): ``-o json`` (an array of test objects),
   ``-o jsonl``, ``-o csv`` and ``-o md``, one point per test.

The peer tools' files are read under the load they held (``Measurement.load``: a concurrency,
a rate or a trace; a static batch where every request was in flight at once), with
``extra["load_from"]`` saying why.

Detection, in order:

- CSV text (a ``.csv`` suffix, or text whose first non-blank character is neither ``{`` nor
  ``[`` unless the suffix is ``.json``, ``.jsonl`` or ``.ndjson``): a llama-bench markdown
  table (a ``| model | ... | test | t/s |`` header line) -> llama-bench; a first row naming
  llama-bench's fields (``model_type``, ``model_size``, ``n_prompt``, ``n_gen``, ``avg_ns``)
  -> llama-bench CSV; a first row of AIPerf's
  (``Metric,avg,min,max,p1,...``) or GenAI-Perf's (``Metric,avg,min,max,p99,...``) per-request
  header -> that tool's CSV export (a first row ``Metric,Value``: AIPerf's when its rows name a
  ``Benchmark Duration``, else GenAI-Perf's); anything else -> a CSV table;
- else the whole text as one JSON document:
  a list of llama-bench test objects -> llama-bench; another list -> table rows; an object with ``type`` -> mfubench results (one line);
  with ``results`` -> seed; with ``rows`` -> table rows; with ``benchmarks`` and ``metadata``
  -> guidellm; with an ``input_config`` holding ``perf_analyzer`` -> GenAI-Perf, holding
  ``endpoint`` or ``loadgen`` -> AIPerf; with ``duration`` and ``completed`` -> SGLang when
  SGLang's dataset arguments are there and vLLM's own keys are not
  (:func:`~mfubench.io.importers.vllm_bench.is_sglang_result`), else vllm bench serve; whose
  values are all objects and some key is an integer -> bare seed; anything else is an error
  naming the formats;
- if the text is several JSON documents (one per line): every line an object; the first line
  with ``type`` -> mfubench results; a llama-bench test object -> llama-bench (``-o jsonl``);
  an SGLang result -> SGLang results, one Measurement per line; with ``duration`` and ``completed`` -> vllm bench serve results appended with
  ``--append-result``. A line of another format than the first is an error.

``requested_output_tokens``, when given, is set on every point (overriding the file's value
and the seed's inference). Every malformed input raises
:class:`~mfubench.errors.InputFileError`, whose message names the file, the entry (batch key,
row, line, benchmark) and the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mfubench.analysis.measurement import Measurement
from mfubench.errors import InputFileError, MfubenchError
from mfubench.io.importers import aiperf, genai_perf, llama_bench
from mfubench.io.importers._common import (
    Entry,
    is_json_extra_data,
    json_lines,
    kind,
    parse_json,
    read_text,
)
from mfubench.io.importers.guidellm import looks_like_guidellm, read_guidellm
from mfubench.io.importers.results import looks_like_results, read_results
from mfubench.io.importers.seed import looks_like_bare_seed, read_seed
from mfubench.io.importers.sglang_bench import looks_like_sglang_bench, read_sglang_bench
from mfubench.io.importers.table import read_csv, read_json_rows
from mfubench.io.importers.vllm_bench import looks_like_vllm_bench, read_vllm_bench

__all__ = ["FORMATS", "load_measurements"]

#: The formats' names, as ``Measurement.extra["format"]`` gives them.
FORMATS = ("seed", "table.csv", "table.json", "vllm-bench-serve", "mfubench-results",
           "sglang-bench-serving", aiperf.FORMAT_JSON, aiperf.FORMAT_CSV, genai_perf.FORMAT_JSON,
           genai_perf.FORMAT_CSV, "guidellm", llama_bench.FORMAT_JSON, llama_bench.FORMAT_JSONL,
           llama_bench.FORMAT_CSV, llama_bench.FORMAT_MD)

_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
_EXPECTED = (
    "expected the seed's {'results': {batch: {...}}}, a table ({'rows': [...]} or a list of "
    "rows), a 'vllm bench serve' or SGLang bench_serving result, an AIPerf or GenAI-Perf "
    "profile export, a guidellm report, llama-bench results, or mfubench results lines"
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
    if suffix == ".csv" or (text.lstrip()[:1] not in ("{", "[") and suffix not in _JSON_SUFFIXES):
        return _read_csv(text, path, requested_output_tokens)
    if is_json_extra_data(text):
        return _read_lines(text, path, requested_output_tokens)
    return _read_document(parse_json(text, path), path, requested_output_tokens)


def _read_document(doc: Any, path: Path, requested: float | None) -> list[Measurement]:
    if isinstance(doc, list):
        if doc and llama_bench.looks_like_llama_bench(doc[0]):
            return llama_bench.read_llama_bench_objects(
                [(Entry(path, f"test {i}", f"{path.name}[{i}]"), obj) for i, obj in enumerate(doc)],
                requested, llama_bench.FORMAT_JSON)
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
    if looks_like_guidellm(doc):
        return read_guidellm(doc, path, requested)
    if genai_perf.looks_like_genai_perf(doc):
        return [genai_perf.read_genai_perf_json(doc, path, requested)]
    if aiperf.looks_like_aiperf(doc):
        return [aiperf.read_aiperf_json(doc, path, requested)]
    if looks_like_sglang_bench(doc):
        return [read_sglang_bench(doc, Entry(path, "result", path.name), requested)]
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
    if llama_bench.looks_like_llama_bench(first):
        return llama_bench.read_llama_bench_objects(
            [(Entry(path, f"line {n}", f"{path.name}:line {n}"), obj) for n, obj in lines],
            requested, llama_bench.FORMAT_JSONL)
    for looks_like, read, name in (
        (looks_like_sglang_bench, read_sglang_bench, "an SGLang bench_serving result"),
        (looks_like_vllm_bench, read_vllm_bench, "a 'vllm bench serve' result"),
    ):
        if not looks_like(first):
            continue
        out = []
        for number, obj in lines:
            entry = Entry(path, f"line {number}", f"{path.name}:line {number}")
            if not looks_like(obj):
                raise entry.error(None, f"not {name} like line {first_number}")
            out.append(read(obj, entry, requested))
        return out
    raise InputFileError(
        f"{path}: line {first_number}: several JSON documents, but the first is neither an "
        "mfubench results line (no 'type') nor a 'vllm bench serve' or SGLang result (no "
        "'duration')"
    )


def _read_csv(text: str, path: Path, requested: float | None) -> list[Measurement]:
    """A peer tool's metrics CSV (by its first row), else a measurement table."""
    if llama_bench.looks_like_llama_bench_md(text):
        return llama_bench.read_llama_bench_md(text, path, requested)
    if llama_bench.looks_like_llama_bench_csv(text):
        return llama_bench.read_llama_bench_csv(text, path, requested)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first == aiperf.CSV_HEADER:
        return [aiperf.read_aiperf_csv(text, path, requested)]
    if first == genai_perf.CSV_HEADER:
        return [genai_perf.read_genai_perf_csv(text, path, requested)]
    if first == "Metric,Value":
        if any(line.startswith("Benchmark Duration") for line in text.splitlines()):
            return [aiperf.read_aiperf_csv(text, path, requested)]
        return [genai_perf.read_genai_perf_csv(text, path, requested)]
    return read_csv(text, path, requested)
