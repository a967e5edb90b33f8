"""The matrices of a model, enumerated once: parameters, multiply-adds per token, TP sharding.

Every other count (parameters, weight bytes, FLOPs, bytes moved) derives from this one list, so
they cannot disagree. Components are summed over layers and keyed by name:

=================  =============================================================================
key                what it is
=================  =============================================================================
``embed_tokens``   the input embedding (a look-up: parameters, no FLOPs)
``q_proj``         query projection (MLA: ``q_a_proj`` + ``q_b_proj`` when ``q_lora_rank`` is set)
``k_proj``         key projection (MLA: ``kv_a_proj``, the latent + rope key, shared by k and v)
``v_proj``         value projection (MLA: ``kv_b_proj``, latent -> per-head keys and values)
``o_proj``         attention output projection
``attn_scores``    Q.K^T: ``2 * heads * head_dim`` FLOPs per query-key pair (not a weight)
``attn_values``    P.V: ``2 * heads * v_head_dim`` FLOPs per query-key pair (not a weight)
``mlp``            dense feed-forward layers (gate, up, down)
``router``         MoE router (``hidden -> experts``), its biases
``experts``        routed experts: all of them hold parameters, ``top_k`` run per token
``shared_experts`` always-on shared experts (and Qwen2-MoE's shared-expert gate)
``norms``          every norm vector (layer norms, q/k norms, MLA latent norms, final norm) and
                   gpt-oss attention sinks: parameters, no matmul FLOPs
``lm_head``        the unembedding (tied: no parameters of its own, same FLOPs)
=================  =============================================================================

Tensor parallelism (Megatron-style, as vLLM shards): head- and intermediate-sharded matrices are
split ``tp`` ways; key/value projections hold ``ceil(kv_heads / tp)`` heads per GPU (replicated
when there are fewer KV heads than GPUs); MLA's down-projections (``q_a_proj``, ``kv_a_proj``),
routers and norms are replicated; embeddings and the LM head are split by vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

from mfubench.errors import MfubenchError
from mfubench.model.quant import WeightKind
from mfubench.model.spec import DenseMLP, ModelSpec, MoE

Sharding = Literal["split", "kv", "replicated"]


@dataclass(frozen=True)
class Component:
    """One kind of matrix, summed over the layers that have it.

    Attributes:
        key: the name in every breakdown.
        kind: how its weights are stored (see :meth:`WeightFormat.bytes_per_param`).
        weights: weight parameters (all experts for ``experts``).
        biases: bias (and other vector) parameters, stored in the model dtype.
        macs_per_token: multiply-adds one token performs through it (``top_k`` experts only).
        sharding: how tensor parallelism divides it.
        moe_layers: for ``experts``: the MoE layers, each with ``num_experts`` experts.
    """

    key: str
    kind: WeightKind
    weights: int
    biases: int
    macs_per_token: int
    sharding: Sharding
    moe_layers: tuple[MoE, ...] = ()

    @property
    def params(self) -> int:
        return self.weights + self.biases


@cache
def components(spec: ModelSpec) -> tuple[Component, ...]:
    """Every weight-bearing component of ``spec`` (attention scores/values are not weights)."""
    h, a, n_layers = spec.hidden_size, spec.attention, spec.num_layers
    hq, hkv, d, dv = a.num_heads, a.num_kv_heads, a.head_dim, a.v_head_dim
    out: list[Component] = [
        Component("embed_tokens", "embedding", spec.vocab_size * h, 0, 0, "split"),
    ]
    norm_vectors = sum(layer.num_norms for layer in spec.layers) * h + h  # + final norm
    if a.is_mla:
        assert a.kv_lora_rank is not None
        r_kv, rope, nope = a.kv_lora_rank, a.qk_rope_head_dim, a.head_dim - a.qk_rope_head_dim
        if a.q_lora_rank:
            q_a = h * a.q_lora_rank
            q_b = a.q_lora_rank * hq * d
            out.append(Component("q_a_proj", "linear", q_a * n_layers, 0, q_a * n_layers, "replicated"))
            out.append(Component("q_b_proj", "linear", q_b * n_layers, 0, q_b * n_layers, "split"))
            norm_vectors += a.q_lora_rank * n_layers
        else:
            q = h * hq * d
            out.append(Component("q_proj", "linear", q * n_layers, 0, q * n_layers, "split"))
        kv_a = h * (r_kv + rope)
        kv_b = r_kv * hq * (nope + dv)
        out.append(Component("kv_a_proj", "linear", kv_a * n_layers, 0, kv_a * n_layers, "replicated"))
        out.append(Component("kv_b_proj", "linear", kv_b * n_layers, 0, kv_b * n_layers, "split"))
        norm_vectors += r_kv * n_layers
    else:
        q, k, v = h * hq * d, h * hkv * d, h * hkv * dv
        qb, kb, vb = (hq * d, hkv * d, hkv * dv) if a.qkv_bias else (0, 0, 0)
        out.append(Component("q_proj", "linear", q * n_layers, qb * n_layers, q * n_layers, "split"))
        out.append(Component("k_proj", "linear", k * n_layers, kb * n_layers, k * n_layers, "kv"))
        out.append(Component("v_proj", "linear", v * n_layers, vb * n_layers, v * n_layers, "kv"))
        if a.qk_norm:
            norm_vectors += 2 * d * n_layers
    o = hq * dv * h
    out.append(Component("o_proj", "linear", o * n_layers, (h if a.o_bias else 0) * n_layers,
                         o * n_layers, "split"))
    if a.sinks:
        norm_vectors += hq * n_layers

    dense = [layer.ffn for layer in spec.layers if isinstance(layer.ffn, DenseMLP)]
    moes = tuple(layer.ffn for layer in spec.layers if isinstance(layer.ffn, MoE))
    if dense:
        w = sum(m.num_matrices * h * m.intermediate_size for m in dense)
        b = sum((m.num_matrices - 1) * m.intermediate_size + h for m in dense if m.bias)
        out.append(Component("mlp", "linear", w, b, w, "split"))
    if moes:
        router_w = sum(m.num_experts * h for m in moes)
        # DeepSeek's e_score_correction_bias is a buffer in HF, not a parameter: not counted.
        router_b = sum(m.num_experts for m in moes if m.router_bias)
        out.append(Component("router", "router", router_w, router_b, router_w, "replicated"))
        expert_w = sum(m.num_experts * 3 * h * m.expert_intermediate_size for m in moes)
        expert_b = sum(m.num_experts * (2 * m.expert_intermediate_size + h) for m in moes if m.expert_bias)
        expert_macs = sum(m.top_k * 3 * h * m.expert_intermediate_size for m in moes)
        out.append(Component("experts", "expert", expert_w, expert_b, expert_macs, "split", moes))
        shared_w = sum(3 * h * m.shared_intermediate_size + (h if m.shared_expert_gate else 0) for m in moes)
        if shared_w:
            out.append(Component("shared_experts", "linear", shared_w, 0, shared_w, "split"))
    out.append(Component("norms", "norm", 0, norm_vectors, 0, "replicated"))
    lm_weights = 0 if spec.tie_word_embeddings else spec.vocab_size * h
    out.append(Component("lm_head", "lm_head", lm_weights, 0, spec.vocab_size * h, "split"))
    return tuple(out)


def kv_heads_per_gpu(spec: ModelSpec, tp: int) -> int:
    """KV heads each GPU holds: ``kv_heads / tp``, or 1 (replicated) when ``tp > kv_heads``."""
    hkv = spec.attention.num_kv_heads
    if hkv >= tp:
        return hkv // tp
    return 1


def check_tp(spec: ModelSpec, tp: int) -> None:
    """Reject a tensor-parallel degree the model's heads cannot be split into."""
    a = spec.attention
    if tp < 1:
        raise MfubenchError(f"--tp must be >= 1, got {tp}")
    if a.num_heads % tp:
        raise MfubenchError(f"--tp {tp} does not divide the {a.num_heads} attention heads")
    if not a.is_mla and a.num_kv_heads >= tp and a.num_kv_heads % tp:
        raise MfubenchError(f"--tp {tp} does not divide the {a.num_kv_heads} KV heads")
    if not a.is_mla and a.num_kv_heads < tp and tp % a.num_kv_heads:
        raise MfubenchError(f"--tp {tp} is not a multiple of the {a.num_kv_heads} KV heads")


def shard_fraction(spec: ModelSpec, sharding: Sharding, tp: int) -> float:
    """The fraction of a component each GPU holds (and computes) under ``tp``-way TP."""
    if sharding == "split":
        return 1.0 / tp
    if sharding == "kv":
        return kv_heads_per_gpu(spec, tp) / spec.attention.num_kv_heads
    return 1.0
