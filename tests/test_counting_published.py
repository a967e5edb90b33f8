"""Golden tests against published figures: parameter counts of the bundled configs, the seed."""

from __future__ import annotations

import pytest

from mfubench.counting import flops, memory
from mfubench.counting.workload import PrefillChunk
from mfubench.model.registry import bundled_models, load_model

PUBLISHED = [m for m in bundled_models() if m.published_params_total]


@pytest.mark.parametrize("entry", PUBLISHED, ids=lambda m: m.id)
def test_total_params_within_1pct_of_published(entry) -> None:  # type: ignore[no-untyped-def]
    spec = load_model(entry.id)
    published = entry.published_params_total - (entry.published_params_vision or 0)
    assert memory.params_total(spec) == pytest.approx(published, rel=0.01)


@pytest.mark.parametrize(
    "entry", [m for m in PUBLISHED if m.published_params_active], ids=lambda m: m.id
)
def test_active_params_match_published(entry) -> None:  # type: ignore[no-untyped-def]
    """Published active counts carry two significant digits (3.3B, 12.9B, 5.1B): 2 %."""
    spec = load_model(entry.id)
    ours = (
        memory.params_active_non_embedding(spec)
        if entry.published_active_excludes_embedding
        else memory.params_active(spec)
    )
    assert ours == pytest.approx(entry.published_params_active, rel=0.02)


def test_examples_from_the_issue() -> None:
    assert memory.params_total(load_model("meta-llama/Llama-3.3-70B-Instruct")) == 70_553_706_496
    qwen = load_model("Qwen/Qwen3-30B-A3B")
    assert memory.params_total(qwen) / 1e9 == pytest.approx(30.5, rel=0.01)
    assert memory.params_active(qwen) / 1e9 == pytest.approx(3.3, rel=0.02)
    mixtral = load_model("mistralai/Mixtral-8x7B-v0.1")
    assert memory.params_total(mixtral) / 1e9 == pytest.approx(46.7, rel=0.01)
    assert memory.params_active(mixtral) / 1e9 == pytest.approx(12.9, rel=0.01)
    ds = load_model("deepseek-ai/DeepSeek-V3")
    assert memory.params_total(ds) / 1e9 == pytest.approx(671, rel=0.01)
    assert memory.params_active_non_embedding(ds) / 1e9 == pytest.approx(37, rel=0.011)


def test_seed_prefill_2048_tokens() -> None:
    """The seed's "~296 TFLOP per 2048-token prefill" is the palm count; causal is 285.9."""
    spec = load_model("meta-llama/Llama-3.3-70B-Instruct")
    chunk = PrefillChunk(2048)
    causal = flops.total(flops.prefill(spec, chunk, "causal"))
    palm = flops.total(flops.prefill(spec, chunk, "palm"))
    assert causal / 1e12 == pytest.approx(285.9, abs=0.05)
    assert palm / 1e12 == pytest.approx(295.7, abs=0.05)
    # palm = causal + the upper triangle of attention + the LM head on 2047 more rows
    a, n = spec.attention, 2048
    upper = 4 * a.num_heads * a.head_dim * (n * n - n * (n + 1) // 2) * spec.num_layers
    lm = 2 * (n - 1) * spec.hidden_size * spec.vocab_size
    assert palm - causal == upper + lm


def test_llama_70b_weights_and_kv_under_tp4() -> None:
    spec = load_model("meta-llama/Llama-3.3-70B-Instruct")
    assert sum(memory.weight_bytes(spec, 1).values()) == 2 * 70_553_706_496
    # 8 KV heads over 4 GPUs: 2 heads x (128 + 128) x 2 bytes x 80 layers per token per GPU
    assert memory.kv_bytes_per_token(spec, tp=4) == 2 * 256 * 2 * 80
    # norms are replicated, so a GPU holds slightly more than a quarter
    per_gpu = sum(memory.weight_bytes(spec, 4).values())
    assert per_gpu > 2 * 70_553_706_496 / 4
    assert per_gpu == pytest.approx(2 * 70_553_706_496 / 4, rel=1e-4)
