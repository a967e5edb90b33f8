"""Write AIPerf profile exports with AIPerf's own pipeline, from synthetic request records.

    python tests/data/aiperf/record.py OUT_DIR        # with aiperf installed (see README.md)

No server and no network: each run is a list of simulated streaming requests (a closed loop of
C, or Poisson arrivals at a rate, one of which fails), turned into AIPerf's ``ParsedResponseRecord`` objects and
driven through AIPerf's own ``MetricRecordProcessor`` -> ``MetricResultsProcessor`` ->
``JsonExporter`` / ``CsvExporter``, with the ``UserConfig`` parsed by AIPerf's own CLI
(``aiperf.cli.app``) from the command line such a run would have. The files in OUT_DIR/<run>/
are byte for byte what ``aiperf profile`` writes for those records.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from pathlib import Path

from aiperf.cli import app
from aiperf.common.config import ServiceConfig, UserConfig
from aiperf.common.enums import CreditPhase
from aiperf.common.messages.inference_messages import MetricRecordsData
from aiperf.common.models import (
    ErrorDetails,
    ErrorDetailsCount,
    ParsedResponse,
    ParsedResponseRecord,
    ProfileResults,
    RequestRecord,
    TextResponseData,
)
from aiperf.common.models.record_models import MetricRecordMetadata
from aiperf.exporters.csv_exporter import CsvExporter
from aiperf.exporters.exporter_config import ExporterConfig
from aiperf.exporters.json_exporter import JsonExporter
from aiperf.post_processors.metric_record_processor import MetricRecordProcessor
from aiperf.post_processors.metric_results_processor import MetricResultsProcessor

WALL0 = 1_796_000_000_000_000_000  # wall clock of the first request, ns
PERF0 = 5_000_000_000_000  # perf_counter of the first request, ns
COMMON = ["--model", "meta-llama/Llama-3.1-8B", "--url", "localhost:8000", "--endpoint-type",
          "completions", "--streaming", "--synthetic-input-tokens-mean", "128",
          "--output-tokens-mean", "16", "--extra-inputs", "ignore_eos:true", "--random-seed", "1"]
RUNS = {
    "concurrency": ["--concurrency", "4", "--request-count", "16"],
    "rate": ["--request-rate", "6", "--request-rate-mode", "poisson", "--request-count", "16"],
}
FAILS = {("rate", 7)}  # the 8th request of the rate run fails
FAILED = ErrorDetails(code=500, type="Internal Server Error", message="simulated failure")


def simulate(kind: str, n: int, rng: random.Random) -> list[tuple[float, float, list[float], int, int]]:
    """(start s, TTFT s, token gaps s, input tokens, output tokens) per request: a server whose
    prefill takes 40 ms + 0.2 ms per prompt token and whose decode step grows with the requests
    in flight, in a closed loop of 4 or with Poisson arrivals at 6 per second."""
    starts: list[float] = []
    ends: list[float] = []
    out = []
    slots = [0.0] * 4
    t = 0.0
    for i in range(n):
        if kind == "concurrency":
            slot = min(range(4), key=lambda s: slots[s])
            start = slots[slot]
        else:
            start = t
            t += rng.expovariate(6.0)
        in_flight = 1 + sum(1 for s, e in zip(starts, ends, strict=True) if s <= start < e)
        inputs = 120 + rng.randrange(17)
        outputs = 16 if i % 5 else 14  # some stop early
        ttft = 0.040 + 0.0002 * inputs + 0.010 * (in_flight - 1) + rng.uniform(0, 0.005)
        gaps = [0.011 + 0.0015 * in_flight + rng.uniform(0, 0.002) for _ in range(outputs - 1)]
        end = start + ttft + sum(gaps)
        if kind == "concurrency":
            slots[slot] = end
        starts.append(start)
        ends.append(end)
        out.append((start, ttft, gaps, inputs, outputs))
    return out


def record(start: float, ttft: float, gaps: list[float], inputs: int, outputs: int,
           number: int, error: ErrorDetails | None) -> ParsedResponseRecord:
    perf = [PERF0 + round((start + ttft) * 1e9)]
    for gap in gaps:
        perf.append(perf[-1] + round(gap * 1e9))
    request = RequestRecord(
        credit_num=number, model_name="meta-llama/Llama-3.1-8B",
        timestamp_ns=WALL0 + round(start * 1e9), start_perf_ns=PERF0 + round(start * 1e9),
        end_perf_ns=perf[-1] if error is None else PERF0 + round((start + ttft) * 1e9),
        recv_start_perf_ns=perf[0], status=200 if error is None else error.code,
        credit_phase=CreditPhase.PROFILING, error=error,
    )
    if error is not None:  # the server answered 500 at once: no token came back
        return ParsedResponseRecord(request=request, responses=[], input_token_count=inputs)
    responses = [ParsedResponse(perf_ns=p, data=TextResponseData(text=" tok")) for p in perf]
    return ParsedResponseRecord(request=request, responses=responses,
                                input_token_count=inputs, output_token_count=outputs)


async def run(name: str, args: list[str], out: Path) -> None:
    sys.argv = ["aiperf", "profile", *COMMON, *args, "--artifact-dir", str(out / name)]
    _, bound, *_ = app.parse_args(sys.argv[1:])
    config: UserConfig = bound.arguments["user_config"]
    records = MetricRecordProcessor(user_config=config)
    results = MetricResultsProcessor(user_config=config)
    rng = random.Random(1)
    simulated = simulate(name, 16, rng)
    errors: dict[ErrorDetails, int] = {}
    for number, (start, ttft, gaps, inputs, outputs) in enumerate(simulated):
        error = FAILED if (name, number) in FAILS else None
        parsed = record(start, ttft, gaps, inputs, outputs, number, error)
        metrics = await records.process_record(parsed)
        if error is not None:
            errors[error] = errors.get(error, 0) + 1
        metadata = MetricRecordMetadata(
            session_num=number, request_start_ns=parsed.request.timestamp_ns,
            request_end_ns=parsed.request.timestamp_ns + parsed.request_duration_ns,
            worker_id="worker_0", record_processor_id="record_processor_0",
            benchmark_phase=CreditPhase.PROFILING,
        )
        await results.process_result(
            MetricRecordsData(metadata=metadata, metrics=dict(metrics), error=error))
    summary = await results.summarize()
    end = max(s + t + sum(g) for n, (s, t, g, _, _) in enumerate(simulated) if (name, n) not in FAILS)
    profile = ProfileResults(records=summary, completed=len(summary), start_ns=WALL0,
                             end_ns=WALL0 + round(end * 1e9),
                             error_summary=[ErrorDetailsCount(error_details=e, count=c)
                                            for e, c in errors.items()],
                             was_cancelled=False)
    exporter_config = ExporterConfig(results=profile, user_config=config,
                                     service_config=ServiceConfig())
    await JsonExporter(exporter_config).export()
    await CsvExporter(exporter_config).export()


def main() -> None:
    """One process per run, as ``aiperf profile`` is: AIPerf's metric instances are per process
    (its aggregate counters would carry over from one run to the next)."""
    out = Path(sys.argv[1])
    if len(sys.argv) == 3:
        asyncio.run(run(sys.argv[2], RUNS[sys.argv[2]], out))
        return
    for name in RUNS:
        subprocess.run([sys.executable, __file__, str(out), name], check=True)


if __name__ == "__main__":
    main()
