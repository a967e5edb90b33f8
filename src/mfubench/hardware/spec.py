"""``--hardware`` values: ``NxNAME`` (``4xH100-SXM``), ``NAME`` (one device) or ``cpu``.

A :class:`HardwareSpec` is a catalog entry, a device count and, when one was measured on this
machine, a :class:`~mfubench.hardware.calibrate.Calibration`. Every figure it gives is per device;
``total_*`` multiplies by the count.

``cpu`` has no datasheet: it is this machine's CPU with its stored calibration as its peaks
(``accelerator.measured`` is True). ``cpu:N`` picks the calibration made with N threads; plain
``cpu`` takes the newest one for this CPU model. A catalog GPU gets the stored calibration of a
local GPU of the same catalog entry, so an analysis can report MFU against both the datasheet and
the measured peak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mfubench.errors import MfubenchError
from mfubench.hardware.calibrate import Calibration, device_key, list_calibrations, load_calibration
from mfubench.hardware.catalog import Accelerator, lookup
from mfubench.hardware.dtypes import normalize_compute_dtype
from mfubench.hardware.system import System

_COUNT = re.compile(r"^\s*(\d+)\s*[x×]\s*(.*?)\s*$", re.IGNORECASE)
_CPU = re.compile(r"^\s*cpu(?:\s*:\s*(\d+))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class HardwareSpec:
    """``count`` devices of one kind, with this machine's calibration of it if there is one."""

    accelerator: Accelerator
    count: int = 1
    calibration: Calibration | None = None
    gpus_per_node: int | None = None  # --gpus-per-node: overrides the system's node size

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise MfubenchError(f"device count must be a positive integer, got {self.count!r}")

    @property
    def name(self) -> str:
        """``4xH100-SXM``, or ``cpu`` / ``cpu:N`` for the measured CPU."""
        if self.accelerator.measured:
            threads = self.calibration.threads if self.calibration else None
            return "cpu" if threads is None else f"cpu:{threads}"
        return f"{self.count}x{self.accelerator.name}"

    @property
    def system(self) -> System | None:
        """The system layout (the catalog's, with ``--gpus-per-node`` applied), if known."""
        sys = self.accelerator.system
        return None if sys is None else sys.with_gpus_per_node(self.gpus_per_node)

    @property
    def measured(self) -> bool:
        """True when the peaks are this machine's measurements (``cpu``), not a datasheet's."""
        return self.accelerator.measured

    def peak_flops(self, dtype: str, measured: bool = False) -> float | None:
        """Per-device peak FLOP/s for ``dtype``: the catalog's dense figure, or with ``measured``
        the calibration's. None when there is no such figure (so no MFU, never a wrong one)."""
        key = normalize_compute_dtype(dtype)
        if measured:
            return None if self.calibration is None else self.calibration.peak_flops.get(key)
        return self.accelerator.peak_flops.get(key)

    def memory_bandwidth(self, measured: bool = False) -> float | None:
        """Per-device memory bandwidth, bytes/s: the catalog's, or with ``measured`` the calibration's."""
        if measured:
            return None if self.calibration is None else self.calibration.memory_bandwidth
        return self.accelerator.memory_bandwidth

    @property
    def memory_capacity(self) -> float:
        """Per-device memory, bytes."""
        return self.accelerator.memory_capacity

    def total_peak_flops(self, dtype: str, measured: bool = False) -> float | None:
        """:meth:`peak_flops` times the device count."""
        peak = self.peak_flops(dtype, measured)
        return None if peak is None else peak * self.count

    def total_memory_bandwidth(self, measured: bool = False) -> float | None:
        """:meth:`memory_bandwidth` times the device count."""
        bandwidth = self.memory_bandwidth(measured)
        return None if bandwidth is None else bandwidth * self.count


def cpu_accelerator(calibration: Calibration, memory_capacity: float, vendor: str = "") -> Accelerator:
    """The local CPU as a catalog-like entry whose peaks are ``calibration``'s measurements."""
    threads = f"{calibration.threads} thread(s)" if calibration.threads else "all threads"
    return Accelerator(
        name="cpu",
        vendor=vendor or "CPU",
        peak_flops=calibration.peak_flops,
        memory_bandwidth=calibration.memory_bandwidth,
        memory_capacity=memory_capacity,
        interconnect=None,
        clock_mhz=None,
        power_w=None,
        source=f"measured: `mfubench calibrate` on {calibration.device}, {threads}, "
               f"{calibration.measured_at}",
        checked=calibration.measured_at[:10],
        aliases=(),
        notes=calibration.method,
        measured=True,
    )


def _cpu_spec(threads: int | None) -> HardwareSpec:
    """This CPU with the stored calibration of ``threads`` threads (newest if None) made under
    the ISA caps in force now (an AVX2-capped run is another device than the uncapped CPU)."""
    from mfubench.hardware.cpu_isa import cpu_isa
    from mfubench.hardware.detect import detect_cpu

    cpu = detect_cpu()
    caps = cpu_isa(cpu.flags).limits
    if threads is not None:
        calibration = load_calibration(device_key("cpu", cpu.model, threads, caps))
    else:
        mine = [c for c in list_calibrations()
                if c.backend == "cpu" and c.device == cpu.model and c.isa_caps == caps]
        calibration = mine[0] if mine else None
    if calibration is None:
        with_threads = f" with {threads} thread(s)" if threads is not None else ""
        with_threads += f" under {', '.join(caps)}" if caps else ""
        flag = f" --threads {threads}" if threads is not None else " --threads N"
        raise MfubenchError(
            f"no stored calibration for this CPU ({cpu.model}){with_threads}: "
            f"run `mfubench calibrate{flag}` first"
        )
    return HardwareSpec(cpu_accelerator(calibration, cpu.memory_total, cpu.vendor), 1, calibration)


def _local_gpu_names() -> list[str]:
    """Product names of the GPUs this machine has (NVML/amdsmi, else PyTorch's CUDA)."""
    from mfubench.hardware.detect import detect_amd, detect_nvidia

    names = [g.name for g in detect_nvidia()[0] + detect_amd()[0]]
    if names:
        return names
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [str(torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]


def local_calibration(accelerator: Accelerator) -> Calibration | None:
    """A stored GPU calibration of ``accelerator``'s kind, if a local GPU is of that kind."""
    from mfubench.hardware.detect import catalog_name

    stored = [c for c in list_calibrations()
              if c.backend != "cpu" and catalog_name(c.device) == accelerator.name]
    if not stored:  # checked first: no device probing when nothing could match
        return None
    if any(catalog_name(n) == accelerator.name for n in _local_gpu_names()):
        return stored[0]
    return None


def parse_hardware(text: str, *, attach_calibration: bool = True) -> HardwareSpec:
    """Parse ``NxNAME``, ``NAME`` or ``cpu`` / ``cpu:N`` (see the module doc).

    Raises :class:`MfubenchError` for a malformed value (``0xH100``, ``4x``) and
    :class:`~mfubench.errors.UnknownHardwareError`, listing the closest names, for an unknown
    name. ``attach_calibration=False`` skips looking for this machine's GPU calibration.
    """
    cpu = _CPU.match(text)
    if cpu:
        return _cpu_spec(None if cpu.group(1) is None else int(cpu.group(1)))
    count, name = 1, text.strip()
    counted = _COUNT.match(text)
    if counted:
        count, name = int(counted.group(1)), counted.group(2)
        if count < 1:
            raise MfubenchError(f"--hardware {text!r}: the device count must be at least 1")
        if not name:
            raise MfubenchError(f"--hardware {text!r}: no accelerator name after the count")
    if not name:
        raise MfubenchError("--hardware is empty; give NxNAME (e.g. 4xH100-SXM), NAME or cpu")
    accelerator = lookup(name)
    calibration = local_calibration(accelerator) if attach_calibration else None
    return HardwareSpec(accelerator, count, calibration)
