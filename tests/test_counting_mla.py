"""MLA decode in the absorbed form: the same attention as the expanded form, and the FLOPs
mfubench books for it.

Serving engines decode DeepSeek-V3 against its latent cache by folding ``W_UK`` into the query
and ``W_UV`` into the output. This test builds both forms from the same random weights, checks
that they compute the same output, and counts the absorbed one with ``FlopCounterMode``: its
FLOPs must equal what mfubench books as ``kv_b_proj`` (the two fold-ins) plus ``attn_scores``
and ``attn_values`` for one new token attending ``C`` keys.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from mfubench.counting import flops  # noqa: E402
from mfubench.counting.workload import DecodeStep  # noqa: E402
from mfubench.model.hf_config import parse_config  # noqa: E402

H, NOPE, ROPE, R, DV, C = 4, 16, 8, 32, 12, 19  # heads, dims, latent rank, keys attended


def test_absorbed_mla_decode_is_the_expanded_attention_and_its_flops_are_booked() -> None:
    torch.manual_seed(0)
    q_nope, q_rot = torch.randn(H, NOPE, dtype=torch.float64), torch.randn(H, ROPE, dtype=torch.float64)
    latent, k_rot = torch.randn(C, R, dtype=torch.float64), torch.randn(C, ROPE, dtype=torch.float64)
    w_kv_b = torch.randn(H * (NOPE + DV), R, dtype=torch.float64)  # nn.Linear(R, H*(NOPE+DV)).weight
    scale = (NOPE + ROPE) ** -0.5

    # expanded, as Hugging Face computes it: every cached latent through kv_b_proj
    kv = (latent @ w_kv_b.T).view(C, H, NOPE + DV).transpose(0, 1)  # (H, C, NOPE+DV)
    k_nope, v = kv[..., :NOPE], kv[..., NOPE:]
    scores = torch.einsum("hd,hcd->hc", q_nope, k_nope) + q_rot @ k_rot.T
    expanded = torch.einsum("hc,hcd->hd", torch.softmax(scores * scale, -1), v)

    w = w_kv_b.view(H, NOPE + DV, R)
    w_uk, w_uv = w[:, :NOPE, :], w[:, NOPE:, :]

    def absorbed() -> torch.Tensor:
        q_lat = torch.bmm(q_nope.unsqueeze(1), w_uk).squeeze(1)  # W_UK folded into the query
        s = q_lat @ latent.T + q_rot @ k_rot.T  # scores in the latent space
        out_lat = torch.softmax(s * scale, -1) @ latent  # values are the latents
        return torch.bmm(out_lat.unsqueeze(1), w_uv.transpose(1, 2)).squeeze(1)  # W_UV folded out

    mode = FlopCounterMode(display=False)
    with mode:
        result = absorbed()
    torch.testing.assert_close(result, expanded)

    spec = parse_config(dict(
        model_type="deepseek_v3", hidden_size=64, num_hidden_layers=1, num_attention_heads=H,
        num_key_value_heads=H, intermediate_size=96, moe_intermediate_size=24, n_routed_experts=4,
        n_shared_experts=1, num_experts_per_tok=2, first_k_dense_replace=1, q_lora_rank=40,
        kv_lora_rank=R, qk_nope_head_dim=NOPE, qk_rope_head_dim=ROPE, v_head_dim=DV,
        vocab_size=100), "mla")
    booked = flops.decode(spec, DecodeStep.uniform(1, C - 1))  # C - 1 cached + the new token
    assert booked["kv_b_proj"] + booked["attn_scores"] + booked["attn_values"] == mode.get_total_flops()
