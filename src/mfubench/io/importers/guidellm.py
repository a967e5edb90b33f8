"""guidellm benchmark reports (``benchmarks.json``, ``guidellm run --output kind=json``).

Read as guidellm's own writer writes it: ``GenerativeBenchmarksReport.save_file`` of
github.com/vllm-project/guidellm at commit ee7a77457ba668b4b5ccb40f110518829893b36a
(``src/guidellm/benchmark/schemas/``: ``report.py``, ``benchmark.py``, ``base.py``,
``metrics.py``; the statistics of ``src/guidellm/schemas/statistics.py`` and
``request_stats.py``; the strategies of ``src/guidellm/scheduler/strategies.py``), which wrote
``tests/data/guidellm/`` (guidellm 0.8.0.dev12). The report is
``{"metadata": {"version": 2, ...}, "config": ..., "benchmarks": [...]}``; the report schema
``version`` must be 2 (guidellm bumps it on every breaking change). Each benchmark (one strategy
of the profile) becomes one Measurement, ``source`` ``FILE[benchmark N]``.

A metric is a ``StatusDistributionSummary``: ``successful``, ``incomplete``, ``errored`` and
``total``, each with ``mean``, ``count``, ``total_sum`` and percentiles. Read here, over the
successful requests of the measured window:

========================================== =================================================
field                                      becomes
========================================== =================================================
``metrics.request_totals.successful``      ``completed`` (``errored``, ``incomplete`` kept in
                                           ``extra``)
``duration`` (s)                           ``duration_s`` (the measured window)
``metrics.time_to_first_token_ms``         ``ttft_s`` (mean over requests)
``metrics.inter_token_latency_ms``         ``tpot_s``: ``(last token - first token) /
                                           (output tokens - 1)``, weighted by ``output - 1``,
                                           so the decode time of all requests over their
                                           decode tokens
``metrics.prompt_token_count``             ``input_tokens`` (mean)
``metrics.output_token_count``             ``output_tokens`` (mean); ``total_sum /
                                           duration`` is ``output_tokens_per_s``
========================================== =================================================

guidellm's ``time_per_output_token_ms`` includes the first token (latency over all output
tokens): it is not TPOT and is not read. The ``_ms`` suffix is the writer's unit.

**The load**, from ``config.strategy`` (``type_``):

- ``synchronous``: **concurrency** 1 (one request at a time).
- ``concurrent``: **concurrency** ``streams``.
- ``throughput``: every request is scheduled at once (``next_request_time`` is the start),
  only ``max_concurrency`` limits how many are in flight (the strategy's, else the scheduler's
  own limit, which guidellm writes back into the strategy). When the benchmark made no more
  requests than that limit and did not ramp up, all of them were in flight together: a
  **static** batch of them, as an unlimited ``vllm bench serve`` run is (``elapsed_s`` is the
  duration, ``itl_s`` the decode time per token, ``ttft_s`` the mean TTFT). Otherwise a new
  request left as soon as one finished: **concurrency** ``max_concurrency``. guidellm's measured
  mean number in flight (``metrics.request_concurrency``) is kept in ``extra``.
- ``constant`` / ``poisson``: **rate** ``rate`` with that arrival (a ``max_concurrency`` cap is
  kept in ``extra``); ``batch_size`` the mean in flight by Little's law.
- ``trace``: **trace** (recorded arrival times); Little's law.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mfubench.analysis.load import STATIC, Load
from mfubench.analysis.measurement import Measurement
from mfubench.io.importers._common import Entry, kind, short
from mfubench.io.importers._metric_export import run_measurement

FORMAT = "guidellm"
#: The report schema this reads (``GenerativeBenchmarkMetadata.version``).
SCHEMA_VERSION = 2


def looks_like_guidellm(doc: Mapping[str, Any]) -> bool:
    return "benchmarks" in doc and "metadata" in doc


def read_guidellm(doc: Mapping[str, Any], path: Path, requested: float | None) -> list[Measurement]:
    """One Measurement per benchmark, in file order."""
    report = Entry(path, "report", path.name)
    metadata = report.mapping("metadata", doc["metadata"])
    if metadata.get("version") != SCHEMA_VERSION:
        raise report.error("metadata.version",
                           f"{short(metadata.get('version'))}: this reads guidellm's report schema {SCHEMA_VERSION}")
    benchmarks = doc["benchmarks"]
    if not isinstance(benchmarks, list):
        raise report.error("benchmarks", f"expected a list, got {kind(benchmarks)}")
    if not benchmarks:
        raise report.error("benchmarks", "empty: the run finished no benchmark")
    provenance = {k: metadata[k] for k in ("guidellm_version", "python_version", "platform")
                  if isinstance(metadata.get(k), str)}
    out = []
    for index, benchmark in enumerate(benchmarks):
        entry = Entry(path, f"benchmark {index}", f"{path.name}[benchmark {index}]")
        out.append(_benchmark(entry, entry.mapping(None, benchmark), requested, dict(provenance)))
    return out


def _benchmark(entry: Entry, bench: Mapping[str, Any], requested: float | None,
               extra: dict[str, Any]) -> Measurement:
    if bench.get("type_") != "generative_benchmark":
        raise entry.error("type_", f"{short(bench.get('type_'))}: expected 'generative_benchmark'")
    metrics = _at(entry, bench, "metrics")
    totals = _at(entry, metrics, "request_totals", "metrics.")
    completed = _whole(entry, totals, "successful", "metrics.request_totals.")
    if completed == 0:
        raise entry.error("metrics.request_totals.successful", "0: no request completed, nothing to analyse")
    duration_s = entry.seconds("duration", bench.get("duration"))
    extra.update(format=FORMAT, duration_s=duration_s, completed=completed,
                 failed=_whole(entry, totals, "errored", "metrics.request_totals."),
                 incomplete=_whole(entry, totals, "incomplete", "metrics.request_totals."))
    config = _at(entry, bench, "config")
    for key in ("run_id", "id_"):
        if isinstance(config.get(key), str):
            extra[key] = config[key]
    in_flight = _mean(entry, metrics, "request_concurrency", "total")
    if in_flight is not None:
        extra["mean_concurrency"] = in_flight
    load, batch_size = _load(entry, bench, config, extra)

    inputs = _mean(entry, metrics, "prompt_token_count")
    outputs = _mean(entry, metrics, "output_token_count")
    if inputs is None or inputs < 1:
        raise entry.error("metrics.prompt_token_count.successful.mean",
                          f"missing or below one token: {short(inputs)}")
    if outputs is None:
        raise entry.error("metrics.output_token_count.successful.mean", "missing")
    ttft_ms = _mean(entry, metrics, "time_to_first_token_ms")
    itl_ms = _mean(entry, metrics, "inter_token_latency_ms")
    total_output = _status(entry, metrics, "output_token_count", "successful").get("total_sum")
    tokens = None if total_output is None else entry.number(
        "metrics.output_token_count.successful.total_sum", total_output, strict=False)
    values: dict[str, Any] = {
        "input_tokens": inputs, "output_tokens": outputs, "requested_output_tokens": requested,
        "ttft_s": ttft_ms / 1000.0 if ttft_ms else None,  # 0: not streamed
        "output_tokens_per_s": tokens / duration_s if tokens else None,
    }
    if values["ttft_s"] is not None:
        extra["ttft_kind"] = "mean_request"
    decode_s = itl_ms / 1000.0 if itl_ms else None
    if decode_s is not None:
        extra["itl_kind"] = "decode_time_per_token"
    if not load.continuous:
        values.update(elapsed_s=duration_s, itl_s=decode_s)
        values = {k: v for k, v in values.items() if v is not None}
        return entry.measurement(batch_size=batch_size, extra=extra, **values)
    values.update(tpot_s=decode_s, duration_s=duration_s, completed=completed,
                  request_throughput=completed / duration_s)
    return run_measurement(entry, load, batch_size, values, extra)


def _load(entry: Entry, bench: Mapping[str, Any], config: Mapping[str, Any],
          extra: dict[str, Any]) -> tuple[Load, int]:
    """The load guidellm's strategy held (module docstring), with ``extra["load_from"]``."""
    strategy = _at(entry, config, "strategy", "config.")
    kind_ = strategy.get("type_")
    field = "config.strategy"
    extra["strategy"] = kind_
    cap = None
    if strategy.get("max_concurrency") is not None:
        cap = entry.count(f"{field}.max_concurrency", strategy["max_concurrency"])
        extra["max_concurrency"] = cap
    if kind_ == "synchronous":
        extra["load_from"] = "synchronous: one request at a time"
        return Load("concurrency", 1.0), 1
    if kind_ == "concurrent":
        streams = entry.count(f"{field}.streams", strategy.get("streams"))
        extra["load_from"] = f"concurrent: {streams} streams"
        return Load("concurrency", float(streams)), streams
    if kind_ == "throughput":
        made = _at(entry, _at(entry, bench, "scheduler_metrics"), "requests_made", "scheduler_metrics.")
        requests = _whole(entry, made, "total", "scheduler_metrics.requests_made.")
        rampup = entry.number(f"{field}.rampup_duration", strategy.get("rampup_duration", 0.0), strict=False)
        if requests >= 1 and (cap is None or requests <= cap) and rampup == 0:
            extra["load_from"] = (f"throughput: all {requests} requests scheduled at once, within "
                                  f"max_concurrency {cap if cap is not None else 'unlimited'}")
            return STATIC, requests
        if cap is None:
            raise entry.error(f"{field}.max_concurrency", "missing: the number in flight is unknown")
        extra["load_from"] = f"throughput: a new request as one finished, max_concurrency {cap} in flight"
        return Load("concurrency", float(cap)), cap
    if kind_ in ("constant", "poisson"):
        rate = entry.number(f"{field}.rate", strategy.get("rate"))
        extra["load_from"] = f"{kind_}: rate {rate:g}/s" + (f", max_concurrency {cap} caps it" if cap else "")
        return Load("rate", rate, kind_), 1
    if kind_ == "trace":
        extra["load_from"] = "trace: requests sent at their recorded times"
        return Load("trace"), 1
    raise entry.error(f"{field}.type_", f"{short(kind_)}: expected synchronous, concurrent, "
                      "throughput, constant, poisson or trace")


def _at(entry: Entry, parent: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    if key not in parent:
        raise entry.error(prefix + key, "missing")
    return entry.mapping(prefix + key, parent[key])


def _status(entry: Entry, metrics: Mapping[str, Any], metric: str, status: str) -> Mapping[str, Any]:
    summary = _at(entry, metrics, metric, "metrics.")
    return _at(entry, summary, status, f"metrics.{metric}.")


def _mean(entry: Entry, metrics: Mapping[str, Any], metric: str, status: str = "successful") -> float | None:
    """``metrics[metric][status].mean``; None when the metric is absent or null."""
    if metrics.get(metric) is None:
        return None
    body = _status(entry, metrics, metric, status)
    if body.get("mean") is None:
        return None
    return entry.number(f"metrics.{metric}.{status}.mean", body["mean"], strict=False)


def _whole(entry: Entry, parent: Mapping[str, Any], key: str, prefix: str) -> int:
    if key not in parent:
        raise entry.error(prefix + key, "missing")
    number = entry.number(prefix + key, parent[key], strict=False)
    if not number.is_integer():
        raise entry.error(prefix + key, f"must be a whole number, got {short(parent[key])}")
    return int(number)

