"""GenAI-Perf profile exports: ``profile_export_genai_perf.json`` and ``..._genai_perf.csv``.

Read as GenAI-Perf's own writers write them: ``genai-perf/genai_perf/export_data/json_exporter.py``
and ``csv_exporter.py`` of github.com/triton-inference-server/perf_analyzer at commit
263c5f6e0c7a6c15472a54409174981f67930cfe (GenAI-Perf 0.0.16.dev; the statistics from
``metrics/statistics.py`` and ``profile_data_parser/llm_profile_data_parser.py``, the
configuration from ``config/input/``), which wrote ``tests/data/genai_perf/``.

**JSON.** The statistics of each metric, ``{"unit": ..., "avg": ..., "p50": ..., ...}``, and
``input_config`` (``ConfigCommand.to_json_dict()``). Read here:

============================= ========== ===================================================
metric                        unit       becomes
============================= ========== ===================================================
``request_count``             count      ``completed`` (requests that streamed a response)
``request_throughput``        requests/  ``request_throughput``: requests over the benchmark
                              sec        duration (first request to last response)
``time_to_first_token``       ms         ``ttft_s`` (mean over requests)
``inter_token_latency``       ms         ``tpot_s``: each request's ``(latency - TTFT) /
                                         (output tokens - 1)``, averaged
``input_sequence_length``     tokens     ``input_tokens`` (GenAI-Perf's tokenizer's count)
``output_sequence_length``    tokens     ``output_tokens``
``output_token_throughput``   tokens/sec ``output_tokens_per_s``
============================= ========== ===================================================

GenAI-Perf writes no duration: ``duration_s`` is ``request_count / request_throughput`` (its
own ``len(requests) / benchmark_duration``), ``extra["duration_from"]`` says so.

**The load** (``input_config.perf_analyzer.stimulus``, as
``Subcommand._determine_infer_mode_and_load_level_based_on_stimulus`` reads it):
``{"concurrency": C}`` -> **concurrency** C; ``{"request_rate": λ}`` -> **rate** λ with
``constant`` arrivals (Perf Analyzer's default ``--request-distribution``; GenAI-Perf has no
option for it, and arguments passed to ``perf_analyzer`` after ``--`` are not exported), and
``batch_size`` the mean in flight by Little's law; ``fixed_schedule`` -> **trace**. Session
stimuli (multi-turn conversations) are refused.

**CSV.** Rows ``"Name (unit)",avg,min,max,p99,...,p1`` (two decimals, thousands separated
``1,234.56``), a blank row, then ``Metric,Value`` rows (``Request Throughput (per sec)``,
``Request Count (count)``). Its load is read from the ``profile_export_genai_perf.json``
beside it (the same run writes both; the file name's stem follows ``--profile-export-file``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mfubench.analysis.load import Load
from mfubench.analysis.measurement import Measurement
from mfubench.io.importers._common import Entry, short
from mfubench.io.importers._metric_export import (
    csv_as_json,
    read_metric_csv,
    run_measurement,
    sibling_json,
    stat,
)

FORMAT_JSON = "genai-perf.json"
FORMAT_CSV = "genai-perf.csv"
#: The first row of the CSV's per-request section (``CsvExporter.REQUEST_METRICS_HEADER``).
CSV_HEADER = "Metric,avg,min,max,p99,p95,p90,p75,p50,p25,p10,p5,p1"
_MS = {"ms": 1e-3}
_TOKENS = {"tokens": 1.0}
_COUNT = {"count": 1.0}
_PER_SECOND = {"requests/sec": 1.0, "per sec": 1.0}  # the JSON's unit, the CSV's
#: The CSV's metric names (``format_metric_name``: the tag, title-cased) -> the JSON's tags.
_CSV_NAMES = {
    "Request Count": "request_count", "Request Throughput": "request_throughput",
    "Time To First Token": "time_to_first_token", "Inter Token Latency": "inter_token_latency",
    "Input Sequence Length": "input_sequence_length",
    "Output Sequence Length": "output_sequence_length",
    "Output Token Throughput": "output_token_throughput",
}


def looks_like_genai_perf(doc: Mapping[str, Any]) -> bool:
    """A GenAI-Perf JSON export: an ``input_config`` with a ``perf_analyzer`` section."""
    config = doc.get("input_config")
    return isinstance(config, dict) and "perf_analyzer" in config


def read_genai_perf_json(doc: Mapping[str, Any], path: Path, requested: float | None) -> Measurement:
    entry = Entry(path, "export", path.name)
    return _measurement(doc, {}, doc, entry, entry, requested, {"format": FORMAT_JSON})


def read_genai_perf_csv(text: str, path: Path, requested: float | None) -> Measurement:
    doc, labels = csv_as_json(read_metric_csv(text, path), _CSV_NAMES)
    stem = path.stem.removesuffix("_genai_perf")
    json_path, config_doc = sibling_json(path, f"{stem}_genai_perf.json", "GenAI-Perf")
    extra = {"format": FORMAT_CSV, "rounded": True, "config_from": json_path.name}
    return _measurement(doc, labels, config_doc, Entry(path, "export", path.name),
                        Entry(json_path, "export", json_path.name), requested, extra)


def _measurement(doc: Mapping[str, Any], labels: Mapping[str, str], config_doc: Mapping[str, Any],
                 entry: Entry, config_entry: Entry, requested: float | None,
                 extra: dict[str, Any]) -> Measurement:
    def get(tag: str, units: Mapping[str, float]) -> float | None:
        return stat(entry, doc, tag, units, labels)

    def name(tag: str) -> str:
        return labels.get(tag, tag)

    count = get("request_count", _COUNT)
    if count is None:
        raise entry.error(name("request_count"), "missing: the number of requests measured")
    if not count.is_integer():
        raise entry.error(name("request_count"), f"must be a whole number, got {count!r}")
    if count == 0:
        raise entry.error(name("request_count"), "0: no request completed, nothing to analyse")
    completed = int(count)
    throughput = get("request_throughput", _PER_SECOND)
    if throughput is None or throughput <= 0:
        raise entry.error(name("request_throughput"), f"missing or not > 0: {short(throughput)}")
    duration_s = completed / throughput
    extra.update(duration_s=duration_s, completed=completed,
                 duration_from="request_count / request_throughput (GenAI-Perf writes no duration)")
    load, batch_size = _load(config_entry, config_doc.get("input_config"), extra)

    inputs, outputs = get("input_sequence_length", _TOKENS), get("output_sequence_length", _TOKENS)
    if inputs is None or inputs < 1:
        raise entry.error(name("input_sequence_length"), f"missing or below one token: {short(inputs)}")
    if outputs is None:
        raise entry.error(name("output_sequence_length"),
                          "missing (only generation benchmarks can be analysed)")
    ttft_s = get("time_to_first_token", _MS) or None  # absent when not streamed
    tpot_s = get("inter_token_latency", _MS) or None
    if ttft_s is not None:
        extra["ttft_kind"] = "mean_request"
    if tpot_s is not None:
        extra["itl_kind"] = "mean_tpot"
    extra.update(_provenance(config_doc.get("input_config")))
    values: dict[str, Any] = {
        "input_tokens": inputs, "output_tokens": outputs, "requested_output_tokens": requested,
        "ttft_s": ttft_s, "tpot_s": tpot_s, "duration_s": duration_s, "completed": completed,
        "request_throughput": throughput,
        "output_tokens_per_s": get("output_token_throughput", {"tokens/sec": 1.0}) or None,
    }
    return run_measurement(entry, load, batch_size, values, extra)


def _load(entry: Entry, config: object, extra: dict[str, Any]) -> tuple[Load, int]:
    """The load Perf Analyzer held (module docstring), with ``extra["load_from"]``."""
    config = entry.mapping("input_config", config)
    analyzer = entry.mapping("input_config.perf_analyzer", config.get("perf_analyzer"))
    field = "input_config.perf_analyzer.stimulus"
    stimulus = entry.mapping(field, analyzer.get("stimulus"))
    for session in ("session_concurrency", "session_request_rate"):
        if session in stimulus:
            raise entry.error(field, f"{session!r}: multi-turn sessions, not a load of single "
                              "requests mfubench can analyse")
    if "fixed_schedule" in stimulus:
        extra["load_from"] = f"{field} fixed_schedule: requests sent at their recorded times"
        return Load("trace"), 1
    if "concurrency" in stimulus:
        concurrency = entry.count(f"{field}.concurrency", stimulus["concurrency"])
        extra["load_from"] = f"{field} concurrency {concurrency}"
        return Load("concurrency", float(concurrency)), concurrency
    if "request_rate" in stimulus:
        rate = entry.number(f"{field}.request_rate", stimulus["request_rate"])
        extra["load_from"] = (f"{field} request_rate {rate:g}, constant arrivals (Perf Analyzer's "
                              "default --request-distribution)")
        return Load("rate", rate, "constant"), 1
    keys = ", ".join(map(repr, stimulus)) or "none"
    raise entry.error(field, f"no 'concurrency' or 'request_rate' (keys: {keys})")


def _provenance(config: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(config, dict):
        return out
    names = config.get("model_names")
    if isinstance(names, list) and names and isinstance(names[0], str):
        out["model_id"] = names[0]
    endpoint = config.get("endpoint")
    if isinstance(endpoint, dict):
        for key in ("type", "service_kind", "url"):
            if isinstance(endpoint.get(key), str):
                out[f"endpoint_{key}"] = endpoint[key]
    return out

