"""Parallel layouts (TP/DP/EP/PP): per-GPU counts, metamorphic checks against today's figures."""

from __future__ import annotations

import math

import pytest

from mfubench.counting import flops as fl
from mfubench.counting import memory
from mfubench.counting import parallel as par
from mfubench.counting.layout import Layout, stage_layers
from mfubench.counting.workload import DecodeStep, PrefillChunk
from mfubench.errors import MfubenchError
from mfubench.model.registry import load_model

QWEN_MOE = "Qwen/Qwen3-30B-A3B"  # 48 layers, 128 experts top-8, 4 KV heads
DEEPSEEK = "deepseek-ai/DeepSeek-V3"  # MLA, 3 dense layers then 58 MoE layers, 256 experts
LLAMA = "meta-llama/Llama-3.1-8B"
TIED = "google/gemma-2-9b"  # tied embeddings


@pytest.mark.parametrize("model", [QWEN_MOE, DEEPSEEK, LLAMA])
@pytest.mark.parametrize("tp", [1, 2, 4])
def test_plain_tp_layout_is_todays_figures_exactly(model: str, tp: int) -> None:
    spec = load_model(model)
    layout = Layout(tp=tp)
    chunk = PrefillChunk(512, 0, 8)
    pre = par.prefill_stage(spec, layout, chunk, 0)
    assert pre.flops == fl.per_gpu(spec, fl.prefill(spec, chunk), tp)
    old = memory.prefill_bytes(spec, chunk, None, tp)
    assert pre.read == old.read and pre.write == old.write
    assert pre.weight_bytes == memory.weight_bytes(spec, tp)
    dec = par.decode_span_stage(spec, layout, 16, 1000, 7, 0)
    assert dec.flops == fl.per_gpu(spec, fl.decode_span(spec, 16, 1000, 7), tp)
    old_d = memory.decode_span_bytes(spec, 16, 1000, 7, None, tp)
    assert dec.read == old_d.read and dec.write == old_d.write
    one = par.decode_stage(spec, layout, DecodeStep.uniform(16, 1000), 0)
    assert one.read == memory.decode_bytes(spec, DecodeStep.uniform(16, 1000), None, tp).read


def test_ep1_and_dp1_equal_todays_figures_and_ep_keeps_the_mean_gpu() -> None:
    """EP 1 DP 1 is today's; EP moves no work on the mean GPU (balanced routing): the same
    FLOPs and bytes per GPU at EP 1, 2 and 4 of a TP-4 group."""
    spec = load_model(QWEN_MOE)
    chunk = PrefillChunk(256, 0, 4)
    base = par.prefill_stage(spec, Layout(tp=4), chunk, 0)
    for ep in (1, 2, 4):
        c = par.prefill_stage(spec, Layout(tp=4, ep=ep), chunk, 0)
        assert c.flops == base.flops
        assert c.read == base.read
        assert c.weight_bytes == base.weight_bytes


def test_pipeline_stages_sum_to_the_whole_model() -> None:
    """Weights, FLOPs and bytes of the stages add up to the model's (untied embeddings)."""
    spec = load_model(DEEPSEEK)
    whole = memory.weight_bytes(spec, 1)
    chunk = PrefillChunk(128, 0, 2)
    whole_flops = fl.prefill(spec, chunk)
    for pp in (2, 3, 5):
        layout = Layout(pp=pp)
        stages = [par.prefill_stage(spec, layout, chunk, s) for s in range(pp)]
        for key, value in whole.items():
            assert sum(st.weight_bytes.get(key, 0.0) for st in stages) == pytest.approx(value, rel=1e-12)
        for key, value in whole_flops.items():
            assert sum(st.flops.get(key, 0.0) for st in stages) == pytest.approx(value, rel=1e-12)
        assert sum(s.layers.stop - s.layers.start for s in stages) == spec.num_layers


def test_tied_embeddings_last_stage_holds_its_own_table() -> None:
    spec = load_model(TIED)
    whole = sum(memory.weight_bytes(spec, 1).values())
    table = spec.vocab_size * spec.hidden_size * 2
    stages = [sum(par.stage_weight_bytes(spec, Layout(pp=2), s).values()) for s in range(2)]
    assert sum(stages) == pytest.approx(whole + table, rel=1e-12)


def test_every_gpu_of_every_rank_sums_to_the_model() -> None:
    """Stored weights summed over all T x D x P GPUs: the model once per DP rank for the
    replicated parts, the routed experts exactly once."""
    spec = load_model(QWEN_MOE)
    whole = memory.weight_bytes(spec, 1)
    for layout in (Layout(tp=2, dp=4, ep=8), Layout(tp=4, dp=2, ep=2, pp=2), Layout(tp=1, dp=8, ep=8)):
        total: dict[str, float] = {}
        for s in range(layout.pp):
            for key, value in par.stage_weight_bytes(spec, layout, s).items():
                total[key] = total.get(key, 0.0) + value * layout.tp * layout.dp
        assert total["experts"] == pytest.approx(whole["experts"], rel=1e-12)
        assert total["q_proj"] == pytest.approx(whole["q_proj"] * layout.dp, rel=1e-12)
        assert total["lm_head"] == pytest.approx(whole["lm_head"] * layout.dp, rel=1e-12)


def test_doubling_dp_halves_the_kv_per_rank() -> None:
    spec = load_model(QWEN_MOE)
    for dp in (1, 2, 4):
        a = par.kv_bytes_per_gpu(spec, Layout(tp=2, dp=dp), 64, 4096)
        b = par.kv_bytes_per_gpu(spec, Layout(tp=2, dp=2 * dp), 64, 4096)
        assert b == a / 2
    assert par.kv_bytes_per_gpu(spec, Layout(tp=2), 64, 4096) == 64 * memory.kv_cache_bytes(spec, 4096, None, 2)


def test_dp_ranks_sum_to_the_whole_step() -> None:
    """The attention FLOPs of all DP ranks are the whole model's; the routed experts' work over
    all T x D GPUs is the whole step's (the MoE layer takes every rank's tokens)."""
    spec = load_model(QWEN_MOE)
    layout = Layout(tp=2, dp=4, ep=8)
    st = par.decode_span_stage(spec, layout, 32, 2000, 1, 0)
    whole = fl.decode_span(spec, 32, 2000, 1)
    assert st.flops["attn_scores"] * layout.tp * layout.dp == pytest.approx(whole["attn_scores"])
    assert st.flops["q_proj"] * layout.tp * layout.dp == pytest.approx(whole["q_proj"])
    assert st.flops["experts"] * layout.tp * layout.dp == pytest.approx(whole["experts"])
    assert st.rank_batch == 8


def test_expected_experts_per_ep_rank_and_the_imbalance() -> None:
    """An EP rank of E/ep experts reads the expected distinct ones of the whole step's tokens;
    at 1 token exactly top_k/ep of them (vLLM's min(T k / ep, E / ep) agrees there), at many all;
    the busiest rank under skew s reads and computes more."""
    spec = load_model(QWEN_MOE)  # E 128, k 8
    moe = next(layer.ffn for layer in spec.layers if layer.ffn is not None and hasattr(layer.ffn, "top_k"))
    per_expert = memory.weight_bytes(spec, 1)["experts"] / 128
    layout = Layout(tp=8, ep=8)
    one = par.decode_span_stage(spec, layout, 1, 100, 1, 0)
    assert one.read["experts"] == pytest.approx(8 / 8 * per_expert, rel=1e-12)
    many = par.decode_span_stage(spec, layout, 4096, 100, 1, 0)
    assert many.read["experts"] == pytest.approx(128 / 8 * per_expert, rel=1e-9)
    t = 16
    mid = par.decode_span_stage(spec, layout, t, 100, 1, 0)
    expected = (128 / 8) * (1 - (1 - 8 / 128) ** t)
    assert mid.read["experts"] == pytest.approx(expected * per_expert, rel=1e-12)
    skewed = par.decode_span_stage(spec, Layout(tp=8, ep=8, imbalance=1.5), t, 100, 1, 0)
    assert skewed.flops["experts"] == pytest.approx(1.5 * mid.flops["experts"])
    assert skewed.read["experts"] > mid.read["experts"]
    assert moe is not None
    no_ep = par.decode_span_stage(spec, Layout(tp=8, imbalance=1.5), t, 100, 1, 0)
    assert no_ep.flops["experts"] == mid.flops["experts"]  # every GPU holds a slice of every expert


def test_stage_layers_follow_vllm_get_pp_indices() -> None:
    from vllm.distributed.utils import get_pp_indices

    for layers in (4, 7, 32, 61, 94):
        for pp in (1, 2, 3, 4):
            ours = stage_layers(layers, pp)
            assert [(r.start, r.stop) for r in ours] == [get_pp_indices(layers, s, pp) for s in range(pp)]


@pytest.mark.parametrize(("layout", "message"), [
    (dict(tp=3), "--tp 3"),
    (dict(tp=2, ep=3), "--ep 3 must divide"),
    (dict(pp=100), "--pp 100"),
    (dict(tp=4, ep=4), "no routed experts"),
])
def test_bad_layouts_name_the_flag(layout: dict[str, int], message: str) -> None:
    with pytest.raises(MfubenchError, match=message):
        par.check_layout(load_model(LLAMA), Layout(**layout))


def test_layout_validation() -> None:
    with pytest.raises(MfubenchError, match="--dp must be a positive"):
        Layout(dp=0)
    with pytest.raises(MfubenchError, match="--ep-imbalance"):
        Layout(imbalance=0.5)
    assert Layout(tp=2, dp=4, ep=8).label == "TP2 DP4 EP8"
    assert Layout(tp=2, dp=4, ep=8).expert_tp == 1 and Layout(tp=2, dp=4, ep=2).expert_tp == 4
    assert Layout(tp=2, dp=2, pp=2).devices == 8
    assert math.isclose(Layout().imbalance, 1.0)


def _setup(model: str, hardware: str, layout: Layout | None):  # type: ignore[no-untyped-def]
    from mfubench.analysis.phases import make_setup
    from mfubench.hardware.spec import parse_hardware

    return make_setup(load_model(model), parse_hardware(hardware, attach_calibration=False),
                      layout=layout)


def test_setup_with_a_layout_counts_every_device_and_the_deployment_batch() -> None:
    from mfubench.analysis.feasibility import fit
    from mfubench.analysis.phases import decode_work, phase_roofline, prefill_work

    plain = _setup(QWEN_MOE, "8xH100-SXM", None)
    same = _setup(QWEN_MOE, "8xH100-SXM", Layout(tp=8))
    assert plain.layout is None and same.layout is None  # plain TP stays on today's path
    assert prefill_work(plain, 4, 512) == prefill_work(same, 4, 512)
    dp = _setup(QWEN_MOE, "8xH100-SXM", Layout(tp=2, dp=4, ep=8))
    assert dp.machine() is not None and dp.machine().devices == 8  # type: ignore[union-attr]
    w = decode_work(dp, 64, 2000, 1)
    assert w.flops == decode_work(plain, 64, 2000, 1).flops  # the same deployment's work
    st = par.decode_span_stage(dp.spec, dp.parallel, 64, 2000, 1, 0)
    assert w.flops_per_gpu == st.flops_total and w.bytes_per_gpu == st.bytes_total
    # attention DP keeps 4 copies of the attention weights, each GPU more of them than TP 8's;
    # the deployment holds its 4 ranks' sequences
    f_dp, f_tp = fit(dp, 4096), fit(plain, 4096)
    assert f_dp.weight_bytes_per_gpu > f_tp.weight_bytes_per_gpu
    assert f_dp.max_batch == 4 * int(f_dp.free_bytes_per_gpu // f_dp.kv_bytes_per_sequence)
    pp = _setup(LLAMA, "4xH100-SXM", Layout(tp=2, pp=2))
    rl = phase_roofline(pp, prefill_work(pp, 1, 1024))
    rl_tp2 = phase_roofline(_setup(LLAMA, "2xH100-SXM", None), prefill_work(_setup(LLAMA, "2xH100-SXM", None), 1, 1024))
    assert rl is not None and rl_tp2 is not None
    # one micro-batch passes both stages in turn: about TP 2's time, on twice the GPUs
    assert rl.compute_s == pytest.approx(rl_tp2.compute_s, rel=1e-9)


def test_setup_rejects_a_layout_that_does_not_use_the_devices() -> None:
    with pytest.raises(MfubenchError, match="TP2 DP2 uses --tp x --dp x --pp = 4 devices but --hardware 8xH100-SXM"):
        _setup(QWEN_MOE, "8xH100-SXM", Layout(tp=2, dp=2))
