"""The report's charts as PNG and SVG files, drawn with matplotlib, for papers and slides.

The charts are the same :class:`~mfubench.report.charts.Chart` data the HTML report draws; this
module only renders them. matplotlib is imported when a plot is written (it is an optional
dependency: ``pip install mfubench[plots]``) and only its Agg/SVG canvases are used, never a
window or ``pyplot``'s global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mfubench.errors import MfubenchError
from mfubench.report.charts import LEVEL_UNITS, Chart
from mfubench.report.svg import axis_range, tick_label, ticks

_MARKERS = {"circle": "o", "square": "s", "diamond": "D", "triangle": "^"}


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise MfubenchError("--plots needs matplotlib: pip install 'mfubench[plots]'") from None
    return Figure


def draw(chart: Chart) -> Any:
    """A matplotlib Figure of ``chart`` (not shown; save it)."""
    figure = _figure_class()(figsize=(8.0, 5.2), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    for s in chart.series:
        xs = [p.x for p in s.points]
        ys = [p.y for p in s.points]
        style = "--" if s.dashed else "-"
        if s.marker is None:
            ax.plot(xs, ys, style, color=s.color, linewidth=2.0, label=s.name)
            continue
        if s.line and len(xs) > 1:
            ax.plot(xs, ys, style, color=s.color, linewidth=1.4, alpha=0.8)
        faces = ["white" if p.hollow else s.color for p in s.points]
        ax.scatter(xs, ys, marker=_MARKERS[s.marker], s=36, facecolors=faces,
                   edgecolors=s.color, linewidths=1.4, zorder=3, label=s.name)
        for i, p in enumerate(s.points):
            if p.label:
                ax.annotate(p.label, (p.x, p.y), textcoords="offset points",
                            xytext=(5, 6 if i % 2 == 0 else -12), fontsize=8,
                            color=s.color, fontweight="bold")
    for mark in chart.marks:
        if mark.top is None:
            ax.axvline(mark.x, color="#374151", linestyle=":", linewidth=1.2)
        else:
            ax.vlines(mark.x, axis_range(chart, "y")[0], mark.top, color="#374151",
                      linestyle=":", linewidth=1.2)
        ax.annotate(mark.label, (mark.x, 0), xycoords=("data", "axes fraction"),
                    textcoords="offset points", xytext=(4, 6), fontsize=8, color="#374151")
    for note in chart.notes:
        ax.annotate(note.text, (note.x, note.y), textcoords="offset points",
                    xytext=(-6 if note.anchor == "end" else 0, 6 if note.above else -4),
                    ha="right" if note.anchor == "end" else "left", fontsize=8,
                    fontstyle="italic", color="#374151")
    for which, axis in (("x", chart.x), ("y", chart.y)):
        lo, hi = axis_range(chart, which)  # type: ignore[arg-type]
        log = axis.log or axis.unit in LEVEL_UNITS
        (ax.set_xscale if which == "x" else ax.set_yscale)("log" if log else "linear")
        (ax.set_xlim if which == "x" else ax.set_ylim)(lo, hi)
        positions = ticks(axis, lo, hi)
        (ax.set_xticks if which == "x" else ax.set_yticks)(
            positions, [tick_label(axis.unit, t) for t in positions])
        target = ax.xaxis if which == "x" else ax.yaxis
        target.set_minor_formatter(_no_labels())
        (ax.set_xlabel if which == "x" else ax.set_ylabel)(axis.label)
    ax.grid(True, which="major", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_title(chart.title, fontsize=11, loc="left")
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.13),
              ncol=2)
    return figure


def _no_labels() -> Any:
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def write_plots(charts: Sequence[Chart], directory: str | Path) -> list[Path]:
    """Write ``<chart id>.png`` (150 dpi) and ``<chart id>.svg`` for every chart into
    ``directory`` (created); the paths written, in order."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MfubenchError(f"{out}: cannot create the plots folder: {exc.strerror or exc}") from None
    written = []
    for chart in charts:
        figure = draw(chart)
        for suffix, options in ((".png", {"dpi": 150}), (".svg", {})):
            path = out / f"{chart.id}{suffix}"
            try:
                figure.savefig(path, **options)
            except OSError as exc:
                raise MfubenchError(f"{path}: cannot write: {exc.strerror or exc}") from None
            written.append(path)
    return written
