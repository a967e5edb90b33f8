"""The work of a phase under a parallel layout (:mod:`mfubench.counting.layout`), and what fits.

A layout other than one TP replica is counted per pipeline stage
(:mod:`mfubench.counting.parallel`) on the busiest GPU of each stage. A batch passes the ``P``
stages in turn (one micro-batch), so a phase's per-GPU work is the stages' end to end::

    flops          = the whole deployment's FLOPs (all DP ranks' sequences)
    flops_per_gpu  = sum_s flops_gpu(s)        bytes_per_gpu = sum_s bytes_gpu(s)
    comm_terms     = the TP all-reduce, EP all-to-all, DP gathers and PP sends (:mod:`.comm`)

so ``roofline_s = max(compute, memory) + comm`` is the stages' sum, and MFU over all
``T D P`` devices counts the pipeline's idle stages against it (see :mod:`.pipeline` for
micro-batches). Capacity: a DP rank holds ``min_s floor(free_s / kv_s(context))`` sequences,
``free_s`` the stage's budget less its weights; the deployment ``D`` times that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfubench.counting import flops as fl
from mfubench.counting import parallel as par
from mfubench.counting.parallel import ceil_div
from mfubench.counting.workload import PrefillChunk

if TYPE_CHECKING:
    from mfubench.analysis.feasibility import Fit
    from mfubench.analysis.phases import Setup, Work


def _work(setup: Setup, flops: float, stages: list[par.StageCounts], tokens_per_rank: int,
          step_tokens: int, passes: int) -> Work:
    from mfubench.analysis.comm import comm_terms, fabric_of
    from mfubench.analysis.phases import Work

    layout = setup.parallel
    terms = comm_terms(setup.spec, layout, fabric_of(setup), tokens_per_rank, step_tokens, passes) \
        if layout.devices > 1 else ()
    return Work(flops, sum(s.flops_total for s in stages), sum(s.bytes_total for s in stages),
                0, 0, terms)


def layout_prefill_work(setup: Setup, batch: int, input_tokens: int, cached: int = 0) -> Work:
    """:func:`~mfubench.analysis.phases.prefill_work` under ``setup.parallel``."""
    layout = setup.parallel
    chunk = PrefillChunk(input_tokens, cached, batch)
    stages = [par.prefill_stage(setup.spec, layout, chunk, s, setup.convention, setup.kv_dtype)
              for s in range(layout.pp)]
    flops = fl.total(fl.prefill(setup.spec, chunk, setup.convention))
    return _work(setup, flops, stages, ceil_div(batch, layout.dp) * input_tokens,
                 batch * input_tokens, 1)


def layout_decode_work(setup: Setup, batch: int, input_tokens: int, steps: int) -> Work:
    """:func:`~mfubench.analysis.phases.decode_work` under ``setup.parallel``."""
    from mfubench.analysis.phases import Work

    if steps <= 0:
        return Work(0, 0, 0, 0, 0)
    layout = setup.parallel
    stages = [par.decode_span_stage(setup.spec, layout, batch, input_tokens, steps, s,
                                    setup.kv_dtype) for s in range(layout.pp)]
    flops = fl.total(fl.decode_span(setup.spec, batch, input_tokens, steps))
    return _work(setup, flops, stages, ceil_div(batch, layout.dp), batch, steps)


def layout_fit(setup: Setup, context: int, memory_fraction: float) -> Fit:
    """:func:`~mfubench.analysis.feasibility.fit` under ``setup.parallel``: the sequences the
    whole deployment holds (``D`` ranks of the tightest stage's count), the figures of that stage
    per GPU."""
    from mfubench.analysis.feasibility import Fit

    layout = setup.parallel
    budget = memory_fraction * setup.hardware.memory_capacity
    best: Fit | None = None
    for s in range(layout.pp):
        weights = sum(par.stage_weight_bytes(setup.spec, layout, s).values())
        per_seq = par.kv_bytes_per_gpu(setup.spec, layout, 1, context, setup.kv_dtype, s)
        free = budget - weights
        fits = int(free // per_seq) * layout.dp if free > 0 and per_seq > 0 else 0
        if best is None or fits < best.max_batch:
            best = Fit(fits, per_seq, free, weights, budget)
    assert best is not None
    return best
