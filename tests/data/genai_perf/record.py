"""Write GenAI-Perf profile exports with GenAI-Perf's own CLI, Perf Analyzer replaced by a simulation.

    python tests/data/genai_perf/record.py OUT_DIR TOKENIZER_DIR   # genai-perf installed (README.md)

``genai-perf profile`` runs as its ``main()`` runs it (argument parsing, config, synthetic
prompts into ``inputs.json``, tokenizer, metrics, ``JsonExporter``/``CsvExporter``), except for
its one external step: instead of launching the ``perf_analyzer`` binary, the Perf Analyzer
profile export (``profile_export.json``) is written here, in Perf Analyzer's format, with one
record per prompt of the ``inputs.json`` GenAI-Perf generated: the request's payload, and the
streamed ``text_completion`` chunks with their timestamps (ns) from a simulated server (a closed
loop of C, or arrivals at a constant rate, Perf Analyzer's default distribution). GenAI-Perf
then reads that file and writes ``profile_export_genai_perf.json`` and ``.csv`` as it always does.
TOKENIZER_DIR is a local Hugging Face tokenizer (no download):
``python -m mfubench.measure.tiny_model DIR test``.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import genai_perf.main
from genai_perf.subcommand.subcommand import Subcommand

T0 = 1_796_000_000_000_000_000  # ns, the first request
RUNS = {
    "concurrency": ["--concurrency", "4"],
    "rate": ["--request-rate", "6"],
}


def fake_perf_analyzer(self: Subcommand, perf_analyzer_config: object) -> None:
    """Write what ``perf_analyzer`` would: the profile export of one experiment."""
    directory: Path = perf_analyzer_config.get_artifact_directory()  # type: ignore[attr-defined]
    export: Path = perf_analyzer_config.get_profile_export_file()  # type: ignore[attr-defined]
    inputs = json.loads((directory / "inputs.json").read_text())["data"]
    stimulus = self._config.perf_analyzer.stimulus
    mode, value = next(iter(stimulus.items()))
    rng = random.Random(1)
    slots = [0.0] * 4
    starts: list[float] = []
    ends: list[float] = []
    requests = []
    t = 0.0
    for i, entry in enumerate(inputs):
        payload = entry["payload"][0]
        if mode == "concurrency":
            slot = min(range(4), key=lambda s: slots[s])
            start = slots[slot]
        else:
            start = t
            t += 1.0 / value  # constant: Perf Analyzer's default --request-distribution
        in_flight = 1 + sum(1 for s, e in zip(starts, ends, strict=True) if s <= start < e)
        outputs = 16 if i % 5 else 14
        ttft = 0.065 + 0.010 * (in_flight - 1) + rng.uniform(0, 0.005)
        stamps = [start + ttft]
        for _ in range(outputs - 1):
            stamps.append(stamps[-1] + 0.011 + 0.0015 * in_flight + rng.uniform(0, 0.002))
        if mode == "concurrency":
            slots[slot] = stamps[-1]
        starts.append(start)
        ends.append(stamps[-1])
        chunks = [
            "data: " + json.dumps({"id": f"cmpl-{i}", "object": "text_completion",
                                   "created": 1796000000, "model": payload["model"],
                                   "choices": [{"index": 0, "text": " a",  # one token of the tokenizer
                                                "finish_reason": None}]}) + "\n\n"
            for _ in range(outputs)
        ]
        requests.append({
            "timestamp": T0 + round(start * 1e9),
            "request_inputs": {"payload": json.dumps(payload)},
            "response_timestamps": [T0 + round(s * 1e9) for s in stamps] + [T0 + round(stamps[-1] * 1e9) + 1000],
            "response_outputs": [{"response": c} for c in chunks] + [{"response": "data: [DONE]\n\n"}],
        })
    experiment = {"mode": mode, "value": value}
    export.write_text(json.dumps({
        "experiments": [{"experiment": experiment, "requests": requests, "window_boundaries": []}],
        "version": "2.59.0", "service_kind": "openai", "endpoint": "v1/completions",
    }, indent=1))


def main() -> None:
    out, tokenizer = Path(sys.argv[1]), sys.argv[2]
    Subcommand._run_perf_analyzer = fake_perf_analyzer  # type: ignore[method-assign]
    for name, args in RUNS.items():
        sys.argv = ["genai-perf", "profile", "-m", "meta-llama/Llama-3.1-8B", "--tokenizer",
                    tokenizer, "--endpoint-type", "completions", "--streaming", *args,
                    "--num-prompts", "16", "--request-count", "16", "--warmup-request-count", "0",
                    "--synthetic-input-tokens-mean", "128", "--synthetic-input-tokens-stddev", "0",
                    "--output-tokens-mean", "16", "--extra-inputs", "ignore_eos:true",
                    "--random-seed", "1", "--artifact-dir", str(out / name)]
        genai_perf.main.run()


if __name__ == "__main__":
    main()
