"""GEMM shapes of a model's linear layers, as engines fuse and shard them: checked against the
published Llama 3.3 70B dimensions and against the counting core's own multiply-adds."""

from __future__ import annotations

from mfubench.counting.components import components
from mfubench.counting.gemm_shapes import gemm_shapes
from mfubench.model.registry import load_model


def test_llama_70b_on_four_gpus() -> None:
    spec = load_model("meta-llama/Llama-3.3-70B-Instruct")
    shapes = {s.name: (s.k, s.n) for s in gemm_shapes(spec, tp=4)}
    # hidden 8192, 64 heads and 8 KV heads of 128, intermediate 28672, vocab 128256
    assert shapes == {"qkv_proj": (8192, (16 + 2 * 2) * 128), "o_proj": (16 * 128, 8192),
                      "gate_up": (8192, 2 * 7168), "down_proj": (7168, 8192),
                      "lm_head": (8192, 32064)}


def test_dense_shapes_hold_every_multiply_add_of_the_count() -> None:
    for model in ("meta-llama/Llama-3.1-8B", "Qwen/Qwen3-8B", "Qwen/Qwen2.5-7B-Instruct"):
        spec = load_model(model)
        macs = {c.key: c.macs_per_token for c in components(spec)}
        shapes = {s.name: s.k * s.n for s in gemm_shapes(spec)}
        layers = spec.num_layers
        attention = macs["q_proj"] + macs["k_proj"] + macs["v_proj"] + macs["o_proj"]
        assert (shapes["qkv_proj"] + shapes["o_proj"]) * layers == attention
        assert (shapes["gate_up"] + shapes["down_proj"]) * layers == macs["mlp"]
        assert shapes["lm_head"] == macs["lm_head"]


def test_moe_and_mla_shapes() -> None:
    deepseek = {s.name: (s.k, s.n) for s in gemm_shapes(load_model("deepseek-ai/DeepSeek-V3"), tp=8)}
    # q rank 1536, kv rank 512 + rope 64, 128 heads of 192 (128 nope + 64 rope), v 128
    assert deepseek["q_a_proj"] == (7168, 1536) and deepseek["q_b_proj"] == (1536, 16 * 192)
    assert deepseek["kv_a_proj"] == (7168, 576) and deepseek["kv_b_proj"] == (512, 16 * 256)
    # one shared expert of 2048 split 8 ways is the routed experts' shape: listed once
    assert deepseek["expert_gate_up"] == (7168, 2 * 256) and "shared_gate_up" not in deepseek
    qwen_moe = {s.name: (s.k, s.n) for s in gemm_shapes(load_model("Qwen/Qwen3-30B-A3B"))}
    assert qwen_moe["expert_gate_up"] == (2048, 2 * 768)
