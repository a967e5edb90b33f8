"""What the hardware and the model allow: memory capacity, and where decode turns compute-bound.

``max_batch``: sequences of a given length whose KV cache fits beside the weights::

    free_per_gpu = memory_fraction * capacity - weight_bytes_per_gpu
    max_batch    = floor(free_per_gpu / kv_cache_bytes_per_gpu(context))

``memory_fraction`` defaults to 0.9, vLLM's ``--gpu-memory-utilization`` default; activations and
the CUDA graphs' workspace are left in the remaining tenth (:mod:`mfubench.analysis.feasibility`
holds the formula and flags the points beyond it).

``compute_bound_batch``: the smallest batch whose decode step at a context length has
``compute_s >= memory_s``; None when no batch gets there (the KV cache grows with the batch as
fast as the FLOPs do, so long contexts can stay memory-bound at any batch).
"""

from __future__ import annotations

from dataclasses import dataclass

from mfubench.analysis.feasibility import VLLM_GPU_MEMORY_UTILIZATION, fit
from mfubench.analysis.phases import Setup, decode_work
from mfubench.analysis.roofline import roofline


@dataclass(frozen=True)
class Limits:
    """Capacity and crossover figures of a setup at one context length."""

    context: int
    kv_bytes_per_sequence: float  # per GPU
    free_bytes_per_gpu: float
    max_batch: int
    compute_bound_batch: int | None


def max_batch(setup: Setup, context: int, memory_fraction: float = VLLM_GPU_MEMORY_UTILIZATION) -> tuple[int, float, float]:
    """(sequences that fit, KV bytes per sequence, free bytes) per GPU at ``context`` tokens
    (:func:`mfubench.analysis.feasibility.fit`)."""
    f = fit(setup, context, memory_fraction)
    return f.max_batch, f.kv_bytes_per_sequence, f.free_bytes_per_gpu


def compute_bound_batch(setup: Setup, context: int, limit: int = 1 << 20) -> int | None:
    """Smallest decode batch at ``context`` whose step is compute-bound (bisection)."""
    machine = setup.machine()
    if machine is None:
        return None

    def compute_bound(batch: int) -> bool:
        w = decode_work(setup, batch, context, 1)
        r = roofline(machine, w.flops_per_gpu, w.bytes_per_gpu)
        return r.compute_s >= r.memory_s

    if not compute_bound(limit):
        return None
    lo, hi = 1, limit
    if compute_bound(lo):
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if compute_bound(mid):
            hi = mid
        else:
            lo = mid
    return hi


def limits(setup: Setup, context: int) -> Limits:
    fits, per_seq, free = max_batch(setup, context)
    return Limits(context, per_seq, free, fits, compute_bound_batch(setup, context))
