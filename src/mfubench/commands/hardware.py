"""``mfubench hardware list | show NAME | detect``: the catalog, one entry, and this machine.

``show`` takes any ``--hardware`` value (``H100-SXM``, ``4xH100-SXM``, ``cpu``). The JSON of
``list`` and ``show`` carries, per device and in SI units: ``name``, ``vendor``, ``peak_flops``
(dtype -> FLOP/s, dense), ``memory_bandwidth`` (bytes/s), ``memory_capacity`` (bytes),
``interconnect`` (``kind``, ``generation``, ``bandwidth_per_direction`` in bytes/s), ``clock_mhz``,
``power_w``, ``source``, ``checked``, ``aliases``, ``notes``, ``measured``, ``system`` (``name``,
``gpus_per_node``, ``scaleup_domain``, ``scaleout_bandwidth_per_direction`` in bytes/s,
``source``, ``checked``; None where the catalog gives none).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from typing import Any

from rich.console import Console
from rich.table import Table

from mfubench.hardware.calibrate import list_calibrations
from mfubench.hardware.catalog import Accelerator, load_catalog
from mfubench.hardware.cpu_ceiling import CpuCeiling, local_ceiling
from mfubench.hardware.detect import Detected, detect
from mfubench.hardware.dtypes import COMPUTE_DTYPES
from mfubench.hardware.spec import HardwareSpec, parse_hardware


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "hardware", help="the accelerator catalog, one entry, or what this machine has",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="hardware_command", metavar="{list,show,detect}", required=True)
    listing = sub.add_parser("list", help="every catalog entry with its headline figures")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = sub.add_parser("show", help="one entry: all figures, sources and notes")
    show.add_argument("name", help="NAME, NxNAME (4xH100-SXM) or cpu / cpu:N")
    show.add_argument("--json", action="store_true", help="print JSON")
    found = sub.add_parser("detect", help="this machine's CPU and GPUs, mapped to the catalog")
    found.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.hardware_command == "list":
        return _list(args.json)
    if args.hardware_command == "show":
        return _show(args.name, args.json)
    return _detect(args.json)


# --- JSON ------------------------------------------------------------------------------------


def accelerator_dict(acc: Accelerator) -> dict[str, Any]:
    """The JSON form of a catalog entry (per device, SI units)."""
    return {
        "name": acc.name,
        "vendor": acc.vendor,
        "peak_flops": dict(acc.peak_flops),
        "memory_bandwidth": acc.memory_bandwidth,
        "memory_capacity": acc.memory_capacity,
        "interconnect": None if acc.interconnect is None else asdict(acc.interconnect),
        "clock_mhz": acc.clock_mhz,
        "power_w": acc.power_w,
        "source": acc.source,
        "checked": acc.checked,
        "aliases": list(acc.aliases),
        "notes": acc.notes,
        "measured": acc.measured,
        "system": None if acc.system is None else asdict(acc.system),
    }


def spec_dict(spec: HardwareSpec) -> dict[str, Any]:
    """The JSON form of a ``--hardware`` value: the entry, its count, any local calibration and,
    for ``cpu``, the CPU's theoretical ceiling now (:mod:`mfubench.hardware.cpu_ceiling`)."""
    out = {
        **accelerator_dict(spec.accelerator),
        "spec": spec.name,
        "count": spec.count,
        "calibration": None if spec.calibration is None else spec.calibration.to_dict(),
    }
    if spec.measured:
        out["ceiling"] = _cpu_ceiling(spec).to_dict()
    return out


def _cpu_ceiling(spec: HardwareSpec) -> CpuCeiling:
    threads = spec.calibration.threads if spec.calibration else None
    return local_ceiling(threads)


def detected_dict(found: Detected) -> dict[str, Any]:
    """The JSON form of :func:`~mfubench.hardware.detect.detect`'s result."""
    cpu_calibrations = [c.key for c in list_calibrations()
                        if c.backend == "cpu" and c.device == found.cpu.model]
    return {
        "hardware": found.hardware_text(),
        "cpu": {**asdict(found.cpu), "flags": list(found.cpu.flags),
                "calibrations": cpu_calibrations},
        "gpus": [asdict(g) for g in found.gpus],
        "notes": list(found.notes),
    }


# --- text ------------------------------------------------------------------------------------


def _num(value: float, scale: float, digits: int = 6) -> str:
    """``value / scale`` with up to ``digits`` significant digits and no trailing zeros
    (6 keeps every datasheet figure exact; measured ones get 4)."""
    return f"{value / scale:,.{digits}g}"


def _flops(value: float | None, digits: int = 6) -> str:
    if value is None:
        return "-"
    if value >= 1e12:
        return f"{_num(value, 1e12, digits)} TFLOP/s"
    return f"{_num(value, 1e9, digits)} GFLOP/s"


def _bandwidth(value: float, digits: int = 6) -> str:
    if value >= 1e12:
        return f"{_num(value, 1e12, digits)} TB/s"
    return f"{_num(value, 1e9, digits)} GB/s"


def _link(acc: Accelerator) -> str:
    link = acc.interconnect
    if link is None:
        return "-"
    generation = f" {link.generation}" if link.generation else ""
    return f"{link.kind}{generation} {_num(link.bandwidth_per_direction, 1e9)} GB/s/dir"


def _console() -> Console:
    """stdout; piped output gets 160 columns instead of rich's 80 so tables do not wrap."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _list(as_json: bool) -> int:
    catalog = load_catalog()
    if as_json:
        print(json.dumps([accelerator_dict(a) for a in catalog.values()], indent=2))
        return 0
    table = Table(title="Accelerator catalog (dense peaks, per device)")
    for column in ("name", "vendor", "bf16 TFLOP/s", "fp8 TFLOP/s", "fp4 TFLOP/s", "TB/s", "GB",
                   "interconnect"):
        table.add_column(column, no_wrap=True,
                         justify="left" if column in ("name", "vendor", "interconnect") else "right")
    for acc in catalog.values():
        peaks = [acc.peak_flops.get(d) for d in ("bf16", "fp8", "fp4")]
        table.add_row(acc.name, acc.vendor, *("-" if p is None else _num(p, 1e12) for p in peaks),
                      _num(acc.memory_bandwidth, 1e12), _num(acc.memory_capacity, 1e9), _link(acc))
    console = _console()
    console.print(table)
    console.print("`mfubench hardware show NAME` gives every dtype, the source and notes; "
                  "`cpu` is measured: run `mfubench calibrate`.")
    return 0


def _show(name: str, as_json: bool) -> int:
    spec = parse_hardware(name)
    if as_json:
        print(json.dumps(spec_dict(spec), indent=2))
        return 0
    acc = spec.accelerator
    console = _console()
    kind = "measured on this machine" if acc.measured else "datasheet"
    console.print(f"[bold]{spec.name}[/bold]  {acc.vendor}  ({kind}; figures per device)")
    table = Table(show_header=True)
    table.add_column("dtype")
    table.add_column("peak (dense)", justify="right")
    calibrated = spec.calibration is not None and not acc.measured
    if calibrated:
        table.add_column("measured here", justify="right")
    if spec.count > 1:
        table.add_column(f"x{spec.count}", justify="right")
    ceiling = _cpu_ceiling(spec) if acc.measured else None
    if ceiling is not None:
        table.add_column("ceiling (ISA x cores x clock)", justify="right")
        table.add_column("instruction")
    digits = 4 if acc.measured else 6
    for dtype in COMPUTE_DTYPES:
        row = [dtype, _flops(spec.peak_flops(dtype), digits)]
        if calibrated:
            row.append(_flops(spec.peak_flops(dtype, measured=True), 4))
        if spec.count > 1:
            row.append(_flops(spec.total_peak_flops(dtype), digits))
        if ceiling is not None:
            ins = ceiling.instructions.get(dtype)
            row += [_flops(ceiling.peak_flops.get(dtype), 4), ins.name if ins else "-"]
        table.add_row(*row)
    console.print(table)
    if ceiling is not None and spec.calibration is not None:
        from mfubench.commands.calibrate import ceiling_notes

        for note in ceiling_notes(replace(spec.calibration, ceiling=ceiling.to_dict())):
            console.print(note, highlight=False)
        for dtype in spec.calibration.peak_flops:
            best = spec.calibration.best(dtype)
            if best is not None:
                console.print(f"measured {dtype} peak reached by {best.label}", highlight=False)
    bandwidth = _bandwidth(acc.memory_bandwidth, digits)
    if calibrated and spec.calibration is not None:
        bandwidth += f" (measured here: {_bandwidth(spec.calibration.memory_bandwidth, 4)})"
    lines = [
        ("memory bandwidth", bandwidth),
        ("memory capacity", f"{_num(acc.memory_capacity, 1e9, digits)} GB"),
        ("interconnect", _link(acc)),
        ("system", "-" if acc.system is None else
         f"{acc.system.name}: {acc.system.gpus_per_node} GPUs per node, NVLink domain "
         f"{acc.system.scaleup_domain}, network {acc.system.scaleout_bandwidth_per_direction / 1e9:g} "
         f"GB/s per GPU per direction ({acc.system.source}; checked {acc.system.checked})"),
        ("clock", "-" if acc.clock_mhz is None else f"{acc.clock_mhz:g} MHz"),
        ("power", "-" if acc.power_w is None else f"{acc.power_w:g} W"),
        ("source", acc.source),
        ("checked", acc.checked),
        ("aliases", ", ".join(acc.aliases) or "-"),
        ("notes", acc.notes or "-"),
    ]
    for label, value in lines:
        console.print(f"[bold]{label:>16}[/bold]  {value}", highlight=False)
    return 0


def _detect(as_json: bool) -> int:
    found = detect()
    if as_json:
        print(json.dumps(detected_dict(found), indent=2))
        return 0
    console = _console()
    cpu = found.cpu
    console.print(f"[bold]CPU[/bold]  {cpu.model} ({cpu.vendor or 'unknown vendor'}): "
                  f"{cpu.sockets} socket(s), {cpu.cores} cores, {cpu.logical_cpus} logical CPUs "
                  f"({cpu.usable_cpus} usable), {cpu.memory_total / 1e9:.1f} GB RAM",
                  highlight=False)
    console.print(f"     flags: {' '.join(cpu.flags) or '-'}", highlight=False)
    calibrations = detected_dict(found)["cpu"]["calibrations"]
    console.print(f"     calibrations: {', '.join(calibrations) or 'none (run `mfubench calibrate`)'}",
                  highlight=False)
    if found.gpus:
        table = Table(title="GPUs")
        for column in ("index", "vendor", "name", "catalog", "memory GB", "clock MHz", "max MHz"):
            table.add_column(column)
        for g in found.gpus:
            table.add_row(str(g.index), g.vendor, g.name, g.catalog_name or "(not in catalog)",
                          _num(g.memory_total, 1e9),
                          "-" if g.clock_mhz is None else f"{g.clock_mhz:g}",
                          "-" if g.max_clock_mhz is None else f"{g.max_clock_mhz:g}")
        console.print(table)
    else:
        console.print("[bold]GPUs[/bold] none found")
    for note in found.notes:
        console.print(f"  note: {note}", highlight=False)
    console.print(f"--hardware {found.hardware_text()}", highlight=False)
    return 0
