"""``roofline --layouts``: candidate layouts, the pipeline's micro-batches, ranking under bounds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mfubench.analysis import pipeline
from mfubench.analysis.layout_search import candidate_layouts, rank_layouts
from mfubench.counting.layout import Layout
from mfubench.errors import MfubenchError
from mfubench.hardware.spec import parse_hardware
from mfubench.model.quant import weight_format
from mfubench.model.registry import load_model

DEEPSEEK = "deepseek-ai/DeepSeek-V3"


def test_pipeline_bubble_and_steady_state_step() -> None:
    t = [2.0, 2.0, 2.0, 2.0]
    for m in (1, 2, 4, 8):
        assert pipeline.fill_drain(t, m) == (m + 3) * 2.0
        assert pipeline.bubble(t, m) == pytest.approx(3 / (m + 3))
    assert pipeline.step(t, 1) == 8.0 == pipeline.step(t, 4)  # latency bound up to P in flight
    assert pipeline.step(t, 8) == 16.0
    assert pipeline.step([1.0, 3.0], 2) == 6.0  # the slowest stage sets the pace
    with pytest.raises(MfubenchError):
        pipeline.step([], 1)


def test_candidates_cover_the_device_count_and_the_model() -> None:
    ds = load_model(DEEPSEEK)
    layouts = candidate_layouts(ds, 16)
    assert all(x.devices == 16 for x in layouts)
    assert Layout(tp=1, dp=16, ep=16) in layouts and Layout(tp=16) in layouts
    assert Layout(tp=8, pp=2) in layouts and Layout(tp=2, dp=4, pp=2, ep=8) in layouts
    llama = load_model("meta-llama/Llama-3.1-8B")  # 32 heads, 8 KV heads, dense
    dense = candidate_layouts(llama, 8)
    assert all(x.ep == 1 for x in dense) and Layout(tp=8) in dense


def test_ranking_meets_the_bound_and_tightening_it_never_helps() -> None:
    spec = load_model(DEEPSEEK).with_weights(weight_format("fp8-block"))
    hw = parse_hardware("16xH200-SXM", attach_calibration=False)
    loose = rank_layouts(spec, hw, 2000, 500, max_itl=0.05)
    tight = rank_layouts(spec, hw, 2000, 500, max_itl=0.03)
    tputs = [s.throughput_per_gpu for s in loose]
    assert tputs == sorted(tputs, reverse=True)
    assert all(s.itl_s is not None and s.itl_s <= 0.05 for s in loose if s.batch)
    assert all(s.batch <= s.max_batch for s in loose)
    assert tight[0].throughput_per_gpu <= loose[0].throughput_per_gpu
    nothing = rank_layouts(spec, hw, 2000, 500, max_itl=1e-4)
    assert all(s.batch == 0 and "above --max-itl" in s.why for s in nothing)


def test_an_nvl72_domain_lifts_wide_expert_parallelism() -> None:
    """DP16 EP16 pays the network on two HGX nodes, NVLink in one NVL72 rack."""
    spec = load_model(DEEPSEEK).with_weights(weight_format("fp8-block"))
    ep16 = Layout(tp=1, dp=16, ep=16)

    def score(hw: str):  # type: ignore[no-untyped-def]
        ranked = rank_layouts(spec, parse_hardware(hw, attach_calibration=False), 2000, 500, 0.05)
        return next(s for s in ranked if s.layout == ep16)

    hgx, nvl = score("16xH200-SXM"), score("16xGB200")
    assert hgx.limit == "ep_alltoall (network)" and "network" not in nvl.limit


def test_cli_layouts_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mfubench", "roofline", "Qwen/Qwen3-30B-A3B", "--hardware",
         "8xH100-SXM", "--layouts", "-i", "1024", "-o", "256", "--max-itl", "0.03", "--json"],
        capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    rows = result["layouts"]
    assert rows and result["max_itl_s"] == 0.03
    assert {r["layout"] for r in rows} >= {"TP8", "TP1 DP8 EP8", "TP4 DP2 EP8"}
    best = rows[0]
    assert best["batch"] > 0 and best["itl_s"] <= 0.03 and best["limit"]
    bad = subprocess.run(
        [sys.executable, "-m", "mfubench", "roofline", "Qwen/Qwen3-30B-A3B", "--hardware",
         "8xH100-SXM", "--layouts", "--max-itl", "-1"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--max-itl must be a positive" in bad.stderr
