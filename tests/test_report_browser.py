"""The seed's report opened in headless Chromium from a file:// URL: no console message (the
report has no script, so any message is an error: a blocked fetch, a parse error), every chart
in the rendered DOM with its points, and the charts' colours on the screenshot.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped where it is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mfubench.cli import main
from mfubench.report.charts import PHASE_COLORS

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SEED = Path(__file__).parent / "data" / "seed"
CHARTS = ("roofline", "mfu", "mbu", "latency", "throughput")


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (Debian) to run this test")
    shutil.rmtree(profile, ignore_errors=True)
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--hide-scrollbars", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (Debian) to run this test")
    out = tmp_path_factory.mktemp("browser") / "report.html"
    assert main(["report", str(SEED / "prefill.json"), str(SEED / "decode.json"),
                 "--model", "meta-llama/Llama-3.3-70B-Instruct", "--hardware", "4xH100-SXM",
                 "-o", str(out)]) == 0
    return out


def test_console_check_sees_errors(tmp_path: Path) -> None:
    """The harness itself: a page that throws must show up, or the next test proves nothing."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>throw new Error('boom')</script></body></html>")
    result = chromium(bad.as_uri(), tmp_path / "profile", "--dump-dom")
    assert any("boom" in line for line in console_messages(result.stderr)), result.stderr[-2000:]


def test_report_dom_has_every_chart_and_no_console_error(report: Path, tmp_path: Path) -> None:
    result = chromium(report.as_uri(), tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_messages(result.stderr) == []
    dom = result.stdout
    for name in CHARTS:
        figure = re.search(rf'<figure class="chart[^"]*" id="chart-{name}">(.*?)</figure>', dom, re.S)
        assert figure, name
        assert "<svg" in figure.group(1), name
        assert len(re.findall(r'class="pt"', figure.group(1))) >= 6, name
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(style|title)>.*?</\1>", " ", dom, flags=re.S))
    assert not re.search(r"\b(NaN|None|null|undefined|inf|Infinity)\b", text)


def test_report_screenshot_shows_the_charts(report: Path, tmp_path: Path) -> None:
    from PIL import Image  # matplotlib's dependency

    shot = tmp_path / "shot.png"
    result = chromium(report.as_uri(), tmp_path / "profile", f"--screenshot={shot}",
                      "--window-size=1400,3000")
    assert shot.exists() and shot.stat().st_size > 50_000, result.stderr[-2000:]
    assert console_messages(result.stderr) == []
    image = Image.open(shot).convert("RGB")
    colours = {c for _, c in image.getcolors(maxcolors=1 << 20) or []}
    for phase in ("prefill", "decode"):
        rgb = tuple(int(PHASE_COLORS[phase][i:i + 2], 16) for i in (1, 3, 5))
        assert rgb in colours, f"no {phase} marker pixels drawn"


def test_compare_page_in_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (Debian) to run this test")
    out = tmp_path / "compare.html"
    run = f"{SEED / 'prefill.json'},{SEED / 'decode.json'}"
    assert main(["compare", run, run, "--label", "a", "--label", "b", "--model",
                 "meta-llama/Llama-3.3-70B-Instruct", "--hardware", "4xH100-SXM", "-o", str(out)]) == 0
    result = chromium(out.as_uri(), tmp_path / "profile", "--dump-dom")
    assert console_messages(result.stderr) == []
    figures = re.findall(r'<figure class="chart[^"]*" id="chart-(compare-[a-z]+)">(.*?)</figure>',
                         result.stdout, re.S)
    assert [name for name, _ in figures] == ["compare-mfu", "compare-mbu", "compare-latency"]
    assert all('class="pt"' in body for _, body in figures)


def test_load_report_in_chromium(tmp_path: Path) -> None:
    """A report under load (the live vllm bench runs at two concurrencies and a rate): the
    charts against the level and the Pareto view render, with no console message."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (Debian) to run this test")
    import json

    from mfubench.measure.tiny_model import TEST, llama_config
    from test_report_load import variant

    config = tmp_path / "config.json"
    config.write_text(json.dumps(llama_config(TEST)))
    files = [variant(tmp_path, "live_concurrency", "max_concurrency", c, lat, dur)
             for c, lat, dur in ((2, 0.9, 1.8), (4, 1.0, 1.0), (8, 1.3, 0.65))]
    files.append(variant(tmp_path, "live_rate", "request_rate", 20, 1.0, 1.0))
    out = tmp_path / "load.html"
    assert main(["report", *map(str, files), "--model", str(config), "--hardware", "H100-SXM",
                 "--convention", "vllm", "-o", str(out)]) == 0
    result = chromium(out.as_uri(), tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_messages(result.stderr) == []
    figures = dict(re.findall(r'<figure class="chart[^"]*" id="chart-(load-[a-z-]+)">(.*?)</figure>',
                              result.stdout, re.S))
    assert {"load-mfu-concurrency", "load-tpot-rate", "load-pareto"} <= set(figures)
    assert len(re.findall(r'class="pt"', figures["load-pareto"])) == 4
    assert "Pareto frontier" in figures["load-pareto"]
