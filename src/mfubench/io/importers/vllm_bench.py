"""``vllm bench serve`` result JSON (``--save-result``; ``--save-detailed``; ``--append-result``).

Read as vLLM's own writer (``vllm/benchmarks/serve.py``) writes it: the run's settings
(``num_prompts``, ``max_concurrency``, ``request_rate``, ``"inf"`` when unlimited) merged with its
metrics (``duration``, ``completed``, ``failed``, ``total_input_tokens``, ``total_output_tokens``,
``mean_ttft_ms``, ``mean_tpot_ms``, ``mean_itl_ms``, ...), and with ``--save-detailed`` the
per-request arrays ``input_lens``, ``output_lens`` (0 for a failed request), ``ttfts`` (s),
``itls`` (s, one list per request, a gap per streamed chunk) and ``errors`` ("" on success).
With ``--append-result`` the file holds one such object per line; each becomes a Measurement.

One run becomes one Measurement, under the load vLLM held (``extra["load_from"]`` says why):

- **static**: an unlimited ``request_rate`` with every prompt in flight at once
  (``max_concurrency`` unlimited, or at least ``num_prompts``): a batch of ``num_prompts``;
  ``elapsed_s = duration``; ``ttft_s`` is the mean TTFT of the requests (vLLM records no batch
  span: ``extra["ttft_kind"] = "mean_request"``), ``itl_s`` the decode time per token.
- **concurrency** C: an unlimited rate with ``max_concurrency`` C below ``num_prompts``: a
  closed loop of C (``batch_size`` = C).
- **rate** λ: a finite ``request_rate``; ``arrival`` ``poisson`` for vLLM's default
  ``burstiness`` 1, else ``gamma`` with that burstiness (a ``max_concurrency`` cap is kept in
  ``extra``). ``batch_size`` is the mean number in flight by Little's law (throughput x mean
  end-to-end time), rounded, at least 1.

Under a concurrency or a rate, the timings are per-request means and the run's totals:
``ttft_s`` (mean TTFT), ``tpot_s`` (the decode time of all requests over their decode tokens
with the per-request arrays, ``sum(itls[i]) / (output_lens[i] - 1)`` pooled; else
``mean_tpot_ms``, else ``mean_itl_ms``), ``duration_s``, ``completed``,
``request_throughput`` and ``output_tokens_per_s``. ``input_tokens`` and ``output_tokens`` are
means over the completed requests (from the arrays when saved, else ``total_*_tokens /
completed``). TPOT counts tokens, ITL chunks, so TPOT is preferred when a chunk can carry
several tokens. With the arrays and lengths that differ, the measurement under load carries
their :class:`~mfubench.analysis.request_mix.RequestMix` (the work is summed per length).

The latency percentiles (``median_*_ms`` as p50, ``p99_*_ms`` and any other
``--metric-percentiles``) of TTFT, TPOT, ITL and end-to-end go to
``extra["latency_percentiles"]`` in seconds, where reports draw them against the load. Keys
other than these are vLLM's (goodput, metadata) and are not checked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mfubench.analysis.load import STATIC, Load
from mfubench.analysis.measurement import Measurement
from mfubench.analysis.request_mix import RequestMix
from mfubench.counting.workload import MAX_COUNT
from mfubench.errors import InputFileError
from mfubench.io.importers._common import Entry, kind, short

#: Keys whose presence marks a ``vllm bench serve`` result.
MARKERS = ("duration", "completed")
#: Keys SGLang's ``bench_serving`` writes in every result (its dataset arguments, ``null`` when
#: unused) and vLLM's writer never does; and keys vLLM's writer always writes and SGLang's never
#: does. A result with all of the first and none of the second is SGLang's
#: (:mod:`.sglang_bench`), whose results otherwise look like vLLM's (SGLang's client was adapted
#: from vLLM's).
SGLANG_ONLY = ("sharegpt_output_len", "random_input_len", "random_output_len", "random_range_ratio")
VLLM_ONLY = ("endpoint_type", "num_prompts", "burstiness")
_PROVENANCE = ("date", "backend", "label", "model_id", "tokenizer_id")


def is_sglang_result(doc: Mapping[str, Any]) -> bool:
    """True for a result SGLang's ``bench_serving`` wrote (see :data:`SGLANG_ONLY`)."""
    return all(key in doc for key in SGLANG_ONLY) and not any(key in doc for key in VLLM_ONLY)


def looks_like_vllm_bench(doc: Mapping[str, Any]) -> bool:
    return all(key in doc for key in MARKERS) and not is_sglang_result(doc)


def read_vllm_bench(
    doc: Mapping[str, Any], entry: Entry, requested_output_tokens: float | None
) -> Measurement:
    """The run's one Measurement; see the module docstring for the mapping."""
    completed = _whole(entry, doc, "completed")
    if completed == 0:
        raise entry.error("completed", "0: no request completed, nothing to analyse")
    failed = _whole(entry, doc, "failed") if doc.get("failed") is not None else 0
    duration_s = entry.seconds("duration", doc["duration"])
    num_prompts = (
        entry.count("num_prompts", doc["num_prompts"])
        if doc.get("num_prompts") is not None
        else completed + failed
    )
    burst, rate = _rate(entry, doc.get("request_rate", "inf"))
    extra: dict[str, Any] = {
        "format": "vllm-bench-serve",
        "duration_s": duration_s,
        "completed": completed,
        "failed": failed,
        "num_prompts": num_prompts,
        "request_rate": rate,
    }
    extra.update({k: doc[k] for k in _PROVENANCE if isinstance(doc.get(k), str)})

    concurrency = doc.get("max_concurrency")
    if concurrency is not None:
        extra["max_concurrency"] = entry.count("max_concurrency", concurrency)
    if not burst:
        burstiness = entry.number("burstiness", doc.get("burstiness", 1.0))
        load = Load("rate", float(rate), "poisson" if burstiness == 1.0 else "gamma",
                    None if burstiness == 1.0 else burstiness)
        extra["load_from"] = f"request_rate {rate}" + (
            f" (max_concurrency {extra['max_concurrency']} caps it)" if concurrency is not None else "")
        batch_size = 1  # replaced by the mean in flight below
    elif concurrency is not None and extra["max_concurrency"] < num_prompts:
        load, batch_size = Load("concurrency", float(extra["max_concurrency"])), extra["max_concurrency"]
        extra["load_from"] = f"max_concurrency {extra['max_concurrency']} below num_prompts {num_prompts}"
    else:
        load, batch_size = STATIC, num_prompts
        extra["load_from"] = "every prompt in flight at once (unlimited rate and concurrency)"

    latency = _percentiles(entry, doc)
    if latency:
        extra["latency_percentiles"] = latency
    return run_measurement(entry, doc, extra, load=load, batch_size=batch_size, completed=completed,
                           duration_s=duration_s, requested_output_tokens=requested_output_tokens)


def run_measurement(entry: Entry, doc: Mapping[str, Any], extra: dict[str, Any], *, load: Load,
                    batch_size: int, completed: int, duration_s: float,
                    requested_output_tokens: float | None) -> Measurement:
    """The Measurement of one serving-benchmark run under ``load``, from the fields vLLM's and
    SGLang's writers share (module doc): the totals, the per-request arrays or the summary
    means, and under a rate or a trace the mean in flight as its batch."""
    for key in ("total_input_tokens", "total_output_tokens"):
        if key not in doc:
            raise entry.error(key, "missing (only generation benchmarks can be analysed)")
    total_output = entry.number("total_output_tokens", doc["total_output_tokens"], strict=False)
    values: dict[str, Any] = {"batch_size": batch_size}
    if "input_lens" in doc and "output_lens" in doc:
        values.update(_from_arrays(entry, doc, completed, extra))
    else:
        values.update(_from_summary(entry, doc, completed, extra))
    if total_output > 0:
        values["output_tokens_per_s"] = total_output / duration_s
    values["requested_output_tokens"] = requested_output_tokens
    if not load.continuous:
        values.pop("mix", None)  # a static batch is analysed at its means
        values["elapsed_s"] = duration_s
        return entry.measurement(extra=extra, **values)
    values.update(load=load, duration_s=duration_s, completed=completed,
                  request_throughput=completed / duration_s)
    if "itl_s" in values:  # under load the decode time per token is each request's TPOT
        values["tpot_s"] = values.pop("itl_s")
    if load.kind in ("rate", "trace"):
        values["batch_size"] = _mean_in_flight(values, extra)
    return entry.measurement(extra=extra, **values)


#: vLLM's metric names -> mfubench's latency names (``latency_percentiles``).
_LATENCIES = {"ttft": "ttft_s", "tpot": "tpot_s", "itl": "itl_s", "e2el": "e2e_s"}
_PERCENTILE_KEY = re.compile(r"^(?:p(\d+(?:\.\d+)?)|(median))_(ttft|tpot|itl|e2el)_ms$")


def _percentiles(entry: Entry, doc: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The per-request latency percentiles vLLM wrote (``median_ttft_ms`` as p50,
    ``p99_ttft_ms``, and any ``--metric-percentiles``), in seconds: ``{"ttft_s": {"p50": ...}}``.
    vLLM writes 0 where nothing was measured (a non-streaming run's TTFT): left out."""
    out: dict[str, dict[str, float]] = {}
    for key, value in doc.items():
        found = _PERCENTILE_KEY.match(key)
        if found is None or value is None:
            continue
        ms = entry.number(key, value, strict=False)
        if ms <= 0:
            continue
        q = "p50" if found[2] else f"p{float(found[1]):g}"
        out.setdefault(_LATENCIES[found[3]], {})[q] = ms / 1000.0
    return out


def _mean_in_flight(values: Mapping[str, Any], extra: dict[str, Any]) -> int:
    """Requests in flight on average (Little's law: throughput x mean end-to-end time)."""
    throughput, ttft, tpot = values["request_throughput"], values.get("ttft_s"), values.get("tpot_s")
    if ttft is None or tpot is None:
        extra["batch_size_from"] = "unknown (no mean TTFT and TPOT): 1"
        return 1
    e2e = ttft + max(0.0, values["output_tokens"] - 1) * tpot
    extra["batch_size_from"] = f"Little's law: {throughput:.4g} req/s x {e2e:.4g} s mean end-to-end"
    return int(max(1, min(round(throughput * e2e), MAX_COUNT)))


def _from_summary(
    entry: Entry, doc: Mapping[str, Any], completed: int, extra: dict[str, Any]
) -> dict[str, Any]:
    extra["per_request_arrays"] = False
    values: dict[str, Any] = {
        "input_tokens": entry.number("total_input_tokens", doc["total_input_tokens"]) / completed,
        "output_tokens": entry.number("total_output_tokens", doc["total_output_tokens"], strict=False)
        / completed,
    }
    if values["input_tokens"] < 1:
        raise entry.error("total_input_tokens", f"fewer than one token per completed request ({completed})")
    ttft_s = _mean_ms(entry, doc, "mean_ttft_ms")
    if ttft_s is not None:
        values["ttft_s"], extra["ttft_kind"] = ttft_s, "mean_request"
    for key, how in (("mean_tpot_ms", "mean_tpot"), ("mean_itl_ms", "mean_itl")):
        itl_s = _mean_ms(entry, doc, key)
        if itl_s is not None:
            values["itl_s"], extra["itl_kind"] = itl_s, how
            break
    return values


def _from_arrays(
    entry: Entry, doc: Mapping[str, Any], completed: int, extra: dict[str, Any]
) -> dict[str, Any]:
    extra["per_request_arrays"] = True
    input_lens = _list(entry, doc, "input_lens")
    output_lens = _list(entry, doc, "output_lens", len(input_lens))
    errors = _list(entry, doc, "errors", len(input_lens)) if doc.get("errors") is not None else None
    ok: list[int] = []
    for i in range(len(input_lens)):
        if errors is not None:
            if errors[i] is not None and not isinstance(errors[i], str):
                raise entry.error(f"errors[{i}]", f"expected text, got {kind(errors[i])}")
            if not errors[i]:
                ok.append(i)
        elif _whole(entry, output_lens, i, "output_lens") > 0:
            ok.append(i)
    if len(ok) != completed:
        raise entry.error(
            "errors" if errors is not None else "output_lens",
            f"{len(ok)} requests succeeded by the per-request arrays, but 'completed' is {completed}",
        )
    ins = [entry.count(f"input_lens[{i}]", input_lens[i]) for i in ok]
    outs = [_whole(entry, output_lens, i, "output_lens") for i in ok]
    values: dict[str, Any] = {"input_tokens": sum(ins) / len(ok), "output_tokens": sum(outs) / len(ok)}
    if len(set(zip(ins, outs, strict=True))) > 1 and min(outs) >= 1:
        try:
            values["mix"] = RequestMix.of(zip(ins, outs, strict=True))  # kept under load only
        except InputFileError as exc:
            raise entry.error("input_lens", str(exc)) from None

    if doc.get("ttfts") is not None:
        ttfts = _list(entry, doc, "ttfts", len(input_lens))
        firsts = [entry.number(f"ttfts[{i}]", ttfts[i], strict=False) for i in ok]
        if any(t > 0 for t in firsts):  # all 0: the endpoint did not stream
            for i, t in zip(ok, firsts, strict=True):
                if t <= 0:
                    raise entry.error(f"ttfts[{i}]", f"must be > 0 for a completed request, got {t!r}")
            values["ttft_s"], extra["ttft_kind"] = math.fsum(firsts) / len(firsts), "mean_request"
    else:
        ttft_s = _mean_ms(entry, doc, "mean_ttft_ms")
        if ttft_s is not None:
            values["ttft_s"], extra["ttft_kind"] = ttft_s, "mean_request"

    if doc.get("itls") is not None:
        itls = _list(entry, doc, "itls", len(input_lens))
        decode_s = 0.0
        decode_tokens = 0
        for i, out in zip(ok, outs, strict=True):
            gaps = itls[i]
            if not isinstance(gaps, list):
                raise entry.error(f"itls[{i}]", f"expected a list of seconds, got {kind(gaps)}")
            if out > 1:
                decode_s += math.fsum(
                    entry.number(f"itls[{i}][{j}]", g, strict=False) for j, g in enumerate(gaps)
                )
                decode_tokens += out - 1
        if decode_tokens and decode_s > 0:
            values["itl_s"], extra["itl_kind"] = decode_s / decode_tokens, "decode_time_per_token"
    return values


def _list(entry: Entry, doc: Mapping[str, Any], key: str, length: int | None = None) -> Sequence[Any]:
    value = doc[key]
    if not isinstance(value, list):
        raise entry.error(key, f"expected a list, got {kind(value)}")
    if length is not None and len(value) != length:
        raise entry.error(key, f"{len(value)} entries, but input_lens has {length}")
    if not value:
        raise entry.error(key, "empty list")
    return value


def _whole(entry: Entry, container: Any, key: Any, name: str | None = None) -> int:
    """A whole number >= 0 at ``container[key]`` (``name`` labels list items)."""
    field = f"{name}[{key}]" if name else str(key)
    number = entry.number(field, container[key], strict=False)
    if not number.is_integer():
        raise entry.error(field, f"must be a whole number, got {short(container[key])}")
    return int(number)


def _mean_ms(entry: Entry, doc: Mapping[str, Any], key: str) -> float | None:
    """``doc[key]`` ms in seconds; None when absent or 0 (vLLM writes 0 for "none measured")."""
    if doc.get(key) is None:
        return None
    ms = entry.number(key, doc[key], strict=False)
    return ms / 1000.0 if ms > 0 else None


def _rate(entry: Entry, value: object) -> tuple[bool, float | str]:
    """(all sent at once, the rate as written): vLLM writes ``"inf"`` for an unlimited rate."""
    if value == "inf" or value is None or (isinstance(value, float) and value == math.inf):
        return True, "inf"
    rate = entry.number("request_rate", value)
    return False, rate
