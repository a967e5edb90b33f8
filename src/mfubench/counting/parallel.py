"""What one GPU computes, stores and moves under a parallel layout (:mod:`.layout`).

Everything is counted per pipeline stage, on the stage's own layers (a :class:`ModelSpec` of
those layers), for the busiest GPU of the stage. With a global batch of ``B`` sequences over
``D`` DP ranks, a DP rank serves ``b = ceil(B / D)`` of them (``B / D`` when ``D`` divides it)::

    flops[k]      = per_gpu_tp(flops_k(stage, b))                       k not routed experts
    flops[experts]= flops_experts(stage, B) / (T D) * s                 s = imbalance if E > 1
    weights[k]    = weight_bytes(stage, T)[k]                           k not routed experts
    weights[experts] = W_experts(stage) / (T D)                         E/ep experts, 1/expert_tp each
    read[experts] = weights[experts] * (1/M) sum_l n_l(s B_tok) / E_l   n = E (1 - (1 - k/E)^x)
    kv per GPU    = b * kv_cache_bytes(stage, context, T)

where ``B_tok`` is the tokens of the whole step (all DP ranks: the MoE layer takes them all),
``n_l(x)`` the expected distinct experts ``x`` tokens route to in MoE layer ``l`` (uniform
routing) and ``M`` the stage's MoE layers. An EP rank holds ``E/ep`` experts; the expected
share of them a step touches is the same fraction ``n/E``, so the mean GPU's bytes do not depend
on ``ep``; the busiest EP rank's do, through ``imbalance`` (it receives ``s`` times the mean
routed pairs, as ``s B_tok`` tokens routed uniformly would send it).

The first stage holds the embedding, the last the final norm and the LM head (with tied
embeddings and ``pp > 1`` the last stage holds its own copy of the table, as vLLM does:
``vllm/model_executor/models/llama.py``, ``embed_tokens`` on the first rank and, tied, on the
last). Summed over the stages and the GPUs of each, the weights are the whole model's (plus that
copy); for ``Layout(tp=T)`` every figure is today's (:mod:`.memory`, :func:`.flops.per_gpu`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache

from mfubench.counting import flops as fl
from mfubench.counting import memory
from mfubench.counting.components import check_tp, components
from mfubench.counting.layout import Layout, stage_layers
from mfubench.counting.workload import Convention, DecodeStep, PrefillChunk
from mfubench.errors import MfubenchError
from mfubench.model.quant import DTYPE_BYTES
from mfubench.model.spec import ModelSpec, MoE


def check_layout(spec: ModelSpec, layout: Layout) -> None:
    """Reject a layout the model cannot be split into, naming the flag."""
    check_tp(spec, layout.tp)
    stage_layers(spec.num_layers, layout.pp)
    moes = [layer.ffn for layer in spec.layers if isinstance(layer.ffn, MoE)]
    if layout.ep > 1 and not moes:
        raise MfubenchError(f"--ep {layout.ep} with {spec.name}: the model has no routed experts")
    for m in {m.num_experts for m in moes}:
        if m % layout.ep:
            raise MfubenchError(f"--ep {layout.ep} does not divide the {m} routed experts")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@cache
def stage_spec(spec: ModelSpec, pp: int, stage: int) -> ModelSpec:
    """The model of pipeline stage ``stage`` of ``pp``: its layers only (the whole model for
    ``pp == 1``)."""
    if pp == 1:
        return spec
    layers = stage_layers(spec.num_layers, pp)[stage]
    return replace(spec, layers=spec.layers[layers.start:layers.stop])


@dataclass(frozen=True)
class StageCounts:
    """One GPU of one pipeline stage (the busiest of its DP and EP ranks).

    Attributes:
        stage / layers: the stage and its decoder layers.
        flops: FLOPs this GPU computes, by component.
        read / write: bytes it reads and writes, by component (see :class:`memory.StepBytes`).
        weight_bytes: the weights it stores, by component.
        rank_batch: sequences its DP rank serves.
    """

    stage: int
    layers: range
    flops: dict[str, float]
    read: dict[str, float]
    write: dict[str, float]
    weight_bytes: dict[str, float]
    rank_batch: int

    @property
    def flops_total(self) -> float:
        return sum(self.flops.values())

    @property
    def bytes_total(self) -> float:
        return sum(self.read.values()) + sum(self.write.values())


def _edge(spec: ModelSpec, layout: Layout, stage: int, d: dict[str, float],
          nbytes: bool) -> dict[str, float]:
    """``d`` without what only the first / last stage has, on the other stages: the embedding
    (first), the LM head and, for bytes, the final norm (last)."""
    if layout.pp == 1:
        return d
    out = dict(d)
    if stage != 0:
        out.pop("embed_tokens", None)
    if stage != layout.pp - 1:
        out.pop("lm_head", None)
        if nbytes and "norms" in out:  # the final norm lives on the last stage
            out["norms"] -= spec.hidden_size * DTYPE_BYTES[spec.weights.dtype]
    return out


def stage_weight_bytes(spec: ModelSpec, layout: Layout, stage: int) -> dict[str, float]:
    """Weights one GPU of ``stage`` stores, by component (module doc)."""
    sub = stage_spec(spec, layout.pp, stage)
    stored = memory.weight_bytes(sub, layout.tp)
    if "experts" in stored:
        stored["experts"] = memory.weight_bytes(sub, 1)["experts"] * (1.0 / layout.moe_group)
    out = _edge(spec, layout, stage, stored, nbytes=True)
    if layout.pp > 1 and stage == layout.pp - 1 and spec.tie_word_embeddings:
        out["lm_head"] = out.get("lm_head", 0.0) + stored["embed_tokens"]  # its own copy
    return out


def expert_read_bytes(sub: ModelSpec, layout: Layout, tokens: float) -> float:
    """Routed-expert bytes one GPU reads in a forward pass over ``tokens`` tokens (all DP
    ranks'): its stored experts ``W / (T D)`` times the mean over MoE layers of the fraction
    ``n_l / E_l`` they reach, ``n = E (1 - (1 - k/E)^tokens)`` (:func:`memory.expected_experts`)."""
    moes = next((c.moe_layers for c in components(sub) if c.key == "experts"), ())
    if not moes:
        return 0.0
    fractions = [memory.expected_experts(m.num_experts, m.top_k, tokens) / m.num_experts
                 for m in moes]
    stored = memory.weight_bytes(sub, 1)["experts"] * (1.0 / layout.moe_group)
    return stored * sum(fractions) / len(fractions)


def _skew(layout: Layout) -> float:
    return layout.imbalance if layout.ep > 1 else 1.0


def _finish(spec: ModelSpec, layout: Layout, stage: int, f_rank: Mapping[str, int],
            f_global: Mapping[str, int], read: dict[str, float], write: dict[str, float],
            step_tokens: int, rank_batch: int) -> StageCounts:
    sub = stage_spec(spec, layout.pp, stage)
    per = fl.per_gpu(sub, f_rank, layout.tp)
    skew = _skew(layout)
    if "experts" in f_global:
        per["experts"] = f_global["experts"] * (1.0 / layout.moe_group) * skew
    weights = stage_weight_bytes(spec, layout, stage)
    if "experts" in read:
        read["experts"] = expert_read_bytes(sub, layout, step_tokens * skew)
    read = _edge(spec, layout, stage, read, nbytes=True)
    per = _edge(spec, layout, stage, per, nbytes=False)
    return StageCounts(stage, stage_layers(spec.num_layers, layout.pp)[stage], per, read, write,
                       weights, rank_batch)


def prefill_stage(spec: ModelSpec, layout: Layout, chunk: PrefillChunk, stage: int,
                  convention: Convention = "causal", kv_dtype: str | None = None) -> StageCounts:
    """One GPU of ``stage`` prefilling ``chunk`` (``chunk.batch`` is the whole deployment's
    batch, split over the DP ranks)."""
    sub = stage_spec(spec, layout.pp, stage)
    b = ceil_div(chunk.batch, layout.dp)
    rank = replace(chunk, batch=b)
    f_rank = fl.prefill(sub, rank, convention)
    f_global = f_rank if layout.dp == 1 else fl.prefill(sub, chunk, convention)
    nbytes = memory.prefill_bytes(sub, rank, kv_dtype, layout.tp)
    return _finish(spec, layout, stage, f_rank, f_global, dict(nbytes.read), dict(nbytes.write),
                   chunk.new_tokens * chunk.batch, b)


def decode_span_stage(spec: ModelSpec, layout: Layout, batch: int, first_context: int, steps: int,
                      stage: int, kv_dtype: str | None = None) -> StageCounts:
    """One GPU of ``stage`` over ``steps`` decode steps of ``batch`` sequences (the whole
    deployment's, split over the DP ranks) whose caches hold ``first_context`` tokens first."""
    sub = stage_spec(spec, layout.pp, stage)
    b = ceil_div(batch, layout.dp)
    f_rank = fl.decode_span(sub, b, first_context, steps)
    f_global = f_rank if layout.dp == 1 else fl.decode_span(sub, batch, first_context, steps)
    nbytes = memory.decode_span_bytes(sub, b, first_context, steps, kv_dtype, layout.tp)
    read = dict(nbytes.read)
    counts = _finish(spec, layout, stage, f_rank, f_global, read, dict(nbytes.write), batch, b)
    if "experts" in counts.read:  # once per step: the span's reads are the step's times steps
        counts.read["experts"] *= steps
    return counts


def decode_stage(spec: ModelSpec, layout: Layout, step: DecodeStep, stage: int,
                 kv_dtype: str | None = None) -> StageCounts:
    """One GPU of ``stage`` in one decode step of ``step`` (uniform contexts: every DP rank
    serves an equal share)."""
    if len(step.groups) != 1:
        raise MfubenchError("a layout's decode step needs one context length for every sequence")
    ((context, batch),) = step.groups
    return decode_span_stage(spec, layout, batch, context, 1, stage, kv_dtype)


def kv_bytes_per_gpu(spec: ModelSpec, layout: Layout, batch: int, context: int,
                     kv_dtype: str | None = None, stage: int = 0) -> float:
    """Cache bytes one GPU of ``stage`` holds for a deployment batch of ``batch`` sequences of
    ``context`` tokens: its DP rank's ``ceil(batch / dp)`` sequences times one sequence's
    cache under ``tp`` (:func:`memory.kv_cache_bytes`)."""
    sub = stage_spec(spec, layout.pp, stage)
    return ceil_div(batch, layout.dp) * memory.kv_cache_bytes(sub, context, kv_dtype, layout.tp)
