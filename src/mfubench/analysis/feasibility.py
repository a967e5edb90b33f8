"""Could a point have happened? Context and memory, checked on every row.

A measured or predicted point is **infeasible** when the layout could not have served it as
described, and then its MFU and MBU are not utilisations (a row of batch 4096 on four H100s
that hold 206 such sequences "reached" MFU 299 %). Two checks, each a flag in the style of
``above-peak``:

``exceeds-context``
    ``input_tokens + output_tokens`` beyond the longest context: the engine's
    ``max_model_len`` where known, else the model's ``max_position_embeddings``.
``exceeds-memory``
    more sequences than one replica's memory holds at the point's final context::

        free_per_gpu = memory_fraction * capacity - weight_bytes_per_gpu
        max_batch    = floor(free_per_gpu / kv_cache_bytes_per_gpu(context))

    with ``memory_fraction`` 0.9 (vLLM's ``--gpu-memory-utilization`` default; activations and
    CUDA graphs use the rest). Weights alone above that budget make every batch infeasible.
    For a hybrid, ``kv_cache_bytes_per_gpu`` is the KV of its attention layers plus the
    fixed-size state of its linear-attention/SSM layers (:func:`memory.kv_cache_bytes`), as
    vLLM's hybrid allocator holds both per sequence.

Both are closed-form (no loop over sequences or steps). An infeasible row keeps its figures;
renderers mark them as not plain, as they mark figures above the peak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mfubench.counting import memory
from mfubench.report.units import si

if TYPE_CHECKING:
    from mfubench.analysis.phases import Setup

EXCEEDS_CONTEXT = "exceeds-context"
EXCEEDS_MEMORY = "exceeds-memory"
INFEASIBLE = (EXCEEDS_CONTEXT, EXCEEDS_MEMORY)
VLLM_GPU_MEMORY_UTILIZATION = 0.9


@dataclass(frozen=True)
class Fit:
    """What fits at one context: sequences per replica, KV bytes each, free bytes (per GPU)."""

    max_batch: int
    kv_bytes_per_sequence: float
    free_bytes_per_gpu: float
    weight_bytes_per_gpu: float
    budget_bytes_per_gpu: float


def fit(setup: Setup, context: int, memory_fraction: float = VLLM_GPU_MEMORY_UTILIZATION) -> Fit:
    """Sequences of ``context`` tokens whose KV cache fits beside the weights (module doc);
    under a parallel layout, the whole deployment's (:func:`.layout_work.layout_fit`)."""
    if setup.layout is not None:
        from mfubench.analysis.layout_work import layout_fit

        return layout_fit(setup, context, memory_fraction)
    spec, tp = setup.spec, setup.tp
    budget = memory_fraction * setup.hardware.memory_capacity
    weights = sum(memory.weight_bytes(spec, tp).values())
    free = budget - weights
    per_seq = memory.kv_cache_bytes(spec, context, setup.kv_dtype, tp)
    fits = int(free // per_seq) if free > 0 and per_seq > 0 else 0
    return Fit(fits, per_seq, free, weights, budget)


def max_context(setup: Setup) -> tuple[int | None, str]:
    """The longest context and where it comes from (the engine's, else the model's)."""
    if setup.max_model_len is not None:
        return setup.max_model_len, "the engine's max_model_len"
    if setup.spec.max_position_embeddings is not None:
        return setup.spec.max_position_embeddings, "the model's max_position_embeddings"
    return None, "unknown"


def longest_context_that_fits(setup: Setup, batch: int) -> int:
    """The longest context at which ``batch`` sequences fit in memory (0 if none; bisection
    over the context, a handful of closed-form counts)."""
    limit, _ = max_context(setup)
    hi = limit if limit is not None else 1 << 40
    if fit(setup, 1).max_batch < batch:
        return 0
    if fit(setup, hi).max_batch >= batch:
        return hi
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fit(setup, mid).max_batch >= batch:
            lo = mid
        else:
            hi = mid
    return lo


def feasibility_flags(setup: Setup, batch: int, input_tokens: float, output_tokens: float) -> list[str]:
    """The ``exceeds-context`` and ``exceeds-memory`` flags of a point, with the figures."""
    flags: list[str] = []
    context = round(input_tokens + output_tokens)
    limit, source = max_context(setup)
    if limit is not None and context > limit:
        flags.append(f"{EXCEEDS_CONTEXT}: {input_tokens:g} in + {output_tokens:g} out = {context} "
                     f"tokens, beyond {source} of {limit}: no engine serves it; not a utilisation")
    f = fit(setup, min(context, 1 << 40))
    if batch > f.max_batch:
        if f.free_bytes_per_gpu <= 0:
            why = (f"the weights alone ({si(f.weight_bytes_per_gpu, 'B')} per GPU) exceed "
                   f"{VLLM_GPU_MEMORY_UTILIZATION:.0%} of its memory ({si(f.budget_bytes_per_gpu, 'B')})")
        else:
            why = (f"memory holds {f.max_batch} sequences of {context} tokens per replica "
                   f"({si(f.kv_bytes_per_sequence, 'B')} of KV each beside "
                   f"{si(f.weight_bytes_per_gpu, 'B')} of weights, per GPU, in "
                   f"{VLLM_GPU_MEMORY_UTILIZATION:.0%} of {si(setup.hardware.memory_capacity, 'B')})")
        flags.append(f"{EXCEEDS_MEMORY}: batch {batch} cannot be in flight on "
                     f"{setup.hardware.name}: {why}; not a utilisation")
    return flags
