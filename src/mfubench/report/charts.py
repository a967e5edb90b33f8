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

The charts against batch hold static rows only: under a load (``Row.load_kind`` concurrency,
rate or trace) a decode row is one mean engine step and a total row is time-averaged, so
neither divides by ``output - 1`` steps of a batch. Rows under load have their own charts, per
load kind with a level (x = ``Row.load_level``: C on a log2 axis, λ in req/s on a log axis with
1-2-5 ticks), one series per phase, shape (prompt and output length) and arrival:

MFU / MBU against the level
    the rows' ``mfu`` / ``mbu`` (decode and total), ceilings dashed; a figure that is not plain
    is labelled ``⚠`` as against batch.
TTFT / TPOT against the level
    the total row's ``extra["ttft_percentiles_s"]`` / ``["tpot_percentiles_s"]`` (p50, p90,
    p99) where the results recorded them, else ``ttft_mean_s`` / ``tpot_mean_s``.
throughput per GPU against throughput per user (the Pareto view, every load kind)
    y = ``throughput_req_s * output_tokens / tp`` of the total row (completed requests per
    second over the run, times each one's output tokens, per device of the replica); x =
    ``1 / tpot_mean_s`` (output tokens per second one request sees). The frontier of each shape
    joins the levels no other plain level beats on one axis while equalling it on the other; a
    level with a figure above the peak or infeasible (its total or decode row) is marked and
    left out of it.

The roofline also draws decode rows under load (one mean step), labelled by level (``C4``,
``λ20``).

:func:`mfubench.report.svg.to_svg` draws a :class:`Chart`; :mod:`mfubench.report.plots`
draws the same data with matplotlib. Non-finite or non-positive values never reach a log axis: such points are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mfubench.analysis.under_load import DECODE_WITH_PREFILL
from mfubench.report.units import ABOVE_PEAK_MARK, seconds, si, util

if TYPE_CHECKING:
    from mfubench.analysis.phases import Row, Setup

Marker = Literal["circle", "square", "diamond", "triangle"]
Unit = Literal["flop/s", "flop/byte", "fraction", "seconds", "tokens/s", "batch", "concurrency",
               "req/s"]
#: Units drawn on a log2 scale with power-of-two ticks: a batch size, a load level.
LEVEL_UNITS: tuple[Unit, ...] = ("batch", "concurrency", "req/s")

#: Colours of the phases, and of runs in a comparison (colour-blind-safe, Okabe-Ito based).
PHASE_COLORS = {"prefill": "#0072B2", "decode": "#D55E00", "total": "#009E73"}
RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
PHASE_MARKERS: dict[str, Marker] = {"prefill": "circle", "decode": "square", "total": "diamond"}
ROOF_COLOR = "#374151"
MEASURED_ROOF_COLOR = "#9CA3AF"
#: The load kinds a report draws against their level (a trace has none), their x axes, the
#: prefix of a level's label and the colour of their decode points on the roofline.
LOAD_KINDS = ("concurrency", "rate", "trace")
LEVEL_KINDS = ("concurrency", "rate")
LEVEL_PREFIX = {"concurrency": "C", "rate": "λ", "trace": ""}
LOAD_COLORS = {"concurrency": "#CC79A7", "rate": "#E69F00", "trace": "#56B4E9"}
PERCENTILE_MARKERS: dict[str, Marker] = {"p50": "circle", "p90": "triangle", "p99": "diamond",
                                         "mean": "square"}
FRONTIER_COLOR = "#111827"


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
    where = f"batch {row.batch_size}" if row.load_kind == "static" else row.load
    return (f"{row.phase}, {where}, {row.input_tokens:g} in, "
            f"{row.output_tokens:g} out: {what}" + (f" [{'; '.join(row.flags)}]" if row.flags else ""))


def static_rows(rows: Iterable[Row]) -> list[Row]:
    """The rows of static batches: the only ones a chart against batch size may hold (under load
    a decode row is one mean engine step, not ``output - 1`` steps of a batch)."""
    return [r for r in rows if r.load_kind == "static"]


def _hollow(row: Row) -> bool:
    """A row drawn hollow: it carries a flag other than ``decode-with-prefill``, which every
    decode row under load carries (its caption says so)."""
    return any(not f.startswith(DECODE_WITH_PREFILL) for f in row.flags)


def _series_style(index: int, phase: str, colors: Sequence[str] | None) -> tuple[str, Marker]:
    color = colors[index % len(colors)] if colors else PHASE_COLORS.get(phase, RUN_COLORS[index % 7])
    return color, PHASE_MARKERS.get(phase, "circle")


def roofline_chart(rows: Sequence[Row], setup: Setup) -> Chart:
    """Achieved FLOP/s per device against arithmetic intensity, with the roofs and the ridge."""
    series: list[Series] = []
    xs: list[float] = []
    loaded = [("decode under " + k, [r for r in rows if r.load_kind == k and r.phase == "decode"])
              for k in LOAD_KINDS]
    for name, sel in [*groups(static_rows(rows), ("prefill", "decode")), *loaded]:
        if not sel:
            continue
        phase = sel[0].phase
        under_load = sel[0].load_kind != "static"
        pts = []
        for r in sel:
            if not finite_positive(r.seconds, r.arithmetic_intensity):
                continue
            assert r.seconds is not None
            y = r.flops_per_gpu / r.seconds
            if not finite_positive(y):
                continue
            label = level_label(r) if under_load else f"{phase[0].upper()}{r.batch_size}"
            pts.append(Point(r.arithmetic_intensity, y, label,
                             _row_title(r, f"{r.arithmetic_intensity:.3g} FLOP/byte, "
                                           f"{si(y, 'FLOP/s')} per device, MFU {util(r.mfu, 1, r.marked('mfu'))}"),
                             hollow=_hollow(r)))
            xs.append(r.arithmetic_intensity)
        if pts:
            if under_load:
                lk = sel[0].load_kind
                series.append(Series(f"{name} ({LEVEL_PREFIX[lk]} + level, one mean step)",
                                     tuple(pts), LOAD_COLORS[lk], "triangle", line=False))
                continue
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
        "compute-bound; the gap to the roof is the time lost."
        + (" Triangles: decode under load, one mean engine step of the sequences decoding "
           "(Little's law) over one TPOT, labelled by the level (C: concurrency, λ: requests "
           "per second)." if any(r.load_kind != "static" and r.phase == "decode" for r in rows)
           else ""),
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


# ----------------------------------------------------------------------------- under load

#: The x axis of each load kind drawn against its level.
LEVEL_AXES = {
    "concurrency": Axis("concurrency C (requests kept in flight, closed loop)", "concurrency"),
    "rate": Axis("request rate λ (requests sent per second, open loop)", "req/s"),
}
LEVEL_WORDS = {"concurrency": "concurrency", "rate": "request rate"}


def level_label(row: Row) -> str:
    """``C4``, ``λ20``, ``trace``: a row's level as written beside its point."""
    if row.load_level is None:
        return row.load_kind
    return f"{LEVEL_PREFIX.get(row.load_kind, '')}{row.load_level:g}"


def _arrival(row: Row) -> str:
    """How a rate's requests arrived, from its label (``rate 4 req/s (poisson)``): ``poisson``."""
    return row.load.partition("(")[2].rstrip(")") if row.load_kind == "rate" else ""


def _shape(row: Row) -> tuple[int, int]:
    return round(row.input_tokens), round(row.output_tokens)


def level_groups(rows: Iterable[Row], kind: str, phases: Sequence[str]) -> list[tuple[str, list[Row]]]:
    """Rows of load ``kind`` with a level, one group per phase, shape (prompt and output length)
    and, for rates, arrival, sorted by level; named by the phase, with the shape (``128 in / 32
    out``) when there are several and the arrival when rates arrived in several ways."""
    by: dict[tuple[tuple[int, int], str, str], list[Row]] = {}
    for r in rows:
        if r.load_kind == kind and r.load_level is not None and r.phase in phases:
            by.setdefault((_shape(r), _arrival(r), r.phase), []).append(r)
    shapes = {k[0] for k in by}
    arrivals = {k[1] for k in by}
    out = []
    for (shape, arrival, phase), sel in sorted(by.items(), key=lambda kv: (
            kv[0][0], kv[0][1], phases.index(kv[0][2]))):
        name = phase
        if len(shapes) > 1:
            name += f", {shape[0]} in / {shape[1]} out"
        if len(arrivals) > 1:
            name += f", {arrival}"
        out.append((name, sorted(sel, key=lambda r: r.load_level or 0.0)))
    return out


def _shape_colors(groups_: Sequence[tuple[str, list[Row]]]) -> dict[tuple[tuple[int, int], str], str]:
    """One colour per shape and arrival (in order), from :data:`RUN_COLORS`."""
    keys = list(dict.fromkeys((_shape(sel[0]), _arrival(sel[0])) for _, sel in groups_))
    return {k: RUN_COLORS[i % len(RUN_COLORS)] for i, k in enumerate(keys)}


def _by_level_chart(
    chart_id: str,
    title: str,
    caption: str,
    rows: Sequence[Row],
    kind: str,
    phases: Sequence[str],
    y_axis: Axis,
    value: Callable[[Row], float | None],
    describe: Callable[[Row, float], str],
    reference: Callable[[Row], float | None] | None = None,
    reference_name: str = "roofline",
    runs: Sequence[tuple[str, Sequence[Row]]] | None = None,
) -> Chart:
    """Points of ``value(row)`` against the level of load ``kind``, one series per run, phase,
    shape and arrival (colour: phase, or shape when there are several; run in a comparison),
    with ``reference(row)`` dashed in the same colour. A utilisation that is not a plain figure
    is labelled ``⚠`` beside its point, as against batch."""
    series: list[Series] = []
    labelled_runs = runs if runs is not None else [("", rows)]
    for run_index, (run_label, run_rows) in enumerate(labelled_runs):
        level_sel = level_groups(run_rows, kind, phases)
        colors = _shape_colors(level_sel)
        for name, sel in level_sel:
            phase = sel[0].phase
            marker = PHASE_MARKERS.get(phase, "circle")
            if runs is not None:
                color = RUN_COLORS[run_index % len(RUN_COLORS)]
            elif len(colors) > 1:
                color = colors[(_shape(sel[0]), _arrival(sel[0]))]
            else:
                color = PHASE_COLORS.get(phase, RUN_COLORS[0])
            label = f"{run_label}: {name}" if run_label else name
            pts, refs = [], []
            for r in sel:
                assert r.load_level is not None
                v = value(r)
                if finite_positive(v):
                    assert v is not None
                    pts.append(Point(r.load_level, v, _not_plain_label(r, v, y_axis),
                                     _row_title(r, describe(r, v)), hollow=_hollow(r)))
                ref = reference(r) if reference else None
                if finite_positive(ref):
                    assert ref is not None
                    refs.append(Point(r.load_level, ref))
            if pts:
                series.append(Series(label, tuple(pts), color, marker,
                                     dashed=runs is not None and run_index > 0))
            if refs and runs is None:
                series.append(Series(f"{label}: {reference_name}", tuple(refs), color, None,
                                     dashed=True))
    return Chart(chart_id, title, caption, LEVEL_AXES[kind], y_axis, tuple(series))


_LOAD_ROWS = ("total: the FLOPs (bytes) of the completed requests over the run's seconds, "
              "time-averaged; decode: one mean engine step, the sequences decoding by Little's "
              "law (N_d = throughput x (O - 1) x TPOT) over one TPOT, the prefill sharing the "
              "step not counted (flag decode-with-prefill).")


def load_utilization_charts(rows: Sequence[Row], setup: Setup, kind: str) -> list[Chart]:
    """MFU and MBU against the level of load ``kind``, with the roofline's ceilings dashed."""
    words = LEVEL_WORDS[kind]
    marks = (f"Hollow markers carry flags besides decode-with-prefill; {ABOVE_PEAK_MARK} marks a "
             "figure that is not a utilisation (above 100 % of the peak, or a point the layout "
             "could not hold): see the row's flags.")
    mfu = _by_level_chart(
        f"load-mfu-{kind}", f"MFU against {words}",
        f"Log scale. MFU = FLOPs of the whole model (convention {setup.convention}) / (seconds x "
        f"devices x peak); peak: {setup.peak_label}. {_LOAD_ROWS} Dashed: the MFU a run at "
        f"exactly the roofline time would reach. {marks}",
        rows, kind, ("decode", "total"), Axis("MFU", "fraction"), lambda r: r.mfu,
        lambda r, v: f"MFU {util(v, 2, r.marked('mfu'))}", lambda r: r.mfu_ceiling, "roofline ceiling")
    mbu = _by_level_chart(
        f"load-mbu-{kind}", f"MBU against {words}",
        "Log scale. MBU = bytes moved per device / (seconds x memory bandwidth of one device): "
        f"each engine step reads the weights once for every sequence in it. {_LOAD_ROWS} Dashed: "
        f"the roofline ceiling. {marks}",
        rows, kind, ("decode", "total"), Axis("MBU", "fraction"), lambda r: r.mbu,
        lambda r, v: f"MBU {util(v, 1, r.marked('mbu'))}", lambda r: r.mbu_ceiling, "roofline ceiling")
    return [mfu, mbu]


def _quantiles(row: Row, name: str) -> dict[str, float]:
    """The row's per-request ``name`` (``ttft``, ``tpot``) latencies: ``p50``/``p90``/``p99``
    where recorded, else ``mean``; finite and positive only."""
    pcts = row.extra.get(f"{name}_percentiles_s")
    out: dict[str, float] = {}
    if isinstance(pcts, Mapping):
        for q in ("p50", "p90", "p99"):
            v = pcts.get(q)
            if isinstance(v, int | float) and finite_positive(float(v)):
                out[q] = float(v)
    if not out:
        mean = row.extra.get(f"{name}_mean_s")
        if isinstance(mean, int | float) and finite_positive(float(mean)):
            out["mean"] = float(mean)
    return out


def load_latency_charts(rows: Sequence[Row], kind: str) -> list[Chart]:
    """TTFT and TPOT per request against the level of load ``kind``: p50, p90 and p99 where the
    results recorded them, else the mean; one point per level (its ``total`` row)."""
    charts = []
    for name, what in (("ttft", "TTFT (time to first token, queueing included)"),
                       ("tpot", "TPOT (time per output token after the first)")):
        series: list[Series] = []
        level_sel = level_groups(rows, kind, ("total",))
        colors = _shape_colors(level_sel)
        for group, sel in level_sel:
            shape = group.removeprefix("total").removeprefix(", ")
            color = colors[(_shape(sel[0]), _arrival(sel[0]))]
            by_q: dict[str, list[Point]] = {}
            for r in sel:
                assert r.load_level is not None
                for q, v in _quantiles(r, name).items():
                    by_q.setdefault(q, []).append(Point(
                        r.load_level, v, "", _row_title(r, f"{name.upper()} {q} {seconds(v)}"),
                        hollow=_hollow(r)))
            for q in ("p50", "p90", "p99", "mean"):
                if q in by_q:
                    series.append(Series(f"{name.upper()} {q}" + (f", {shape}" if shape else ""),
                                         tuple(by_q[q]), color, PERCENTILE_MARKERS[q],
                                         dashed=q in ("p90", "p99")))
        words = LEVEL_WORDS[kind]
        charts.append(Chart(
            f"load-{name}-{kind}", f"{name.upper()} against {words}",
            f"Log scale. {what} of each request, over the measured requests of each level: "
            "nearest-rank p50, p90 (dashed) and p99 (dashed) where the results recorded them, "
            "else the mean (square). One point per level.",
            LEVEL_AXES[kind], Axis("seconds per request", "seconds"), tuple(series)))
    return charts


@dataclass(frozen=True)
class ParetoPoint:
    """One load level on the Pareto view: its ``total`` row (and the ``decode`` row of the same
    measurement, where there is one), per-user and per-GPU throughput."""

    row: Row
    decode: Row | None
    per_user: float  # output tokens/s of one request: 1 / TPOT
    per_gpu: float  # output tokens/s of the whole run / devices

    @property
    def plain(self) -> bool:
        """True when no figure of the level is above the peak or infeasible."""
        return self.row.plain and (self.decode is None or self.decode.plain)


def pareto_points(rows: Sequence[Row]) -> list[ParetoPoint]:
    """Every load level (every ``total`` row not of a static batch) with a throughput and a
    TPOT. Per GPU: ``throughput_req_s x output_tokens / tp``, the total row's completed requests
    per second (over the run) times the output tokens of each, over the devices of the replica.
    Per user: ``1 / tpot_mean_s``, the mean TPOT. The decode row of the same measurement is the
    ``decode`` row just before it (``analyze`` writes them in that order)."""
    out = []
    for i, r in enumerate(rows):
        if r.phase != "total" or r.load_kind == "static" or r.seconds is None:
            continue
        throughput, tpot = r.extra.get("throughput_req_s"), r.extra.get("tpot_mean_s")
        if not isinstance(throughput, int | float) or not isinstance(tpot, int | float):
            continue
        per_gpu, per_user = throughput * r.output_tokens / r.tp, 1.0 / tpot if tpot > 0 else 0.0
        if not finite_positive(per_gpu, per_user):
            continue
        prev = rows[i - 1] if i > 0 else None
        decode = prev if (prev is not None and prev.phase == "decode" and prev.load == r.load
                          and prev.source == r.source and _shape(prev) == _shape(r)) else None
        out.append(ParetoPoint(r, decode, per_user, per_gpu))
    return out


def pareto_frontier(points: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """The plain points no other plain point of the same shape beats or equals on both
    throughputs while beating it on one (more per user and more per GPU are both better),
    sorted by per-user throughput. Points that are not plain figures never join it."""
    out = []
    for p in points:
        if not p.plain:
            continue
        rivals = [q for q in points if q.plain and q is not p and _shape(q.row) == _shape(p.row)]
        if not any(q.per_user >= p.per_user and q.per_gpu >= p.per_gpu
                   and (q.per_user > p.per_user or q.per_gpu > p.per_gpu) for q in rivals):
            out.append(p)
    return sorted(out, key=lambda p: (_shape(p.row), p.per_user))


def pareto_chart(rows: Sequence[Row]) -> Chart:
    """Throughput per GPU against per-user throughput, one point per load level, with the
    Pareto frontier of each shape drawn (module doc)."""
    points = pareto_points(rows)
    frontier = pareto_frontier(points)
    on = {id(p) for p in frontier}
    shapes = list(dict.fromkeys(_shape(p.row) for p in points))
    series: list[Series] = []
    groups_: dict[tuple[str, tuple[int, int], str], list[ParetoPoint]] = {}
    for p in points:
        groups_.setdefault((p.row.load_kind, _shape(p.row), _arrival(p.row)), []).append(p)
    arrivals = {k[2] for k in groups_ if k[0] == "rate"}
    for (kind, shape, arrival), sel in sorted(groups_.items(), key=lambda kv: (
            LOAD_KINDS.index(kv[0][0]), kv[0][1], kv[0][2])):
        sel = sorted(sel, key=lambda p: p.row.load_level or 0.0)
        plain: list[Point] = []
        marked: list[Point] = []
        for p in sel:
            level = level_label(p.row)
            mark = "" if p.plain else f" {ABOVE_PEAK_MARK} {_not_plain_reason(p)}"
            where = "on the Pareto frontier" if id(p) in on else (
                "off the frontier" if p.plain else "not a plain figure: left out of the frontier")
            (plain if p.plain else marked).append(Point(
                p.per_user, p.per_gpu, level + mark, _row_title(p.row, (
                    f"{si(p.per_user, 'tokens/s')} per user (1 / TPOT), "
                    f"{si(p.per_gpu, 'tokens/s')} per GPU; {where}")), hollow=not p.plain))
        name = f"{LEVEL_WORDS[kind]} ({LEVEL_PREFIX[kind]})" if kind in LEVEL_WORDS else kind
        if len(shapes) > 1:
            name += f", {shape[0]} in / {shape[1]} out"
        if kind == "rate" and len(arrivals) > 1:
            name += f", {arrival}"
        color = LOAD_COLORS[kind] if len(shapes) == 1 else RUN_COLORS[shapes.index(shape) % len(RUN_COLORS)]
        marker: Marker = "circle" if kind == "concurrency" else "square" if kind == "rate" else "diamond"
        if plain:  # the levels in order, joined: the curve the load traces
            series.append(Series(name, tuple(plain), color, marker, line=kind != "trace"))
        if marked:  # never joined to the plain ones, never on the frontier
            series.append(Series(f"{name}: {ABOVE_PEAK_MARK} not plain figures", tuple(marked),
                                 color, marker, line=False))
    for shape in shapes:
        line = [Point(p.per_user, p.per_gpu) for p in frontier if _shape(p.row) == shape]
        if line:
            name = "Pareto frontier" + (f", {shape[0]} in / {shape[1]} out" if len(shapes) > 1 else "")
            series.append(Series(name, tuple(line), FRONTIER_COLOR, None, dashed=True))
    return Chart(
        "load-pareto", "Throughput per GPU against throughput per user",
        "Log-log, one point per load level (C: concurrency, λ: requests per second). y: output "
        "tokens per second per GPU = completed requests per second over the run x output "
        "tokens per request / devices (TP). x: output tokens per second seen by one request = "
        "1 / mean TPOT. Up and right is better; the dashed line joins the Pareto frontier, the "
        "levels no other level of the same prompt and output length beats on both. "
        f"{ABOVE_PEAK_MARK} (hollow): a level with a figure above the peak or infeasible, left "
        "out of the frontier.",
        Axis("throughput per user (output tokens/s per request, 1 / TPOT)", "tokens/s"),
        Axis("throughput per GPU (output tokens/s per GPU)", "tokens/s"), tuple(series))


def _not_plain_reason(p: ParetoPoint) -> str:
    for r in (p.row, p.decode):
        if r is not None and r.infeasible:
            return r.infeasible[0]
    return "above peak"


def load_charts(rows: Sequence[Row], setup: Setup) -> list[Chart]:
    """The charts of rows under load: per load kind with a level, MFU, MBU, TTFT and TPOT
    against it; then the Pareto view of every level. None for static batches."""
    charts: list[Chart] = []
    for kind in LEVEL_KINDS:
        if any(r.load_kind == kind for r in rows):
            charts += [*load_utilization_charts(rows, setup, kind), *load_latency_charts(rows, kind)]
    charts.append(pareto_chart(rows))
    return charts


def report_charts(rows: Sequence[Row], setup: Setup) -> list[Chart]:
    """Every chart of the report, in order; charts without a single point are left out. The
    charts against batch size hold the static rows only; rows under load have their own."""
    static = static_rows(rows)
    charts = [roofline_chart(rows, setup), *utilization_charts(static, setup),
              latency_chart(static), throughput_chart(static), *load_charts(rows, setup)]
    return [c for c in charts if c.data_points]


def _utilization(name: str) -> Callable[[Row], float | None]:
    """The row's ``mfu`` or ``mbu``."""
    return lambda r: r.mfu if name == "mfu" else r.mbu


def _describe_utilization(name: str) -> Callable[[Row, float], str]:
    return lambda r, v: f"{name.upper()} {util(v, 2, r.marked(name))}"


def compare_charts(runs: Sequence[tuple[str, Sequence[Row]]]) -> list[Chart]:
    """MFU, MBU and latency of several runs against batch (static rows), and MFU and MBU
    against each load's level (rows under load): colour per run, marker per phase."""
    static = [(label, static_rows(rows)) for label, rows in runs]
    loaded = [(label, [r for r in rows if r.load_kind != "static"]) for label, rows in runs]
    by_level = [
        _by_level_chart(f"compare-{name}-{kind}", f"{name.upper()} against {LEVEL_WORDS[kind]}, by run",
                        "Colour: run; marker: phase (square decode, diamond total). Later runs dashed.",
                        [], kind, ("decode", "total"), Axis(name.upper(), "fraction"),
                        _utilization(name), _describe_utilization(name), runs=loaded)
        for kind in LEVEL_KINDS for name in ("mfu", "mbu")
    ]
    runs = static
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
        *by_level,
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
