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


def _ssm_dt(dt: torch.Tensor, dt_bias: torch.Tensor | None, dt_softplus: bool,
            dt_limit: tuple[float, float] = (0.0, float("inf"))) -> torch.Tensor:
    if dt_bias is not None:
        dt = dt + dt_bias.to(dt.dtype)
    if dt_softplus:
        dt = F.softplus(dt)
    return torch.clamp(dt, min=dt_limit[0], max=dt_limit[1])


def mamba2_scan(hidden_states: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                C: torch.Tensor, chunk_size: int = 0, D: torch.Tensor | None = None,
                z: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
                initial_states: torch.Tensor | None = None, dt_softplus: bool = False,
                dt_limit: tuple[float, float] = (0.0, float("inf")), return_final_states: bool = False,
                **_: Any) -> Any:
    """The SSD scan token by token (the math of HF's ``mamba2_chunk_scan``), per head
    ``h = exp(dt A) h + x (dt B)^T`` and ``y = h C + D x``: ``2 P N`` multiply-adds as matmuls."""
    assert z is None
    batch, length, heads, _ = hidden_states.shape
    dt = _ssm_dt(dt, dt_bias, dt_softplus, dt_limit)
    x = hidden_states.float()
    b = B.float().repeat_interleave(heads // B.shape[2], dim=2)
    c = C.float().repeat_interleave(heads // C.shape[2], dim=2)
    state = (torch.zeros(batch, heads, x.shape[-1], b.shape[-1]) if initial_states is None
             else initial_states.float())
    out = torch.zeros_like(x)
    for t in range(length):
        decay = torch.exp(dt[:, t] * A)  # (batch, heads)
        written = x[:, t].unsqueeze(-1) @ (dt[:, t, :, None] * b[:, t]).unsqueeze(-2)  # P N
        state = state * decay[..., None, None] + written
        out[:, t] = (state @ c[:, t].unsqueeze(-1)).squeeze(-1)  # P N
        if D is not None:
            out[:, t] = out[:, t] + D[:, None] * x[:, t]
    return (out, state) if return_final_states else out


def mamba2_state_update(state: torch.Tensor, hidden_states: torch.Tensor, dt: torch.Tensor,
                        A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, D: torch.Tensor | None = None,
                        dt_bias: torch.Tensor | None = None, dt_softplus: bool = False,
                        z: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
    """One decode step of the SSM (the math of HF's ``mamba2_selective_state_update``), its
    write ``x (dt B)^T`` and read ``h C`` as matmuls: ``2 P N`` multiply-adds per head; a gate
    ``z`` multiplies the output by ``silu(z)`` (elementwise)."""
    batch, heads, _ = hidden_states.shape
    dt = _ssm_dt(dt, dt_bias, dt_softplus)  # (batch, heads, head_dim), equal along head_dim
    b = B.repeat_interleave(heads // B.shape[1], dim=1)  # (batch, heads, N)
    c = C.repeat_interleave(heads // C.shape[1], dim=1)
    decay = torch.exp(dt[..., None].float() * A.float())  # (batch, heads, P, N)
    written = hidden_states.unsqueeze(-1) @ (dt[:, :, :1] * b).unsqueeze(-2)
    new = state * decay + written
    state.copy_(new.to(state.dtype))
    out = (new.to(c.dtype) @ c.unsqueeze(-1)).squeeze(-1)
    if D is not None:
        out = (out + hidden_states * D).to(out.dtype)
    if z is not None:
        out = out * F.silu(z)
    return out.to(hidden_states.dtype)


def llama4_moe_forward(self: Any, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Llama 4's MoE block as served: each routed expert runs on its own tokens only (HF's
    reference runs every expert on every token, the unrouted ones scaled by 0), the shared
    expert on all; the same outputs as ``Llama4TextMoe.forward``."""
    hidden_states = hidden_states.reshape(-1, self.hidden_dim)
    router_scores, router_logits = self.router(hidden_states)  # (tokens, experts); 0 off top-k
    _, chosen = torch.topk(router_logits, self.top_k, dim=1)
    out = self.shared_expert(hidden_states)
    experts = self.experts
    for e in range(self.num_experts):
        tokens = (chosen == e).any(dim=1).nonzero().squeeze(-1)
        if tokens.numel() == 0:
            continue
        x = hidden_states[tokens] * router_scores[tokens, e, None]
        gate, up = (x @ experts.gate_up_proj[e]).chunk(2, dim=-1)
        out.index_add_(0, tokens, (up * experts.act_fn(gate)) @ experts.down_proj[e])
    return out, router_logits


def kimi_delta_rule(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, g: torch.Tensor,
                    beta: torch.Tensor, initial_state: torch.Tensor | None = None,
                    output_final_state: bool = False, use_qk_l2norm_in_kernel: bool = False,
                    **_: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Kimi Delta Attention token by token (the math of HF's ``recurrent_kimi_delta_attention``:
    inputs (batch, length, heads, dim), a decay per key channel), its three state products as
    matmuls: ``3 d d`` multiply-adds per token and head."""
    dtype = query.dtype
    q, k, v, decay, b = (x.to(torch.float32) for x in (query, key, value, g, beta))
    if use_qk_l2norm_in_kernel:
        q, k = _l2norm(q), _l2norm(k)
    q = q / q.shape[-1] ** 0.5
    batch, length, heads, dk = k.shape
    state = (torch.zeros(batch, heads, dk, v.shape[-1]) if initial_state is None
             else initial_state.to(torch.float32))
    out = torch.zeros(batch, length, heads, v.shape[-1])
    for i in range(length):
        state = state * decay[:, i].exp()[..., None]
        predicted = (k[:, i].unsqueeze(-2) @ state).squeeze(-2)
        delta = (v[:, i] - predicted) * b[:, i][..., None]
        state = state + k[:, i].unsqueeze(-1) @ delta.unsqueeze(-2)
        out[:, i] = (q[:, i].unsqueeze(-2) @ state).squeeze(-2)
    return out.to(dtype), state if output_final_state else None
