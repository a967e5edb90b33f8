"""``mfubench monitor``: windows of an engine's counters, their MFU and MBU, and what goes wrong
(a restarted server, an absent or idle counter, an endpoint that stops answering)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from mfubench import cli
from mfubench.analysis.phases import make_setup
from mfubench.analysis.window import Counters, token_costs, window_figures
from mfubench.counting import flops as fl
from mfubench.counting.workload import DecodeStep, PrefillChunk
from mfubench.hardware.spec import parse_hardware
from mfubench.measure.engine import LLAMA_CPP, VLLM
from mfubench.measure.metrics import parse_prometheus
from mfubench.measure.monitor import Watcher, counters_between
from mfubench.model.registry import load_model

SETUP = make_setup(load_model("Qwen/Qwen3-8B"), parse_hardware("H100-SXM"))


def vllm_text(flops: float, prompt: float, gen: float, *, steps: float = 0, running: float = 1,
              finished: float = 0, finished_prompt: float = 0) -> str:
    return "\n".join([
        f'vllm:estimated_flops_per_gpu_total{{engine="0",model_name="m"}} {flops}',
        f'vllm:estimated_read_bytes_per_gpu_total{{engine="0",model_name="m"}} {flops / 2}',
        f'vllm:estimated_write_bytes_per_gpu_total{{engine="0",model_name="m"}} {flops / 20}',
        f'vllm:prompt_tokens_total{{engine="0",model_name="m"}} {prompt}',
        f'vllm:generation_tokens_total{{engine="0",model_name="m"}} {gen}',
        f'vllm:iteration_tokens_total_count{{engine="0",model_name="m"}} {steps}',
        f'vllm:request_prompt_tokens_sum{{engine="0",model_name="m"}} {finished_prompt}',
        f'vllm:request_prompt_tokens_count{{engine="0",model_name="m"}} {finished}',
        f'vllm:num_requests_running{{engine="0",model_name="m"}} {running}',
        'vllm:num_requests_waiting{engine="0",model_name="m"} 3',
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25',
    ]) + "\n"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.contextmanager
def stub_in_a_thread(routes: dict[str, Handler]) -> Iterator[str]:
    """An aiohttp server of ``routes`` (GET) on its own thread and loop, for the length of the
    block (the command under test runs its own loop on this thread); its base URL."""
    stop, ready = threading.Event(), []

    async def serve() -> None:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(serve()))
    thread.start()
    try:
        while not ready:
            time.sleep(0.01)
        yield f"http://127.0.0.1:{ready[0]}"
    finally:
        stop.set()
        thread.join(timeout=30)


def test_engine_counters_give_the_window_over_wall_time_and_while_busy() -> None:
    before = parse_prometheus(vllm_text(1e15, 1000, 100))
    after = parse_prometheus(vllm_text(1e15 + 4.947e14, 3000, 600))
    c, notes = counters_between(before, after, VLLM, 2.0, 0.5)
    assert c is not None and notes == []
    assert (c.flops, c.prompt_tokens, c.generation_tokens) == (4.947e14, 2000, 500)
    assert (c.running, c.waiting, c.kv_usage) == (1, 3, 0.25)
    w = window_figures(SETUP, c)
    peak, bw = SETUP.machine().peak_flops, SETUP.machine().memory_bandwidth  # type: ignore[union-attr]
    assert w.source == "engine" and w.mfu == pytest.approx(4.947e14 / (2.0 * peak))
    assert w.mbu == pytest.approx((4.947e14 / 2 + 4.947e14 / 20) / (2.0 * bw))
    assert w.mfu_busy == pytest.approx(w.mfu / 0.5) and w.tokens_per_s == 1250


def test_token_counters_are_counted_at_the_mean_lengths_of_the_finished_requests() -> None:
    before = parse_prometheus(vllm_text(0, 0, 0))
    after = parse_prometheus(vllm_text(0, 4096, 320, steps=300, finished=8, finished_prompt=4096))
    c, notes = counters_between(before, after, VLLM, 4.0, 1.0)
    assert c is not None and any("did not move" in n for n in notes)  # no --enable-mfu-metrics
    w = window_figures(SETUP, c, output_tokens=40)
    spec = SETUP.spec
    per_prompt = fl.total(fl.prefill(spec, PrefillChunk(512))) / 512  # TP 1: per GPU = whole
    per_token = fl.total(fl.decode(spec, DecodeStep.uniform(1, 512 + 20)))
    assert w.source == "tokens"
    assert w.flops_per_gpu == pytest.approx(4096 * per_prompt + 320 * per_token)
    costs = token_costs(SETUP, 512, 40)
    assert w.bytes_per_gpu == pytest.approx(300 * costs.weight_bytes_per_step + 320 * costs.kv_bytes_per_generated_token)
    assert 0 < (w.prefill_flops_share or 0) < 1


def test_a_reset_counter_drops_the_window_and_names_it() -> None:
    c, notes = counters_between(parse_prometheus(vllm_text(5e14, 100, 10)), parse_prometheus(vllm_text(1e12, 5, 1)),
                                VLLM, 1.0, None)
    assert c is None and notes[0].startswith("counter-reset: vllm:estimated_flops_per_gpu_total")


def test_what_an_engine_does_not_export_is_said() -> None:
    text = "llamacpp:prompt_tokens_total 10\nllamacpp:tokens_predicted_total 4\nllamacpp:requests_processing 1\n"
    later = "llamacpp:prompt_tokens_total 110\nllamacpp:tokens_predicted_total 24\nllamacpp:requests_processing 0\n"
    c, _ = counters_between(parse_prometheus(text), parse_prometheus(later), LLAMA_CPP, 1.0, 1.0)
    assert c is not None and c.steps is None and (c.prompt_tokens, c.generation_tokens) == (100, 20)
    w = window_figures(SETUP, c, input_tokens=100, output_tokens=20)
    assert w.mfu is not None and w.mbu is None
    assert any("no step count" in n for n in w.notes)
    assert window_figures(SETUP, c).flops_per_gpu is None  # no finished requests, no lengths given


def test_a_figure_above_the_peak_is_flagged_never_clamped() -> None:
    c = Counters(seconds=1.0, flops=3 * SETUP.machine().peak_flops)  # type: ignore[union-attr]
    w = window_figures(SETUP, c)
    assert w.mfu == pytest.approx(3.0) and w.flags == ("above-peak: MFU 300% over the window",)


def test_an_endpoint_that_goes_away_is_unreachable_and_comes_back_with_a_fresh_baseline() -> None:
    state: dict[str, Any] = {"up": True, "flops": 1e12}

    async def metrics(request: web.Request) -> web.Response:
        if not state["up"]:
            return web.Response(status=503)
        state["flops"] += 1e12
        return web.Response(text=vllm_text(state["flops"], 10, 10))

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"version": "x"})

    async def go() -> list[list[str]]:
        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/version", version)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        statuses = []
        try:
            async with Watcher([f"http://127.0.0.1:{port}"]) as w:
                for up in (True, True, False, True, True):
                    state["up"] = up
                    await w.sample()
                    await w.sample()
                    statuses.append([x.status for x in w.close_windows()])
        finally:
            await runner.cleanup()
        return statuses

    assert asyncio.run(go()) == [["ok"], ["ok"], ["unreachable"], ["ok"], ["ok"]]


def test_monitor_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["monitor", "--model", "Qwen/Qwen3-8B", "--hardware", "H100-SXM"]
    assert cli.main(base) == 2
    assert "give --endpoint URL" in capsys.readouterr().err
    assert cli.main([*base, "--endpoint", "http://127.0.0.1:9", "--grafana-dashboard", "x.json"]) == 2
    assert "goes with --prometheus-rules" in capsys.readouterr().err


def test_a_dead_endpoint_is_reported_each_window_and_the_watch_ends(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["monitor", "--endpoint", "http://127.0.0.1:9", "--model", "Qwen/Qwen3-8B", "--hardware",
                     "H100-SXM", "--interval", "0.3", "--duration", "1", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) >= 2 and {x["status"] for x in lines} == {"unreachable"}


def test_the_exporter_serves_the_last_windows_figures() -> None:
    """``--serve-metrics``: mfubench_mfu_ratio / mfubench_mbu_ratio with endpoint, model and phase."""
    import urllib.request

    from mfubench.measure.server import free_port

    state = {"flops": 0.0}

    async def metrics(request: web.Request) -> web.Response:
        state["flops"] += 1e13
        return web.Response(text=vllm_text(state["flops"], 10, 10))

    port = free_port()
    with stub_in_a_thread({"/metrics": metrics}) as url:
        watch = threading.Thread(target=cli.main, args=([
            "monitor", "--endpoint", url, "--model", "Qwen/Qwen3-8B", "--hardware", "H100-SXM", "--interval",
            "0.4", "--sample", "0.1", "--duration", "2.5", "--json", "--serve-metrics", str(port)],))
        watch.start()
        time.sleep(1.6)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        watch.join(timeout=30)
    samples = parse_prometheus(text)
    mfu = [v for (name, labels), v in samples.items() if name == "mfubench_mfu_ratio"
           and dict(labels) == {"endpoint": url, "model": "Qwen/Qwen3-8B", "phase": "total"}]
    assert len(mfu) == 1 and 0 < mfu[0] < 1
    assert any(name == "mfubench_mbu_ratio" for name, _ in samples)


def test_data_parallel_engines_behind_one_endpoint_are_per_gpu_of_one_replica() -> None:
    """vLLM with --data-parallel-size 2 labels each engine's counters ``engine="0"``/``"1"``,
    each on its own GPUs: the window's per-GPU work is their sum over two."""
    def two(flops: float, gen: float) -> str:
        return "".join(f'vllm:estimated_flops_per_gpu_total{{engine="{e}",model_name="m"}} {flops}\n'
                       f'vllm:generation_tokens_total{{engine="{e}",model_name="m"}} {gen}\n'
                       f'vllm:prompt_tokens_total{{engine="{e}",model_name="m"}} {gen}\n' for e in "01")

    c, _ = counters_between(parse_prometheus(two(0, 0)), parse_prometheus(two(1e14, 50)), VLLM, 1.0, None)
    assert c is not None and c.replicas == 2 and c.flops == 2e14
    w = window_figures(SETUP, c)
    assert w.flops_per_gpu == 1e14
    assert w.mfu == pytest.approx(1e14 / SETUP.machine().peak_flops)  # type: ignore[union-attr]


def test_monitor_reads_a_fleet_through_prometheus(capsys: pytest.CaptureFixture[str]) -> None:
    """``--prometheus URL``: one line per instance and window from PromQL ``increase()``."""
    values = {"vllm:estimated_flops_per_gpu_total": 4.947e14, "vllm:estimated_read_bytes_per_gpu_total": 3.35e11,
              "vllm:estimated_write_bytes_per_gpu_total": 0.0, "vllm:prompt_tokens_total": 100.0,
              "vllm:generation_tokens_total": 100.0}

    async def query(request: web.Request) -> web.Response:
        q = request.query.get("query", "")
        name = next((n for n in sorted(values, key=len, reverse=True) if n in q), None)
        value = 1.0 if q.startswith(("count by", "avg_over_time")) or name is None else values[name]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"instance": "gpu-node:8000", "model_name": "m"}, "value": [1.0, str(value)]}]}})

    with stub_in_a_thread({"/api/v1/query": query}) as url:
        assert cli.main(["monitor", "--prometheus", url, "--model", "Qwen/Qwen3-8B",
                         "--hardware", "H100-SXM", "--interval", "0.5", "--duration", "0.9", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all(x["endpoint"] == "gpu-node:8000" and x["source"] == "engine" for x in lines)
    # 4.947e14 FLOPs per GPU in a 0.5 s window on a 989.4 TFLOP/s GPU: 100 %
    assert lines[0]["mfu"] == pytest.approx(4.947e14 / (0.5 * 989.4e12)) and lines[0]["busy_share"] == 1.0
