"""Record SGLang ``bench_serving`` results with SGLang's own client, against a synthetic server.

    python tests/data/sglang_bench/record.py OUT_FILE TOKENIZER_DIR    # sglang installed (README.md)

Starts ``synthetic_server.py`` (beside this file) twice (a streaming ``/v1/completions`` server
with no model: 20 ms to the first chunk, 5 ms between chunks; the second answers every 3rd
request with HTTP 500), then runs ``python -m sglang.bench_serving`` three times with
``--output-file OUT_FILE``, which appends one result object per line:

1. ``--max-concurrency 4 --output-details`` (a closed loop of 4, with the per-request arrays);
2. ``--request-rate 8`` (Poisson arrivals), summary only;
3. every prompt at once (rate ``inf``, no concurrency limit) against the failing server,
   ``--output-details``.

Common: ``--backend sglang-oai --dataset-name random-ids --random-input-len 128
--random-output-len 16 --random-range-ratio 1.0 --num-prompts 12 --seed 1``, the tokenizer of
``python -m mfubench.measure.tiny_model DIR test``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVER = Path(__file__).with_name("synthetic_server.py")
RUNS = [
    (8012, ["--max-concurrency", "4", "--output-details"]),
    (8012, ["--request-rate", "8"]),
    (8013, ["--output-details"]),
]


def main() -> None:
    out, tokenizer = Path(sys.argv[1]), sys.argv[2]
    servers = [subprocess.Popen([sys.executable, str(SERVER), "8012"]),
               subprocess.Popen([sys.executable, str(SERVER), "8013", "3"])]
    try:
        for port in (8012, 8013):
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
        for port, args in RUNS:
            subprocess.run(
                [sys.executable, "-m", "sglang.bench_serving", "--backend", "sglang-oai",
                 "--host", "127.0.0.1", "--port", str(port), "--model", "meta-llama/Llama-3.1-8B",
                 "--tokenizer", tokenizer, "--dataset-name", "random-ids",
                 "--random-input-len", "128", "--random-output-len", "16",
                 "--random-range-ratio", "1.0", "--num-prompts", "12", "--seed", "1",
                 "--disable-tqdm", "--output-file", str(out), *args],
                check=True, stdout=subprocess.DEVNULL,
                env={**os.environ, "HF_HUB_OFFLINE": "1"})  # the tokenizer is local
    finally:
        for server in servers:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
