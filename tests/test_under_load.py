"""Analysis under continuous batching: a concurrency, a rate or a trace is never read as a batch.

The property test drives the analysis with the timings of a *roofline-bounded synthetic engine*:
each engine step decodes the sequences in flight and prefills the arriving requests' tokens, and
takes at least its roofline time (its FLOPs at the peak, its bytes at the bandwidth, its
all-reduces). Whatever the load, lengths and efficiency, no analysis row may exceed 100 %.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfubench.analysis.load import Load
from mfubench.analysis.measurement import Measurement
from mfubench.analysis.phases import ACTIVATION_BYTES, analyze, make_setup
from mfubench.analysis.roofline import roofline
from mfubench.analysis.under_load import PREFILL_NOT_SEPARABLE
from mfubench.counting import flops as fl
from mfubench.counting import memory
from mfubench.counting.workload import DecodeStep, PrefillChunk, Request
from mfubench.hardware.spec import parse_hardware
from mfubench.model.registry import load_model

SETUPS = {
    "dense 70B, TP 4": ("meta-llama/Llama-3.3-70B-Instruct", "4xH100-SXM"),
    "dense 8B": ("Qwen/Qwen3-8B", "H100-SXM"),
    "MoE 30B-A3B": ("Qwen/Qwen3-30B-A3B", "H100-SXM"),
    "MLA + MoE 671B, TP 8": ("deepseek-ai/DeepSeek-V3", "8xH200"),
}
_SETUP_CACHE: dict[str, Any] = {}


def setup_of(name: str):  # type: ignore[no-untyped-def]
    if name not in _SETUP_CACHE:
        model, hw = SETUPS[name]
        _SETUP_CACHE[name] = make_setup(load_model(model), parse_hardware(hw))
    return _SETUP_CACHE[name]


def engine_step_s(setup, n_d: float, prefill_tokens: float, inp: int, out: int, efficiency: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds of one step of an engine that decodes ``n_d`` sequences and prefills
    ``prefill_tokens`` tokens of arriving requests, at ``efficiency`` of its roofline. Its KV
    traffic per step is the average of the requests it serves (``n_d / (out - 1)`` requests'
    worth per step), its weights read once for all its tokens."""
    spec, tp = setup.spec, setup.tp
    cache = max(0, round(inp + (out - 2) / 2))
    one = fl.decode(spec, DecodeStep.uniform(1, cache))
    per_token = fl.prefill(spec, PrefillChunk(inp))
    flops = (sum(fl.per_gpu(spec, one, tp).values()) * n_d
             + sum(fl.per_gpu(spec, per_token, tp).values()) * prefill_tokens / inp)
    tokens = max(1, math.ceil(n_d + prefill_tokens))
    step = memory.decode_bytes(spec, DecodeStep.uniform(tokens, cache), None, tp)
    weights = step.total - step.read["kv_cache"] - step.write["kv_cache"]
    kv_request = sum(b.read.get("kv_cache", 0.0) + b.write.get("kv_cache", 0.0) for b in (
        memory.prefill_bytes(spec, PrefillChunk(inp), None, tp),
        memory.decode_span_bytes(spec, 1, inp, out - 1, None, tp)))
    nbytes = weights + kv_request * n_d / (out - 1)
    machine = setup.machine()
    rl = roofline(machine, flops, nbytes, 2 * spec.num_layers,
                  (n_d + prefill_tokens) * spec.hidden_size * ACTIVATION_BYTES)
    return rl.roofline_s / efficiency


@st.composite
def loaded(draw: st.DrawFn) -> tuple[Any, Measurement]:
    setup = setup_of(draw(st.sampled_from(sorted(SETUPS))))
    inp = draw(st.integers(16, 8192))
    out = draw(st.integers(2, 2048))
    efficiency = draw(st.floats(0.02, 0.98) | st.just(0.98))  # near the roof often
    prefill_steps = draw(st.integers(1, 20))  # TTFT in engine steps (queueing, chunked prefill)
    kind = draw(st.sampled_from(["concurrency", "rate", "trace"]))
    if kind == "concurrency":
        c = draw(st.integers(1, 512))
        n_d = c * (out - 1) / (prefill_steps + out - 1)  # Little's law of the closed loop
    else:
        n_d = draw(st.floats(0.05, 512) | st.sampled_from([0.5, 64.0, 512.0, 2048.0]))
    prefill_tokens = n_d * inp / (out - 1)  # the arrivals that keep n_d sequences decoding
    tpot = engine_step_s(setup, n_d, prefill_tokens, inp, out, efficiency)
    ttft = prefill_steps * tpot
    e2e = ttft + (out - 1) * tpot
    throughput = n_d / ((out - 1) * tpot)
    extra: dict[str, Any] = {}
    if draw(st.booleans()):  # a run that reports its totals, or means only
        completed = draw(st.integers(1, 10_000))
        extra.update(completed=completed, duration_s=completed / throughput)
    if kind == "concurrency":
        load = Load("concurrency", float(c))
        batch = c
    else:
        load = Load("rate", throughput, "poisson") if kind == "rate" else Load("trace")
        batch = max(1, round(throughput * e2e))
        if kind == "trace":
            extra.setdefault("request_throughput", throughput)
    return setup, Measurement(batch, inp, out, ttft_s=ttft, tpot_s=tpot, load=load, **extra)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loaded())
def test_no_row_exceeds_the_peak_for_a_roofline_bounded_engine(case: tuple[Any, Measurement]) -> None:
    setup, m = case
    rows = analyze(setup, [m])
    assert {r.phase for r in rows} == {"decode", "total"}  # no prefill row under load
    for r in rows:
        for name in ("mfu", "mbu", "efficiency"):
            value = getattr(r, name)
            assert value is not None and value <= 1 + 1e-9, (r.phase, name, value, m)
        assert r.above_peak == ()


def test_the_seeds_complaint_a_concurrency_row_is_not_c_prompts_over_one_ttft() -> None:
    """At concurrency 64 a mean TTFT of 0.9 s is one request's: the old reading (64 prompts of
    1000 tokens prefilled in 0.9 s on 4xH100) would claim far beyond the peak."""
    setup = setup_of("dense 70B, TP 4")
    m = Measurement(64, 1000, 1000, ttft_s=0.9, tpot_s=0.04, load=Load("concurrency", 64.0))
    decode, total = analyze(setup, [m])
    assert (decode.phase, total.phase) == ("decode", "total")
    n_d = 64 / (0.9 + 999 * 0.04) * 999 * 0.04
    assert decode.extra["sequences_decoding"] == pytest.approx(n_d)
    # a mean step: N_d sequences at the mean cache I + (O - 2) / 2, one token each
    per_sequence = fl.total(fl.decode(setup.spec, DecodeStep.uniform(1, 1499)))
    assert decode.flops == pytest.approx(n_d * per_sequence, rel=1e-12)
    assert total.flops == pytest.approx(64 * fl.total(fl.request(setup.spec, Request(1000, 1000))))
    assert total.seconds == pytest.approx(0.9 + 999 * 0.04)  # one cycle of the closed loop
    assert decode.seconds == 0.04 and decode.plain and total.plain
    assert total.extra["prefill"] == PREFILL_NOT_SEPARABLE
    assert "decode-with-prefill" in decode.flags[-1]
    static = analyze(setup, [Measurement(64, 1000, 1000, ttft_s=0.9, itl_s=0.04)])
    prefill = [r for r in static if r.phase == "prefill"][0]
    assert prefill.above_peak  # what reading it as a batch of 64 would have shown


def test_time_averaged_total_is_the_completed_work_over_the_duration() -> None:
    setup = setup_of("dense 8B")
    m = Measurement(8, 512, 128, ttft_s=0.05, tpot_s=0.02, load=Load("concurrency", 8.0),
                    completed=400, duration_s=30.0)
    total = [r for r in analyze(setup, [m]) if r.phase == "total"][0]
    one = fl.total(fl.request(setup.spec, Request(512, 128)))
    assert total.flops == pytest.approx(400 * one)
    assert total.seconds == pytest.approx(30.0)
    assert total.seconds_source == "requests / throughput (completed / duration)"


# --- real vllm bench serve results, recorded against vLLM CPU (tests/data/vllm_bench) --------

VLLM = __import__("pathlib").Path(__file__).parent / "data" / "vllm_bench"


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import json

    from mfubench.measure.tiny_model import TEST, llama_config

    path = tmp_path_factory.mktemp("tiny") / "config.json"
    path.write_text(json.dumps(llama_config(TEST)))
    return make_setup(load_model(str(path)), parse_hardware("H100-SXM"), "vllm")


@pytest.mark.parametrize(("name", "load"), [
    ("live_concurrency", Load("concurrency", 4.0)),
    ("live_rate", Load("rate", 20.0, "poisson")),
])
def test_real_vllm_bench_results_match_the_engines_own_counter(tiny_setup, name: str, load: Load) -> None:  # type: ignore[no-untyped-def]
    import json

    from mfubench.io.importers import load_measurements

    (m,) = load_measurements(VLLM / f"{name}.json")
    counters = json.loads((VLLM / f"{name}.counters.json").read_text())
    assert m.load == load and m.completed == 32
    assert (m.input_tokens, m.output_tokens) == (128, 32)  # exact lengths on every request
    assert counters["vllm:prompt_tokens_total"] == 32 * 128
    assert counters["vllm:generation_tokens_total"] == 32 * 32
    rows = {r.phase: r for r in analyze(tiny_setup, [m])}
    assert set(rows) == {"decode", "total"}
    engine = counters["vllm:estimated_flops_per_gpu_total"]
    assert rows["total"].flops_per_gpu == pytest.approx(engine, rel=0.02)  # whole-run FLOPs
    engine_bytes = (counters["vllm:estimated_read_bytes_per_gpu_total"]
                    + counters["vllm:estimated_write_bytes_per_gpu_total"])
    assert rows["total"].bytes == pytest.approx(engine_bytes, rel=0.15)  # an estimate: steps shared
    for r in rows.values():
        assert r.plain and all(0 < getattr(r, k) <= 1 for k in ("mfu", "mbu", "efficiency"))


def test_a_load_row_without_a_throughput_says_what_is_missing() -> None:
    setup = setup_of("dense 8B")
    (row,) = analyze(setup, [Measurement(4, 512, 128, itl_s=0.02, load=Load("trace"))])
    assert row.phase == "total" and row.seconds is None and row.mfu is None
    assert row.flags[-1].startswith("no-throughput")


def test_the_summary_names_a_loads_best_level_not_its_batch() -> None:
    from mfubench.analysis.explain import summary

    setup = setup_of("dense 8B")
    ms = [Measurement(c, 1000, 200, ttft_s=0.05 * c, tpot_s=0.01 + 0.002 * c, load=Load("concurrency", float(c)))
          for c in (1, 4, 16)]
    decode = next(line for line in summary(analyze(setup, ms)) if line.startswith("decode:"))
    assert "(best at concurrency " in decode and "batch" not in decode
