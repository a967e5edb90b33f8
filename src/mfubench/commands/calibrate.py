"""``mfubench calibrate``: measure this device's GEMM FLOP/s per dtype and its memory bandwidth.

Runs on CUDA when PyTorch sees a GPU, else on the CPU with ``--threads`` threads (the thread
count is part of the stored key: calibrate with the thread count the server uses, e.g.
``--threads 1`` for a vLLM CPU server run with ``OMP_NUM_THREADS=1``). The result is stored
under ``$MFUBENCH_CACHE_DIR/calibration/`` (default ``~/.cache/mfubench/calibration/``) and
becomes the peaks of ``--hardware cpu`` (or the "measured" column of a matching GPU).

``--model M`` times the linear layers at M's own projection shapes (with ``--tp``, one GPU's
shard), as the engine serving it runs them. On a CPU it prints the theoretical ceiling beside
the measurement (cores x clock x FLOP per cycle of the ISA; the DIMMs' bandwidth where the
machine reveals it) and says which dtypes the CPU only emulates.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mfubench.commands.argtypes import positive_int
from mfubench.hardware.calibrate import Calibration, calibrate, save_calibration
from mfubench.hardware.catalog import Accelerator, find
from mfubench.hardware.dtypes import normalize_compute_dtype
from mfubench.report.units import si


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="measure this device's achievable GEMM FLOP/s and memory bandwidth",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for the run (default: PyTorch's current count)")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], metavar="DTYPE",
                        help="dtypes to measure: fp32 tf32 bf16 fp16 fp8 int8 (default: fp32 bf16)")
    parser.add_argument("--model", "-m", default=None,
                        help="time the linear layers at this model's projection shapes "
                             "(a bundled id, config.json, folder or .gguf; default: typical shapes)")
    parser.add_argument("--tp", type=positive_int, default=1,
                        help="with --model: the shapes of one of TP GPUs (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: seconds, but the figures are not peaks")
    parser.add_argument("--no-save", action="store_true", help="measure and print, do not store")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1e12:
        return f"{value / 1e12:,.2f} TFLOP/s"
    return f"{value / 1e9:,.1f} GFLOP/s"


def run(args: argparse.Namespace) -> int:
    dtypes = [normalize_compute_dtype(d) for d in args.dtypes]
    shapes, shapes_from = None, "typical"
    if args.model is not None:
        from mfubench.counting.gemm_shapes import gemm_shapes
        from mfubench.model.registry import load_model

        spec = load_model(args.model)
        shapes = gemm_shapes(spec, args.tp)
        shapes_from = spec.name + (f" (TP {args.tp})" if args.tp > 1 else "")
    stderr = Console(stderr=True)
    with Progress(TextColumn("calibrating {task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=stderr, transient=True) as bar:
        task = bar.add_task("", total=len(dtypes) + 1)

        def progress(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=total)

        result = calibrate(device=args.device, threads=args.threads, dtypes=dtypes,
                           quick=args.quick, progress=progress, shapes=shapes,
                           shapes_from=shapes_from)
    path = None if args.no_save else save_calibration(result)
    skipped = [d for d in dtypes if d not in result.peak_flops]
    if args.json:
        print(json.dumps({**result.to_dict(), "path": None if path is None else str(path),
                          "skipped": skipped}, indent=2))
        return 0
    _render(result, find(result.device) if result.backend != "cpu" else None, skipped)
    console = Console()
    if path is not None:
        use = "cpu" if result.threads is None or result.backend != "cpu" else f"cpu:{result.threads}"
        hint = f"; use it with --hardware {use}" if result.backend == "cpu" else ""
        console.print(f"saved {path}{hint}", highlight=False)
    return 0


def _render(result: Calibration, datasheet: Accelerator | None, skipped: list[str]) -> None:
    console = Console()
    threads = f", {result.threads} thread(s)" if result.threads else ""
    console.print(f"[bold]{result.device}[/bold] ({result.backend}{threads}, torch "
                  f"{result.torch_version}, {result.measured_at}; linear shapes of "
                  f"{result.shapes_from})", highlight=False)
    ceiling = result.ceiling or {}
    ceiling_peaks: dict[str, float] = dict(ceiling.get("peak_flops") or {})
    instructions: dict[str, Any] = dict(ceiling.get("instructions") or {})
    table = Table()
    table.add_column("dtype")
    table.add_column("measured GEMM peak", justify="right")
    if datasheet is not None:
        table.add_column(f"{datasheet.name} datasheet", justify="right")
        table.add_column("measured / datasheet", justify="right")
    if ceiling:
        table.add_column("ceiling (ISA x cores x clock)", justify="right")
        table.add_column("measured / ceiling", justify="right")
        table.add_column("instruction")
    for dtype, value in result.peak_flops.items():
        row = [dtype, _rate(value)]
        if datasheet is not None:
            peak = datasheet.peak_flops.get(dtype)
            row += [_rate(peak), "-" if peak is None else f"{value / peak:.0%}"]
        if ceiling:
            top = ceiling_peaks.get(dtype)
            ins = instructions.get(dtype) or {}
            row += [_rate(top), "-" if not top else f"{value / top:.0%}",
                    str(ins.get("name", "-"))]
        table.add_row(*row)
    console.print(table)
    for dtype in result.peak_flops:
        best = result.best(dtype)
        if best is not None:
            console.print(f"{dtype} peak reached by {best.label} (path shape MxKxN), of "
                          f"{sum(g.dtype == dtype for g in result.gemms)} GEMMs timed", highlight=False)
    line = f"memory bandwidth: {result.memory_bandwidth / 1e9:,.1f} GB/s (copy/triad, read + write)"
    if datasheet is not None:
        line += (f"; datasheet {datasheet.memory_bandwidth / 1e9:,.0f} GB/s "
                 f"({result.memory_bandwidth / datasheet.memory_bandwidth:.0%})")
    console.print(line, highlight=False)
    for note in ceiling_notes(result):
        console.print(note, highlight=False)
    if skipped:
        console.print(f"not measurable on this device: {', '.join(skipped)}", highlight=False)


def ceiling_notes(result: Calibration) -> list[str]:
    """Sentences on a CPU calibration's ceiling: its clock and bandwidth sources, the dtypes the
    CPU emulates, the ISA caps in force, and any measurement above the ceiling (what it shows)."""
    ceiling = result.ceiling
    if not ceiling:
        return []
    notes = []
    clock = ceiling.get("clock_hz")
    cores = ceiling.get("cores")
    if clock:
        notes.append(f"ceiling: {cores} core(s) x {clock / 1e9:.3g} GHz ({ceiling.get('clock_source')})"
                     " x FLOP/cycle of the best instruction per dtype (2 FLOPs per multiply-add)")
    else:
        notes.append("ceiling: the machine reveals no clock, so no FLOP ceiling")
    bandwidth = ceiling.get("memory_bandwidth")
    notes.append(f"ceiling memory bandwidth: {si(bandwidth, 'B/s')} ({ceiling.get('memory_source')})"
                 if bandwidth else f"ceiling memory bandwidth: {ceiling.get('memory_source')}")
    emulated = [d for d in ceiling.get("emulated") or () if d in result.peak_flops] or list(
        ceiling.get("emulated") or ())
    if emulated:
        notes.append(f"emulated (no native instructions here, converted to fp32): {', '.join(emulated)}")
    if ceiling.get("isa_limits"):
        notes.append(f"ISA capped by {', '.join(ceiling['isa_limits'])}: the ceiling is of the capped ISA")
    peaks = dict(ceiling.get("peak_flops") or {})
    for dtype, value in result.peak_flops.items():
        top = peaks.get(dtype)
        if top and value > top and clock:
            notes.append(
                f"above the ceiling: {dtype} measured {_rate(value)} > {_rate(top)}; the cores ran "
                f"faster than the {clock / 1e9:.3g} GHz the machine reports (at least "
                f"{clock * value / top / 1e9:.3g} GHz: turbo), or the ISA has more units than assumed"
            )
    return notes
