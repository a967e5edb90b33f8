"""``mfubench report``: one self-contained HTML report of measured results (and, with
``--plots``, the same charts as PNG and SVG files)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mfubench.analysis.measurement import Measurement
from mfubench.analysis.phases import analyze
from mfubench.commands.analyze import add_setup_options, setup_from_args
from mfubench.errors import MfubenchError
from mfubench.report import charts
from mfubench.report.html import Source, render_report


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="a self-contained HTML report (charts, tables, provenance)",
                       description=__doc__)
    p.add_argument("results", nargs="+", help="any results file 'analyze' reads")
    add_setup_options(p, hardware_required=False)
    p.add_argument("--requested-output-tokens", type=float, default=None,
                   help="output length the runs asked for (flags early stops)")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write "
                   "(default report.html)")
    p.add_argument("--plots", metavar="DIR", default=None,
                   help="also write every chart as PNG and SVG into DIR (needs matplotlib)")
    p.add_argument("--title", default=None, help="the report's title")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=run)


def load_sources(paths: Sequence[str], requested: float | None = None) -> tuple[list[Measurement], list[Source]]:
    """Every measured point of ``paths``, and each file's description (format, header)."""
    from mfubench.io.importers import load_measurements

    measurements: list[Measurement] = []
    sources: list[Source] = []
    for path in paths:
        ms = load_measurements(path, requested_output_tokens=requested)
        measurements.extend(ms)
        formats = tuple(dict.fromkeys(str(m.extra.get("format", "?")) for m in ms))
        header = next((m.extra["header"] for m in ms if isinstance(m.extra.get("header"), dict)), None)
        sources.append(Source(str(path), formats, len(ms), header))
    return measurements, sources


def write_text(path: str | Path, content: str) -> Path:
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise MfubenchError(f"{out}: cannot write: {exc.strerror or exc}") from None
    return out


def run(args: argparse.Namespace) -> int:
    measurements, sources = load_sources(args.results, args.requested_output_tokens)
    setup = setup_from_args(args, measurements)  # the device from files that name it, else --hardware
    rows = analyze(setup, measurements)
    from mfubench.analysis.as_run import shown_setup

    out = write_text(args.output, render_report(rows, shown_setup(setup, measurements), sources, title=args.title))
    plot_files: list[Path] = []
    if args.plots:
        from mfubench.report.plots import write_plots

        plot_files = write_plots(charts.report_charts(rows, setup), args.plots)
    if args.json:
        print(json.dumps({"report": str(out), "plots": [str(p) for p in plot_files],
                          "rows": len(rows), "points": len(measurements)}, indent=2))
    else:
        print(f"wrote {out} ({len(measurements)} points, {len(rows)} rows)")
        for p in plot_files:
            print(f"wrote {p}")
    return 0
