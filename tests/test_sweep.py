"""The sweep engine and ``mfubench run`` against a synthetic OpenAI-compatible server (no model).

The synthetic server streams exactly the tokens asked for (or fewer, or fails, on request),
exports vLLM-named counters on ``/metrics`` and, like vLLM, updates them a little after it
sends ``[DONE]``, so the sweep must wait for them to settle.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mfubench import cli
from mfubench.analysis.measurement import Measurement
from mfubench.commands import argtypes
from mfubench.commands import run as run_command
from mfubench.errors import InputFileError, InputFileWarning, ServerError
from mfubench.measure.client import CompletionClient
from mfubench.measure.results_log import ResultsLog, read_results
from mfubench.measure.sweep import PointResult, SweepPlan, run_sweep

LOAD_FLAGS = {"merged_first_chunk", "client-bound"}
FLOPS_PER_PROMPT_TOKEN = 1000
FLOPS_PER_OUTPUT_TOKEN = 10


@dataclass
class Behaviour:
    """What the synthetic server does; tests change it between runs."""

    short_by: int = 0  # generate this many tokens fewer than asked, finishing with "stop"
    fail_from_request: int | None = None  # answer HTTP 500 from this request number on
    hang_request: int | None = None  # never answer this request number
    extra_generation_tokens: int = 0  # other traffic: counted on /metrics, not streamed to us
    counter_delay_s: float = 0.03  # counters move this long after [DONE]
    metrics_status: int = 200  # 404: a server without /metrics
    merge_first: bool = False  # send the first two tokens in one chunk
    requests: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=lambda: {"prompt": 0.0, "gen": 0.0, "flops": 0.0, "n": 0.0})


class SyntheticServer:
    """A synthetic streaming server on a thread of its own (so a client can use asyncio.run)."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/completions", self._complete)
        app.router.add_get("/v1/models", self._json({"data": [{"id": "synthetic"}]}))
        app.router.add_get("/version", self._json({"version": "0.0-synthetic"}))
        app.router.add_get("/health", self._json({}))
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    @staticmethod
    def _json(obj: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(obj)

        return handler

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        b = self.behaviour
        b.requests += 1
        number = b.requests
        body = await request.json()
        b.bodies.append(body)
        if b.fail_from_request is not None and number >= b.fail_from_request:
            return web.json_response({"error": {"message": "synthetic failure"}}, status=500)
        if b.hang_request == number:
            await asyncio.sleep(3600)
        prompt, asked = len(body["prompt"]), int(body["max_tokens"])
        out = max(1, asked - b.short_by)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        ids = [[100 + k] for k in range(out)]
        if b.merge_first and out > 1:
            ids[:2] = [ids[0] + ids[1]]
        for n, token_ids in enumerate(ids):
            await asyncio.sleep(0.002)
            finish = None if n < len(ids) - 1 else ("length" if out == asked else "stop")
            chunk = {"choices": [{"index": 0, "text": "t", "token_ids": token_ids, "finish_reason": finish}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        usage = {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": out}}
        await resp.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        self._loop.call_later(b.counter_delay_s, self._count, prompt, out + b.extra_generation_tokens)
        return resp

    def _count(self, prompt: int, out: int) -> None:
        c = self.behaviour.counters
        c["prompt"] += prompt
        c["gen"] += out
        c["flops"] += FLOPS_PER_PROMPT_TOKEN * prompt + FLOPS_PER_OUTPUT_TOKEN * out
        c["n"] += 1

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.behaviour.metrics_status != 200:
            return web.Response(status=self.behaviour.metrics_status)
        c = self.behaviour.counters
        labels = '{engine="0",model_name="synthetic"}'
        text = (
            f"# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{labels} {c['prompt']}\n"
            f"vllm:generation_tokens_total{labels} {c['gen']}\n"
            f"vllm:estimated_flops_per_gpu_total{labels} {c['flops']}\n"
            f"vllm:estimated_read_bytes_per_gpu_total{labels} {2 * c['flops']}\n"
            f"vllm:estimated_write_bytes_per_gpu_total{labels} {c['n']}\n"
            f"vllm:request_prefill_time_seconds_sum{labels} {0.01 * c['n']}\n"
            f"vllm:request_prefill_time_seconds_count{labels} {c['n']}\n"
        )
        return web.Response(text=text)

    def close(self) -> None:
        async def stop() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def synthetic() -> Iterator[SyntheticServer]:
    server = SyntheticServer()
    yield server
    server.close()


def analyze(m: Measurement) -> list[dict[str, Any]]:
    return [{"phase": "total", "seconds": m.elapsed_s, "server_flops": m.server_flops}]


def sweep(url: str, plan: SweepPlan, out: Path, timeout_s: float = 30.0) -> list[PointResult]:
    async def go() -> list[PointResult]:
        async with CompletionClient(url, model="synthetic", timeout_s=timeout_s) as client:
            with ResultsLog(out) as log:
                log.write({"type": "header", "schema_version": 1})
                return await run_sweep(client, plan, analyze, log, token_range=(1000, 2000), rng=random.Random(0))

    return asyncio.run(go())


def flags(p: PointResult) -> tuple[str, ...]:
    """The point's flags, less those a loaded machine may add anywhere (stream merging, and the
    client's self-check finding itself late)."""
    return tuple(f for f in p.flags if f not in LOAD_FLAGS)


PLAN = SweepPlan(batch_sizes=(1, 3), input_tokens=(5, 9), output_tokens=(1, 4), repeats=2, warmup=1)


def test_sweep_measures_every_point_with_settled_counters(synthetic: SyntheticServer, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    results = sweep(synthetic.url, PLAN, out)
    assert [p.key for p in results] == PLAN.points()
    for p in results:
        b, i, o = p.key
        m = p.measurement
        assert set(p.flags) <= LOAD_FLAGS and m is not None  # a loaded CI may merge
        # the counters moved after [DONE]; the window still holds exactly this batch's work
        assert m.server_flops == b * (FLOPS_PER_PROMPT_TOKEN * i + FLOPS_PER_OUTPUT_TOKEN * o)
        assert m.server_read_bytes == 2 * m.server_flops and m.server_write_bytes == b
        assert m.extra["server"]["prefill_time_s"] == pytest.approx(0.01)
        assert (m.input_tokens, m.output_tokens, m.requested_output_tokens) == (i, o, o)
        assert m.ttft_s is not None and m.elapsed_s is not None and m.ttft_s <= m.elapsed_s
        assert (m.itl_s is None) == (o == 1 or m.extra["merged_token_fraction"] == 1.0)
        assert len(m.extra["repeats"]) == PLAN.repeats
        assert p.rows == [{"phase": "total", "seconds": m.elapsed_s, "server_flops": m.server_flops,
                           "batch_size": b, "input_tokens": i, "output_tokens": o}]
    written = read_results(out)
    assert set(written.points) == set(PLAN.points())
    assert written.requests == sum(b * PLAN.repeats for b, _, _ in PLAN.points())
    sent = synthetic.behaviour.bodies
    assert len(sent) == sum(b * (PLAN.repeats + PLAN.warmup) for b, _, _ in PLAN.points())
    prompts = [tuple(body["prompt"]) for body in sent]
    assert len(set(prompts)) == len(prompts)  # fresh ids per request, warm-up included
    assert all(body["max_tokens"] == body["min_tokens"] and body["ignore_eos"] for body in sent)


def test_short_outputs_are_flagged_and_carried_to_the_rows(synthetic: SyntheticServer, tmp_path: Path) -> None:
    synthetic.behaviour.short_by = 1
    plan = SweepPlan((2,), (5,), (4,), repeats=1, warmup=0)
    (p,) = sweep(synthetic.url, plan, tmp_path / "r.jsonl")
    assert flags(p) == ("output_count", "finish_reason")
    assert p.measurement is not None and p.measurement.stopped_early
    assert p.rows[0]["flags"] == list(p.flags) and p.measurement.extra["flags"] == list(p.flags)


def test_a_first_chunk_with_several_tokens_is_flagged(synthetic: SyntheticServer, tmp_path: Path) -> None:
    synthetic.behaviour.merge_first = True
    plan = SweepPlan((1,), (5,), (1, 4), repeats=1, warmup=0)
    one, four = sweep(synthetic.url, plan, tmp_path / "r.jsonl")
    assert "merged_first_chunk" not in one.flags  # a single token cannot merge
    assert flags(four) == () and "merged_first_chunk" in four.flags
    assert four.measurement is not None and four.measurement.output_tokens == 4  # counts from usage


def test_other_traffic_on_the_server_is_flagged(synthetic: SyntheticServer, tmp_path: Path) -> None:
    synthetic.behaviour.extra_generation_tokens = 1
    plan = SweepPlan((1,), (5,), (2,), repeats=1, warmup=0)
    (p,) = sweep(synthetic.url, plan, tmp_path / "r.jsonl")
    assert flags(p) == ("server_counts",)


def test_no_counters_means_no_server_figures_not_zero(synthetic: SyntheticServer, tmp_path: Path) -> None:
    synthetic.behaviour.metrics_status = 404
    plan = SweepPlan((1,), (5,), (2,), repeats=1, warmup=0)
    (p,) = sweep(synthetic.url, plan, tmp_path / "r.jsonl")
    assert p.measurement is not None and p.measurement.server_flops is None
    assert "server" not in p.measurement.extra and flags(p) == ()


def test_a_request_that_times_out_flags_the_point_and_the_run_goes_on(
    synthetic: SyntheticServer, tmp_path: Path
) -> None:
    synthetic.behaviour.hang_request = 2
    plan = SweepPlan((2,), (5,), (2,), repeats=1, warmup=0)
    plan2 = SweepPlan((1,), (6,), (2,), repeats=1, warmup=0)
    out = tmp_path / "r.jsonl"
    (p,) = sweep(synthetic.url, plan, out, timeout_s=0.5)
    assert flags(p) == ("request_errors",)
    assert p.measurement is not None and p.measurement.extra["failed_requests"] == 1
    (q,) = sweep(synthetic.url, plan2, tmp_path / "r2.jsonl", timeout_s=0.5)
    assert flags(q) == ()


def test_http_errors_end_the_run_with_finished_points_on_disk(synthetic: SyntheticServer, tmp_path: Path) -> None:
    synthetic.behaviour.fail_from_request = 4  # points (1,5,1) and (3,5,1) warm-up pass, then 500
    plan = SweepPlan((1, 3), (5,), (1,), repeats=1, warmup=1)
    out = tmp_path / "r.jsonl"
    with pytest.raises(ServerError) as info:
        sweep(synthetic.url, plan, out)
    message = str(info.value)
    assert "point batch=3 input=5 output=1" in message and "HTTP 500" in message and "synthetic failure" in message
    assert f"1 finished points are in {out}" in message
    assert list(read_results(out).points) == [(1, 5, 1)]


# --- the command -----------------------------------------------------------------------------


@pytest.fixture
def stub_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_command, "_analysis", lambda args: (analyze, 8192, None))


def grid(url: str, out: Path, *more: str) -> list[str]:
    return ["run", "--endpoint", url, "--model", "m", "--hardware", "cpu", "--batch-sizes", "1,2",
            "--input-tokens", "5", "--output-tokens", "1,3", "--repeats", "1", "--warmup", "0",
            "--out", str(out), *more]


@pytest.mark.usefixtures("stub_analysis")
def test_run_resumes_only_the_missing_points(
    synthetic: SyntheticServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.jsonl"
    synthetic.behaviour.fail_from_request = 4  # (1,5,1): 1 request, (2,5,1): 2, then (1,5,3) fails
    assert cli.main(grid(synthetic.url, out)) == 3
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("mfubench: error:")]
    assert len(errors) == 1 and "HTTP 500" in errors[0] and "Traceback" not in err
    assert set(read_results(out).points) == {(1, 5, 1), (2, 5, 1)}
    before = len(out.read_text().splitlines())

    assert cli.main(grid(synthetic.url, out)) == 2  # exists, no --resume: refuse to clobber
    assert "--resume" in capsys.readouterr().err

    synthetic.behaviour.fail_from_request = None
    synthetic.behaviour.requests = 0
    assert cli.main([*grid(synthetic.url, out), "--resume", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["batch_size"], r["output_tokens"]) for r in rows] == [(1, 1), (2, 1), (1, 3), (2, 3)]
    new = [json.loads(line) for line in out.read_text().splitlines()[before:]]
    assert {tuple(r["point"]) for r in new if r["type"] == "request"} == {(1, 5, 3), (2, 5, 3)}
    assert synthetic.behaviour.requests == 3


@pytest.mark.usefixtures("stub_analysis")
def test_resume_refuses_a_file_of_another_model(synthetic: SyntheticServer, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.jsonl"
    assert cli.main(grid(synthetic.url, out)) == 0
    args = grid(synthetic.url, out, "--resume")
    args[args.index("--model") + 1] = "other"
    assert cli.main(args) == 2
    assert f"{out}:1: measured with model 'm'" in capsys.readouterr().err


@pytest.mark.usefixtures("stub_analysis")
def test_header_carries_provenance_and_never_the_key(
    synthetic: SyntheticServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-planted-7f3a9c"
    monkeypatch.setenv("MFUBENCH_TEST_KEY", secret)
    out = tmp_path / "r.jsonl"
    assert cli.main(grid(synthetic.url, out, "--api-key-env", "MFUBENCH_TEST_KEY")) == 0
    text = out.read_text()
    assert secret not in text
    header = read_results(out).header
    assert header["engine"] == "vllm" and header["engine_version"] == "0.0-synthetic"
    assert header["served_model"] == "synthetic" and header["model"] == "m" and header["hardware"] == "cpu"
    assert header["args"]["api_key_env"] == "MFUBENCH_TEST_KEY"
    assert header["started_utc"].endswith("+00:00")
    assert all(body["model"] == "synthetic" for body in synthetic.behaviour.bodies)


def test_missing_key_variable_is_a_clear_error(tmp_path: Path, stub_analysis: None,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(grid("http://127.0.0.1:9", tmp_path / "r.jsonl", "--api-key-env", "NOPE_NOT_SET_X")) == 2
    assert "NOPE_NOT_SET_X" in capsys.readouterr().err


def test_connection_refused_is_one_line(tmp_path: Path, stub_analysis: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(grid("http://127.0.0.1:9", tmp_path / "r.jsonl")) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot connect" in err


def test_dry_run_prints_the_plan_without_a_server(tmp_path: Path, stub_analysis: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*grid("http://127.0.0.1:9", tmp_path / "r.jsonl"), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["to_measure"] == [[1, 5, 1], [2, 5, 1], [1, 5, 3], [2, 5, 3]]
    assert plan["requests"] == 6 and plan["prompt_tokens"] == 30 and plan["output_tokens"] == 12
    assert not (tmp_path / "r.jsonl").exists()


def test_engine_secrets_are_redacted_from_the_header() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["run", "--launch", "vllm", "--model", "m", "--hardware", "cpu",
                              "--input-tokens", "5", "--output-tokens", "1", "--",
                              "--api-key", "sk-1", "--api-key=sk-2", "--enforce-eager"])
    safe = run_command.safe_args(args)
    assert safe["engine_args"] == ["--api-key", "<redacted>", "--api-key=<redacted>", "--enforce-eager"]
    assert "sk-1" not in json.dumps(safe) and "sk-2" not in json.dumps(safe)
    assert safe["batch_sizes"] is None and "func" not in safe  # run() sets the static default (1)


@pytest.mark.parametrize("text", ["", "1,,x", "0,2", "-1"])
def test_int_lists_reject_bad_values(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        argtypes.int_list(text)
    assert argtypes.int_list("1, 2,4") == (1, 2, 4)


# --- the results file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "where", "what"),
    [
        (['{"type":"point"}'], ":1", "first line must be the header"),
        (['{"type":"header","schema_version":2}'], ":1", "schema_version 2"),
        (['{"type":"header","schema_version":1}', "{oops"], ":2", "not JSON"),
        (['{"type":"header","schema_version":1}', "[1]"], ":2", "JSON object"),
        (['{"type":"header","schema_version":1}', '{"type":"nope"}'], ":2", "unknown line type"),
        (['{"type":"header","schema_version":1}', '{"type":"point","batch_size":0,"input_tokens":1,"output_tokens":1}'],
         ":2", "batch_size"),
        (['{"type":"header","schema_version":1}', '{"type":"header","schema_version":1}'], ":2", "second header"),
        ([], "", "empty results file"),
    ],
)
def test_bad_results_files_name_the_file_and_line(tmp_path: Path, lines: list[str], where: str, what: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(InputFileError) as info:
        read_results(path)
    assert f"{path}{where}" in str(info.value) and what in str(info.value)


def test_results_log_rejects_untyped_lines(tmp_path: Path) -> None:
    with ResultsLog(tmp_path / "r.jsonl") as log, pytest.raises(ValueError):
        log.write({"no": "type"})


def test_results_log_writes_non_finite_numbers_as_null(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ResultsLog(path) as log:
        log.write({"type": "header", "schema_version": 1, "x": float("nan"), "y": [float("inf"), 1.5]})
    assert json.loads(path.read_text()) == {"type": "header", "schema_version": 1, "x": None, "y": [None, 1.5]}


def test_latency_percentiles_are_nearest_rank_over_every_request_and_gap() -> None:
    from types import SimpleNamespace

    from mfubench.measure.sweep import latency_percentiles, percentile

    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 99) == 4.0
    records = [SimpleNamespace(ttft_s=0.1 * (i + 1), itl_s=[0.01, 0.02], e2e_s=1.0 + i)
               for i in range(10)]
    out = latency_percentiles(records)  # type: ignore[arg-type]
    assert out["ttft_s"] == {"p50": pytest.approx(0.5), "p90": pytest.approx(0.9),
                             "p99": pytest.approx(1.0)}
    assert out["itl_s"]["p50"] == 0.01 and out["itl_s"]["p99"] == 0.02
    assert out["e2e_s"]["p90"] == 9.0
    assert latency_percentiles([SimpleNamespace(ttft_s=None, itl_s=[], e2e_s=None)]) == {}  # type: ignore[list-item]


@pytest.mark.usefixtures("stub_analysis")
def test_a_run_torn_by_a_crash_is_resumed_without_editing_the_file(
    synthetic: SyntheticServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL or a full disk in the middle of writing the last point line: --resume reports
    the torn line, truncates it, measures that point again and leaves a whole file."""
    out = tmp_path / "r.jsonl"
    assert cli.main(grid(synthetic.url, out)) == 0
    lines = out.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[-1])["type"] == "point"
    torn = lines[-1][: len(lines[-1]) // 2]  # half of the last point line, no newline
    out.write_bytes(b"".join(lines[:-1]) + torn)
    capsys.readouterr()
    assert cli.main([*grid(synthetic.url, out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"mfubench: warning: {out}:{len(lines)}: the last line is torn" in err
    assert f"{out}: truncated the torn line {len(lines)}" in err and "Traceback" not in err
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputFileWarning)  # no warning now: the file is whole again
        whole = read_results(out)
    assert whole.torn is None and set(whole.points) == {(1, 5, 1), (2, 5, 1), (1, 5, 3), (2, 5, 3)}
    assert out.read_bytes().endswith(b"\n") and torn not in out.read_bytes()


@pytest.mark.usefixtures("stub_analysis")
def test_a_file_holding_only_a_torn_header_starts_afresh(
    synthetic: SyntheticServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.jsonl"
    out.write_bytes(b'{"type":"header","schema_ver')
    assert cli.main([*grid(synthetic.url, out), "--resume"]) == 0
    assert "only a torn header" in capsys.readouterr().err
    assert len(read_results(out).points) == 4


def test_a_bad_line_that_is_not_the_last_stays_an_error(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text('{"type":"header","schema_version":1}\n{"type":"poi\n'
                   '{"type":"point","batch_size":1,"input_tokens":5,"output_tokens":1}\n')
    with pytest.raises(InputFileError, match=rf"{out}:2: not JSON"):
        read_results(out)


def test_a_launched_engines_context_is_the_analysis_limit() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["run", "--launch", "vllm", "--model", "Qwen/Qwen3-8B", "--hardware",
                              "H100-SXM", "--input-tokens", "3000", "--output-tokens", "100"])
    assert run_command.launch_max_model_len(args) == 3100
    _, _, setup = run_command._analysis(args)
    assert setup.max_model_len == 3100
    args = parser.parse_args(["run", "--endpoint", "http://x", "--model", "Qwen/Qwen3-8B",
                              "--hardware", "H100-SXM", "--input-tokens", "1", "--output-tokens", "1"])
    assert run_command._analysis(args)[2].max_model_len is None  # unknown: the model's limit applies


def test_run_refuses_points_the_layout_cannot_hold_before_sending_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.jsonl"
    argv = ["run", "--endpoint", "http://127.0.0.1:9", "--model", "meta-llama/Llama-3.3-70B-Instruct",
            "--hardware", "4xH100-SXM", "--batch-sizes", "8,4096", "--input-tokens", "2048",
            "--output-tokens", "128", "--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "1 point(s) cannot be served" in err and "memory holds 206 sequences" in err
    assert "--allow-infeasible" in err and not out.exists()
    assert cli.main([*argv, "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert [p["point"] for p in plan["infeasible"]] == [[4096, 2048, 128]]
    # with --allow-infeasible the run goes on to the server (here: none, a connection error)
    assert cli.main([*argv, "--allow-infeasible"]) == 3
    assert "cannot connect" in capsys.readouterr().err


# --- under load: --concurrency and --request-rate against the synthetic server -----------------


def load_grid(url: str, out: Path, *more: str) -> list[str]:
    return ["run", "--endpoint", url, "--model", "m", "--hardware", "cpu", "--input-tokens", "5",
            "--output-tokens", "4", "--num-requests", "12", "--warmup-requests", "2", "--out", str(out),
            "--seed", "3", *more]


@pytest.mark.usefixtures("stub_analysis")
def test_run_under_a_concurrency_and_a_rate_writes_levels_and_resumes_them(
    synthetic: SyntheticServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "levels.jsonl"
    assert cli.main(load_grid(synthetic.url, out, "--concurrency", "1,3", "--json")) == 0
    results = read_results(out)
    assert set(results.points) == {("concurrency", 1.0, 5, 4), ("concurrency", 3.0, 5, 4)}
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    requests = [r for r in lines if r["type"] == "request"]
    assert len(requests) == 24 and all(r["input_tokens"] == 5 and r["output_tokens"] == 4 for r in requests)
    level = results.points[("concurrency", 3.0, 5, 4)]
    m = level["measurement"]
    assert m["load"] == {"kind": "concurrency", "level": 3.0, "arrival": None, "burstiness": None}
    assert m["completed"] == 12 and m["tpot_s"] > 0 and m["request_throughput"] > 0
    assert m["extra"]["warmup_requests"] == 2 and m["extra"]["steady_requests"] >= 1
    from mfubench.io.importers import load_measurements

    measured = load_measurements(out)
    assert [x.load.label for x in measured] == ["concurrency 1", "concurrency 3"]
    capsys.readouterr()
    # resumed: nothing left to do; another run at a rate goes to its own file
    assert cli.main([*load_grid(synthetic.url, out, "--concurrency", "1,3"), "--resume"]) == 0
    assert len(out.read_text().splitlines()) == len(lines)
    rate_out = tmp_path / "rate.jsonl"
    assert cli.main(load_grid(synthetic.url, rate_out, "--request-rate", "50", "--arrival", "gamma",
                              "--burstiness", "2", "--slo", "ttft=1,tpot=1")) == 0
    (rate,) = read_results(rate_out).points.values()
    assert rate["load"]["kind"] == "rate" and rate["measurement"]["extra"]["slo"]["met_fraction"] == 1.0


def test_load_options_are_checked_before_anything_is_sent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = load_grid("http://127.0.0.1:9", tmp_path / "x.jsonl")
    for extra, message in ((["--concurrency", "2", "--request-rate", "1"], "one load per run"),
                           (["--concurrency", "2", "--batch-sizes", "4"], "--batch-sizes is for static"),
                           (["--request-rate", "1", "--burstiness", "2"], "--burstiness shapes --arrival gamma"),
                           (["--slo", "ttft=1"], "need --concurrency or --request-rate")):
        assert cli.main([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse refuses it, naming the option
        cli.main([*base, "--request-rate", "nan"])
    assert "--request-rate: expected comma-separated positive numbers" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()
