"""Prometheus text parsing and counter deltas over a window, on text samples shaped like vLLM's."""

from __future__ import annotations

import math

import pytest

from mfubench.errors import ServerError
from mfubench.measure.metrics import parse_prometheus, server_delta, total

BEFORE = """\
# HELP vllm:estimated_flops_per_gpu_total Estimated FLOPs.
# TYPE vllm:estimated_flops_per_gpu_total counter
vllm:estimated_flops_per_gpu_total{engine="0",model_name="/tmp/mt"} 6.9066752e+07
vllm:estimated_flops_per_gpu_created{engine="0",model_name="/tmp/mt"} 1.795800447043485e+09
vllm:estimated_read_bytes_per_gpu_total{engine="0",model_name="/tmp/mt"} 4.4869632e+07
vllm:estimated_write_bytes_per_gpu_total{engine="0",model_name="/tmp/mt"} 313344.0
vllm:prompt_tokens_total{engine="0",model_name="/tmp/mt"} 8.0
vllm:generation_tokens_total{engine="0",model_name="/tmp/mt"} 4.0
vllm:request_prefill_time_seconds_bucket{engine="0",le="+Inf",model_name="/tmp/mt"} 1.0
vllm:request_prefill_time_seconds_count{engine="0",model_name="/tmp/mt"} 1.0
vllm:request_prefill_time_seconds_sum{engine="0",model_name="/tmp/mt"} 0.0125
vllm:request_decode_time_seconds_count{engine="0",model_name="/tmp/mt"} 1.0
vllm:request_decode_time_seconds_sum{engine="0",model_name="/tmp/mt"} 0.25
"""

AFTER = """\
vllm:estimated_flops_per_gpu_total{engine="0",model_name="/tmp/mt"} 1.0e+08
vllm:estimated_read_bytes_per_gpu_total{engine="0",model_name="/tmp/mt"} 5.0e+07
vllm:estimated_write_bytes_per_gpu_total{engine="0",model_name="/tmp/mt"} 413344.0
vllm:prompt_tokens_total{engine="0",model_name="/tmp/mt"} 72.0
vllm:generation_tokens_total{engine="0",model_name="/tmp/mt"} 12.0
vllm:request_prefill_time_seconds_count{engine="0",model_name="/tmp/mt"} 3.0
vllm:request_prefill_time_seconds_sum{engine="0",model_name="/tmp/mt"} 0.0625
vllm:request_decode_time_seconds_count{engine="0",model_name="/tmp/mt"} 3.0
vllm:request_decode_time_seconds_sum{engine="0",model_name="/tmp/mt"} 0.75
vllm:request_queue_time_seconds_count{engine="0",model_name="/tmp/mt"} 2.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="/tmp/mt"} 0.001
"""


def test_parse_keys_by_name_and_sorted_labels() -> None:
    samples = parse_prometheus(BEFORE)
    key = ("vllm:prompt_tokens_total", (("engine", "0"), ("model_name", "/tmp/mt")))
    assert samples[key] == 8.0
    bucket = ("vllm:request_prefill_time_seconds_bucket", (("engine", "0"), ("le", "+Inf"), ("model_name", "/tmp/mt")))
    assert samples[bucket] == 1.0
    assert len(samples) == 11  # HELP/TYPE lines are not samples


def test_parse_values_timestamps_and_escapes() -> None:
    text = (
        'a_total 3 1700000000000\n'
        'b{x="q\\"uote",y="back\\\\slash",z="new\\nline"} +Inf\n'
        "c NaN\n"
        "d{} -1.5e-3\n"
        'e{le="0.5",} 7\n'
    )
    s = parse_prometheus(text)
    assert s[("a_total", ())] == 3.0
    assert s[("b", (("x", 'q"uote'), ("y", "back\\slash"), ("z", "new\nline")))] == math.inf
    assert math.isnan(s[("c", ())])
    assert s[("d", ())] == -1.5e-3
    assert s[("e", (("le", "0.5"),))] == 7.0


@pytest.mark.parametrize("line", ["vllm:x{engine=0} 1", "vllm:x 1e+", "{a=\"b\"} 1", "vllm:x"])
def test_malformed_line_is_a_server_error_naming_the_line(line: str) -> None:
    with pytest.raises(ServerError, match="line 2"):
        parse_prometheus("ok 1\n" + line + "\n")


def test_total_sums_over_label_sets_and_is_none_when_absent() -> None:
    s = parse_prometheus('t{engine="0"} 2\nt{engine="1"} 3.5\n')
    assert total(s, "t") == 5.5
    assert total(s, "missing") is None


def test_server_delta_of_counters_and_histograms() -> None:
    d = server_delta(parse_prometheus(BEFORE), parse_prometheus(AFTER))
    assert d.flops == pytest.approx(1.0e8 - 6.9066752e7)
    assert d.read_bytes == pytest.approx(5.0e7 - 4.4869632e7)
    assert d.write_bytes == 100000.0
    assert d.prompt_tokens == 64.0
    assert d.generation_tokens == 8.0
    assert d.prefill_time_sum_s == pytest.approx(0.05)
    assert d.prefill_time_count == 2.0
    assert d.mean_s("prefill") == pytest.approx(0.025)
    assert d.mean_s("decode") == pytest.approx(0.25)
    # the queue histogram is missing before the window: unknown, not zero
    assert d.queue_time_count is None
    assert d.mean_s("queue") is None


def test_counter_reset_gives_none_not_a_negative_delta() -> None:
    d = server_delta(parse_prometheus(AFTER), parse_prometheus(BEFORE))
    assert d.flops is None
    assert d.prompt_tokens is None


def test_no_mfu_metrics_server_gives_none_everywhere() -> None:
    d = server_delta(parse_prometheus("other_total 1\n"), parse_prometheus("other_total 2\n"))
    assert d.flops is None and d.generation_tokens is None and d.mean_s("decode") is None
