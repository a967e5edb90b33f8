"""Calibration: a quick CPU run gives sane figures; the stored JSON round-trips; keys carry threads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import MappingProxyType

import pytest

from mfubench.errors import InputFileError, MfubenchError
from mfubench.hardware.calibrate import (
    Calibration,
    cache_dir,
    calibrate,
    device_key,
    list_calibrations,
    load_calibration,
    save_calibration,
)

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
    assert json.loads(path.read_text())["schema_version"] == 1
    loaded = load_calibration(result.key)
    assert loaded == result
    assert list_calibrations() == [result]


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
