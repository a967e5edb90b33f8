"""FLOPs of inference, by component, under a named convention.

FLOPs are 2 per multiply-add. Counted: every matmul with a weight (projections, MLPs, router,
experts actually routed to, LM head) and the two attention matmuls (Q.K^T and P.V). Not counted:
embedding look-ups, norms, activations, softmax, rotary embeddings, residual adds and the
router's top-k, which are O(hidden) per token, not O(hidden^2).

For ``t`` tokens through the weights, ``p_l`` query-key pairs in layer ``l`` and ``r`` LM-head rows::

    flops[key]         = 2 * t * macs_per_token[key]          (key != lm_head)
    flops["attn_scores"] = sum_l 2 * heads * head_dim   * p_l
    flops["attn_values"] = sum_l 2 * heads * v_head_dim * p_l
    flops["lm_head"]   = 2 * r * hidden * vocab

``p_l`` and ``r`` follow the convention (see :mod:`mfubench.counting.workload`) and the layer's
kind (:mod:`mfubench.counting.kinds`: full, sliding, chunked or sparse attention; 0 in a
fixed-state layer). A fixed-state layer adds its state update, the same under every convention
(it has no query-key pairs)::

    flops["gdn_state"] = 2 * t * 3 * Hv * dk * dv      (gated delta, per layer)
    flops["ssm_scan"]  = 2 * t * 2 * H * P * N         (Mamba2, per layer)

A sparse-attention layer (DeepSeek-V3.2) attends ``min(t, top_k)`` keys per query (its ``p_l``)
and its indexer scores every earlier key, ``q_l`` pairs (the triangle, or the rectangle under
``palm``/``vllm``)::

    flops["index_scores"] = sum_l 2 * index_heads * (index_head_dim + 1) * q_l
 All figures are
for the whole model (all GPUs); :func:`per_gpu` gives what one GPU computes under TP.

MLA (DeepSeek-V3) decode is counted in the *absorbed* form that serving engines run against the
latent cache (vLLM, SGLang, FlashMLA): ``W_UK`` folds into the query and ``W_UV`` into the
output, so a pair costs ``2 * heads * (kv_lora_rank + rope_dim)`` for scores and
``2 * heads * kv_lora_rank`` for values, and the per-token fold-ins cost exactly what
``kv_b_proj`` costs on the new token. Prefill is counted decompressed (``kv_b_proj`` on the new
tokens, pairs of ``qk_head_dim`` and ``v_head_dim``), as engines run it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mfubench.counting.components import check_tp, components, shard_fraction
from mfubench.counting.kinds import (
    index_keys_sum,
    index_macs_per_pair,
    index_pairs,
    keys_sum,
    mixer_prefill_pairs,
    state_key,
    state_macs_per_token,
)
from mfubench.counting.workload import (
    Convention,
    DecodeStep,
    PrefillChunk,
    Request,
    lm_head_rows_prefill,
)
from mfubench.model.spec import ModelSpec

Breakdown = dict[str, int]


def breakdown(
    spec: ModelSpec,
    tokens: int,
    pairs_per_layer: Sequence[int],
    lm_rows: int,
    *,
    absorbed: bool = False,
    index_pairs_per_layer: Sequence[int] | None = None,
) -> Breakdown:
    """FLOPs of ``tokens`` token positions through the weights, ``pairs_per_layer[l]`` attention
    pairs in layer ``l`` and ``lm_rows`` rows of the LM head (``absorbed``: MLA decode form);
    ``index_pairs_per_layer[l]``: the pairs a sparse layer's indexer scores."""
    if len(pairs_per_layer) != spec.num_layers:
        raise ValueError("pairs_per_layer needs one entry per layer")
    a = spec.attention
    out: Breakdown = {}
    for comp in components(spec):
        if comp.key == "lm_head":
            out["lm_head"] = 2 * lm_rows * comp.macs_per_token
        elif comp.macs_per_token:
            out[comp.key] = 2 * tokens * comp.macs_per_token
    for layer in spec.layers:
        for mixer in layer.state_mixers:
            macs = state_macs_per_token(mixer)
            if macs:
                key = state_key(mixer)
                out[key] = out.get(key, 0) + 2 * tokens * macs
    pairs = sum(pairs_per_layer)
    score_dim, value_dim = a.head_dim, a.v_head_dim
    if absorbed and a.kv_lora_rank is not None:
        score_dim, value_dim = a.kv_lora_rank + a.qk_rope_head_dim, a.kv_lora_rank
    out["attn_scores"] = 2 * a.num_heads * score_dim * pairs
    out["attn_values"] = 2 * a.num_heads * value_dim * pairs
    indexed = [layer.attention for layer in spec.layers
               if layer.attention is not None and index_macs_per_pair(layer.attention)]
    if indexed:
        index = index_pairs_per_layer or [0] * spec.num_layers
        out["index_scores"] = sum(
            2 * index_macs_per_pair(layer.attention) * n
            for layer, n in zip(spec.layers, index, strict=True) if layer.attention is not None
        )
    return out


def total(flops: Mapping[str, float]) -> int:
    """The sum of a breakdown."""
    return int(sum(flops.values()))


def prefill(spec: ModelSpec, chunk: PrefillChunk, convention: Convention = "causal") -> Breakdown:
    """FLOPs of ``chunk.batch`` sequences each prefilling ``chunk.new_tokens`` after
    ``chunk.cached_tokens`` cached ones."""
    pairs = [
        mixer_prefill_pairs(layer.attention, chunk, convention) * chunk.batch
        if layer.attention is not None else 0
        for layer in spec.layers
    ]
    rows = lm_head_rows_prefill(chunk, convention) * chunk.batch
    index = [index_pairs(layer.attention, chunk, convention) * chunk.batch
             if layer.attention is not None else 0 for layer in spec.layers]
    return breakdown(spec, chunk.new_tokens * chunk.batch, pairs, rows, index_pairs_per_layer=index)


def decode(spec: ModelSpec, step: DecodeStep, convention: Convention = "causal") -> Breakdown:
    """FLOPs of one decode step: every sequence adds one token to its cache (``step.groups``).

    The same under every convention: the new token attends ``min(C + 1, window)`` keys and is
    sampled (one LM-head row per sequence).
    """
    del convention  # identical by definition; the argument keeps the call sites uniform
    pairs = [
        sum(n * keys_sum(layer.attention, c + 1, c + 1) for c, n in step.groups)
        if layer.attention is not None else 0
        for layer in spec.layers
    ]
    index = [
        sum(n * index_keys_sum(layer.attention, c + 1, c + 1) for c, n in step.groups)
        if layer.attention is not None else 0
        for layer in spec.layers
    ]
    return breakdown(spec, step.batch, pairs, step.batch, absorbed=True, index_pairs_per_layer=index)


def decode_span(spec: ModelSpec, batch: int, first_context: int, steps: int) -> Breakdown:
    """FLOPs of ``steps`` consecutive decode steps of ``batch`` sequences whose cache holds
    ``first_context`` tokens before the first step (closed form, no loop over steps)."""
    if steps <= 0:
        return breakdown(spec, 0, [0] * spec.num_layers, 0)
    pairs = [
        batch * keys_sum(layer.attention, first_context + 1, first_context + steps)
        if layer.attention is not None else 0
        for layer in spec.layers
    ]
    index = [
        batch * index_keys_sum(layer.attention, first_context + 1, first_context + steps)
        if layer.attention is not None else 0
        for layer in spec.layers
    ]
    return breakdown(spec, batch * steps, pairs, batch * steps, absorbed=True,
                     index_pairs_per_layer=index)


def request(spec: ModelSpec, req: Request, convention: Convention = "causal") -> Breakdown:
    """FLOPs of ``req.batch`` whole requests: prefill of ``input_tokens`` (which samples the
    first output token), then ``output_tokens - 1`` decode steps."""
    pre = prefill(spec, PrefillChunk(req.input_tokens, 0, req.batch), convention)
    dec = decode_span(spec, req.batch, req.input_tokens, req.output_tokens - 1)
    return add(pre, dec)


def add(a: Mapping[str, int], b: Mapping[str, int]) -> Breakdown:
    """Two breakdowns summed key by key."""
    return {k: a.get(k, 0) + b.get(k, 0) for k in dict.fromkeys([*a, *b])}


def per_gpu(spec: ModelSpec, flops: Mapping[str, int], tp: int) -> dict[str, float]:
    """What one of ``tp`` GPUs computes of a whole-model breakdown (replicated parts in full)."""
    check_tp(spec, tp)
    share = {c.key: shard_fraction(spec, c.sharding, tp) for c in components(spec)}
    share["attn_scores"] = share["attn_values"] = 1.0 / tp  # heads are split
    share["index_scores"] = 1.0  # vLLM replicates DeepSeek-V3.2's indexer
    return {k: v * share.get(k, 1.0 / tp) for k, v in flops.items()}
