"""MFU and MBU of a live deployment over one window of its own counters (``mfubench monitor``).

A window is ``seconds`` of wall time between two scrapes of an engine's ``/metrics``; its
:class:`Counters` are the deltas of the engine's counters over it (and the gauges at its end).
:func:`window_figures` divides the work done in the window by what the hardware could do in it::

    mfu = flops_per_gpu / (seconds x peak_per_gpu)        mbu = bytes_per_gpu / (seconds x bandwidth)

The work comes, in order of preference, from

``engine``
    the engine's own estimate (vLLM ``--enable-mfu-metrics``:
    ``vllm:estimated_flops_per_gpu_total``, ``..._read_bytes_...``, ``..._write_bytes_...``,
    already per GPU);
``tokens``
    the engine's token counters through mfubench's count: ``prompt_tokens`` prefilled at the
    window's mean prompt (``request_prompt_tokens`` ``_sum / _count`` of the requests that
    finished in it, else ``--input-tokens``) and ``generation_tokens`` decoded at the mean
    cache ``I + O / 2``; bytes need the engine's step count (``iteration_tokens_total``
    ``_count``): each step reads the weights once, each generated token its sequence's cache.
    Without a step count there is no MBU, and the figure says why.

With several replicas behind one endpoint (vLLM's data-parallel engines, each on its own
GPUs) the summed work is divided by their number: per GPU of one replica, on average. Both
are over wall time. ``busy_share`` (the fraction of the window's samples with a request
running) gives the utilisation while serving: ``mfu / busy_share``. A figure above 100 % is
flagged ``above-peak`` (never clamped), as everywhere in mfubench.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from mfubench.counting import flops as fl
from mfubench.counting import memory
from mfubench.counting.workload import DecodeStep, PrefillChunk

if TYPE_CHECKING:
    from mfubench.analysis.phases import Setup

WorkSource = Literal["engine", "tokens", "none"]


@dataclass(frozen=True)
class Counters:
    """What changed in one window (None: the engine does not export it, or it was reset).

    Attributes:
        seconds: the window's wall time.
        flops / read_bytes / write_bytes: the engine's own estimates, per GPU.
        prompt_tokens / generation_tokens: tokens prefilled and generated.
        finished_requests: requests that finished (the request histograms' ``_count``).
        finished_prompt_tokens / finished_generation_tokens: their tokens (the ``_sum``).
        steps: engine steps (forward passes) in the window.
        busy_share: fraction of the window's samples with a request running.
        running / waiting: requests running and queued at the window's end.
        kv_usage: the KV cache's fill at the end (0..1).
        replicas: engines behind the endpoint (vLLM's data-parallel ``engine`` label values),
            each on its own GPUs: the counters above are summed over them, and the figures
            are per GPU of one replica on average (their sum over ``replicas``).
    """

    seconds: float
    flops: float | None = None
    read_bytes: float | None = None
    write_bytes: float | None = None
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    finished_requests: float | None = None
    finished_prompt_tokens: float | None = None
    finished_generation_tokens: float | None = None
    steps: float | None = None
    busy_share: float | None = None
    running: float | None = None
    waiting: float | None = None
    kv_usage: float | None = None
    replicas: int = 1


@dataclass(frozen=True)
class WindowFigures:
    """The figures of one window (module doc); ``notes`` say what could not be given and why."""

    seconds: float
    source: WorkSource
    flops_per_gpu: float | None
    bytes_per_gpu: float | None
    mfu: float | None
    mbu: float | None
    mfu_busy: float | None
    mbu_busy: float | None
    tokens_per_s: float | None
    prefill_flops_share: float | None
    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def window_figures(setup: Setup, c: Counters, input_tokens: float | None = None,
                   output_tokens: float | None = None) -> WindowFigures:
    """The window's MFU and MBU (module doc); ``input_tokens``/``output_tokens`` are the mean
    lengths to count token work at when no request finished in the window."""
    machine = setup.machine()
    notes: list[str] = []
    flops = nbytes = share = None
    source: WorkSource = "none"
    if c.flops is not None:
        source, flops = "engine", c.flops
        if c.read_bytes is not None and c.write_bytes is not None:
            nbytes = c.read_bytes + c.write_bytes
    elif c.prompt_tokens is not None and c.generation_tokens is not None:
        mean_in, mean_out = _mean_lengths(c, input_tokens, output_tokens)
        if mean_in is None:
            notes.append("no FLOPs: no request finished in the window to give the mean prompt, "
                         "and no --input-tokens")
        else:
            source = "tokens"
            flops, nbytes, share = _token_work(setup, c, mean_in, mean_out or 1.0, notes)
    else:
        notes.append("no FLOPs: the engine exports neither FLOP nor token counters")
    if c.replicas > 1:  # the counters are summed over replicas on their own GPUs
        flops = None if flops is None else flops / c.replicas
        nbytes = None if nbytes is None else nbytes / c.replicas
    tokens = None
    if c.prompt_tokens is not None and c.generation_tokens is not None:
        tokens = (c.prompt_tokens + c.generation_tokens) / c.seconds
    mfu = mbu = None
    if machine is None:
        notes.append(f"no MFU/MBU: {setup.hardware.name} has no {setup.dtype} peak")
    else:
        if flops is not None:
            mfu = flops / (c.seconds * machine.peak_flops)
        if nbytes is not None:
            mbu = nbytes / (c.seconds * machine.memory_bandwidth)
    busy = c.busy_share if c.busy_share and c.busy_share > 0 else None
    flags = [f"above-peak: {name} {value:.0%} over the window" for name, value in (("MFU", mfu), ("MBU", mbu))
             if value is not None and value > 1]
    return WindowFigures(
        seconds=c.seconds, source=source, flops_per_gpu=flops, bytes_per_gpu=nbytes, mfu=mfu, mbu=mbu,
        mfu_busy=None if mfu is None or busy is None else mfu / busy,
        mbu_busy=None if mbu is None or busy is None else mbu / busy,
        tokens_per_s=tokens, prefill_flops_share=share, flags=tuple(flags), notes=tuple(notes))


def _mean_lengths(c: Counters, input_tokens: float | None,
                  output_tokens: float | None) -> tuple[float | None, float | None]:
    if c.finished_requests and c.finished_prompt_tokens is not None:
        out = (c.finished_generation_tokens / c.finished_requests
               if c.finished_generation_tokens is not None else output_tokens)
        return c.finished_prompt_tokens / c.finished_requests, out
    return input_tokens, output_tokens


@dataclass(frozen=True)
class TokenCosts:
    """Per-GPU work per token at given mean lengths: what token counters are multiplied by (in
    :func:`window_figures`, and in the Prometheus recording rules of ``mfubench monitor``).

    Attributes:
        flops_per_prompt_token: prefill FLOPs of a prompt of the mean length over its tokens.
        flops_per_generated_token: decode FLOPs of one token at the mean cache ``I + O / 2``.
        weight_bytes_per_step: bytes one engine step reads whatever its batch (the weights).
        kv_bytes_per_generated_token: cache bytes one generated token reads and writes.
    """

    flops_per_prompt_token: float
    flops_per_generated_token: float
    weight_bytes_per_step: float
    kv_bytes_per_generated_token: float


def token_costs(setup: Setup, mean_in: float, mean_out: float) -> TokenCosts:
    """:class:`TokenCosts` of ``setup`` at a mean prompt ``mean_in`` and output ``mean_out``."""
    spec, tp, conv = setup.spec, setup.tp, setup.convention
    inp = max(1, round(mean_in))
    cache = max(0, round(mean_in + mean_out / 2))
    prefill = fl.prefill(spec, PrefillChunk(inp), conv)
    decode = fl.decode(spec, DecodeStep.uniform(1, cache), conv)
    step = memory.decode_bytes(spec, DecodeStep.uniform(1, cache), setup.kv_dtype, tp)
    kv = step.read.get("kv_cache", 0.0) + step.write.get("kv_cache", 0.0)
    return TokenCosts(sum(fl.per_gpu(spec, prefill, tp).values()) / inp,
                      sum(fl.per_gpu(spec, decode, tp).values()), step.total - kv, kv)


def _token_work(setup: Setup, c: Counters, mean_in: float, mean_out: float,
                notes: list[str]) -> tuple[float, float | None, float]:
    """Per-GPU FLOPs and bytes of the window's tokens at the mean lengths, and prefill's share."""
    costs = token_costs(setup, mean_in, mean_out)
    pre = (c.prompt_tokens or 0.0) * costs.flops_per_prompt_token
    dec = (c.generation_tokens or 0.0) * costs.flops_per_generated_token
    flops = pre + dec
    share = pre / flops if flops else 0.0
    if not c.steps:
        notes.append("no MBU from token counters: the engine exports no step count "
                     "(iteration_tokens_total) to count the weight reads by")
        return flops, None, share
    nbytes = c.steps * costs.weight_bytes_per_step + (c.generation_tokens or 0.0) * costs.kv_bytes_per_generated_token
    return flops, nbytes, share
