"""``mfubench calibrate``: measure this device's GEMM FLOP/s per dtype and its memory bandwidth.

Runs on CUDA when PyTorch sees a GPU, else on the CPU with ``--threads`` threads (the thread
count is part of the stored key: calibrate with the thread count the server uses, e.g.
``--threads 1`` for a vLLM CPU server run with ``OMP_NUM_THREADS=1``). The result is stored
under ``$MFUBENCH_CACHE_DIR/calibration/`` (default ``~/.cache/mfubench/calibration/``) and
becomes the peaks of ``--hardware cpu`` (or the "measured" column of a matching GPU).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mfubench.hardware.calibrate import Calibration, calibrate, save_calibration
from mfubench.hardware.catalog import Accelerator, find
from mfubench.hardware.dtypes import normalize_compute_dtype


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
    stderr = Console(stderr=True)
    with Progress(TextColumn("calibrating {task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=stderr, transient=True) as bar:
        task = bar.add_task("", total=len(dtypes) + 1)

        def progress(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=total)

        result = calibrate(device=args.device, threads=args.threads, dtypes=dtypes,
                           quick=args.quick, progress=progress)
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
                  f"{result.torch_version}, {result.measured_at})", highlight=False)
    table = Table()
    table.add_column("dtype")
    table.add_column("measured GEMM", justify="right")
    if datasheet is not None:
        table.add_column(f"{datasheet.name} datasheet", justify="right")
        table.add_column("measured / datasheet", justify="right")
    for dtype, value in result.peak_flops.items():
        row = [dtype, _rate(value)]
        if datasheet is not None:
            peak = datasheet.peak_flops.get(dtype)
            row += [_rate(peak), "-" if peak is None else f"{value / peak:.0%}"]
        table.add_row(*row)
    console.print(table)
    line = f"memory bandwidth: {result.memory_bandwidth / 1e9:,.1f} GB/s (copy/triad, read + write)"
    if datasheet is not None:
        line += (f"; datasheet {datasheet.memory_bandwidth / 1e9:,.0f} GB/s "
                 f"({result.memory_bandwidth / datasheet.memory_bandwidth:.0%})")
    console.print(line, highlight=False)
    if skipped:
        console.print(f"not measurable on this device: {', '.join(skipped)}", highlight=False)
