"""``mfubench run`` against a synthetic server (no model) that misbehaves on purpose.

Each test starts ``python -m mfubench.measure.synthetic_server`` with a fault on a chosen
request and runs ``mfubench run`` as a subprocess, as a user would: no traceback, one clear
line, a non-zero exit where the run cannot go on, every finished point on disk, and
``--resume`` measuring only what is missing. Also: the self-check's pieces, the multi-process
client, and an API key that must never reach any output.

Request numbers: with the grid below (batch 1 then 2, no warm-up, one repeat), request 1 is
point (1, 8, 4) and requests 2–3 are point (2, 8, 4).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mfubench.measure.client import CompletionClient
from mfubench.measure.multiproc import ClientPool
from mfubench.measure.results_log import read_results
from mfubench.measure.selfcheck import LoopLagProbe, send_batch
from mfubench.measure.sweep import RoundResult, build_point
from mfubench.measure.synthetic_server import (
    MODEL_NAME,
    SyntheticConfig,
    SyntheticServer,
    parse_fault,
)
from mfubench.measure.tiny_model import TEST, llama_config

GRID = ["--batch-sizes", "1,2", "--input-tokens", "8", "--output-tokens", "4", "--repeats", "1", "--warmup", "0"]
POINTS = {(1, 8, 4), (2, 8, 4)}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "config.json"
    path.write_text(json.dumps(llama_config(TEST)))
    return path


@contextmanager
def server(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The synthetic server as a subprocess (so that it can be killed); yields URL and process."""
    port_file = tmp / f"port-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-m", "mfubench.measure.synthetic_server", "--port-file", str(port_file),
                             "--itl-ms", "2", *args], env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "synthetic server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port_file.read_text()}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)


def mfubench(url: str, config: Path, out: Path, *extra: str, env: dict[str, str] | None = None,
             grid: list[str] = GRID) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mfubench.cli", "run", "--endpoint", url, "--model", str(config),
           "--hardware", "h100-sxm", *grid, "--out", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def assert_clean_failure(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """A non-zero exit with one ``mfubench: error:`` line naming ``words``; no traceback."""
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode == code, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("mfubench: ")]
    assert len(errors) == 1, done.stderr
    for word in words:
        assert word in errors[0]
    return errors[0]


def requests_of(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.read_text().splitlines() if '"type":"request"' in line]


def resume_measures_only_the_missing(url: str, config: Path, out: Path, missing: set[tuple[int, int, int]]) -> None:
    before = read_results(out)
    done = mfubench(url, config, out, "--resume")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    after = read_results(out)
    assert set(after.points) == POINTS
    assert {k: before.points[k] for k in before.points} == {k: after.points[k] for k in before.points}
    new = requests_of(out)[len(requests_of(out)) - (after.requests - before.requests):]
    assert {tuple(r["point"]) for r in new} == missing  # type: ignore[arg-type]


# --- faults that end the run ---------------------------------------------------------------

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("http500@2", ("HTTP 500", "synthetic http500", "point batch=2")),
        ("abort@2", ("server closed the stream", "point batch=2")),
        ("kill@2", ("point batch=2", "1 finished points")),
    ],
)
def test_a_run_that_cannot_go_on_stops_cleanly_and_resumes(config: Path, tmp_path: Path, fault: str,
                                                            words: tuple[str, ...]) -> None:
    out = tmp_path / "r.jsonl"
    with server(tmp_path, "--fault", fault) as (url, _):
        done = mfubench(url, config, out)
    assert_clean_failure(done, 3, *words)
    assert set(read_results(out).points) == {(1, 8, 4)}
    with server(tmp_path) as (url, _):
        resume_measures_only_the_missing(url, config, out, {(2, 8, 4)})


@pytest.mark.parametrize("status", [429, 503])
def test_busy_answers_are_retried_and_recorded(config: Path, tmp_path: Path, status: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.jsonl"
    with server(tmp_path, "--fault", f"http{status}@2") as (url, _):
        done = mfubench(url, config, out)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    point = read_results(out).points[(2, 8, 4)]
    assert point["measurement"]["extra"]["repeats"][0]["retries"] == 1
    retried = [r for r in requests_of(out) if r.get("retried")]
    assert [r["http_status"] for r in retried] == [status, None]  # the batch went again, whole


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("truncate@2", "stream ended without [DONE]"),
        ("malformed@2", "malformed chunk (not JSON)"),
        ("hang@2", "no complete answer within 2 s"),
    ],
)
def test_a_broken_stream_flags_its_point_and_the_run_goes_on(config: Path, tmp_path: Path, fault: str,
                                                             error: str) -> None:
    out = tmp_path / "r.jsonl"
    with server(tmp_path, "--fault", fault) as (url, _):
        done = mfubench(url, config, out, "--timeout", "2")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "left out: batch 2 input 8 output 4: request_errors" in done.stderr
    points = read_results(out).points
    assert set(points) == POINTS and "request_errors" in points[(2, 8, 4)]["flags"]
    assert [r["error"].startswith(error) for r in requests_of(out) if r["error"]] == [True]


def test_a_chunk_of_several_megabytes_is_read_whole(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with server(tmp_path, "--fault", "huge@2") as (url, _):
        done = mfubench(url, config, out)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert all(r["error"] is None and r["output_tokens"] == 4 for r in requests_of(out))


def test_sigint_stops_the_run_cleanly_and_resume_finishes_it(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    grid = ["--batch-sizes", "1,2", "--input-tokens", "8", "--output-tokens", "4,200", "--repeats", "1",
            "--warmup", "0"]
    with server(tmp_path, "--itl-ms", "20") as (url, _):
        cmd = [sys.executable, "-m", "mfubench.cli", "run", "--endpoint", url, "--model", str(config),
               "--hardware", "h100-sxm", *grid, "--out", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (out.exists() and '"type":"point"' in out.read_text()):  # a point is finished
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
        assert_clean_failure(done, 130, "interrupted")
        before = read_results(out)
        assert before.points and len(before.points) < 4
        again = mfubench(url, config, out, "--resume", grid=grid)
    assert again.returncode == 0, again.stderr
    after = read_results(out)
    assert len(after.points) == 4 and all(after.points[k] == before.points[k] for k in before.points)


# --- secrets --------------------------------------------------------------------------------


def test_the_api_key_reaches_no_output(config: Path, tmp_path: Path) -> None:
    secret = "sk-planted-3b1e94c0ffee"
    env = {"SYNTH_KEY": secret}
    work = tmp_path / "work"
    work.mkdir()
    out = work / "r.jsonl"
    with server(tmp_path, "--api-key-env", "SYNTH_KEY", env=env) as (url, _):
        refused = mfubench(url, config, work / "no-key.jsonl")
        assert_clean_failure(refused, 3, "HTTP 401")  # the server does demand it
        ran = mfubench(url, config, out, "--api-key-env", "SYNTH_KEY", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    outputs = [refused.stdout, refused.stderr, ran.stdout, ran.stderr]
    cli = [sys.executable, "-m", "mfubench.cli"]
    model = ["--model", str(config), "--hardware", "h100-sxm"]
    for args in (["report", str(out), *model, "-o", str(work / "report.html"), "--plots", str(work / "plots")],
                 ["analyze", str(out), *model, "--json"]):
        done = subprocess.run([*cli, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env})
        assert done.returncode == 0, done.stderr
        outputs += [done.stdout, done.stderr]
    files = [p for p in work.rglob("*") if p.is_file()]
    assert out in files and any(p.suffix == ".html" for p in files)
    assert all(secret not in text for text in outputs)
    assert all(secret.encode() not in p.read_bytes() for p in files)


# --- the self-check and the multi-process client ---------------------------------------------


def test_loop_lag_probe_sees_a_blocked_loop() -> None:
    async def go() -> float:
        async with LoopLagProbe() as probe:
            await asyncio.sleep(0.01)
            time.sleep(0.05)  # the client busy for 50 ms
            await asyncio.sleep(0.01)
        return probe.worst_s

    assert asyncio.run(go()) >= 0.04


def test_one_stall_is_not_a_saturated_client() -> None:
    """One 30 ms stall in ~150 ticks shows in the worst lag, not at the 90th percentile; a loop
    busy most of the time shows in both."""

    async def stalled_once() -> LoopLagProbe:
        async with LoopLagProbe() as probe:
            await asyncio.sleep(0.15)
            time.sleep(0.03)
            await asyncio.sleep(0.15)
        return probe

    async def busy() -> LoopLagProbe:
        async with LoopLagProbe() as probe:
            for _ in range(20):
                time.sleep(0.01)  # the loop never gets a moment
                await asyncio.sleep(0)
        return probe

    once = asyncio.run(stalled_once())
    assert once.worst_s >= 0.02 and once.p90_s < 0.005
    assert asyncio.run(busy()).p90_s >= 0.005


def test_a_round_where_the_client_was_late_is_flagged_client_bound() -> None:
    def analyze(m: object) -> list[dict[str, object]]:
        return [{"phase": "total"}]

    on_time = RoundResult((), None, loop_lag_s=0.001, send_lag_s=0.001)
    late_loop = RoundResult((), None, loop_lag_s=0.02, send_lag_s=0.0)
    late_send = RoundResult((), None, loop_lag_s=0.0, send_lag_s=0.02)
    assert not on_time.client_bound and late_loop.client_bound and late_send.client_bound
    assert "client-bound" not in build_point((1, 8, 4), [on_time], analyze).flags
    assert "client-bound" in build_point((1, 8, 4), [on_time, late_send], analyze).flags


def test_client_processes_share_a_batch_on_one_clock() -> None:
    with SyntheticServer(SyntheticConfig(itl_s=0.002)) as srv, ClientPool(srv.url, procs=2, model=MODEL_NAME) as pool:

        async def go() -> tuple[object, object]:
            prompts = [[1000 + k] * 8 for k in range(6)]
            async with CompletionClient(srv.url, model=MODEL_NAME) as client:
                one = await send_batch(client, prompts, 5)
            return one, await pool.send_batch(prompts, 5)

        one, many = asyncio.run(go())
    for batch in (one, many):
        records = batch.records  # type: ignore[attr-defined]
        assert len(records) == 6 and all(r.exact and r.batch_size == 6 for r in records)
        assert [r.input_tokens for r in records] == [8] * 6
        due = batch.due_s  # type: ignore[attr-defined]
        # every send after the due time, on the clock of this process
        assert all(r.sent_s >= due for r in records) and batch.send_lag_s >= 0  # type: ignore[attr-defined]


def test_run_with_client_processes_measures_exact_counts(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    grid = ["--batch-sizes", "5", "--input-tokens", "8", "--output-tokens", "4", "--repeats", "1", "--warmup", "1"]
    with server(tmp_path) as (url, _):
        done = mfubench(url, config, out, "--client-procs", "2", grid=grid)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    requests = requests_of(out)
    assert len(requests) == 5 and all(r["error"] is None and r["output_tokens"] == 4 for r in requests)
    point = read_results(out).points[(5, 8, 4)]
    assert "request_errors" not in point["flags"] and point["measurement"]["ttft_s"] > 0


def test_fault_specs_parse_and_reject_nonsense() -> None:
    assert parse_fault("http503@4+").matches(9) and not parse_fault("http503@4").matches(9)
    with pytest.raises(ValueError, match="kind must be one of"):
        parse_fault("explode@1")
