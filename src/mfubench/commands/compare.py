"""``mfubench compare``: two or more runs side by side (say, before and after a server setting
changed), matched point by point, in the terminal and as an HTML report.

A RUN is a results file, or several joined with commas (``prefill.json,decode.json``). Rows are
matched by (phase, load, batch size, prompt length, requested output length; the mean output
length when the request is unknown), both lengths rounded to whole tokens. The load is
``static`` for a batch sent at once; a row under load matches only a row of the same load
(``concurrency 8``, ``rate 4 req/s (poisson)``, ``trace``), never a static batch of the same
size, and its batch (for a rate, the mean in flight each run happened to reach) is not part of
the key. For every run: MFU, MBU and
seconds; for every run after the first, the ratios to the first run::

    mfu_ratio = mfu / mfu_first    mbu_ratio = mbu / mbu_first    seconds_ratio = seconds / seconds_first

(``mfu_ratio`` > 1: the run used the hardware better; for the same work it is the speed-up.)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from mfubench.analysis.measurement import Measurement
from mfubench.analysis.phases import Row, Setup, analyze_point
from mfubench.commands.analyze import add_setup_options, setup_from_args
from mfubench.commands.report import load_sources, write_text
from mfubench.errors import MfubenchError
from mfubench.report.console import make_console
from mfubench.report.html import Source, render_compare
from mfubench.report.tables import ABOVE_PEAK_LEGEND
from mfubench.report.units import util

Key = tuple[str, str, int | None, int, int]
"""(phase, load, batch size (None under load), prompt tokens, requested output tokens) of a row."""

_PHASE_ORDER = {"prefill": 0, "decode": 1, "total": 2}
_LOAD_ORDER = {"static": 0, "concurrency": 1, "rate": 2, "trace": 3}


@dataclass(frozen=True)
class Run:
    """One run: its label, its files and its analysed rows, each with its match key."""

    label: str
    sources: tuple[Source, ...]
    rows: tuple[tuple[Key, Row], ...]


@dataclass(frozen=True)
class Match:
    """The rows of every run at one key (None where a run has no such point)."""

    key: Key
    rows: tuple[Row | None, ...]

    def ratio(self, index: int, name: str) -> float | None:
        """``field(run index) / field(first run)``; None when either is missing or zero."""
        first, other = self.rows[0], self.rows[index]
        if first is None or other is None:
            return None
        a, b = getattr(first, name), getattr(other, name)
        return None if a is None or b is None or a == 0 else float(b) / float(a)


def row_key(m: Measurement, row: Row) -> Key:
    output = m.requested_output_tokens if m.requested_output_tokens is not None else m.output_tokens
    if m.load.continuous:
        return row.phase, row.load, None, round(row.input_tokens), round(output)
    return row.phase, "static", row.batch_size, round(row.input_tokens), round(output)


def _describe(key: Key) -> str:
    phase, load, batch, inp, out = key
    where = f"batch {batch}" if batch is not None else load
    return f"{phase}, {where}, {inp} in, {out} out"


def analyze_run(setup: Setup, label: str, measurements: Sequence[Measurement],
                sources: Sequence[Source]) -> Run:
    """The run's rows (as ``analyze`` makes them) with their keys."""
    keyed: list[tuple[Key, Row]] = []
    seen: set[Key] = set()
    for m in measurements:
        for row in analyze_point(setup, m, measurements):
            key = row_key(m, row)
            if key in seen:
                raise MfubenchError(
                    f"run {label!r}: two points at {_describe(key)}; a run must hold each point "
                    "once to be compared"
                )
            seen.add(key)
            keyed.append((key, row))
    return Run(label, tuple(sources), tuple(keyed))


def match_runs(runs: Sequence[Run]) -> list[Match]:
    """Every key of any run, in phase/length/batch order, with each run's row there."""
    maps = [dict(run.rows) for run in runs]
    first = {k: row for mp in reversed(maps) for k, row in mp.items()}  # a row of each key

    def order(k: Key) -> tuple[Any, ...]:
        row = first[k]
        return (_PHASE_ORDER.get(k[0], 9), _LOAD_ORDER.get(row.load_kind, 9), k[3], k[4],
                row.load_level or 0.0, k[1], k[2] or 0)

    return [Match(k, tuple(mp.get(k) for mp in maps)) for k in sorted(first, key=order)]


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}x"


def table_cells(runs: Sequence[Run], matches: Sequence[Match]) -> tuple[list[str], list[list[str]]]:
    """Headers and plain-text cells of the side-by-side table (terminal and HTML)."""
    loaded = any(m.key[1] != "static" for m in matches)
    headers = ["phase", *(["load"] if loaded else []), "batch", "in", "out"]
    for i, run in enumerate(runs):
        headers += [f"{run.label} MFU", f"{run.label} MBU", f"{run.label} s"]
        if i:
            headers += [f"{run.label} MFU x", f"{run.label} s x"]
    cells = []
    for m in matches:
        phase, load, batch, inp, out = m.key
        line = [phase, *([load] if loaded else []), "-" if batch is None else str(batch), str(inp), str(out)]
        for i, row in enumerate(m.rows):
            line += [util(row.mfu, 2, row.marked("mfu")) if row else "-",
                     util(row.mbu, 1, row.marked("mbu")) if row else "-",
                     _num(row.seconds if row else None)]
            if i:
                line += [_times(m.ratio(i, "mfu")), _times(m.ratio(i, "seconds"))]
        cells.append(line)
    return headers, cells


def to_json(setup: Setup, runs: Sequence[Run], matches: Sequence[Match]) -> dict[str, Any]:
    """``{"runs": [...], "rows": [...]}``: per key, each run's figures and ratios to the first."""
    out_rows = []
    for m in matches:
        phase, load, batch, inp, out = m.key
        entry: dict[str, Any] = {"phase": phase, "load": load, "batch_size": batch, "input_tokens": inp,
                                 "output_tokens": out, "runs": []}
        for i, row in enumerate(m.rows):
            entry["runs"].append({
                "label": runs[i].label,
                "mfu": row.mfu if row else None,
                "mbu": row.mbu if row else None,
                "seconds": row.seconds if row else None,
                "bound": row.bound if row else None,
                "flags": list(row.flags) if row else [],
                "above_peak": list(row.above_peak) if row else [],
                "infeasible": list(row.infeasible) if row else [],
                "mfu_ratio": m.ratio(i, "mfu"),
                "mbu_ratio": m.ratio(i, "mbu"),
                "seconds_ratio": m.ratio(i, "seconds"),
            })
        out_rows.append(entry)
    return {
        "convention": setup.convention,
        "peak": setup.peak_label,
        "runs": [{"label": r.label, "files": [s.path for s in r.sources]} for r in runs],
        "rows": out_rows,
    }


def register(sub: Any) -> None:
    p = sub.add_parser("compare", help="two or more runs side by side (terminal and HTML)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="a results file, or several joined with commas, per run")
    add_setup_options(p, hardware_required=False)
    p.add_argument("--label", action="append", default=None,
                   help="a name per run, in order (default: the file names)")
    p.add_argument("--requested-output-tokens", type=float, default=None,
                   help="output length the runs asked for (flags early stops)")
    p.add_argument("-o", "--output", default=None, help="also write an HTML comparison here")
    p.add_argument("--title", default=None, help="the HTML page's title")
    p.add_argument("--json", action="store_true", help='print {"runs": [...], "rows": [...]}')
    p.set_defaults(func=run)


def _labels(specs: Sequence[str], given: Sequence[str] | None) -> list[str]:
    if given is not None:
        if len(given) != len(specs):
            raise MfubenchError(f"{len(given)} --label(s) for {len(specs)} runs: give one per run")
        return list(given)
    labels = ["+".join(Path(p).stem for p in spec.split(",") if p) for spec in specs]
    if len(set(labels)) < len(labels):  # same file names in different folders: A, B, ...
        labels = [chr(ord("A") + i) if i < 26 else f"run {i + 1}" for i in range(len(labels))]
    return labels


def run(args: argparse.Namespace) -> int:
    if len(args.runs) < 2:
        raise MfubenchError("compare needs at least two runs")
    loaded = []
    for label, spec in zip(_labels(args.runs, args.label), args.runs, strict=True):
        paths = [p for p in spec.split(",") if p]
        loaded.append((label, *load_sources(paths, args.requested_output_tokens)))
    # one setup for every run: --hardware, else the device the files name (all of them)
    setup = setup_from_args(args, [m for _, ms, _ in loaded for m in ms])
    runs = [analyze_run(setup, label, measurements, sources) for label, measurements, sources in loaded]
    matches = match_runs(runs)
    headers, cells = table_cells(runs, matches)
    if args.output:
        html = render_compare(setup, [(r.label, [row for _, row in r.rows]) for r in runs],
                              headers, cells, [(r.label, r.sources) for r in runs],
                              title=args.title)
        write_text(args.output, html)
    if args.json:
        doc = to_json(setup, runs, matches)
        if args.output:
            doc["report"] = str(args.output)
        print(json.dumps(doc, indent=2))
        return 0
    table = Table(title=f"{setup.hardware.name}, TP {setup.tp}, convention {setup.convention}; "
                        f"MFU vs {setup.peak_label}; ratios to {runs[0].label}",
                  title_justify="left")
    for h in headers:
        table.add_column(h, justify="left" if h == "phase" else "right")
    for line in cells:
        table.add_row(*line)
    console = make_console()
    for r in runs:
        console.print(f"{r.label}: {', '.join(s.path for s in r.sources)}", highlight=False)
    console.print(table)
    if any(row is not None and not row.plain for m in matches for row in m.rows):
        console.print(ABOVE_PEAK_LEGEND, highlight=False)
    if args.output:
        console.print(f"wrote {args.output}")
    return 0
