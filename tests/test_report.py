"""The HTML report, its charts, the PNG/SVG plots and ``compare``: rendered from the seed's
results and from hostile inputs, checked by parsing what was written."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mfubench.analysis.measurement import Measurement
from mfubench.analysis.phases import analyze, make_setup
from mfubench.cli import main
from mfubench.errors import MfubenchError
from mfubench.hardware.spec import parse_hardware
from mfubench.model.registry import load_model
from mfubench.report import charts, svg
from mfubench.report.html import MISSING, Source, render_report

SEED = Path(__file__).parent / "data" / "seed"
SEED_FILES = [str(SEED / "prefill.json"), str(SEED / "decode.json")]
LLAMA70 = "meta-llama/Llama-3.3-70B-Instruct"
SETUP_ARGS = ["--model", LLAMA70, "--hardware", "4xH100-SXM"]
XSS = "<script>alert(1)</script>"
#: words that betray a missing value rendered as text
BANNED = re.compile(r"\b(NaN|nan|None|null|undefined|inf|Infinity)\b")


class Page(HTMLParser):
    """The parts of a report the tests look at: figures, their SVG marks, visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, dict[str, int]] = {}
        self.current: str | None = None
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag in ("style", "title"):
            self._skip += 1
        if tag == "figure" and "chart" in (a.get("class") or ""):
            self.current = a.get("id") or "?"
            self.figures[self.current] = {"svg": 0, "pt": 0, "polyline": 0}
        if self.current is not None:
            if tag == "svg":
                self.figures[self.current]["svg"] += 1
            if tag == "polyline":
                self.figures[self.current]["polyline"] += 1
            if a.get("class") == "pt":
                self.figures[self.current]["pt"] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1
        if tag == "figure":
            self.current = None

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def seed_setup():  # type: ignore[no-untyped-def]
    return make_setup(load_model(LLAMA70), parse_hardware("4xH100-SXM"))


def seed_measurements(scale: float = 1.0) -> list[Measurement]:
    out = []
    for name, requested in (("prefill", None), ("decode", 900.0)):
        data = json.loads((SEED / f"{name}.json").read_text())["results"]
        out += [Measurement(int(b), v["avg_input_tokens"], v["avg_output_tokens"],
                            requested_output_tokens=requested, elapsed_s=v["elapsed_time"] * scale,
                            source=f"{name}.json[batch={b}]") for b, v in data.items()]
    return out


@pytest.fixture(scope="module")
def seed_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("report")
    html = out / "report.html"
    assert main(["report", *SEED_FILES, *SETUP_ARGS, "-o", str(html), "--plots", str(out / "plots")]) == 0
    return html.read_text(encoding="utf-8"), out


def test_seed_report_draws_every_chart_with_points(seed_report) -> None:  # type: ignore[no-untyped-def]
    html, _ = seed_report
    page = parse(html)
    assert set(page.figures) == {"chart-roofline", "chart-mfu", "chart-mbu", "chart-latency",
                                 "chart-throughput"}
    for name, marks in page.figures.items():
        assert marks["svg"] == 1, name
        assert marks["pt"] >= 6, name  # six batch sizes per phase in the seed
    # prefill and decode of six batches each; the roofline's polyline is the roof
    assert page.figures["chart-roofline"]["pt"] == 12
    assert page.figures["chart-roofline"]["polyline"] == 1


def test_seed_report_has_no_missing_value_words_and_fetches_nothing(seed_report) -> None:  # type: ignore[no-untyped-def]
    html, _ = seed_report
    page = parse(html)
    visible = " ".join(page.text)
    assert not BANNED.search(visible), BANNED.search(visible)
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert not [v for k, v in page.attrs if k == "src"]
    assert "default-src 'none'" in html  # the CSP forbids any fetch


def test_seed_report_shows_setup_tables_explanations_and_flags(seed_report) -> None:  # type: ignore[no-untyped-def]
    html, _ = seed_report
    text = " ".join(parse(html).text)
    setup = seed_setup()
    assert setup.peak_label in text
    assert "ridge 295 FLOP/B" in text
    assert "38.84 %" in text  # prefill MFU at batch 1, as analyze prints it
    assert "decode at batch 32 is memory-bound" in text
    assert "868.75 of 900 output tokens on average" in text
    assert "decode-time-estimated" in text
    assert "convention causal" in text and "mfubench " in text


def test_inline_svgs_parse_as_xml(seed_report) -> None:  # type: ignore[no-untyped-def]
    html, _ = seed_report
    svgs = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    assert len(svgs) == 5
    for drawing in svgs:
        root = ET.fromstring(drawing)
        assert root.tag.endswith("svg")


def test_roofline_chart_data_is_the_rows() -> None:
    setup = seed_setup()
    rows = analyze(setup, seed_measurements())
    chart = charts.roofline_chart(rows, setup)
    machine = setup.machine()
    assert machine is not None
    roof = next(s for s in chart.series if s.marker is None)
    # the roof bends at the ridge, at the peak
    assert any(p.x == pytest.approx(machine.ridge) and p.y == pytest.approx(machine.peak_flops)
               for p in roof.points)
    decode = next(s for s in chart.series if s.name.startswith("decode"))
    d1 = next(r for r in rows if r.phase == "decode" and r.batch_size == 1)
    assert d1.seconds is not None
    point = next(p for p in decode.points if p.label == "D1")
    assert point.x == pytest.approx(d1.arithmetic_intensity)
    assert point.y == pytest.approx(d1.flops_per_gpu / d1.seconds)
    assert point.hollow  # its decode time is estimated: flagged
    assert point.y < machine.memory_bandwidth * point.x  # below the memory roof
    assert chart.marks[0].x == pytest.approx(295.3, abs=0.1)


def test_latency_chart_divides_decode_seconds_by_steps() -> None:
    setup = seed_setup()
    rows = analyze(setup, seed_measurements())
    chart = charts.latency_chart(rows)
    step = next(s for s in chart.series if s.name == "decode time per step")
    d1 = next(r for r in rows if r.phase == "decode" and r.batch_size == 1)
    assert d1.seconds is not None
    assert step.points[0].y == pytest.approx(d1.seconds / 899)
    assert 0.01 < step.points[0].y < 0.03  # the seed's ~18 ms per step


def test_escaping_of_every_string_from_files(tmp_path: Path) -> None:
    results = tmp_path / "run.jsonl"
    header = {"type": "header", "schema_version": 1, "tool": "mfubench", "served_model": XSS,
              "engine_version": None, "args": {"note": XSS, "empty": None}}
    point = {"type": "point", "batch_size": 2, "input_tokens": 128, "output_tokens": 64,
             "elapsed_s": 1.5, "ttft_s": 0.2, "flags": [XSS]}
    results.write_text(json.dumps(header) + "\n" + json.dumps(point) + "\n")
    html_path = tmp_path / "r.html"
    assert main(["report", str(results), *SETUP_ARGS, "-o", str(html_path), "--title", XSS]) == 0
    html = html_path.read_text()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "script" not in parse(html).tags
    visible = " ".join(parse(html).text)
    assert not BANNED.search(visible), BANNED.search(visible)

    # a source name and a file path straight into the renderer
    setup = seed_setup()
    m = Measurement(1, 100.0, 10.0, elapsed_s=1.0, ttft_s=0.1, source=XSS)
    html = render_report(analyze(setup, [m]), setup, [Source(XSS, ("table.csv",), 1, {"x": XSS})],
                         title="t", generated_utc=XSS)
    assert XSS not in html and html.count("&lt;script&gt;") >= 3


def test_missing_values_render_as_dash(tmp_path: Path) -> None:
    """A table with TTFT only: decode has no time, its figures are missing, not 'None'."""
    table = tmp_path / "ttft.csv"
    table.write_text("batch_size,input_tokens,output_tokens,ttft_s\n1,512,32,0.05\n4,512,32,0.12\n")
    out = tmp_path / "r.html"
    assert main(["report", str(table), *SETUP_ARGS, "-o", str(out)]) == 0
    html = out.read_text()
    page = parse(html)
    visible = " ".join(page.text)
    assert not BANNED.search(visible), BANNED.search(visible)
    assert MISSING in visible
    assert "no decode timing" in visible
    assert "chart-roofline" in page.figures and page.figures["chart-roofline"]["pt"] == 2


def test_plots_png_and_svg(seed_report) -> None:  # type: ignore[no-untyped-def]
    _, out = seed_report
    plots = out / "plots"
    for name in ("roofline", "mfu", "mbu", "latency", "throughput"):
        png, svg = plots / f"{name}.png", plots / f"{name}.svg"
        assert png.stat().st_size > 10_000, name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        root = ET.parse(svg).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert len(list(root.iter())) > 100  # axes, ticks, markers: drawn, not an empty canvas


def test_tick_labels_and_ranges_are_finite() -> None:
    axis = charts.Axis("x", "flop/s")
    assert svg.ticks(axis, 1e12, 1e15) == [1e12, 1e13, 1e14, 1e15]
    assert svg.tick_label("flop/s", 1e15) == "1 PFLOP/s"
    assert svg.tick_label("fraction", 0.001) == "0.1 %"
    assert svg.ticks(charts.Axis("b", "batch"), 0.7, 45) == [1, 2, 4, 8, 16, 32]
    single = charts.Chart("c", "t", "c", charts.Axis("x", "flop/byte"), charts.Axis("y", "flop/s"),
                          (charts.Series("s", (charts.Point(10.0, 10.0),), "#000"),))
    for which in ("x", "y"):
        lo, hi = svg.axis_range(single, which)  # type: ignore[arg-type]
        assert 0 < lo < 10 < hi and math.isfinite(hi), which
    ET.fromstring(svg.to_svg(single))


def test_compare_two_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    faster = tmp_path / "faster"
    faster.mkdir()
    for name in ("prefill", "decode"):
        data = json.loads((SEED / f"{name}.json").read_text())
        for v in data["results"].values():
            v["elapsed_time"] *= 0.8
        del data["results"]["32"]  # a point only the first run has
        (faster / f"{name}.json").write_text(json.dumps(data))
    run_a = ",".join(SEED_FILES)
    run_b = f"{faster / 'prefill.json'},{faster / 'decode.json'}"
    out = tmp_path / "compare.html"
    assert main(["compare", run_a, run_b, *SETUP_ARGS, "--label", "before", "--label", "after",
                 "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in doc["runs"]] == ["before", "after"]
    pre1 = next(r for r in doc["rows"] if r["phase"] == "prefill" and r["batch_size"] == 1)
    before, after = pre1["runs"]
    assert after["mfu_ratio"] == pytest.approx(1.25)  # same work in 0.8 of the time
    assert after["seconds_ratio"] == pytest.approx(0.8)
    assert after["mfu"] == pytest.approx(before["mfu"] * 1.25)
    dec32 = next(r for r in doc["rows"] if r["phase"] == "decode" and r["batch_size"] == 32)
    assert dec32["runs"][1]["mfu"] is None and dec32["runs"][1]["mfu_ratio"] is None
    page = parse(out.read_text())
    assert {"chart-compare-mfu", "chart-compare-mbu", "chart-compare-latency"} <= set(page.figures)
    assert all(f["pt"] > 0 for f in page.figures.values())
    visible = " ".join(page.text)
    assert not BANNED.search(visible)
    assert "before" in visible and "after" in visible and MISSING in visible

    assert main(["compare", run_a, run_b, *SETUP_ARGS]) == 0
    terminal = capsys.readouterr().out
    assert "1.25x" in terminal and "B MFU x" in terminal  # same file names: runs A and B
    assert f"A: {run_a.replace(',', ', ')}" in terminal


def test_compare_needs_two_runs_and_one_label_each() -> None:
    with pytest.raises(MfubenchError, match="at least two runs"):
        from mfubench.cli import build_parser

        args = build_parser().parse_args(["compare", SEED_FILES[0], *SETUP_ARGS])
        args.func(args)
    assert main(["compare", SEED_FILES[0], SEED_FILES[1], *SETUP_ARGS, "--label", "one"]) == 2


def test_no_peak_for_the_dtype_leaves_out_mfu_charts_and_roofs(tmp_path: Path) -> None:
    """A100 has no fp8 peak: no MFU (so no such chart) and no roof, but its bandwidth still gives
    an MBU (bytes over seconds x bandwidth needs no FLOP/s), and no 'None' anywhere."""
    out = tmp_path / "r.html"
    assert main(["report", *SEED_FILES, "--model", LLAMA70, "--hardware", "4xA100-SXM-80GB",
                 "--dtype", "fp8", "-o", str(out), "--plots", str(tmp_path / "plots")]) == 0
    page = parse(out.read_text())
    assert set(page.figures) == {"chart-roofline", "chart-mbu", "chart-latency", "chart-throughput"}
    assert page.figures["chart-mbu"]["pt"] == 6
    assert page.figures["chart-roofline"]["polyline"] == 0  # points, no roof
    assert page.figures["chart-roofline"]["pt"] == 6  # decode has no time without a roofline
    visible = " ".join(page.text)
    assert not BANNED.search(visible) and "no fp8 peak" in visible
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "latency.png", "latency.svg", "mbu.png", "mbu.svg", "roofline.png", "roofline.svg",
        "throughput.png", "throughput.svg"]


def test_latency_percentiles_table_when_the_results_carry_them() -> None:
    setup = seed_setup()
    pct = {"ttft_s": {"p50": 0.4, "p90": 0.5, "p99": 0.6},
           "itl_s": {"p50": 0.012, "p90": 0.02, "p99": 0.03}}
    m = Measurement(2, 100, 5, ttft_s=0.5, itl_s=0.01, elapsed_s=0.6,
                    extra={"latency_percentiles": pct}, source="run.jsonl")
    html = render_report(analyze(setup, [m]), setup, [], generated_utc="2026-11-27T00:00:00Z")
    assert "Latency per request" in html
    assert "<td class=\"r\">400 ms</td>" in html and "<td class=\"r\">12 ms</td>" in html
    seed_only = render_report(analyze(setup, seed_measurements()), setup, [],
                              generated_utc="2026-11-27T00:00:00Z")
    assert "Latency per request" not in seed_only  # the seed has no per-request timings


def test_tables_name_the_parallel_layout(capsys: pytest.CaptureFixture[str]) -> None:
    """A TP4 DP2 deployment's tables say so; a plain TP replica keeps ``TP 4``; rows carry it."""
    assert main(["analyze", SEED_FILES[0], "--model", LLAMA70, "--hardware", "8xH100-SXM", "--tp", "4",
                 "--dp", "2"]) == 0
    out = capsys.readouterr().out
    assert "8xH100-SXM, TP4 DP2, convention" in out and "TP 4," not in out
    assert main(["analyze", SEED_FILES[0], "--model", LLAMA70, "--hardware", "8xH100-SXM", "--tp", "4",
                 "--dp", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["layout"] for r in rows} == {"TP4 DP2"}
    assert main(["analyze", SEED_FILES[0], "--model", LLAMA70, "--hardware", "4xH100-SXM", "--json"]) == 0
    assert {r["layout"] for r in json.loads(capsys.readouterr().out)["rows"]} == {""}
