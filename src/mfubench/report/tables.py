"""Tables of analysis rows: terminal (rich), markdown and CSV. Renderers never recompute.

Every table states its convention and its denominators in its title, as the seed's tables did
not: which FLOPs were counted, which peak (dense, dtype, datasheet or measured), per device or
in total.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table

from mfubench.report.units import ABOVE_PEAK_MARK, si, util

if TYPE_CHECKING:
    from mfubench.analysis.phases import Row

PHASES = ("prefill", "decode", "total")

#: (header, row -> text) of the human tables: terminal, markdown and HTML share them
COLUMNS: tuple[tuple[str, Any], ...] = (
    ("batch", lambda r: str(r.batch_size)),
    ("in", lambda r: f"{r.input_tokens:g}"),
    ("out", lambda r: f"{r.output_tokens:g}"),
    ("seconds", lambda r: "-" if r.seconds is None else f"{r.seconds:.4g}"),
    ("FLOPs", lambda r: si(r.flops, "FLOP")),
    ("achieved", lambda r: si(r.achieved_flops_per_s, "FLOP/s")),
    ("MFU", lambda r: util(r.mfu, 2, r.marked("mfu"))),
    ("bytes/GPU", lambda r: si(r.bytes, "B")),
    ("MBU", lambda r: util(r.mbu, 1, r.marked("mbu"))),
    ("FLOP/B", lambda r: f"{r.arithmetic_intensity:.3g}"),
    ("bound", lambda r: r.bound or "-"),
    ("roofline s", lambda r: "-" if r.roofline_s is None else f"{r.roofline_s:.4g}"),
    ("eff.", lambda r: util(r.efficiency, 0, r.marked("efficiency"))),
    ("flags", lambda r: ", ".join(f.split(":")[0] for f in r.flags) or ""),
)


#: The load column, shown where some row was measured under a concurrency, a rate or a trace.
LOAD_COLUMN: tuple[str, Any] = ("load", lambda r: r.load)


def columns(rows: Sequence[Row]) -> tuple[tuple[str, Any], ...]:
    """:data:`COLUMNS`, with the load after the batch when some row is not a static batch."""
    if all(r.load == "static" for r in rows):
        return COLUMNS
    return (COLUMNS[0], LOAD_COLUMN, *COLUMNS[1:])


#: Printed under tables that hold a figure that is not plain.
ABOVE_PEAK_LEGEND = (f"{ABOVE_PEAK_MARK} not a utilisation: above 100 % of the peak (a peak, a time "
                     "or a count is wrong: the above-peak flag names the likely cause), or a point "
                     "the layout could not hold (exceeds-context, exceeds-memory)")


def any_above_peak(rows: Sequence[Row]) -> bool:
    """True when some row has a figure that is not plain (above the peak or infeasible)."""
    return any(not r.plain for r in rows)


def title(phase: str, rows: Sequence[Row], peak_label: str) -> str:
    """A table's title: ``phase`` (a phase, or a table name of :func:`by_table`), the
    hardware, the convention and the denominators."""
    r = rows[0]
    layout = r.layout if r.layout and r.layout != f"TP{r.tp}" else f"TP {r.tp}"
    return (f"{phase}: {r.hardware}, {layout}, convention {r.convention} (FLOPs of the whole "
            f"model, 2 per multiply-add); MFU vs {peak_label}; MBU per device")


def by_phase(rows: Sequence[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for phase in PHASES:
        sel = [r for r in rows if r.phase == phase]
        if sel:
            out[phase] = sel
    return out


#: The load kinds in table order, and how a table of each is named after its phase.
LOAD_TABLES: tuple[tuple[str, str], ...] = (
    ("static", ""),
    ("concurrency", " under concurrency (rows by concurrency C, requests in flight)"),
    ("rate", " under a request rate (rows by rate, req/s)"),
    ("trace", " under a trace"),
)


def _by_level(row: Row) -> tuple[int, int, float]:
    return round(row.input_tokens), round(row.output_tokens), row.load_level or 0.0


def by_table(rows: Sequence[Row]) -> list[tuple[str, list[Row]]]:
    """The rows of each table, ``(name, rows)``: the static rows one table per phase, named
    by the phase, in the order given (:func:`by_phase`); then the rows of each load kind,
    never mixed with another kind, one table per phase, named ``decode under concurrency
    (...)`` and ordered by prompt length, output length and level."""
    out: list[tuple[str, list[Row]]] = []
    for kind, suffix in LOAD_TABLES:
        of_kind = [r for r in rows if r.load_kind == kind]
        for phase, sel in by_phase(of_kind).items():
            out.append((phase + suffix, sel if kind == "static" else sorted(sel, key=_by_level)))
    return out


def terminal_tables(rows: Sequence[Row], peak_label: str) -> list[Table]:
    """One rich table per phase and load kind (:func:`by_table`)."""
    tables = []
    for phase, sel in by_table(rows):
        t = Table(title=title(phase, sel, peak_label), title_justify="left")
        cols = columns(sel)
        for header, _ in cols:
            t.add_column(header, justify="left" if header in ("bound", "flags", "load") else "right")
        for r in sel:
            t.add_row(*(fn(r) for _, fn in cols), style=None if r.plain else "bold red")
        if any_above_peak(sel):
            t.caption, t.caption_justify = ABOVE_PEAK_LEGEND, "left"
        tables.append(t)
    return tables


def markdown(rows: Sequence[Row], peak_label: str) -> str:
    """Markdown tables per phase and load kind (:func:`by_table`), each under a heading that
    states convention and denominator."""
    out: list[str] = []
    for phase, sel in by_table(rows):
        out.append(f"**{title(phase, sel, peak_label)}**\n")
        cols = columns(sel)
        out.append("| " + " | ".join(h for h, _ in cols) + " |")
        out.append("|" + "|".join("---" for _ in cols) + "|")
        for r in sel:
            out.append("| " + " | ".join(fn(r) for _, fn in cols) + " |")
        if any_above_peak(sel):
            out.append(f"\n{ABOVE_PEAK_LEGEND}")
        out.append("")
    return "\n".join(out)


def to_csv(rows: Sequence[Row]) -> str:
    """Every field of every row, machine-readable (flags, ``above_peak`` and ``infeasible``
    joined with ``; ``).

    Figures stay numbers; a row with a figure above 1 names it in ``above_peak`` and carries the
    ``above-peak`` flag."""
    buf = io.StringIO()
    dicts = [r.to_dict() for r in rows]
    fields = [k for k in (dicts[0] if dicts else {}) if k != "extra"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for d in dicts:
        d["flags"] = "; ".join(d["flags"])
        d["above_peak"] = "; ".join(d["above_peak"])
        d["infeasible"] = "; ".join(d["infeasible"])
        writer.writerow(d)
    return buf.getvalue()
