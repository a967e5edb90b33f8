"""Golden tests: mfubench's counts against PyTorch itself.

For every supported family, a small random model is built with ``transformers`` from the family's
real config shape with shrunken sizes. ``torch.utils.flop_counter.FlopCounterMode`` counts a
prefill forward and a cached decode step; mfubench must match it exactly under the convention
that counts the same things:

- FlopCounterMode sees the full ``n x n`` score matrix (it ignores masks) -> ``palm``/``vllm``
  attention; the LM head on every position (``logits_to_keep=0``) -> ``palm``; on the last one
  (``logits_to_keep=1``) -> ``vllm``.
- The rotary-embedding frequency product is a matmul in HF's code but no model work: its module
  is excluded from the oracle.
- Windows are kept longer than the test sequences, since the oracle cannot see masks; window
  capping is covered by the metamorphic tests.

Parameter counts must equal ``sum(p.numel())``.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from mfubench.counting import flops, memory  # noqa: E402
from mfubench.counting.workload import DecodeStep, PrefillChunk  # noqa: E402
from mfubench.model.hf_config import parse_config  # noqa: E402

COMMON: dict[str, Any] = dict(vocab_size=512, max_position_embeddings=256, torch_dtype="float32")

# The real configs' shapes, shrunk: every structural switch of the family kept on.
FAMILIES: dict[str, dict[str, Any]] = {
    "llama": dict(model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=96, tie_word_embeddings=False),
    "mistral": dict(model_type="mistral", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, intermediate_size=96, sliding_window=128, head_dim=16),
    "qwen2": dict(model_type="qwen2", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=96, tie_word_embeddings=True),
    "qwen3": dict(model_type="qwen3", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=24, intermediate_size=96,
                  tie_word_embeddings=False),
    "mixtral": dict(model_type="mixtral", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, intermediate_size=48, num_local_experts=4,
                    num_experts_per_tok=2),
    "qwen2_moe": dict(model_type="qwen2_moe", hidden_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
                      moe_intermediate_size=32, shared_expert_intermediate_size=80, num_experts=6,
                      num_experts_per_tok=2, decoder_sparse_step=1, mlp_only_layers=[1]),
    "qwen3_moe": dict(model_type="qwen3_moe", hidden_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=24,
                      intermediate_size=96, moe_intermediate_size=32, num_experts=8,
                      num_experts_per_tok=3, decoder_sparse_step=1, mlp_only_layers=[]),
    "gemma2": dict(model_type="gemma2", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=32, intermediate_size=96, sliding_window=128,
                   query_pre_attn_scalar=32),
    "gemma3_text": dict(model_type="gemma3_text", hidden_size=64, num_hidden_layers=3,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                        intermediate_size=96, sliding_window=128, sliding_window_pattern=2,
                        query_pre_attn_scalar=32),
    "deepseek_v3": dict(model_type="deepseek_v3", hidden_size=64, num_hidden_layers=3,
                        num_attention_heads=4, num_key_value_heads=4, intermediate_size=96,
                        moe_intermediate_size=24, n_routed_experts=8, n_shared_experts=1,
                        num_experts_per_tok=2, n_group=2, topk_group=1, first_k_dense_replace=1,
                        q_lora_rank=40, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
                        v_head_dim=12, rope_scaling=None),
    "gpt_oss": dict(model_type="gpt_oss", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=16, intermediate_size=40, num_local_experts=4,
                    num_experts_per_tok=2, sliding_window=128,
                    layer_types=["sliding_attention", "full_attention"], rope_scaling=None),
}


def build(family: str) -> tuple[Any, dict[str, Any]]:
    raw = {**COMMON, **FAMILIES[family]}
    model_type = raw.pop("model_type")
    config = transformers.AutoConfig.for_model(model_type, **raw)
    config._experts_implementation = "eager"  # one matmul per token-expert pair, as served
    # Eager attention: its matmuls are visible to FlopCounterMode (CPU SDPA kernels are not).
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.eval()
    return model, config.to_dict()


def counted(fn: Any) -> tuple[int, Any]:
    """Run ``fn`` under FlopCounterMode; FLOPs outside rotary-embedding modules, and the result."""
    mode = FlopCounterMode(display=False)
    with torch.no_grad(), mode:
        result = fn()
    counts = mode.get_flop_counts()
    total = sum(counts["Global"].values())
    rotary = sum(
        sum(ops.values())
        for name, ops in counts.items()
        if name.endswith("rotary_emb") and name.count(".") == 2  # top-level rotary module only
    )
    return int(total - rotary), result


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_model(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    model, config = build(request.param)
    return request.param, model, parse_config(config, request.param)


def test_params_match_numel(family_model: tuple[str, Any, Any]) -> None:
    family, model, spec = family_model
    assert memory.params_total(spec) == sum(p.numel() for p in model.parameters()), family


@pytest.mark.parametrize("logits_to_keep, convention", [(0, "palm"), (1, "vllm")])
def test_prefill_flops_match_flop_counter(
    family_model: tuple[str, Any, Any], logits_to_keep: int, convention: str
) -> None:
    family, model, spec = family_model
    n, batch = 20, 2
    ids = torch.randint(0, 512, (batch, n))
    oracle, _ = counted(lambda: model(input_ids=ids, logits_to_keep=logits_to_keep))
    ours = flops.total(flops.prefill(spec, PrefillChunk(n, 0, batch), convention))  # type: ignore[arg-type]
    assert ours == oracle, (family, convention)


def test_decode_step_matches_flop_counter(family_model: tuple[str, Any, Any]) -> None:
    family, model, spec = family_model
    n, batch = 17, 3
    ids = torch.randint(0, 512, (batch, n))
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    nxt = torch.randint(0, 512, (batch, 1))
    oracle, _ = counted(lambda: model(input_ids=nxt, past_key_values=out.past_key_values,
                                      use_cache=True))
    ours = flops.total(flops.decode(spec, DecodeStep.uniform(batch, n)))
    if spec.attention.is_mla:
        # HF keeps the latent cache but re-expands it with kv_b_proj for every cached token at
        # every step, and attends in the expanded space; mfubench counts the absorbed form that
        # serving engines run. The two differ by exactly these terms:
        a, layers = spec.attention, spec.num_layers
        pairs = batch * (n + 1) * layers
        nope = a.head_dim - a.qk_rope_head_dim
        assert a.kv_lora_rank is not None
        re_expand = 2 * batch * n * a.kv_lora_rank * a.num_heads * (nope + a.v_head_dim) * layers
        expanded = 2 * a.num_heads * (a.head_dim + a.v_head_dim) * pairs
        absorbed = 2 * a.num_heads * (2 * a.kv_lora_rank + a.qk_rope_head_dim) * pairs
        ours = ours + re_expand + expanded - absorbed
    assert ours == oracle, family
