"""Requests of different lengths under load: drawn lengths, workload files, traces, and the
analysis of a request mix, checked against per-request counts made independently."""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfubench import cli
from mfubench.analysis.load import Load
from mfubench.analysis.measurement import Measurement
from mfubench.analysis.phases import analyze, make_setup
from mfubench.analysis.request_mix import RequestMix
from mfubench.commands import run as run_command
from mfubench.counting import flops as fl
from mfubench.counting.workload import DecodeStep, PrefillChunk
from mfubench.errors import InputFileError, MfubenchError
from mfubench.hardware.spec import parse_hardware
from mfubench.io.importers import load_measurements
from mfubench.measure.lengths import Lengths, lengths_list
from mfubench.measure.results_log import read_results
from mfubench.measure.synthetic_server import SyntheticServer
from mfubench.measure.workload_file import read_workload
from mfubench.model.registry import load_model

# --- lengths -----------------------------------------------------------------------------------


def test_lengths_parse_as_written_and_draw_within_their_bounds() -> None:
    fixed, uniform, normal = lengths_list("512, 128:1024,512~64")
    assert (fixed.kind, fixed.label, fixed.high) == ("fixed", "512", 512)
    assert (uniform.kind, uniform.low, uniform.high, uniform.mean) == ("uniform", 128, 1024, 576)
    assert (normal.kind, normal.low, normal.high) == ("normal", 320, 704)  # mean ± 3 sd
    rng = random.Random(1)
    draws = [uniform.draw(rng) for _ in range(20_000)]
    assert min(draws) == 128 and max(draws) == 1024  # both ends included
    assert abs(statistics.fmean(draws) - 576) < 6  # 4 standard errors of the mean
    gauss = [normal.draw(rng) for _ in range(20_000)]
    assert min(gauss) >= 320 and max(gauss) <= 704
    assert abs(statistics.fmean(gauss) - 512) < 2 and abs(statistics.stdev(gauss) - 64) < 2
    assert {fixed.draw(rng) for _ in range(10)} == {512}
    assert Lengths.parse("3~5").low == 1  # never below one token


@pytest.mark.parametrize("text", ["", "0", "1024:128", "a:b", "5~", "-3", "1.5", "0:4", "4:2^50"])
def test_bad_lengths_are_refused_naming_them(text: str) -> None:
    with pytest.raises(MfubenchError):
        lengths_list(text)


# --- the request mix and its analysis ---------------------------------------------------------

SETUP = make_setup(load_model("Qwen/Qwen3-8B"), parse_hardware("H100-SXM"))


def request_flops(i: int, o: int) -> float:
    """One request alone, counted step by step: its prefill, then decode steps at caches i .. i+o-2."""
    spec = SETUP.spec
    total = fl.total(fl.prefill(spec, PrefillChunk(i), SETUP.convention))
    for k in range(1, o):
        total += fl.total(fl.decode(spec, DecodeStep.uniform(1, i + k - 1), SETUP.convention))
    return total


def test_a_mix_keeps_every_length_and_its_decode_weighted_cache() -> None:
    lengths = [(100, 3), (100, 3), (900, 5), (40, 1)]
    mix = RequestMix.of(lengths)
    assert mix.pairs == ((40, 1, 1), (100, 3, 2), (900, 5, 1)) and mix.requests == 4
    assert mix.mean_input == 285.0 and mix.mean_output == 3.0
    caches = [i + k - 1 for i, o in lengths for k in range(1, o)]  # every decode step's cache
    assert mix.decode_tokens == len(caches) == 8
    assert mix.mean_cache == pytest.approx(statistics.fmean(caches))
    with pytest.raises(InputFileError, match="not the mean of its request mix"):
        Measurement(4, 300, 3, tpot_s=0.01, load=Load("concurrency", 2.0), mix=mix)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3000), st.integers(2, 24)), min_size=2, max_size=8),
       st.integers(1, 16), st.floats(0.005, 0.05))
def test_a_mixes_total_flops_are_the_sum_over_its_requests(lengths: list[tuple[int, int]],
                                                           concurrency: int, tpot: float) -> None:
    """The time-averaged total counts every request at its own lengths (prefill attention is
    quadratic: the mean's count is not the mix's), and the decode step at the mix's mean cache
    has exactly the FLOPs of the mean decode token."""
    mix = RequestMix.of(lengths)
    completed = mix.requests
    m = Measurement(concurrency, mix.mean_input, mix.mean_output, ttft_s=tpot, tpot_s=tpot,
                    duration_s=10.0, completed=completed, request_throughput=completed / 10.0,
                    load=Load("concurrency", float(concurrency)), mix=mix)
    rows = {r.phase: r for r in analyze(SETUP, [m])}
    expected = math.fsum(request_flops(i, o) for i, o in lengths)
    assert rows["total"].flops == pytest.approx(expected, rel=1e-9)
    spec = SETUP.spec
    per_token = [fl.total(fl.decode(spec, DecodeStep.uniform(1, i + k - 1), SETUP.convention))
                 for i, o in lengths for k in range(1, o)]
    n_d = rows["decode"].extra["sequences_decoding"]
    # the mean cache is rounded to a whole token: within one token's attention of exact
    assert rows["decode"].flops == pytest.approx(n_d * statistics.fmean(per_token), rel=1e-4)


def test_the_mean_alone_undercounts_a_wide_mix() -> None:
    lengths = [(64, 8)] * 3 + [(8000, 8)]
    mix = RequestMix.of(lengths)
    common: dict[str, Any] = dict(ttft_s=0.1, tpot_s=0.01, duration_s=5.0, completed=4,
                                  load=Load("concurrency", 2.0))
    with_mix = analyze(SETUP, [Measurement(2, mix.mean_input, 8, mix=mix, **common)])[-1]
    at_mean = analyze(SETUP, [Measurement(2, mix.mean_input, 8, **common)])[-1]
    assert with_mix.phase == at_mean.phase == "total"
    assert with_mix.flops == pytest.approx(math.fsum(request_flops(i, o) for i, o in lengths))
    assert with_mix.flops > at_mean.flops * 1.01


# --- workload files ----------------------------------------------------------------------------


def workload(tmp_path: Path, lines: list[Any], name: str = "w.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_a_trace_is_sorted_by_arrival_and_starts_at_zero(tmp_path: Path) -> None:
    path = workload(tmp_path, ["# a comment", {"input_tokens": 9, "output_tokens": 2, "arrival_s": 5.5},
                               {"input_tokens": 7, "output_tokens": 3, "arrival_s": 2.0}, ""])
    w = read_workload(path)
    assert w.lengths == ((7, 3), (9, 2)) and w.arrivals_s == (0.0, 3.5) and w.is_trace
    plain = read_workload(workload(tmp_path, [{"input_tokens": 9, "output_tokens": 2}], "p.jsonl"))
    assert plain.arrivals_s is None and plain.longest == (9, 2) and plain.digest != w.digest


@pytest.mark.parametrize(("lines", "message"), [
    ([{"input_tokens": 9}], "line 1: field 'output_tokens': missing"),
    ([{"input_tokens": 0, "output_tokens": 2}], "line 1: field 'input_tokens'"),
    ([{"input_tokens": 2.5, "output_tokens": 2}], "line 1: field 'input_tokens'"),
    ([{"input_tokens": True, "output_tokens": 2}], "line 1: field 'input_tokens'"),
    ([{"input_tokens": 3, "output_tokens": 2, "arrival": 1}], "line 1: unknown field(s) 'arrival'"),
    ([{"input_tokens": 3, "output_tokens": 2, "arrival_s": -1}], "line 1: field 'arrival_s'"),
    ([{"input_tokens": 3, "output_tokens": 2, "arrival_s": 1}, {"input_tokens": 3, "output_tokens": 2}],
     "request 2 lacks 'arrival_s'"),
    (["[1, 2]"], "line 1: expected a JSON object"),
    (["{nope"], "line 1: not valid JSON"),
    (["# only a comment"], "no requests"),
])
def test_a_malformed_workload_names_its_line_and_field(tmp_path: Path, lines: list[Any], message: str) -> None:
    path = workload(tmp_path, lines)
    with pytest.raises(InputFileError) as caught:
        read_workload(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


# --- run: drawn lengths, a workload, a trace and a duration, against the synthetic server -----


@pytest.fixture
def synthetic() -> Iterator[SyntheticServer]:
    server = SyntheticServer()
    yield server
    server.close()


@pytest.fixture
def stub_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    def rows(m: Measurement) -> list[dict[str, Any]]:
        return [{"phase": "total", "seconds": m.duration_s}]
    monkeypatch.setattr(run_command, "_analysis", lambda args: (rows, 8192, None))


def base(url: str, out: Path, *more: str) -> list[str]:
    return ["run", "--endpoint", url, "--model", "m", "--hardware", "cpu", "--out", str(out),
            "--seed", "5", "--warmup-requests", "1", *more]


def requests_of(out: Path) -> list[dict[str, Any]]:
    return [r for line in out.read_text().splitlines() if (r := json.loads(line))["type"] == "request"]


@pytest.mark.usefixtures("stub_analysis")
def test_drawn_lengths_are_exact_per_request_and_their_mix_is_kept(
        synthetic: SyntheticServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "drawn.jsonl"
    args = base(synthetic.url, out, "--concurrency", "3", "--num-requests", "24",
                "--input-tokens", "4:40", "--output-tokens", "2:6")
    assert cli.main(args) == 0
    (key,) = read_results(out).points
    assert key == ("concurrency", 3.0, "4:40", "2:6")
    sent = requests_of(out)
    assert len(sent) == 24 and len({(r["input_tokens"], r["output_tokens"]) for r in sent}) > 3
    assert all(r["input_tokens"] == r["requested_input_tokens"] and 4 <= r["input_tokens"] <= 40
               and r["output_tokens"] == r["requested_output_tokens"] and 2 <= r["output_tokens"] <= 6
               for r in sent)
    (m,) = load_measurements(out)
    assert m.mix == RequestMix.of((r["input_tokens"], r["output_tokens"]) for r in sent)
    assert m.input_tokens == pytest.approx(statistics.fmean(r["input_tokens"] for r in sent))
    assert "input_count" not in m.extra["flags"] and "output_count" not in m.extra["flags"]
    capsys.readouterr()
    assert cli.main([*args, "--resume"]) == 0  # the level's key holds its distributions
    assert len(requests_of(out)) == 24


@pytest.mark.usefixtures("stub_analysis")
def test_a_trace_is_sent_at_its_recorded_times(synthetic: SyntheticServer, tmp_path: Path) -> None:
    arrivals = [0.0, 0.05, 0.1, 0.3, 0.35, 0.6]
    path = workload(tmp_path, [{"input_tokens": 3 + k, "output_tokens": 2 + k % 3, "arrival_s": t}
                               for k, t in enumerate(arrivals)])
    out = tmp_path / "trace.jsonl"
    assert cli.main(base(synthetic.url, out, "--workload", str(path), "--warmup-requests", "0")) == 0
    (point,) = read_results(out).points.values()
    assert point["load"]["kind"] == "trace" and point["lengths"][0].startswith("workload w.jsonl")
    sent = sorted(requests_of(out), key=lambda r: r["sent_after_s"])
    assert [(r["input_tokens"], r["output_tokens"]) for r in sent] == [
        (3 + k, 2 + k % 3) for k in range(len(arrivals))]
    offsets = [r["sent_after_s"] for r in sent]
    assert all(abs(got - want) < 0.05 for got, want in zip(offsets, arrivals, strict=True))
    (m,) = load_measurements(out)
    assert m.load == Load("trace") and m.completed == len(arrivals) and m.mix is not None


@pytest.mark.usefixtures("stub_analysis")
def test_a_workload_without_times_gives_the_lengths_in_order_under_a_rate(
        synthetic: SyntheticServer, tmp_path: Path) -> None:
    path = workload(tmp_path, [{"input_tokens": 5, "output_tokens": 2}, {"input_tokens": 9, "output_tokens": 4}])
    out = tmp_path / "rate.jsonl"
    assert cli.main(base(synthetic.url, out, "--workload", str(path), "--request-rate", "40",
                         "--num-requests", "6", "--warmup-requests", "0")) == 0
    sent = sorted(requests_of(out), key=lambda r: r["sent_after_s"])
    assert [(r["input_tokens"], r["output_tokens"]) for r in sent] == [(5, 2), (9, 4)] * 3


@pytest.mark.usefixtures("stub_analysis")
def test_a_duration_ends_the_sending_not_the_requests(synthetic: SyntheticServer, tmp_path: Path) -> None:
    out = tmp_path / "timed.jsonl"
    assert cli.main(base(synthetic.url, out, "--concurrency", "2", "--duration", "0.5",
                         "--input-tokens", "5", "--output-tokens", "3")) == 0
    sent = requests_of(out)
    assert len(sent) >= 4  # the synthetic server answers in milliseconds
    assert all(r["sent_after_s"] < 0.5 + 0.05 for r in sent)
    assert all(r["output_tokens"] == 3 for r in sent)
    (point,) = read_results(out).points.values()
    assert point["measurement"]["extra"]["stop"] == "0.5 s of requests"


@pytest.mark.parametrize(("extra", "message"), [
    (["--input-tokens", "4:9", "--output-tokens", "3"], "are for runs under load"),
    (["--input-tokens", "4", "--output-tokens", "3", "--duration", "2"], "are for runs under load"),
    (["--concurrency", "2", "--input-tokens", "4", "--output-tokens", "3", "--duration", "2",
      "--num-requests", "5"], "not both"),
    (["--concurrency", "2", "--output-tokens", "3"], "--input-tokens is required"),
])
def test_length_options_are_checked_before_anything_is_sent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    out = tmp_path / "x.jsonl"
    assert cli.main(base("http://127.0.0.1:9", out, *extra)) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_a_trace_and_a_concurrency_are_one_load_too_many(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = workload(tmp_path, [{"input_tokens": 5, "output_tokens": 2, "arrival_s": 0}])
    assert cli.main(base("http://127.0.0.1:9", tmp_path / "x.jsonl", "--workload", str(path),
                         "--concurrency", "2")) == 2
    assert "one load per run" in capsys.readouterr().err
    assert cli.main(base("http://127.0.0.1:9", tmp_path / "x.jsonl", "--workload", str(path),
                         "--input-tokens", "4")) == 2
    assert "gives every request's lengths" in capsys.readouterr().err


def test_a_vllm_bench_run_of_several_lengths_carries_its_mix(tmp_path: Path) -> None:
    doc = json.loads((Path(__file__).parent / "data" / "vllm_bench" / "live_concurrency.json").read_text())
    n = len(doc["input_lens"])
    doc["input_lens"] = [64 + 32 * (k % 3) for k in range(n)]
    doc["total_input_tokens"] = sum(doc["input_lens"])
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(doc))
    (m,) = load_measurements(path)
    ok = [k for k in range(n) if not doc["errors"][k]]
    assert m.mix == RequestMix.of((doc["input_lens"][k], doc["output_lens"][k]) for k in ok)
    assert m.input_tokens == pytest.approx(statistics.fmean(doc["input_lens"][k] for k in ok))
