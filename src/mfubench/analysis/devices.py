"""The device a results file names, looked up in the catalog (``analyze`` without ``--hardware``).

llama-bench writes the names its backends give the devices (``gpu_info``: ``NVIDIA GeForce RTX
4090`` from CUDA, ``Apple M2 Max`` from Metal, ``Radeon RX 7900 XTX`` from ROCm; ``cpu_info`` on
a CPU-only run), which the importer keeps in ``extra["devices"]``. :func:`hardware_of` takes the
one kind of device every point names and looks it up exactly: a name the catalog does not know,
a name shared by several entries (an Apple chip sold with several GPU-core counts), points that
name different devices or none, each fail with a message that asks for ``--hardware`` (and lists
the candidates). The count is one: a layer split over several GPUs is a pipeline, applied per
point (:mod:`mfubench.analysis.as_run`), and a row split is refused here (give ``--hardware
NxNAME``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mfubench.analysis.measurement import Measurement
from mfubench.errors import MfubenchError, UnknownHardwareError
from mfubench.hardware.catalog import AmbiguousHardwareError, lookup
from mfubench.hardware.spec import HardwareSpec, local_calibration


def reported_devices(m: Measurement) -> tuple[str, ...]:
    """The device names point ``m``'s file reported (empty when it names none)."""
    names = m.extra.get("devices") if isinstance(m.extra, Mapping) else None
    return tuple(str(n) for n in names) if isinstance(names, list | tuple) else ()


def hardware_of(measurements: Sequence[Measurement]) -> HardwareSpec:
    """One device of the kind every point names (see the module doc)."""
    named = {reported_devices(m) for m in measurements}
    kinds = {n for names in named for n in names}
    if not measurements or not kinds or () in named:
        raise MfubenchError("--hardware is needed: the results do not name their device "
                            "(llama-bench's markdown and older files have no gpu_info)")
    if len(kinds) > 1:
        raise MfubenchError(f"--hardware is needed: the results name several devices "
                            f"({', '.join(sorted(kinds))})")
    (name,) = kinds
    if any(m.extra.get("split_mode") == "row" and len(reported_devices(m)) > 1
           for m in measurements):
        raise MfubenchError(f"--hardware is needed: a row split over several {name} (give "
                            "NxNAME)")
    try:
        accelerator = lookup(name)
    except AmbiguousHardwareError as exc:
        raise AmbiguousHardwareError(name, exc.entries) from None
    except UnknownHardwareError as exc:
        raise UnknownHardwareError(f"the results name the device {name!r}, which is not in the "
                                   f"catalog; give --hardware ({exc})") from None
    return HardwareSpec(accelerator, 1, local_calibration(accelerator))
