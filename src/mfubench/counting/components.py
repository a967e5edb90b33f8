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
``index_*``        DeepSeek-V3.2's indexer: ``index_q_proj``, ``index_k_proj``, ``index_weights_proj``
                   (replicated) and ``index_scores``, its query-key scoring (not a weight)
``gdn_*``,         the projections and convolutions of fixed-state layers (gated delta, Kimi
``kda_*``,         delta attention, Mamba2, short convolution): see :func:`_state_components`
``mamba_*``,
``conv_*``
=================  =============================================================================

Attention projections are summed over the layers that have softmax attention; a hybrid's
fixed-state layers have their own components instead.

Tensor parallelism (Megatron-style, as vLLM shards): head- and intermediate-sharded matrices are
split ``tp`` ways; key/value projections hold ``ceil(kv_heads / tp)`` heads per GPU (replicated
when there are fewer KV heads than GPUs); MLA's down-projections (``q_a_proj``, ``kv_a_proj``),
routers and norms are replicated; embeddings and the LM head are split by vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

from mfubench.counting.kinds import split_heads
from mfubench.errors import MfubenchError
from mfubench.model.mixers import (
    GatedDeltaNet,
    KimiDeltaAttention,
    Mamba2,
    SparseAttention,
    StateMixer,
)
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
    h = spec.hidden_size
    n_attn = sum(layer.attention is not None for layer in spec.layers)
    out: list[Component] = [
        Component("embed_tokens", "embedding", spec.vocab_size * h, 0, 0, "split"),
    ]
    norm_vectors = sum(layer.num_norms for layer in spec.layers) * h + h  # + final norm
    if n_attn:
        out_attn, attn_vectors = _attention_components(spec, n_attn)
        out += out_attn
        norm_vectors += attn_vectors
    out += _index_components(spec)
    norm_vectors += sum(2 * m.index_head_dim for layer in spec.layers
                        if isinstance(m := layer.attention, SparseAttention))
    out += _state_components(spec)
    norm_vectors += sum(_state_vectors(m) for layer in spec.layers for m in layer.state_mixers)

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
        expert_w = sum(m.num_experts * m.num_matrices * h * m.expert_intermediate_size for m in moes)
        expert_b = sum(m.num_experts * ((m.num_matrices - 1) * m.expert_intermediate_size + h)
                       for m in moes if m.expert_bias)
        expert_macs = sum(m.top_k * m.num_matrices * h * m.expert_intermediate_size for m in moes)
        out.append(Component("experts", "expert", expert_w, expert_b, expert_macs, "split", moes))
        shared_w = sum(m.num_matrices * h * m.shared_intermediate_size + (h if m.shared_expert_gate else 0)
                       for m in moes)
        shared_b = sum((m.num_matrices - 1) * m.shared_intermediate_size + h
                       for m in moes if m.shared_expert_bias and m.shared_intermediate_size)
        if shared_w:
            out.append(Component("shared_experts", "linear", shared_w, shared_b, shared_w, "split"))
    out.append(Component("norms", "norm", 0, norm_vectors, 0, "replicated"))
    lm_weights = 0 if spec.tie_word_embeddings else spec.vocab_size * h
    lm_bias = spec.vocab_size if spec.lm_head_bias else 0
    out.append(Component("lm_head", "lm_head", lm_weights, lm_bias, spec.vocab_size * h, "split"))
    return tuple(out)


def _attention_components(spec: ModelSpec, n_attn: int) -> tuple[list[Component], int]:
    """The projections of the ``n_attn`` softmax-attention layers, and their norm vectors."""
    h, a = spec.hidden_size, spec.attention
    hq, hkv, d, dv = a.num_heads, a.num_kv_heads, a.head_dim, a.v_head_dim
    out: list[Component] = []
    norm_vectors = 0
    if a.is_mla:
        assert a.kv_lora_rank is not None
        r_kv, rope, nope = a.kv_lora_rank, a.qk_rope_head_dim, a.head_dim - a.qk_rope_head_dim
        if a.q_lora_rank:
            q_a = h * a.q_lora_rank
            q_b = a.q_lora_rank * hq * d
            out.append(Component("q_a_proj", "linear", q_a * n_attn, 0, q_a * n_attn, "replicated"))
            out.append(Component("q_b_proj", "linear", q_b * n_attn, 0, q_b * n_attn, "split"))
            norm_vectors += a.q_lora_rank * n_attn
        else:
            q = h * hq * d
            out.append(Component("q_proj", "linear", q * n_attn, 0, q * n_attn, "split"))
        kv_a = h * (r_kv + rope)
        kv_b = r_kv * hq * (nope + dv)
        out.append(Component("kv_a_proj", "linear", kv_a * n_attn, 0, kv_a * n_attn, "replicated"))
        out.append(Component("kv_b_proj", "linear", kv_b * n_attn, 0, kv_b * n_attn, "split"))
        norm_vectors += r_kv * n_attn
    else:
        gate = 2 if a.output_gate else 1  # a gated output: q_proj also yields the gate
        q, k, v = h * hq * d * gate, h * hkv * d, h * hkv * dv
        qb, kb, vb = (hq * d * gate, hkv * d, hkv * dv) if a.qkv_bias else (0, 0, 0)
        out.append(Component("q_proj", "linear", q * n_attn, qb * n_attn, q * n_attn, "split"))
        out.append(Component("k_proj", "linear", k * n_attn, kb * n_attn, k * n_attn, "kv"))
        out.append(Component("v_proj", "linear", v * n_attn, vb * n_attn, v * n_attn, "kv"))
        if a.qk_norm:
            norm_vectors += (hq + hkv if a.qk_norm_full_width else 2) * d * n_attn
    o = hq * dv * h
    out.append(Component("o_proj", "linear", o * n_attn, (h if a.o_bias else 0) * n_attn,
                         o * n_attn, "split"))
    if a.sinks:
        norm_vectors += hq * n_attn
    return out, norm_vectors


def _index_components(spec: ModelSpec) -> list[Component]:
    """The lightning indexer of sparse-attention layers (DeepSeek-V3.2), per layer:
    ``index_q_proj`` (``q_lora_rank x index_heads index_head_dim``, from the compressed query),
    ``index_k_proj`` (``hidden x index_head_dim``, one key head) and ``index_weights_proj``
    (``hidden x index_heads``, the per-head weights); its key LayerNorm (weight and bias) is
    booked under ``norms``. vLLM replicates the indexer on every GPU."""
    sparse = [m for layer in spec.layers if isinstance(m := layer.attention, SparseAttention)]
    if not sparse:
        return []
    h = spec.hidden_size
    q = sum(m.q_lora_rank * m.index_heads * m.index_head_dim for m in sparse)
    k = sum(h * m.index_head_dim for m in sparse)
    w = sum(h * m.index_heads for m in sparse)
    return [Component("index_q_proj", "linear", q, 0, q, "replicated"),
            Component("index_k_proj", "linear", k, 0, k, "replicated"),
            Component("index_weights_proj", "linear", w, 0, w, "replicated")]


def _state_components(spec: ModelSpec) -> list[Component]:
    """The projections and convolutions of the fixed-state layers, summed by key:

    ==================  ===========================================================  ========
    key                 weights (per layer)                                          macs
    ==================  ===========================================================  ========
    ``gdn_in_proj``     ``hidden (2 Hk dk + 2 Hv dv + 2 Hv)``: q, k, v, the output   = weights
                        gate z, beta and the decay input a
    ``gdn_conv``        ``K (2 Hk dk + Hv dv)``: depthwise, over q, k, v             = weights
    ``gdn_out_proj``    ``Hv dv hidden``                                             = weights
    ``mamba_in_proj``   ``hidden (2 H P + 2 G N + H)``: z, x, B, C, dt (+ bias)      = weights
    ``mamba_conv``      ``K (H P + 2 G N)`` (+ bias): depthwise, over x, B, C        = weights
    ``mamba_out_proj``  ``H P hidden`` (+ bias)                                      = weights
    ``conv_in_proj``    ``hidden 3 hidden`` (+ bias): B, C, x                        = weights
    ``short_conv``      ``K hidden``: depthwise, over B * x                          = weights
    ``conv_out_proj``   ``hidden hidden`` (+ bias)                                   = weights
    ``kda_qkv_proj``    ``hidden 3 H d``: q, k, v                                    = weights
    ``kda_conv``        ``K 3 H d``: depthwise, over q, k, v                         = weights
    ``kda_gate_a_proj`` ``2 hidden d``: the forget and output gates' down-projections = weights
    ``kda_gate_proj``   ``2 d H d + hidden H``: their up-projections and beta        = weights
    ``kda_out_proj``    ``H d hidden``                                               = weights
    ==================  ===========================================================  ========

    Tensor parallelism splits them by heads (channels), as vLLM does; KDA's gate
    down-projections are replicated.
    """
    h = spec.hidden_size
    acc: dict[str, list[int]] = {}
    kinds: dict[str, WeightKind] = {}
    sharding: dict[str, Sharding] = {}

    def add(key: str, kind: WeightKind, weights: int, biases: int = 0) -> None:
        w_b = acc.setdefault(key, [0, 0])
        w_b[0] += weights
        w_b[1] += biases
        kinds[key] = kind
        sharding[key] = "split"

    def add_replicated(key: str, kind: WeightKind, weights: int) -> None:
        add(key, kind, weights)
        sharding[key] = "replicated"

    for layer in spec.layers:
        for m in layer.state_mixers:
            if isinstance(m, GatedDeltaNet):
                add("gdn_in_proj", "linear", h * (2 * m.key_dim + 2 * m.value_dim + 2 * m.num_v_heads))
                add("gdn_conv", "conv", m.conv_kernel * m.conv_dim)
                add("gdn_out_proj", "linear", m.value_dim * h)
            elif isinstance(m, KimiDeltaAttention):
                d, qkv = m.head_dim, m.qkv_dim
                add("kda_qkv_proj", "linear", 3 * h * qkv)
                add("kda_conv", "conv", m.conv_kernel * 3 * qkv)
                add("kda_gate_proj", "linear", 2 * d * qkv + h * m.num_heads)
                add("kda_out_proj", "linear", qkv * h)
                add_replicated("kda_gate_a_proj", "linear", 2 * h * d)
            elif isinstance(m, Mamba2):
                proj = 2 * m.d_inner + 2 * m.n_groups * m.state_size + m.num_heads
                add("mamba_in_proj", "linear", h * proj, proj if m.in_proj_bias else 0)
                add("mamba_conv", "conv", m.conv_kernel * m.conv_dim, m.conv_dim if m.conv_bias else 0)
                add("mamba_out_proj", "linear", m.d_inner * h, h if m.out_proj_bias else 0)
            else:
                add("conv_in_proj", "linear", h * 3 * h, 3 * h if m.bias else 0)
                add("short_conv", "conv", m.conv_kernel * h, h if m.bias else 0)
                add("conv_out_proj", "linear", h * h, h if m.bias else 0)
    return [Component(key, kinds[key], w, b, w, sharding[key]) for key, (w, b) in acc.items()]


def _state_vectors(mixer: StateMixer) -> int:
    """Vector parameters of a fixed-state mixer (booked under ``norms``): GatedDeltaNet's
    gated-norm weight (``dv``), ``A_log`` and ``dt_bias`` (``Hv`` each); Mamba2's ``A_log``,
    ``D`` and ``dt_bias`` (``H`` each) and its gated norm (``H P``)."""
    if isinstance(mixer, GatedDeltaNet):
        return mixer.head_v_dim + 2 * mixer.num_v_heads
    if isinstance(mixer, KimiDeltaAttention):  # dt_bias (H d), A_log (H), the gated o_norm (d)
        return mixer.qkv_dim + mixer.num_heads + mixer.head_dim
    if isinstance(mixer, Mamba2):
        return 3 * mixer.num_heads + (mixer.d_inner if mixer.gated_norm else 0)
    return 0


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
    for mixer in {m for layer in spec.layers for m in layer.state_mixers}:
        for what, n in split_heads(mixer):
            if n % tp:
                raise MfubenchError(f"--tp {tp} does not divide the {n} {what}")


def shard_fraction(spec: ModelSpec, sharding: Sharding, tp: int) -> float:
    """The fraction of a component each GPU holds (and computes) under ``tp``-way TP."""
    if sharding == "split":
        return 1.0 / tp
    if sharding == "kv":
        return kv_heads_per_gpu(spec, tp) / spec.attention.num_kv_heads
    return 1.0
