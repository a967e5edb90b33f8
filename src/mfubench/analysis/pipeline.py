"""Pipeline stages in time: micro-batches, the bubble, and a decode step in steady state.

With stage times ``t_s`` (one micro-batch through stage ``s``: its roofline, its share of the
layers' communication and one send to the next stage) and ``m`` micro-batches:

    fill_drain(t, m) = sum_s t_s + (m - 1) max_s t_s      a batch of m micro-batches, start to end
    bubble(t, m)     = 1 - m sum_s t_s / (P fill_drain)   idle share of the stages' time;
                       (P - 1) / (m + P - 1) for equal stages
    step(t, m)       = max(sum_s t_s, m max_s t_s)        decode in steady state: each of m
                       micro-batches in flight advances a token per step(t, m)

``fill_drain`` is a prefill of ``m`` micro-batches (GPipe's schedule); ``step`` is a decode step
when ``m`` micro-batches circulate (vLLM runs ``pp`` of them, one per virtual engine): below
``P`` micro-batches a token waits on the pipeline's latency ``sum_s t_s``, at ``P`` or more on
the slowest stage's share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mfubench.counting import parallel as par
from mfubench.counting.workload import PrefillChunk
from mfubench.errors import MfubenchError

if TYPE_CHECKING:
    from mfubench.analysis.phases import Setup


def _check(stage_s: Sequence[float], m: int) -> None:
    if not stage_s or m < 1:
        raise MfubenchError("a pipeline needs at least one stage and one micro-batch")


def fill_drain(stage_s: Sequence[float], m: int) -> float:
    """Seconds for ``m`` micro-batches through the stages (module doc)."""
    _check(stage_s, m)
    return sum(stage_s) + (m - 1) * max(stage_s)


def bubble(stage_s: Sequence[float], m: int) -> float:
    """The idle fraction of the stages' time over :func:`fill_drain` (module doc)."""
    total = fill_drain(stage_s, m)
    return 1.0 - m * sum(stage_s) / (len(stage_s) * total) if total else 0.0


def step(stage_s: Sequence[float], m: int) -> float:
    """Seconds per decode step with ``m`` micro-batches in flight (module doc)."""
    _check(stage_s, m)
    return max(sum(stage_s), m * max(stage_s))


def stage_seconds(setup: Setup, phase: str, batch: int, tokens: int, context: int) -> list[float]:
    """Roofline seconds of each stage for one micro-batch of ``batch`` sequences (the whole
    deployment's, over its DP ranks): ``phase`` ``prefill`` (``tokens`` new tokens each) or
    ``decode`` (one step at ``context`` cached tokens). The layout's communication is shared by
    the stages in proportion to their layers, and each stage but the last sends once."""
    from mfubench.analysis.comm import comm_terms, fabric_of

    layout, spec = setup.parallel, setup.spec
    machine = setup.machine()
    if machine is None:
        raise MfubenchError(f"{setup.hardware.name} has no {setup.dtype} peak: no roofline")
    rank = par.ceil_div(batch, layout.dp)
    if phase == "prefill":
        chunk = PrefillChunk(tokens, 0, batch)
        counts = [par.prefill_stage(spec, layout, chunk, s, setup.convention, setup.kv_dtype)
                  for s in range(layout.pp)]
        terms = comm_terms(spec, layout, fabric_of(setup), rank * tokens, batch * tokens, 1)
    else:
        counts = [par.decode_span_stage(spec, layout, batch, context, 1, s, setup.kv_dtype)
                  for s in range(layout.pp)]
        terms = comm_terms(spec, layout, fabric_of(setup), rank, batch, 1)
    layer_comm = sum(t for name, t in terms if not name.startswith("pp_"))
    sends = sum(t for name, t in terms if name.startswith("pp_"))
    out = []
    for c in counts:
        share = (c.layers.stop - c.layers.start) / spec.num_layers
        send = sends / (layout.pp - 1) if c.stage < layout.pp - 1 and layout.pp > 1 else 0.0
        out.append(max(c.flops_total / machine.peak_flops, c.bytes_total / machine.memory_bandwidth)
                   + layer_comm * share + send)
    return out
