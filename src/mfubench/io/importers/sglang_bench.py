"""SGLang ``bench_serving`` results: the JSONL its ``--output-file`` appends, one run per line.

Read as SGLang's own writer writes it: ``python/sglang/bench_serving.py`` of
github.com/sgl-project/sglang at commit 0033168f0f58b2bc05aa0273bd475d9c01bafb1c (the end of
``benchmark()``), and ``sglang/benchmark/serving.py`` of sglang 0.5.23 (PyPI), where the module
now lives and which wrote ``tests/data/sglang_bench/bench.jsonl``. Each run appends one object
(``file.write(json.dumps(result) + "\\n")``, so an unlimited rate is the JSON ``Infinity``):

- the arguments: ``backend``, ``dataset_name``, ``request_rate`` (a number, ``Infinity`` for
  "all at once", or ``"trace"`` for ``--use-trace-timestamps``), ``max_concurrency`` (or null),
  ``sharegpt_output_len``, ``random_input_len``, ``random_output_len``, ``random_range_ratio``
  (0.5.23 adds ``tag`` and ``server_info``);
- the results: ``duration`` (s), ``completed``, ``total_input_tokens``, ``total_output_tokens``,
  ``request_throughput``, ``mean_ttft_ms``, ``mean_tpot_ms`` (per request, ``(latency - ttft) /
  (output_len - 1)``, averaged), ``mean_itl_ms``, ``concurrency`` (sum of end-to-end latencies
  over the duration), percentiles;
- with ``--output-details``, the per-request arrays ``input_lens``, ``output_lens`` (0 for a
  failed request), ``ttfts`` (s, 0 for a failed one), ``itls`` (s), ``generated_texts`` and
  ``errors`` ("" on success).

It looks like ``vllm bench serve``'s result (SGLang's client was adapted from vLLM's) and is
told apart by its dataset arguments, which SGLang writes in every result and vLLM never does
(:func:`~mfubench.io.importers.vllm_bench.is_sglang_result`). The timings are read as for vLLM
(:mod:`.vllm_bench`: the same arrays and means, the same units), under SGLang's loads:

- **rate** λ: a finite ``request_rate``; SGLang draws exponential gaps (Poisson arrivals, it has
  no burstiness); a ``max_concurrency`` cap is kept in ``extra``; ``batch_size`` by Little's law.
- **trace**: ``request_rate`` ``"trace"`` (requests sent at their recorded times); Little's law.
- **concurrency** C: an unlimited rate with ``max_concurrency`` C below the number of prompts.
- **static**: an unlimited rate with every prompt in flight at once, a batch of the prompts.

SGLang writes no prompt count: it is ``len(input_lens)`` with ``--output-details``, else
``completed`` (a failed request is then invisible; ``extra["num_prompts_from"]`` says which).
One Measurement per line; its ``extra["format"]`` is ``"sglang-bench-serving"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mfubench.analysis.load import STATIC, Load
from mfubench.analysis.measurement import Measurement
from mfubench.io.importers._common import Entry
from mfubench.io.importers.vllm_bench import (
    MARKERS,
    _rate,
    _whole,
    is_sglang_result,
    run_measurement,
)

FORMAT = "sglang-bench-serving"
_PROVENANCE = ("backend", "dataset_name", "tag")
_ARGUMENTS = ("random_input_len", "random_output_len", "random_range_ratio", "sharegpt_output_len")


def looks_like_sglang_bench(doc: Mapping[str, Any]) -> bool:
    return all(key in doc for key in MARKERS) and is_sglang_result(doc)


def read_sglang_bench(
    doc: Mapping[str, Any], entry: Entry, requested_output_tokens: float | None
) -> Measurement:
    """The run's one Measurement; see the module docstring for the mapping."""
    completed = _whole(entry, doc, "completed")
    if completed == 0:
        raise entry.error("completed", "0: no request completed, nothing to analyse")
    duration_s = entry.seconds("duration", doc["duration"])
    arrays = "input_lens" in doc and "output_lens" in doc
    if arrays:
        input_lens = doc["input_lens"]
        if not isinstance(input_lens, list) or not input_lens:
            raise entry.error("input_lens", "expected a list with one length per prompt")
        num_prompts, how = len(input_lens), "len(input_lens)"
    else:
        num_prompts, how = completed, "completed (no per-request arrays: a failed request is not seen)"
    extra: dict[str, Any] = {"format": FORMAT, "duration_s": duration_s, "completed": completed,
                             "num_prompts": num_prompts, "num_prompts_from": how}
    extra.update({k: doc[k] for k in _PROVENANCE if isinstance(doc.get(k), str)})
    extra.update({k: doc[k] for k in _ARGUMENTS
                  if isinstance(doc.get(k), int | float) and not isinstance(doc.get(k), bool)})
    if doc.get("concurrency") is not None:
        extra["sglang_concurrency"] = entry.number("concurrency", doc["concurrency"], strict=False)

    cap = doc.get("max_concurrency")
    if cap is not None:
        extra["max_concurrency"] = entry.count("max_concurrency", cap)
    raw_rate = doc.get("request_rate")
    batch_size = 1  # under a rate or a trace, replaced by the mean in flight below
    if raw_rate == "trace":
        load = Load("trace")
        extra["request_rate"], extra["load_from"] = "trace", "request_rate 'trace': recorded arrival times"
    else:
        burst, rate = _rate(entry, raw_rate)
        extra["request_rate"] = rate
        if not burst:
            load = Load("rate", float(rate), "poisson")
            extra["load_from"] = f"request_rate {rate} (SGLang draws Poisson arrivals)" + (
                f", max_concurrency {extra['max_concurrency']} caps it" if cap is not None else "")
        elif cap is not None and extra["max_concurrency"] < num_prompts:
            load, batch_size = Load("concurrency", float(extra["max_concurrency"])), extra["max_concurrency"]
            extra["load_from"] = f"max_concurrency {extra['max_concurrency']} below {num_prompts} prompts"
        else:
            load, batch_size = STATIC, num_prompts
            extra["load_from"] = "every prompt in flight at once (unlimited rate and concurrency)"

    if arrays:
        extra["failed"] = num_prompts - completed
    return run_measurement(entry, doc, extra, load=load, batch_size=batch_size, completed=completed,
                           duration_s=duration_s, requested_output_tokens=requested_output_tokens)
