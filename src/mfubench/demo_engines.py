"""``make demo-engines``: one model, two real engines, swept alike and set side by side.

1. Build the demo's model folder (Llama, 88 M parameters, local tokenizer) and write it as a
   GGUF file in F32 (:mod:`mfubench.model.gguf_writer`): the same architecture and the same
   weight bytes as the folder served in fp32 (the file's tensor data equals the counted bytes).
2. ``mfubench calibrate --threads 1 --dtypes fp32``: this CPU's fp32 GEMM peak with one thread,
   the one thread each engine computes with. Both engines run fp32 so that one peak, one
   count and one roofline hold for both: the comparison is of the engines, not of dtypes.
3. ``mfubench run --launch vllm --dtype fp32`` and ``mfubench run --launch llama.cpp`` on the
   GGUF file, each over the same batches and lengths (prefill: one output token; decode: 32).
4. ``mfubench compare``: the two runs matched point by point (MFU, MBU, seconds, and each ratio
   to vLLM), in the terminal and as ``.demo-engines/compare.html``.

Results land in ``.demo-engines/`` (``MFUBENCH_DEMO_DIR`` to change it). llama.cpp's wheel is
built for AVX2 (no AVX-512, no AMX: its ``get_system_info`` says so); vLLM's oneDNN uses what
the CPU has. That difference is part of what the comparison shows, and is printed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mfubench.cli import main as cli
from mfubench.demo import step

BATCH_SIZES = "1,4"
INPUT_TOKENS = "256"
OUTPUT_TOKENS = "1,32"


def main() -> int:
    root = Path(os.environ.get("MFUBENCH_DEMO_DIR", ".demo-engines")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        import xllamacpp
    except ImportError:
        print("demo-engines needs llama.cpp's server: pip install 'mfubench[llamacpp]'", file=sys.stderr)
        return 2
    from mfubench.measure.tiny_model import DEMO, build_tiny_model
    from mfubench.model.gguf_writer import write_gguf

    step("1/4 the demo model folder, and the same model as a GGUF file (F32)")
    model = build_tiny_model(root / "model", DEMO)
    gguf = root / "model-F32.gguf"
    if not gguf.exists():
        write_gguf(model, gguf, "F32")
    print(f"{model}\n{gguf}\nllama.cpp build: {xllamacpp.get_system_info().strip()}", flush=True)

    step("2/4 this CPU's fp32 peak with one thread, the thread each engine computes with")
    code = cli(["calibrate", "--threads", "1", "--model", str(model), "--dtypes", "fp32"])
    if code:
        return code

    sweep = ["--hardware", "cpu:1", "--batch-sizes", BATCH_SIZES, "--input-tokens", INPUT_TOKENS,
             "--output-tokens", OUTPUT_TOKENS, "--repeats", "2", "--warmup", "1", "--seed", "1"]
    runs = {"vllm": root / "vllm.jsonl", "llama.cpp": root / "llamacpp.jsonl"}
    for path in runs.values():
        if path.exists():
            path.unlink()
    step("3/4 vLLM CPU (fp32), then llama.cpp (F32 GGUF), over the same points")
    code = cli(["run", "--launch", "vllm", "--model", str(model), "--dtype", "fp32", *sweep,
                "--out", str(runs["vllm"])])
    if code:
        return code
    code = cli(["run", "--launch", "llama.cpp", "--model", str(gguf), "--slots", "4", *sweep,
                "--out", str(runs["llama.cpp"])])
    if code:
        return code

    step("4/4 side by side: mfubench compare (ratios to vLLM)")
    html = root / "compare.html"
    code = cli(["compare", str(runs["vllm"]), str(runs["llama.cpp"]), "--label", "vLLM", "--label",
                "llama.cpp", "--model", str(model), "--dtype", "fp32", "--hardware", "cpu:1",
                "-o", str(html), "--title", "vLLM CPU and llama.cpp on one core, one model"])
    if code:
        return code
    print(f"\nresults {runs['vllm']}, {runs['llama.cpp']}\ncompare {html}\n"
          f"demo-engines took {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
