"""Metamorphic tests: scaling laws any correct count obeys, and the conventions' relations."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mfubench.counting import flops, memory
from mfubench.counting.workload import DecodeStep, PrefillChunk, Request, keys_attended
from mfubench.errors import MfubenchError
from mfubench.model.hf_config import parse_config
from mfubench.model.spec import MoE

BASE: dict[str, Any] = dict(model_type="llama", hidden_size=512, num_hidden_layers=4,
                            num_attention_heads=8, num_key_value_heads=8, intermediate_size=1024,
                            vocab_size=1000)


def spec(**over: Any):  # type: ignore[no-untyped-def]
    return parse_config({**BASE, **over}, "test")


def test_twice_the_layers_twice_the_layer_flops() -> None:
    one, two = spec(), spec(num_hidden_layers=8)
    for conv in ("causal", "palm", "vllm"):
        a = flops.prefill(one, PrefillChunk(300, 0, 2), conv)
        b = flops.prefill(two, PrefillChunk(300, 0, 2), conv)
        for key in a:
            assert b[key] == (a[key] if key == "lm_head" else 2 * a[key]), key


def test_gqa_reads_fewer_kv_bytes_than_mha_and_same_score_flops() -> None:
    mha, gqa = spec(), spec(num_key_value_heads=2)
    step = DecodeStep.uniform(8, 1000)
    assert memory.decode_bytes(gqa, step).read["kv_cache"] * 4 == memory.decode_bytes(mha, step).read["kv_cache"]
    assert flops.decode(gqa, step)["attn_scores"] == flops.decode(mha, step)["attn_scores"]
    assert flops.decode(gqa, step)["k_proj"] * 4 == flops.decode(mha, step)["k_proj"]


def test_sliding_window_caps_attention() -> None:
    full, win = spec(), spec(model_type="mistral", sliding_window=256)
    short, long = DecodeStep.uniform(1, 100), DecodeStep.uniform(1, 5000)
    assert flops.decode(win, short) == flops.decode(full, short)
    assert flops.decode(win, long)["attn_scores"] == 2 * 8 * 64 * 256 * 4
    assert flops.decode(full, long)["attn_scores"] == 2 * 8 * 64 * 5001 * 4
    # prefill: positions 1..256 see t keys, the rest 256
    pre = flops.prefill(win, PrefillChunk(1000), "causal")["attn_scores"]
    assert pre == 2 * 8 * 64 * 4 * (256 * 257 // 2 + 256 * (1000 - 256))
    assert memory.kv_cache_bytes(win, 5000) == memory.kv_cache_bytes(win, 256)


def test_top_k_moe_scales_with_k() -> None:
    moe = dict(model_type="mixtral", num_local_experts=8, intermediate_size=256)
    k1, k2 = spec(**moe, num_experts_per_tok=1), spec(**moe, num_experts_per_tok=2)
    chunk = PrefillChunk(64)
    assert flops.prefill(k2, chunk)["experts"] == 2 * flops.prefill(k1, chunk)["experts"]
    assert memory.params_total(k1) == memory.params_total(k2)
    assert memory.params_active(k2) > memory.params_active(k1)


def test_expected_experts_grows_with_batch_to_all() -> None:
    assert memory.expected_experts(8, 2, 1) == pytest.approx(2)
    assert memory.expected_experts(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))
    assert memory.expected_experts(256, 8, 10_000) == pytest.approx(256)
    moe = spec(model_type="mixtral", num_local_experts=8, num_experts_per_tok=2, intermediate_size=256)
    one = memory.decode_bytes(moe, DecodeStep.uniform(1, 10)).read["experts"]
    many = memory.decode_bytes(moe, DecodeStep.uniform(64, 10)).read["experts"]
    assert many == pytest.approx(one * 4, rel=1e-6)  # 2 of 8 experts, then all 8


def test_causal_prefill_is_the_triangle_palm_the_square() -> None:
    s = spec()
    n = 100
    causal = flops.prefill(s, PrefillChunk(n), "causal")
    palm = flops.prefill(s, PrefillChunk(n), "palm")
    vllm = flops.prefill(s, PrefillChunk(n), "vllm")
    assert causal["attn_scores"] * 2 * n == palm["attn_scores"] * (n + 1)
    assert vllm["attn_scores"] == palm["attn_scores"]
    assert causal["lm_head"] == vllm["lm_head"] == palm["lm_head"] // n


def test_request_is_prefill_plus_decode_steps() -> None:
    s = spec(model_type="mistral", sliding_window=40)
    i, o, b = 30, 25, 3
    total = flops.request(s, Request(i, o, b))
    by_steps = flops.prefill(s, PrefillChunk(i, 0, b))
    for k in range(o - 1):
        by_steps = flops.add(by_steps, flops.decode(s, DecodeStep.uniform(b, i + k)))
    assert total == by_steps


def test_chunked_prefill_adds_up_to_one_prefill_under_causal() -> None:
    s = spec(model_type="mistral", sliding_window=64)
    whole = flops.prefill(s, PrefillChunk(200, 0, 1, samples=True), "causal")
    first = flops.prefill(s, PrefillChunk(120, 0, 1, samples=False), "causal")
    rest = flops.prefill(s, PrefillChunk(80, 120, 1, samples=True), "causal")
    assert flops.add(first, rest) == whole


@pytest.mark.parametrize("first,last,window", [(1, 10, None), (1, 10, 4), (5, 9, 7), (8, 20, 3), (3, 2, 5)])
def test_keys_attended_closed_form(first: int, last: int, window: int | None) -> None:
    brute = sum(min(t, window) if window else t for t in range(first, last + 1))
    assert keys_attended(first, last, window) == brute


def test_tensor_parallel_splits_and_replicates() -> None:
    s = spec(num_key_value_heads=2)
    step = DecodeStep.uniform(1, 10)
    f = flops.decode(s, step)
    per = flops.per_gpu(s, f, 8)  # 2 KV heads on 8 GPUs: each GPU holds one, replicated
    assert per["q_proj"] == f["q_proj"] / 8
    assert per["k_proj"] == f["k_proj"] / 2
    assert memory.kv_bytes_per_token(s, tp=8) == memory.kv_bytes_per_token(s) / 2
    with pytest.raises(MfubenchError):
        flops.per_gpu(s, f, 3)


def test_quantized_weights_are_smaller() -> None:
    from mfubench.model.quant import weight_format

    s = spec()
    bf16 = sum(memory.weight_bytes(s).values())
    int4 = sum(memory.weight_bytes(s.with_weights(weight_format("int4"))).values())
    fp8 = sum(memory.weight_bytes(s.with_weights(weight_format("fp8"))).values())
    assert int4 < fp8 < bf16
    linear = sum(c for k, c in memory.param_breakdown(s).items() if k.endswith("proj") or k == "mlp")
    assert bf16 - fp8 == pytest.approx(linear * 1.0)  # 2 -> 1 byte on linear layers only


def test_fp8_kv_cache_halves_kv_bytes() -> None:
    s = spec()
    assert memory.kv_bytes_per_token(s, "fp8") * 2 == memory.kv_bytes_per_token(s)


def test_moe_spec_rejects_top_k_above_experts() -> None:
    with pytest.raises(ValueError):
        replace(MoE(8, 2, 16), top_k=9)


def test_decode_span_bytes_are_the_steps_summed() -> None:
    s = spec(model_type="mistral", sliding_window=40, num_key_value_heads=2)
    span = memory.decode_span_bytes(s, 3, 30, 25, tp=2)
    steps = [memory.decode_bytes(s, DecodeStep.uniform(3, 30 + k), tp=2) for k in range(25)]
    assert span.total == pytest.approx(sum(b.total for b in steps))
    assert span.read["kv_cache"] == pytest.approx(sum(b.read["kv_cache"] for b in steps))
