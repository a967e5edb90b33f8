"""Integration tests against llama.cpp's real server (the ``xllamacpp`` wheel), started here on
the tiny model written as GGUF: the engine is detected, every request is exact in length
(``ignore_eos`` + ``max_tokens``, ``cache_prompt`` off), its token counters match the client's,
its own timings agree with the client's, and ``--launch llama.cpp`` converts a folder and
counts the served file's exact bytes.

Marked ``llamacpp``; skipped (with the reason) where xllamacpp or gguf is not installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("xllamacpp", reason="llama.cpp's server comes from the xllamacpp wheel")
pytest.importorskip("gguf", reason="the tiny GGUF is written with the gguf package")

from mfubench import cli  # noqa: E402
from mfubench.measure.server import LaunchedServer, launch_llamacpp  # noqa: E402
from mfubench.measure.tiny_model import TEST, build_tiny_model  # noqa: E402
from mfubench.model.gguf_file import read_gguf  # noqa: E402
from mfubench.model.gguf_writer import write_gguf  # noqa: E402

pytestmark = pytest.mark.llamacpp


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny", TEST)


@pytest.fixture(scope="module")
def gguf_file(folder: Path) -> Path:
    return write_gguf(folder, folder.parent / "tiny-Q8_0.gguf", "Q8_0")


@pytest.fixture(scope="module")
def server(gguf_file: Path) -> Iterator[LaunchedServer]:
    with launch_llamacpp(gguf_file, log_path=gguf_file.parent / "llamacpp.log", ctx_per_slot=1024,
                         parallel=4) as launched:
        yield launched


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Run, and return the analysis rows of every point as the results file keeps them (the
    final tables leave out flagged points, and a busy machine may flag one client-bound)."""
    capsys.readouterr()
    assert cli.main(["run", *args, "--json"]) == 0
    out = Path(args[args.index("--out") + 1])
    return [row for line in lines(out) if line["type"] == "point" for row in line["rows"]]


def test_a_static_sweep_is_exact_and_the_engine_agrees(
        server: LaunchedServer, gguf_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "static.jsonl"
    rows = run(["--endpoint", server.url, "--model", str(gguf_file), "--hardware", "H100-SXM",
                "--batch-sizes", "1,2", "--input-tokens", "512", "--output-tokens", "24", "--repeats", "2",
                "--seed", "3", "--out", str(out)], capsys)
    got = lines(out)
    header = got[0]
    assert header["engine"] == "llama.cpp" and header["engine_version"]
    requests = [r for r in got if r["type"] == "request"]
    assert len(requests) == 2 * (1 + 2)  # two measured rounds per point (warm-up rounds are not logged)
    assert all((r["input_tokens"], r["output_tokens"], r["finish_reason"]) == (512, 24, "length")
               for r in requests)
    points = [r for r in got if r["type"] == "point"]
    assert len(points) == 2
    for point in points:
        assert point["flags"] == [] or set(point["flags"]) <= {"client-bound"}, point["flags"]
        extra = point["measurement"]["extra"]
        batch = point["batch_size"]
        # the engine's counters moved by exactly what the client asked, per round
        assert extra["server"]["prompt_tokens"] == 512 * batch
        assert extra["server"]["generation_tokens"] == 24 * batch
        timings = extra["engine_timings"]  # the client's add the HTTP path and the first sample
        if batch == 1:
            assert timings["prefill_s"] == pytest.approx(timings["client_ttft_s"], rel=0.05)
        else:  # a request's TTFT also waits for the prompts processed before its own
            assert timings["prefill_s"] < timings["client_ttft_s"]
        assert timings["decode_s"] == pytest.approx(timings["client_decode_s"], rel=0.05)
    phases = {r["phase"] for r in rows}
    assert phases == {"prefill", "decode", "total"}
    for r in rows:
        for key in ("mfu", "mbu"):
            assert r[key] is not None and (r[key] <= 1 or key in r["above_peak"])
    # the counted weight bytes are the file's tensor data exactly
    decode = next(r for r in rows if r["phase"] == "decode" and r["batch_size"] == 1)
    assert decode["bytes"] >= sum(t.n_bytes for t in read_gguf(gguf_file).tensors)


def test_a_concurrency_on_its_slots_is_exact(server: LaunchedServer, gguf_file: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "load.jsonl"
    rows = run(["--endpoint", server.url, "--model", str(gguf_file), "--hardware", "H100-SXM",
                "--concurrency", "3", "--num-requests", "18", "--warmup-requests", "3",
                "--input-tokens", "32:160", "--output-tokens", "8:16", "--seed", "4", "--out", str(out)], capsys)
    got = lines(out)
    requests = [r for r in got if r["type"] == "request"]
    assert len(requests) == 18
    assert all((r["input_tokens"], r["output_tokens"]) == (r["requested_input_tokens"], r["requested_output_tokens"])
               for r in requests)
    (point,) = [r for r in got if r["type"] == "point"]
    assert "server_counts" not in point["flags"] and "input_count" not in point["flags"]
    assert point["measurement"]["mix"] is not None
    assert {r["phase"] for r in rows} == {"decode", "total"}


def test_launch_converts_a_folder_and_counts_the_served_file(
        folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "launched.jsonl"
    rows = run(["--launch", "llama.cpp", "--model", str(folder), "--gguf-type", "Q4_K_M", "--hardware",
                "H100-SXM", "--batch-sizes", "2", "--input-tokens", "64", "--output-tokens", "8",
                "--repeats", "1", "--out", str(out)], capsys)
    header = lines(out)[0]
    served = tmp_path / f"{folder.name}-Q4_K_M.gguf"
    assert header["model"] == str(served) and header["converted_from"] == str(folder)
    assert header["engine"] == "llama.cpp" and header["launched"].startswith("xllamacpp ")
    assert served.is_file() and (tmp_path / "launched.jsonl.llamacpp.log").is_file()
    assert {r["phase"] for r in rows} == {"prefill", "decode", "total"}, rows
    # the decode step streams at least the file's tensor data (plus the KV cache)
    decode = next(r for r in rows if r["phase"] == "decode")
    assert decode["bytes"] >= sum(t.n_bytes for t in read_gguf(served).tensors)


def test_launch_refuses_what_llama_cpp_cannot_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["run", "--launch", "llama.cpp", "--hardware", "H100-SXM", "--input-tokens", "8",
            "--output-tokens", "2", "--out", str(tmp_path / "x.jsonl")]
    assert cli.main([*base, "--model", "Qwen/Qwen3-8B"]) == 2
    assert "serves a .gguf file or a local model folder" in capsys.readouterr().err
    assert cli.main([*base, "--model", str(tmp_path), "--gguf-type", "Q9_Z"]) == 2
    assert "--gguf-type Q9_Z" in capsys.readouterr().err
    assert cli.main(["run", "--endpoint", "http://127.0.0.1:9", "--model", "m", "--hardware", "cpu",
                     "--input-tokens", "8", "--output-tokens", "2", "--slots", "2"]) == 2
    assert "--slots sets a launched llama.cpp" in capsys.readouterr().err


def test_text_prompts_through_llama_cpps_own_tokenizer_are_exact(
        server: LaunchedServer, gguf_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--prompt-mode text`` aligns texts through llama.cpp's ``/tokenize`` (``content``,
    ``add_special``) and ``/detokenize``: usage has exactly the asked counts."""
    out = tmp_path / "text.jsonl"
    run(["--endpoint", server.url, "--model", str(gguf_file), "--hardware", "H100-SXM", "--batch-sizes", "2",
         "--input-tokens", "40", "--output-tokens", "6", "--repeats", "1", "--prompt-mode", "text",
         "--out", str(out)], capsys)
    got = lines(out)
    requests = [r for r in got if r["type"] == "request"]
    assert got[0]["prompt_mode"] == "text" and len(requests) == 2
    assert all((r["input_tokens"], r["output_tokens"], r["finish_reason"]) == (40, 6, "length") for r in requests)
