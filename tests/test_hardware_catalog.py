"""The accelerator catalog: provenance of every entry, the required figures, exact alias look-up."""

from __future__ import annotations

import math
from datetime import date

import pytest

from mfubench.errors import MfubenchError, UnknownHardwareError
from mfubench.hardware.catalog import find, load_catalog, lookup, name_key
from mfubench.hardware.dtypes import COMPUTE_DTYPES

REQUIRED = [
    "H100-SXM", "H100-PCIe", "H100-NVL", "H200-SXM", "H200-NVL", "GH200", "B200", "B300", "GB200",
    "A100-SXM-40GB", "A100-SXM-80GB", "A100-PCIe-40GB", "A100-PCIe-80GB", "L40S", "L40", "L4",
    "A10", "A10G", "RTX-4090", "RTX-6000-Ada", "MI250X", "MI300X", "MI325X", "MI355X", "Gaudi2",
    "Gaudi3", "TPU-v5e", "TPU-v5p", "TPU-v6e",
]

CATALOG = load_catalog()


def test_every_required_entry_is_present_under_its_exact_name() -> None:
    missing = [name for name in REQUIRED if name not in CATALOG]
    assert missing == []
    for name in REQUIRED:
        assert lookup(name).name == name


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_entry_has_a_source_a_checked_date_and_a_dense_figure(name: str) -> None:
    acc = CATALOG[name]
    assert acc.source.startswith("https://"), acc.source
    assert date.fromisoformat(acc.checked) <= date.today()
    assert acc.peak_flops or "No peak FLOP/s:" in acc.notes, "no dense figure and no reason"
    assert set(acc.peak_flops) <= set(COMPUTE_DTYPES)
    values = [*acc.peak_flops.values(), acc.memory_bandwidth, acc.memory_capacity]
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert acc.measured is False
    if acc.interconnect is not None:
        assert acc.interconnect.bandwidth_per_direction > 0


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_no_sparse_figure_slipped_in_beside_dense_ones(name: str) -> None:
    """A 2:4-sparse figure is twice the dense one; mixing them breaks these ratios (2 % slack
    for datasheet rounding: the L40S prints 362.05 TF BF16 but 733 TF FP8)."""
    peaks = CATALOG[name].peak_flops
    slack = 1.02
    if "bf16" in peaks and "fp16" in peaks:
        assert peaks["fp16"] == peaks["bf16"]
    if "bf16" in peaks and "fp8" in peaks:
        assert peaks["fp8"] <= 2.0 * peaks["bf16"] * slack
    if "bf16" in peaks and "tf32" in peaks:
        assert peaks["tf32"] <= 0.5 * peaks["bf16"] * slack
    if "fp8" in peaks and "fp4" in peaks:  # Blackwell Ultra's FP4 is 3x its FP8
        # GeForce's fp8 is its halved FP32-accumulate rate: compare with the FP16-accumulate one
        geforce = peaks.get("fp16_acc16", 0.0) > 1.5 * peaks.get("fp16", math.inf)
        assert peaks["fp4"] <= 3.0 * peaks["fp8"] * (2.0 if geforce else 1.0) * slack
    if "fp16" in peaks and "fp16_acc16" in peaks:  # the same rate, or GeForce's twice it
        assert peaks["fp16"] <= peaks["fp16_acc16"] <= 2.0 * peaks["fp16"] * slack
    if "bf16" in peaks and "fp32" in peaks:
        assert peaks["fp32"] <= peaks["bf16"]


@pytest.mark.parametrize(
    ("name", "dtype", "flops"),
    [
        ("H100-SXM", "bf16", 989.4e12),
        ("H100-SXM", "fp8", 1978.9e12),
        ("A100-SXM-80GB", "bf16", 312e12),
        ("MI300X", "bf16", 1307.4e12),
        ("B200", "bf16", 2250e12),
        ("L40S", "bf16", 362.05e12),
    ],
)
def test_required_dense_peaks(name: str, dtype: str, flops: float) -> None:
    assert lookup(name).peak(dtype) == pytest.approx(flops, rel=1e-12)


@pytest.mark.parametrize(
    ("name", "bandwidth"),
    [
        ("H100-SXM", 3.35e12),
        ("H200-SXM", 4.8e12),
        ("A100-SXM-80GB", 2.039e12),
        ("MI300X", 5.3e12),
        ("B200", 8e12),
        ("L40S", 0.864e12),
    ],
)
def test_required_memory_bandwidths(name: str, bandwidth: float) -> None:
    assert lookup(name).memory_bandwidth == pytest.approx(bandwidth, rel=1e-12)


def test_a_dtype_without_a_figure_is_absent_not_borrowed() -> None:
    assert lookup("A100-SXM-80GB").peak("fp8") is None
    assert lookup("H100-SXM").peak("fp4") is None
    assert lookup("MI250X").peak("tf32") is None
    assert lookup("H100-SXM").peak("bfloat16") == lookup("H100-SXM").peak("bf16")


def test_mi250x_is_per_package_and_says_so() -> None:
    mi250x = lookup("MI250X")
    assert mi250x.memory_capacity == 128e9  # two GCDs of 64 GB
    assert mi250x.peak("bf16") == 383e12  # two GCDs of 191.5 TF
    assert "PER PACKAGE" in mi250x.notes


def test_sparse_conversions_are_noted() -> None:
    for name in ("H100-SXM", "H200-SXM", "B200", "GB200", "L4", "MI300X"):
        assert "sparse" in CATALOG[name].notes.lower(), name


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("NVIDIA H100 80GB HBM3", "H100-SXM"),
        ("h100", "H100-SXM"),
        ("H100 SXM", "H100-SXM"),
        ("h100_sxm", "H100-SXM"),
        ("NVIDIA H100 PCIe", "H100-PCIe"),
        ("NVIDIA A100-SXM4-80GB", "A100-SXM-80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100-SXM-40GB"),
        ("NVIDIA A100 80GB PCIe", "A100-PCIe-80GB"),
        ("AMD Instinct MI300X", "MI300X"),
        ("NVIDIA GeForce RTX 4090", "RTX-4090"),
        ("NVIDIA RTX 6000 Ada Generation", "RTX-6000-Ada"),
        ("h200", "H200-SXM"),
        ("Trillium", "TPU-v6e"),
        ("HL-325L", "Gaudi3"),
        ("l40s", "L40S"),
    ],
)
def test_aliases_as_drivers_and_people_write_them(alias: str, name: str) -> None:
    assert lookup(alias).name == name
    assert lookup(alias.upper()).name == name


def test_every_name_and_alias_resolves_to_its_own_entry() -> None:
    for name, acc in CATALOG.items():
        for spelling in (name, *acc.aliases):
            assert find(spelling) is acc, spelling


def test_lookup_is_exact_not_substring() -> None:
    """Regression: a prefix like ``A100`` must not silently pick one of four A100 SKUs."""
    for partial in ("A100", "H10", "MI300", "B2", "Gaudi"):
        with pytest.raises(UnknownHardwareError):
            lookup(partial)


def test_unknown_names_fail_with_the_closest_names() -> None:
    with pytest.raises(UnknownHardwareError) as info:
        lookup("A100")
    message = str(info.value)
    for sku in ("A100-SXM-40GB", "A100-SXM-80GB", "A100-PCIe-40GB", "A100-PCIe-80GB"):
        assert sku in message
    with pytest.raises(UnknownHardwareError, match="H100-SXM"):
        lookup("H100-SXM6")
    with pytest.raises(UnknownHardwareError, match="MI300X"):
        lookup("MI300")
    with pytest.raises(UnknownHardwareError, match="unknown hardware 'FOO'"):
        lookup("FOO")


def test_unknown_hardware_is_a_user_error() -> None:
    assert issubclass(UnknownHardwareError, MfubenchError)
    with pytest.raises(UnknownHardwareError, match="calibrate"):
        lookup("cpu")


def test_name_key_ignores_case_and_separators() -> None:
    assert name_key(" H100 SXM ") == name_key("h100-sxm") == name_key("H100_SXM") == "h100sxm"


def test_load_catalog_returns_a_copy() -> None:
    first = load_catalog()
    first.pop("H100-SXM")
    assert "H100-SXM" in load_catalog()
