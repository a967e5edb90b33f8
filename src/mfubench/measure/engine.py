"""The serving engines mfubench talks to, and what differs between them: an :class:`Engine`.

Every engine takes the same OpenAI ``/v1/completions`` request (token-id prompt, ``max_tokens``,
``ignore_eos``, streamed with usage); what differs is listed here, not spread over ``if``\\ s:

=============== ============================================================================
``vllm``        ``min_tokens = max_tokens`` as well (its hard floor on the length);
                ``/metrics`` counters ``vllm:*`` (with ``--enable-mfu-metrics`` its own
                FLOP and byte estimates); ``/version``.
``llama.cpp``   no ``min_tokens``: the exact length is ``ignore_eos`` + ``max_tokens``;
                ``cache_prompt: false`` so its prompt cache cannot hide work; its last chunk
                carries ``timings`` (``prompt_ms``, ``predicted_ms``): the engine's own
                prefill and decode times, kept beside the client's; ``/metrics`` counters
                ``llamacpp:*`` (tokens and seconds, no FLOP estimate); ``/props`` names its
                build and its parallel slots (the most requests it runs at once); one
                connection per request (``Connection: close``: its HTTP library closes
                kept-alive connections after a few requests, racing their reuse).
``openai``      any other OpenAI-compatible server (SGLang, TGI, ...): vLLM's request, which
                they accept, and no counters.
=============== ============================================================================

:func:`detect` tells them apart on a live server (``/props`` answers on llama.cpp only,
``/version`` on vLLM). Sources: vLLM 0.32.0 ``vllm/entrypoints/openai/protocol.py`` and
``vllm/v1/metrics``; llama.cpp ``tools/server/README.md`` and ``server.cpp`` as shipped in
``xllamacpp`` 2026.10 (read from a live server here: the chunk and ``/metrics`` shapes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Engine:
    """One serving engine's dialect (module doc).

    Attributes:
        name: ``vllm``, ``llama.cpp`` or ``openai``.
        extra_body: fields added to every completion request.
        counters: ServerDelta field -> the engine's counter name in ``/metrics``.
        histograms: ServerDelta field prefix -> the engine's histogram name (``_sum``/``_count``).
        seconds_counters: ServerDelta ``*_sum_s`` field -> a counter of seconds (no count).
        dropped: fields of the common request this engine does not take.
        headers: HTTP headers of every completion request.
        text_field: the text's field in ``/tokenize`` requests and ``/detokenize`` replies
            (vLLM ``prompt``, llama.cpp ``content``); ``tokenize_extra`` joins the request
            (llama.cpp: ``add_special``, so that the count is a completion's).
        monitor: what ``mfubench monitor`` reads (:mod:`mfubench.measure.monitor`): Counters
            field -> metric name; ``*_histogram`` names give ``_sum``/``_count``; gauges for
            ``running``, ``waiting`` and ``kv_usage``.
    """

    name: str
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    monitor: Mapping[str, str] = field(default_factory=dict)
    text_field: str = "prompt"
    tokenize_extra: Mapping[str, Any] = field(default_factory=dict)
    counters: Mapping[str, str] = field(default_factory=dict)
    histograms: Mapping[str, str] = field(default_factory=dict)
    seconds_counters: Mapping[str, str] = field(default_factory=dict)

    def body(self, base: Mapping[str, Any]) -> dict[str, Any]:
        """The request ``base`` in this engine's dialect."""
        out = {k: v for k, v in base.items() if k not in self.dropped}
        out.update(self.extra_body)
        return out


VLLM = Engine(
    "vllm",
    counters={
        "flops": "vllm:estimated_flops_per_gpu_total",
        "read_bytes": "vllm:estimated_read_bytes_per_gpu_total",
        "write_bytes": "vllm:estimated_write_bytes_per_gpu_total",
        "prompt_tokens": "vllm:prompt_tokens_total",
        "generation_tokens": "vllm:generation_tokens_total",
    },
    histograms={
        "prefill_time": "vllm:request_prefill_time_seconds",
        "decode_time": "vllm:request_decode_time_seconds",
        "queue_time": "vllm:request_queue_time_seconds",
    },
    monitor={
        "flops": "vllm:estimated_flops_per_gpu_total",
        "read_bytes": "vllm:estimated_read_bytes_per_gpu_total",
        "write_bytes": "vllm:estimated_write_bytes_per_gpu_total",
        "prompt_tokens": "vllm:prompt_tokens_total",
        "generation_tokens": "vllm:generation_tokens_total",
        "prompt_histogram": "vllm:request_prompt_tokens",
        "generation_histogram": "vllm:request_generation_tokens",
        "steps_histogram": "vllm:iteration_tokens_total",
        "running": "vllm:num_requests_running",
        "waiting": "vllm:num_requests_waiting",
        "kv_usage": "vllm:kv_cache_usage_perc",
    },
)

LLAMA_CPP = Engine(
    "llama.cpp",
    extra_body={"cache_prompt": False},
    dropped=("min_tokens", "return_token_ids"),  # ignore_eos + max_tokens hold the length
    # cpp-httplib closes a kept-alive connection after a few requests, racing the client's reuse
    # of it ("Server disconnected"): one connection per request (loopback: ~0.1 ms)
    headers={"Connection": "close"},
    text_field="content",
    tokenize_extra={"add_special": True},
    counters={
        "prompt_tokens": "llamacpp:prompt_tokens_total",
        "generation_tokens": "llamacpp:tokens_predicted_total",
    },
    seconds_counters={
        "prefill_time_sum_s": "llamacpp:prompt_seconds_total",
        "decode_time_sum_s": "llamacpp:tokens_predicted_seconds_total",
    },
    monitor={
        "prompt_tokens": "llamacpp:prompt_tokens_total",
        "generation_tokens": "llamacpp:tokens_predicted_total",
        "steps": "llamacpp:n_decode_total",
        "running": "llamacpp:requests_processing",
        "waiting": "llamacpp:requests_deferred",
    },
)

OPENAI = Engine("openai")

# SGLang (``--enable-metrics``): names from ``python/sglang/srt/metrics/collector.py`` at
# sgl-project/sglang 93d04878cfb9b08645fae7b11bd340ee33b34acf (TokenizerMetricsCollector's
# token counters, labels ``model_name`` and ``engine_type``; SchedulerMetricsCollector's gauges,
# also ``tp_rank``/``pp_rank``). Its token counters move when a request finishes (its whole
# prompt and output at once), so short windows lag long requests. The token histograms exist only with
# ``--collect-tokens-histogram``; later SGLang adds per-GPU FLOP and byte estimates under
# vLLM's names with the ``sglang:`` prefix (read when present). No step counter: no MBU from
# token counters.
SGLANG = Engine(
    "sglang",
    monitor={
        "flops": "sglang:estimated_flops_per_gpu_total",
        "read_bytes": "sglang:estimated_read_bytes_per_gpu_total",
        "write_bytes": "sglang:estimated_write_bytes_per_gpu_total",
        "prompt_tokens": "sglang:prompt_tokens_total",
        "generation_tokens": "sglang:generation_tokens_total",
        "prompt_histogram": "sglang:prompt_tokens_histogram",
        "generation_histogram": "sglang:generation_tokens_histogram",
        "running": "sglang:num_running_reqs",
        "waiting": "sglang:num_queue_reqs",
        "kv_usage": "sglang:token_usage",
    },
)

# TGI: names from huggingface/text-generation-inference db931fcf42da018a3657580c64bf2720f167f9ab
# (``router/src/server.rs``, ``router/src/validation.rs``, ``backends/v3/src/{backend,queue}.rs``;
# ``docs/source/reference/metrics.md``), exported by metrics-exporter-prometheus without a
# ``_total`` suffix and without a model label. TGI has no token counters: the prompt tokens are
# ``tgi_request_input_length``'s ``_sum`` (recorded when a request is validated), the generated
# ones ``tgi_request_generated_tokens``'s ``_sum`` (recorded when it finishes); its steps are
# ``tgi_batch_inference_count`` (one per prefill or decode forward, label ``method``). The
# window's requests are those validated in it (the prompt histogram's ``_count``), which in a
# steady state are as many as finished. No KV fill gauge.
TGI = Engine(
    "tgi",
    monitor={
        "prompt_tokens": "tgi_request_input_length_sum",
        "generation_tokens": "tgi_request_generated_tokens_sum",
        "prompt_histogram": "tgi_request_input_length",
        "generation_histogram": "tgi_request_generated_tokens",
        "steps": "tgi_batch_inference_count",
        "running": "tgi_batch_current_size",
        "waiting": "tgi_queue_size",
    },
)

ENGINES: Mapping[str, Engine] = {e.name: e for e in (VLLM, LLAMA_CPP, OPENAI, SGLANG, TGI)}


def engine_named(name: str) -> Engine:
    """The engine called ``name``; a clear error naming the known ones."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    return ENGINES[name]


def from_props(props: Any) -> bool:
    """True when a ``/props`` reply is llama.cpp's (its slots and build are named)."""
    return isinstance(props, dict) and "total_slots" in props and "build_info" in props
