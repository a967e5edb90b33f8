"""The devices people run llama.cpp on (issue 14): GeForce RTX 30/40/50, RTX workstation cards,
A40, Jetson, DGX Spark, Apple M1-M4 GPU variants, Radeon and Strix Halo; the names CUDA, Metal
and ROCm report resolve exactly, shared names list their candidates, and GeForce carries its
FP16-accumulate peak at twice the FP32-accumulate one."""

from __future__ import annotations

from datetime import date

import pytest

from mfubench.hardware.catalog import (
    AmbiguousHardwareError,
    candidates,
    find,
    load_catalog,
    lookup,
)
from mfubench.hardware.dtypes import FP16_ACC16, acc16_or_fp16, normalize_compute_dtype
from mfubench.hardware.spec import parse_hardware

CATALOG = load_catalog()

GEFORCE = [
    "RTX-3060", "RTX-3060-Ti", "RTX-3070", "RTX-3070-Ti", "RTX-3080", "RTX-3080-Ti", "RTX-3090",
    "RTX-3090-Ti", "RTX-4060", "RTX-4060-Ti-8GB", "RTX-4060-Ti-16GB", "RTX-4070", "RTX-4070-Super",
    "RTX-4070-Ti", "RTX-4070-Ti-Super", "RTX-4080", "RTX-4080-Super", "RTX-4090", "RTX-5060",
    "RTX-5060-Ti-8GB", "RTX-5060-Ti-16GB", "RTX-5070", "RTX-5070-Ti", "RTX-5080", "RTX-5090",
]
WORKSTATION = ["RTX-A4000", "RTX-A4500", "RTX-A5000", "RTX-A6000", "A40", "RTX-5000-Ada",
               "RTX-6000-Ada", "RTX-PRO-6000-Blackwell"]
OTHERS = ["RTX-4000-Ada", "Jetson-AGX-Orin-64GB", "Jetson-AGX-Thor", "DGX-Spark", "L40S",
          "A100-PCIe-80GB", "H100-PCIe", "RX-7900-XTX", "RX-7900-XT", "Radeon-PRO-W7900",
          "Ryzen-AI-Max-395"]
APPLE_VARIANTS = {
    "M1": (7, 8), "M1 Pro": (14, 16), "M1 Max": (24, 32), "M1 Ultra": (48, 64),
    "M2": (8, 10), "M2 Pro": (16, 19), "M2 Max": (30, 38), "M2 Ultra": (60, 76),
    "M3": (8, 10), "M3 Pro": (14, 18), "M3 Max": (30, 40), "M3 Ultra": (60, 80),
    "M4": (8, 10), "M4 Pro": (16, 20), "M4 Max": (32, 40),
}
APPLE = [f"Apple-{chip.replace(' ', '-')}-{n}c" for chip, ns in APPLE_VARIANTS.items() for n in ns]
NEW = [n for n in GEFORCE + WORKSTATION + OTHERS + APPLE if n not in (
    "RTX-4090", "RTX-6000-Ada", "L40S", "A100-PCIe-80GB", "H100-PCIe")]


def test_every_device_of_the_issue_is_catalogued() -> None:
    missing = [n for n in GEFORCE + WORKSTATION + OTHERS + APPLE if n not in CATALOG]
    assert missing == []
    assert len(NEW) == 69


@pytest.mark.parametrize("name", NEW)
def test_every_new_entry_has_a_source_and_a_checked_date(name: str) -> None:
    acc = CATALOG[name]
    assert acc.source.startswith("https://"), acc.source
    assert date.fromisoformat(acc.checked) == date(2026, 12, 1)
    assert acc.notes
    assert acc.memory_bandwidth > 0 and acc.memory_capacity > 0
    if not acc.peak_flops:
        assert "No peak FLOP/s:" in acc.notes


@pytest.mark.parametrize("name", [n for n in GEFORCE if n != "RTX-4090"] + ["RTX-4090"])
def test_geforce_fp16_with_fp16_accumulate_is_twice_the_fp32_accumulate_peak(name: str) -> None:
    """The Ampere GA102, Ada and RTX Blackwell whitepapers: GeForce runs FP16 tensor math with
    FP32 accumulate at half its FP16-accumulate rate."""
    peaks = CATALOG[name].peak_flops
    assert peaks["fp16_acc16"] == pytest.approx(2 * peaks["fp16"], rel=2e-3)
    assert peaks["bf16"] == peaks["fp16"]
    assert acc16_or_fp16(peaks) == FP16_ACC16


@pytest.mark.parametrize("name", [n for n in WORKSTATION])
def test_workstation_cards_run_both_accumulations_at_one_rate(name: str) -> None:
    peaks = CATALOG[name].peak_flops
    assert peaks["fp16_acc16"] == peaks["fp16"]


@pytest.mark.parametrize(
    ("name", "dtype", "flops"),
    [
        ("RTX-3090", "fp16_acc16", 142.3e12),  # GA102 whitepaper: 142 | 284*
        ("RTX-3090", "fp16", 71.2e12),  # 71 | 142*
        ("RTX-4080", "fp16", 97.5e12),  # Ada whitepaper: 97.5 | 194.9*
        ("RTX-5090", "fp4", 1676e12),  # 3,352 AI TOPS = FP4 sparse
        ("RTX-5090", "fp16_acc16", 419e12),
        ("RTX-A6000", "fp16", 154.8e12),  # GA102 whitepaper Appendix C
        ("A40", "fp16", 149.7e12),  # datasheet, dense
        ("DGX-Spark", "fp4", 500e12),  # "1 PFLOP FP4" with sparsity
        ("RX-7900-XTX", "fp16", 122.8e12),
    ],
)
def test_published_dense_peaks(name: str, dtype: str, flops: float) -> None:
    assert lookup(name).peak(dtype) == pytest.approx(flops, rel=1e-9)


@pytest.mark.parametrize(
    ("name", "bandwidth"),
    [("RTX-3090", 936e9), ("RTX-4080", 716.8e9), ("RTX-4090", 1008e9), ("RTX-5090", 1792e9),
     ("Apple-M1-Max-32c", 400e9), ("Apple-M2-Ultra-76c", 800e9), ("Apple-M3-Max-30c", 300e9),
     ("Apple-M3-Max-40c", 400e9), ("Apple-M4-Max-32c", 410e9), ("Apple-M4-Max-40c", 546e9),
     ("Apple-M3-Ultra-80c", 819e9), ("DGX-Spark", 273e9), ("Ryzen-AI-Max-395", 256e9),
     ("RX-7900-XTX", 960e9)],
)
def test_bandwidths(name: str, bandwidth: float) -> None:
    assert lookup(name).memory_bandwidth == pytest.approx(bandwidth, rel=1e-12)


@pytest.mark.parametrize(
    ("reported", "name"),
    [
        ("NVIDIA GeForce RTX 3090", "RTX-3090"),
        ("NVIDIA GeForce RTX 4090", "RTX-4090"),
        ("NVIDIA GeForce RTX 4070 Ti SUPER", "RTX-4070-Ti-Super"),
        ("NVIDIA GeForce RTX 5090", "RTX-5090"),
        ("NVIDIA RTX A6000", "RTX-A6000"),
        ("NVIDIA RTX 6000 Ada Generation", "RTX-6000-Ada"),
        ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "RTX-PRO-6000-Blackwell"),
        ("NVIDIA A40", "A40"),
        ("NVIDIA GB10", "DGX-Spark"),
        ("NVIDIA Thor", "Jetson-AGX-Thor"),
        ("Radeon RX 7900 XTX", "RX-7900-XTX"),
        ("AMD Radeon RX 7900 XTX", "RX-7900-XTX"),
        ("Radeon 8060S Graphics", "Ryzen-AI-Max-395"),
        ("M2 Max 38-core GPU", "Apple-M2-Max-38c"),
    ],
)
def test_names_cuda_metal_and_rocm_report_resolve_exactly(reported: str, name: str) -> None:
    assert lookup(reported).name == name
    assert candidates(reported) == (CATALOG[name],)


@pytest.mark.parametrize("chip", sorted(APPLE_VARIANTS))
def test_apple_variants_are_distinct_entries_behind_one_metal_name(chip: str) -> None:
    metal = f"Apple {chip}"
    expected = tuple(f"Apple-{chip.replace(' ', '-')}-{n}c" for n in APPLE_VARIANTS[chip])
    assert find(metal) is None
    assert tuple(a.name for a in candidates(metal)) == expected
    with pytest.raises(AmbiguousHardwareError) as info:
        lookup(metal)
    assert info.value.entries == expected
    for variant in expected:
        assert variant in str(info.value)
        assert "--hardware" in str(info.value)
        assert lookup(variant).name == variant


def test_ambiguous_names_fail_through_hardware_too() -> None:
    with pytest.raises(AmbiguousHardwareError, match="RTX-4060-Ti-8GB, RTX-4060-Ti-16GB"):
        parse_hardware("NVIDIA GeForce RTX 4060 Ti", attach_calibration=False)
    with pytest.raises(AmbiguousHardwareError, match="Apple-M3-Max-30c, Apple-M3-Max-40c"):
        parse_hardware("2xApple M3 Max", attach_calibration=False)


def test_apple_m2_to_m4_have_no_flops_and_say_why() -> None:
    acc = lookup("Apple-M2-Max-38c")
    assert dict(acc.peak_flops) == {}
    assert acc.peak("fp16") is None
    assert "Apple publishes no FLOP/s" in acc.notes
    assert lookup("Apple-M1-Max-32c").peak("fp32") == 10.4e12


def test_fp16_acc16_is_a_dtype_name() -> None:
    assert normalize_compute_dtype("fp16-acc16") == FP16_ACC16
    assert acc16_or_fp16(CATALOG["H100-PCIe"].peak_flops) == "fp16"  # no separate figure
