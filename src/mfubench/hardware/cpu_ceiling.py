"""The theoretical ceiling of a CPU, beside what calibration measures::

    peak_flops[dtype] = cores * clock_hz * flop_per_cycle(dtype, effective ISA)
    memory_bandwidth  = sum over populated DIMMs of (data width / 8) * configured MT/s

``cores`` are the physical cores the measurement may use (``min(threads, cores)``: hyperthreads
share a core's vector units). ``flop_per_cycle`` comes from :mod:`mfubench.hardware.cpu_isa`
(upper bounds: the widest implementation of each instruction).

The clock is the highest the machine reveals, and its source is named: ``cpufreq`` max
(``/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq``, the maximum turbo) when present;
else the nominal clock (``@ 2.60GHz`` in the model name, or ``cpu MHz`` of ``/proc/cpuinfo``,
which in a virtual machine is the TSC's). A nominal clock is not a maximum: turbo can run above
it, and a measurement that beats the ceiling then shows the clock is higher than reported
(:meth:`CpuCeiling.beaten_by` gives the clock the measurement implies).

The memory bandwidth comes from the SMBIOS memory-device records (type 17) of
``/sys/firmware/dmi/tables/DMI`` (readable by root, absent in most virtual machines); it counts
each populated DIMM as its own channel, so it is an upper bound. Where the machine reveals
nothing, it is None and said so.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mfubench.hardware.cpu_isa import CpuIsa, Instruction

CEILING_DTYPES: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")

_CPUFREQ_MAX = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
_CPUINFO = Path("/proc/cpuinfo")
_DMI = Path("/sys/firmware/dmi/tables/DMI")


@dataclass(frozen=True)
class Clock:
    """A core clock and where it came from; ``maximum`` is True for a max-turbo figure."""

    hz: float
    source: str
    maximum: bool


@dataclass(frozen=True)
class CpuCeiling:
    """What a CPU could do at most, from its ISA, core count, clock and memory.

    Attributes:
        cores: physical cores counted.
        clock: the clock used, or None when the machine reveals none (then no FLOP ceiling).
        instructions: per dtype, the best instruction and its FLOPs per cycle per core.
        peak_flops: per dtype, ``cores * clock * flop_per_cycle`` (empty without a clock).
        memory_bandwidth: bytes/s from the DIMMs, or None when not revealed.
        memory_source: how the bandwidth was found, or why it is missing.
        isa_limits: environment caps on the ISA (``ONEDNN_MAX_CPU_ISA=AVX2``).
    """

    cores: int
    clock: Clock | None
    instructions: Mapping[str, Instruction] = field(hash=False)
    peak_flops: Mapping[str, float] = field(hash=False)
    memory_bandwidth: float | None
    memory_source: str
    isa_limits: tuple[str, ...] = ()

    def emulated(self) -> tuple[str, ...]:
        """The dtypes this CPU has no native instructions for."""
        return tuple(d for d, ins in self.instructions.items() if not ins.native)

    def beaten_by(self, dtype: str, measured: float) -> float | None:
        """The clock (Hz) a measured ``dtype`` rate above the ceiling implies, else None."""
        peak = self.peak_flops.get(dtype)
        if peak is None or measured <= peak or self.clock is None:
            return None
        return self.clock.hz * measured / peak

    def to_dict(self) -> dict[str, Any]:
        return {
            "cores": self.cores,
            "clock_hz": None if self.clock is None else self.clock.hz,
            "clock_source": None if self.clock is None else self.clock.source,
            "clock_is_maximum": None if self.clock is None else self.clock.maximum,
            "peak_flops": dict(self.peak_flops),
            "instructions": {d: {"name": i.name, "flop_per_cycle_per_core": i.flop_per_cycle,
                                 "native": i.native} for d, i in self.instructions.items()},
            "emulated": list(self.emulated()),
            "memory_bandwidth": self.memory_bandwidth,
            "memory_source": self.memory_source,
            "isa_limits": list(self.isa_limits),
            "formula": "cores x clock x FLOP/cycle of the best instruction (2 FLOPs per "
                       "multiply-add); bandwidth: DIMM width x MT/s summed",
        }


def ceiling(isa: CpuIsa, cores: int, clock: Clock | None,
            memory: tuple[float | None, str]) -> CpuCeiling:
    """The ceiling of ``cores`` cores of ``isa`` at ``clock`` (pure; see the module doc)."""
    instructions = {d: ins for d in CEILING_DTYPES if (ins := isa.instruction(d)) is not None}
    peaks = ({d: cores * clock.hz * ins.flop_per_cycle for d, ins in instructions.items()}
             if clock is not None else {})
    return CpuCeiling(cores, clock, MappingProxyType(instructions), MappingProxyType(peaks),
                      memory[0], memory[1], isa.limits)


def local_ceiling(threads: int | None = None) -> CpuCeiling:
    """This machine's CPU ceiling for ``threads`` threads (default: every usable core)."""
    from mfubench.hardware.cpu_isa import cpu_isa
    from mfubench.hardware.detect import detect_cpu

    cpu = detect_cpu()
    usable_cores = max(1, min(cpu.cores, cpu.usable_cpus))
    cores = usable_cores if threads is None else max(1, min(threads, usable_cores))
    return ceiling(cpu_isa(cpu.flags), cores, read_clock(cpu.model), read_dimm_bandwidth())


# --- what the machine reveals ------------------------------------------------------------------


def parse_model_ghz(model: str) -> float | None:
    """``Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz`` -> 2.0e9 Hz; None without such a suffix."""
    found = re.search(r"@\s*([0-9]+(?:\.[0-9]+)?)\s*GHz", model, re.IGNORECASE)
    return float(found.group(1)) * 1e9 if found else None


def parse_cpuinfo_mhz(text: str) -> float | None:
    """The highest ``cpu MHz`` of a ``/proc/cpuinfo`` text, in Hz (None when there is none)."""
    values = [float(v) for v in re.findall(r"^cpu MHz\s*:\s*([0-9.]+)", text, re.MULTILINE)]
    return max(values) * 1e6 if values and max(values) > 0 else None


def read_clock(model: str, cpufreq_max: Path = _CPUFREQ_MAX, cpuinfo: Path = _CPUINFO) -> Clock | None:
    """The highest clock the machine reveals (see the module doc), or None."""
    try:
        khz = float(cpufreq_max.read_text().strip())
        if khz > 0:
            return Clock(khz * 1e3, "cpufreq cpuinfo_max_freq (maximum turbo)", True)
    except (OSError, ValueError):
        pass
    nominal: list[tuple[float, str]] = []
    if (ghz := parse_model_ghz(model)) is not None:
        nominal.append((ghz, "the model name's base clock"))
    try:
        if (mhz := parse_cpuinfo_mhz(cpuinfo.read_text())) is not None:
            nominal.append((mhz, "/proc/cpuinfo cpu MHz"))
    except OSError:
        pass
    if not nominal:
        return None
    hz, source = max(nominal)
    return Clock(hz, f"{source} (nominal: turbo may run faster, the machine reveals no maximum)",
                 False)


def parse_smbios_memory(blob: bytes) -> list[tuple[int, int]]:
    """(data width in bits, MT/s) of each populated memory device (SMBIOS type 17) in a raw
    SMBIOS table; the configured speed (offset 0x20, SMBIOS 2.7+) when set, else the rated
    speed (0x15). Malformed records end the walk."""
    out: list[tuple[int, int]] = []
    i = 0
    while i + 4 <= len(blob):
        kind, length = blob[i], blob[i + 1]
        if length < 4 or i + length > len(blob):
            break
        record = blob[i:i + length]
        if kind == 17 and length >= 0x17:
            size = struct.unpack_from("<H", record, 0x0C)[0]
            width = struct.unpack_from("<H", record, 0x0A)[0]
            speed = struct.unpack_from("<H", record, 0x15)[0]
            if length >= 0x22:
                configured = struct.unpack_from("<H", record, 0x20)[0]
                speed = configured if configured not in (0, 0xFFFF) else speed
            if size not in (0, 0xFFFF) and width not in (0, 0xFFFF) and speed not in (0, 0xFFFF):
                out.append((width, speed))
        if kind == 127:
            break
        end = blob.find(b"\x00\x00", i + length)  # the string set ends with two NULs
        if end < 0:
            break
        i = end + 2
    return out


def read_dimm_bandwidth(path: Path = _DMI) -> tuple[float | None, str]:
    """(bytes/s, source) from the DIMMs of the SMBIOS table; (None, why) when not revealed."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        reason = "needs root" if isinstance(exc, PermissionError) else "absent"
        return None, f"not revealed ({path} {reason}; virtual machines rarely expose it)"
    dimms = parse_smbios_memory(blob)
    if not dimms:
        return None, f"not revealed ({path} lists no populated memory device with a speed)"
    total = sum(width / 8 * mts * 1e6 for width, mts in dimms)
    speeds = sorted({mts for _, mts in dimms})
    return total, (f"SMBIOS: {len(dimms)} DIMM(s) at {'/'.join(map(str, speeds))} MT/s, "
                   "each counted as its own channel (an upper bound)")
