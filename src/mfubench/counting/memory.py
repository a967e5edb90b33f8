"""Parameters, weight bytes, KV-cache bytes and the bytes a step of inference moves.

Bytes are decimal (SI) and, unless a name says ``total``, per GPU under ``tp``-way tensor
parallelism (see :mod:`mfubench.counting.components` for the sharding).

What a step moves (the numerator of MBU)::

    read  = every weight the step touches, once
          + the embedding rows of its tokens
          + the KV cache each sequence attends, per layer: min(context, window) tokens
          + a sparse layer's indexer keys: every cached key (the attention reads only top_k)
          + a fixed-state layer's state, once per sequence (flat in the context)
    write = the K and V (MLA: the latent) of every new token, in every attention layer
          + a fixed-state layer's state, once per sequence

For MoE layers a step touches the *expected number of distinct experts* its ``T`` tokens route
to, with uniform routing: ``E * (1 - (1 - k/E) ** T)``. Activations are not counted: they are
O(tokens * hidden), small beside the weights in decode; prefill is compute-bound regardless.
"""

from __future__ import annotations

from dataclasses import dataclass

from mfubench.counting.components import check_tp, components, kv_heads_per_gpu, shard_fraction
from mfubench.counting.kinds import (
    conv_state_elements,
    index_key_bytes,
    index_keys_sum,
    keys_kept,
    keys_sum,
    recurrent_state_elements,
)
from mfubench.counting.workload import DecodeStep, PrefillChunk
from mfubench.model.quant import DTYPE_BYTES, normalize_dtype
from mfubench.model.spec import ModelSpec


def param_breakdown(spec: ModelSpec) -> dict[str, int]:
    """Parameters by component (whole model); their sum equals ``sum(p.numel())`` of the HF model."""
    return {c.key: c.params for c in components(spec) if c.params}


def params_total(spec: ModelSpec) -> int:
    """All parameters, embeddings included (tied embeddings once)."""
    return sum(param_breakdown(spec).values())


def params_active(spec: ModelSpec) -> int:
    """Parameters a token uses: all but the routed experts it is not sent to
    (``top_k`` of ``num_experts`` in each MoE layer); embeddings included."""
    active = 0
    for c in components(spec):
        if c.key == "experts":
            frac = [m.top_k / m.num_experts for m in c.moe_layers]
            per_layer = [c.params / len(c.moe_layers)] * len(c.moe_layers)
            active += round(sum(p * f for p, f in zip(per_layer, frac, strict=True)))
        else:
            active += c.params
    return active


def params_active_non_embedding(spec: ModelSpec) -> int:
    """:func:`params_active` without the input-embedding table (a token reads one row of it),
    as DeepSeek and OpenAI quote "active" parameters; tied embeddings stay, as the LM head."""
    if spec.tie_word_embeddings:
        return params_active(spec)
    return params_active(spec) - spec.vocab_size * spec.hidden_size


def weight_bytes(spec: ModelSpec, tp: int = 1) -> dict[str, float]:
    """Bytes of the stored weights by component, per GPU (scales of quantized weights included)."""
    check_tp(spec, tp)
    dtype_bytes = DTYPE_BYTES[spec.weights.dtype]
    out: dict[str, float] = {}
    for c in components(spec):
        size = c.weights * spec.weights.bytes_per_param(c.kind) + c.biases * dtype_bytes
        if size:
            out[c.key] = size * shard_fraction(spec, c.sharding, tp)
    return out


def kv_bytes_per_token_layer(spec: ModelSpec, kv_dtype: str | None = None, tp: int = 1) -> float:
    """KV-cache bytes one token adds in one layer, per GPU.

    GQA/MHA: ``kv_heads_per_gpu * (head_dim + v_head_dim) * bytes``; MLA: the latent
    ``(kv_lora_rank + qk_rope_head_dim) * bytes``, replicated on every GPU.
    """
    a = spec.attention
    nbytes = kv_dtype_bytes(spec, kv_dtype)
    if a.is_mla:
        assert a.kv_lora_rank is not None
        return float((a.kv_lora_rank + a.qk_rope_head_dim) * nbytes)
    return float(kv_heads_per_gpu(spec, tp) * (a.head_dim + a.v_head_dim) * nbytes)


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str | None = None, tp: int = 1) -> float:
    """KV-cache bytes one token adds across all layers with a KV cache, per GPU (a hybrid's
    fixed-state layers add none: see :func:`state_bytes_per_sequence`)."""
    return kv_bytes_per_token_layer(spec, kv_dtype, tp) * _kv_layers(spec) + _index_bytes(spec)


def _kv_layers(spec: ModelSpec) -> int:
    return sum(layer.attention is not None for layer in spec.layers)


def _index_bytes(spec: ModelSpec) -> int:
    """Bytes of the indexer keys one token adds over the sparse layers (replicated under TP)."""
    return sum(index_key_bytes(lyr.attention) for lyr in spec.layers if lyr.attention is not None)


def kv_dtype_bytes(spec: ModelSpec, kv_dtype: str | None) -> float:
    """Bytes per KV element: ``kv_dtype`` if given (``fp8``, ``bf16``, ``nvfp4``: 0.5 + 1/16 with
    its E4M3 scale per 16, :data:`~mfubench.model.formats.KV_FORMAT_BYTES`), else the engine's
    default for the weights (a GGUF file's: llama.cpp's f16), else the model dtype."""
    from mfubench.model.formats import KV_FORMAT_BYTES

    if kv_dtype and kv_dtype.strip().lower() in KV_FORMAT_BYTES:
        return KV_FORMAT_BYTES[kv_dtype.strip().lower()]
    return DTYPE_BYTES[normalize_dtype(kv_dtype) if kv_dtype else default_kv_dtype(spec)]


def default_kv_dtype(spec: ModelSpec) -> str:
    """The KV cache's dtype when none is given: the weights' own ``kv_dtype`` where they name
    one (:class:`~mfubench.model.gguf_weights.GGUFWeights`), else the model dtype."""
    return str(getattr(spec.weights, "kv_dtype", None) or spec.weights.dtype)


def state_bytes_per_sequence(spec: ModelSpec, tp: int = 1) -> float:
    """Bytes of the fixed-size state one sequence keeps in the fixed-state layers, per GPU::

        sum_l (conv_elements_l * dtype_bytes + recurrent_elements_l * state_dtype_bytes) / tp

    (:mod:`mfubench.counting.kinds`): the convolution state in the model dtype, the recurrent
    state in ``spec.state_dtype`` (vLLM's ``mamba_cache_dtype``/``mamba_ssm_cache_dtype``: the
    model dtype unless the model says otherwise), split by heads. The same at every context
    length; 0 for a model without such layers."""
    mixers = [m for layer in spec.layers for m in layer.state_mixers]
    if not mixers:
        return 0.0
    conv = sum(conv_state_elements(m, spec.hidden_size) for m in mixers)
    recurrent = sum(recurrent_state_elements(m) for m in mixers)
    state_dtype = spec.state_dtype or spec.weights.dtype
    return float(conv * DTYPE_BYTES[spec.weights.dtype] + recurrent * DTYPE_BYTES[state_dtype]) / tp


def kv_cache_bytes(spec: ModelSpec, context: int, kv_dtype: str | None = None, tp: int = 1) -> float:
    """Cache bytes one sequence of ``context`` tokens holds, per GPU: the KV of every attention
    layer (a sliding-window or chunked layer keeps at most ``window``/``chunk`` tokens), plus
    the fixed-size state of the fixed-state layers (:func:`state_bytes_per_sequence`)."""
    per_layer = kv_bytes_per_token_layer(spec, kv_dtype, tp)
    kv = sum(per_layer * keys_kept(lyr.attention, context)
             for lyr in spec.layers if lyr.attention is not None)
    return kv + _index_bytes(spec) * context + state_bytes_per_sequence(spec, tp)


def expected_experts(num_experts: int, top_k: int, tokens: float) -> float:
    """Expected distinct experts ``tokens`` tokens route to, ``top_k`` each, uniformly:
    ``E * (1 - (1 - k/E) ** T)``."""
    if tokens <= 0:
        return 0.0
    untouched: float = (1.0 - top_k / num_experts) ** tokens
    return num_experts * (1.0 - untouched)


@dataclass(frozen=True)
class StepBytes:
    """Bytes a step reads and writes, by component, per GPU."""

    read: dict[str, float]
    write: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.read.values()) + sum(self.write.values())


def _weights_touched(spec: ModelSpec, tokens: int, tp: int) -> dict[str, float]:
    """Weight bytes read by a forward pass over ``tokens`` tokens, per GPU."""
    stored = weight_bytes(spec, tp)
    out: dict[str, float] = {}
    for c in components(spec):
        size = stored.get(c.key, 0.0)
        if c.key == "embed_tokens":
            size = size / spec.vocab_size * min(tokens, spec.vocab_size)  # only the rows looked up
        elif c.key == "lm_head" and spec.tie_word_embeddings:
            size = stored["embed_tokens"]  # the tied matrix is read in full by the LM head
        elif c.key == "experts":
            fractions = [expected_experts(m.num_experts, m.top_k, tokens) / m.num_experts
                         for m in c.moe_layers]
            size = size * sum(fractions) / len(fractions)
        if size:
            out[c.key] = size
    return out


def _kv_read(spec: ModelSpec, groups: tuple[tuple[int, int], ...], kv_dtype: str | None, tp: int) -> float:
    """KV bytes read when ``n`` sequences attend ``c`` tokens each, for every ``(c, n)`` of
    ``groups`` (window-capped per layer); the cost is per distinct length, not per sequence."""
    return sum(n * _kv_read_positions(spec, c, c, kv_dtype, tp) for c, n in groups)


def _kv_read_positions(spec: ModelSpec, first: int, last: int, kv_dtype: str | None, tp: int) -> float:
    """KV bytes one sequence reads when its queries at positions ``first..last`` attend: each
    attention layer's attended keys (:func:`~mfubench.counting.kinds.keys_sum`) and a sparse
    layer's indexer keys (every earlier one)."""
    per_layer = kv_bytes_per_token_layer(spec, kv_dtype, tp)
    return sum(per_layer * keys_sum(lyr.attention, first, last)
               + index_key_bytes(lyr.attention) * index_keys_sum(lyr.attention, first, last)
               for lyr in spec.layers if lyr.attention is not None)


def decode_bytes(spec: ModelSpec, step: DecodeStep, kv_dtype: str | None = None, tp: int = 1) -> StepBytes:
    """Bytes one decode step moves per GPU: weights touched once, each sequence's KV (its cache
    plus the new token, capped by the window), the new tokens' KV written."""
    read = _weights_touched(spec, step.batch, tp)
    read["kv_cache"] = _kv_read(spec, tuple((c + 1, n) for c, n in step.groups), kv_dtype, tp)
    write = {"kv_cache": kv_bytes_per_token(spec, kv_dtype, tp) * step.batch}
    _add_state(spec, read, write, step.batch, step.batch, tp)
    return StepBytes(read, write)


def _add_state(spec: ModelSpec, read: dict[str, float], write: dict[str, float],
               reads: int, writes: int, tp: int) -> None:
    """Book ``reads`` and ``writes`` passes over one sequence's fixed state (key ``state``),
    for a model that has fixed-state layers."""
    state = state_bytes_per_sequence(spec, tp)
    if state:
        read["state"] = state * reads
        write["state"] = state * writes


def decode_span_bytes(
    spec: ModelSpec, batch: int, first_context: int, steps: int, kv_dtype: str | None = None,
    tp: int = 1,
) -> StepBytes:
    """Bytes of ``steps`` consecutive decode steps of ``batch`` sequences whose cache holds
    ``first_context`` tokens before the first step, per GPU: :func:`decode_bytes` summed over the
    steps in closed form (weights once per step, the KV read growing by one token per step)."""
    if steps <= 0:
        return StepBytes({}, {})
    read = {k: v * steps for k, v in _weights_touched(spec, batch, tp).items()}
    read["kv_cache"] = batch * _kv_read_positions(spec, first_context + 1, first_context + steps,
                                                  kv_dtype, tp)
    write = {"kv_cache": kv_bytes_per_token(spec, kv_dtype, tp) * batch * steps}
    _add_state(spec, read, write, batch * steps, batch * steps, tp)
    return StepBytes(read, write)


def prefill_bytes(spec: ModelSpec, chunk: PrefillChunk, kv_dtype: str | None = None, tp: int = 1) -> StepBytes:
    """Bytes a prefill chunk moves per GPU: weights once for the whole batch, each sequence's KV
    once (cached and new tokens, capped by the window), the new tokens' KV written."""
    tokens = chunk.new_tokens * chunk.batch
    read = _weights_touched(spec, tokens, tp)
    context = chunk.cached_tokens + chunk.new_tokens
    read["kv_cache"] = _kv_read_kept(spec, context, chunk.batch, kv_dtype, tp)
    write = {"kv_cache": kv_bytes_per_token(spec, kv_dtype, tp) * tokens}
    # a fixed state is read where the chunk continues a sequence, and written once at its end
    _add_state(spec, read, write, chunk.batch if chunk.cached_tokens else 0, chunk.batch, tp)
    if "state" in read and not read["state"]:
        del read["state"]
    return StepBytes(read, write)


def _kv_read_kept(spec: ModelSpec, context: int, sequences: int, kv_dtype: str | None, tp: int) -> float:
    """KV bytes read when ``sequences`` sequences read their whole kept cache of ``context``
    tokens once (a prefill chunk), per layer ``keys_kept(context)``."""
    per_layer = kv_bytes_per_token_layer(spec, kv_dtype, tp)
    kept = sum(keys_kept(lyr.attention, context) for lyr in spec.layers if lyr.attention is not None)
    return sequences * (per_layer * kept + _index_bytes(spec) * context)

