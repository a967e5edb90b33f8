"""Reports under load: rows that carry their load as data, tables per load kind, and the charts
against the level (MFU, MBU, TTFT, TPOT) and of throughput per GPU against per user, with its
Pareto frontier.

The rows come from the real ``vllm bench serve`` runs of ``tests/data/vllm_bench`` (vLLM CPU,
concurrency 4 and rate 20 req/s), read by the importer and analysed as ``report`` does; the other
levels are the same files with the level changed and every timing scaled (a closed loop that
gets slower per request and faster in total as C grows), and one level with its timings scaled
by 1e-5, which puts it far above the peak."""

from __future__ import annotations

import functools
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfubench.analysis.load import Load
from mfubench.analysis.measurement import Measurement
from mfubench.analysis.phases import Row, Setup, analyze, make_setup
from mfubench.cli import main
from mfubench.hardware.spec import parse_hardware
from mfubench.io.importers import load_measurements
from mfubench.model.registry import load_model
from mfubench.report import charts, tables
from mfubench.report.html import render_report
from mfubench.report.units import ABOVE_PEAK_MARK
from test_report import BANNED, parse, seed_measurements, seed_setup

VLLM = Path(__file__).parent / "data" / "vllm_bench"
#: (level, latency scale, duration scale) of each level made from a live run
CONCURRENCY = [(1, 0.8, 3.2), (2, 0.9, 1.8), (4, 1.0, 1.0), (8, 1.3, 0.65), (16, 2.0, 0.7)]
RATES = [(5, 0.9, 3.0), (10, 0.95, 2.0), (20, 1.0, 1.0)]
ABOVE = 12  # the concurrency whose timings are scaled by 1e-5: far above the peak
HOSTILE = "<img src=x onerror=alert(1)>"


def page_tags(html: str) -> list[str]:
    return parse(html).tags


def variant(out: Path, name: str, key: str, level: float, lat: float, dur: float,
            percentiles: bool = True, **fields: Any) -> Path:
    """The live run ``name`` at another level: per-request timings x ``lat``, duration x ``dur``."""
    doc = json.loads((VLLM / f"{name}.json").read_text())
    doc["ttfts"] = [t * lat for t in doc["ttfts"]]
    doc["itls"] = [[g * lat for g in gaps] for gaps in doc["itls"]]
    for k in [k for k in doc if k.endswith(("_ttft_ms", "_tpot_ms", "_itl_ms", "_e2el_ms"))]:
        doc[k] *= lat  # vLLM's summary latencies (means, medians, p99) scale with the requests'
    if not percentiles:
        for k in [k for k in doc if k.startswith(("median_", "p99_"))]:
            del doc[k]
    doc["duration"] *= dur
    doc[key] = level
    doc.update(fields)
    path = out / f"{name}-{level:g}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from mfubench.measure.tiny_model import TEST, llama_config

    out = tmp_path_factory.mktemp("load")
    (out / "means").mkdir()
    config = out / "config.json"
    config.write_text(json.dumps(llama_config(TEST)))
    conc = [variant(out, "live_concurrency", "max_concurrency", c, lat, dur)
            for c, lat, dur in CONCURRENCY]
    above = variant(out, "live_concurrency", "max_concurrency", ABOVE, 1e-5, 1e-5)
    rate = [variant(out, "live_rate", "request_rate", r, lat, dur) for r, lat, dur in RATES]
    means = [variant(out / "means", "live_concurrency", "max_concurrency", c, lat, dur, percentiles=False)
             for c, lat, dur in CONCURRENCY]
    return {"config": str(config), "concurrency": conc, "above": above, "rate": rate, "dir": out,
            "means": means}


def tiny_setup(files: dict[str, Any], hardware: str = "H100-SXM") -> Setup:
    return make_setup(load_model(files["config"]), parse_hardware(hardware), "vllm")


def measurements(paths: Sequence[Path]) -> list[Measurement]:
    return [m for p in paths for m in load_measurements(p)]


@pytest.fixture(scope="module")
def loaded(files: dict[str, Any]) -> tuple[Setup, list[Measurement], list[Row]]:
    setup = tiny_setup(files)
    ms = measurements([*files["concurrency"], files["above"], *files["rate"]])
    return setup, ms, analyze(setup, ms)


def chart(rows: Sequence[Row], setup: Setup, chart_id: str) -> charts.Chart:
    by_id = {c.id: c for c in charts.report_charts(rows, setup)}
    assert chart_id in by_id, sorted(by_id)
    return by_id[chart_id]


def series(c: charts.Chart, name: str) -> charts.Series:
    found = [s for s in c.series if s.name == name]
    assert len(found) == 1, [s.name for s in c.series]
    return found[0]


# ----------------------------------------------------------------------------- rows, tables


def test_rows_carry_the_load_as_data_and_stay_json_safe(loaded) -> None:  # type: ignore[no-untyped-def]
    _, ms, rows = loaded
    assert {(r.load_kind, r.load_level) for r in rows} == {
        *(("concurrency", float(c)) for c, *_ in CONCURRENCY), ("concurrency", float(ABOVE)),
        *(("rate", float(r)) for r, *_ in RATES)}
    c4 = next(r for r in rows if r.load == "concurrency 4" and r.phase == "total")
    assert (c4.load_kind, c4.load_level) == ("concurrency", 4.0)
    r20 = next(r for r in rows if r.load_kind == "rate" and r.load_level == 20)
    assert r20.load == "rate 20 req/s (poisson)"  # the label stays
    m4 = next(m for m in ms if m.load == Load("concurrency", 4.0))
    assert c4.extra["ttft_mean_s"] == m4.ttft_s and c4.extra["tpot_mean_s"] == m4.tpot_s
    for r in rows:
        d = r.to_dict()
        assert d["load_kind"] == r.load_kind and d["load_level"] == r.load_level
        json.dumps(d, allow_nan=False)
    static = analyze(loaded[0], [Measurement(2, 128, 32, ttft_s=0.01, itl_s=0.003)])
    assert {(r.load_kind, r.load_level) for r in static} == {("static", None)}
    assert all("ttft_mean_s" not in r.extra for r in static)  # static rows are as before


def test_tables_never_mix_load_kinds_and_order_by_level(loaded) -> None:  # type: ignore[no-untyped-def]
    setup, ms, _ = loaded
    static = Measurement(2, 128, 32, ttft_s=0.01, itl_s=0.003, elapsed_s=0.2, source="static")
    rows = analyze(setup, [*reversed(ms), static])  # levels given out of order
    named = tables.by_table(rows)
    assert [name.split(" (")[0] for name, _ in named] == [
        "prefill", "decode", "total",
        "decode under concurrency", "total under concurrency",
        "decode under a request rate", "total under a request rate"]
    for name, sel in named:
        kinds = {r.load_kind for r in sel}
        assert len(kinds) == 1, name
        if kinds != {"static"}:
            levels = [r.load_level for r in sel]
            assert levels == sorted(levels), name
    conc = dict(named)["total under concurrency (rows by concurrency C, requests in flight)"]
    assert [r.load_level for r in conc] == [1, 2, 4, 8, 12, 16]
    md = tables.markdown(rows, setup.peak_label)
    assert "**decode under concurrency (rows by concurrency C, requests in flight): 1xH100-SXM" in md
    assert "**total under a request rate (rows by rate, req/s): 1xH100-SXM" in md
    assert "| concurrency 12 |" in md and ABOVE_PEAK_MARK in md
    titles = [str(t.title) for t in tables.terminal_tables(rows, setup.peak_label)]
    assert [t.split(":")[0] for t in titles] == [name for name, _ in named]
    # a static-only analysis: one table per phase, as before
    seed_like = analyze(setup, [static])
    assert [name for name, _ in tables.by_table(seed_like)] == ["prefill", "decode", "total"]


# ----------------------------------------------------------------------------- charts


def test_mfu_and_mbu_against_the_level_are_the_rows_figures(loaded) -> None:  # type: ignore[no-untyped-def]
    setup, _, rows = loaded
    for kind, levels in (("concurrency", [1, 2, 4, 8, 12, 16]), ("rate", [5, 10, 20])):
        for name in ("mfu", "mbu"):
            c = chart(rows, setup, f"load-{name}-{kind}")
            assert c.x.unit == ("concurrency" if kind == "concurrency" else "req/s")
            for phase in ("decode", "total"):
                s = series(c, phase)
                want = sorted((r for r in rows if r.load_kind == kind and r.phase == phase),
                              key=lambda r: r.load_level or 0)
                assert [p.x for p in s.points] == levels
                assert [p.y for p in s.points] == [getattr(r, name) for r in want]
                ceiling = series(c, f"{phase}: roofline ceiling")
                assert [p.y for p in ceiling.points] == [getattr(r, f"{name}_ceiling") for r in want]


def test_a_level_above_the_peak_is_marked_not_plotted_plain(loaded) -> None:  # type: ignore[no-untyped-def]
    setup, _, rows = loaded
    above = [r for r in rows if r.load_level == ABOVE and r.load_kind == "concurrency"]
    assert above and all(r.above_peak for r in above)
    marked = 0
    for name in ("mfu", "mbu"):
        c = chart(rows, setup, f"load-{name}-concurrency")
        for phase in ("decode", "total"):
            for p in series(c, phase).points:
                (r,) = [r for r in rows if r.load_kind == "concurrency" and r.load_level == p.x
                        and r.phase == phase]
                # the figure over 100 % carries the mark; every point of the level is hollow
                # (flagged above-peak), the other levels plain and solid
                assert p.label == (f"{ABOVE_PEAK_MARK} above peak" if r.marked(name) else ""), p
                assert p.hollow == (p.x == ABOVE), p
                marked += r.marked(name)
    assert marked >= 2  # MBU of both rows, and MFU of the total row, are above 100 %
    # the rendered SVG writes the mark beside the point
    html = render_report(rows, setup, [], generated_utc="t")
    fig = html.split('id="chart-load-mbu-concurrency"')[1].split("</figure>")[0]
    assert f"{ABOVE_PEAK_MARK} above peak" in fig


def test_ttft_and_tpot_against_the_level_are_vllms_percentiles(loaded) -> None:  # type: ignore[no-untyped-def]
    """vLLM bench writes medians and p99s: the charts draw them (p50 = vLLM's median)."""
    setup, ms, rows = loaded
    conc = sorted((m for m in ms if m.load.kind == "concurrency" and m.load.level != ABOVE),
                  key=lambda m: m.load.level or 0)
    c = chart(rows, setup, "load-ttft-concurrency")
    p50 = [p for p in series(c, "TTFT p50").points if p.x != ABOVE]
    p99 = [p for p in series(c, "TTFT p99").points if p.x != ABOVE]
    assert [p.x for p in p50] == [m.load.level for m in conc]
    assert [p.y for p in p50] == [m.extra["latency_percentiles"]["ttft_s"]["p50"] for m in conc]
    assert all(a.y <= b.y for a, b in zip(p50, p99, strict=True))


def test_ttft_and_tpot_against_the_level_are_the_means_when_no_percentiles(files) -> None:  # type: ignore[no-untyped-def]
    setup = tiny_setup(files)
    ms = measurements(files["means"])
    rows = analyze(setup, ms)
    conc = sorted(ms, key=lambda m: m.load.level or 0)
    ttft = series(chart(rows, setup, "load-ttft-concurrency"), "TTFT mean")
    tpot = series(chart(rows, setup, "load-tpot-concurrency"), "TPOT mean")
    assert [p.x for p in ttft.points] == [m.load.level for m in conc]
    assert [p.y for p in ttft.points] == [m.ttft_s for m in conc]
    assert [p.y for p in tpot.points] == [m.tpot_s for m in conc]
    # the live run at concurrency 4 as vLLM measured it (25.4 ms, 3.57 ms)
    assert ttft.points[2].y == pytest.approx(0.02538, rel=1e-3)
    assert tpot.points[2].y == pytest.approx(0.003575, rel=1e-3)


def test_ttft_and_tpot_percentiles_when_the_results_carry_them(loaded) -> None:  # type: ignore[no-untyped-def]
    """As ``mfubench run --concurrency`` records them: p50/p90/p99 of TTFT and TPOT."""
    setup = loaded[0]
    ms = []
    for c in (1, 4, 16):
        tpot, ttft = 0.003 * (1 + c / 8), 0.01 * (1 + c / 4)
        pct = {"ttft_s": {"p50": ttft, "p90": 1.5 * ttft, "p99": 2 * ttft},
               "tpot_s": {"p50": tpot, "p90": 1.2 * tpot, "p99": 1.4 * tpot},
               "itl_s": {"p50": tpot, "p90": 1.1 * tpot, "p99": 3 * tpot}}
        ms.append(Measurement(c, 128, 32, ttft_s=ttft, tpot_s=tpot, load=Load("concurrency", c),
                              completed=64, duration_s=64 * (ttft + 31 * tpot) / c,
                              extra={"latency_percentiles": pct}, source=f"run c={c}"))
    rows = analyze(setup, ms)
    total = [r for r in rows if r.phase == "total"]
    assert all(set(r.extra) >= {"ttft_percentiles_s", "tpot_percentiles_s", "ttft_mean_s"}
               for r in total)
    for name in ("ttft", "tpot"):
        c = chart(rows, setup, f"load-{name}-concurrency")
        assert [s.name for s in c.series] == [f"{name.upper()} p50", f"{name.upper()} p90",
                                             f"{name.upper()} p99"]  # no mean beside them
        for s in c.series:
            q = s.name.split()[1]
            assert [p.x for p in s.points] == [1, 4, 16]
            assert [p.y for p in s.points] == [
                m.extra["latency_percentiles"][f"{name}_s"][q] for m in ms]
    html = render_report(rows, setup, [], generated_utc="t")
    assert "TPOT per request" in html and "<th class=\"l\">load</th>" in html


def brute_frontier(points: Sequence[tuple[float, float]]) -> set[int]:
    """Indices of the points no other point beats on one axis and equals or beats on the
    other: a sweep from the largest x down, independent of the report's pairwise test."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    keep: set[int] = set()
    best_y = -math.inf  # the largest y among points of strictly larger x
    i = 0
    while i < len(order):
        j = i
        x = points[order[i]][0]
        while j < len(order) and points[order[j]][0] == x:
            j += 1
        top = points[order[i]][1]  # the largest y at this x
        for k in order[i:j]:
            if points[k][1] == top and top > best_y:
                keep.add(k)
        best_y = max(best_y, top)
        i = j
    return keep


def test_pareto_points_are_the_levels_and_the_frontier_the_non_dominated(loaded) -> None:  # type: ignore[no-untyped-def]
    setup, ms, rows = loaded
    c = chart(rows, setup, "load-pareto")
    assert c.x.label == "throughput per user (output tokens/s per request, 1 / TPOT)"
    assert c.y.label == "throughput per GPU (output tokens/s per GPU)"
    # from the measurements themselves: completed / duration x output tokens / devices; 1 / TPOT
    raw = {(m.load.kind, m.load.level): (1 / m.tpot_s,  # type: ignore[operator]
                                         m.completed / m.duration_s * m.output_tokens / setup.tp)  # type: ignore[operator]
           for m in ms}
    for s, kind in ((series(c, "concurrency (C)"), "concurrency"), (series(c, "request rate (λ)"), "rate")):
        levels = sorted(level for k, level in raw if k == kind and level != ABOVE)
        assert [p.label for p in s.points] == [charts.LEVEL_PREFIX[kind] + f"{v:g}" for v in levels]
        for p, level in zip(s.points, levels, strict=True):
            assert (p.x, p.y) == pytest.approx(raw[kind, level], rel=1e-12)
    (marked,) = [p for s in c.series for p in s.points if s.marker and ABOVE_PEAK_MARK in p.label]
    assert marked.label == f"C{ABOVE} {ABOVE_PEAK_MARK} above peak" and marked.hollow
    assert "left out of the frontier" in marked.title

    plain = {k: v for k, v in raw.items() if k != ("concurrency", ABOVE)}
    keys = list(plain)
    want = {keys[i] for i in brute_frontier([plain[k] for k in keys])}
    assert len(want) >= 2  # the data make a real trade-off, not one point beating all
    frontier = series(c, "Pareto frontier")
    assert frontier.marker is None and frontier.dashed
    got = [(p.x, p.y) for p in frontier.points]
    assert got == sorted(got)  # drawn left to right
    assert set(got) == {plain[k] for k in want}
    # the level above the peak beats every other on both axes, yet is not on the frontier
    assert all(raw["concurrency", ABOVE][0] > x and raw["concurrency", ABOVE][1] > y
               for x, y in plain.values())
    assert raw["concurrency", ABOVE] not in set(got)
    assert {p.row.load_level for p in charts.pareto_frontier(charts.pareto_points(rows))} == {
        level for _, level in want}


@functools.cache
def a_row() -> Row:
    """One plain total row under load (the frontier looks at its shape and plainness only)."""
    m = Measurement(4, 128, 32, ttft_s=0.5, tpot_s=0.05, load=Load("concurrency", 4.0))
    return next(r for r in analyze(seed_setup(), [m]) if r.phase == "total")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=12))
def test_pareto_frontier_matches_the_sweep(values: list[tuple[int, int]]) -> None:
    """Ties included: equal points are both on the frontier, a point equalled on one axis and
    beaten on the other is not."""
    row = a_row()
    assert row.plain
    points = [charts.ParetoPoint(row, None, float(x), float(y)) for x, y in values]
    got = charts.pareto_frontier(points)
    want = brute_frontier([(p.per_user, p.per_gpu) for p in points])
    assert sorted(id(p) for p in got) == sorted(id(points[i]) for i in want)


def test_pareto_frontier_is_per_shape_and_per_gpu_divides_by_tp(files) -> None:  # type: ignore[no-untyped-def]
    one, two = tiny_setup(files), tiny_setup(files, "2xH100-SXM")
    ms = measurements(files["concurrency"])
    a, b = charts.pareto_points(analyze(one, ms)), charts.pareto_points(analyze(two, ms))
    assert [p.per_gpu for p in b] == pytest.approx([p.per_gpu / 2 for p in a])
    assert [p.per_user for p in b] == [p.per_user for p in a]
    # another output length: its own frontier, never beaten by the first shape's points
    longer = [replace(p, row=replace(p.row, output_tokens=64.0), per_gpu=p.per_gpu / 10) for p in a]
    frontier = charts.pareto_frontier([*a, *longer])
    assert {id(p) for p in charts.pareto_frontier(longer)} <= {id(p) for p in frontier}


def test_a_trace_is_one_pareto_point_and_has_no_level_charts(loaded) -> None:  # type: ignore[no-untyped-def]
    setup = loaded[0]
    m = Measurement(3, 128, 32, ttft_s=0.02, tpot_s=0.004, load=Load("trace"), completed=40,
                    duration_s=2.0)
    rows = analyze(setup, [m])
    assert {(r.load_kind, r.load_level) for r in rows} == {("trace", None)}
    assert [c.id for c in charts.report_charts(rows, setup)] == ["roofline", "load-pareto"]
    (s,) = [s for s in chart(rows, setup, "load-pareto").series if s.marker]
    assert s.name == "trace" and [p.label for p in s.points] == ["trace"]
    assert (s.points[0].x, s.points[0].y) == pytest.approx((250.0, 40 / 2.0 * 32))
    assert [name for name, _ in tables.by_table(rows)] == ["decode under a trace", "total under a trace"]


def test_static_only_reports_have_none_of_the_load_charts() -> None:
    setup = seed_setup()
    rows = analyze(setup, seed_measurements())
    ids = [c.id for c in charts.report_charts(rows, setup)]
    assert ids == ["roofline", "mfu", "mbu", "latency", "throughput"]
    assert not any(r.load_kind != "static" for r in rows)
    assert charts.pareto_points(rows) == []


def test_charts_against_batch_keep_to_static_rows(loaded) -> None:  # type: ignore[no-untyped-def]
    """Under load a decode row is one mean step: dividing its TPOT by the decode steps, as the
    chart against batch does, would be wrong. Such rows go to the charts against the level and
    to the roofline (labelled by level)."""
    setup, _, rows = loaded
    ids = [c.id for c in charts.report_charts(rows, setup)]
    assert ids == ["roofline", "load-mfu-concurrency", "load-mbu-concurrency",
                   "load-ttft-concurrency", "load-tpot-concurrency", "load-mfu-rate",
                   "load-mbu-rate", "load-ttft-rate", "load-tpot-rate", "load-pareto"]
    roof = chart(rows, setup, "roofline")
    conc = next(s for s in roof.series if s.name.startswith("decode under concurrency"))
    assert sorted(p.label for p in conc.points) == sorted(f"C{c}" for c in (1, 2, 4, 8, 12, 16))


# ----------------------------------------------------------------------------- the page


def test_report_page_under_load(files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    made = variant(tmp_path, "live_concurrency", "max_concurrency", 3, 1.0, 1.1)
    hostile = made.rename(tmp_path / f"{HOSTILE}.json")  # a file name is shown: escaped
    static = tmp_path / "static.csv"
    static.write_text("batch_size,input_tokens,output_tokens,ttft_s,elapsed_s\n"
                      "1,128,32,0.01,0.1\n4,128,32,0.02,0.12\n")
    out = tmp_path / "r.html"
    args = ["--model", files["config"], "--hardware", "H100-SXM", "--convention", "vllm"]
    assert main(["report", *map(str, files["concurrency"]), str(files["above"]),
                 *map(str, files["rate"]), str(hostile), str(static), *args, "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img" not in html and "img" not in page_tags(html)
    page = parse(html)
    visible = " ".join(page.text)
    assert not BANNED.search(visible), BANNED.search(visible)
    figures = page.figures
    for kind, levels in (("concurrency", 7), ("rate", 3)):
        for name in ("mfu", "mbu"):
            assert figures[f"chart-load-{name}-{kind}"]["pt"] == 2 * levels  # decode and total
        for name in ("ttft", "tpot"):  # vLLM's p50 (median) and p99 per level
            assert figures[f"chart-load-{name}-{kind}"]["pt"] == 2 * levels
    assert figures["chart-load-pareto"]["pt"] == 10
    assert figures["chart-load-pareto"]["polyline"] >= 3  # the two curves and the frontier
    # the static rows keep their charts against batch, with their points only
    assert figures["chart-mfu"]["pt"] == 4 and figures["chart-latency"]["pt"] == 4
    assert "per GPU" in visible and "1 / TPOT" in visible
    assert "total under concurrency" in visible and "decode under a request rate" in visible
    for drawing in html.split("<svg ")[1:]:
        ET.fromstring("<svg " + drawing.split("</svg>")[0] + "</svg>")


def test_compare_under_load_draws_by_level(files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = ",".join(map(str, files["concurrency"]))
    out = tmp_path / "c.html"
    assert main(["compare", run, run, "--label", "a", "--label", "b", "--model", files["config"],
                 "--hardware", "H100-SXM", "--convention", "vllm", "-o", str(out)]) == 0
    page = parse(out.read_text())
    assert set(page.figures) == {"chart-compare-mfu-concurrency", "chart-compare-mbu-concurrency"}
    assert all(f["pt"] == 2 * 2 * len(CONCURRENCY) for f in page.figures.values())


def test_load_plots_as_png(loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    from mfubench.report.plots import write_plots

    setup, _, rows = loaded
    wanted = [chart(rows, setup, i) for i in ("load-pareto", "load-mfu-rate")]
    paths = write_plots(wanted, tmp_path)
    assert [p.name for p in paths] == ["load-pareto.png", "load-pareto.svg", "load-mfu-rate.png",
                                       "load-mfu-rate.svg"]
    assert all(p.stat().st_size > 5_000 for p in paths)



def test_compare_matches_a_load_only_with_the_same_load(files, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A concurrency-C row never matches a static batch of C; the same concurrency in two runs
    matches, whatever batch each run's rows carry."""
    level = files["concurrency"][0]
    (m,) = load_measurements(level)
    static = tmp_path / "static.csv"
    static.write_text("batch_size,input_tokens,output_tokens,ttft_s,itl_s\n"
                      f"{m.batch_size},{round(m.input_tokens)},{round(m.output_tokens)},0.05,0.004\n")
    args = ["--model", files["config"], "--hardware", "H100-SXM", "--convention", "vllm", "--json"]
    assert main(["compare", f"{level},{static}", str(level), *args]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    loads = {(r["phase"], r["load"], r["batch_size"]) for r in rows}
    assert (("decode", m.load.label, None) in loads and ("decode", "static", m.batch_size) in loads)
    for r in rows:
        both = [x["mfu"] is not None for x in r["runs"]]
        assert both == ([True, True] if r["load"] != "static" else [True, False]), r
