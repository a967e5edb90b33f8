"""Counting of hybrids and the new layer kinds at real sizes: bundled configs and their variants,
fixed-state decode bytes flat in the context, chunked and sparse key counts in closed form,
TP checks, and ``mfubench flops``/``roofline`` on every new bundled config."""

from __future__ import annotations

import json
from collections import Counter
from importlib.resources import files

import pytest

from mfubench.cli import main
from mfubench.counting import flops, memory
from mfubench.counting.kinds import chunk_keys_attended, state_elements
from mfubench.counting.workload import DecodeStep, PrefillChunk
from mfubench.errors import ConfigError, MfubenchError, UnknownModelError
from mfubench.model.hf_config import parse_config
from mfubench.model.mixers import ChunkedAttention, GatedDeltaNet, SelfAttention, SparseAttention
from mfubench.model.registry import bundled_variants, find_bundled, load_model
from mfubench.model.spec import MoE

#: Bundled configs of the families with new layer kinds (each must run through the CLI).
NEW_BUNDLED = ["Qwen/Qwen3-Next-80B-A3B-Thinking", "nvidia/Nemotron-H-56B-Base-8K",
               "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "deepseek-ai/DeepSeek-V3.2",
               "meta-llama/Llama-4-Scout-17B-16E-Instruct", "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
               "moonshotai/Kimi-K2-Instruct", "MiniMaxAI/MiniMax-M2.5", "zai-org/GLM-4.6",
               "baidu/ERNIE-4.5-300B-A47B-PT", "Qwen/Qwen3.5-397B-A17B"]


def test_qwen3_next_layer_kinds_and_exact_total() -> None:
    spec = load_model("Qwen/Qwen3-Next-80B-A3B-Instruct")
    kinds = [type(m).__name__ for layer in spec.layers for m in layer.mixers]
    assert kinds == (["GatedDeltaNet"] * 3 + ["SelfAttention"]) * 12
    assert spec.attention.output_gate and spec.attention.head_dim == 256
    # the HF safetensors total of the architecture (quoted in index.json's params_source)
    assert memory.params_total(spec) == 79_674_391_296


def test_variants_resolve_offline_to_the_base_architecture_with_their_own_weights(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for variant in bundled_variants():
        base = load_model(variant.base)
        spec = load_model(variant.id)
        assert spec.layers == base.layers and spec.attention == base.attention, variant.id
        assert spec.name == variant.id
        expected = "fp8-block" if variant.quantization_config else base.weights.dtype
        assert spec.weights.name == expected, variant.id
    fp8 = load_model("qwen/qwen3-next-80b-a3b-instruct-fp8")  # case-insensitive, exact
    bf16 = load_model("Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert sum(memory.weight_bytes(fp8).values()) < 0.55 * sum(memory.weight_bytes(bf16).values())
    with pytest.raises(UnknownModelError, match="Qwen3-Next-80B-A3B-Instruct-FP8"):
        load_model("Qwen/Qwen3-Next-80B-A3B-Instruct-FP9")


def test_variant_ids_are_unique_and_not_bundled_ids() -> None:
    ids = [v.id.lower() for v in bundled_variants()]
    assert len(ids) == len(set(ids))
    assert all(find_bundled(v.id) is None for v in bundled_variants())
    assert all(v.source.strip() for v in bundled_variants())


def test_hybrid_decode_bytes_of_fixed_state_layers_do_not_grow_with_context() -> None:
    spec = load_model("Qwen/Qwen3-Next-80B-A3B-Instruct")
    short = memory.decode_bytes(spec, DecodeStep.uniform(4, 1_000))
    long = memory.decode_bytes(spec, DecodeStep.uniform(4, 100_000))
    state = memory.state_bytes_per_sequence(spec)
    assert short.read["state"] == long.read["state"] == short.write["state"] == 4 * state
    # only the 12 attention layers' KV grows: 2 KV heads x (256 + 256) x 2 bytes per token
    per_token = 12 * 2 * 512 * 2
    assert long.read["kv_cache"] - short.read["kv_cache"] == 4 * per_token * 99_000
    assert memory.kv_bytes_per_token(spec) == per_token
    # the state: per gated-delta layer 32 value heads of 128 x 128, conv state 3 x 8192, bf16
    assert state == 36 * (32 * 128 * 128 + 3 * (2 * 16 * 128 + 32 * 128)) * 2
    gdn = spec.layers[0].mixers[0]
    assert isinstance(gdn, GatedDeltaNet) and state_elements(gdn, spec.hidden_size) * 36 * 2 == state
    # the cache of a sequence (the capacity's denominator): KV of 12 layers plus the state
    assert memory.kv_cache_bytes(spec, 8192) == per_token * 8192 + state
    # the state-update FLOPs are linear in the tokens: the same per token at any context
    a = flops.decode(spec, DecodeStep.uniform(1, 1_000))
    b = flops.decode(spec, DecodeStep.uniform(1, 100_000))
    assert a["gdn_state"] == b["gdn_state"] == 2 * 36 * 3 * 32 * 128 * 128
    assert b["attn_scores"] > a["attn_scores"]


def test_decode_span_and_prefill_bytes_book_the_state_once_per_sequence_and_step() -> None:
    spec = load_model("Qwen/Qwen3-Next-80B-A3B-Instruct")
    state = memory.state_bytes_per_sequence(spec, tp=2)
    span = memory.decode_span_bytes(spec, 3, 500, 7, tp=2)
    assert span.read["state"] == span.write["state"] == 3 * 7 * state
    steps = [memory.decode_bytes(spec, DecodeStep.uniform(3, 500 + k), tp=2) for k in range(7)]
    assert span.total == pytest.approx(sum(s.total for s in steps))
    fresh = memory.prefill_bytes(spec, PrefillChunk(1000, 0, 3), tp=2)
    assert "state" not in fresh.read and fresh.write["state"] == 3 * state
    cont = memory.prefill_bytes(spec, PrefillChunk(1000, 500, 3), tp=2)
    assert cont.read["state"] == 3 * state


def test_tp_must_divide_the_linear_attention_heads() -> None:
    spec = load_model("Qwen/Qwen3-Next-80B-A3B-Instruct")  # 16 key, 32 value heads; 2 KV heads
    assert memory.state_bytes_per_sequence(spec, 2) * 2 == memory.state_bytes_per_sequence(spec)
    per = flops.per_gpu(spec, flops.decode(spec, DecodeStep.uniform(1, 10)), 2)
    assert per["gdn_state"] * 2 == flops.decode(spec, DecodeStep.uniform(1, 10))["gdn_state"]
    with pytest.raises(MfubenchError, match="does not divide"):
        memory.weight_bytes(spec, 3)


def test_conventions_differ_only_in_attention_and_lm_head_for_hybrids() -> None:
    spec = load_model("Qwen/Qwen3-Next-80B-A3B-Instruct")
    chunk = PrefillChunk(300, 0, 2)
    causal, palm = flops.prefill(spec, chunk, "causal"), flops.prefill(spec, chunk, "palm")
    for key in causal:
        if key not in ("attn_scores", "attn_values", "lm_head"):
            assert causal[key] == palm[key], key
    # the pairs are those of the 12 attention layers only
    a = spec.attention
    assert palm["attn_scores"] == 2 * a.num_heads * a.head_dim * 300 * 300 * 2 * 12


@pytest.mark.parametrize("first,last,chunk", [(1, 10, 4), (1, 4, 4), (3, 17, 5), (9, 9, 8), (6, 5, 3),
                                              (1, 1000, 8192), (7000, 9000, 8192)])
def test_chunk_keys_closed_form(first: int, last: int, chunk: int) -> None:
    assert chunk_keys_attended(first, last, chunk) == sum((t - 1) % chunk + 1 for t in range(first, last + 1))


def test_layer_window_property_is_the_attention_window() -> None:
    oss = load_model("openai/gpt-oss-20b")
    assert oss.layers[0].mixers == (SelfAttention(128),) and oss.layers[0].window == 128
    qn = load_model("Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert qn.layers[0].attention is None and qn.layers[0].window is None


@pytest.mark.parametrize("model_id", NEW_BUNDLED)
def test_flops_and_roofline_cli_on_each_new_bundled_config(model_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", model_id, "-i", "2048", "-b", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params_total"] == memory.params_total(load_model(model_id))
    assert out["decode"]["flops"] > 0 and out["prefill"]["flops"] > out["decode"]["flops"]
    assert main(["roofline", model_id, "--hardware", "8xH100-SXM", "-b", "1,32", "-i", "1024",
                 "-o", "128", "--json"]) == 0
    roof = json.loads(capsys.readouterr().out)
    # decode at batch 1 streams the weights: never compute-bound
    assert all(p["decode"]["bound"] != "compute" for p in roof["points"] if p["batch_size"] == 1)
    assert all(p["decode"]["roofline_s"] > 0 for p in roof["points"])
    assert main(["flops", model_id, "-i", "512"]) == 0
    assert model_id in capsys.readouterr().out


def _composition(model_id: str) -> Counter[tuple[str, tuple[str, ...]]]:
    return Counter((type(lyr.ffn).__name__, tuple(type(m).__name__ for m in lyr.mixers))
                   for lyr in load_model(model_id).layers)


def test_nemotron_h_layer_composition_is_the_published_one() -> None:
    # NVIDIA: 54 Mamba-2, 54 MLP and 10 self-attention layers (56B); 23 Mamba-2, 23 MoE, 6 attention (Nano)
    assert _composition("nvidia/Nemotron-H-56B-Base-8K") == {
        ("NoneType", ("Mamba2",)): 54, ("DenseMLP", ()): 54, ("NoneType", ("SelfAttention",)): 10}
    assert _composition("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16") == {
        ("NoneType", ("Mamba2",)): 23, ("MoE", ()): 23, ("NoneType", ("SelfAttention",)): 6}
    nano = load_model("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    moe = next(lyr.ffn for lyr in nano.layers if isinstance(lyr.ffn, MoE))
    assert not moe.gated and moe.num_matrices == 2 and moe.shared_intermediate_size == 3712


def test_mamba2_state_is_fp32_and_flat_in_the_context() -> None:
    spec = load_model("nvidia/Nemotron-H-56B-Base-8K")
    assert spec.state_dtype == "fp32" and spec.weights.dtype == "bf16"
    # per Mamba2 layer: 256 heads x 64 x 256 state in fp32, conv state 3 x (16384 + 2 x 8 x 256) in bf16
    per_layer = 256 * 64 * 256 * 4 + 3 * (256 * 64 + 2 * 8 * 256) * 2
    assert memory.state_bytes_per_sequence(spec) == 54 * per_layer
    assert memory.state_bytes_per_sequence(spec, tp=8) == 54 * per_layer / 8
    a = memory.decode_bytes(spec, DecodeStep.uniform(8, 100))
    b = memory.decode_bytes(spec, DecodeStep.uniform(8, 8000))
    assert a.read["state"] == b.read["state"] == 8 * 54 * per_layer
    kv_per_token = 10 * 8 * 256 * 2  # 10 attention layers, 8 KV heads of 128 + 128, bf16
    assert b.read["kv_cache"] - a.read["kv_cache"] == 8 * kv_per_token * 7900
    f = flops.decode(spec, DecodeStep.uniform(1, 100))
    assert f["ssm_scan"] == 2 * 54 * 2 * 256 * 64 * 256
    assert f["ssm_scan"] == flops.decode(spec, DecodeStep.uniform(1, 8000))["ssm_scan"]
    # no rotary, no attention biases; a ReLU^2 MLP of two matrices
    assert memory.param_breakdown(spec)["mlp"] == 54 * 2 * 8192 * 32768


def test_nemotron_h_pattern_errors_name_the_field() -> None:
    base = dict(model_type="nemotron_h", hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=96, mamba_num_heads=4, mamba_head_dim=8, ssm_state_size=6,
                n_groups=2, conv_kernel=4, vocab_size=100)
    with pytest.raises(ConfigError, match="hybrid_override_pattern"):
        parse_config(base, "cfg.json")
    with pytest.raises(ConfigError, match=r"cfg.json.*hybrid_override_pattern.*'X'"):
        parse_config({**base, "hybrid_override_pattern": "M*X"}, "cfg.json")
    with pytest.raises(ConfigError, match="moe_latent_size"):
        parse_config({**base, "hybrid_override_pattern": "M*", "moe_latent_size": 32}, "cfg.json")
    spec = parse_config({**base, "layers_block_type": ["linear_attention", "full_attention", "mlp"]}, "x")
    assert spec.num_layers == 3 and spec.layers[2].attention is None


def test_sparse_attention_attends_top_k_but_indexes_every_key() -> None:
    spec = load_model("deepseek-ai/DeepSeek-V3.2")
    sparse = spec.layers[0].attention
    assert isinstance(sparse, SparseAttention) and sparse.top_k == 2048 and spec.attention.is_mla
    a, L = spec.attention, 61
    assert a.kv_lora_rank is not None
    short, long = DecodeStep.uniform(1, 1000), DecodeStep.uniform(1, 100_000)
    fs, fl = flops.decode(spec, short), flops.decode(spec, long)
    # below top-k every key is attended; beyond it, top_k keys (absorbed MLA: latent + rope)
    assert fs["attn_scores"] == 2 * a.num_heads * (a.kv_lora_rank + a.qk_rope_head_dim) * 1001 * L
    assert fl["attn_scores"] == 2 * a.num_heads * (a.kv_lora_rank + a.qk_rope_head_dim) * 2048 * L
    # the indexer scores all C + 1 keys: 64 heads x (128 + 1) multiply-adds a pair
    assert fl["index_scores"] == 2 * 64 * 129 * 100_001 * L
    # the cache keeps every latent and indexer key; a decode step reads top-k latents, all index keys
    latent = (a.kv_lora_rank + a.qk_rope_head_dim) * 2
    assert memory.kv_bytes_per_token(spec) == (latent + 132) * L
    assert memory.kv_cache_bytes(spec, 100_000) == (latent + 132) * L * 100_000
    read = memory.decode_bytes(spec, long).read["kv_cache"]
    assert read == L * (latent * 2048 + 132 * 100_001)
    # prefill under causal: triangle of index pairs, top-k-capped attention pairs
    pre = flops.prefill(spec, PrefillChunk(4096), "causal")
    assert pre["index_scores"] == 2 * 64 * 129 * (4096 * 4097 // 2) * L
    capped = 2048 * 2049 // 2 + 2048 * (4096 - 2048)
    assert pre["attn_scores"] == 2 * a.num_heads * a.head_dim * capped * L
    palm = flops.prefill(spec, PrefillChunk(4096), "palm")
    assert palm["index_scores"] == 2 * 64 * 129 * 4096 * 4096 * L
    assert palm["attn_scores"] == 2 * a.num_heads * a.head_dim * 4096 * 2048 * L
    # the indexer is replicated under TP (as vLLM runs it); the attention heads split
    per = flops.per_gpu(spec, fl, 8)
    assert per["index_scores"] == fl["index_scores"] and per["attn_scores"] == fl["attn_scores"] / 8
    span = memory.decode_span_bytes(spec, 2, 3000, 5)
    steps = [memory.decode_bytes(spec, DecodeStep.uniform(2, 3000 + k)) for k in range(5)]
    assert span.read["kv_cache"] == pytest.approx(sum(s.read["kv_cache"] for s in steps))


def test_llama4_chunked_layers_and_interleaved_moe() -> None:
    scout = load_model("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    maverick = load_model("meta-llama/Llama-4-Maverick-17B-128E-Instruct")
    for spec in (scout, maverick):
        kinds = [lyr.mixers[0] for lyr in spec.layers]
        assert kinds == [ChunkedAttention(8192)] * 3 + [SelfAttention()] + kinds[4:]
        assert sum(isinstance(k, ChunkedAttention) for k in kinds) == 36
    assert all(isinstance(lyr.ffn, MoE) for lyr in scout.layers)
    assert [type(lyr.ffn).__name__ for lyr in maverick.layers[:4]] == ["DenseMLP", "MoE"] * 2
    # the language model of HF's Llama4ForConditionalGeneration (vision tower left out)
    assert memory.params_total(scout) == 107_769_861_120
    assert memory.params_total(maverick) == 400_711_848_960
    # decode: a chunked layer attends the keys of its own chunk, a NoPE layer all of them
    a, c = scout.attention, 20_000  # position 20001 is the 3617th of its chunk
    f = flops.decode(scout, DecodeStep.uniform(1, c))
    assert f["attn_scores"] == 2 * a.num_heads * a.head_dim * (36 * (c % 8192 + 1) + 12 * (c + 1))
    # the cache keeps at most a chunk in chunked layers: capacity grows by 12 layers past 8192
    per_layer = 8 * 256 * 2
    grow = memory.kv_cache_bytes(scout, 100_000) - memory.kv_cache_bytes(scout, 50_000)
    assert grow == 12 * per_layer * 50_000
    assert memory.kv_cache_bytes(scout, 8192) == 48 * per_layer * 8192
    read = memory.decode_bytes(scout, DecodeStep.uniform(1, c)).read["kv_cache"]
    assert read == per_layer * (36 * (c % 8192 + 1) + 12 * (c + 1))
    # prefill: pairs within chunks under causal; the rectangle n x min(n, chunk) under palm
    n = 10_000
    pre = flops.prefill(scout, PrefillChunk(n), "causal")["attn_scores"]
    within = 8192 * 8193 // 2 + (n - 8192) * (n - 8192 + 1) // 2
    assert pre == 2 * a.num_heads * a.head_dim * (36 * within + 12 * n * (n + 1) // 2)
    palm = flops.prefill(scout, PrefillChunk(n), "palm")["attn_scores"]
    assert palm == 2 * a.num_heads * a.head_dim * (36 * n * 8192 + 12 * n * n)


def test_moe_variants_structure() -> None:
    glm = load_model("zai-org/GLM-4.6")
    assert glm.attention.qkv_bias and not glm.attention.o_bias and glm.attention.qk_norm
    assert [type(lyr.ffn).__name__ for lyr in glm.layers[:4]] == ["DenseMLP"] * 3 + ["MoE"]
    mm = load_model("MiniMaxAI/MiniMax-M2.5")
    assert mm.attention.qk_norm_full_width and mm.is_moe
    # the q/k norms span all 48 query and 8 KV heads of 128 in each of the 62 layers
    norms = memory.param_breakdown(mm)["norms"]
    assert norms == 62 * 2 * 3072 + 3072 + 62 * (48 + 8) * 128
    ernie = load_model("baidu/ERNIE-4.5-300B-A47B-PT")
    kinds = [isinstance(lyr.ffn, MoE) for lyr in ernie.layers]
    assert kinds == [False] * 3 + [True] * 51 and ernie.tie_word_embeddings


def test_kimi_k2_is_the_deepseek_v3_architecture() -> None:
    raw = json.loads((files("mfubench.model") / "configs" / "moonshotai--Kimi-K2-Instruct.json").read_text())
    kimi = parse_config(raw, "kimi")
    as_v3 = parse_config({**raw, "model_type": "deepseek_v3"}, "kimi")
    assert kimi.layers == as_v3.layers and kimi.attention == as_v3.attention
    assert kimi.attention.is_mla and kimi.attention.num_heads == 64
    assert sum(isinstance(lyr.ffn, MoE) for lyr in kimi.layers) == 60


def test_hunyuan_takes_experts_per_layer_or_one_for_all() -> None:
    base = dict(model_type="hunyuan_v1_moe", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, intermediate_size=24, vocab_size=100)
    one = parse_config({**base, "num_experts": 6, "moe_topk": 2}, "h")
    listed = parse_config({**base, "num_experts": [6, 8], "moe_topk": [2, 1]}, "h")
    assert [(lyr.ffn.num_experts, lyr.ffn.top_k) for lyr in one.layers] == [(6, 2), (6, 2)]  # type: ignore[union-attr]
    assert [(lyr.ffn.num_experts, lyr.ffn.top_k) for lyr in listed.layers] == [(6, 2), (8, 1)]  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="'num_experts' has 3 entries for 2 layers"):
        parse_config({**base, "num_experts": [6, 8, 8], "moe_topk": 2}, "h")


def test_qwen3_5_is_qwen3_next_kinds_under_a_text_config() -> None:
    spec = load_model("Qwen/Qwen3.5-397B-A17B")
    assert spec.model_type == "qwen3_5_moe"
    kinds = [type(lyr.mixers[0]).__name__ for lyr in spec.layers]
    assert kinds == (["GatedDeltaNet"] * 3 + ["SelfAttention"]) * 15
    assert spec.attention.output_gate and all(isinstance(lyr.ffn, MoE) for lyr in spec.layers)
    assert memory.params_total(spec) == 396_346_350_336  # HF's language model, vision left out
    fp8 = load_model("Qwen/Qwen3.5-397B-A17B-FP8")
    assert fp8.weights.name == "fp8-block" and fp8.layers == spec.layers


def test_hybrid_capacity_counts_its_kv_layers_and_its_fixed_state() -> None:
    from mfubench.analysis.feasibility import fit
    from mfubench.analysis.phases import decode_work, make_setup
    from mfubench.hardware.spec import parse_hardware

    spec = load_model("Qwen/Qwen3-Next-80B-A3B-Instruct")
    setup = make_setup(spec, parse_hardware("4xH100-SXM"), tp=4)
    per_token = 12 * 1 * 512 * 2  # 12 attention layers; 2 KV heads on 4 GPUs: one (of 256 + 256) each
    state = memory.state_bytes_per_sequence(spec, tp=4)
    for context in (4_096, 200_000):
        f = fit(setup, context)
        assert f.kv_bytes_per_sequence == per_token * context + state
        assert f.max_batch == int(f.free_bytes_per_gpu // (per_token * context + state))
    # memory holds far more long sequences than if all 48 layers kept a KV cache
    assert fit(setup, 200_000).max_batch > 3 * f.free_bytes_per_gpu // (4 * per_token * 200_000 + state)
    # the roofline's decode bytes grow with the context only by the attention layers' KV
    short, long = decode_work(setup, 8, 1_000, 1), decode_work(setup, 8, 101_000, 1)
    assert long.bytes_per_gpu - short.bytes_per_gpu == pytest.approx(8 * per_token * 100_000)
