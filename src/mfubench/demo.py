"""``make demo``: the main job end to end on the embedded default, on this machine's CPU.

1. Build a Llama-architecture model folder locally (config + a tokenizer trained here; vLLM
   gives it random weights with ``--load-format dummy``): hidden 768, 12 layers, 88 M
   parameters, large enough that prefill is compute-bound and decode memory-bound on a CPU.
2. ``mfubench calibrate --threads 1``: the CPU's achievable GEMM FLOP/s and memory bandwidth
   with the one thread vLLM's engine uses; these measured figures are the CPU's peaks.
3. ``mfubench run --launch vllm``: start vLLM CPU on it, sweep batch sizes for prefill
   (one output token) and decode (``DECODE_TOKENS`` output tokens), exact token counts, and
   print MFU and MBU per phase against the measured peaks.
4. ``mfubench report``: the same results as a self-contained HTML report.

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

    from mfubench.measure.tiny_model import DEMO, build_tiny_model

    step("1/4 building the demo model folder (Llama, 88 M parameters, local tokenizer)")
    model = build_tiny_model(root / "model", DEMO)
    code = cli(["flops", str(model), "--input-tokens", INPUT_TOKENS, "--output-tokens", "32",
                "--batch", "8"])
    if code:
        return code

    step("2/4 measuring this CPU's peaks with one thread (the thread vLLM's engine uses)")
    code = cli(["calibrate", "--threads", "1"])
    if code:
        return code

    results = root / "results.jsonl"
    if results.exists():
        results.unlink()
    step("3/4 launching vLLM CPU and sweeping prefill and decode (exact token counts)")
    code = cli(["run", "--launch", "vllm", "--model", str(model), "--hardware", "cpu:1",
                "--batch-sizes", BATCH_SIZES, "--input-tokens", INPUT_TOKENS,
                "--output-tokens", OUTPUT_TOKENS, "--repeats", "1", "--warmup", "1",
                "--out", str(results)])
    if code:
        return code

    step("4/4 the HTML report")
    report = root / "report.html"
    code = cli(["report", str(results), "--model", str(model), "--hardware", "cpu:1",
                "-o", str(report)])
    if code:
        return code
    print(f"\nresults {results}\nreport  {report}\ndemo took {time.monotonic() - started:.0f} s",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
