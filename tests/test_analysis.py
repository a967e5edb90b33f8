"""The analysis: phase rules, MFU/MBU against the seed's numbers, the roofline terms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfubench.analysis.limits import compute_bound_batch, max_batch
from mfubench.analysis.measurement import Measurement
from mfubench.analysis.phases import analyze, decode_work, make_setup, prefill_work
from mfubench.analysis.roofline import roofline
from mfubench.errors import InputFileError, MfubenchError
from mfubench.hardware.calibrate import Calibration
from mfubench.hardware.spec import HardwareSpec, cpu_accelerator, parse_hardware
from mfubench.model.quant import weight_format
from mfubench.model.registry import load_model

SEED = Path(__file__).parent / "data" / "seed"
LLAMA70 = "meta-llama/Llama-3.3-70B-Instruct"


def seed_points(name: str, requested: float | None = None) -> list[Measurement]:
    data = json.loads((SEED / f"{name}.json").read_text())["results"]
    return [
        Measurement(int(b), v["avg_input_tokens"], v["avg_output_tokens"],
                    requested_output_tokens=requested, elapsed_s=v["elapsed_time"],
                    source=f"{name}[{b}]")
        for b, v in data.items()
    ]


@pytest.fixture(scope="module")
def seed_setup():  # type: ignore[no-untyped-def]
    return lambda conv="causal": make_setup(load_model(LLAMA70), parse_hardware("4xH100-SXM"), conv)


def rows_of(rows, phase):  # type: ignore[no-untyped-def]
    return {r.batch_size: r for r in rows if r.phase == phase}


def test_seed_prefill_causal_batch1(seed_setup) -> None:  # type: ignore[no-untyped-def]
    pre = rows_of(analyze(seed_setup(), seed_points("prefill")), "prefill")
    assert pre[1].mfu == pytest.approx(0.388, abs=0.001)
    assert pre[1].bound == "compute" and pre[1].seconds_source.startswith("elapsed")


def test_seed_prefill_table_under_palm(seed_setup) -> None:  # type: ignore[no-untyped-def]
    """The seed's own table (40.22 % ... 41.61 %) within half a point."""
    seed_table = {1: 40.22, 2: 43.50, 4: 46.73, 8: 46.99, 16: 40.79, 32: 41.61}
    pre = rows_of(analyze(seed_setup("palm"), seed_points("prefill")), "prefill")
    for batch, mfu in seed_table.items():
        assert pre[batch].mfu * 100 == pytest.approx(mfu, abs=0.5), batch


def test_seed_decode_is_memory_bound_mbu_near_59(seed_setup) -> None:  # type: ignore[no-untyped-def]
    dec = rows_of(analyze(seed_setup(), seed_points("decode", 900)), "decode")
    assert dec[1].mbu == pytest.approx(0.59, abs=0.01)
    assert dec[1].mfu < 0.005  # the seed's 0.2 %
    assert all(r.bound == "memory" for r in dec.values())
    assert "memory-bound" in dec[32].explanation and "ridge of 295" in dec[32].explanation
    # the seed's decode points have no prefill peer: the prefill time is the roofline's, flagged
    assert dec[1].seconds_source == "elapsed-minus-roofline-prefill"
    assert any("estimated" in f for f in dec[1].flags)
    assert any(f.startswith("stopped-early") for f in dec[32].flags)
    assert not any(f.startswith("stopped-early") for f in dec[8].flags)


def test_decode_uses_itl_then_ttft_then_peer(seed_setup) -> None:  # type: ignore[no-untyped-def]
    s = seed_setup()
    itl = analyze(s, [Measurement(2, 100, 11, itl_s=0.02, elapsed_s=5.0)])
    assert rows_of(itl, "decode")[2].seconds == pytest.approx(0.2)
    ttft = analyze(s, [Measurement(2, 100, 11, ttft_s=0.5, elapsed_s=1.5)])
    assert rows_of(ttft, "decode")[2].seconds == pytest.approx(1.0)
    assert rows_of(ttft, "decode")[2].seconds_source == "elapsed-ttft"
    peers = [Measurement(2, 100, 1, elapsed_s=0.4), Measurement(2, 100, 11, elapsed_s=1.5)]
    dec = rows_of(analyze(s, peers), "decode")[2]
    assert dec.seconds == pytest.approx(1.1)
    assert dec.seconds_source == "elapsed-minus-measured-prefill"


def test_non_positive_decode_time_is_flagged_not_divided(seed_setup) -> None:  # type: ignore[no-untyped-def]
    rows = analyze(seed_setup(), [Measurement(2, 100, 11, ttft_s=1.0, elapsed_s=0.9)])
    dec = rows_of(rows, "decode")[2]
    assert dec.seconds is None and dec.mfu is None
    assert any("not positive" in f for f in dec.flags)


def test_total_row_from_ttft_and_itl(seed_setup) -> None:  # type: ignore[no-untyped-def]
    rows = analyze(seed_setup(), [Measurement(4, 200, 5, ttft_s=0.1, itl_s=0.01)])
    assert rows_of(rows, "total")[4].seconds == pytest.approx(0.14)


def test_measurement_rejects_bad_times() -> None:
    with pytest.raises(InputFileError, match="elapsed_s"):
        Measurement(1, 10, 1, elapsed_s=0.0)
    with pytest.raises(InputFileError, match="no timing"):
        Measurement(1, 10, 1)
    with pytest.raises(InputFileError, match="batch_size"):
        Measurement(0, 10, 1, elapsed_s=1.0)


def test_prefill_compute_bound_decode_memory_bound(seed_setup) -> None:  # type: ignore[no-untyped-def]
    s = seed_setup()
    m = s.machine()
    pre = prefill_work(s, 1, 2048)
    dec = decode_work(s, 1, 2048, 1)
    assert roofline(m, pre.flops_per_gpu, pre.bytes_per_gpu).bound == "compute"
    assert roofline(m, dec.flops_per_gpu, dec.bytes_per_gpu).bound == "memory"


def test_ridge_crossing(seed_setup) -> None:  # type: ignore[no-untyped-def]
    s = seed_setup()
    m = s.machine()
    turn = compute_bound_batch(s, 128)
    assert turn is not None and 200 < turn < 400  # ridge 295 FLOP/byte, ~1 FLOP/byte per sequence

    def bound(batch: int) -> str:
        w = decode_work(s, batch, 128, 1)
        r = roofline(m, w.flops_per_gpu, w.bytes_per_gpu)
        return "compute" if r.compute_s >= r.memory_s else "memory"

    assert bound(turn - 1) == "memory" and bound(turn) == "compute"
    # at long contexts the KV cache grows as fast as the work: never compute-bound
    assert compute_bound_batch(s, 100_000) is None


def test_tensor_parallel_communication() -> None:
    spec = load_model(LLAMA70)
    one = make_setup(spec, parse_hardware("H200-SXM"))
    assert one.machine().link_bandwidth is not None
    w1 = prefill_work(one, 1, 512)
    assert roofline(one.machine(), w1.flops_per_gpu, w1.bytes_per_gpu, w1.messages,
                    w1.message_bytes).comm_s == 0  # one device: no all-reduce
    four = make_setup(spec, parse_hardware("4xH100-SXM"), allreduce_latency_s=1e-3)
    w4 = decode_work(four, 1, 512, 1)
    r = roofline(four.machine(), w4.flops_per_gpu, w4.bytes_per_gpu, w4.messages, w4.message_bytes)
    assert r.comm_s == pytest.approx(2 * 80 * (1e-3 + 1.5 * 8192 * 2 / 450e9))
    assert r.bound == "communication"
    with pytest.raises(MfubenchError, match="--tp"):
        make_setup(spec, parse_hardware("4xH100-SXM"), tp=2)


def test_capacity(seed_setup) -> None:  # type: ignore[no-untyped-def]
    fits, per_seq, free = max_batch(seed_setup(), 2048)
    assert per_seq == 2048 * 2 * 256 * 2 * 80  # 2 KV heads per GPU, K and V, bf16, 80 layers
    assert fits == int(free // per_seq) and fits > 100


def test_no_peak_no_mfu() -> None:
    spec = load_model(LLAMA70).with_weights(weight_format("fp8"))
    setup = make_setup(spec, parse_hardware("8xA100-SXM-80GB"), tp=8)
    assert setup.dtype == "fp8"
    rows = analyze(setup, [Measurement(1, 100, 1, elapsed_s=0.1)])
    assert all(r.mfu is None and r.bound is None for r in rows)
    assert "no fp8 peak" in rows[0].explanation


def test_weight_only_int4_uses_bf16_peak_and_fewer_bytes() -> None:
    spec = load_model(LLAMA70)
    int4 = make_setup(spec.with_weights(weight_format("int4")), parse_hardware("H200-SXM"))
    bf16 = make_setup(spec, parse_hardware("H200-SXM"))
    assert int4.dtype == "bf16"
    assert decode_work(int4, 1, 100, 1).bytes_per_gpu < 0.3 * decode_work(bf16, 1, 100, 1).bytes_per_gpu


def test_cpu_measured_peaks_are_the_peaks() -> None:
    cal = Calibration(device="Test CPU", threads=1, peak_flops={"bf16": 2e11, "fp32": 1e11},
                      memory_bandwidth=1e10, measured_at="2026-11-27T00:00:00Z", method="test",
                      torch_version="x")
    hw = HardwareSpec(cpu_accelerator(cal, 24e9), 1, cal)
    spec = load_model(LLAMA70)
    setup = make_setup(spec, hw)
    rows = analyze(setup, [Measurement(1, 100, 1, elapsed_s=100.0)])
    assert rows[0].peak_source == "measured"
    assert rows[0].mfu == pytest.approx(rows[0].flops / 100.0 / 2e11)
    assert rows[0].mfu_measured == pytest.approx(rows[0].mfu)


def test_engine_phase_times_ride_along(seed_setup) -> None:  # type: ignore[no-untyped-def]
    m = Measurement(2, 100, 5, ttft_s=0.5, itl_s=0.01,
                    extra={"server": {"prefill_time_s": 0.4, "decode_time_s": 0.05,
                                      "queue_time_s": 0.01}})
    rows = {r.phase: r for r in analyze(seed_setup(), [m])}
    assert rows["prefill"].extra["server_prefill_time_s"] == 0.4
    assert rows["decode"].extra["server_decode_time_s"] == 0.05
    assert rows["decode"].extra["server_queue_time_s"] == 0.01
    assert "server_prefill_time_s" not in rows["total"].extra


def test_latency_percentiles_ride_along_by_phase(seed_setup) -> None:  # type: ignore[no-untyped-def]
    pct = {"ttft_s": {"p50": 0.4, "p90": 0.5, "p99": 0.6}, "itl_s": {"p50": 0.01, "p90": 0.02,
                                                                     "p99": 0.03}}
    m = Measurement(2, 100, 5, ttft_s=0.5, itl_s=0.01, extra={"latency_percentiles": pct})
    rows = {r.phase: r for r in analyze(seed_setup(), [m])}
    assert rows["prefill"].extra["ttft_percentiles_s"] == pct["ttft_s"]
    assert rows["decode"].extra["itl_percentiles_s"] == pct["itl_s"]
    assert "e2e_percentiles_s" not in rows["total"].extra


def test_tp_defaults_to_the_device_count_and_an_explicit_mismatch_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Regression: --tp defaulted to 1, so `run --hardware 4xH100-SXM` without --tp failed, and
    analyze turned an explicit --tp 1 on 4 devices silently into 4."""
    from mfubench.cli import main

    base = ["roofline", LLAMA70, "--hardware", "4xH100-SXM", "-b", "1", "-i", "16", "-o", "2",
            "--json"]
    assert main(base) == 0
    assert json.loads(capsys.readouterr().out)["tp"] == 4
    assert main([*base, "--tp", "1"]) != 0
    assert "--tp 1" in capsys.readouterr().err
