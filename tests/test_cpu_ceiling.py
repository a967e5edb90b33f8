"""The CPU ceiling: cores x clock x FLOP/cycle, the clock's source, the DIMMs' bandwidth from a
raw SMBIOS table, and what a measurement above the ceiling implies."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mfubench.hardware.cpu_ceiling import (
    Clock,
    ceiling,
    local_ceiling,
    parse_cpuinfo_mhz,
    parse_model_ghz,
    parse_smbios_memory,
    read_clock,
    read_dimm_bandwidth,
)
from mfubench.hardware.cpu_isa import cpu_isa

SPR = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def test_ceiling_is_cores_times_clock_times_flop_per_cycle() -> None:
    c = ceiling(cpu_isa(SPR, {}), 4, Clock(2.5e9, "test", True), (None, "not revealed"))
    assert c.peak_flops["fp32"] == 4 * 2.5e9 * 64
    assert c.peak_flops["bf16"] == 4 * 2.5e9 * 1024
    assert c.emulated() == ("fp16",)  # no avx512_fp16 or amx_fp16 in SPR above
    assert c.memory_bandwidth is None and c.to_dict()["memory_source"] == "not revealed"
    assert ceiling(cpu_isa(SPR, {}), 4, None, (None, "")).peak_flops == {}


def test_a_measurement_above_the_ceiling_implies_a_faster_clock() -> None:
    c = ceiling(cpu_isa(("avx", "avx2", "fma"), {}), 1, Clock(2.6e9, "nominal", False), (None, ""))
    assert c.peak_flops["fp32"] == pytest.approx(83.2e9)
    assert c.beaten_by("fp32", 80e9) is None
    assert c.beaten_by("fp32", 120e9) == pytest.approx(2.6e9 * 120 / 83.2)


def test_clock_sources_in_order(tmp_path: Path) -> None:
    cpufreq, cpuinfo = tmp_path / "max", tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\ncpu MHz\t\t: 2600.000\nprocessor : 1\ncpu MHz : 3100.5\n")
    clock = read_clock("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", cpufreq, cpuinfo)
    assert clock is not None and clock.hz == pytest.approx(3.1005e9) and not clock.maximum
    assert "nominal" in clock.source
    cpufreq.write_text("3800000\n")
    clock = read_clock("x", cpufreq, cpuinfo)
    assert clock == Clock(3.8e9, "cpufreq cpuinfo_max_freq (maximum turbo)", True)
    assert read_clock("no clock", tmp_path / "none", tmp_path / "none") is None
    assert parse_model_ghz("AMD EPYC 7B13") is None
    assert parse_cpuinfo_mhz("cpu MHz : 0\n") is None


def _type17(size_mb: int, width: int, speed: int, configured: int) -> bytes:
    record = bytearray(0x28)
    record[0], record[1] = 17, 0x28
    struct.pack_into("<H", record, 0x0A, width)
    struct.pack_into("<H", record, 0x0C, size_mb)
    struct.pack_into("<H", record, 0x15, speed)
    struct.pack_into("<H", record, 0x20, configured)
    return bytes(record) + b"DIMM_A1\x00\x00"


def test_smbios_memory_devices_give_the_dimm_bandwidth(tmp_path: Path) -> None:
    bios = bytes([0, 0x18]) + bytes(0x16) + b"Vendor\x00\x00"  # a type-0 record to skip
    empty_slot = _type17(0, 64, 0, 0)
    blob = (bios + _type17(32768, 64, 4800, 4400) + empty_slot + _type17(32768, 64, 4800, 0)
            + bytes([127, 4, 0, 0]) + b"\x00\x00")
    assert parse_smbios_memory(blob) == [(64, 4400), (64, 4800)]
    path = tmp_path / "DMI"
    path.write_bytes(blob)
    bandwidth, source = read_dimm_bandwidth(path)
    assert bandwidth == 8 * 4400e6 + 8 * 4800e6
    assert "2 DIMM(s)" in source and "upper bound" in source
    assert read_dimm_bandwidth(tmp_path / "absent")[0] is None
    assert parse_smbios_memory(b"\x11\x02") == []  # a malformed record ends the walk


def test_local_ceiling_counts_at_most_the_threads_asked_for() -> None:
    one = local_ceiling(1)
    assert one.cores == 1
    if one.clock is not None:
        assert one.peak_flops["fp32"] == one.clock.hz * one.instructions["fp32"].flop_per_cycle
