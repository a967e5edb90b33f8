"""The report's charts as data (drawn by :mod:`mfubench.report.svg` and :mod:`~.plots`).

Every chart is built from analysis :class:`~mfubench.analysis.phases.Row` s and never
recomputes the analysis; the only arithmetic here turns a row's figures into a chart's units:

roofline (log-log, per device)
    x = arithmetic intensity (``flops_per_gpu / bytes``, FLOP/byte, from the row);
    y = ``flops_per_gpu / seconds`` (achieved FLOP/s of one device). The roofs are
    ``min(peak_flops, memory_bandwidth * x)`` of one device; they meet at the ridge
    ``peak_flops / memory_bandwidth``. Prefill and decode rows only (``total`` mixes both).
MFU / MBU against batch
    the rows' ``mfu`` / ``mbu``, with the roofline's ceiling (``mfu_ceiling`` / ``mbu_ceiling``)
    dashed: what a run at exactly the roofline time would reach.
latency against batch
    prefill: the row's seconds (TTFT when its ``seconds_source`` is ``ttft``, else the time of
    a one-token run); decode: seconds per step, ``seconds / (round(output_tokens) - 1)`` (the
    mean ITL when measured as such). The roofline's best case of each, dashed.
throughput against batch
    prefill: ``batch * input_tokens / seconds`` (prompt tokens/s); decode: ``batch * steps /
    seconds`` (generated tokens/s in decode); total: ``batch * output_tokens / seconds``
    (generated tokens per second of whole requests; rows of one output token left out).

:func:`mfubench.report.svg.to_svg` draws a :class:`Chart`; :mod:`mfubench.report.plots`
draws the same data with matplotlib. Non-finite or non-positive values never reach a log axis: such points are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mfubench.report.units import ABOVE_PEAK_MARK, seconds, si, util

if TYPE_CHECKING:
    from mfubench.analysis.phases import Row, Setup

Marker = Literal["circle", "square", "diamond", "triangle"]
Unit = Literal["flop/s", "flop/byte", "fraction", "seconds", "tokens/s", "batch"]

#: Colours of the phases, and of runs in a comparison (colour-blind-safe, Okabe-Ito based).
PHASE_COLORS = {"prefill": "#0072B2", "decode": "#D55E00", "total": "#009E73"}
RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
PHASE_MARKERS: dict[str, Marker] = {"prefill": "circle", "decode": "square", "total": "diamond"}
ROOF_COLOR = "#374151"
MEASURED_ROOF_COLOR = "#9CA3AF"


@dataclass(frozen=True)
class Point:
    """One drawn value; ``label`` is written beside it, ``title`` is its tooltip."""

    x: float
    y: float
    label: str = ""
    title: str = ""
    hollow: bool = False  # a flagged row (estimated time, early stop)


@dataclass(frozen=True)
class Series:
    """Measured points (``marker`` set) or a reference line (``marker`` None: roofs, ceilings)."""

    name: str
    points: tuple[Point, ...]
    color: str
    marker: Marker | None = "circle"
    line: bool = True
    dashed: bool = False


@dataclass(frozen=True)
class Axis:
    label: str
    unit: Unit
    log: bool = True


@dataclass(frozen=True)
class VMark:
    """A vertical marker line (the ridge)."""

    x: float
    label: str
    top: float | None = None  # the line stops at this y (the roof); None: the plot's top


@dataclass(frozen=True)
class Note:
    """A text written at a data position (the roofs' names)."""

    x: float
    y: float
    text: str
    anchor: Literal["start", "end"] = "start"
    above: bool = False


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    caption: str
    x: Axis
    y: Axis
    series: tuple[Series, ...]
    marks: tuple[VMark, ...] = ()
    notes: tuple[Note, ...] = ()
    wide: bool = False  # drawn across the page (the roofline)

    @property
    def data_points(self) -> int:
        return sum(len(s.points) for s in self.series if s.marker is not None)


# ----------------------------------------------------------------------------- chart data


def finite_positive(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) and v > 0 for v in values)


def _steps(row: Row) -> int:
    return max(1, round(row.output_tokens)) - 1


def _group_key(row: Row) -> tuple[str, int]:
    return row.phase, round(row.input_tokens)


def groups(rows: Iterable[Row], phases: Sequence[str]) -> list[tuple[str, list[Row]]]:
    """Rows of each phase and prompt length, sorted by batch, named ``decode`` or, when a phase
    has several prompt lengths, ``decode, 138 in``."""
    by: dict[tuple[str, int], list[Row]] = {}
    for r in rows:
        if r.phase in phases:
            by.setdefault(_group_key(r), []).append(r)
    lengths: dict[str, set[int]] = {}
    for phase, length in by:
        lengths.setdefault(phase, set()).add(length)
    out = []
    for phase in phases:
        for (p, length), sel in sorted(by.items(), key=lambda kv: kv[0][1]):
            if p != phase:
                continue
            name = phase if len(lengths[phase]) == 1 else f"{phase}, {length} in"
            out.append((name, sorted(sel, key=lambda r: (r.batch_size, r.output_tokens))))
    return out


def _row_title(row: Row, what: str) -> str:
    return (f"{row.phase}, batch {row.batch_size}, {row.input_tokens:g} in, "
            f"{row.output_tokens:g} out: {what}" + (f" [{'; '.join(row.flags)}]" if row.flags else ""))


def _series_style(index: int, phase: str, colors: Sequence[str] | None) -> tuple[str, Marker]:
    color = colors[index % len(colors)] if colors else PHASE_COLORS.get(phase, RUN_COLORS[index % 7])
    return color, PHASE_MARKERS.get(phase, "circle")


def roofline_chart(rows: Sequence[Row], setup: Setup) -> Chart:
    """Achieved FLOP/s per device against arithmetic intensity, with the roofs and the ridge."""
    series: list[Series] = []
    xs: list[float] = []
    for name, sel in groups(rows, ("prefill", "decode")):
        phase = sel[0].phase
        pts = []
        for r in sel:
            if not finite_positive(r.seconds, r.arithmetic_intensity):
                continue
            assert r.seconds is not None
            y = r.flops_per_gpu / r.seconds
            if not finite_positive(y):
                continue
            pts.append(Point(r.arithmetic_intensity, y, f"{phase[0].upper()}{r.batch_size}",
                             _row_title(r, f"{r.arithmetic_intensity:.3g} FLOP/byte, "
                                           f"{si(y, 'FLOP/s')} per device, MFU {util(r.mfu, 1, r.marked('mfu'))}"),
                             hollow=bool(r.flags)))
            xs.append(r.arithmetic_intensity)
        if pts:
            color, marker = _series_style(len(series), phase, None)
            series.append(Series(f"{name} ({phase[0].upper()} + batch)", tuple(pts), color,
                                 marker, line=False))
    marks: list[VMark] = []
    notes: list[Note] = []
    machines = [(setup.machine(), "datasheet", ROOF_COLOR, False)]
    if setup.hardware.calibration is not None and not setup.hardware.measured:
        machines.append((setup.machine(measured=True), "measured", MEASURED_ROOF_COLOR, True))
    ridges = [m.ridge for m, *_ in machines if m is not None]
    lo, hi = _decades([*xs, *ridges])
    for machine, kind, color, dashed in machines:
        if machine is None:
            continue
        bw, peak, ridge = machine.memory_bandwidth, machine.peak_flops, machine.ridge
        roof = [Point(lo, min(peak, bw * lo))]
        if lo < ridge < hi:
            roof.append(Point(ridge, peak))
        roof.append(Point(hi, min(peak, bw * hi)))
        series.append(Series(f"{kind} roofline: min({si(peak, 'FLOP/s')}, "
                             f"{si(bw, 'B/s')} x intensity)", tuple(roof), color, None,
                             dashed=dashed))
        if kind == "datasheet":
            marks.append(VMark(ridge, f"ridge {ridge:.3g} FLOP/B", peak))
            if ridge < hi:
                notes.append(Note(hi, peak, f"compute roof {si(peak, 'FLOP/s')}", "end",
                                  above=True))
            x_mem = min(ridge, hi) / 30
            if x_mem > lo:
                notes.append(Note(x_mem, bw * x_mem, f"memory roof {si(bw, 'B/s')}", "end"))
    peak_text = setup.peak_label
    return Chart(
        "roofline", "Roofline: achieved FLOP/s per device against arithmetic intensity",
        f"Log-log, one device of {setup.tp}. Roofs: {peak_text}. Points: prefill (P) and decode "
        "(D) rows labelled by batch size; hollow markers carry flags (estimated time, early "
        "stop). A point below the sloped roof is memory-bound, one below the flat roof "
        "compute-bound; the gap to the roof is the time lost.",
        Axis("arithmetic intensity (FLOP/byte, per device)", "flop/byte"),
        Axis("achieved FLOP/s per device", "flop/s"),
        tuple(series), tuple(marks), tuple(notes), wide=True,
    )


def _by_batch_chart(
    chart_id: str,
    title: str,
    caption: str,
    rows: Sequence[Row],
    phases: Sequence[str],
    y_axis: Axis,
    value: Callable[[Row], float | None],
    describe: Callable[[Row, float], str],
    reference: Callable[[Row], float | None] | None = None,
    reference_name: str = "roofline",
    runs: Sequence[tuple[str, Sequence[Row]]] | None = None,
) -> Chart:
    """Points of ``value(row)`` against batch, one series per run/phase/prompt length, with
    ``reference(row)`` dashed in the same colour."""
    series: list[Series] = []
    labelled_runs = runs if runs is not None else [("", rows)]
    for run_index, (run_label, run_rows) in enumerate(labelled_runs):
        for name, sel in groups(run_rows, phases):
            phase = sel[0].phase
            if runs is not None:
                color, marker = RUN_COLORS[run_index % len(RUN_COLORS)], PHASE_MARKERS.get(phase, "circle")
            else:
                color, marker = _series_style(len([s for s in series if s.marker]), phase, None)
            label = f"{run_label}: {name}" if run_label else name
            pts, refs = [], []
            for r in sel:
                v = value(r)
                if finite_positive(v):
                    assert v is not None
                    # a figure that is not a utilisation is labelled on the chart itself
                    pts.append(Point(float(r.batch_size), v, _not_plain_label(r, v, y_axis),
                                     _row_title(r, describe(r, v)), hollow=bool(r.flags)))
                ref = reference(r) if reference else None
                if finite_positive(ref):
                    assert ref is not None
                    refs.append(Point(float(r.batch_size), ref))
            if pts:
                series.append(Series(label, tuple(pts), color, marker,
                                     dashed=runs is not None and run_index > 0))
            if refs and runs is None:
                series.append(Series(f"{label}: {reference_name}", tuple(refs), color, None,
                                     dashed=True))
    return Chart(chart_id, title, caption, Axis("batch size (requests in flight)", "batch"),
                 y_axis, tuple(series))


def _not_plain_label(row: Row, value: float, axis: Axis) -> str:
    """``⚠ above peak`` / ``⚠ exceeds-memory`` for a utilisation that is not plain, else ""."""
    if axis.unit != "fraction":
        return ""
    if row.infeasible:
        return f"{ABOVE_PEAK_MARK} {row.infeasible[0]}"
    return f"{ABOVE_PEAK_MARK} above peak" if value > 1.0 else ""


def utilization_charts(rows: Sequence[Row], setup: Setup) -> list[Chart]:
    """MFU and MBU against batch, per phase, with the roofline's ceilings dashed."""
    denominator = setup.peak_label
    mfu = _by_batch_chart(
        "mfu", "MFU against batch size",
        f"Log scale. MFU = FLOPs of the whole model (convention {setup.convention}) / (seconds x "
        f"devices x peak); peak: {denominator}. Dashed: the MFU a run at exactly the "
        "roofline time would reach. Hollow markers carry flags.",
        rows, ("prefill", "decode"), Axis("MFU", "fraction"), lambda r: r.mfu,
        lambda r, v: f"MFU {util(v, 2, r.marked('mfu'))}", lambda r: r.mfu_ceiling, "roofline ceiling")
    mbu = _by_batch_chart(
        "mbu", "MBU against batch size",
        "Log scale. MBU = bytes moved per device / (seconds x memory bandwidth of one device). Decode is "
        "judged by MBU: each step streams the weights and the KV cache. Dashed: the roofline "
        "ceiling. Hollow markers carry flags.",
        rows, ("prefill", "decode"), Axis("MBU", "fraction"), lambda r: r.mbu,
        lambda r, v: f"MBU {util(v, 1, r.marked('mbu'))}", lambda r: r.mbu_ceiling, "roofline ceiling")
    return [mfu, mbu]


def _latency(row: Row) -> float | None:
    if row.seconds is None:
        return None
    if row.phase == "decode":
        return row.seconds / _steps(row) if _steps(row) else None
    return row.seconds


def _roofline_latency(row: Row) -> float | None:
    if row.roofline_s is None:
        return None
    if row.phase == "decode":
        return row.roofline_s / _steps(row) if _steps(row) else None
    return row.roofline_s


def latency_chart(rows: Sequence[Row]) -> Chart:
    """Prefill seconds (TTFT) and decode seconds per step (ITL) against batch."""
    pre = [r for r in rows if r.phase == "prefill"]
    dec = [r for r in rows if r.phase == "decode"]
    ttft = bool(pre) and all(r.seconds_source == "ttft" for r in pre)
    itl = bool(dec) and all(r.seconds_source == "itl" for r in dec)
    pre_name = "TTFT (mean)" if ttft else "prefill time"
    dec_name = "ITL (mean)" if itl else "decode time per step"
    sources = sorted({r.seconds_source for r in dec if r.seconds_source})
    chart = _by_batch_chart(
        "latency", "Latency against batch size",
        f"{pre_name} and {dec_name} (decode seconds / (output tokens - 1); decode seconds from: "
        f"{', '.join(sources) or 'none'}). Dashed: the roofline's best case. Hollow markers "
        "carry flags.",
        rows, ("prefill", "decode"), Axis("seconds", "seconds"), _latency,
        lambda r, v: f"{pre_name if r.phase == 'prefill' else dec_name} {seconds(v)}",
        _roofline_latency, "roofline best case")
    names = {"prefill": pre_name, "decode": dec_name}
    return Chart(chart.id, chart.title, chart.caption, chart.x, chart.y, tuple(
        Series(_rename(s.name, names), s.points, s.color, s.marker, s.line, s.dashed)
        for s in chart.series))


def _rename(name: str, names: dict[str, str]) -> str:
    for phase, new in names.items():
        if name.startswith(phase):
            return new + name[len(phase):]
    return name


def _throughput(row: Row) -> float | None:
    if row.seconds is None:
        return None
    if row.phase == "prefill":
        return row.batch_size * row.input_tokens / row.seconds
    if row.phase == "decode":
        return row.batch_size * _steps(row) / row.seconds
    if round(row.output_tokens) <= 1:
        return None
    return row.batch_size * row.output_tokens / row.seconds


def throughput_chart(rows: Sequence[Row]) -> Chart:
    """Tokens per second against batch: prompt tokens in prefill, generated tokens otherwise.
    Whole requests (``total``) are drawn as a dashed line without markers: with a short prompt
    they lie on the decode points, which they would hide."""
    chart = _by_batch_chart(
        "throughput", "Throughput against batch size",
        "prefill: prompt tokens per second; decode: generated tokens per second of decode; "
        "total (dashed): generated tokens per second of whole requests (one-token runs left out). "
        "Hollow markers carry flags.",
        [r for r in rows if _throughput(r) is not None], ("prefill", "decode", "total"),
        Axis("tokens per second", "tokens/s"),
        _throughput, lambda r, v: si(v, "tokens/s"))
    decode = any(s.name.startswith("decode") for s in chart.series)
    series = tuple(
        Series(s.name + " (whole requests)", s.points, s.color, None, dashed=True)
        if s.name.startswith("total") and decode else s
        for s in chart.series
    )
    return Chart(chart.id, chart.title, chart.caption, chart.x, chart.y, series)


def report_charts(rows: Sequence[Row], setup: Setup) -> list[Chart]:
    """Every chart of the report, in order; charts without a single point are left out."""
    charts = [roofline_chart(rows, setup), *utilization_charts(rows, setup),
              latency_chart(rows), throughput_chart(rows)]
    return [c for c in charts if c.data_points]


def compare_charts(runs: Sequence[tuple[str, Sequence[Row]]]) -> list[Chart]:
    """MFU, MBU and latency of several runs against batch: colour per run, marker per phase."""
    charts = [
        _by_batch_chart("compare-mfu", "MFU against batch size, by run",
                        "Colour: run; marker: phase (circle prefill, square decode). Later runs dashed.",
                        [], ("prefill", "decode"), Axis("MFU", "fraction"), lambda r: r.mfu,
                        lambda r, v: f"MFU {util(v, 2, r.marked('mfu'))}", runs=runs),
        _by_batch_chart("compare-mbu", "MBU against batch size, by run",
                        "Colour: run; marker: phase (circle prefill, square decode). Later runs dashed.",
                        [], ("prefill", "decode"), Axis("MBU", "fraction"), lambda r: r.mbu,
                        lambda r, v: f"MBU {util(v, 1, r.marked('mbu'))}", runs=runs),
        _by_batch_chart("compare-latency", "Latency against batch size, by run",
                        "prefill seconds and decode seconds per step (output tokens - 1).",
                        [], ("prefill", "decode"), Axis("seconds", "seconds"), _latency,
                        lambda r, v: seconds(v), runs=runs),
    ]
    return [c for c in charts if c.data_points]


# ----------------------------------------------------------------------------- scales, ticks

def _decades(values: Iterable[float], pad: float = 2.0) -> tuple[float, float]:
    """Whole decades around ``values``, with room of ``pad`` on each side."""
    vals = [v for v in values if finite_positive(v)]
    if not vals:
        return 1.0, 10.0
    lo = 10 ** math.floor(math.log10(min(vals) / pad))
    hi = 10 ** math.ceil(math.log10(max(vals) * pad))
    return lo, hi
