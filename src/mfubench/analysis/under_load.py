"""MFU and MBU of a measurement under continuous batching (a concurrency, a rate or a trace).

Under load a request's TTFT and TPOT are its own, not a batch's: prefill chunks of arriving
requests share engine steps with the decode of the others. Dividing the FLOPs of C prompts by
one request's TTFT is what gave 553 public results a "prefill MFU" up to 3,486 %. The rows here
are derived from what the measurement holds, and each names how (``seconds_source`` and
``extra["derived"]``):

``total`` (time-averaged over the run)
    the work of the completed requests over the run's duration::

        throughput  = completed / duration_s, else request_throughput, else
                      C / (TTFT + (O - 1) * TPOT)   (Little's law, closed loop of C), else
                      λ                             (open loop that kept up)
        flops       = requests * flops(one request of I in, O out)
        seconds     = requests / throughput

    with ``requests = completed`` when the run says, else one cycle (C requests, or one
    request at a rate). Bytes: every engine step reads the weights once, and each request's KV
    traffic (its prefill's and its decode's) is its own:
    ``steps * weight_bytes(step of N_d) + requests * kv_bytes(request)``, with
    ``steps = requests * (O - 1) / N_d`` (the prefill of arriving requests rides in these steps).
    The engine's counter delta over the window, where the measurement has it, is carried beside
    (``server_flops``).
``decode`` (one mean engine step)
    ``N_d = throughput * (O - 1) * TPOT`` sequences decode on average (Little's law on the
    decode stage), at the mean context ``I + (O - 1) / 2``; the step takes ``TPOT``. FLOPs scale
    exactly with ``N_d``; bytes count the weights once and ``N_d`` sequences' KV (experts
    touched by ``round(N_d)`` tokens). Each TPOT also carries the prefill of the requests
    arriving meanwhile, ``throughput * I * TPOT`` tokens per step: the row is flagged
    ``decode-with-prefill`` with that share of the step's FLOPs.
``prefill``
    not separable from per-request means: absent, and the summary says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mfubench.counting import flops as fl
from mfubench.counting import memory
from mfubench.counting.workload import DecodeStep, PrefillChunk
from mfubench.errors import MfubenchError

if TYPE_CHECKING:
    from mfubench.analysis.measurement import Measurement
    from mfubench.analysis.phases import Row, Setup, Work

DECODE_WITH_PREFILL = "decode-with-prefill"
PREFILL_NOT_SEPARABLE = ("prefill is not separable under load: each TTFT is one request's (its "
                         "queueing and other requests' steps included), not a batch's prefill span")


@dataclass(frozen=True)
class Flow:
    """The steady state of a load: requests per second, and how that was found."""

    throughput: float
    how: str


def flow(m: Measurement, steady: bool = False) -> Flow | None:
    """Requests completed per second (module doc, in order), or None when nothing gives it.

    ``steady``: prefer ``request_throughput`` (a run's steady-state rate, as ``mfubench run``
    measures it between ramp-up and drain) to the whole run's ``completed / duration``."""
    o = max(1.0, m.output_tokens)
    if steady and m.request_throughput:
        return Flow(m.request_throughput, "request_throughput (steady state)")
    if m.completed and m.duration_s:
        return Flow(m.completed / m.duration_s, "completed / duration")
    if m.request_throughput:
        return Flow(m.request_throughput, "request_throughput")
    if m.load.kind == "concurrency" and m.load.level and m.ttft_s and (m.tpot_s or o <= 1):
        e2e = m.ttft_s + (o - 1) * (m.tpot_s or 0.0)
        return Flow(m.load.level / e2e, "Little's law: C / (TTFT + (O - 1) x TPOT)")
    if m.load.kind == "rate" and m.load.level:
        return Flow(m.load.level, "the request rate (an open loop that kept up)")
    return None


def sequences_decoding(m: Measurement, f: Flow) -> float | None:
    """``N_d = throughput * (O - 1) * TPOT``: sequences in decode on average (Little's law)."""
    tpot = m.tpot_s or m.itl_s
    if tpot is None or m.output_tokens <= 1:
        return None
    return f.throughput * (m.output_tokens - 1) * tpot


def analyze_under_load(setup: Setup, m: Measurement, flags: list[str]) -> list[Row]:
    """The ``total`` and ``decode`` rows of a measurement under load (module doc)."""
    from mfubench.analysis.phases import row_of_work

    if setup.layout is not None:
        raise MfubenchError(f"{setup.layout.label}: points under load are analysed for one "
                            "tensor-parallel replica only; drop --dp/--pp/--ep")

    f = flow(m)
    if f is None:  # a roofline-only row that says what is missing, not silence
        return [row_of_work(setup, m, "total", _requests(setup, m, 1.0, None), None, "none", [
            *flags, "no-throughput: under load a row needs completed and duration_s, "
            "request_throughput, the rate, or TTFT and TPOT at a concurrency"])]
    rows: list[Row] = []
    steady = flow(m, steady=True) or f
    n_d = sequences_decoding(m, steady)
    tpot = m.tpot_s or m.itl_s
    if n_d is not None and tpot is not None and n_d > 0:
        work, prefill_share = _decode_step(setup, m, n_d, steady, tpot)
        share_flag = (f"{DECODE_WITH_PREFILL}: each {tpot * 1e3:.3g} ms step also prefills about "
                      f"{steady.throughput * m.input_tokens * tpot:.3g} tokens of arriving requests, "
                      f"{prefill_share:.0%} of the step's FLOPs, not counted in this row")
        rows.append(row_of_work(
            setup, m, "decode", work, tpot, "tpot (one mean engine step)" if m.tpot_s else "itl",
            [*flags, share_flag],
            {"sequences_decoding": n_d, "throughput_req_s": steady.throughput, "derived": (
                f"N_d = {steady.throughput:.4g} req/s ({steady.how}) x {m.output_tokens - 1:g} decode tokens "
                f"x {tpot:.4g} s = {n_d:.4g} sequences at a mean cache of {_mean_cache(m)} tokens"),
             "prefill_flops_share": prefill_share}))
    if m.completed:
        requests = float(m.completed)
    elif m.load.kind == "concurrency" and m.load.level:
        requests = m.load.level  # one cycle of the closed loop
    else:
        requests = 1.0
    work = _requests(setup, m, requests, n_d)
    seconds = requests / f.throughput
    rows.append(row_of_work(
        setup, m, "total", work, seconds, f"requests / throughput ({f.how})", flags,
        {"throughput_req_s": f.throughput, "requests": requests, "derived": (
            f"{requests:g} requests over {seconds:.4g} s at {f.throughput:.4g} req/s ({f.how})"),
         "prefill": PREFILL_NOT_SEPARABLE}))
    return rows


def _mean_cache(m: Measurement) -> int:
    """The mean cache length before a request's decode steps, ``I + (O - 2) / 2`` rounded: step
    k of ``1 .. O - 1`` adds a token to a cache of ``I + k - 1``; of a request mix, weighted by
    decode tokens (:attr:`RequestMix.mean_cache`)."""
    if m.mix is not None:
        return max(0, round(m.mix.mean_cache))
    return max(0, round(m.input_tokens + (m.output_tokens - 2) / 2))


def _prefill_flops_per_token(setup: Setup, m: Measurement) -> float:
    """FLOPs per prompt token of the measurement's prompts (of a mix: all its prompts' FLOPs
    over all their tokens, the quadratic attention term included)."""
    spec, convention = setup.spec, setup.convention
    if m.mix is None:
        inp = max(1, round(m.input_tokens))
        return fl.total(fl.prefill(spec, PrefillChunk(inp), convention)) / inp
    flops = sum(n * fl.total(fl.prefill(spec, PrefillChunk(i), convention)) for i, _, n in m.mix.pairs)
    return flops / sum(n * i for i, _, n in m.mix.pairs)


def _decode_step(setup: Setup, m: Measurement, n_d: float, f: Flow, tpot: float) -> tuple[Work, float]:
    """The work of one mean engine step with ``n_d`` sequences decoding, and the share of the
    step's FLOPs the arriving requests' prefill would add."""
    from mfubench.analysis.phases import ACTIVATION_BYTES, Work

    spec, tp = setup.spec, setup.tp
    cache = _mean_cache(m)
    one = fl.decode(spec, DecodeStep.uniform(1, cache), setup.convention)
    flops = fl.total(one) * n_d
    per_gpu = sum(fl.per_gpu(spec, one, tp).values()) * n_d
    whole = max(1, round(n_d))
    weights, kv = _step_bytes(setup, whole, cache)
    nbytes = weights + kv * n_d / whole
    prefill_tokens = f.throughput * m.input_tokens * tpot
    prefill_flops = prefill_tokens * _prefill_flops_per_token(setup, m)
    share = prefill_flops / (prefill_flops + flops) if flops + prefill_flops else 0.0
    work = Work(flops, per_gpu, nbytes, 2 * spec.num_layers,
                n_d * spec.hidden_size * ACTIVATION_BYTES)
    return work, share


def _step_bytes(setup: Setup, sequences: int, cache: int) -> tuple[float, float]:
    """(weight bytes, KV bytes) one decode step of ``sequences`` at ``cache`` moves, per GPU."""
    step = memory.decode_bytes(setup.spec, DecodeStep.uniform(sequences, cache), setup.kv_dtype, setup.tp)
    kv = step.read.get("kv_cache", 0.0) + step.write.get("kv_cache", 0.0)
    return step.total - kv, kv


def _requests(setup: Setup, m: Measurement, requests: float, n_d: float | None) -> Work:
    """The work of ``requests`` whole requests of the measurement's lengths (module doc): the
    FLOPs of each; the bytes of each one's KV traffic, and the weights once per engine step, the
    steps shared by ``n_d`` sequences (the prefill of each request rides in those steps).

    With a request mix, each distinct length is counted at its share of ``requests``
    (``requests * count / mix.requests``); without one, every request has the mean lengths."""
    from mfubench.analysis.phases import ACTIVATION_BYTES, Work, phase_work

    spec, tp, kv_dtype = setup.spec, setup.tp, setup.kv_dtype
    if m.mix is not None:
        shapes = [(i, o, requests * n / m.mix.requests) for i, o, n in m.mix.pairs]
    else:
        shapes = [(max(1, round(m.input_tokens)), max(1, round(m.output_tokens)), requests)]
    flops = per_gpu = alone_bytes = kv_bytes = decode_steps = messages = message_bytes = 0.0
    for inp, out, share in shapes:
        one = phase_work(setup, "total", 1, inp, out)  # alone: its prefill and every decode step
        flops += one.flops * share
        per_gpu += one.flops_per_gpu * share
        alone_bytes += one.bytes_per_gpu * share
        messages += one.messages * share
        message_bytes += one.messages * one.message_bytes * share
        decode_steps += (out - 1) * share
        if n_d and n_d > 0 and out > 1:
            prefill = memory.prefill_bytes(spec, PrefillChunk(inp), kv_dtype, tp)
            decode = memory.decode_span_bytes(spec, 1, inp, out - 1, kv_dtype, tp)
            kv_bytes += share * sum(b.read.get("kv_cache", 0.0) + b.write.get("kv_cache", 0.0)
                                    for b in (prefill, decode))
    if not n_d or n_d <= 0 or decode_steps <= 0:
        return Work(flops, per_gpu, alone_bytes, messages, message_bytes / messages if messages else 0.0)
    engine_steps = decode_steps / n_d  # one set of weight reads and all-reduces per step
    weights, _ = _step_bytes(setup, max(1, round(n_d)), _mean_cache(m))
    return Work(flops, per_gpu, kv_bytes + engine_steps * weights,
                2 * spec.num_layers * engine_steps, n_d * spec.hidden_size * ACTIVATION_BYTES)
