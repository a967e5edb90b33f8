"""Which layout to run: every TP/DP/PP/EP layout of a device count, ranked by roofline throughput
per GPU under a latency bound (``mfubench roofline --layouts``).

For a workload of prompts of ``I`` tokens and ``O`` output tokens, each layout is tried at the
batches ``B = 1, 2, 4, ...`` up to the largest its memory holds at ``I + O`` tokens
(:func:`~mfubench.analysis.feasibility.fit`), and scored at the largest batch that meets the
bounds::

    ttft(B)     = roofline prefill of one prompt (a request's own prefill, batch 1)
    itl(B)      = roofline decode step of B sequences at context I + O (the slowest step)
    served(B)   = roofline prefill of B prompts + (O - 1) itl(B)       (a static batch)
    throughput  = B O / served(B) / devices                           (tokens/s per GPU)

With ``pp > 1`` the batch runs as ``pp`` micro-batches of ``ceil(B / pp)`` (vLLM's one per
stage): ``itl`` is :func:`.pipeline.step` and the prefill :func:`.pipeline.fill_drain` of the
stages' times (``ttft`` stays one prompt through every stage in turn).

subject to ``itl <= max_itl`` and ``ttft <= max_ttft`` where given. The layouts are
``tp x dp x pp = devices`` with ``tp`` dividing the heads (:func:`~mfubench.counting.parallel.
check_layout`), and, for a MoE model, ``ep`` of 1 (every expert over ``tp x dp``) and
``tp x dp`` (vLLM's ``--enable-expert-parallel``). Each row names the decode step's limiting
term (``compute``, ``memory``, or the largest communication term) and, where a layout cannot
hold even one sequence or meet the bound, why.
"""

from __future__ import annotations

from dataclasses import dataclass

from mfubench.analysis import pipeline
from mfubench.analysis.comm import comm_advice, fabric_of
from mfubench.analysis.feasibility import fit
from mfubench.analysis.phases import Setup, decode_work, phase_roofline, prefill_work
from mfubench.counting.layout import Layout
from mfubench.counting.parallel import ceil_div, check_layout
from mfubench.counting.workload import Convention
from mfubench.errors import MfubenchError
from mfubench.hardware.spec import HardwareSpec
from mfubench.model.spec import ModelSpec


@dataclass(frozen=True)
class LayoutScore:
    """One layout's best point under the bounds (``batch`` 0: none meets them, see ``why``)."""

    layout: Layout
    batch: int
    max_batch: int
    ttft_s: float | None
    itl_s: float | None
    throughput_per_gpu: float
    limit: str
    why: str = ""


def candidate_layouts(spec: ModelSpec, devices: int, imbalance: float = 1.0) -> list[Layout]:
    """Every layout of ``devices`` the model can be split into (module doc)."""
    out: list[Layout] = []
    for pp in _divisors(devices):
        for tp in _divisors(devices // pp):
            dp = devices // pp // tp
            eps = [1, tp * dp] if spec.is_moe and tp * dp > 1 else [1]
            for ep in eps:
                try:
                    layout = Layout(tp=tp, dp=dp, pp=pp, ep=ep, imbalance=imbalance)
                    check_layout(spec, layout)
                except MfubenchError:
                    continue
                out.append(layout)
    return out


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def score_layout(setup: Setup, input_tokens: int, output_tokens: int, max_itl: float | None,
                 max_ttft: float | None, batch_cap: int = 1 << 16) -> LayoutScore:
    """The best point of ``setup``'s layout for the workload (module doc)."""
    layout = setup.parallel
    context = input_tokens + output_tokens
    held = fit(setup, context).max_batch
    if held < 1:
        return LayoutScore(layout, 0, 0, None, None, 0.0, "memory",
                           "the weights leave no room for one sequence's cache")
    pre1 = phase_roofline(setup, prefill_work(setup, 1, input_tokens))
    if pre1 is None:
        raise MfubenchError(f"{setup.hardware.name} has no {setup.dtype} peak: no roofline")
    ttft = pre1.roofline_s
    best: LayoutScore | None = None
    b, last_limit, last_itl = 1, "", None
    m = layout.pp  # micro-batches in flight: vLLM runs one per pipeline stage
    while b <= min(held, batch_cap):
        step_rl = phase_roofline(setup, decode_work(setup, b, context - 1, 1))
        assert step_rl is not None
        if layout.pp > 1:
            micro = ceil_div(b, m)
            itl = pipeline.step(pipeline.stage_seconds(setup, "decode", micro, 1, context - 1), m)
            prefill_s = pipeline.fill_drain(
                pipeline.stage_seconds(setup, "prefill", micro, input_tokens, 0), m)
        else:
            itl = step_rl.roofline_s
            pre = phase_roofline(setup, prefill_work(setup, b, input_tokens))
            assert pre is not None
            prefill_s = pre.roofline_s
        limit: str = step_rl.bound
        if limit == "communication" and step_rl.comm_breakdown:
            limit = max(step_rl.comm_breakdown, key=lambda t: t[1])[0]
        last_limit, last_itl = limit, itl
        if (max_itl is not None and itl > max_itl) or (max_ttft is not None and ttft > max_ttft):
            break
        served = prefill_s + (output_tokens - 1) * itl
        tput = b * output_tokens / served / layout.devices
        if best is None or tput > best.throughput_per_gpu:
            best = LayoutScore(layout, b, held, ttft, itl, tput, limit)
        b *= 2
    if best is None:
        why = (f"TTFT {ttft:.3g} s above --max-ttft" if max_ttft is not None and ttft > max_ttft
               else f"ITL {last_itl:.3g} s at batch 1 above --max-itl")
        return LayoutScore(layout, 0, held, ttft, last_itl, 0.0, last_limit, why)
    return best


def rank_layouts(spec: ModelSpec, hardware: HardwareSpec, input_tokens: int, output_tokens: int,
                 max_itl: float | None = None, max_ttft: float | None = None,
                 convention: Convention = "causal", kv_dtype: str | None = None,
                 imbalance: float = 1.0) -> list[LayoutScore]:
    """Every candidate layout of ``hardware.count`` devices scored, best throughput per GPU
    first; those that meet no bound last."""
    scores = []
    for layout in candidate_layouts(spec, hardware.count, imbalance):
        # every layout on the layout path, plain TP too: its all-reduce sees the system's domain
        setup = Setup(spec, hardware, convention, layout.tp, kv_dtype, layout=layout)
        try:
            scores.append(score_layout(setup, input_tokens, output_tokens, max_itl, max_ttft))
        except MfubenchError as e:  # a layout the fabric cannot carry (no network in the catalog)
            scores.append(LayoutScore(layout, 0, 0, None, None, 0.0, "communication", str(e)))
    return sorted(scores, key=lambda s: -s.throughput_per_gpu)


def advice(setup: Setup, score: LayoutScore, context: int) -> str:
    """What would move a communication-limited layout's decode step (:func:`.comm.comm_advice`)."""
    if not score.batch or "(" not in score.limit:
        return ""
    step = phase_roofline(setup, decode_work(setup, score.batch, context - 1, 1))
    if step is None:
        return ""
    return comm_advice(step.comm_breakdown, setup.parallel, fabric_of(setup))
