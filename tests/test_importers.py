"""The importers: every format read exactly, every malformed file a named InputFileError.

Fixtures: ``data/seed/`` holds the seed's two result files unchanged; ``data/vllm_bench/`` holds
files written by ``vllm bench serve`` (vLLM 0.32.0's own writer) against the synthetic server
``data/vllm_bench/synthetic_server.py`` (see ``data/vllm_bench/README.md``).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extreme import extreme_numbers, huge_lists
from mfubench.analysis.load import Load
from mfubench.analysis.measurement import Measurement
from mfubench.errors import InputFileError, InputFileWarning, MfubenchError
from mfubench.io.importers import load_measurements
from mfubench.measure.results_log import SCHEMA_VERSION, ResultsLog
from mfubench.measure.sweep import PointResult

DATA = Path(__file__).parent / "data"
SEED = DATA / "seed"
VLLM = DATA / "vllm_bench"


def raw(path: Path) -> Any:
    return json.loads(path.read_text())


def write(tmp_path: Path, name: str, content: str | bytes | Any) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    return path


def error_of(path: Path, **kwargs: Any) -> str:
    with pytest.raises(InputFileError) as info:
        load_measurements(path, **kwargs)
    message = str(info.value)
    assert str(path) in message, message
    assert "\n" not in message
    return message


# --- the seed's format -------------------------------------------------------------------------


def test_seed_prefill_reads_every_batch_exactly() -> None:
    points = load_measurements(SEED / "prefill.json")
    entries = raw(SEED / "prefill.json")["results"]
    assert [m.batch_size for m in points] == [1, 2, 4, 8, 16, 32]
    for m in points:
        entry = entries[str(m.batch_size)]
        assert m.input_tokens == entry["avg_input_tokens"] == 2083.0
        assert m.output_tokens == entry["avg_output_tokens"] == 1.0
        assert m.elapsed_s == entry["elapsed_time"]
        assert m.output_tokens_per_s == entry["tokens_per_second_in_batch"]
        assert m.extra["avg_tokens_per_second"] == entry["avg_tokens_per_second"]
        assert m.ttft_s is None and m.itl_s is None
        assert m.requested_output_tokens == 1.0 and not m.stopped_early
        assert m.source == f"prefill.json[batch={m.batch_size}]"
        assert m.extra["format"] == "seed"


def test_seed_decode_flags_batches_16_and_32_as_stopped_early() -> None:
    points = load_measurements(SEED / "decode.json")
    assert {m.batch_size: m.output_tokens for m in points}[32] == 846.0625
    assert [m.batch_size for m in points if m.stopped_early] == [16, 32]
    assert {m.requested_output_tokens for m in points} == {900.0}
    assert all(m.extra["requested_output_tokens_from"].startswith("inferred") for m in points)


def test_seed_requested_output_given_by_the_caller_wins() -> None:
    points = load_measurements(SEED / "decode.json", requested_output_tokens=1000)
    assert all(m.stopped_early and m.requested_output_tokens == 1000 for m in points)
    assert {m.extra["requested_output_tokens_from"] for m in points} == {"caller"}


def test_seed_bare_mapping_reads_like_the_wrapped_one(tmp_path: Path) -> None:
    bare = write(tmp_path, "bare.json", raw(SEED / "decode.json")["results"])
    wrapped = load_measurements(SEED / "decode.json")
    assert [(m.batch_size, m.elapsed_s, m.stopped_early) for m in load_measurements(bare)] == [
        (m.batch_size, m.elapsed_s, m.stopped_early) for m in wrapped
    ]


def test_seed_with_mixed_input_lengths_infers_no_requested_output(tmp_path: Path) -> None:
    results = raw(SEED / "decode.json")["results"]
    results["32"]["avg_input_tokens"] = 500.0
    points = load_measurements(write(tmp_path, "mixed.json", {"results": results}))
    assert all(m.requested_output_tokens is None and not m.stopped_early for m in points)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("elapsed_time", 0, "must be > 0"),
        ("elapsed_time", -1.5, "must be > 0"),
        ("elapsed_time", "16.0", "expected a number, got a string"),
        ("elapsed_time", None, "expected a number, got null"),
        ("elapsed_time", True, "expected a number, got a boolean"),
        ("avg_input_tokens", 0, "must be \u2265 1"),
        ("avg_output_tokens", -3, "must be \u2265 0"),
        ("tokens_per_second_in_batch", 0, "must be > 0"),
    ],
)
def test_seed_bad_values_name_file_batch_and_field(
    tmp_path: Path, field: str, value: object, expected: str
) -> None:
    doc = raw(SEED / "decode.json")
    doc["results"]["16"][field] = value
    message = error_of(write(tmp_path, "decode.json", doc))
    assert "batch '16'" in message and repr(field) in message and expected in message


def test_seed_nan_time_is_rejected(tmp_path: Path) -> None:
    text = (SEED / "prefill.json").read_text().replace("0.3499017124995589", "NaN")
    message = error_of(write(tmp_path, "prefill.json", text))
    assert "batch '2'" in message and "'elapsed_time'" in message and "finite" in message


def test_seed_missing_and_unknown_fields(tmp_path: Path) -> None:
    doc = raw(SEED / "decode.json")
    del doc["results"]["4"]["avg_output_tokens"]
    message = error_of(write(tmp_path, "a.json", doc))
    assert "batch '4'" in message and "'avg_output_tokens'" in message and "missing" in message

    doc = raw(SEED / "decode.json")
    doc["results"]["8"]["elapsed_ms"] = 16000
    message = error_of(write(tmp_path, "b.json", doc))
    assert "batch '8'" in message and "'elapsed_ms'" in message and "unknown" in message


def test_seed_bad_structure(tmp_path: Path) -> None:
    entry = raw(SEED / "decode.json")["results"]["1"]
    assert "'four'" in error_of(write(tmp_path, "a.json", {"results": {"four": entry}}))
    assert "batch '0'" in error_of(write(tmp_path, "b.json", {"results": {"0": entry}}))
    assert "expected an object" in error_of(write(tmp_path, "c.json", {"results": {"1": [1, 2]}}))
    assert "'results'" in error_of(write(tmp_path, "d.json", {"results": [entry]}))
    assert "no entries" in error_of(write(tmp_path, "e.json", {"results": {}}))
    assert "'model'" in error_of(write(tmp_path, "f.json", {"results": {"1": entry}, "model": "x"}))


# --- measurement tables ------------------------------------------------------------------------

CSV = """\
# figures of a paper, table 3
batch_size,input_tokens,output_tokens,ttft_s,itl_s,elapsed_s,requested_output_tokens,note
1,2048,128,0.25,0.02,2.79,128,first
8,2048,100,1.5,,4.2,128,

32,512,1,0.9,,,,
"""


def test_csv_table_reads_rows_with_absent_cells(tmp_path: Path) -> None:
    points = load_measurements(write(tmp_path, "table.csv", CSV))
    assert [m.batch_size for m in points] == [1, 8, 32]
    first, second, third = points
    assert (first.ttft_s, first.itl_s, first.elapsed_s) == (0.25, 0.02, 2.79)
    assert first.extra["note"] == "first" and not first.stopped_early
    assert second.itl_s is None and second.stopped_early
    assert third.ttft_s == 0.9 and third.elapsed_s is None and third.requested_output_tokens is None
    assert [m.source for m in points] == ["table.csv:row 1", "table.csv:row 2", "table.csv:row 3"]


def test_csv_millisecond_aliases_are_converted(tmp_path: Path) -> None:
    path = write(tmp_path, "ms.csv", "batch_size,input_tokens,output_tokens,ttft_ms,itl_ms,elapsed_ms\n4,100,10,250,20,430\n")
    (m,) = load_measurements(path)
    assert m.ttft_s == pytest.approx(0.25) and m.itl_s == pytest.approx(0.02)
    assert m.elapsed_s == pytest.approx(0.43)


def test_a_table_without_csv_suffix_is_sniffed(tmp_path: Path) -> None:
    (m,) = load_measurements(write(tmp_path, "figures.txt", "batch_size,input_tokens,output_tokens,itl_s\n2,10,5,0.01\n"))
    assert m.itl_s == 0.01 and m.source == "figures.txt:row 1"


def test_override_sets_requested_output_on_table_rows(tmp_path: Path) -> None:
    points = load_measurements(write(tmp_path, "table.csv", CSV), requested_output_tokens=200)
    assert all(m.requested_output_tokens == 200 and m.stopped_early for m in points)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("batch_size,input_tokens,ttft_s\n1,10,0.1\n", "missing required column(s) 'output_tokens'"),
        ("batch_size,input_tokens,output_tokens,ttft_msec\n1,10,1,0.1\n", "unknown column(s) 'ttft_msec'"),
        ("batch_size,input_tokens,output_tokens,ttft_s,ttft_s\n1,10,1,1,1\n", "'ttft_s' appear twice"),
        ("batch_size,,output_tokens\n1,10,1\n", "column 2 has no name"),
        ("batch_size,input_tokens,output_tokens,ttft_s\n", "a header but no rows"),
        ("# only a comment\n\n", "no header row"),
    ],
)
def test_csv_bad_header(tmp_path: Path, text: str, expected: str) -> None:
    message = error_of(write(tmp_path, "t.csv", text))
    assert expected in message


@pytest.mark.parametrize(
    ("row", "field", "expected"),
    [
        ("1,10,1,0,", "ttft_s", "must be > 0"),
        ("1,10,1,-0.5,", "ttft_s", "must be > 0"),
        ("1,10,1,nan,", "ttft_s", "finite"),
        ("1,10,1,abc,", "ttft_s", "expected a number"),
        ("2.5,10,1,0.1,", "batch_size", "whole number"),
        ("0,10,1,0.1,", "batch_size", "\u2265 1"),
        ("1,10,1,0.1,5", "ttft_ms", "given twice"),
        ("1,10,1,,", None, "no timing"),
        ("1,10,1,0.1", None, "4 cells under a header of 5 columns"),
    ],
)
def test_csv_bad_rows_name_row_and_field(tmp_path: Path, row: str, field: str | None, expected: str) -> None:
    text = f"batch_size,input_tokens,output_tokens,ttft_s,ttft_ms\n1,10,1,0.1,\n{row}\n"
    message = error_of(write(tmp_path, "t.csv", text))
    assert "row 2 (line 3)" in message and expected in message
    if field:
        assert repr(field) in message


def test_json_rows_as_list_and_as_rows_object(tmp_path: Path) -> None:
    rows = [
        {"batch_size": 1, "input_tokens": 100, "output_tokens": 50, "itl_s": 0.01, "elapsed_s": None},
        {"batch_size": 2, "input_tokens": 100, "output_tokens": 50, "ttft_ms": 80},
    ]
    listed = load_measurements(write(tmp_path, "list.json", rows))
    wrapped = load_measurements(write(tmp_path, "rows.json", {"rows": rows}))
    for points in (listed, wrapped):
        assert points[0].itl_s == 0.01 and points[0].elapsed_s is None
        assert points[1].ttft_s == pytest.approx(0.08)
    assert [m.source for m in wrapped] == ["rows.json:row 1", "rows.json:row 2"]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"batch_size": 1, "input_tokens": 10, "output_tokens": 1, "ttft_s": "0.1"}, "'ttft_s': expected a number, got a string"),
        ({"batch_size": 1, "input_tokens": 10, "output_tokens": 1, "ttft_ms_": 1}, "unknown field(s) 'ttft_ms_'"),
        ({"batch_size": 1, "input_tokens": 10, "ttft_s": 0.1}, "'output_tokens': missing"),
        ({"batch_size": 1, "input_tokens": 10, "output_tokens": 1, "elapsed_s": 0}, "'elapsed_s': must be > 0"),
        ({"batch_size": 1, "input_tokens": 10, "output_tokens": 1, "itl_s": 1e-400}, "'itl_s'"),
        ({"batch_size": 10**400, "input_tokens": 10, "output_tokens": 1, "itl_s": 1}, "too large"),
        ({"batch_size": 1, "input_tokens": 10, "output_tokens": 1, "note": 3, "itl_s": 1}, "'note': expected text"),
    ],
)
def test_json_rows_bad_values(tmp_path: Path, row: dict[str, Any], expected: str) -> None:
    good = {"batch_size": 1, "input_tokens": 10, "output_tokens": 1, "itl_s": 0.01}
    message = error_of(write(tmp_path, "rows.json", {"rows": [good, row]}))
    assert "row 2" in message and expected in message


def test_json_rows_bad_structure(tmp_path: Path) -> None:
    assert "row 1: expected an object" in error_of(write(tmp_path, "a.json", [[1, 2, 3]]))
    assert "no rows" in error_of(write(tmp_path, "b.json", {"rows": []}))
    assert "expected a list" in error_of(write(tmp_path, "c.json", {"rows": {"a": 1}}))
    assert "'extra'" in error_of(write(tmp_path, "d.json", {"rows": [], "extra": 1}))
    analysis = {"rows": [{"batch_size": 1, "phase": "prefill", "flops": 1.0, "mfu": 0.3}]}
    assert "analysis output" in error_of(write(tmp_path, "e.json", analysis))
    analysis_json = {"convention": "causal", "peak": "x", **analysis}  # `analyze --json`
    assert "analysis output" in error_of(write(tmp_path, "f.json", analysis_json))
    assert "analysis output" in error_of(write(tmp_path, "g.json", analysis["rows"]))


# --- vllm bench serve --------------------------------------------------------------------------


def test_vllm_detailed_result_uses_the_per_request_arrays() -> None:
    doc = raw(VLLM / "detailed.json")
    (m,) = load_measurements(VLLM / "detailed.json")
    assert m.batch_size == doc["max_concurrency"] == doc["num_prompts"] == 4
    assert m.input_tokens == sum(doc["input_lens"]) / 4 and m.output_tokens == 8
    assert m.ttft_s == pytest.approx(math.fsum(doc["ttfts"]) / 4, rel=1e-12)
    assert m.ttft_s == pytest.approx(doc["mean_ttft_ms"] / 1000, rel=1e-9)
    decode_s = math.fsum(math.fsum(gaps) for gaps in doc["itls"])
    assert m.itl_s == pytest.approx(decode_s / (4 * 7), rel=1e-12)
    assert m.elapsed_s == doc["duration"]  # one wave: all four in flight at once
    assert m.output_tokens_per_s == pytest.approx(doc["output_throughput"], rel=1e-12)
    assert m.extra["ttft_kind"] == "mean_request" and m.extra["per_request_arrays"] is True
    assert m.extra["itl_kind"] == "decode_time_per_token" and m.source == "detailed.json"


def test_vllm_summary_result_at_a_concurrency_is_a_closed_loop_not_a_batch() -> None:
    doc = raw(VLLM / "summary.json")
    (m,) = load_measurements(VLLM / "summary.json")
    assert m.load == Load("concurrency", 2.0) and doc["num_prompts"] == 8
    assert m.batch_size == doc["max_concurrency"] == 2
    assert m.input_tokens == doc["total_input_tokens"] / 8
    assert m.output_tokens == doc["total_output_tokens"] / 8
    assert m.ttft_s == doc["mean_ttft_ms"] / 1000 and m.tpot_s == doc["mean_tpot_ms"] / 1000
    assert m.itl_s is None and m.elapsed_s is None  # per-request means, not a batch's times
    assert (m.duration_s, m.completed) == (doc["duration"], doc["completed"])
    assert m.request_throughput == pytest.approx(doc["request_throughput"], rel=1e-12)
    assert m.extra["per_request_arrays"] is False and m.extra["itl_kind"] == "mean_tpot"
    assert "below num_prompts" in m.extra["load_from"]


def test_vllm_result_with_a_failed_request_and_no_concurrency_limit() -> None:
    doc = raw(VLLM / "failed.json")
    (m,) = load_measurements(VLLM / "failed.json")
    assert doc["max_concurrency"] is None and doc["failed"] == 1
    assert m.batch_size == doc["num_prompts"] == 6 and m.load == Load()  # all at once: static
    assert m.extra["load_from"].startswith("every prompt in flight at once")
    ok = [i for i, e in enumerate(doc["errors"]) if not e]
    assert m.ttft_s == pytest.approx(math.fsum(doc["ttfts"][i] for i in ok) / len(ok), rel=1e-12)
    assert m.ttft_s == pytest.approx(doc["mean_ttft_ms"] / 1000, rel=1e-9)
    assert m.output_tokens == 8 and m.extra["failed"] == 1


def test_vllm_appended_results_give_one_point_per_line() -> None:
    points = load_measurements(VLLM / "appended.json", requested_output_tokens=8)
    assert [m.batch_size for m in points] == [1, 4]
    assert [m.source for m in points] == ["appended.json:line 1", "appended.json:line 2"]
    assert all(m.requested_output_tokens == 8 and not m.stopped_early for m in points)


def test_vllm_zero_means_are_absent_and_a_finite_rate_is_an_open_loop(tmp_path: Path) -> None:
    doc = raw(VLLM / "summary.json")
    doc.update(mean_ttft_ms=0.0, mean_tpot_ms=0.0, request_rate=4.0)
    (m,) = load_measurements(write(tmp_path, "r.json", doc))
    assert m.load == Load("rate", 4.0, "poisson")
    assert m.ttft_s is None and m.tpot_s == doc["mean_itl_ms"] / 1000
    assert m.extra["itl_kind"] == "mean_itl" and m.batch_size == 1
    assert m.extra["batch_size_from"].startswith("unknown")  # no mean TTFT: no Little's law
    doc.update(mean_ttft_ms=30.0, burstiness=0.5)
    (m,) = load_measurements(write(tmp_path, "g.json", doc))
    assert m.load == Load("rate", 4.0, "gamma", 0.5)
    e2e = 0.030 + (m.output_tokens - 1) * doc["mean_itl_ms"] / 1000
    assert m.batch_size == max(1, round(doc["completed"] / doc["duration"] * e2e))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"completed": 0}, "'completed': 0: no request completed"),
        ({"duration": 0}, "'duration': must be > 0"),
        ({"duration": -2.0}, "'duration': must be > 0"),
        ({"max_concurrency": 0}, "'max_concurrency'"),
        ({"output_lens": [8, 8, 8]}, "'output_lens': 3 entries, but input_lens has 4"),
        ({"errors": ["", "", "", "boom"]}, "'errors': 3 requests succeeded"),
        ({"ttfts": [0.1, 0.1, 0.0, 0.1]}, "'ttfts[2]': must be > 0"),
        ({"itls": [[0.1], [0.1], "x", [0.1]]}, "'itls[2]': expected a list"),
        ({"input_lens": [32, 32, "32", 32]}, "'input_lens[2]': expected a number"),
        ({"request_rate": "fast"}, "'request_rate': expected a number"),
    ],
)
def test_vllm_bad_results(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    doc = raw(VLLM / "detailed.json")
    doc.update(change)
    message = error_of(write(tmp_path, "bench.json", doc))
    assert "bench.json: result: field" in message and expected in message


def test_vllm_embedding_result_is_refused(tmp_path: Path) -> None:
    doc = raw(VLLM / "summary.json")
    del doc["total_output_tokens"]
    assert "'total_output_tokens': missing" in error_of(write(tmp_path, "emb.json", doc))


def test_vllm_appended_file_with_a_foreign_line(tmp_path: Path) -> None:
    first = (VLLM / "appended.json").read_text().splitlines()[0]
    message = error_of(write(tmp_path, "app.json", first + '\n{"rows": []}\n'))
    assert "line 2" in message and "not a 'vllm bench serve' result" in message


# --- mfubench's own results --------------------------------------------------------------------


def _measured(batch: int, output: float, ttft: float) -> Measurement:
    return Measurement(
        batch_size=batch, input_tokens=64.0, output_tokens=output, requested_output_tokens=16,
        ttft_s=ttft, itl_s=0.01, elapsed_s=ttft + 0.15, output_tokens_per_s=batch * output / (ttft + 0.15),
        server_flops=1.5e9, extra={"requests": batch},
    )


def _results_file(tmp_path: Path) -> Path:
    path = tmp_path / "results.jsonl"
    with ResultsLog(path) as log:
        log.write({"type": "header", "schema_version": SCHEMA_VERSION, "model": "tiny"})
        log.write({"type": "request", "point": [2, 64, 16], "repeat": 0, "ttft_s": 0.1})
        log.write(PointResult((2, 64, 16), _measured(2, 16.0, 0.1), [{"phase": "total"}], (), ()).to_json())
        log.write(PointResult((4, 64, 16), None, [], ("request_errors",), ()).to_json())
        log.write(PointResult((8, 64, 16), _measured(8, 15.5, 0.2), [], ("output_count",), ()).to_json())
    return path


def test_mfubench_results_read_back_what_the_sweep_wrote(tmp_path: Path) -> None:
    points = load_measurements(_results_file(tmp_path))
    assert [m.batch_size for m in points] == [2, 8]  # the untimed point is skipped
    first, second = points
    expected = _measured(2, 16.0, 0.1)
    for name in ("input_tokens", "output_tokens", "requested_output_tokens", "ttft_s", "itl_s",
                 "elapsed_s", "output_tokens_per_s", "server_flops", "server_read_bytes"):
        assert getattr(first, name) == getattr(expected, name), name
    assert first.extra["requests"] == 2 and first.extra["header"]["model"] == "tiny"
    assert second.extra["flags"] == ["output_count"] and second.stopped_early
    assert [m.source for m in points] == ["results.jsonl:line 3", "results.jsonl:line 5"]


def test_mfubench_point_lines_with_top_level_fields(tmp_path: Path) -> None:
    lines = [{"type": "point", "batch_size": 4, "input_tokens": 128, "output_tokens": 1, "ttft_s": 0.3}]
    (m,) = load_measurements(write(tmp_path, "p.jsonl", "\n".join(map(json.dumps, lines)) + "\n"))
    assert (m.batch_size, m.ttft_s, m.source) == (4, 0.3, "p.jsonl:line 1")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ({"type": "point", "measurement": {"batch_size": 1, "input_tokens": 8, "output_tokens": 1, "ttft_ms": 3}}, "unknown field(s) 'ttft_ms'"),
        ({"type": "point", "measurement": {"batch_size": 1, "input_tokens": 8, "output_tokens": 1, "ttft_s": 0}}, "'measurement.ttft_s': must be > 0"),
        ({"type": "point", "measurement": {"batch_size": 1, "output_tokens": 1, "ttft_s": 1}}, "'measurement.input_tokens': missing"),
        ({"type": "point", "measurement": [1]}, "'measurement': expected an object"),
        ({"type": "point", "batch_size": 1, "input_tokens": 8, "output_tokens": 1, "latency": 1}, "unknown field(s) 'latency'"),
        ({"type": "summary"}, "'type': 'summary' is not one of"),
        ({"type": "header", "schema_version": 1}, "a header after other lines"),
    ],
)
def test_mfubench_results_bad_lines(tmp_path: Path, line: dict[str, Any], expected: str) -> None:
    header = {"type": "header", "schema_version": SCHEMA_VERSION}
    message = error_of(write(tmp_path, "r.jsonl", f"{json.dumps(header)}\n{json.dumps(line)}\n"))
    assert "line 2" in message and expected in message


def test_mfubench_results_without_points_or_of_another_schema(tmp_path: Path) -> None:
    header = {"type": "header", "schema_version": SCHEMA_VERSION}
    request = {"type": "request", "point": [1, 8, 1]}
    only_requests = write(tmp_path, "a.jsonl", f"{json.dumps(header)}\n{json.dumps(request)}\n")
    assert "no 'point' lines" in error_of(only_requests)
    future = write(tmp_path, "b.jsonl", json.dumps({"type": "header", "schema_version": 99}) + "\n")
    assert "'schema_version': 99" in error_of(future)
    untimed = write(tmp_path, "c.jsonl", json.dumps({"type": "point", "measurement": None}) + "\n")
    assert "none with a measurement" in error_of(untimed)


# --- any file ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("e.json", b"", "empty file"),
        ("e.csv", b"  \n\n", "empty file"),
        ("b.json", b"\xff\xfe{}", "not UTF-8"),
        ("t.json", b"hello", "not valid JSON"),
        ("t.json", b'{"results": {"1": ', "not valid JSON"),
        ("t.json", b"[" * 100_000, "JSON"),
        ("t.json", b"42", "the document is a number"),
        ("t.json", b'{"model": "x", "tp": 4}', "format not recognised (top-level keys: 'model', 'tp')"),
        ("t.json", b'{"rows": [], "rows": []}', "key 'rows' appears twice"),
        ("t.json", b"[" + b"9" * 5000 + b"]", "not valid JSON"),
        ("t.jsonl", b'{"a": 1}\n{"b": 2}\n', "line 1: several JSON documents"),
        ("t.jsonl", b'{"type": "point"}\n{"type": \n', "line 2: not valid JSON"),
        ("t.jsonl", b'{"type": "header"}\n[1]\n', "line 2: expected a JSON object"),
    ],
)
def test_malformed_files(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    assert expected in error_of(write(tmp_path, name, content))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "no such file" in error_of(tmp_path / "absent.json")
    assert "is a directory" in error_of(tmp_path)


def test_a_byte_order_mark_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.json", b"\xef\xbb\xbf" + (SEED / "prefill.json").read_bytes())
    assert len(load_measurements(path)) == 6


@pytest.mark.parametrize("bad", [0, -5, math.nan, math.inf, True])
def test_requested_output_override_is_checked(bad: float) -> None:
    with pytest.raises(MfubenchError, match="requested output tokens"):
        load_measurements(SEED / "decode.json", requested_output_tokens=bad)


# --- fuzzing: anything in, only a list of Measurements or an InputFileError out ----------------

_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_SUFFIXES = st.sampled_from([".json", ".csv", ".jsonl", ".txt", ""])
_scalars = st.none() | st.booleans() | extreme_numbers | st.text(max_size=12)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | huge_lists(_scalars)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_KEYS = [
    "results", "rows", "type", "measurement", "batch_size", "input_tokens", "output_tokens",
    "ttft_s", "itl_s", "elapsed_s", "avg_input_tokens", "avg_output_tokens", "elapsed_time",
    "duration", "completed", "num_prompts", "max_concurrency", "input_lens", "output_lens",
    "ttfts", "itls", "errors", "total_input_tokens", "total_output_tokens", "mean_ttft_ms",
    "concurrency", "request_rate", "arrival", "tpot_ms", "duration_s", "completed", "request_throughput",
    "burstiness", "mean_tpot_ms",
]


def _load(tmp: Path, suffix: str, data: bytes) -> None:
    path = tmp / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():  # a torn last line is reported; here only the result counts
            warnings.simplefilter("ignore", InputFileWarning)
            points = load_measurements(path)
    except InputFileError as exc:
        assert str(path) in str(exc)
    else:
        assert points and all(isinstance(m, Measurement) for m in points)


def _mutate(doc: Any, path: list[Any], value: Any) -> Any:
    """``doc`` with the value at ``path`` (keys or indices, as far as they reach) replaced."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return value
    if isinstance(doc, dict):
        key = list(doc)[path[0] % len(doc)]
        return {**doc, key: _mutate(doc[key], path[1:], value)}
    index = path[0] % len(doc)
    return [*doc[:index], _mutate(doc[index], path[1:], value), *doc[index + 1:]]


@_FUZZ
@given(data=st.binary(max_size=300), suffix=_SUFFIXES)
def test_fuzz_random_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes, suffix: str) -> None:
    _load(tmp_path_factory.mktemp("b"), suffix, data)


@_FUZZ
@given(doc=_json, suffix=_SUFFIXES, lines=st.booleans())
def test_fuzz_random_json(tmp_path_factory: pytest.TempPathFactory, doc: Any, suffix: str, lines: bool) -> None:
    text = json.dumps(doc)
    if lines:
        text = "\n".join([text, text])
    _load(tmp_path_factory.mktemp("j"), suffix, text.encode())


@_FUZZ
@given(
    keys=st.dictionaries(st.sampled_from(_KEYS), _json, min_size=1, max_size=6),
    suffix=_SUFFIXES,
)
def test_fuzz_objects_with_the_formats_keys(
    tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Any], suffix: str
) -> None:
    _load(tmp_path_factory.mktemp("k"), suffix, json.dumps(keys).encode())


_VALID = [SEED / "decode.json", VLLM / "detailed.json", VLLM / "failed.json", VLLM / "summary.json"]


@_FUZZ
@given(
    source=st.sampled_from(_VALID),
    where=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4),
    value=_json,
)
def test_fuzz_valid_files_with_one_value_replaced(
    tmp_path_factory: pytest.TempPathFactory, source: Path, where: list[int], value: Any
) -> None:
    doc = _mutate(raw(source), where, value)
    _load(tmp_path_factory.mktemp("m"), ".json", json.dumps(doc).encode())


@_FUZZ
@given(
    header=st.lists(st.sampled_from(["batch_size", "input_tokens", "output_tokens", "ttft_s", "itl_ms", "x"]), max_size=5),
    cells=st.lists(st.lists(st.text(alphabet="0123456789.-eE,\"# nan\n\r\x00", max_size=6), max_size=6), max_size=4),
)
def test_fuzz_csv(tmp_path_factory: pytest.TempPathFactory, header: list[str], cells: list[list[str]]) -> None:
    text = ",".join(header) + "\n" + "\n".join(",".join(row) for row in cells)
    _load(tmp_path_factory.mktemp("c"), ".csv", text.encode())


@_FUZZ
@given(
    columns=st.lists(st.sampled_from(["batch_size", "input_tokens", "output_tokens", "ttft_s", "itl_s",
                                      "elapsed_ms", "output_tokens_per_s"]), min_size=1, max_size=6, unique=True),
    values=st.lists(st.lists(extreme_numbers, min_size=6, max_size=6), min_size=1, max_size=3),
)
def test_fuzz_csv_with_extreme_numbers(tmp_path_factory: pytest.TempPathFactory, columns: list[str],
                                       values: list[list[Any]]) -> None:
    text = ",".join(columns) + "\n" + "\n".join(",".join(str(v) for v in row[:len(columns)]) for row in values)
    _load(tmp_path_factory.mktemp("x"), ".csv", text.encode())


@_FUZZ
@given(cut=st.integers(min_value=0, max_value=10_000), junk=st.binary(max_size=8))
def test_fuzz_a_results_file_cut_anywhere(tmp_path_factory: pytest.TempPathFactory, cut: int, junk: bytes) -> None:
    """A crash can cut the file at any byte (and leave junk): it loads, skipping a torn last
    line with a warning, or is refused with an InputFileError; nothing else."""
    tmp = tmp_path_factory.mktemp("t")
    data = _results_file(tmp).read_bytes()
    _load(tmp, ".jsonl", data[: cut % (len(data) + 1)] + junk)


def test_a_torn_final_line_is_reported_and_skipped_a_bad_middle_line_is_an_error(tmp_path: Path) -> None:
    path = _results_file(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"type":"point","batch_size":16,"input_tok')  # SIGKILL mid-write
    with pytest.warns(InputFileWarning, match=r"results.jsonl:6: the last line is torn"):
        points = load_measurements(path)
    assert [m.batch_size for m in points] == [2, 8]  # nothing measured is lost
    cut_char = whole + '{"type":"point","note":"é'.encode()[:-1]  # a character cut in half
    path.write_bytes(cut_char)
    with pytest.warns(InputFileWarning, match="torn"):
        assert len(load_measurements(path)) == 2
    lines = whole.split(b"\n")
    lines.insert(2, b'{"type":"point",')  # the same damage in the middle is not a crash's
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(InputFileError, match=r"results.jsonl: line 3"):
        load_measurements(path)



# --- tables under load ------------------------------------------------------------------------


def test_table_rows_under_a_concurrency_or_a_rate(tmp_path: Path) -> None:
    text = ("concurrency,request_rate,arrival,input_tokens,output_tokens,ttft_ms,tpot_ms,duration_s,completed\n"
            "64,,,1000,1000,900,40,60,100\n"
            ",4,gamma,1000,500,120,20,,\n")
    first, second = load_measurements(write(tmp_path, "load.csv", text))
    assert first.load == Load("concurrency", 64.0) and first.batch_size == 64
    assert (first.ttft_s, first.tpot_s, first.duration_s, first.completed) == (0.9, 0.04, 60.0, 100)
    assert second.load == Load("rate", 4.0, "gamma")
    assert second.batch_size == round(4 * (0.12 + 499 * 0.02))  # Little's law: 40 in flight
    assert "Little's law" in second.extra["batch_size_from"]
    rows = [{"concurrency": 8, "input_tokens": 128, "output_tokens": 64, "ttft_s": 0.1, "tpot_s": 0.01}]
    (m,) = load_measurements(write(tmp_path, "load.json", rows))
    assert m.load.kind == "concurrency"


@pytest.mark.parametrize(("text", "expected"), [
    ("batch_size,concurrency,input_tokens,output_tokens,ttft_s\n4,4,10,1,0.1\n",
     "'batch_size / concurrency / request_rate': a row needs exactly one of them, got batch_size, concurrency"),
    ("concurrency,request_rate,input_tokens,output_tokens,ttft_s\n,,10,1,0.1\n", "got none"),
    ("input_tokens,output_tokens,ttft_s\n10,1,0.1\n", "no load column"),
    ("concurrency,arrival,input_tokens,output_tokens,ttft_s\n4,poisson,10,1,0.1\n", "only a request_rate row has arrivals"),
    ("request_rate,arrival,input_tokens,output_tokens,ttft_s\n4,bursty,10,1,0.1\n", "arrival 'bursty'"),
    ("concurrency,input_tokens,output_tokens,ttft_s\n2.5,10,1,0.1\n", "'concurrency': must be a whole number"),
    ("concurrency,input_tokens,output_tokens,ttft_s,completed\n2,10,1,0.1,0\n", "'completed'"),
])
def test_table_load_errors_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(write(tmp_path, "bad.csv", text))


def test_vllm_bench_percentiles_are_kept_in_seconds() -> None:
    doc = raw(VLLM / "live_concurrency.json")
    (m,) = load_measurements(VLLM / "live_concurrency.json")
    latency = m.extra["latency_percentiles"]
    assert latency["ttft_s"] == {"p50": doc["median_ttft_ms"] / 1e3, "p99": doc["p99_ttft_ms"] / 1e3}
    assert latency["tpot_s"]["p99"] == doc["p99_tpot_ms"] / 1e3
    assert set(latency) == {"ttft_s", "tpot_s", "itl_s"}  # no e2el in this run's percentiles
