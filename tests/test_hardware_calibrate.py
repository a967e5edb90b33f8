"""Calibration: a quick CPU run gives sane figures through the linear-layer layout as well as
square matmuls; the peak is the best timing and names it; the stored JSON round-trips (schema
1, square-only, is refused); keys carry threads and ISA caps."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import MappingProxyType

import pytest

from mfubench.errors import InputFileError, MfubenchError
from mfubench.hardware.calibrate import (
    Calibration,
    GemmShape,
    cache_dir,
    calibrate,
    device_key,
    list_calibrations,
    load_calibration,
    save_calibration,
)
from mfubench.hardware.detect import detect_cpu

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MFUBENCH_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_quick_cpu_calibration_gives_positive_finite_figures() -> None:
    before = torch.get_num_threads()
    steps: list[tuple[str, int, int]] = []
    result = calibrate(device="cpu", threads=1, dtypes=("fp32", "bfloat16", "tf32", "fp8"),
                       quick=True, progress=lambda *step: steps.append(step))
    assert result.backend == "cpu" and result.threads == 1
    assert set(result.peak_flops) == {"fp32", "bf16"}  # no tf32 or fp8 on a CPU
    for value in [*result.peak_flops.values(), result.memory_bandwidth]:
        assert math.isfinite(value) and value > 0
    assert result.device and result.torch_version == torch.__version__
    assert "quick" in result.method
    assert torch.get_num_threads() == before  # the thread count is restored
    assert steps[-1] == ("done", 5, 5)
    assert [s[0] for s in steps[:-1]] == ["gemm fp32", "gemm bf16", "gemm tf32", "gemm fp8",
                                          "memory bandwidth"]


def test_save_and_load_round_trip(cache: Path) -> None:
    result = calibrate(device="cpu", threads=1, dtypes=("fp32",), quick=True)
    path = save_calibration(result)
    assert path.parent == cache / "calibration" == cache_dir()
    assert path.name == f"{result.key}.json"
    assert json.loads(path.read_text())["schema_version"] == 2
    loaded = load_calibration(result.key)
    assert loaded == result
    assert list_calibrations() == [result]
    assert loaded is not None and loaded.gemms == result.gemms and loaded.ceiling == result.ceiling


def test_the_peak_is_the_best_timing_over_paths_and_shapes() -> None:
    shapes = (GemmShape("qkv_proj", 96, 160), GemmShape("down_proj", 128, 96))
    result = calibrate(device="cpu", threads=1, dtypes=("fp32", "bf16"), quick=True,
                       shapes=shapes, shapes_from="a test model")
    for dtype in ("fp32", "bf16"):
        timings = [g for g in result.gemms if g.dtype == dtype]
        paths = {g.path for g in timings}
        assert {"linear", "matmul"} <= paths  # the engine's layout and the square one
        assert {(g.k, g.n) for g in timings if g.path == "linear"} == {(96, 160), (128, 96)}
        assert {g.m for g in timings if g.path == "linear"} == {8, 32}
        best = result.best(dtype)
        assert best is not None and result.peak_flops[dtype] == best.flops_per_s
        assert best.flops_per_s == max(g.flops_per_s for g in timings)
        assert result.to_dict()["peak_gemm"][dtype] == best.to_dict()
    assert result.shapes_from == "a test model" and "a test model" in result.method


def test_schema_1_and_a_peak_below_its_own_timing_are_refused(cache: Path) -> None:
    good = calibrate(device="cpu", threads=1, dtypes=("fp32",), quick=True).to_dict()
    directory = cache / "calibration"
    directory.mkdir()
    (directory / "cpu-old-1t.json").write_text(json.dumps({**good, "schema_version": 1}))
    with pytest.raises(InputFileError, match="square GEMMs only.*calibrate` again"):
        load_calibration("cpu-old-1t")
    low = {**good, "peak_flops": {"fp32": good["peak_flops"]["fp32"] / 2}}
    (directory / "cpu-low-1t.json").write_text(json.dumps(low))
    with pytest.raises(InputFileError, match="below its own timing"):
        load_calibration("cpu-low-1t")


def test_isa_caps_make_another_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert device_key("cpu", "X", 1, ("ONEDNN_MAX_CPU_ISA=AVX2", "ATEN_CPU_CAPABILITY=avx2")) == "cpu-x-1t-avx2"
    result = calibrate(device="cpu", threads=1, dtypes=("fp32",), quick=True)
    capped = "avx512f" in detect_cpu().flags  # on an AVX2-only CPU the caps remove nothing
    assert result.key.endswith("-1t-avx2") == capped
    assert result.ceiling is not None and result.ceiling["isa_limits"] == list(result.isa_caps)
    assert bool(result.isa_caps) == capped


def test_thread_count_is_part_of_the_key() -> None:
    one = device_key("cpu", "Intel(R) Xeon(R) Processor", 1)
    two = device_key("cpu", "Intel(R) Xeon(R) Processor", 2)
    assert one == "cpu-intel-r-xeon-r-processor-1t"
    assert one != two
    assert device_key("cuda", "NVIDIA H100 80GB HBM3", None) == "cuda-nvidia-h100-80gb-hbm3"


def test_load_missing_is_none_and_malformed_is_an_input_error(cache: Path) -> None:
    assert load_calibration("cpu-nothing-1t") is None
    (cache / "calibration").mkdir()
    (cache / "calibration" / "cpu-bad-1t.json").write_text("{not json")
    with pytest.raises(InputFileError):
        load_calibration("cpu-bad-1t")
    good = Calibration("x", 1, MappingProxyType({"fp32": 1.0}), 1.0, "2026-01-01T00:00:00+00:00",
                       "m", "t").to_dict()
    assert Calibration.from_dict(good).peak_flops["fp32"] == 1.0
    for bad in ({**good, "memory_bandwidth": -1}, {**good, "peak_flops": {"fp32": float("nan")}},
                {**good, "peak_flops": {"fp12": 1.0}}, {k: v for k, v in good.items() if k != "device"}):
        (cache / "calibration" / "cpu-worse-1t.json").write_text(json.dumps(bad))
        with pytest.raises(InputFileError):
            load_calibration("cpu-worse-1t")
    assert list_calibrations() == []  # listing skips what it cannot read


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MFUBENCH_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "mfubench" / "calibration"


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(MfubenchError):
        calibrate(device="tpu", quick=True)
    with pytest.raises(MfubenchError):
        calibrate(device="cpu", threads=0, quick=True)
    with pytest.raises(MfubenchError):
        calibrate(device="cpu", dtypes=("fp12",), quick=True)


@pytest.mark.gpu
def test_quick_cuda_calibration() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    result = calibrate(device="cuda", dtypes=("fp32", "bf16"), quick=True)
    assert result.backend == "cuda" and result.threads is None
    assert all(v > 0 and math.isfinite(v) for v in result.peak_flops.values())
    assert result.memory_bandwidth > 0
