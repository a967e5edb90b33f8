"""What this machine has: NVIDIA GPUs (NVML), AMD GPUs (amdsmi), and always the CPU.

Each probe is optional: ``pynvml`` (from the ``nvidia-ml-py`` package) and ``amdsmi`` are used
when importable and silently skipped when not, or when their driver is absent. GPU names are
mapped to catalog entries through the catalog's aliases; a GPU the catalog does not know is
reported with ``catalog_name=None``. The CPU comes from ``/proc/cpuinfo`` (Linux), with
``platform`` as the fallback elsewhere.

An MI250X is one package with two GCDs, and the drivers list each GCD as a GPU; the catalog
entry is per package, so :meth:`Detected.hardware_text` counts two GCDs as one MI250X.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfubench.hardware.catalog import find

#: CPU feature flags that decide how fast a CPU GEMM can be (x86 and Arm spellings).
INTERESTING_FLAGS: tuple[str, ...] = (
    "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
    "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "asimd", "asimdhp", "asimddp", "sve", "sve2",
    "bf16", "i8mm", "sme",
)

#: Catalog entries that drivers list per die, with the dies per catalog device.
DIES_PER_DEVICE: dict[str, int] = {"MI250X": 2}


@dataclass(frozen=True)
class CpuInfo:
    """The host CPU.

    Attributes:
        model: the model name the OS reports (``Intel(R) Xeon(R) Processor``).
        vendor: ``GenuineIntel``, ``AuthenticAMD``, an Arm implementer, or "".
        sockets: physical packages (1 when unknown).
        cores: physical cores (logical CPUs when the topology is unknown).
        logical_cpus: logical CPUs online.
        usable_cpus: logical CPUs this process may run on (affinity, cgroups aside).
        flags: the :data:`INTERESTING_FLAGS` the CPU has, in that order.
        memory_total: system memory, bytes (0 when unknown).
    """

    model: str
    vendor: str
    sockets: int
    cores: int
    logical_cpus: int
    usable_cpus: int
    flags: tuple[str, ...]
    memory_total: float


@dataclass(frozen=True)
class GpuInfo:
    """One GPU (one GCD for multi-die parts) as its driver reports it.

    Attributes:
        index: the driver's device index.
        vendor: ``NVIDIA`` or ``AMD``.
        name: the driver's product name (``NVIDIA H100 80GB HBM3``).
        catalog_name: the catalog entry the name maps to, or None.
        memory_total: device memory, bytes.
        clock_mhz: current graphics/SM clock, MHz (None if unreadable).
        max_clock_mhz: maximum graphics/SM clock, MHz (None if unreadable).
        memory_clock_mhz: current memory clock, MHz (None if unreadable).
    """

    index: int
    vendor: str
    name: str
    catalog_name: str | None
    memory_total: float
    clock_mhz: float | None
    max_clock_mhz: float | None
    memory_clock_mhz: float | None


@dataclass(frozen=True)
class Detected:
    """Everything :func:`detect` found, plus what it could not probe (``notes``)."""

    cpu: CpuInfo
    gpus: tuple[GpuInfo, ...]
    notes: tuple[str, ...] = ()

    def catalog_counts(self) -> dict[str, int]:
        """Catalog devices by name (dies folded per :data:`DIES_PER_DEVICE`)."""
        counts = Counter(g.catalog_name for g in self.gpus if g.catalog_name)
        return {name: max(1, n // DIES_PER_DEVICE.get(name, 1)) for name, n in counts.items()}

    def hardware_text(self) -> str:
        """A ``--hardware`` value for this machine: ``8xH100-SXM``, or ``cpu`` without known GPUs."""
        counts = self.catalog_counts()
        if not counts:
            return "cpu"
        name, count = max(counts.items(), key=lambda item: item[1])
        return f"{count}x{name}"


def parse_cpuinfo(text: str) -> tuple[str, str, int, int, int, tuple[str, ...]]:
    """Model, vendor, sockets, physical cores, logical CPUs and interesting flags of a
    ``/proc/cpuinfo`` text (x86 ``model name``/``flags`` or Arm ``CPU implementer``/``Features``)."""
    model = vendor = ""
    flags: set[str] = set()
    cores: set[tuple[str, str]] = set()
    sockets: set[str] = set()
    logical = 0
    physical_id = core_id = ""
    for line in text.splitlines() + [""]:
        if not line.strip():
            if physical_id or core_id:
                cores.add((physical_id, core_id))
            physical_id = core_id = ""
            continue
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            logical += 1
        elif key in ("model name", "Model Name", "Hardware") and not model:
            model = value
        elif key == "vendor_id" and not vendor:
            vendor = value
        elif key == "CPU implementer" and not vendor:
            vendor = f"Arm implementer {value}"
        elif key in ("flags", "Features"):
            flags.update(value.split())
        elif key == "physical id":
            physical_id = value
            sockets.add(value)
        elif key == "core id":
            core_id = value
    interesting = tuple(f for f in INTERESTING_FLAGS if f in flags)
    n_cores = len(cores) if cores else logical
    return model, vendor, max(1, len(sockets)), n_cores, logical, interesting


def _meminfo_total(path: Path = Path("/proc/meminfo")) -> float:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


def detect_cpu() -> CpuInfo:
    """The host CPU (``/proc/cpuinfo`` on Linux, ``platform`` elsewhere)."""
    logical_os = os.cpu_count() or 1
    try:
        model, vendor, sockets, cores, logical, flags = parse_cpuinfo(
            Path("/proc/cpuinfo").read_text()
        )
    except OSError:
        model, vendor, sockets, cores, logical, flags = "", "", 1, logical_os, logical_os, ()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = logical_os
    return CpuInfo(
        model=model or platform.processor() or platform.machine() or "unknown CPU",
        vendor=vendor,
        sockets=sockets,
        cores=cores or logical_os,
        logical_cpus=logical or logical_os,
        usable_cpus=usable,
        flags=flags,
        memory_total=_meminfo_total(),
    )


def catalog_name(name: str) -> str | None:
    """The catalog entry a driver's product name maps to (vendor prefix optional), or None."""
    acc = find(name)
    if acc is None and name.startswith(("NVIDIA ", "AMD ")):
        acc = find(name.split(" ", 1)[1])
    return None if acc is None else acc.name


def detect_nvidia() -> tuple[list[GpuInfo], str | None]:
    """NVIDIA GPUs through NVML, and a note when NVML is missing or fails."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return [], "NVIDIA: pynvml not installed (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
        return [], f"NVIDIA: NVML unavailable ({exc})"
    gpus: list[GpuInfo] = []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            raw_name: Any = pynvml.nvmlDeviceGetName(handle)
            name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)

            def clock(getter: Any, kind: Any, handle: Any = handle) -> float | None:
                try:
                    return float(getter(handle, kind))
                except Exception:
                    return None

            gpus.append(GpuInfo(
                index=index,
                vendor="NVIDIA",
                name=name,
                catalog_name=catalog_name(name),
                memory_total=float(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                clock_mhz=clock(pynvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_SM),
                max_clock_mhz=clock(pynvml.nvmlDeviceGetMaxClockInfo, pynvml.NVML_CLOCK_SM),
                memory_clock_mhz=clock(pynvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_MEM),
            ))
    except Exception as exc:
        return gpus, f"NVIDIA: NVML query failed ({exc})"
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return gpus, None


def detect_amd() -> tuple[list[GpuInfo], str | None]:
    """AMD GPUs through ``amdsmi`` (one entry per GCD), and a note when it is missing or fails."""
    try:
        import amdsmi  # type: ignore[import-not-found]
    except ImportError:
        return [], "AMD: amdsmi not installed"
    try:
        amdsmi.amdsmi_init()
    except Exception as exc:
        return [], f"AMD: amdsmi unavailable ({exc})"
    gpus: list[GpuInfo] = []
    try:
        for index, handle in enumerate(amdsmi.amdsmi_get_processor_handles()):
            asic = amdsmi.amdsmi_get_gpu_asic_info(handle)
            name = str(asic.get("market_name") or asic.get("product_name") or "AMD GPU")
            try:
                memory = float(amdsmi.amdsmi_get_gpu_memory_total(
                    handle, amdsmi.AmdSmiMemoryType.VRAM))
            except Exception:
                memory = 0.0
            current = maximum = None
            try:
                info = amdsmi.amdsmi_get_clock_info(handle, amdsmi.AmdSmiClkType.GFX)
                current = float(info.get("clk") or info.get("cur_clk"))
                maximum = float(info.get("max_clk")) if info.get("max_clk") else None
            except Exception:
                pass
            gpus.append(GpuInfo(
                index=index, vendor="AMD", name=name, catalog_name=catalog_name(name),
                memory_total=memory, clock_mhz=current, max_clock_mhz=maximum,
                memory_clock_mhz=None,
            ))
    except Exception as exc:
        return gpus, f"AMD: amdsmi query failed ({exc})"
    finally:
        with contextlib.suppress(Exception):
            amdsmi.amdsmi_shut_down()
    return gpus, None


def detect() -> Detected:
    """Probe the CPU, NVIDIA GPUs and AMD GPUs; what could not be probed goes into ``notes``."""
    nvidia, nvidia_note = detect_nvidia()
    amd, amd_note = detect_amd()
    notes = tuple(n for n in (nvidia_note, amd_note) if n)
    gpus = tuple(nvidia + amd)
    if any(g.catalog_name in DIES_PER_DEVICE for g in gpus):
        notes += ("MI250X: the driver lists each of its 2 GCDs as a GPU; counted per package",)
    unknown = sorted({g.name for g in gpus if g.catalog_name is None})
    if unknown:
        notes += (f"not in the catalog: {', '.join(unknown)}",)
    return Detected(cpu=detect_cpu(), gpus=gpus, notes=notes)
