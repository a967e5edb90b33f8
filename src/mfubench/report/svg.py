"""Charts drawn as inline SVG: scales, ticks, legends and markers (no scripts, no network).

Pure string building from a :class:`~mfubench.report.charts.Chart`; nothing here knows about
the analysis. Non-finite or non-positive values never reach a log axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

from mfubench.report.charts import (
    LEVEL_UNITS,
    ROOF_COLOR,
    Axis,
    Chart,
    Marker,
    Series,
    Unit,
    finite_positive,
)
from mfubench.report.units import pct, seconds, si


@dataclass(frozen=True)
class Scale:
    """Data to pixels along one axis."""

    lo: float
    hi: float
    px_lo: float
    px_hi: float
    log: bool

    def __call__(self, v: float) -> float:
        if self.log:
            a, b, t = math.log10(self.lo), math.log10(self.hi), math.log10(max(v, 1e-300))
        else:
            a, b, t = self.lo, self.hi, v
        return self.px_lo + (t - a) / (b - a) * (self.px_hi - self.px_lo)


def axis_range(chart: Chart, which: Literal["x", "y"]) -> tuple[float, float]:
    """The drawn range of an axis: whole decades (log), powers of two (batch, a load level),
    or 0 to a round number (linear, fractions)."""
    axis = chart.x if which == "x" else chart.y
    vals = [p.x if which == "x" else p.y for s in chart.series for p in s.points]
    if which == "x":
        vals += [m.x for m in chart.marks]
    vals = [v for v in vals if finite_positive(v)]
    if not vals:
        return (1.0, 10.0) if axis.log else (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if axis.unit in LEVEL_UNITS:
        a = 2 ** math.floor(math.log2(lo))
        b = 2 ** math.ceil(math.log2(hi))
        return (a / 1.5, b * 1.5) if a == b else (a / 1.3, b * 1.3)
    if axis.log:
        # whole decades unless the data sit near a decade's end: then a margin of 1.6x
        a = 10 ** math.floor(math.log10(lo) + 1e-9)
        b = 10 ** math.ceil(math.log10(hi) - 1e-9)
        if lo / a < 1.6:
            a = lo / 1.6 if which == "y" else a
        if b / hi < 1.6:
            b = hi * 1.6 if which == "y" else b
        if axis.unit == "fraction" and hi <= 0.9:
            b = min(b, 1.0)  # a fraction's axis ends at 100 % when the data allow
        return (a / 10, b * 10) if b <= a else (a, b)
    step = _nice_step(hi / 5)
    return 0.0, step * math.ceil(hi / step * 1.05)


def _nice_step(raw: float) -> float:
    exp = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * exp >= raw:
            return m * exp
    return 10.0 * exp


def ticks(axis: Axis, lo: float, hi: float) -> list[float]:
    """Tick positions: decades (every other one when there are many), powers of two, or a
    round linear step."""
    if axis.unit == "req/s":  # rates are rarely powers of two: 1, 2, 5, 10, 20, 50...
        first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        return [m * 10.0 ** k for k in range(first, last + 1) for m in (1, 2, 5)
                if lo <= m * 10.0 ** k <= hi]
    if axis.unit in LEVEL_UNITS:
        return [2.0 ** k for k in range(math.ceil(math.log2(lo)), math.floor(math.log2(hi)) + 1)]
    if axis.log:
        first, last = math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9)
        every = 1 if last - first <= 8 else 2
        return [10.0 ** k for k in range(first, last + 1, every)]
    step = _nice_step(hi / 5)
    return [i * step for i in range(int(round(hi / step)) + 1)]


def tick_label(unit: Unit, v: float) -> str:
    """Tick text in the units module's style."""
    if unit == "fraction":
        if 0 < v < 1e-3:  # below 0.1 %: enough digits not to read "0.0 %"
            return f"{v * 100:.2g} %"
        return pct(v, 0 if v * 100 >= 1 or v == 0 else 1)
    if unit == "seconds":
        return seconds(v)
    if unit in LEVEL_UNITS:
        return f"{v:g}"
    if unit == "flop/s":
        return si(v, "FLOP/s")
    if unit == "tokens/s":
        return si(v, "tok/s")
    return si(v, "").strip()


# ----------------------------------------------------------------------------- SVG

NARROW, WIDE, PLOT_HEIGHT = 640, 920, 360
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 104, 28, 18, 52
LEGEND_ROW = 20


def _legend_rows(series: Sequence[Series], width: int) -> list[list[tuple[Series, float]]]:
    rows: list[list[tuple[Series, float]]] = [[]]
    used = 0.0
    room = width - MARGIN_LEFT - MARGIN_RIGHT
    for s in series:
        item = 34 + 6.4 * len(s.name)
        if rows[-1] and used + item > room:
            rows.append([])
            used = 0.0
        rows[-1].append((s, used))
        used += item + 14
    return rows if rows[0] else []


def _marker_svg(marker: Marker, x: float, y: float, color: str, hollow: bool, title: str,
                size: float = 4.5) -> str:
    fill = "#ffffff" if hollow else color
    attrs = f'class="pt" fill="{fill}" stroke="{color}" stroke-width="1.6"'
    tip = f"<title>{escape(title)}</title>" if title else ""
    if marker == "square":
        s = size * 0.9
        return f'<rect {attrs} x="{x - s:.1f}" y="{y - s:.1f}" width="{2 * s:.1f}" height="{2 * s:.1f}">{tip}</rect>'
    if marker == "diamond":
        s = size * 1.25
        d = f"M{x:.1f} {y - s:.1f}L{x + s:.1f} {y:.1f}L{x:.1f} {y + s:.1f}L{x - s:.1f} {y:.1f}Z"
        return f'<path {attrs} d="{d}">{tip}</path>'
    if marker == "triangle":
        s = size * 1.2
        d = f"M{x:.1f} {y - s:.1f}L{x + s:.1f} {y + s * 0.8:.1f}L{x - s:.1f} {y + s * 0.8:.1f}Z"
        return f'<path {attrs} d="{d}">{tip}</path>'
    return f'<circle {attrs} cx="{x:.1f}" cy="{y:.1f}" r="{size:.1f}">{tip}</circle>'


def to_svg(chart: Chart) -> str:
    """The chart as one standalone ``<svg>`` element: axes, grid, ticks, series, the ridge,
    labels and a legend. Every text is escaped."""
    width = WIDE if chart.wide else NARROW
    legend = _legend_rows(chart.series, width)
    height = MARGIN_TOP + PLOT_HEIGHT + MARGIN_BOTTOM + LEGEND_ROW * len(legend) + 6
    x0, x1 = MARGIN_LEFT, width - MARGIN_RIGHT
    y0, y1 = MARGIN_TOP + PLOT_HEIGHT, MARGIN_TOP
    xlo, xhi = axis_range(chart, "x")
    ylo, yhi = axis_range(chart, "y")
    sx = Scale(xlo, xhi, x0, x1, chart.x.log or chart.x.unit in LEVEL_UNITS)
    sy = Scale(ylo, yhi, y0, y1, chart.y.log)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" id="svg-{escape(chart.id)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(chart.title)}" font-family="system-ui, -apple-system, Segoe UI, '
        f'Roboto, Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(chart.title)}</title>",
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#ffffff" stroke="#d1d5db"/>',
        f'<clipPath id="clip-{escape(chart.id)}"><rect x="{x0}" y="{y1}" width="{x1 - x0}" '
        f'height="{y0 - y1}"/></clipPath>',
    ]
    for t in ticks(chart.x, xlo, xhi):
        px = sx(t)
        out.append(f'<line x1="{px:.1f}" y1="{y1}" x2="{px:.1f}" y2="{y0}" stroke="#eef0f3"/>')
        out.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y0 + 5}" stroke="#6b7280"/>')
        out.append(f'<text x="{px:.1f}" y="{y0 + 19}" text-anchor="middle" fill="#374151">'
                   f"{escape(tick_label(chart.x.unit, t))}</text>")
    for t in ticks(chart.y, ylo, yhi):
        py = sy(t)
        out.append(f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" stroke="#eef0f3"/>')
        out.append(f'<line x1="{x0 - 5}" y1="{py:.1f}" x2="{x0}" y2="{py:.1f}" stroke="#6b7280"/>')
        out.append(f'<text x="{x0 - 8}" y="{py + 4:.1f}" text-anchor="end" fill="#374151">'
                   f"{escape(tick_label(chart.y.unit, t))}</text>")
    out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{y0 + 40}" text-anchor="middle" '
               f'fill="#111827">{escape(chart.x.label)}</text>')
    cy = (y0 + y1) / 2
    out.append(f'<text x="16" y="{cy:.1f}" text-anchor="middle" fill="#111827" '
               f'transform="rotate(-90 16 {cy:.1f})">{escape(chart.y.label)}</text>')
    out.append(f'<g clip-path="url(#clip-{escape(chart.id)})">')
    for mark in chart.marks:
        px = sx(mark.x)
        top = y1 if mark.top is None else sy(mark.top)
        out.append(f'<line class="ridge" x1="{px:.1f}" y1="{top:.1f}" x2="{px:.1f}" y2="{y0}" '
                   f'stroke="{ROOF_COLOR}" stroke-dasharray="2 4" stroke-width="1.2"/>')
        out.append(f'<text x="{px + 5:.1f}" y="{y0 - 8}" fill="{ROOF_COLOR}" font-size="11">'
                   f"{escape(mark.label)}</text>")
    for s in chart.series:
        pts = [(sx(p.x), sy(p.y)) for p in s.points]
        if s.line and len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            stroke = 2.2 if s.marker is None else 1.6
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            opacity = "" if s.marker is None else ' stroke-opacity="0.75"'
            out.append(f'<polyline fill="none" stroke="{s.color}" stroke-width="{stroke}"{dash}'
                       f'{opacity} points="{path}"/>')
    for note in chart.notes:
        px, py = sx(note.x), sy(note.y)
        dx = -8 if note.anchor == "end" else 0
        dy = -8 if note.above else 4
        out.append(f'<text x="{px + dx:.1f}" y="{py + dy:.1f}" text-anchor="{note.anchor}" '
                   f'fill="{ROOF_COLOR}" font-size="11" font-style="italic">'
                   f"{escape(note.text)}</text>")
    for s in chart.series:
        if s.marker is None:
            continue
        for i, p in enumerate(s.points):
            px, py = sx(p.x), sy(p.y)
            out.append(_marker_svg(s.marker, px, py, s.color, p.hollow, p.title))
            if p.label:  # alternately above and below, so neighbours do not collide
                ly = py - 7 if i % 2 == 0 else py + 15
                out.append(f'<text class="pt-label" x="{px + 5:.1f}" y="{ly:.1f}" '
                           f'fill="{s.color}" font-size="10.5" font-weight="600">'
                           f"{escape(p.label)}</text>")
    out.append("</g>")
    top = y0 + MARGIN_BOTTOM
    for i, row in enumerate(legend):
        ly = top + i * LEGEND_ROW + 8
        for s, offset in row:
            lx = x0 + offset
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            out.append(f'<line x1="{lx:.1f}" y1="{ly:.1f}" x2="{lx + 24:.1f}" y2="{ly:.1f}" '
                       f'stroke="{s.color}" stroke-width="2"{dash}/>')
            if s.marker is not None:
                out.append(_marker_svg(s.marker, lx + 12, ly, s.color, False, "", 4.0)
                           .replace('class="pt"', 'class="legend-pt"'))
            out.append(f'<text x="{lx + 30:.1f}" y="{ly + 4:.1f}" fill="#374151">'
                       f"{escape(s.name)}</text>")
    out.append("</svg>")
    return "\n".join(out)
