"""ModelSpec: the shape of a decoder-only transformer, as far as counting its work needs.

A spec is built from a Hugging Face ``config.json`` by :mod:`mfubench.model.hf_config` and is
the only thing the counting code reads. It records every matrix a token passes through, layer by
layer, so that hybrid models (sliding-window layers beside full ones, dense layers before MoE
ones) are counted as they are, never as an average.

Conventions: sizes are element counts; ``head_dim`` is read from the config where it is given
(never assumed to be ``hidden_size / num_heads``); a sliding ``window`` is the number of keys a
query sees, itself included (HF masks ``q - k < window``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mfubench.model.mixers import (
    ATTENTION_KINDS,
    STATE_KINDS,
    AttentionMixer,
    Mixer,
    SelfAttention,
    StateMixer,
)
from mfubench.model.quant import WeightFormat

__all__ = ["Attention", "DenseMLP", "Layer", "ModelSpec", "MoE", "SelfAttention"]


@dataclass(frozen=True)
class Attention:
    """Self-attention of one layer.

    Attributes:
        num_heads: query heads.
        num_kv_heads: key/value heads (GQA when fewer than ``num_heads``; MLA: equal).
        head_dim: query/key width per head (MLA: ``qk_nope_head_dim + qk_rope_head_dim``).
        v_head_dim: value width per head (equal to ``head_dim`` except MLA).
        qkv_bias / o_bias: whether the projections carry a bias vector.
        qk_norm: a per-head RMSNorm on queries and keys (Qwen3, Gemma 3): ``2 * head_dim`` weights.
        qk_norm_full_width: the q/k RMSNorm spans all heads at once (MiniMax-M2):
            ``(num_heads + num_kv_heads) * head_dim`` weights instead.
        sinks: one learned sink logit per query head (gpt-oss).
        output_gate: a sigmoid gate per query-head output (Qwen3-Next, Qwen3.5): ``q_proj``
            also yields the gate, ``num_heads * head_dim`` more outputs.
        q_lora_rank / kv_lora_rank / qk_rope_head_dim: Multi-head Latent Attention (DeepSeek-V3).
            ``kv_lora_rank`` set means MLA: keys and values are stored as one latent vector of
            ``kv_lora_rank + qk_rope_head_dim`` per token and layer.
    """

    num_heads: int
    num_kv_heads: int
    head_dim: int
    v_head_dim: int
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    qk_norm_full_width: bool = False
    sinks: bool = False
    output_gate: bool = False
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int = 0

    def __post_init__(self) -> None:
        for name in ("num_heads", "num_kv_heads", "head_dim", "v_head_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"attention {name} must be positive")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}"
            )

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None


@dataclass(frozen=True)
class DenseMLP:
    """A feed-forward block: gated (SwiGLU/GeGLU: gate, up, down) or plain (up, down)."""

    intermediate_size: int
    gated: bool = True
    bias: bool = False

    @property
    def num_matrices(self) -> int:
        return 3 if self.gated else 2


@dataclass(frozen=True)
class MoE:
    """A mixture-of-experts block.

    Attributes:
        num_experts: routed experts.
        top_k: experts each token is routed to.
        expert_intermediate_size: intermediate width of one routed expert (gated, 3 matrices).
        shared_intermediate_size: total intermediate width of the always-on shared expert(s)
            (DeepSeek: ``n_shared_experts * moe_intermediate_size``; Qwen2-MoE:
            ``shared_expert_intermediate_size``); 0 when there are none.
        shared_expert_gate: a sigmoid gate ``hidden -> 1`` on the shared expert (Qwen2-MoE).
        router_bias: the router linear layer has a bias (gpt-oss).
        router_score_bias: an extra per-expert bias on the scores (DeepSeek-V3
            ``e_score_correction_bias``), a parameter but no matmul.
        expert_bias: each expert's projections carry biases (gpt-oss).
        shared_expert_bias: the shared expert's projections carry biases (ERNIE 4.5 with
            ``use_bias``).
        gated: experts (and the shared expert) are gated, 3 matrices (gate, up, down); plain
            experts have 2 (up, down: Nemotron-H's ReLU^2 experts).
    """

    num_experts: int
    top_k: int
    expert_intermediate_size: int
    shared_intermediate_size: int = 0
    shared_expert_gate: bool = False
    router_bias: bool = False
    router_score_bias: bool = False
    expert_bias: bool = False
    shared_expert_bias: bool = False
    gated: bool = True

    @property
    def num_matrices(self) -> int:
        """Matrices of one expert (and of the shared expert)."""
        return 3 if self.gated else 2

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"top_k {self.top_k} must be in 1..num_experts {self.num_experts}")


@dataclass(frozen=True)
class Layer:
    """One decoder layer: its token mixers, its feed-forward block and its norms.

    ``mixers`` are the layer's token mixers (:mod:`mfubench.model.mixers`), in the order the
    layer runs them: one :class:`~mfubench.model.mixers.SelfAttention` for a plain transformer
    layer, a fixed-state kind for a linear-attention or SSM layer, several where a layer runs
    them in parallel (Falcon-H1), none for a feed-forward-only layer (Nemotron-H). ``ffn`` is
    None for a mixer-only layer. ``num_norms`` counts the hidden-size norm vectors (2 for Llama,
    4 for Gemma 2/3).
    """

    ffn: DenseMLP | MoE | None
    mixers: tuple[Mixer, ...] = (SelfAttention(),)
    num_norms: int = 2

    @property
    def attention(self) -> AttentionMixer | None:
        """The layer's softmax attention over a KV cache (None for fixed-state layers)."""
        return next((m for m in self.mixers if isinstance(m, ATTENTION_KINDS)), None)

    @property
    def state_mixers(self) -> tuple[StateMixer, ...]:
        """The layer's fixed-state mixers (gated delta, Mamba2, short convolution)."""
        return tuple(m for m in self.mixers if isinstance(m, STATE_KINDS))

    @property
    def window(self) -> int | None:
        """The sliding window of the layer's attention; None for full (or no) attention."""
        attn = self.attention
        return attn.window if isinstance(attn, SelfAttention) else None


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only language model.

    Attributes:
        name: the id or path it was read from.
        model_type: the HF ``model_type`` (``llama``, ``qwen3_moe``, ``deepseek_v3``, ...).
        hidden_size / vocab_size: residual width and vocabulary.
        attention: the attention shape, the same in every layer.
        layers: every decoder layer in order.
        tie_word_embeddings: the LM head shares the embedding matrix (no extra parameters).
        weights: how weights are stored (dtype or quantization), see :class:`WeightFormat`.
        max_position_embeddings: the longest context the config declares.
        state_dtype: the dtype fixed-state layers keep their recurrent state in (None: the
            model dtype; Nemotron-H: its ``mamba_ssm_cache_dtype``, as vLLM keeps it).
        lm_head_bias: the LM head carries a bias vector (ERNIE 4.5 with ``use_bias``).
    """

    name: str
    model_type: str
    hidden_size: int
    vocab_size: int
    attention: Attention
    layers: tuple[Layer, ...]
    tie_word_embeddings: bool = False
    weights: WeightFormat = field(default_factory=WeightFormat)
    max_position_embeddings: int | None = None
    state_dtype: str | None = None
    lm_head_bias: bool = False

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or self.vocab_size < 1 or not self.layers:
            raise ValueError("hidden_size, vocab_size and the layers must be positive")

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def is_moe(self) -> bool:
        return any(isinstance(layer.ffn, MoE) for layer in self.layers)

    def with_weights(self, weights: WeightFormat) -> ModelSpec:
        """The same model with its weights stored another way (``--dtype``)."""
        from dataclasses import replace

        return replace(self, weights=weights)
