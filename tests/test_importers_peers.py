"""The peer benchmarks' result files (AIPerf, GenAI-Perf, guidellm, SGLang bench_serving), read
exactly, under their load, told apart from each other and from vLLM's, and every malformed one a
named InputFileError.

Every fixture was written by the tool's own writer (tests/data/<tool>/README.md says how); the
expected values are computed here from the fixture's own numbers.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extreme import extreme_numbers
from mfubench.analysis.load import STATIC, Load
from mfubench.analysis.measurement import Measurement
from mfubench.cli import main
from mfubench.errors import InputFileError, InputFileWarning
from mfubench.io.importers import FORMATS, load_measurements
from mfubench.io.importers.sglang_bench import looks_like_sglang_bench
from mfubench.io.importers.vllm_bench import looks_like_vllm_bench

DATA = Path(__file__).parent / "data"
AIPERF = DATA / "aiperf"
GENAI = DATA / "genai_perf"
GUIDELLM = DATA / "guidellm"
SGLANG = DATA / "sglang_bench" / "bench.jsonl"
VLLM = DATA / "vllm_bench"
AIPERF_JSON = "profile_export_aiperf.json"
GENAI_JSON = "profile_export_genai_perf.json"
LLAMA8 = "meta-llama/Llama-3.1-8B"


def raw(path: Path) -> Any:
    return json.loads(path.read_text())


def guidellm_report(tmp_path: Path, name: str) -> Path:
    """The report guidellm wrote (stored gzip-compressed, README.md)."""
    path = tmp_path / f"{name}.json"
    path.write_bytes(gzip.decompress((GUIDELLM / f"{name}.json.gz").read_bytes()))
    return path


def sglang_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SGLANG.read_text().splitlines() if line.strip()]


def write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(InputFileError) as info:
        load_measurements(path)
    message = str(info.value)
    assert str(path) in message, message
    assert "\n" not in message
    return message


def only(path: Path) -> Measurement:
    (m,) = load_measurements(path)
    return m


def little(m: Measurement) -> int:
    """Little's law as the importers state it: throughput x (TTFT + (O - 1) x TPOT), rounded."""
    assert m.request_throughput is not None and m.ttft_s is not None and m.tpot_s is not None
    return max(1, round(m.request_throughput * (m.ttft_s + (m.output_tokens - 1) * m.tpot_s)))


# --- AIPerf ------------------------------------------------------------------------------------


def test_aiperf_json_at_a_concurrency_reads_every_figure_in_its_unit() -> None:
    path = AIPERF / "concurrency" / AIPERF_JSON
    doc = raw(path)
    m = only(path)
    assert doc["input_config"]["loadgen"] == {"concurrency": 4, "request_rate_mode": "concurrency_burst",
                                              "request_count": 16}
    assert m.load == Load("concurrency", 4.0) and m.batch_size == 4
    assert (doc["request_count"]["unit"], doc["benchmark_duration"]["unit"]) == ("requests", "sec")
    assert m.completed == doc["request_count"]["avg"] == 16
    assert m.duration_s == doc["benchmark_duration"]["avg"]
    assert doc["time_to_first_token"]["unit"] == doc["inter_token_latency"]["unit"] == "ms"
    assert m.ttft_s == pytest.approx(doc["time_to_first_token"]["avg"] / 1000, rel=1e-15)
    assert m.tpot_s == pytest.approx(doc["inter_token_latency"]["avg"] / 1000, rel=1e-15)
    # the means agree with the run's totals, as AIPerf derives them
    assert m.input_tokens == pytest.approx(doc["total_isl"]["avg"] / 16, rel=1e-12)
    assert m.output_tokens == pytest.approx(doc["total_osl"]["avg"] / 16, rel=1e-12)
    assert m.request_throughput == pytest.approx(doc["request_throughput"]["avg"], rel=1e-12)
    assert m.output_tokens_per_s == pytest.approx(doc["total_osl"]["avg"] / m.duration_s, rel=1e-12)
    assert m.itl_s is None and m.elapsed_s is None  # per-request means, not a batch's times
    assert m.extra["format"] == "aiperf.json" and m.extra["failed"] == 0
    assert m.extra["load_from"] == "input_config.loadgen.concurrency 4"
    assert m.extra["model_id"] == LLAMA8 and m.source == AIPERF_JSON


def test_aiperf_json_at_a_rate_with_a_failed_request() -> None:
    path = AIPERF / "rate" / AIPERF_JSON
    doc = raw(path)
    m = only(path)
    assert m.load == Load("rate", 6.0, "poisson")
    assert m.completed == 15 and m.extra["failed"] == doc["error_request_count"]["avg"] == 1
    assert doc["error_summary"][0]["count"] == 1
    assert m.request_throughput == pytest.approx(15 / doc["benchmark_duration"]["avg"], rel=1e-12)
    assert m.batch_size == little(m) and m.extra["batch_size_from"].startswith("Little's law")
    assert m.output_tokens == doc["output_sequence_length"]["avg"]  # of the 15 valid requests


def test_aiperf_csv_reads_like_its_json_to_two_decimals() -> None:
    for folder in ("concurrency", "rate"):
        from_json = only(AIPERF / folder / AIPERF_JSON)
        from_csv = only(AIPERF / folder / "profile_export_aiperf.csv")
        assert from_csv.load == from_json.load and from_csv.completed == from_json.completed
        assert from_csv.extra["format"] == "aiperf.csv" and from_csv.extra["rounded"] is True
        assert from_csv.extra["config_from"] == AIPERF_JSON
        assert from_csv.extra["failed"] == from_json.extra["failed"]
        for name, scale in (("ttft_s", 1000), ("tpot_s", 1000), ("duration_s", 1),
                            ("input_tokens", 1), ("output_tokens", 1), ("output_tokens_per_s", 1)):
            a, b = getattr(from_csv, name), getattr(from_json, name)
            assert abs(a - b) * scale <= 0.005 + 1e-9, (folder, name, a, b)
            assert round(b * scale, 2) == pytest.approx(a * scale, abs=1e-9)  # exactly the rounding


def test_aiperf_csv_takes_its_load_from_the_json_beside_it(tmp_path: Path) -> None:
    lone = tmp_path / "profile_export_aiperf.csv"
    shutil.copy(AIPERF / "rate" / "profile_export_aiperf.csv", lone)
    message = error_of(lone)
    assert "profile_export_aiperf.json" in message and "not found" in message
    shutil.copy(AIPERF / "concurrency" / AIPERF_JSON, tmp_path / AIPERF_JSON)  # another run's
    assert only(lone).load == Load("concurrency", 4.0)


@pytest.mark.parametrize(
    ("loadgen", "inputs", "expected", "said"),
    [
        (None, {}, Load("concurrency", 1.0), "AIPerf's default, concurrency 1"),
        ({"request_rate": 2.5}, {}, Load("rate", 2.5, "poisson"), "AIPerf's default mode"),
        ({"request_rate": 2.5, "request_rate_mode": "constant", "concurrency": 3}, {},
         Load("rate", 2.5, "constant"), "concurrency 3 caps it"),
        ({"concurrency": 8}, {"fixed_schedule": True}, Load("trace"), "fixed_schedule"),
    ],
)
def test_aiperf_load_as_its_user_config_decides_it(
    tmp_path: Path, loadgen: dict[str, Any] | None, inputs: dict[str, Any], expected: Load, said: str
) -> None:
    doc = raw(AIPERF / "concurrency" / AIPERF_JSON)
    doc["input_config"].pop("loadgen")
    if loadgen is not None:
        doc["input_config"]["loadgen"] = loadgen
    doc["input_config"]["input"].update(inputs)
    m = only(write(tmp_path, AIPERF_JSON, doc))
    assert m.load == expected and said in m.extra["load_from"]
    if expected.kind == "rate":
        assert m.batch_size == little(m)
    if loadgen and "concurrency" in loadgen and expected.kind == "rate":
        assert m.extra["max_concurrency"] == 3


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"request_count": {"unit": "requests", "avg": 0.0}}, "request_count", "no request completed"),
        ({"request_count": {"unit": "requests", "avg": 15.5}}, "request_count", "whole number"),
        ({"request_count": None}, "request_count", "missing"),
        ({"benchmark_duration": {"unit": "sec", "avg": -1.0}}, "benchmark_duration.avg", "must be"),
        ({"benchmark_duration": {"unit": "minutes", "avg": 1.0}}, "benchmark_duration.unit", "'minutes'"),
        ({"time_to_first_token": {"unit": "s", "avg": 95.0}}, "time_to_first_token.unit", "expected 'ns'"),
        ({"inter_token_latency": {"unit": "ms", "avg": "17"}}, "inter_token_latency.avg", "expected a number"),
        ({"input_sequence_length": None, "total_isl": None}, "input_sequence_length", "missing"),
        ({"output_sequence_length": {"unit": "tokens", "avg": math.nan}}, "output_sequence_length.avg", "finite"),
        ({"time_to_first_token": [1, 2]}, "time_to_first_token", "expected an object"),
    ],
)
def test_aiperf_bad_metrics_name_the_field(tmp_path: Path, change: dict[str, Any], field: str,
                                           expected: str) -> None:
    doc = raw(AIPERF / "concurrency" / AIPERF_JSON)
    doc.update(change)
    message = error_of(write(tmp_path, AIPERF_JSON, doc))
    assert f"export: field '{field}'" in message and expected in message


@pytest.mark.parametrize(
    ("loadgen", "field", "expected"),
    [
        ({"request_rate": 0}, "input_config.loadgen.request_rate", "must be > 0"),
        ({"request_rate": 2, "request_rate_mode": "concurrency_burst"}, "input_config.loadgen.request_rate_mode",
         "expected 'poisson' or 'constant'"),
        ({"concurrency": 0}, "input_config.loadgen.concurrency", "must be"),
        ({"concurrency": 2.5}, "input_config.loadgen.concurrency", "whole number"),
        ({"concurrency": 4, "request_rate_mode": "poisson"}, "input_config.loadgen.request_rate_mode",
         "without a request rate"),
        ("fast", "input_config.loadgen", "expected an object"),
    ],
)
def test_aiperf_bad_load_names_the_field(tmp_path: Path, loadgen: Any, field: str, expected: str) -> None:
    doc = raw(AIPERF / "concurrency" / AIPERF_JSON)
    doc["input_config"]["loadgen"] = loadgen
    message = error_of(write(tmp_path, AIPERF_JSON, doc))
    assert f"field '{field}'" in message and expected in message


def test_aiperf_later_configuration_is_refused_not_guessed(tmp_path: Path) -> None:
    doc = raw(AIPERF / "rate" / AIPERF_JSON)
    later = {**doc, "schema_version": "1.4", "aiperf_version": "0.13.0"}
    assert "field 'schema_version': '1.4': a later AIPerf's export" in error_of(write(tmp_path, AIPERF_JSON, later))
    doc["input_config"] = {"endpoint": doc["input_config"]["endpoint"],
                           "phases": [{"name": "profiling", "type": "concurrency", "concurrency": 8}]}
    assert "field 'input_config.phases'" in error_of(write(tmp_path, AIPERF_JSON, doc))


def test_aiperf_csv_bad_cells_name_the_row_metric(tmp_path: Path) -> None:
    text = (AIPERF / "concurrency" / "profile_export_aiperf.csv").read_text()
    shutil.copy(AIPERF / "concurrency" / AIPERF_JSON, tmp_path / AIPERF_JSON)
    row = next(line for line in text.splitlines() if line.startswith("Time to First Token"))
    bad = write(tmp_path, "profile_export_aiperf.csv", text.replace(row, "Time to First Token (ms),fast,1"))
    assert "field 'Time to First Token (ms)': expected a number" in error_of(bad)
    neg = write(tmp_path, "profile_export_aiperf.csv", text.replace("Request Count,16.00", "Request Count,-3"))
    assert "field 'Request Count'" in error_of(neg)
    twice = write(tmp_path, "profile_export_aiperf.csv", text + "Request Count,16.00\n")
    assert "appears twice" in error_of(twice)


# --- GenAI-Perf --------------------------------------------------------------------------------


def test_genai_perf_json_at_a_concurrency() -> None:
    path = GENAI / "concurrency" / GENAI_JSON
    doc = raw(path)
    m = only(path)
    assert doc["input_config"]["perf_analyzer"]["stimulus"] == {"concurrency": 4}
    assert m.load == Load("concurrency", 4.0) and m.batch_size == 4
    assert m.completed == doc["request_count"]["avg"] == 16 and doc["request_count"]["unit"] == "count"
    assert m.request_throughput == doc["request_throughput"]["avg"]
    assert m.duration_s == pytest.approx(16 / doc["request_throughput"]["avg"], rel=1e-15)
    assert m.ttft_s == pytest.approx(doc["time_to_first_token"]["avg"] / 1000, rel=1e-15)
    assert m.tpot_s == pytest.approx(doc["inter_token_latency"]["avg"] / 1000, rel=1e-15)
    assert (m.input_tokens, m.output_tokens) == (doc["input_sequence_length"]["avg"],
                                                 doc["output_sequence_length"]["avg"])
    # GenAI-Perf's output throughput is its tokens over the same duration
    assert m.output_tokens_per_s == pytest.approx(m.output_tokens * 16 / m.duration_s, rel=1e-12)
    assert m.extra["format"] == "genai-perf.json" and "request_count / request_throughput" in m.extra["duration_from"]
    assert m.extra["model_id"] == LLAMA8 and m.extra["endpoint_type"] == "completions"


def test_genai_perf_json_at_a_rate_is_constant_arrivals() -> None:
    m = only(GENAI / "rate" / GENAI_JSON)
    assert m.load == Load("rate", 6.0, "constant")
    assert "Perf Analyzer's default --request-distribution" in m.extra["load_from"]
    assert m.batch_size == little(m) >= 1


def test_genai_perf_csv_reads_like_its_json_to_two_decimals() -> None:
    for folder in ("concurrency", "rate"):
        from_json = only(GENAI / folder / GENAI_JSON)
        from_csv = only(GENAI / folder / "profile_export_genai_perf.csv")
        assert from_csv.load == from_json.load and from_csv.completed == from_json.completed
        assert from_csv.extra["format"] == "genai-perf.csv"
        for name, scale in (("ttft_s", 1000), ("tpot_s", 1000), ("request_throughput", 1),
                            ("input_tokens", 1), ("output_tokens", 1), ("output_tokens_per_s", 1)):
            a, b = getattr(from_csv, name), getattr(from_json, name)
            assert round(b * scale, 2) == pytest.approx(a * scale, abs=1e-9), (folder, name)


def test_genai_perf_csv_thousands_separators_and_missing_json(tmp_path: Path) -> None:
    text = (GENAI / "concurrency" / "profile_export_genai_perf.csv").read_text()
    lone = write(tmp_path, "lone/profile_export_genai_perf.csv", text)
    assert "profile_export_genai_perf.json" in error_of(lone)
    shutil.copy(GENAI / "concurrency" / GENAI_JSON, tmp_path / GENAI_JSON)
    row = next(line for line in text.splitlines() if line.startswith("Output Token Throughput (tokens/sec)"))
    big = write(tmp_path, "profile_export_genai_perf.csv",
                text.replace(row, 'Output Token Throughput (tokens/sec),"1,234.56"'))
    assert only(big).output_tokens_per_s == pytest.approx(1234.56)
    na = write(tmp_path, "profile_export_genai_perf.csv",
               text.replace(text.splitlines()[1], "Time To First Token (ms)," + ",".join(["N/A"] * 12)))
    assert only(na).ttft_s is None  # GenAI-Perf writes N/A for a statistic it lacks


@pytest.mark.parametrize(
    ("stimulus", "expected"),
    [
        ({"concurrency": 0}, "'input_config.perf_analyzer.stimulus.concurrency': must be"),
        ({"request_rate": "x"}, "'input_config.perf_analyzer.stimulus.request_rate': expected a number"),
        ({"session_concurrency": 4}, "multi-turn sessions"),
        ({}, "no 'concurrency' or 'request_rate'"),
        ([4], "'input_config.perf_analyzer.stimulus': expected an object"),
    ],
)
def test_genai_perf_bad_stimulus(tmp_path: Path, stimulus: Any, expected: str) -> None:
    doc = raw(GENAI / "concurrency" / GENAI_JSON)
    doc["input_config"]["perf_analyzer"]["stimulus"] = stimulus
    assert expected in error_of(write(tmp_path, GENAI_JSON, doc))


def test_genai_perf_fixed_schedule_is_a_trace_and_units_are_checked(tmp_path: Path) -> None:
    doc = raw(GENAI / "rate" / GENAI_JSON)
    doc["input_config"]["perf_analyzer"]["stimulus"] = {"fixed_schedule": True}
    m = only(write(tmp_path, GENAI_JSON, doc))
    assert m.load == Load("trace") and m.batch_size == little(m)
    doc["time_to_first_token"]["unit"] = "s"
    assert "'time_to_first_token.unit': unit 's': expected 'ms'" in error_of(write(tmp_path, GENAI_JSON, doc))
    doc = raw(GENAI / "rate" / GENAI_JSON)
    doc["request_throughput"]["avg"] = 0.0
    assert "'request_throughput': missing or not > 0" in error_of(write(tmp_path, GENAI_JSON, doc))


# --- guidellm ----------------------------------------------------------------------------------


def _summary(bench: dict[str, Any], metric: str) -> dict[str, Any]:
    successful: dict[str, Any] = bench["metrics"][metric]["successful"]
    return successful


def test_guidellm_sweep_synchronous_throughput_and_constant(tmp_path: Path) -> None:
    path = guidellm_report(tmp_path, "sweep")
    doc = raw(path)
    points = load_measurements(path)
    assert [b["config"]["strategy"]["type_"] for b in doc["benchmarks"]] == ["synchronous", "throughput", "constant"]
    assert len(points) == 3 and [m.source for m in points] == [f"sweep.json[benchmark {i}]" for i in range(3)]
    for m, bench in zip(points, doc["benchmarks"], strict=True):
        completed = bench["metrics"]["request_totals"]["successful"]
        assert m.extra["format"] == "guidellm" and m.extra["guidellm_version"] == doc["metadata"]["guidellm_version"]
        ttft, itl = _summary(bench, "time_to_first_token_ms"), _summary(bench, "inter_token_latency_ms")
        prompts, outputs = _summary(bench, "prompt_token_count"), _summary(bench, "output_token_count")
        assert m.ttft_s == pytest.approx(ttft["total_sum"] / ttft["count"] / 1000, rel=1e-9)
        # guidellm weighs each request's ITL by its decode tokens: the decode time per token
        assert itl["count"] == completed * (m.output_tokens - 1)
        decode = m.tpot_s if m.load.continuous else m.itl_s
        assert decode == pytest.approx(itl["total_sum"] / itl["count"] / 1000, rel=1e-9)
        # its time_per_output_token includes the first token: not TPOT
        assert decode < _summary(bench, "time_per_output_token_ms")["mean"] / 1000
        assert m.input_tokens == pytest.approx(prompts["total_sum"] / completed, rel=1e-12)
        assert m.output_tokens == pytest.approx(outputs["total_sum"] / completed, rel=1e-12)
        assert m.output_tokens_per_s == pytest.approx(outputs["total_sum"] / bench["duration"], rel=1e-12)
        assert m.extra["mean_concurrency"] == bench["metrics"]["request_concurrency"]["total"]["mean"]
    sync, burst, constant = points
    assert sync.load == Load("concurrency", 1.0) and sync.batch_size == 1
    assert sync.completed == 8 and sync.duration_s == doc["benchmarks"][0]["duration"]
    # throughput: all 8 requests scheduled at once, within the 512 it allows: one static batch
    made = doc["benchmarks"][1]["scheduler_metrics"]["requests_made"]["total"]
    assert doc["benchmarks"][1]["config"]["strategy"]["max_concurrency"] == 512 and made == 8
    assert burst.load == STATIC and burst.batch_size == made
    assert burst.elapsed_s == doc["benchmarks"][1]["duration"] and burst.tpot_s is None
    rate = doc["benchmarks"][2]["config"]["strategy"]["rate"]
    assert constant.load == Load("rate", rate, "constant") and constant.batch_size == little(constant)
    assert constant.request_throughput == pytest.approx(8 / doc["benchmarks"][2]["duration"], rel=1e-12)


def test_guidellm_concurrent_streams_and_poisson(tmp_path: Path) -> None:
    points = load_measurements(guidellm_report(tmp_path, "concurrent"))
    assert [m.load for m in points] == [Load("concurrency", 2.0), Load("concurrency", 4.0)]
    assert [m.batch_size for m in points] == [2, 4]
    doc = raw(guidellm_report(tmp_path, "poisson"))
    (m,) = load_measurements(tmp_path / "poisson.json")
    assert m.load == Load("rate", doc["benchmarks"][0]["config"]["strategy"]["rate"], "poisson")
    assert m.extra["max_concurrency"] == doc["benchmarks"][0]["config"]["strategy"]["max_concurrency"]
    assert m.batch_size == little(m)


def test_guidellm_throughput_beyond_its_limit_or_ramped_is_a_closed_loop(tmp_path: Path) -> None:
    doc = raw(guidellm_report(tmp_path, "sweep"))
    doc["benchmarks"][1]["config"]["strategy"]["max_concurrency"] = 4  # 8 requests, 4 at a time
    points = load_measurements(write(tmp_path, "capped.json", doc))
    assert points[1].load == Load("concurrency", 4.0) and points[1].batch_size == 4
    assert points[1].tpot_s is not None and points[1].elapsed_s is None
    doc["benchmarks"][1]["config"]["strategy"].update(max_concurrency=512, rampup_duration=1.0)
    assert load_measurements(write(tmp_path, "ramped.json", doc))[1].load == Load("concurrency", 512.0)


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        (("metadata", "version"), 1, "'metadata.version': 1: this reads guidellm's report schema 2"),
        (("benchmarks",), [], "'benchmarks': empty"),
        (("benchmarks", 0, "config", "strategy", "type_"), "warp", "'config.strategy.type_': 'warp'"),
        (("benchmarks", 0, "metrics", "request_totals", "successful"), 0, "no request completed"),
        (("benchmarks", 0, "metrics", "request_totals", "successful"), 2.5, "whole number"),
        (("benchmarks", 0, "duration"), -1.0, "'duration': must be > 0"),
        (("benchmarks", 0, "metrics", "time_to_first_token_ms", "successful", "mean"), math.inf,
         "'metrics.time_to_first_token_ms.successful.mean': must be a finite number"),
        (("benchmarks", 0, "metrics", "inter_token_latency_ms", "successful"), "x",
         "'metrics.inter_token_latency_ms.successful': expected an object"),
        (("benchmarks", 0, "metrics", "prompt_token_count", "successful", "mean"), 0.5, "below one token"),
        (("benchmarks", 2, "config", "strategy", "rate"), -4, "'config.strategy.rate': must be > 0"),
        (("benchmarks", 1, "config", "strategy", "max_concurrency"), 0, "'config.strategy.max_concurrency'"),
        (("benchmarks", 0, "type_"), "x", "'type_': 'x': expected 'generative_benchmark'"),
    ],
)
def test_guidellm_bad_reports_name_benchmark_and_field(tmp_path: Path, where: tuple[Any, ...], value: Any,
                                                       expected: str) -> None:
    doc = raw(guidellm_report(tmp_path, "sweep"))
    target = doc
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    message = error_of(write(tmp_path, "bad.json", doc))
    assert expected in message
    if where[0] == "benchmarks" and len(where) > 2:
        assert f"bad.json: benchmark {where[1]}: field" in message


# --- SGLang bench_serving ----------------------------------------------------------------------


def test_sglang_results_are_read_per_line_under_their_load() -> None:
    lines = sglang_lines()
    points = load_measurements(SGLANG)
    assert [m.source for m in points] == [f"bench.jsonl:line {i}" for i in (1, 2, 3)]
    assert all(m.extra["format"] == "sglang-bench-serving" for m in points)
    closed, rate, burst = points

    doc = lines[0]  # --max-concurrency 4 --output-details: the per-request arrays
    assert doc["request_rate"] == math.inf and doc["max_concurrency"] == 4 and len(doc["input_lens"]) == 12
    assert closed.load == Load("concurrency", 4.0) and closed.batch_size == 4
    assert closed.ttft_s == pytest.approx(math.fsum(doc["ttfts"]) / 12, rel=1e-12)
    assert closed.ttft_s == pytest.approx(doc["mean_ttft_ms"] / 1000, rel=1e-9)
    decode_s = math.fsum(math.fsum(gaps) for gaps in doc["itls"])
    assert closed.tpot_s == pytest.approx(decode_s / sum(o - 1 for o in doc["output_lens"]), rel=1e-12)
    assert (closed.input_tokens, closed.output_tokens) == (128, 16)
    assert (closed.duration_s, closed.completed) == (doc["duration"], doc["completed"])
    assert closed.request_throughput == pytest.approx(doc["request_throughput"], rel=1e-12)
    assert closed.output_tokens_per_s == pytest.approx(doc["output_throughput"], rel=1e-12)

    doc = lines[1]  # --request-rate 8, summary only
    assert "input_lens" not in doc
    assert rate.load == Load("rate", 8.0, "poisson")
    assert rate.ttft_s == doc["mean_ttft_ms"] / 1000 and rate.tpot_s == doc["mean_tpot_ms"] / 1000
    assert rate.input_tokens == doc["total_input_tokens"] / doc["completed"]
    assert rate.batch_size == little(rate) and rate.extra["num_prompts_from"].startswith("completed")

    doc = lines[2]  # every prompt at once, every 3rd failing
    ok = [i for i, e in enumerate(doc["errors"]) if not e]
    assert len(ok) == doc["completed"] == 8 and len(doc["errors"]) == 12
    assert burst.load == STATIC and burst.batch_size == 12 and burst.extra["failed"] == 4
    assert burst.elapsed_s == doc["duration"] and burst.tpot_s is None
    assert burst.ttft_s == pytest.approx(math.fsum(doc["ttfts"][i] for i in ok) / 8, rel=1e-12)
    assert burst.itl_s == pytest.approx(math.fsum(math.fsum(doc["itls"][i]) for i in ok) / (8 * 15), rel=1e-12)


def test_sglang_and_vllm_results_are_told_apart() -> None:
    for doc in sglang_lines():
        assert looks_like_sglang_bench(doc) and not looks_like_vllm_bench(doc)
    for name in ("detailed.json", "summary.json", "failed.json", "live_concurrency.json", "live_rate.json"):
        doc = raw(VLLM / name)
        assert looks_like_vllm_bench(doc) and not looks_like_sglang_bench(doc)
        assert all(m.extra["format"] == "vllm-bench-serve" for m in load_measurements(VLLM / name))
    assert all(m.extra["format"] == "vllm-bench-serve" for m in load_measurements(VLLM / "appended.json"))
    # a vLLM result that carries SGLang's argument names (vLLM's --metadata) stays vLLM's
    doc = {**raw(VLLM / "summary.json"), "sharegpt_output_len": None, "random_input_len": 1,
           "random_output_len": 1, "random_range_ratio": 0.0}
    assert looks_like_vllm_bench(doc) and not looks_like_sglang_bench(doc)


def test_sglang_single_result_trace_and_mixed_lines(tmp_path: Path) -> None:
    first, second, _ = SGLANG.read_text().splitlines()
    assert only(write(tmp_path, "one.json", first)).extra["format"] == "sglang-bench-serving"
    trace = {**json.loads(second), "request_rate": "trace"}
    m = only(write(tmp_path, "trace.json", trace))
    assert m.load == Load("trace") and m.batch_size == little(m)
    vllm_line = json.dumps(raw(VLLM / "summary.json"))
    message = error_of(write(tmp_path, "mixed.jsonl", first + "\n" + vllm_line + "\n"))
    assert "line 2" in message and "not an SGLang bench_serving result like line 1" in message
    message = error_of(write(tmp_path, "mixed2.jsonl", vllm_line + "\n" + first + "\n"))
    assert "line 2" in message and "not a 'vllm bench serve' result like line 1" in message


@pytest.mark.parametrize(
    ("line", "change", "expected"),
    [
        (0, {"completed": 0}, "'completed': 0: no request completed"),
        (0, {"duration": "1s"}, "'duration': expected a number"),
        (0, {"max_concurrency": -4}, "'max_concurrency'"),
        (1, {"request_rate": -8.0}, "'request_rate': must be > 0"),
        (1, {"mean_tpot_ms": math.nan}, "'mean_tpot_ms': must be a finite number"),
        (0, {"output_lens": [16] * 11}, "'output_lens': 11 entries, but input_lens has 12"),
        (0, {"ttfts": [0.02] * 11 + [0.0]}, "'ttfts[11]': must be > 0"),
        (2, {"errors": [""] * 12}, "12 requests succeeded by the per-request arrays, but 'completed' is 8"),
        (1, {"total_output_tokens": None}, "'total_output_tokens'"),
        (0, {"input_lens": {}}, "'input_lens'"),
    ],
)
def test_sglang_bad_results_name_line_and_field(tmp_path: Path, line: int, change: dict[str, Any],
                                                expected: str) -> None:
    docs = sglang_lines()
    docs[line].update(change)
    path = write(tmp_path, "bench.jsonl", "\n".join(json.dumps(d) for d in docs) + "\n")
    message = error_of(path)
    assert f"line {line + 1}: field" in message and expected in message


# --- every format: detection, and the CLI ------------------------------------------------------

_FIXTURES = [
    (AIPERF / "concurrency" / AIPERF_JSON, "aiperf.json"),
    (AIPERF / "rate" / "profile_export_aiperf.csv", "aiperf.csv"),
    (GENAI / "rate" / GENAI_JSON, "genai-perf.json"),
    (GENAI / "concurrency" / "profile_export_genai_perf.csv", "genai-perf.csv"),
    (SGLANG, "sglang-bench-serving"),
    ("guidellm:sweep", "guidellm"),
    ("guidellm:concurrent", "guidellm"),
    ("guidellm:poisson", "guidellm"),
]


def _fixture(tmp_path: Path, spec: Path | str) -> Path:
    if isinstance(spec, str):
        return guidellm_report(tmp_path, spec.split(":")[1])
    return spec


@pytest.mark.parametrize(("spec", "fmt"), [*_FIXTURES, (VLLM / "live_rate.json", "vllm-bench-serve"),
                                           (VLLM / "appended.json", "vllm-bench-serve")])
def test_each_file_is_read_as_its_own_format(tmp_path: Path, spec: Path | str, fmt: str) -> None:
    points = load_measurements(_fixture(tmp_path, spec))
    assert fmt in FORMATS and points and all(m.extra["format"] == fmt for m in points)
    assert all(m.extra["load_from"] for m in points)


@pytest.mark.parametrize(("spec", "fmt"), _FIXTURES)
def test_analyze_gives_rows_within_the_peak(tmp_path: Path, spec: Path | str, fmt: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = _fixture(tmp_path, spec)
    points = load_measurements(path)
    assert main(["analyze", str(path), "--model", LLAMA8, "--hardware", "H100-SXM", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows and {r["source"] for r in rows} == {m.source for m in points}
    for r in rows:
        assert r["mfu"] is not None and 0 < r["mfu"] <= 1, r
        assert r["mbu"] is not None and 0 < r["mbu"] <= 1, r
        assert not r["above_peak"]
    for m in points:  # under a load prefill is not separable: no prefill row
        phases = {r["phase"] for r in rows if r["source"] == m.source}
        assert ("prefill" in phases) == (not m.load.continuous), (m.source, phases)
        assert "decode" in phases


# --- fuzz: any one value replaced, never anything but a named InputFileError ------------------

_FUZZ = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
_BAD = st.sampled_from([None, "x", "", True, [], {}, [1.0], {"avg": 1}, "Infinity"]) | extreme_numbers
_scalars = st.none() | st.booleans() | extreme_numbers | st.text(max_size=8)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def _load(path: Path) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputFileWarning)
            points = load_measurements(path)
    except InputFileError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert points and all(isinstance(m, Measurement) for m in points)


def _mutate(doc: Any, where: list[int], value: Any) -> Any:
    """``doc`` with the value at ``where`` (indices into keys or items, as far as they reach)."""
    if not where or not isinstance(doc, dict | list) or not doc:
        return value
    if isinstance(doc, dict):
        key = list(doc)[where[0] % len(doc)]
        return {**doc, key: _mutate(doc[key], where[1:], value)}
    index = where[0] % len(doc)
    return [*doc[:index], _mutate(doc[index], where[1:], value), *doc[index + 1:]]


_DOCS: dict[str, Any] = {
    "aiperf": raw(AIPERF / "rate" / AIPERF_JSON),
    "genai": raw(GENAI / "concurrency" / GENAI_JSON),
    "guidellm": json.loads(gzip.decompress((GUIDELLM / "poisson.json.gz").read_bytes())),
    "sglang": sglang_lines(),
}
_NAMES = {"aiperf": AIPERF_JSON, "genai": GENAI_JSON, "guidellm": "benchmarks.json", "sglang": "bench.jsonl"}


def _dump(name: str, doc: Any) -> str:
    if name == "sglang" and isinstance(doc, list):
        return "\n".join(json.dumps(d) for d in doc) + "\n"
    return json.dumps(doc)


@_FUZZ
@given(name=st.sampled_from(sorted(_DOCS)), where=st.lists(st.integers(0, 60), min_size=1, max_size=6),
       value=_json | _BAD)
def test_fuzz_peer_files_with_one_value_replaced(tmp_path_factory: pytest.TempPathFactory, name: str,
                                                 where: list[int], value: Any) -> None:
    doc = _mutate(copy.deepcopy(_DOCS[name]), where, value)
    _load(write(tmp_path_factory.mktemp("p"), _NAMES[name], _dump(name, doc)))


#: Fields each importer reads: (path into the document, the name its messages give, what it
#: holds, and what leaving it out does: "ok" (the writer may omit it: read without it),
#: "error" (refused by name), "marker" (the file is no longer of that format: refused, unnamed)).
_FIELDS: dict[str, list[tuple[tuple[Any, ...], str, str, str]]] = {
    "aiperf": [
        (("request_count", "avg"), "request_count", "number", "error"),
        (("benchmark_duration", "avg"), "benchmark_duration", "number", "error"),
        (("benchmark_duration", "unit"), "benchmark_duration", "text", "error"),
        (("time_to_first_token", "avg"), "time_to_first_token", "number", "ok"),
        (("inter_token_latency", "unit"), "inter_token_latency", "text", "error"),
        (("input_sequence_length", "avg"), "input_sequence_length", "number", "ok"),
        (("output_sequence_length",), "output_sequence_length", "object", "ok"),
        (("error_request_count", "avg"), "error_request_count", "number", "ok"),
        (("input_config", "loadgen", "request_rate"), "input_config.loadgen.request_rate", "number", "error"),
        (("input_config", "loadgen"), "input_config.loadgen", "object", "ok"),
    ],
    "genai": [
        (("request_count", "avg"), "request_count", "number", "error"),
        (("request_throughput", "avg"), "request_throughput", "number", "error"),
        (("time_to_first_token", "unit"), "time_to_first_token", "text", "error"),
        (("inter_token_latency", "avg"), "inter_token_latency", "number", "ok"),
        (("output_sequence_length", "avg"), "output_sequence_length", "number", "error"),
        (("input_config", "perf_analyzer", "stimulus", "concurrency"),
         "input_config.perf_analyzer.stimulus", "number", "error"),
        (("input_config", "perf_analyzer"), "input_config.perf_analyzer", "object", "marker"),
    ],
    "guidellm": [
        (("benchmarks", 0, "duration"), "duration", "number", "error"),
        (("benchmarks", 0, "metrics", "request_totals", "successful"),
         "metrics.request_totals.successful", "number", "error"),
        (("benchmarks", 0, "metrics", "time_to_first_token_ms", "successful", "mean"),
         "metrics.time_to_first_token_ms.successful.mean", "number", "ok"),
        (("benchmarks", 0, "metrics", "inter_token_latency_ms", "successful"),
         "metrics.inter_token_latency_ms.successful", "object", "error"),
        (("benchmarks", 0, "metrics", "prompt_token_count", "successful", "mean"),
         "metrics.prompt_token_count.successful.mean", "number", "error"),
        (("benchmarks", 0, "config", "strategy", "rate"), "config.strategy.rate", "number", "error"),
        (("benchmarks", 0, "config", "strategy"), "config.strategy", "object", "error"),
        (("metadata", "version"), "metadata.version", "number", "error"),
    ],
    "sglang": [
        ((0, "completed"), "completed", "number", "marker"),
        ((0, "duration"), "duration", "number", "marker"),
        ((1, "mean_ttft_ms"), "mean_ttft_ms", "number", "ok"),
        ((1, "total_input_tokens"), "total_input_tokens", "number", "error"),
        ((0, "max_concurrency"), "max_concurrency", "number", "ok"),
        ((0, "ttfts"), "ttfts", "list", "ok"),
        ((0, "itls"), "itls", "list", "ok"),
        ((2, "errors"), "errors", "list", "ok"),
    ],
}
_WRONG = {
    "number": ["x", True, [1.0], {"a": 1}, -1.0, -(2**70), math.nan, math.inf, -math.inf],
    "text": [True, [1.0], {"a": 1}, -1.0, math.nan, "furlongs"],
    "object": ["x", True, [1.0], -1.0, math.nan, 7],
    "list": ["x", True, {"a": 1}, -1.0, math.nan, [1.0]],
}


@_FUZZ
@given(name=st.sampled_from(sorted(_FIELDS)), index=st.integers(0, 100), pick=st.integers(0, 100),
       missing=st.booleans())
def test_fuzz_a_read_field_made_wrong_is_refused_by_name(tmp_path_factory: pytest.TempPathFactory, name: str,
                                                         index: int, pick: int, missing: bool) -> None:
    where, label, holds, absent = _FIELDS[name][index % len(_FIELDS[name])]
    doc = copy.deepcopy(_DOCS[name])
    target = doc
    for key in where[:-1]:
        target = target[key]
    if missing:
        del target[where[-1]]
    else:
        target[where[-1]] = _WRONG[holds][pick % len(_WRONG[holds])]
    path = write(tmp_path_factory.mktemp("f"), _NAMES[name], _dump(name, doc))
    if missing and absent == "ok":
        assert load_measurements(path)  # the writer may leave it out
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputFileWarning)
        with pytest.raises(InputFileError) as info:
            load_measurements(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    if not (missing and absent == "marker"):
        assert label in message, (where, target.get(where[-1]) if isinstance(target, dict) else None, message)


@_FUZZ
@given(tool=st.sampled_from(["aiperf", "genai"]), row=st.integers(0, 30), column=st.integers(0, 13),
       cell=st.text(alphabet="0123456789.-,eE naN/\"", max_size=8) | st.sampled_from(["", "N/A", "1e400", "-0"]))
def test_fuzz_csv_exports_with_one_cell_replaced(tmp_path_factory: pytest.TempPathFactory, tool: str, row: int,
                                                 column: int, cell: str) -> None:
    folder = AIPERF / "rate" if tool == "aiperf" else GENAI / "rate"
    name = "profile_export_aiperf" if tool == "aiperf" else "profile_export_genai_perf"
    tmp = tmp_path_factory.mktemp("c")
    shutil.copy(folder / f"{name}.json", tmp / f"{name}.json")
    lines = (folder / f"{name}.csv").read_text().splitlines()
    cells = lines[row % len(lines)].split(",")
    cells[column % len(cells)] = cell
    lines[row % len(lines)] = ",".join(cells)
    _load(write(tmp, f"{name}.csv", "\n".join(lines) + "\n"))
