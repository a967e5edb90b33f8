"""Layer kinds: the token mixers a decoder layer can run, each a small frozen type.

A token mixer is what moves information between positions. Two families, with costs that
differ in kind:

**Softmax attention over a KV cache** (the model's :class:`~mfubench.model.spec.Attention`
shape gives the projections; the kind says which keys a query at 1-based position ``t`` sees):

=====================  =========================================  ==========================
kind                   keys a query at position ``t`` attends      KV kept per sequence
=====================  =========================================  ==========================
``SelfAttention``      ``t`` (full) or ``min(t, window)``          ``min(context, window)``
``ChunkedAttention``   ``((t - 1) mod chunk) + 1`` (its chunk)     ``min(context, chunk)``
``SparseAttention``    ``min(t, top_k)``; its indexer scores all   ``context`` (and the
                       ``t`` keys                                  indexer's keys)
=====================  =========================================  ==========================

**Fixed-state mixers** (their own projections; a state of fixed size per sequence instead of a
growing cache, so their decode bytes do not grow with the context):

=====================  ======================================================================
kind                   per token
=====================  ======================================================================
``GatedDeltaNet``      gated delta rule (Qwen3-Next, Qwen3.5): in-projection, a causal
                       depthwise short convolution over q, k, v, then per value head a
                       ``head_k_dim x head_v_dim`` state read with k, written with the delta
                       and read with q
``KimiDeltaAttention`` Kimi Linear: the gated delta rule with a per-channel decay from a
                       low-rank forget gate, and a low-rank output gate
``Mamba2``             Mamba2 SSD (Nemotron-H, Falcon-H1, Granite 4): in-projection, a causal
                       short convolution over x, B, C, then per head a ``head_dim x
                       state_size`` state written with B x and read with C
``ShortConv``          LFM2: in-projection to B, C, x, a causal depthwise convolution of
                       ``B * x``, gated by C, out-projection
=====================  ======================================================================

The counting of each kind is in :mod:`mfubench.counting.kinds`.
"""

from __future__ import annotations

from dataclasses import dataclass


def _positive(owner: str, **sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{owner} {name} must be positive, got {value}")


@dataclass(frozen=True)
class SelfAttention:
    """Softmax attention over the whole cache (``window`` None) or the last ``window`` keys."""

    window: int | None = None

    def __post_init__(self) -> None:
        if self.window is not None:
            _positive("sliding attention", window=self.window)


@dataclass(frozen=True)
class ChunkedAttention:
    """Softmax attention within fixed chunks of ``chunk`` positions (Llama 4's local layers):
    a query sees the keys of its own chunk up to itself."""

    chunk: int

    def __post_init__(self) -> None:
        _positive("chunked attention", chunk=self.chunk)


@dataclass(frozen=True)
class SparseAttention:
    """DeepSeek Sparse Attention (DeepSeek-V3.2): a lightning indexer scores every cached key
    with ``index_heads`` small heads of ``index_head_dim``, and the attention proper runs on the
    ``top_k`` best keys only.

    Attributes:
        index_heads / index_head_dim: the indexer's query heads and their width (its single
            key head has the same width).
        top_k: keys each query attends.
        q_lora_rank: the indexer's queries come from the attention's compressed query.
    """

    index_heads: int
    index_head_dim: int
    top_k: int
    q_lora_rank: int

    def __post_init__(self) -> None:
        _positive("sparse attention", index_heads=self.index_heads,
                  index_head_dim=self.index_head_dim, top_k=self.top_k,
                  q_lora_rank=self.q_lora_rank)


@dataclass(frozen=True)
class GatedDeltaNet:
    """Gated delta-rule linear attention (Qwen3-Next, Qwen3.5).

    Attributes:
        num_k_heads / head_k_dim: query and key heads and their width.
        num_v_heads / head_v_dim: value heads and their width (each value head keeps one
            ``head_k_dim x head_v_dim`` state; query/key heads are shared by
            ``num_v_heads / num_k_heads`` value heads).
        conv_kernel: width of the causal depthwise convolution over q, k and v.
    """

    num_k_heads: int
    num_v_heads: int
    head_k_dim: int
    head_v_dim: int
    conv_kernel: int

    def __post_init__(self) -> None:
        _positive("gated delta net", num_k_heads=self.num_k_heads, num_v_heads=self.num_v_heads,
                  head_k_dim=self.head_k_dim, head_v_dim=self.head_v_dim,
                  conv_kernel=self.conv_kernel)
        if self.num_v_heads % self.num_k_heads:
            raise ValueError(f"gated delta net num_v_heads {self.num_v_heads} is not a multiple "
                             f"of num_k_heads {self.num_k_heads}")

    @property
    def key_dim(self) -> int:
        return self.num_k_heads * self.head_k_dim

    @property
    def value_dim(self) -> int:
        return self.num_v_heads * self.head_v_dim

    @property
    def conv_dim(self) -> int:
        """Channels the convolution runs over: q, k and v."""
        return 2 * self.key_dim + self.value_dim


@dataclass(frozen=True)
class KimiDeltaAttention:
    """Kimi Delta Attention (Kimi Linear): the gated delta rule with a decay per key channel
    (a low-rank forget gate) instead of per head, and a low-rank output gate.

    Attributes:
        num_heads / head_dim: heads of q, k and v alike, each keeping a ``head_dim x head_dim``
            state.
        conv_kernel: width of the causal depthwise convolution over q, k and v.
    """

    num_heads: int
    head_dim: int
    conv_kernel: int

    def __post_init__(self) -> None:
        _positive("kimi delta attention", num_heads=self.num_heads, head_dim=self.head_dim,
                  conv_kernel=self.conv_kernel)

    @property
    def qkv_dim(self) -> int:
        return self.num_heads * self.head_dim


@dataclass(frozen=True)
class Mamba2:
    """A Mamba2 (SSD) mixer.

    Attributes:
        num_heads / head_dim: SSM heads and their width (``d_inner = num_heads * head_dim``).
        state_size: the SSM state per head and channel (``N``).
        n_groups: groups sharing one B and one C (``n_groups * state_size`` each).
        conv_kernel: width of the causal depthwise convolution over x, B and C.
        conv_bias / in_proj_bias / out_proj_bias: the convolution / the in-projection / the
            out-projection carry biases.
        gated_norm: a gated RMSNorm of ``d_inner`` before the out-projection.
    """

    num_heads: int
    head_dim: int
    state_size: int
    n_groups: int
    conv_kernel: int
    conv_bias: bool = True
    in_proj_bias: bool = False
    out_proj_bias: bool = False
    gated_norm: bool = True

    def __post_init__(self) -> None:
        _positive("mamba2", num_heads=self.num_heads, head_dim=self.head_dim,
                  state_size=self.state_size, n_groups=self.n_groups, conv_kernel=self.conv_kernel)
        if self.num_heads % self.n_groups:
            raise ValueError(f"mamba2 num_heads {self.num_heads} is not a multiple of "
                             f"n_groups {self.n_groups}")

    @property
    def d_inner(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        """Channels the convolution runs over: x, B and C."""
        return self.d_inner + 2 * self.n_groups * self.state_size


@dataclass(frozen=True)
class ShortConv:
    """LFM2's gated short convolution: ``in_proj`` to B, C, x (3 x hidden), a causal depthwise
    convolution of ``conv_kernel`` over ``B * x``, times C, then ``out_proj``."""

    conv_kernel: int
    bias: bool = False

    def __post_init__(self) -> None:
        _positive("short convolution", conv_kernel=self.conv_kernel)


AttentionMixer = SelfAttention | ChunkedAttention | SparseAttention
StateMixer = GatedDeltaNet | KimiDeltaAttention | Mamba2 | ShortConv
Mixer = AttentionMixer | StateMixer
ATTENTION_KINDS = (SelfAttention, ChunkedAttention, SparseAttention)
STATE_KINDS = (GatedDeltaNet, KimiDeltaAttention, Mamba2, ShortConv)
