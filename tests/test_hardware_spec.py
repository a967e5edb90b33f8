"""``--hardware`` parsing: NxNAME, NAME, cpu; per-device peaks; attaching a local calibration."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from mfubench.errors import MfubenchError, UnknownHardwareError
from mfubench.hardware import spec as spec_module
from mfubench.hardware.calibrate import Calibration, save_calibration
from mfubench.hardware.catalog import lookup
from mfubench.hardware.detect import detect_cpu
from mfubench.hardware.spec import HardwareSpec, parse_hardware


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MFUBENCH_CACHE_DIR", str(tmp_path))
    return tmp_path


def _calibration(device: str, threads: int | None, backend: str, at: str = "2026-11-27T10:00:00+00:00",
                 fp32: float = 1.5e11) -> Calibration:
    return Calibration(device=device, threads=threads,
                       peak_flops=MappingProxyType({"fp32": fp32, "bf16": 2 * fp32}),
                       memory_bandwidth=1.2e10, measured_at=at, method="test",
                       torch_version="test", backend=backend)


@pytest.mark.parametrize(
    ("text", "count", "name"),
    [
        ("4xH100-SXM", 4, "H100-SXM"),
        ("H100-SXM", 1, "H100-SXM"),
        ("1xH100-SXM", 1, "H100-SXM"),
        ("8 x b200", 8, "B200"),
        ("2XMI300X", 2, "MI300X"),
        ("8×H200", 8, "H200-SXM"),
        (" 16xNVIDIA H100 80GB HBM3 ", 16, "H100-SXM"),
        ("4xh100", 4, "H100-SXM"),
    ],
)
def test_parse_count_and_name(text: str, count: int, name: str) -> None:
    spec = parse_hardware(text)
    assert (spec.count, spec.accelerator.name) == (count, name)
    assert spec.name == f"{count}x{name}"
    assert spec.calibration is None  # nothing stored, no GPU here


@pytest.mark.parametrize("text", ["0xH100", "00xH100-SXM", "4x", "4x  ", "", "   "])
def test_malformed_values_are_user_errors(text: str) -> None:
    with pytest.raises(MfubenchError) as info:
        parse_hardware(text)
    assert not isinstance(info.value, UnknownHardwareError)


@pytest.mark.parametrize("text", ["4xFOO", "FOO", "x4", "-1xH100", "2xA100"])
def test_unknown_names_raise_unknown_hardware(text: str) -> None:
    with pytest.raises(UnknownHardwareError):
        parse_hardware(text)


def test_peaks_are_per_device_and_totals_multiply() -> None:
    spec = parse_hardware("4xH100-SXM")
    assert spec.peak_flops("bf16") == pytest.approx(989.4e12)
    assert spec.peak_flops("bfloat16") == spec.peak_flops("bf16")
    assert spec.total_peak_flops("bf16") == pytest.approx(4 * 989.4e12)
    assert spec.memory_bandwidth() == pytest.approx(3.35e12)
    assert spec.total_memory_bandwidth() == pytest.approx(4 * 3.35e12)
    assert spec.memory_capacity == 80e9


def test_missing_figures_are_none_never_another_dtypes() -> None:
    spec = parse_hardware("A100-SXM-80GB")
    assert spec.peak_flops("fp8") is None
    assert spec.total_peak_flops("fp8") is None
    assert spec.peak_flops("bf16", measured=True) is None  # no calibration
    assert spec.memory_bandwidth(measured=True) is None


def test_count_is_validated() -> None:
    with pytest.raises(MfubenchError):
        HardwareSpec(lookup("H100-SXM"), 0)


def test_cpu_without_a_calibration_says_to_calibrate() -> None:
    with pytest.raises(MfubenchError, match="mfubench calibrate"):
        parse_hardware("cpu")
    with pytest.raises(MfubenchError, match="--threads 3"):
        parse_hardware("cpu:3")


def test_cpu_uses_its_stored_calibration_as_its_peaks() -> None:
    model = detect_cpu().model
    save_calibration(_calibration(model, 1, "cpu", at="2026-11-27T10:00:00+00:00", fp32=1e11))
    save_calibration(_calibration(model, 2, "cpu", at="2026-11-27T11:00:00+00:00", fp32=2e11))
    save_calibration(_calibration("Some Other CPU", 1, "cpu", at="2026-11-27T12:00:00+00:00"))
    one = parse_hardware("cpu:1")
    assert one.measured and one.accelerator.measured
    assert one.name == "cpu:1"
    assert one.peak_flops("fp32") == 1e11
    assert one.peak_flops("fp32", measured=True) == 1e11
    assert one.memory_bandwidth() == 1.2e10
    assert one.accelerator.source.startswith("measured")
    newest = parse_hardware("CPU")  # newest calibration of *this* CPU model
    assert newest.peak_flops("fp32") == 2e11
    assert newest.calibration is not None and newest.calibration.threads == 2
    with pytest.raises(MfubenchError):
        parse_hardware("cpu:4")


def test_a_gpu_gets_the_calibration_of_a_matching_local_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    save_calibration(_calibration("NVIDIA H100 80GB HBM3", None, "cuda", fp32=5e13))
    monkeypatch.setattr(spec_module, "_local_gpu_names", lambda: ["NVIDIA H100 80GB HBM3"])
    spec = parse_hardware("8xH100-SXM")
    assert spec.calibration is not None
    assert spec.peak_flops("fp32", measured=True) == 5e13
    assert spec.peak_flops("fp32") == pytest.approx(66.9e12)  # the datasheet is unchanged
    assert parse_hardware("8xH100-SXM", attach_calibration=False).calibration is None
    assert parse_hardware("A100-SXM-80GB").calibration is None


def test_no_calibration_when_the_local_gpu_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    save_calibration(_calibration("NVIDIA H100 80GB HBM3", None, "cuda"))
    monkeypatch.setattr(spec_module, "_local_gpu_names", lambda: ["NVIDIA A100-SXM4-80GB"])
    assert parse_hardware("H100-SXM").calibration is None


def test_no_device_probing_without_stored_gpu_calibrations(monkeypatch: pytest.MonkeyPatch) -> None:
    def probe() -> list[str]:
        raise AssertionError("probed devices although nothing could match")

    monkeypatch.setattr(spec_module, "_local_gpu_names", probe)
    assert parse_hardware("H100-SXM").calibration is None
