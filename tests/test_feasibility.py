"""Points the layout could not have served are flagged and never shown as plain figures:
beyond the context (``exceeds-context``) or the memory (``exceeds-memory``), in every output."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from mfubench.analysis.explain import summary
from mfubench.analysis.feasibility import fit, longest_context_that_fits
from mfubench.analysis.measurement import Measurement
from mfubench.analysis.phases import analyze, make_setup
from mfubench.cli import main
from mfubench.commands.run import point_line
from mfubench.hardware.spec import parse_hardware
from mfubench.measure.sweep import PointResult
from mfubench.model.registry import load_model
from mfubench.report.units import ABOVE_PEAK_MARK

LLAMA70 = "meta-llama/Llama-3.3-70B-Instruct"
SETUP = ["--model", LLAMA70, "--hardware", "4xH100-SXM"]
#: batch 4096 at 2048 + 128 tokens (memory holds 206), a point past the 131,072-token context,
#: and a plain one. Seconds are the issue's: the first "reached" MFU 299 %.
TABLE = ("batch_size,input_tokens,output_tokens,ttft_s,itl_s\n"
         "4096,2048,128,40,0.02\n1,2048,100000000000,0.2,0.02\n8,2048,128,1.0,0.03\n")


def setup():  # type: ignore[no-untyped-def]
    return make_setup(load_model(LLAMA70), parse_hardware("4xH100-SXM"))


@pytest.fixture
def table(tmp_path: Path) -> str:
    path = tmp_path / "impossible.csv"
    path.write_text(TABLE)
    return str(path)


def test_memory_holds_206_sequences_of_2176_tokens_and_the_bisection_agrees() -> None:
    s = setup()
    assert fit(s, 2176).max_batch == 206
    assert longest_context_that_fits(s, 206) == 2176  # and 2177 does not fit
    assert fit(s, 2177).max_batch < 206
    assert longest_context_that_fits(s, 1) == 131_072  # the model's own limit comes first


def test_rows_beyond_memory_or_context_are_flagged_and_keep_their_figures() -> None:
    rows = analyze(setup(), [Measurement(4096, 2048, 128, ttft_s=40, itl_s=0.02),
                             Measurement(1, 2048, 1e11, ttft_s=0.2, itl_s=0.02),
                             Measurement(8, 2048, 128, ttft_s=1.0, itl_s=0.03)])
    big = [r for r in rows if r.batch_size == 4096]
    assert all(r.infeasible == ("exceeds-memory",) and not r.plain for r in big)
    memory_flag = [f for f in big[0].flags if f.startswith("exceeds-memory")][0]
    assert "memory holds 206 sequences of 2176 tokens" in memory_flag
    assert big[0].mfu is not None and big[0].mfu > 0  # kept, never dropped
    long = [r for r in rows if r.batch_size == 1]
    assert all("exceeds-context" in r.infeasible for r in long)
    assert "max_position_embeddings of 131072" in [f for f in long[0].flags if "context" in f][0]
    plain = [r for r in rows if r.batch_size == 8]
    assert all(r.plain and r.infeasible == () for r in plain)
    lines = summary(rows)
    assert any("could not have happened" in line and "exceeds-memory" in line
               and "exceeds-context" in line for line in lines)
    prefill = [line for line in lines if line.startswith("prefill:")][0]
    assert "best at batch 8" in prefill  # the ranges are over the plain rows only
    assert "not utilisations" in big[0].explanation
    over = [f for f in big[0].flags if f.startswith("above-peak")]  # MFU 740 %: and why
    assert over and over[0].split("Likely ", 1)[1].startswith("a point the layout cannot hold")


def test_the_engines_max_model_len_comes_before_the_models() -> None:
    s = make_setup(load_model(LLAMA70), parse_hardware("4xH100-SXM"), max_model_len=4096)
    (row,) = [r for r in analyze(s, [Measurement(1, 4000, 100, ttft_s=0.2)]) if r.phase == "prefill"]
    assert row.infeasible == ("exceeds-context",)
    assert "the engine's max_model_len of 4096" in row.flags[-1]


def test_every_output_marks_them(table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", table, *SETUP, "--markdown"]) == 0
    md = capsys.readouterr().out
    line = [ln for ln in md.splitlines() if ln.startswith("| 4096 |")][0]
    assert line.count(ABOVE_PEAK_MARK) >= 2 and "exceeds-memory" in line  # MFU and MBU marked
    plain = [ln for ln in md.splitlines() if ln.startswith("| 8 |")][0]
    assert ABOVE_PEAK_MARK not in plain
    assert "could not have happened" in md
    assert main(["analyze", table, *SETUP, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {tuple(r["infeasible"]) for r in rows if r["batch_size"] == 4096} == {("exceeds-memory",)}
    assert main(["analyze", table, *SETUP, "--csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert all("exceeds-context" in r["infeasible"].split("; ") for r in parsed if r["batch_size"] == "1")
    page = tmp_path / "r.html"
    assert main(["report", table, *SETUP, "-o", str(page)]) == 0
    capsys.readouterr()
    html = page.read_text()
    titles = [t for t in html.split('class="above-peak" title="')[1:]]
    assert titles and all("exceeds-" in t.split('">')[0] for t in titles)  # every marked cell says why
    assert "<b>exceeds-context</b>" in html and "<b>exceeds-memory</b>" in html
    assert f"{ABOVE_PEAK_MARK} exceeds-memory" in html  # the chart labels the point
    other = tmp_path / "b.csv"
    other.write_text(TABLE)
    assert main(["compare", table, str(other), *SETUP, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert any(run["infeasible"] == ["exceeds-memory"] for r in doc["rows"] for run in r["runs"])


def test_the_live_line_and_roofline_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    rows = analyze(setup(), [Measurement(4096, 2048, 128, ttft_s=40, itl_s=0.02)])
    line = point_line(PointResult((4096, 2048, 128), None, [r.to_dict() for r in rows], (), ()))
    assert f"% {ABOVE_PEAK_MARK}" in line and "exceeds-memory" in line
    assert main(["roofline", LLAMA70, "--hardware", "4xH100-SXM", "-b", "1,206,4096", "-i", "2048",
                 "-o", "128", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    flags = {p["batch_size"]: p["flags"] for p in doc["points"]}
    assert flags[1] == [] and flags[206] == [] and flags[4096][0].startswith("exceeds-memory")
    assert doc["longest_context_by_batch"] == {"1": 131072, "206": 2176, "4096": 109}
    assert doc["limits_by_context"]["2176"]["max_batch"] == 206
    assert main(["roofline", LLAMA70, "--hardware", "4xH100-SXM", "-b", "4096", "-i", "2048"]) == 0
    out = capsys.readouterr().out
    assert "longest context that fits in memory" in out and f"{ABOVE_PEAK_MARK} batch 4096" in out
