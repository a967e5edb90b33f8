"""Record ``vllm bench serve`` results against a real vLLM CPU server, with the engine's counters.

    python tests/data/vllm_bench/record_live.py OUT_DIR

Builds the TEST tiny model, starts vLLM CPU (``--enforce-eager --enable-mfu-metrics
--no-enable-prefix-caching``), and runs vLLM's own benchmark client twice: at a fixed
concurrency (``--max-concurrency 4``) and at a request rate (``--request-rate 20``, Poisson),
32 prompts of 128 random tokens, 32 output tokens, ``--ignore-eos``, ``--save-detailed``. Around
each run it reads ``/metrics`` and writes the deltas of the engine's counters
(``vllm:estimated_flops_per_gpu_total``, read and write bytes, prompt and generation tokens)
beside the result, as ``<name>.counters.json``. This is how ``live_concurrency.json`` and
``live_rate.json`` were made (see README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from mfubench.measure.metrics import parse_prometheus, total
from mfubench.measure.server import launch_vllm
from mfubench.measure.tiny_model import TEST, build_tiny_model

COUNTERS = ("vllm:estimated_flops_per_gpu_total", "vllm:estimated_read_bytes_per_gpu_total",
            "vllm:estimated_write_bytes_per_gpu_total", "vllm:prompt_tokens_total",
            "vllm:generation_tokens_total")
RUNS = {"live_concurrency": ["--max-concurrency", "4"],
        "live_rate": ["--request-rate", "20", "--burstiness", "1.0"]}


def counters(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    samples = parse_prometheus(text)
    return {name: total(samples, name) or 0.0 for name in COUNTERS}


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_tiny_model(out / "tiny", TEST)
    args = ["--enforce-eager", "--enable-mfu-metrics", "--no-enable-prefix-caching"]
    with launch_vllm(str(model), log_path=out / "vllm.log", extra_args=args) as server:
        for name, load in RUNS.items():
            before = counters(server.url)
            subprocess.run([
                sys.executable, "-m", "mfubench.measure.vllm_launcher", "bench", "serve",
                "--backend", "openai", "--base-url", server.url, "--endpoint", "/v1/completions",
                "--model", str(model), "--tokenizer", str(model), "--dataset-name", "random",
                "--random-input-len", "128", "--random-output-len", "32", "--num-prompts", "32",
                "--ignore-eos", "--save-result", "--save-detailed", "--result-dir", str(out),
                "--result-filename", f"{name}.json", "--seed", "1", *load,
            ], check=True)
            after = counters(server.url)
            delta = {k: after[k] - before[k] for k in COUNTERS}
            (out / f"{name}.counters.json").write_text(json.dumps(delta, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
