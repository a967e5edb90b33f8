"""AIPerf profile exports: ``profile_export_aiperf.json`` and ``profile_export_aiperf.csv``.

Read as AIPerf's own writers write them: ``aiperf/exporters/json_exporter.py`` and
``aiperf/exporters/csv_exporter.py`` of github.com/ai-dynamo/aiperf at commit
db4f6397d11ee2d4cfbb41f70b2327315163dcf0 (the metrics in ``aiperf/metrics/types/``, the
configuration in ``aiperf/common/config/``), which wrote ``tests/data/aiperf/``.

**JSON.** ``JsonExportData.model_dump_json(exclude_unset=True)``: one object per metric in its
display unit, ``{"unit": ..., "avg": ..., "p50": ..., ...}`` or null, and ``input_config`` (the
``UserConfig`` with only what was set). Read here:

=========================== ================== ============================================
metric                      unit               becomes
=========================== ================== ============================================
``request_count``           requests           ``completed`` (valid requests)
``error_request_count``     requests           ``extra["failed"]``
``benchmark_duration``      sec (ns, us, ms)   ``duration_s`` (first request to last response)
``time_to_first_token``     ms (ns, us, sec)   ``ttft_s`` (mean over requests)
``inter_token_latency``     ms (ns, us, sec)   ``tpot_s``: each request's ``(latency - TTFT) /
                                               (OSL - 1)``, averaged
``input_sequence_length``   tokens             ``input_tokens`` (else ``total_isl / count``)
``output_sequence_length``  tokens             ``output_tokens``, reasoning tokens included
                                               (else ``total_osl / count``)
``output_token_throughput`` tokens/sec         ``output_tokens_per_s``
=========================== ================== ============================================

``request_throughput`` is ``completed / duration_s`` (AIPerf's own formula). TTFT and ITL are
absent from a non-streaming run.

**The load** (``input_config.loadgen``, as ``UserConfig.validate_timing_mode`` decides it):

- ``request_rate`` λ set: **rate** λ, arrival ``request_rate_mode`` (``poisson``, AIPerf's
  default when unwritten, or ``constant``); a ``concurrency`` beside it caps it (kept in
  ``extra["max_concurrency"]``). ``batch_size`` is the mean in flight by Little's law.
- otherwise **concurrency** C = ``concurrency`` (``concurrency_burst`` mode), and when none was
  given (no ``loadgen`` written at all) AIPerf's default of 1.
- ``input.fixed_schedule`` true: **trace** (requests sent at their recorded times).

Later AIPerf versions write a ``schema_version`` and configure benchmark ``phases`` instead of
``loadgen``: such an export is refused (its load would be misread), not guessed at.

**CSV.** Rows ``"Header (unit)",avg,min,max,p1,...,std`` (values to two decimals), a blank row,
then ``Metric,Value`` rows (``Request Count`` carries no unit). The CSV has no configuration: the
load is read from the ``profile_export_aiperf.json`` the run wrote beside it; an error says so
when it is missing. ``extra["rounded"]`` marks the CSV's two-decimal figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mfubench.analysis.load import Load
from mfubench.analysis.measurement import Measurement
from mfubench.io.importers._common import Entry, kind, short
from mfubench.io.importers._metric_export import (
    TIME_UNITS,
    csv_as_json,
    read_metric_csv,
    run_measurement,
    sibling_json,
    stat,
)

FORMAT_JSON = "aiperf.json"
FORMAT_CSV = "aiperf.csv"
JSON_NAME = "profile_export_aiperf.json"
#: The first row of the CSV's per-request section (``Metric`` and AIPerf's ``STAT_KEYS``).
CSV_HEADER = "Metric,avg,min,max,p1,p5,p10,p25,p50,p75,p90,p95,p99,std"
_REQUESTS = {"requests": 1.0}
_TOKENS = {"tokens": 1.0}
#: The CSV's metric names (``MetricResult.header``) -> the JSON's tags.
_CSV_NAMES = {
    "Request Count": "request_count", "Error Request Count": "error_request_count",
    "Benchmark Duration": "benchmark_duration", "Time to First Token": "time_to_first_token",
    "Inter Token Latency": "inter_token_latency", "Input Sequence Length": "input_sequence_length",
    "Output Sequence Length": "output_sequence_length", "Total Input Sequence Length": "total_isl",
    "Total Output Sequence Length": "total_osl", "Output Token Throughput": "output_token_throughput",
}
#: The CSV leaves the unit out of these names (``_format_metric_name`` drops "requests").
_UNITLESS = {"request_count": "requests", "error_request_count": "requests"}


def looks_like_aiperf(doc: Mapping[str, Any]) -> bool:
    """An AIPerf JSON export: an ``input_config`` with AIPerf's sections (GenAI-Perf's has
    ``perf_analyzer`` instead of ``loadgen``)."""
    config = doc.get("input_config")
    return (isinstance(config, dict) and "perf_analyzer" not in config
            and (isinstance(config.get("endpoint"), dict) or isinstance(config.get("loadgen"), dict)))


def read_aiperf_json(doc: Mapping[str, Any], path: Path, requested: float | None) -> Measurement:
    entry = Entry(path, "export", path.name)
    return _measurement(doc, {}, doc, entry, entry, requested, {"format": FORMAT_JSON})


def read_aiperf_csv(text: str, path: Path, requested: float | None) -> Measurement:
    doc, labels = csv_as_json(read_metric_csv(text, path), _CSV_NAMES, _UNITLESS)
    json_path, config_doc = sibling_json(path, JSON_NAME, "AIPerf")
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

    completed = _count(entry, get, name, "request_count")
    if completed is None:
        raise entry.error(name("request_count"), "missing: the number of valid requests")
    if completed == 0:
        raise entry.error(name("request_count"), "0: no request completed, nothing to analyse")
    duration_s = get("benchmark_duration", TIME_UNITS)
    if duration_s is None or duration_s <= 0:
        raise entry.error(name("benchmark_duration"), f"missing or not > 0: {short(duration_s)}")
    failed = _count(entry, get, name, "error_request_count")
    extra.update(duration_s=duration_s, completed=completed, failed=failed or 0)
    if "schema_version" in config_doc:  # a later AIPerf's (0.13.0 writes "1.4"): other config
        raise config_entry.error("schema_version", f"{short(config_doc['schema_version'])}: a later "
                                 "AIPerf's export, whose configuration is not the one this reads")
    load, batch_size = _load(config_entry, config_doc.get("input_config"), extra)

    inputs, outputs = get("input_sequence_length", _TOKENS), get("output_sequence_length", _TOKENS)
    total_in, total_out = get("total_isl", _TOKENS), get("total_osl", _TOKENS)
    if inputs is None and total_in is not None:
        inputs = total_in / completed
    if outputs is None and total_out is not None:
        outputs = total_out / completed
    if inputs is None or inputs < 1:
        raise entry.error(name("input_sequence_length"), f"missing or below one token: {short(inputs)}")
    if outputs is None:
        raise entry.error(name("output_sequence_length"),
                          "missing (only generation benchmarks can be analysed)")
    ttft_s = get("time_to_first_token", TIME_UNITS) or None  # 0: nothing streamed
    tpot_s = get("inter_token_latency", TIME_UNITS) or None
    if ttft_s is not None:
        extra["ttft_kind"] = "mean_request"
    if tpot_s is not None:
        extra["itl_kind"] = "mean_tpot"
    extra.update(_provenance(config_doc))
    values: dict[str, Any] = {
        "input_tokens": inputs, "output_tokens": outputs, "requested_output_tokens": requested,
        "ttft_s": ttft_s, "tpot_s": tpot_s, "duration_s": duration_s, "completed": completed,
        "request_throughput": completed / duration_s,
        "output_tokens_per_s": get("output_token_throughput", {"tokens/sec": 1.0}) or None,
    }
    return run_measurement(entry, load, batch_size, values, extra)


def _count(entry: Entry, get: Callable[[str, Mapping[str, float]], float | None],
           name: Callable[[str], str], tag: str) -> int | None:
    value = get(tag, _REQUESTS)
    if value is None:
        return None
    if not value.is_integer():
        raise entry.error(name(tag), f"must be a whole number of requests, got {value!r}")
    return int(value)


def _load(entry: Entry, config: object, extra: dict[str, Any]) -> tuple[Load, int]:
    """The load AIPerf held (module docstring), with ``extra["load_from"]``."""
    config = entry.mapping("input_config", config)
    if "phases" in config:
        raise entry.error("input_config.phases", "a later AIPerf's configuration (benchmark phases), "
                          "not the 'loadgen' of the writer this reads: its load is not read")
    loadgen = _section(entry, config, "loadgen")
    inputs = _section(entry, config, "input")
    if inputs.get("fixed_schedule") is True:
        extra["load_from"] = "input_config.input.fixed_schedule: requests sent at their recorded times"
        return Load("trace"), 1
    concurrency = loadgen.get("concurrency")
    if concurrency is not None:
        concurrency = entry.count("input_config.loadgen.concurrency", concurrency)
    mode = loadgen.get("request_rate_mode")
    if mode is not None and not isinstance(mode, str):
        raise entry.error("input_config.loadgen.request_rate_mode", f"expected a mode, got {kind(mode)}")
    if loadgen.get("request_rate") is not None:
        rate = entry.number("input_config.loadgen.request_rate", loadgen["request_rate"])
        arrival = (mode or "poisson").lower()
        if arrival not in ("poisson", "constant"):
            raise entry.error("input_config.loadgen.request_rate_mode",
                              f"{mode!r} with a request rate: expected 'poisson' or 'constant'")
        extra["load_from"] = f"input_config.loadgen.request_rate {rate:g} ({arrival}" + (
            ", AIPerf's default mode)" if mode is None else ")")
        if concurrency is not None:
            extra["max_concurrency"] = concurrency
            extra["load_from"] += f", concurrency {concurrency} caps it"
        return Load("rate", rate, arrival), 1
    if mode is not None and mode.lower() != "concurrency_burst":
        raise entry.error("input_config.loadgen.request_rate_mode",
                          f"{mode!r} without a request rate: expected 'concurrency_burst'")
    if inputs.get("custom_dataset_type") == "mooncake_trace":
        raise entry.error("input_config.input.custom_dataset_type",
                          "'mooncake_trace' with no rate or concurrency: AIPerf replays its timestamps "
                          "when the trace has them, else sends at concurrency 1; the export does not say which")
    if concurrency is None:
        extra["load_from"] = "no concurrency or request rate given: AIPerf's default, concurrency 1"
        return Load("concurrency", 1.0), 1
    extra["load_from"] = f"input_config.loadgen.concurrency {concurrency}"
    return Load("concurrency", float(concurrency)), concurrency


def _section(entry: Entry, config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``input_config[key]``; absent when nothing in it was set (``exclude_unset``)."""
    return {} if config.get(key) is None else entry.mapping(f"input_config.{key}", config[key])


def _provenance(doc: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    config = doc.get("input_config")
    if isinstance(config, dict):
        endpoint = config.get("endpoint")
        if isinstance(endpoint, dict) and isinstance(endpoint.get("model_names"), list):
            names = [n for n in endpoint["model_names"] if isinstance(n, str)]
            if names:
                out["model_id"] = names[0]
        if isinstance(config.get("cli_command"), str):
            out["cli_command"] = config["cli_command"]
    for key in ("start_time", "end_time", "aiperf_version"):
        if isinstance(doc.get(key), str):
            out[key] = doc[key]
    if isinstance(doc.get("was_cancelled"), bool):
        out["was_cancelled"] = doc["was_cancelled"]
    return out
