"""Instrumented kernels for the FLOP oracles of hybrid families (see docs/counting.md).

Hugging Face's reference kernels for fixed-state layers compute either nothing
``FlopCounterMode`` can see (the recurrent gated delta rule is elementwise products and sums)
or more than the model needs (the chunked form adds intra-chunk attention and a triangular
solve; ``F.conv1d`` with padding computes ``K - 1`` outputs per sequence that are thrown away).
These replacements compute the same outputs with exactly the needed multiply-adds as matmuls, so
``FlopCounterMode`` counts what the model needs:

- :func:`gated_delta_rule`: the recurrent form, per token and value head ``k^T S``,
  ``k (beta (v - k^T S))^T`` and ``q^T S``: ``3 dk dv`` multiply-adds.
- :func:`causal_conv1d_fn` / :func:`causal_conv1d_update`: a causal depthwise convolution, one
  output per input, ``K`` multiply-adds per channel.

Each family's test checks that the instrumented model's logits equal the reference model's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers.activations import ACT2FN


def _l2norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt((x * x).sum(dim=-1, keepdim=True) + 1e-6)


def gated_delta_rule(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, g: torch.Tensor,
                     beta: torch.Tensor, initial_state: torch.Tensor | None = None,
                     output_final_state: bool = False, use_qk_l2norm_in_kernel: bool = False,
                     **_: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The gated delta rule token by token (the math of HF's ``torch_recurrent_gated_delta_rule``),
    its state products as matmuls."""
    dtype = query.dtype
    q, k, v, b, decay = (x.transpose(1, 2).to(torch.float32) for x in (query, key, value, beta, g))
    if use_qk_l2norm_in_kernel:
        q, k = _l2norm(q), _l2norm(k)
    q = q / q.shape[-1] ** 0.5
    batch, heads, length, dk = k.shape
    state = (torch.zeros(batch, heads, dk, v.shape[-1], dtype=v.dtype) if initial_state is None
             else initial_state.to(v))
    out = torch.zeros_like(v)
    for i in range(length):
        state = state * decay[:, :, i].exp()[..., None, None]
        predicted = (k[:, :, i].unsqueeze(-2) @ state).squeeze(-2)  # k^T S: dk dv
        delta = (v[:, :, i] - predicted) * b[:, :, i].unsqueeze(-1)
        state = state + k[:, :, i].unsqueeze(-1) @ delta.unsqueeze(-2)  # k delta^T: dk dv
        out[:, :, i] = (q[:, :, i].unsqueeze(-2) @ state).squeeze(-2)  # q^T S: dk dv
    return out.transpose(1, 2).contiguous().to(dtype), state if output_final_state else None


def _depthwise(windows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               activation: str | None) -> torch.Tensor:
    """``windows`` (batch, channels, positions, K) times ``weight`` (channels, K): K
    multiply-adds per channel and position, as one batched matmul."""
    out = (windows @ weight.unsqueeze(0).unsqueeze(-1)).squeeze(-1)
    if bias is not None:
        out = out + bias[:, None]
    return ACT2FN[activation](out) if activation is not None else out


def causal_conv1d_fn(hidden_states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     activation: str | None = None, **_: Any) -> torch.Tensor:
    """Causal depthwise convolution of (batch, channels, length): one output per input."""
    kernel = weight.shape[-1]
    padded = F.pad(hidden_states.to(weight.dtype), (kernel - 1, 0))
    out = _depthwise(padded.unfold(-1, kernel, 1), weight, bias, activation)
    return out.to(hidden_states.dtype)


def causal_conv1d_update(hidden_states: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor,
                         bias: torch.Tensor | None = None, activation: str | None = None,
                         **_: Any) -> torch.Tensor:
    """One decode step of the convolution: the state shifts in the new input (in place, as
    HF's), and the last ``K`` inputs make the one output."""
    kernel, length = weight.shape[-1], hidden_states.shape[-1]
    joined = torch.cat([conv_state, hidden_states], dim=-1).to(weight.dtype)
    conv_state.copy_(joined[:, :, -conv_state.shape[-1]:])
    out = _depthwise(joined[:, :, -(kernel + length - 1):].unfold(-1, kernel, 1), weight, bias, activation)
    return out.to(hidden_states.dtype)
