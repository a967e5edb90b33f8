"""Golden tests of the families with new layer kinds: mfubench's counts against PyTorch itself.

As in ``test_counting_oracle.py``: a small random model of each family is built with
``transformers`` from the family's config shape (every structural switch kept on, sizes shrunk
and made unequal, so that a swapped dimension shows); ``sum(p.numel())`` must equal
``params_total`` and ``FlopCounterMode`` on a prefill and on a cached decode step must equal
mfubench's FLOPs exactly (``palm`` with logits everywhere, ``vllm`` with the last row only).

Where the reference implementation computes more than the model needs, or computes it where
``FlopCounterMode`` cannot see it, its kernels are replaced by the instrumented ones of
:mod:`family_oracles` (the recurrent gated delta rule and an exact causal convolution as
matmuls); each test first checks that the instrumented model gives the reference's logits.
What each oracle counts, and why, is in docs/counting.md ("How the hybrids are checked").
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import family_oracles as fo  # noqa: E402
from mfubench.counting import flops, memory  # noqa: E402
from mfubench.counting.workload import DecodeStep, PrefillChunk  # noqa: E402
from mfubench.model.hf_config import parse_config  # noqa: E402
from mfubench.model.spec import ModelSpec  # noqa: E402
from test_counting_oracle import counted  # noqa: E402

COMMON: dict[str, Any] = dict(vocab_size=512, max_position_embeddings=256, torch_dtype="float32")

FAMILIES: dict[str, dict[str, Any]] = {
    # 3 gated-delta layers and a gated full-attention one; layer 1 dense, the others MoE
    "qwen3_next": dict(model_type="qwen3_next", hidden_size=64, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                       intermediate_size=96, moe_intermediate_size=24,
                       shared_expert_intermediate_size=40, num_experts=6, num_experts_per_tok=2,
                       decoder_sparse_step=1, mlp_only_layers=[1], linear_num_key_heads=2,
                       linear_num_value_heads=4, linear_key_head_dim=8, linear_value_head_dim=12,
                       linear_conv_kernel_dim=4, full_attention_interval=4),
    # Mamba2, attention, ReLU^2 MLP and ReLU^2 MoE blocks, one per layer
    "nemotron_h": dict(model_type="nemotron_h", hidden_size=64, hybrid_override_pattern="M*-ME",
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                       intermediate_size=96, mamba_num_heads=4, mamba_head_dim=8, ssm_state_size=6,
                       n_groups=2, conv_kernel=4, use_conv_bias=True, chunk_size=8,
                       n_routed_experts=6, num_experts_per_tok=2, moe_intermediate_size=24,
                       moe_shared_expert_intermediate_size=40, n_group=1, topk_group=1),
    # MLA with a DSA indexer in every layer (top-k above the test lengths: the oracle cannot see
    # which keys the mask keeps; the capping is tested in closed form), first layer dense
    "deepseek_v32": dict(model_type="deepseek_v32", hidden_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=4, intermediate_size=96,
                         moe_intermediate_size=24, n_routed_experts=8, n_shared_experts=1,
                         num_experts_per_tok=2, n_group=2, topk_group=1, first_k_dense_replace=1,
                         q_lora_rank=40, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
                         v_head_dim=12, index_n_heads=3, index_head_dim=16, index_topk=64,
                         rope_scaling=None),
    # chunked (rotary) layers and a NoPE full one; MoE with a shared expert interleaved with
    # dense layers of another width (chunk above the test lengths, as windows; the chunking is
    # tested in closed form)
    "llama4_text": dict(model_type="llama4_text", hidden_size=64, num_hidden_layers=4,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                        intermediate_size=24, intermediate_size_mlp=96, num_local_experts=4,
                        num_experts_per_tok=1, interleave_moe_layer_step=2,
                        attention_chunk_size=64, use_qk_norm=True, no_rope_layer_interval=4,
                        rope_scaling=None),
    # MLA + MoE under Moonshot's model_type (the DeepSeek-V3 code)
    "glm4_moe": dict(model_type="glm4_moe", hidden_size=64, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                     intermediate_size=96, moe_intermediate_size=24, n_routed_experts=6,
                     n_shared_experts=2, num_experts_per_tok=2, first_k_dense_replace=1,
                     attention_bias=True, use_qk_norm=True, n_group=1, topk_group=1,
                     partial_rotary_factor=0.5),
    "minimax_m2": dict(model_type="minimax_m2", hidden_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                       intermediate_size=24, num_local_experts=6, num_experts_per_tok=2,
                       rotary_dim=8),
    "ernie4_5_moe": dict(model_type="ernie4_5_moe", hidden_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
                         moe_intermediate_size=24, moe_num_experts=6, moe_k=2,
                         moe_num_shared_experts=2, moe_layer_start_index=1,
                         moe_layer_end_index=-1, moe_layer_interval=1, use_bias=True,
                         tie_word_embeddings=False),
    "hunyuan_v1_moe": dict(model_type="hunyuan_v1_moe", hidden_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                           intermediate_size=24, num_experts=6, moe_topk=2,
                           attention_bias=True),
    # gated short-convolution layers around an attention layer; HF derives the FFN width
    "lfm2": dict(model_type="lfm2", hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, intermediate_size=144, block_multiple_of=16,
                 block_ffn_dim_multiplier=1.3, conv_L_cache=3, conv_bias=True,
                 layer_types=["conv", "full_attention", "conv"], tie_word_embeddings=True),
    # Qwen3.5 text towers: Qwen3-Next's layer kinds with split in-projections, dense or MoE
    "qwen3_5_text": dict(model_type="qwen3_5_text", hidden_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         intermediate_size=96, linear_num_key_heads=2, linear_num_value_heads=4,
                         linear_key_head_dim=8, linear_value_head_dim=12,
                         linear_conv_kernel_dim=4,
                         layer_types=["linear_attention"] * 3 + ["full_attention"]),
    "qwen3_5_moe_text": dict(model_type="qwen3_5_moe_text", hidden_size=64, num_hidden_layers=4,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                             moe_intermediate_size=24, shared_expert_intermediate_size=40,
                             num_experts=6, num_experts_per_tok=2, linear_num_key_heads=2,
                             linear_num_value_heads=4, linear_key_head_dim=8,
                             linear_value_head_dim=12, linear_conv_kernel_dim=4,
                             full_attention_interval=2),
    # Kimi Delta Attention layers beside an MLA layer (no q LoRA), the first layer dense
    "kimi_linear": dict(model_type="kimi_linear", hidden_size=64, num_hidden_layers=3,
                        num_attention_heads=4, num_key_value_heads=4, intermediate_size=96,
                        moe_intermediate_size=24, num_local_experts=6, n_shared_experts=1,
                        num_experts_per_tok=2, kv_lora_rank=32, q_lora_rank=None,
                        qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12,
                        linear_num_heads=2, linear_head_dim=8, linear_conv_kernel_dim=4,
                        layer_types=["linear_attention", "full_attention", "linear_attention"],
                        mlp_layer_types=["dense", "sparse", "sparse"], rope_scaling=None,
                        pad_token_id=0, bos_token_id=1, eos_token_id=2),
    # attention and Mamba2 in parallel in every layer (no gated norm: the gate goes into the
    # scan), muP multipliers on; projector and Mamba biases differ
    "falcon_h1": dict(model_type="falcon_h1", hidden_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                      intermediate_size=96, mamba_d_ssm=48, mamba_n_heads=4, mamba_d_head=12,
                      mamba_n_groups=2, mamba_d_state=6, mamba_d_conv=4, mamba_chunk_size=8,
                      mamba_conv_bias=True, mamba_proj_bias=True, projectors_bias=False,
                      mamba_rms_norm=False, attention_bias=True, mlp_bias=True,
                      key_multiplier=0.5, ssm_multipliers=[1.0, 0.5, 2.0, 1.0, 0.25],
                      mlp_multipliers=[0.5, 2.0]),
    # Granite 4 hybrid: Mamba2 and attention layers, MoE beside a shared MLP
    "granitemoehybrid": dict(model_type="granitemoehybrid", hidden_size=64, num_hidden_layers=3,
                             num_attention_heads=4, num_key_value_heads=2, intermediate_size=24,
                             shared_intermediate_size=40, num_local_experts=6,
                             num_experts_per_tok=2, layer_types=["mamba", "attention", "mamba"],
                             mamba_n_heads=4, mamba_d_head=32, mamba_n_groups=2, mamba_d_state=6,
                             mamba_d_conv=4, mamba_chunk_size=8, mamba_expand=2,
                             position_embedding_type="rope"),
}

#: Kernels replaced by their instrumented forms, per family: module -> {name: replacement}.
INSTRUMENTED: dict[str, dict[str, dict[str, Any]]] = {
    "qwen3_next": {"transformers.models.qwen3_next.modeling_qwen3_next": {
        "torch_chunk_gated_delta_rule": fo.gated_delta_rule,
        "torch_recurrent_gated_delta_rule": fo.gated_delta_rule,
        "causal_conv1d_fn": fo.causal_conv1d_fn,
        "causal_conv1d_update": fo.causal_conv1d_update,
    }},
    "qwen3_5_text": {"transformers.models.qwen3_5.modeling_qwen3_5": {
        "torch_chunk_gated_delta_rule": fo.gated_delta_rule,
        "torch_recurrent_gated_delta_rule": fo.gated_delta_rule,
        "causal_conv1d_fn": fo.causal_conv1d_fn,
        "causal_conv1d_update": fo.causal_conv1d_update,
    }},
    "qwen3_5_moe_text": {"transformers.models.qwen3_5_moe.modeling_qwen3_5_moe": {
        "torch_chunk_gated_delta_rule": fo.gated_delta_rule,
        "torch_recurrent_gated_delta_rule": fo.gated_delta_rule,
        "causal_conv1d_fn": fo.causal_conv1d_fn,
        "causal_conv1d_update": fo.causal_conv1d_update,
    }},
    "falcon_h1": {"transformers.models.falcon_h1.modeling_falcon_h1": {
        "mamba2_chunk_scan": fo.mamba2_scan,
        "mamba2_selective_state_update": fo.mamba2_state_update,
        "causal_conv1d_fn": fo.causal_conv1d_fn,
        "causal_conv1d_update": fo.causal_conv1d_update,
    }},
    "granitemoehybrid": {"transformers.models.granitemoehybrid.modeling_granitemoehybrid": {
        "mamba2_chunk_scan": fo.mamba2_scan,
        "mamba2_selective_state_update": fo.mamba2_state_update,
        "causal_conv1d_fn": fo.causal_conv1d_fn,
        "causal_conv1d_update": fo.causal_conv1d_update,
    }},
    "kimi_linear": {"transformers.models.kimi_linear.modeling_kimi_linear": {
        "chunk_kimi_delta_attention": fo.kimi_delta_rule,
        "recurrent_kimi_delta_attention": fo.kimi_delta_rule,
        "causal_conv1d_fn": fo.causal_conv1d_fn,
        "causal_conv1d_update": fo.causal_conv1d_update,
    }},
    "nemotron_h": {"transformers.models.nemotron_h.modeling_nemotron_h": {
        "mamba2_chunk_scan": fo.mamba2_scan,
        "mamba2_selective_state_update": fo.mamba2_state_update,
        "causal_conv1d_fn": fo.causal_conv1d_fn,
        "causal_conv1d_update": fo.causal_conv1d_update,
    }},
    "lfm2": {"transformers.models.lfm2.modeling_lfm2": {
        "causal_conv1d_fn": fo.causal_conv1d_fn,
        "causal_conv1d_update": fo.causal_conv1d_update,
    }},
    "llama4_text": {"transformers.models.llama4.modeling_llama4": {
        "Llama4TextMoe.forward": fo.llama4_moe_forward,
    }},
}


def build(family: str) -> tuple[Any, dict[str, Any]]:
    raw = {**COMMON, **FAMILIES[family]}
    model_type = raw.pop("model_type")
    config = transformers.AutoConfig.for_model(model_type, **raw)
    config._experts_implementation = "eager"  # one matmul per token-expert pair, as served
    config._attn_implementation = "eager"  # matmuls FlopCounterMode sees
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.eval()
    return model, config.to_dict()


@pytest.fixture
def instrumented(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    family = request.node.callspec.params["family"]
    _instrument(family, monkeypatch)
    yield


def _instrument(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the family's kernels (``name`` or ``Class.method`` in its module)."""
    for module_name, names in INSTRUMENTED.get(family, {}).items():
        module = importlib.import_module(module_name)
        for dotted, replacement in names.items():
            *owner_path, name = dotted.split(".")
            owner: Any = module
            for part in owner_path:
                owner = getattr(owner, part)
            assert hasattr(owner, name), (module_name, dotted)
            monkeypatch.setattr(owner, name, replacement)


_BUILT: dict[str, tuple[Any, ModelSpec]] = {}


def model_and_spec(family: str) -> tuple[Any, ModelSpec]:
    if family not in _BUILT:
        model, config = build(family)
        _BUILT[family] = (model, parse_config(config, family))
    return _BUILT[family]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_params_match_numel(family: str) -> None:
    model, spec = model_and_spec(family)
    assert memory.params_total(spec) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("family", sorted(INSTRUMENTED))
def test_instrumented_kernels_give_the_reference_outputs(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = model_and_spec(family)
    ids = torch.randint(0, 512, (2, 11))
    nxt = torch.randint(0, 512, (2, 1))

    def run() -> tuple[Any, Any]:
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True)
            step = model(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
        return out.logits, step.logits

    reference = run()
    _instrument(family, monkeypatch)
    ours = run()
    for a, b in zip(reference, ours, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("logits_to_keep, convention", [(0, "palm"), (1, "vllm")])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_prefill_flops_match_flop_counter(family: str, logits_to_keep: int, convention: str,
                                          instrumented: None) -> None:
    model, spec = model_and_spec(family)
    n, batch = 20, 2
    ids = torch.randint(0, 512, (batch, n))
    oracle, _ = counted(lambda: model(input_ids=ids, logits_to_keep=logits_to_keep))
    ours = flops.total(flops.prefill(spec, PrefillChunk(n, 0, batch), convention))  # type: ignore[arg-type]
    assert ours == oracle


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_decode_step_matches_flop_counter(family: str, instrumented: None) -> None:
    model, spec = model_and_spec(family)
    n, batch = 17, 3
    ids = torch.randint(0, 512, (batch, n))
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    nxt = torch.randint(0, 512, (batch, 1))
    oracle, _ = counted(lambda: model(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True))
    ours = flops.total(flops.decode(spec, DecodeStep.uniform(batch, n)))
    assert ours + _mla_expanded_minus_absorbed(spec, batch, n) == oracle


def _mla_expanded_minus_absorbed(spec: ModelSpec, batch: int, n: int) -> int:
    """What HF's MLA decode computes beyond the absorbed form mfubench counts (as in
    ``test_counting_oracle``): every cached latent re-expanded through ``kv_b_proj``, and the
    pairs in the expanded space; 0 for models without MLA."""
    a = spec.attention
    if a.kv_lora_rank is None:
        return 0
    layers = sum(layer.attention is not None for layer in spec.layers)
    pairs = batch * (n + 1) * layers
    nope = a.head_dim - a.qk_rope_head_dim
    re_expand = 2 * batch * n * a.kv_lora_rank * a.num_heads * (nope + a.v_head_dim) * layers
    expanded = 2 * a.num_heads * (a.head_dim + a.v_head_dim) * pairs
    absorbed = 2 * a.num_heads * (2 * a.kv_lora_rank + a.qk_rope_head_dim) * pairs
    return re_expand + expanded - absorbed
