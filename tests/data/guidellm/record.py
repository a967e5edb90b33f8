"""Record guidellm benchmark reports with guidellm itself, against guidellm's own mock server.

    python tests/data/guidellm/record.py OUT_DIR TOKENIZER_DIR      # guidellm installed (README.md)

Starts ``guidellm mock-server`` (an OpenAI-compatible server with no model: 60 ms to the first
token, 15 ms between tokens, 16 output tokens), then runs ``guidellm run`` three times, each
writing its ``--output kind=json`` report (``GenerativeBenchmarksReport.save_file``), then
compresses each report with gzip (the reports are 100 KB per benchmark: every metric carries its
distribution per request status). The reports are guidellm's own bytes; ``gunzip`` restores them.

- ``sweep.json``: ``--profile kind=sweep,sweep_size=3``: synchronous, throughput, and one
  constant rate between the two;
- ``concurrent.json``: ``--profile {"kind":"concurrent","streams":[2,4]}``;
- ``poisson.json``: ``--profile kind=poisson,rate=4``.

Each strategy stops after 8 requests; the synthetic prompts ask for 128 tokens of
TOKENIZER_DIR's tokenizer (``python -m mfubench.measure.tiny_model DIR test``). The token counts
in the reports are the mock server's (guidellm prefers the server's usage by default), whose own
tokenizer counts fewer tokens in the same prompt.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PORT = 8011
PROFILES = {
    "sweep": "kind=sweep,sweep_size=3",
    "concurrent": '{"kind":"concurrent","streams":[2,4]}',
    "poisson": "kind=poisson,rate=4",
}


def main() -> None:
    out, tokenizer = Path(sys.argv[1]), sys.argv[2]
    out.mkdir(parents=True, exist_ok=True)
    guidellm = str(Path(sys.executable).with_name("guidellm"))
    server = subprocess.Popen(
        [guidellm, "mock-server", "--port", str(PORT), "--model", "meta-llama/Llama-3.1-8B",
         "--ttft-ms", "60", "--ttft-ms-std", "5", "--itl-ms", "15", "--itl-ms-std", "1",
         "--output-tokens", "16"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/v1/models", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        for name, profile in PROFILES.items():
            report = out / f"{name}.json"
            subprocess.run(
                [guidellm, "run", "--backend", f"kind=openai_http,target=http://127.0.0.1:{PORT}",
                 "--data", "kind=synthetic_text,prompt_tokens=128,output_tokens=16",
                 "--tokenizer", f"kind=huggingface_auto,model={tokenizer}",
                 "--profile", profile, "--constraint", "kind=max_requests,count=8",
                 "--metrics", "kind=generative,sample_size=0",
                 "--output", f"kind=json,path={report}", "--disable-console-interactive"],
                check=True, stdout=subprocess.DEVNULL)
            with report.open("rb") as raw, gzip.open(f"{report}.gz", "wb", compresslevel=9) as packed:
                shutil.copyfileobj(raw, packed)
            report.unlink()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
