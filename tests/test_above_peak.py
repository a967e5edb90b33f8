"""The above-peak invariant: a measurement that beats the peak keeps its figures, carries the
``above-peak`` flag with its likely cause, and is never shown as a plain figure, in any output:
terminal, markdown, CSV, JSON, the HTML report, compare, the live run line and the summary."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from types import MappingProxyType

import pytest

from mfubench.analysis.above_peak import ABOVE_PEAK, above_peak
from mfubench.analysis.explain import summary
from mfubench.analysis.measurement import Measurement
from mfubench.analysis.phases import analyze, make_setup
from mfubench.cli import main
from mfubench.commands.run import point_line
from mfubench.hardware.calibrate import Calibration
from mfubench.hardware.spec import HardwareSpec, cpu_accelerator, parse_hardware
from mfubench.measure.sweep import PointResult
from mfubench.model.registry import load_model
from mfubench.report import charts
from mfubench.report.units import ABOVE_PEAK_MARK

LLAMA70 = "meta-llama/Llama-3.3-70B-Instruct"
SETUP = ["--model", LLAMA70, "--hardware", "4xH100-SXM"]
#: Batch 8 x 2048 tokens of Llama 3.3 70B is 2.29 PFLOP: in 0.5 s that is 4.6 PFLOP/s on four
#: H100s whose dense bf16 peak is 3.96 PFLOP/s together: physically impossible (MFU 115.6 %).
#: Batch 1 in 0.5 s is 14 %: within the peak. Decode: ITL 1 ms streams 141 GB per step through
#: 3.35 TB/s per GPU: MBU over 1000 %.
TABLE = ("batch_size,input_tokens,output_tokens,ttft_s,itl_s\n"
         "8,2048,1,0.5,\n1,2048,1,0.5,\n1,2048,64,0.5,0.001\n")


@pytest.fixture
def table(tmp_path: Path) -> str:
    path = tmp_path / "beats.csv"
    path.write_text(TABLE)
    return str(path)


def _rows():  # type: ignore[no-untyped-def]
    setup = make_setup(load_model(LLAMA70), parse_hardware("4xH100-SXM"))
    points = [Measurement(8, 2048, 1, ttft_s=0.5), Measurement(1, 2048, 1, ttft_s=0.5),
              Measurement(1, 2048, 64, ttft_s=0.5, itl_s=0.001)]
    return setup, analyze(setup, points)


def test_a_row_above_the_peak_keeps_its_figures_and_is_flagged() -> None:
    _, rows = _rows()
    over = [r for r in rows if r.phase == "prefill" and r.batch_size == 8][0]
    assert over.mfu is not None and 1.1 < over.mfu < 1.2  # kept, never clamped
    assert over.above_peak == ("mfu", "efficiency") == above_peak(over)
    flag = [f for f in over.flags if f.startswith(ABOVE_PEAK)]
    assert len(flag) == 1 and "MFU 115.6 %" in flag[0] and "datasheet" in flag[0]
    assert "time that does not cover the work" in flag[0]  # a datasheet peak: time first
    within = [r for r in rows if r.phase == "prefill" and r.batch_size == 1][0]
    assert within.above_peak == () and not any(f.startswith(ABOVE_PEAK) for f in within.flags)
    decode = [r for r in rows if r.phase == "decode"][0]
    assert "mbu" in decode.above_peak and "bandwidth below what was served" in decode.flags[-1]
    assert "not utilisations" in over.explanation and ABOVE_PEAK_MARK in over.explanation


def test_the_summary_says_so_in_words_and_its_ranges_stay_within_the_peak() -> None:
    _, rows = _rows()
    lines = summary(rows)
    assert any("row(s) are above the peak" in line and "prefill b=8" in line for line in lines)
    prefill = [line for line in lines if line.startswith("prefill:")][0]
    assert "115" not in prefill and "over the 2 of 3 rows that are plain figures" in prefill
    decode = [line for line in lines if line.startswith("decode:")][0]
    assert decode.startswith("decode: every row is above the peak")


def test_a_beaten_measured_peak_points_at_the_calibration() -> None:
    calibration = Calibration("test CPU", 1, MappingProxyType({"bf16": 1e9}), 1e12,
                              "2026-12-01T00:00:00+00:00", "test", "test")
    hw = HardwareSpec(cpu_accelerator(calibration, 64e9), 1, calibration)
    setup = make_setup(load_model("Qwen/Qwen3-8B"), hw)
    row = analyze(setup, [Measurement(1, 512, 1, ttft_s=1.0)])[0]
    assert row.above_peak and row.peak_source == "measured"
    likely = row.flags[-1].split("Likely ", 1)[1]
    assert likely.startswith("a measured bf16 peak below what the run reached")
    assert "mfubench calibrate --model M --dtypes bf16" in likely


def test_terminal_and_markdown_mark_the_figure(table: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", table, *SETUP]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"│ 115\.\d\d % {ABOVE_PEAK_MARK} │", out)  # MFU of the batch-8 prefill
    assert re.search(rf"│ 1042\.\d % {ABOVE_PEAK_MARK} │", out)  # MBU of the decode
    assert not re.search(r"│ 1\d\d\.\d\d? % │", out)  # no figure above 100 % without the mark
    assert "not a utilisation: above 100 % of the peak" in out.replace("\n", " ")
    assert "row(s) are above the peak" in out
    assert main(["analyze", table, *SETUP, "--markdown"]) == 0
    md = capsys.readouterr().out
    line = [ln for ln in md.splitlines() if ln.startswith("| 8 |")][0]
    assert ABOVE_PEAK_MARK in line and "above-peak" in line
    plain_within = [ln for ln in md.splitlines() if ln.startswith("| 1 | 2048 | 1 |")][0]
    assert ABOVE_PEAK_MARK not in plain_within


def test_json_and_csv_carry_the_figure_the_list_and_the_flag(table: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", table, *SETUP, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    over = [r for r in rows if r["phase"] == "prefill" and r["batch_size"] == 8][0]
    assert over["mfu"] > 1 and over["above_peak"] == ["mfu", "efficiency"]
    assert any(f.startswith(ABOVE_PEAK) for f in over["flags"])
    for r in rows:  # the invariant: every figure above 1 is named and flagged
        for key in ("mfu", "mbu", "efficiency"):
            if r[key] is not None and r[key] > 1:
                assert key in r["above_peak"] and any(f.startswith(ABOVE_PEAK) for f in r["flags"])
    assert main(["analyze", table, *SETUP, "--csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    over_csv = [r for r in parsed if r["phase"] == "prefill" and r["batch_size"] == "8"][0]
    assert over_csv["above_peak"] == "mfu; efficiency" and ABOVE_PEAK in over_csv["flags"]
    assert float(over_csv["mfu"]) > 1


def test_html_report_marks_cells_charts_and_lists_the_flag(table: str, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", table, *SETUP, "-o", str(out)]) == 0
    html = out.read_text()
    assert 'class="above-peak"' in html and "above-peak-legend" in html
    assert f"{ABOVE_PEAK_MARK} above peak" in html  # the chart labels the point itself
    assert "row(s) are above the peak" in html
    assert "<b>above-peak</b>" in html  # the flags section


def test_compare_marks_terminal_json_and_html(table: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.csv"
    other.write_text(TABLE)
    page = tmp_path / "compare.html"
    assert main(["compare", table, str(other), *SETUP, "-o", str(page)]) == 0
    out = capsys.readouterr().out
    assert ABOVE_PEAK_MARK in out and "not a utilisation: above 100 %" in out.replace("\n", " ")
    assert 'class="above-peak"' in page.read_text()
    assert main(["compare", table, str(other), *SETUP, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    over = [r for r in doc["rows"] if r["phase"] == "prefill" and r["batch_size"] == 8][0]
    assert all(run["above_peak"] == ["mfu", "efficiency"] for run in over["runs"])


def test_the_live_run_line_marks_it() -> None:
    _, rows = _rows()
    point = PointResult((8, 2048, 1), None, [r.to_dict() for r in rows if r.batch_size == 8], (), ())
    line = point_line(point)
    assert f"% {ABOVE_PEAK_MARK}" in line and "above the peak" in line


def test_charts_label_points_above_one() -> None:
    setup, rows = _rows()
    mfu_chart = charts.utilization_charts(rows, setup)[0]
    labels = {p.label for s in mfu_chart.series for p in s.points if p.y > 1}
    assert labels == {f"{ABOVE_PEAK_MARK} above peak"}
