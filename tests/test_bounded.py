"""Every input is answered in bounded time and memory, or refused with one clear line.

The commands run in a child process under ``resource.setrlimit`` (address space) and a timer,
as a careless user or a broken script would call them: the inputs of the issue (a trillion
tokens, a batch of 10^10), the limits on both sides of 2^40, and a property test over extreme
arguments (:mod:`extreme`) that accepts a result or a clear error, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LLAMA70 = "meta-llama/Llama-3.3-70B-Instruct"
#: Address space of the child: Python, rich and mfubench fit in well under this; a count that
#: built a tuple per sequence or a loop over steps would not.
MEMORY_LIMIT = 1536 * 2**20
TIME_LIMIT_S = 20

_CHILD = textwrap.dedent("""
    import json, resource, signal, sys, time, io, contextlib
    resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
    signal.setitimer(signal.ITIMER_REAL, {seconds})  # SIGALRM ends a command that runs away
    from mfubench.cli import main
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(json.loads(sys.argv[1]))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    # the peak RSS of this program: VmHWM starts afresh at exec (ru_maxrss keeps the forked
    # parent's, a pytest that may hold torch), with ru_maxrss where /proc is not there
    try:
        with open("/proc/self/status") as status:
            rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({{"code": code, "seconds": time.perf_counter() - start, "rss": rss,
                      "stdout": out.getvalue()[-2000:], "stderr": err.getvalue()[-2000:]}}))
""")


def run_bounded(argv: list[str]) -> dict[str, object]:
    """Run ``mfubench argv`` in a child under the limits; its exit code, time, peak RSS, output."""
    code = _CHILD.format(memory=MEMORY_LIMIT, seconds=TIME_LIMIT_S)
    done = subprocess.run([sys.executable, "-c", code, json.dumps(argv)], capture_output=True,
                          text=True, timeout=TIME_LIMIT_S + 30, check=False)
    assert done.returncode == 0, f"{argv}: the child died ({done.returncode}): {done.stderr[-1500:]}"
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "Traceback" not in str(result["stderr"]) and "Traceback" not in done.stderr, result
    return result


@pytest.mark.parametrize("argv", [
    ["flops", LLAMA70, "-i", "1000000000000", "-b", "100000000", "--json"],
    ["flops", LLAMA70, "-i", str(2**40), "-o", str(2**40), "-b", str(2**40), "--json"],
    ["roofline", LLAMA70, "--hardware", "4xH100-SXM", "-b", str(2**40), "-i", str(2**40), "-o", str(2**40), "--json"],
])
def test_extreme_but_allowed_inputs_answer_in_bounded_time_and_memory(argv: list[str]) -> None:
    result = run_bounded(argv)
    assert result["code"] == 0, result
    assert float(str(result["seconds"])) < 10
    assert int(str(result["rss"])) < 400e6  # a few hundred MB at most


def test_a_batch_of_ten_billion_in_a_results_file_is_analysed_not_a_memory_error(tmp_path: Path) -> None:
    table = tmp_path / "huge.csv"
    table.write_text("batch_size,input_tokens,output_tokens,elapsed_s\n10000000000,2048,1,1.0\n")
    result = run_bounded(["analyze", str(table), "--model", LLAMA70, "--hardware", "4xH100-SXM", "--json"])
    assert result["code"] == 0, result
    assert int(str(result["rss"])) < 400e6


@pytest.mark.parametrize(("argv", "message"), [
    (["flops", LLAMA70, "-i", str(2**40 + 1)], "--input-tokens/-i: '1099511627777' is too large: at most 2^40"),
    (["flops", LLAMA70, "-i", "1", "-b", "10000000000000000000"], "--batch/-b"),
    (["roofline", LLAMA70, "--hardware", "H100-SXM", "-b", f"1,{2**41}"], "each value must be at most 2^40"),
])
def test_inputs_beyond_the_limit_are_refused_naming_the_field(argv: list[str], message: str) -> None:
    result = run_bounded(argv)
    assert result["code"] == 2 and message in str(result["stderr"]), result


def test_a_results_row_beyond_the_limit_names_the_file_row_and_field(tmp_path: Path) -> None:
    table = tmp_path / "huge.csv"
    table.write_text(f"batch_size,input_tokens,output_tokens,elapsed_s\n1,{2**41},1,1.0\n")
    result = run_bounded(["analyze", str(table), "--model", LLAMA70, "--hardware", "H100-SXM"])
    assert result["code"] == 2
    assert "huge.csv:row 1: input_tokens 2.19902e+12 exceeds 2^40" in str(result["stderr"]), result


_PROPERTY_CHILD = textwrap.dedent("""
    import contextlib, io, json, math, os, resource, signal, sys, tempfile
    resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
    sys.path.insert(0, {tests!r})
    from hypothesis import given, settings, strategies as st, HealthCheck
    from extreme import extreme_numbers
    from mfubench.cli import main

    class Slow(Exception):
        pass

    def alarm(signum, frame):
        raise Slow()

    signal.signal(signal.SIGALRM, alarm)
    extreme = extreme_numbers.map(lambda v: str(v) if not isinstance(v, float) or math.isfinite(v) else repr(v))
    # valid sizes often enough that most commands run to a result, extremes around them
    number = st.integers(1, 4096).map(str) | st.integers(1, 2**40).map(str) | extreme
    MODEL = st.sampled_from(["meta-llama/Llama-3.3-70B-Instruct", "deepseek-ai/DeepSeek-V3", "openai/gpt-oss-20b"])
    HW = st.sampled_from(["4xH100-SXM", "H100-SXM", "8xB200"])
    TMP = tempfile.mkdtemp()

    @st.composite
    def argv(draw):
        command = draw(st.sampled_from(["flops", "roofline", "analyze"]))
        if command == "flops":
            return ["flops", draw(MODEL), "-i", draw(number), "-o", draw(number), "-b", draw(number),
                    "--tp", draw(st.sampled_from(["1", "2", "8", draw(number)])), "--json"]
        if command == "roofline":
            return ["roofline", draw(MODEL), "--hardware", draw(HW), "-b", draw(number),
                    "-i", draw(number), "-o", draw(number), "--json"]
        cells = [draw(number) for _ in range(5)]
        path = os.path.join(TMP, "t.csv")
        with open(path, "w") as f:
            f.write("batch_size,input_tokens,output_tokens,ttft_s,itl_s\\n" + ",".join(cells) + "\\n")
        return ["analyze", path, "--model", draw(MODEL), "--hardware", draw(HW), "--json"]

    seen = []

    @settings(max_examples={examples}, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(argv())
    def check(args):
        out, err = io.StringIO(), io.StringIO()
        signal.setitimer(signal.ITIMER_REAL, {seconds})
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(args)
                except SystemExit as exc:
                    code = exc.code
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        assert code in (0, 2), (args, code, err.getvalue()[-500:])
        if code == 2:
            assert err.getvalue().strip(), args  # a refusal says why
        seen.append(code)

    check()
    print(json.dumps({{"examples": len(seen), "ok": seen.count(0), "refused": seen.count(2)}}))
""")


@pytest.mark.slow
def test_property_any_extreme_arguments_give_a_result_or_a_clear_error() -> None:
    code = _PROPERTY_CHILD.format(memory=MEMORY_LIMIT, seconds=10, examples=60,
                                  tests=str(Path(__file__).parent))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["examples"] >= 60 and summary["ok"] > 0 and summary["refused"] > 0, summary
