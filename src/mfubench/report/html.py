"""One self-contained HTML file: the report of an analysis, or the comparison of several runs.

Inline CSS and inline SVG charts (:mod:`mfubench.report.charts`), no script and nothing fetched,
so the file works offline and from ``file://``. Every string that comes from a file, a server
or the command line goes through :func:`html.escape`; a missing value is written ``–``, never
``None`` or ``NaN``. The renderers take the analysis rows and never recompute them.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from mfubench import __version__
from mfubench.analysis.above_peak import ABOVE_PEAK
from mfubench.analysis.explain import summary
from mfubench.analysis.feasibility import INFEASIBLE
from mfubench.report import charts as ch
from mfubench.report import svg, tables
from mfubench.report.units import ABOVE_PEAK_MARK, gib, seconds, si

if TYPE_CHECKING:
    from mfubench.analysis.phases import Row, Setup

MISSING = "\u2013"  # en dash: what a missing value shows as


@dataclass(frozen=True)
class Source:
    """One results file as the report describes it.

    Attributes:
        path: the file as given on the command line.
        formats: the importer formats of its points (``seed``, ``mfubench-results``, ...).
        points: measured points read from it.
        header: the provenance line of an mfubench results file (``type: header``), else None.
    """

    path: str
    formats: tuple[str, ...]
    points: int
    header: Mapping[str, Any] | None = None


def text(value: Any) -> str:
    """Any value as escaped text; None, NaN and infinities become ``–``."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, float) and not math.isfinite(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(text(v) for v in value) if value else MISSING
    if isinstance(value, Mapping):
        return escape(json.dumps(_clean(value), ensure_ascii=False, sort_keys=True))
    return escape(str(value))


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return MISSING
    return value


def _cell(value: str, title: str = "above-peak") -> str:
    """A table cell from the tables module's formatters (``-`` means missing there); a
    utilisation above 100 % (marked by :func:`~mfubench.report.units.util`) is highlighted,
    with ``title`` as its tooltip."""
    if value.strip() in ("", "-"):
        return MISSING
    if ABOVE_PEAK_MARK in value:
        return f'<span class="above-peak" title="{escape(title, quote=True)}">{escape(value)}</span>'
    return escape(value)


# ----------------------------------------------------------------------------- sections


def _dl(items: Sequence[tuple[str, str]]) -> str:
    """A definition list; values must already be escaped."""
    body = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="kv">{body}</dl>'


def setup_section(setup: Setup) -> str:
    hw = setup.hardware
    acc = hw.accelerator
    machine = setup.machine()
    items = [
        ("model", text(setup.spec.name)),
        ("hardware", text(hw.name)),
        ("tensor parallel", text(setup.tp)),
        ("matmul dtype", text(setup.dtype)),
        ("KV-cache dtype", text(setup.kv_dtype or "as the model")),
        ("FLOP convention", text(setup.convention) + " (FLOPs of the whole model, 2 per multiply-add)"),
        ("denominators", text(setup.peak_label)),
        ("ridge", text(f"{machine.ridge:.4g} FLOP/byte") if machine else MISSING),
        ("memory per device", text(gib(hw.memory_capacity))),
        ("all-reduce latency (model)", text(f"{setup.allreduce_latency_s * 1e6:g} µs per message")),
    ]
    source = getattr(acc, "source", None)
    if source:
        checked = getattr(acc, "checked", None)
        link = f'<a href="{escape(str(source), quote=True)}">{text(source)}</a>'
        items.append(("peak source", link + (f" (checked {text(checked)})" if checked else "")))
    if hw.calibration is not None:
        items.append(("calibration", "measured peaks on this machine (MFU/MBU measured columns)"))
    return _dl(items)


def _header_items(header: Mapping[str, Any]) -> list[tuple[str, str]]:
    items = []
    for key, value in header.items():
        if key == "type":
            continue
        if key == "args" and isinstance(value, Mapping):
            args = " ".join(f"{escape(str(k))}={text(v)}" for k, v in value.items()
                            if v is not None and v is not False)
            items.append(("args", f"<code>{args or MISSING}</code>"))
        else:
            items.append((str(key), text(value)))
    return items


def sources_section(sources: Sequence[Source]) -> str:
    parts = []
    for s in sources:
        head = (f"<p><code>{text(s.path)}</code>: {s.points} point(s), format "
                f"{text(list(s.formats))}</p>")
        parts.append(head + (_dl(_header_items(s.header)) if s.header else ""))
    return "".join(parts) or f"<p>{MISSING}</p>"


def charts_section(charts: Sequence[ch.Chart]) -> str:
    figures = []
    for c in charts:
        figures.append(
            f'<figure class="chart{" wide" if c.wide else ""}" id="chart-{escape(c.id)}">'
            f"<h3>{escape(c.title)}</h3>"
            f"{svg.to_svg(c)}<figcaption>{escape(c.caption)}</figcaption></figure>"
        )
    return "".join(figures)


def _table(caption: str, headers: Sequence[str], cells: Sequence[Sequence[str]],
           left: Sequence[int] = ()) -> str:
    """A table; ``cells`` must already be escaped; columns in ``left`` are left-aligned."""
    head = "".join(f'<th class="{"l" if i in left else "r"}">{escape(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i in left else "r"}">{c}</td>'
                         for i, c in enumerate(row)) + "</tr>"
        for row in cells
    )
    return (f'<div class="table-wrap"><table class="data"><caption>{escape(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def tables_section(rows: Sequence[Row], peak_label: str) -> str:
    """The analyze tables, one per phase and load kind, the same columns as ``analyze
    --markdown``."""
    out = []
    for phase, sel in tables.by_table(rows):
        columns = tables.columns(sel)
        headers = [h for h, _ in columns]
        left = [i for i, h in enumerate(headers) if h in ("bound", "flags", "load")]
        cells = [[_cell(fn(r), _above_peak_text(r)) for _, fn in columns] for r in sel]
        out.append(_table(tables.title(phase, sel, peak_label), headers, cells, left))
        if tables.any_above_peak(sel):
            out.append(f'<p class="above-peak-legend">{text(tables.ABOVE_PEAK_LEGEND)}</p>')
    return "".join(out)


def _above_peak_text(row: Row) -> str:
    """The row's above-peak or infeasibility flags (the tooltip of its marked cells)."""
    kinds = (ABOVE_PEAK, *INFEASIBLE)
    return "; ".join(f for f in row.flags if f.startswith(kinds)) or ABOVE_PEAK


def latency_section(rows: Sequence[Row]) -> str:
    """Per-request latency percentiles, where the results carried them (mfubench runs); with
    a load column when some row is under load (whose total row carries its level's TTFT and
    TPOT)."""
    loaded = any(r.load_kind != "static" for r in rows)
    cells = []
    tpot = False
    for r in rows:
        for key, label in (("ttft_percentiles_s", "TTFT"), ("tpot_percentiles_s", "TPOT"),
                           ("itl_percentiles_s", "ITL"), ("e2e_percentiles_s", "end-to-end")):
            pcts = r.extra.get(key)
            if isinstance(pcts, Mapping):
                tpot = tpot or label == "TPOT"
                cells.append([_cell(r.phase), _cell(str(r.batch_size)),
                              *([_cell(r.load)] if loaded else []),
                              _cell(f"{r.input_tokens:g}"), _cell(f"{r.output_tokens:g}"),
                              _cell(label),
                              *(_cell(seconds(pcts.get(q))) for q in ("p50", "p90", "p99"))])
    if not cells:
        return ""
    headers = ["phase", "batch", *(["load"] if loaded else []), "in", "out", "latency", "p50",
               "p90", "p99"]
    return _table("Latency per request (nearest-rank percentiles over every measured request; "
                  "ITL over every gap between two tokens"
                  + ("; TPOT per request: its decode time over its output tokens after the first"
                     if tpot else "") + ")",
                  headers, cells, [0, 2, 5] if loaded else [0, 4])


def summary_section(rows: Sequence[Row]) -> str:
    """The analysis summary (:func:`mfubench.analysis.explain.summary`)."""
    lines = "".join(f"<li>{text(line)}</li>" for line in summary(rows))
    return f'<ul class="summary">{lines}</ul>'


def explanations_section(rows: Sequence[Row]) -> str:
    """One explanation per prefill/decode row, as ``analyze`` prints them."""
    items = "".join(
        f'<li><span class="tag tag-{escape(r.phase)}">{escape(r.phase)}</span> '
        f"{text(r.explanation)} <span class=\"src\">({text(r.source)}; seconds from "
        f"{text(r.seconds_source)})</span></li>"
        for r in rows if r.phase != "total"
    )
    return f'<ol class="explain">{items}</ol>'


def flags_section(rows: Sequence[Row]) -> str:
    """Every distinct flag, with the rows that carry it."""
    where: dict[str, list[str]] = {}
    for r in rows:
        for flag in r.flags:
            where.setdefault(flag, []).append(f"{r.phase} b={r.batch_size}")
    if not where:
        return "<p>No row carries a flag.</p>"
    items = "".join(f"<li><b>{text(flag.split(':')[0])}</b>"
                    f"{': ' + text(flag.split(':', 1)[1].strip()) if ':' in flag else ''} "
                    f'<span class="src">({text(", ".join(rs))})</span></li>'
                    for flag, rs in where.items())
    return f'<ul class="flags">{items}</ul>'


def limits_section(rows: Sequence[Row], setup: Setup) -> str:
    """Capacity and the decode crossover for each decode workload of the rows: the batch from
    which a decode step turns compute-bound at the prompt length (where the explanations take
    it) and at the final context, and the sequences of the final context that fit in memory."""
    from mfubench.analysis.limits import compute_bound_batch, limits

    workloads = sorted({(round(r.input_tokens), round(r.input_tokens + r.output_tokens))
                        for r in rows if r.phase == "decode"})
    if not workloads:
        return ""
    cells = []
    for prompt, context in workloads:
        lim = limits(setup, context)
        cells.append([text(prompt), text(context), _cell(si(lim.kv_bytes_per_sequence, "B")),
                      _cell(si(lim.free_bytes_per_gpu, "B")), text(lim.max_batch),
                      text(compute_bound_batch(setup, prompt)), text(lim.compute_bound_batch)])
    return _table("What the hardware allows in decode (per device; KV cache in 90 % of memory, "
                  "vLLM's default, minus the weights)",
                  ["prompt tokens", "final context", "KV cache / sequence", "free for KV",
                   "max batch (final context)", "compute-bound from batch (prompt)",
                   "compute-bound from batch (final context)"], cells)


# ----------------------------------------------------------------------------- pages

_CSS = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f7f9;--card:#fff;--accent:#0072B2}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 system-ui,-apple-system,
"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
header.top{background:#0f172a;color:#f8fafc;padding:22px 32px}
header.top h1{margin:0 0 4px;font-size:22px;font-weight:650}
header.top p{margin:0;color:#cbd5e1;font-size:13px}
main{max-width:1240px;margin:0 auto;padding:18px 24px 48px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:16px 22px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px;font-weight:650}
h3{font-size:14px;margin:0 0 6px;font-weight:600}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 18px;margin:6px 0 12px}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px}
figure.chart{margin:0;border:1px solid var(--line);border-radius:8px;padding:12px;background:#fff}
figure.chart svg{width:100%;height:auto;display:block}
figure.wide{grid-column:1/-1}
figure.wide svg{max-width:980px;margin:0 auto}
figure.wide figcaption{max-width:980px;margin:6px auto 0}
figcaption{color:var(--muted);font-size:12px;margin-top:6px}
.table-wrap{overflow-x:auto;margin:10px 0 18px}
table.data{border-collapse:collapse;width:100%;font-size:12.5px;font-variant-numeric:tabular-nums}
table.data caption{text-align:left;font-weight:600;padding:4px 0 8px;color:#374151}
table.data th{background:#f3f4f6;border-bottom:1px solid #d1d5db;padding:5px 8px;white-space:nowrap}
table.data td{border-bottom:1px solid #f0f1f3;padding:4px 8px;white-space:nowrap}
table.data tbody tr:nth-child(even){background:#fafbfc}
.r{text-align:right}.l{text-align:left}
ul.summary li{margin:2px 0;font-weight:500}
ol.explain li,ul.flags li{margin:4px 0}
.src{color:var(--muted);font-size:12px}
.above-peak{color:#B91C1C;font-weight:700;background:#FEE2E2;border-radius:3px;padding:0 3px}
p.above-peak-legend{color:#B91C1C;font-size:12.5px;margin:-10px 0 14px}
.tag{display:inline-block;border-radius:4px;padding:0 6px;font-size:11px;color:#fff;
font-weight:600;vertical-align:1px}
.tag-prefill{background:#0072B2}.tag-decode{background:#D55E00}.tag-total{background:#009E73}
code{font-size:12px;background:#f3f4f6;padding:1px 4px;border-radius:4px;overflow-wrap:anywhere}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:24px}
@media print{body{background:#fff}section{border:none;padding:0}.charts{display:block}
figure.chart{break-inside:avoid;margin-bottom:12px}}
"""


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """A whole HTML document; ``sections`` are (id, heading, escaped body)."""
    body = "".join(
        f'<section id="{escape(sid)}"><h2>{escape(heading)}</h2>{content}</section>'
        for sid, heading, content in sections if content
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<header class="top"><h1>{escape(title)}</h1><p>{subtitle}</p></header>'
        f"<main>{body}<footer>Generated by mfubench {escape(__version__)}: self-contained, "
        "no scripts, nothing fetched.</footer></main></body></html>\n"
    )


def _stamp(generated_utc: str | None) -> str:
    return generated_utc or datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def render_report(
    rows: Sequence[Row],
    setup: Setup,
    sources: Sequence[Source],
    *,
    title: str | None = None,
    generated_utc: str | None = None,
) -> str:
    """The report of one analysis: setup and provenance, charts, tables, explanations, flags."""
    title = title or f"mfubench report: {setup.spec.name} on {setup.hardware.name}"
    subtitle = (f"mfubench {escape(__version__)} · convention {text(setup.convention)} · "
                f"{text(setup.peak_label)} · generated {text(_stamp(generated_utc))}")
    return page(title, subtitle, [
        ("summary", "Summary", summary_section(rows)),
        ("charts", "Charts", f'<div class="charts">{charts_section(ch.report_charts(rows, setup))}</div>'),
        ("tables", "Tables", tables_section(rows, setup.peak_label) + latency_section(rows)
         + limits_section(rows, setup)),
        ("explanations", "Explanations", explanations_section(rows)),
        ("flags", "Flags", flags_section(rows)),
        ("setup", "Setup", setup_section(setup)),
        ("sources", "Results files and provenance", sources_section(sources)),
    ])


def render_compare(
    setup: Setup,
    runs: Sequence[tuple[str, Sequence[Row]]],
    headers: Sequence[str],
    cells: Sequence[Sequence[str]],
    sources: Sequence[tuple[str, Sequence[Source]]],
    *,
    title: str | None = None,
    generated_utc: str | None = None,
) -> str:
    """Several runs side by side: the matched table (``cells`` as plain text), charts by run,
    each run's summary and provenance."""
    labels = [label for label, _ in runs]
    title = title or f"mfubench compare: {' vs '.join(labels)}"
    subtitle = (f"mfubench {escape(__version__)} · {text(setup.spec.name)} on "
                f"{text(setup.hardware.name)} · convention {text(setup.convention)} · "
                f"{text(setup.peak_label)} · generated {text(_stamp(generated_utc))}")
    escaped = [[_cell(c) for c in row] for row in cells]
    table = _table("Matched points (phase, batch, prompt and requested output length); "
                   "ratios are to the first run", headers, escaped, left=[0])
    summaries = "".join(
        f"<h3>{text(label)}</h3>{summary_section(rows)}" for label, rows in runs
    )
    provenance = "".join(f"<h3>{text(label)}</h3>{sources_section(srcs)}" for label, srcs in sources)
    return page(title, subtitle, [
        ("comparison", "Side by side", table),
        ("charts", "Charts", f'<div class="charts">{charts_section(ch.compare_charts(runs))}</div>'),
        ("summaries", "Each run", summaries),
        ("setup", "Setup", setup_section(setup)),
        ("sources", "Results files and provenance", provenance),
    ])
