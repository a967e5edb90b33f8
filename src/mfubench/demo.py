"""``make demo``: the main job end to end on the embedded default, on this machine's CPU.

1. Build a Llama-architecture model folder locally (config + a tokenizer trained here; vLLM
   gives it random weights with ``--load-format dummy``): hidden 768, 12 layers, 88 M
   parameters, large enough that prefill is compute-bound and decode memory-bound on a CPU.
2. Choose the dtype vLLM CPU runs natively on this CPU (:func:`mfubench.hardware.cpu_isa.
   serving_dtype`): bf16 where the CPU has AVX512_BF16 or AMX (or Arm BF16), else fp32, since
   bf16 on an AVX2-only CPU is emulated through fp32 at a tenth of its speed. An ISA capped by
   ``ONEDNN_MAX_CPU_ISA`` / ``ATEN_CPU_CAPABILITY`` counts as that ISA.
3. ``mfubench calibrate --threads 1 --model DIR --dtypes D``: the CPU's achievable GEMM FLOP/s
   in that dtype at the model's own projection shapes, through every path vLLM CPU can take,
   and the memory bandwidth, with the one thread vLLM's engine uses; these measured figures are
   the CPU's peaks.
4. ``mfubench run --launch vllm --dtype D``: start vLLM CPU on it, sweep batch sizes for prefill
   (one output token) and decode (32 output tokens), exact token counts, and print MFU and MBU
   per phase against the measured peaks.
5. ``mfubench report``: the same results as a self-contained HTML report.

The model, results and report land in ``.demo/`` (``MFUBENCH_DEMO_DIR`` to change it); the
calibration is stored where ``mfubench calibrate`` always stores it, so ``--hardware cpu:1``
works afterwards. A rerun reuses the model folder and measures afresh.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mfubench.cli import main as cli

BATCH_SIZES = "1,4,8"
INPUT_TOKENS = "256"
OUTPUT_TOKENS = "1,32"


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    root = Path(os.environ.get("MFUBENCH_DEMO_DIR", ".demo")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    from mfubench.hardware.cpu_isa import local_isa, serving_dtype
    from mfubench.measure.tiny_model import DEMO, build_tiny_model

    dtype, why = serving_dtype(local_isa())
    step("1/4 building the demo model folder (Llama, 88 M parameters, local tokenizer)")
    model = build_tiny_model(root / "model", DEMO)
    code = cli(["flops", str(model), "--input-tokens", INPUT_TOKENS, "--output-tokens", "32",
                "--batch", "8", "--dtype", dtype])
    if code:
        return code

    step(f"2/4 serving {dtype}: {why}; measuring this CPU's {dtype} peak at the model's shapes "
         "with one thread (the thread vLLM's engine uses)")
    code = cli(["calibrate", "--threads", "1", "--model", str(model), "--dtypes", dtype])
    if code:
        return code

    results = root / "results.jsonl"
    if results.exists():
        results.unlink()
    step("3/4 launching vLLM CPU and sweeping prefill and decode (exact token counts)")
    code = cli(["run", "--launch", "vllm", "--model", str(model), "--hardware", "cpu:1",
                "--dtype", dtype, "--batch-sizes", BATCH_SIZES, "--input-tokens", INPUT_TOKENS,
                "--output-tokens", OUTPUT_TOKENS, "--repeats", "1", "--warmup", "1",
                "--out", str(results)])
    if code:
        return code

    step("4/4 the HTML report")
    report = root / "report.html"
    code = cli(["report", str(results), "--model", str(model), "--hardware", "cpu:1",
                "--dtype", dtype, "-o", str(report)])
    if code:
        return code
    print(f"\nresults {results}\nreport  {report}\ndemo took {time.monotonic() - started:.0f} s",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
