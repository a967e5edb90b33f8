"""The counting of each layer kind (:mod:`mfubench.model.mixers`), as pure functions.

Attention kinds: which keys a query sees and which the cache keeps (positions are 1-based, a
query sees itself)::

    SelfAttention     keys(t) = t, or min(t, window)         kept(C) = min(C, window)
    ChunkedAttention  keys(t) = ((t - 1) mod chunk) + 1       kept(C) = min(C, chunk)
    SparseAttention   keys(t) = min(t, top_k)                 kept(C) = C
                      indexer keys(t) = t, each pair index_heads (index_head_dim + 1) macs;
                      its keys cached as index_head_dim fp8 + a fp32 scale per 128

Fixed-state kinds: a state of fixed size per sequence, and the multiply-adds one token spends
on it (the recurrent form; weights are counted as components)::

    GatedDeltaNet  state = Hv dk dv + (K - 1) (2 Hk dk + Hv dv)    macs = 3 Hv dk dv
                   (per value head: k^T S to predict v, S += k (beta (v - k^T S))^T, q^T S)
    KimiDelta      state = H d d + (K - 1) 3 H d                   macs = 3 H d d
                   (the gated delta rule, one decay per key channel)
    Mamba2         state = H P N + (K - 1) (H P + 2 G N)           macs = 2 H P N
                   (per head: h += dt B x^T, y = C^T h)
    ShortConv      state = (K - 1) hidden                          macs = 0 (the convolution
                                                                    is its component)

The decay of a state (``S * exp(g)``, ``h * exp(dt A)``) is one multiply per state element and
token, not a multiply-add: not counted, as norms and activations are not.
"""

from __future__ import annotations

from mfubench.counting.workload import Convention, PrefillChunk, keys_attended
from mfubench.model.mixers import (
    AttentionMixer,
    ChunkedAttention,
    GatedDeltaNet,
    KimiDeltaAttention,
    Mamba2,
    SelfAttention,
    ShortConv,
    SparseAttention,
    StateMixer,
)


def chunk_keys_attended(first: int, last: int, chunk: int) -> int:
    """``sum(((t - 1) % chunk) + 1 for t in first..last)``, in closed form (0 if ``last < first``)."""

    def upto(n: int) -> int:  # positions 1..n
        q, r = divmod(n, chunk)
        return q * chunk * (chunk + 1) // 2 + r * (r + 1) // 2

    return 0 if last < first else upto(last) - upto(first - 1)


def keys_sum(mixer: AttentionMixer, first: int, last: int) -> int:
    """Keys the queries at positions ``first..last`` attend, summed (the causal pair count)."""
    if isinstance(mixer, SelfAttention):
        return keys_attended(first, last, mixer.window)
    if isinstance(mixer, ChunkedAttention):
        return chunk_keys_attended(first, last, mixer.chunk)
    return keys_attended(first, last, mixer.top_k)


def keys_span(mixer: AttentionMixer, context: int) -> int:
    """The most keys a query of a ``context``-long sequence can attend: the side of the
    ``palm``/``vllm`` rectangle (``min(context, window | chunk | top_k)``)."""
    if isinstance(mixer, SelfAttention):
        return context if mixer.window is None else min(context, mixer.window)
    if isinstance(mixer, ChunkedAttention):
        return min(context, mixer.chunk)
    return min(context, mixer.top_k)


def mixer_prefill_pairs(mixer: AttentionMixer, chunk: PrefillChunk, convention: Convention) -> int:
    """Query-key pairs one sequence of ``chunk`` scores in a layer of this kind: the causal
    sum of :func:`keys_sum`, or (``palm``, ``vllm``) the rectangle ``n * keys_span(c + n)``."""
    n, c = chunk.new_tokens, chunk.cached_tokens
    if convention == "causal":
        return keys_sum(mixer, c + 1, c + n)
    return n * keys_span(mixer, c + n)


def index_pairs(mixer: AttentionMixer, chunk: PrefillChunk, convention: Convention) -> int:
    """Query-key pairs a sparse layer's indexer scores for one sequence of ``chunk``: every
    earlier key (the causal triangle), or the ``palm``/``vllm`` rectangle ``n (c + n)``; 0 for
    other kinds."""
    if not isinstance(mixer, SparseAttention):
        return 0
    n, c = chunk.new_tokens, chunk.cached_tokens
    return index_keys_sum(mixer, c + 1, c + n) if convention == "causal" else n * (c + n)


def index_macs_per_pair(mixer: AttentionMixer) -> int:
    """Multiply-adds the indexer spends on one query-key pair: ``q_h . k`` for each of its
    ``index_heads`` heads (``index_head_dim`` each) and the weighted sum over the heads."""
    if not isinstance(mixer, SparseAttention):
        return 0
    return mixer.index_heads * (mixer.index_head_dim + 1)


def index_key_bytes(mixer: AttentionMixer) -> int:
    """Bytes one token's indexer key takes in a sparse layer's cache, as vLLM stores it: fp8
    values with one fp32 scale per 128 (``index_head_dim + index_head_dim // 128 * 4``: 132 for
    DeepSeek-V3.2), whatever the KV dtype; 0 for other kinds."""
    if not isinstance(mixer, SparseAttention):
        return 0
    return mixer.index_head_dim + mixer.index_head_dim // 128 * 4


def keys_kept(mixer: AttentionMixer, context: int) -> int:
    """KV entries one sequence of ``context`` tokens keeps in a layer of this kind."""
    if isinstance(mixer, SparseAttention):
        return context
    return keys_span(mixer, context)


def index_keys_sum(mixer: AttentionMixer, first: int, last: int) -> int:
    """Keys a sparse layer's indexer scores for queries ``first..last`` (all earlier keys);
    0 for other kinds."""
    return keys_attended(first, last, None) if isinstance(mixer, SparseAttention) else 0


def state_elements(mixer: StateMixer, hidden: int) -> int:
    """Elements of the fixed state one sequence keeps in a layer: the recurrent state plus
    the convolution's last ``K - 1`` inputs (module table)."""
    return recurrent_state_elements(mixer) + conv_state_elements(mixer, hidden)


def recurrent_state_elements(mixer: StateMixer) -> int:
    """The recurrent state: ``Hv dk dv`` (gated delta), ``H P N`` (Mamba2), none (short conv)."""
    if isinstance(mixer, GatedDeltaNet):
        return mixer.num_v_heads * mixer.head_k_dim * mixer.head_v_dim
    if isinstance(mixer, KimiDeltaAttention):
        return mixer.num_heads * mixer.head_dim * mixer.head_dim
    if isinstance(mixer, Mamba2):
        return mixer.num_heads * mixer.head_dim * mixer.state_size
    return 0


def conv_state_elements(mixer: StateMixer, hidden: int) -> int:
    """The convolution's state: its last ``K - 1`` inputs on every channel it convolves."""
    if isinstance(mixer, GatedDeltaNet | Mamba2):
        return (mixer.conv_kernel - 1) * mixer.conv_dim
    if isinstance(mixer, KimiDeltaAttention):
        return (mixer.conv_kernel - 1) * 3 * mixer.qkv_dim
    return (mixer.conv_kernel - 1) * hidden


def state_macs_per_token(mixer: StateMixer) -> int:
    """Multiply-adds one token spends on the state, in the recurrent form (module table)."""
    if isinstance(mixer, GatedDeltaNet):
        return 3 * mixer.num_v_heads * mixer.head_k_dim * mixer.head_v_dim
    if isinstance(mixer, KimiDeltaAttention):
        return 3 * mixer.num_heads * mixer.head_dim * mixer.head_dim
    if isinstance(mixer, Mamba2):
        return 2 * mixer.num_heads * mixer.head_dim * mixer.state_size
    return 0


def state_key(mixer: StateMixer) -> str:
    """The breakdown key of a kind's state FLOPs."""
    if isinstance(mixer, GatedDeltaNet):
        return "gdn_state"
    if isinstance(mixer, KimiDeltaAttention):
        return "kda_state"
    if isinstance(mixer, Mamba2):
        return "ssm_scan"
    assert isinstance(mixer, ShortConv)
    return "short_conv_state"


def split_heads(mixer: StateMixer) -> tuple[tuple[str, int], ...]:
    """The head counts tensor parallelism splits a fixed-state mixer by (each must divide)."""
    if isinstance(mixer, GatedDeltaNet):
        return (("linear-attention key heads", mixer.num_k_heads),
                ("linear-attention value heads", mixer.num_v_heads))
    if isinstance(mixer, KimiDeltaAttention):
        return (("Kimi delta attention heads", mixer.num_heads),)
    if isinstance(mixer, Mamba2):
        return (("Mamba2 heads", mixer.num_heads),)
    return ()
