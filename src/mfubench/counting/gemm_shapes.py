"""The GEMM shapes a model's linear layers run as on one GPU: what calibration should time.

A linear layer computes ``y = x @ W.T`` with ``x`` of ``M x K`` (M tokens) and ``W`` of
``N x K``. Engines fuse projections that read the same input (vLLM's ``QKVParallelLinear`` and
``MergedColumnParallelLinear``), so the shapes are the fused ones, sharded as tensor parallelism
shards them (:mod:`mfubench.counting.components`):

==============  ==========================================  ==================================
name            K                                           N
==============  ==========================================  ==================================
``qkv_proj``    hidden                                      (heads + 2 kv heads per GPU) x dim
``o_proj``      heads x v_dim / tp                          hidden
``gate_up``     hidden                                      2 x intermediate / tp (gated)
``down_proj``   intermediate / tp                           hidden
``experts``     hidden (gate_up) and expert intermediate    one expert's, each split tp ways
``lm_head``     hidden                                      vocab / tp
``*_in_proj``   hidden                                      a fixed-state layer's projection
``*_out_proj``  its inner width / tp                        hidden
==============  ==========================================  ==================================

MLA (DeepSeek-V3) adds its low-rank projections: ``q_a_proj`` (hidden -> q rank),
``q_b_proj`` (q rank -> heads x dim / tp), ``kv_a_proj`` (hidden -> kv rank + rope dim) and
``kv_b_proj`` (kv rank -> heads x (nope + v dim) / tp).
"""

from __future__ import annotations

from mfubench.counting.components import kv_heads_per_gpu
from mfubench.hardware.gemm_paths import GemmShape
from mfubench.model.mixers import GatedDeltaNet, KimiDeltaAttention, Mamba2, StateMixer
from mfubench.model.spec import DenseMLP, ModelSpec, MoE


def gemm_shapes(spec: ModelSpec, tp: int = 1) -> tuple[GemmShape, ...]:
    """The distinct (K, N) of ``spec``'s linear layers on one of ``tp`` GPUs (table above)."""
    h, a = spec.hidden_size, spec.attention
    heads = max(1, a.num_heads // tp)
    out: list[GemmShape] = []
    if a.is_mla:
        assert a.kv_lora_rank is not None
        nope = a.head_dim - a.qk_rope_head_dim
        if a.q_lora_rank:
            out += [GemmShape("q_a_proj", h, a.q_lora_rank),
                    GemmShape("q_b_proj", a.q_lora_rank, heads * a.head_dim)]
        else:
            out.append(GemmShape("q_proj", h, heads * a.head_dim))
        out += [GemmShape("kv_a_proj", h, a.kv_lora_rank + a.qk_rope_head_dim),
                GemmShape("kv_b_proj", a.kv_lora_rank, heads * (nope + a.v_head_dim))]
    else:
        kv = kv_heads_per_gpu(spec, tp)
        out.append(GemmShape("qkv_proj", h, heads * a.head_dim + kv * (a.head_dim + a.v_head_dim)))
    out.append(GemmShape("o_proj", heads * a.v_head_dim, h))
    for layer in spec.layers:
        out += _state_shapes(spec, layer.state_mixers, tp)
        ffn = layer.ffn
        if isinstance(ffn, DenseMLP):
            inter = max(1, ffn.intermediate_size // tp)
            out += [GemmShape("gate_up" if ffn.gated else "up_proj",
                              h, (2 if ffn.gated else 1) * inter),
                    GemmShape("down_proj", inter, h)]
        elif isinstance(ffn, MoE):
            inter = max(1, ffn.expert_intermediate_size // tp)
            up = 2 if ffn.gated else 1
            out += [GemmShape("expert_gate_up" if ffn.gated else "expert_up", h, up * inter),
                    GemmShape("expert_down", inter, h)]
            if ffn.shared_intermediate_size:
                shared = max(1, ffn.shared_intermediate_size // tp)
                out += [GemmShape("shared_gate_up" if ffn.gated else "shared_up", h, up * shared),
                        GemmShape("shared_down", shared, h)]
    out.append(GemmShape("lm_head", h, max(1, spec.vocab_size // tp)))
    seen: set[tuple[int, int]] = set()
    distinct = []
    for shape in out:
        if (shape.k, shape.n) not in seen:
            seen.add((shape.k, shape.n))
            distinct.append(shape)
    return tuple(distinct)


def _state_shapes(spec: ModelSpec, mixers: tuple[StateMixer, ...], tp: int) -> list[GemmShape]:
    """The in- and out-projections of fixed-state mixers, split by heads."""
    h = spec.hidden_size
    out: list[GemmShape] = []
    for m in mixers:
        if isinstance(m, GatedDeltaNet):
            n_in = 2 * m.key_dim + 2 * m.value_dim + 2 * m.num_v_heads
            out += [GemmShape("gdn_in_proj", h, max(1, n_in // tp)),
                    GemmShape("gdn_out_proj", max(1, m.value_dim // tp), h)]
        elif isinstance(m, KimiDeltaAttention):
            out += [GemmShape("kda_qkv_proj", h, max(1, 3 * m.qkv_dim // tp)),
                    GemmShape("kda_out_proj", max(1, m.qkv_dim // tp), h)]
        elif isinstance(m, Mamba2):
            n_in = 2 * m.d_inner + 2 * m.n_groups * m.state_size + m.num_heads
            out += [GemmShape("mamba_in_proj", h, max(1, n_in // tp)),
                    GemmShape("mamba_out_proj", max(1, m.d_inner // tp), h)]
        else:
            out += [GemmShape("conv_in_proj", h, max(1, 3 * h // tp)),
                    GemmShape("conv_out_proj", max(1, h // tp), h)]
    return out
