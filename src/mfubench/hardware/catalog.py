"""The accelerator catalog: datasheet peaks with their sources, and exact look-up by name.

The data lives in ``catalog.toml`` next to this module (one table per SKU and form factor; the
conventions are at the top of that file and in ``docs/hardware.md``). Every figure is per device
and dense: ``peak_flops[dtype]`` is the 2:4-sparse datasheet figure divided by two wherever a
vendor prints only the sparse one.

Look-up is exact but forgiving about spelling: case, spaces, ``_`` and ``-`` do not matter
(``h100 sxm`` is ``H100-SXM``), and each entry lists the aliases drivers and people use
(``NVIDIA H100 80GB HBM3``, ``h100``). Anything else fails with the closest names; a name is
never matched by substring, so ``A100`` does not silently pick one of the four A100 SKUs.

**Shared names.** Some names drivers report stand for several entries: Metal reports ``Apple M2
Max`` for the 30- and the 38-core GPU, CUDA ``NVIDIA GeForce RTX 4060 Ti`` for the 8 GB and the
16 GB card. Each such entry lists the name in ``shared_aliases``; :func:`find` returns None for
it and :func:`lookup` raises :class:`AmbiguousHardwareError` naming every candidate
(:func:`candidates` gives them), so the user picks one with ``--hardware``.

**Bandwidth-only entries.** A device whose vendor publishes no FLOP/s (Apple's M2 to M4 GPUs)
has an empty ``peak_flops`` and says why in ``peak_flops_unpublished``: its MBU can be computed,
its MFU is None.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from mfubench.errors import UnknownHardwareError, closest
from mfubench.hardware.dtypes import COMPUTE_DTYPES, normalize_compute_dtype
from mfubench.hardware.system import System, parse_system


class AmbiguousHardwareError(UnknownHardwareError):
    """A name that stands for several catalog entries (``Apple M2 Max``): pick one."""

    def __init__(self, name: str, entries: tuple[str, ...]) -> None:
        self.entries = entries
        super().__init__(
            f"{name!r} names {len(entries)} catalog entries (variants the name does not tell "
            f"apart): {', '.join(entries)}; give --hardware with one of them"
        )


@dataclass(frozen=True)
class Interconnect:
    """How a device talks to its peers.

    Attributes:
        kind: ``NVLink``, ``NVLink bridge``, ``Infinity Fabric``, ``PCIe``, ``ICI``, ...
        generation: the link generation (``4`` for NVLink 4), if any.
        bandwidth_per_direction: bytes/s per device in one direction (half the "bidirectional"
            figure datasheets print).
    """

    kind: str
    generation: str | None
    bandwidth_per_direction: float


@dataclass(frozen=True)
class Accelerator:
    """One SKU and form factor, per device.

    Attributes:
        name: the canonical catalog name (``H100-SXM``).
        vendor: ``NVIDIA``, ``AMD``, ``Intel``, ``Google``, or the CPU vendor for ``cpu``.
        peak_flops: dense peak FLOP/s by compute dtype (``fp32``, ``tf32``, ``bf16``, ``fp16``,
            ``fp8``, ``int8``, ``fp4``); a dtype the device has no figure for is absent.
        memory_bandwidth: peak memory bandwidth, bytes/s.
        memory_capacity: memory, bytes (the datasheet's decimal GB times 1e9).
        interconnect: the scale-up link, if any.
        clock_mhz: the boost clock the peak FLOP/s assume, where published.
        power_w: the board power the peak assumes, where published.
        source: URL of the datasheet the figures come from.
        checked: ISO date the figures were last compared with the source.
        aliases: other names that look up this entry.
        notes: sparse-to-dense conversions, per-package conventions, what was not re-checked.
        measured: True when the figures were measured on this machine (``cpu``), not a datasheet.
        shared_aliases: names that also stand for other entries (see the module doc).
        system: the system it ships in (GPUs per node, NVLink domain, network), where the
            catalog gives one (:mod:`mfubench.hardware.system`).
    """

    name: str
    vendor: str
    peak_flops: Mapping[str, float] = field(hash=False)
    memory_bandwidth: float
    memory_capacity: float
    interconnect: Interconnect | None
    clock_mhz: float | None
    power_w: float | None
    source: str
    checked: str
    aliases: tuple[str, ...] = ()
    notes: str = ""
    measured: bool = False
    shared_aliases: tuple[str, ...] = ()
    system: System | None = None

    def peak(self, dtype: str) -> float | None:
        """Dense peak FLOP/s for ``dtype`` (aliases like ``bfloat16`` accepted), None if unpublished."""
        return self.peak_flops.get(normalize_compute_dtype(dtype))


def name_key(name: str) -> str:
    """The look-up key of a name: lower case, without spaces, ``_`` and ``-`` (``h100 sxm`` ->
    ``h100sxm``), so spellings that differ only in separators name the same entry."""
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


def _positive(entry: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"catalog entry {entry}: {key} must be a positive number, got {value!r}")
    return float(value)


def _optional_positive(entry: str, key: str, value: Any) -> float | None:
    return None if value is None else _positive(entry, key, value)


def _parse_entry(name: str, raw: Mapping[str, Any]) -> Accelerator:
    for key in ("vendor", "source", "checked"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ValueError(f"catalog entry {name}: missing {key}")
    date.fromisoformat(raw["checked"])
    peaks_raw = raw.get("peak_flops") or {}
    unknown = set(peaks_raw) - set(COMPUTE_DTYPES)
    if unknown:
        raise ValueError(f"catalog entry {name}: unknown dtypes {sorted(unknown)}")
    if not peaks_raw and not raw.get("peak_flops_unpublished"):
        raise ValueError(f"catalog entry {name}: no peak_flops (and no peak_flops_unpublished "
                         "saying why)")
    peaks = {d: _positive(name, f"peak_flops.{d}", peaks_raw[d]) for d in COMPUTE_DTYPES if d in peaks_raw}
    link = raw.get("interconnect")
    interconnect = None
    if link is not None:
        interconnect = Interconnect(
            kind=str(link["kind"]),
            generation=None if link.get("generation") is None else str(link["generation"]),
            bandwidth_per_direction=_positive(name, "interconnect.bandwidth_per_direction",
                                              link["bandwidth_per_direction"]),
        )
    return Accelerator(
        name=name,
        vendor=raw["vendor"],
        peak_flops=MappingProxyType(peaks),
        memory_bandwidth=_positive(name, "memory_bandwidth", raw.get("memory_bandwidth")),
        memory_capacity=_positive(name, "memory_capacity", raw.get("memory_capacity")),
        interconnect=interconnect,
        clock_mhz=_optional_positive(name, "clock_mhz", raw.get("clock_mhz")),
        power_w=_optional_positive(name, "power_w", raw.get("power_w")),
        source=raw["source"],
        checked=raw["checked"],
        aliases=tuple(str(a) for a in raw.get("aliases", ())),
        notes=str(raw.get("notes", "")) + (
            f" No peak FLOP/s: {raw['peak_flops_unpublished']}." if not peaks else ""),
        measured=False,
        shared_aliases=tuple(str(a) for a in raw.get("shared_aliases", ())),
        system=None if raw.get("system") is None else parse_system(name, raw["system"]),
    )


@lru_cache(maxsize=1)
def _catalog() -> tuple[dict[str, Accelerator], dict[str, str], dict[str, tuple[str, ...]]]:
    text = resources.files("mfubench.hardware").joinpath("catalog.toml").read_text("utf-8")
    entries = {name: _parse_entry(name, raw) for name, raw in tomllib.loads(text).items()}
    index: dict[str, str] = {}
    for name, acc in entries.items():
        for spelling in (name, *acc.aliases):
            key = name_key(spelling)
            if index.get(key, name) != name:
                raise ValueError(f"catalog: {spelling!r} names both {index[key]} and {name}")
            index[key] = name
    shared: dict[str, list[str]] = {}
    for name, acc in entries.items():
        for spelling in acc.shared_aliases:
            key = name_key(spelling)
            if key in index:
                raise ValueError(f"catalog: shared alias {spelling!r} of {name} is also a name "
                                 f"of {index[key]} alone")
            shared.setdefault(key, []).append(name)
    for key, names in shared.items():
        if len(names) < 2:
            raise ValueError(f"catalog: shared alias {key!r} names only {names[0]}")
    return entries, index, {k: tuple(v) for k, v in shared.items()}


def load_catalog() -> dict[str, Accelerator]:
    """Every catalog entry by canonical name, in file order."""
    return dict(_catalog()[0])


def find(name: str) -> Accelerator | None:
    """The entry ``name`` (or one of its aliases) names, or None (also for a shared name)."""
    entries, index, _ = _catalog()
    canonical = index.get(name_key(name))
    return None if canonical is None else entries[canonical]


def candidates(name: str) -> tuple[Accelerator, ...]:
    """Every entry ``name`` stands for: one for a name or alias, several for a shared name,
    none for an unknown name."""
    entries, _, shared = _catalog()
    acc = find(name)
    if acc is not None:
        return (acc,)
    return tuple(entries[n] for n in shared.get(name_key(name), ()))


def lookup(name: str) -> Accelerator:
    """The entry ``name`` names; :class:`AmbiguousHardwareError` listing the candidates for a
    shared name, :class:`UnknownHardwareError` with the closest names otherwise."""
    acc = find(name)
    if acc is not None:
        return acc
    several = candidates(name)
    if several:
        raise AmbiguousHardwareError(name, tuple(a.name for a in several))
    if name_key(name) == "cpu":
        raise UnknownHardwareError(
            "'cpu' is not a catalog entry: its peaks are measured (use --hardware cpu after "
            "`mfubench calibrate`)"
        )
    entries, index, _ = _catalog()
    spellings = list(entries) + [a for acc in entries.values() for a in acc.aliases]
    query = name_key(name)
    hits = [n for n in entries if query and name_key(n).startswith(query)]
    for hit in closest(name, spellings, n=8):
        canonical = index[name_key(hit)]
        if canonical not in hits:
            hits.append(canonical)
    hint = f"; closest: {', '.join(hits[:4])}" if hits else ""
    raise UnknownHardwareError(
        f"unknown hardware {name!r}{hint} (`mfubench hardware list` shows all)"
    )
