"""How much mfubench's streaming client distorts what it measures, against ``vllm bench serve``.

Against the synthetic server (``mfubench.measure.synthetic_server``; synthetic: no model),
started here as a subprocess pinned to CPU 0 while this script (the client) is pinned to CPU 1:

1. **Throughput** (server as fast as possible): at 1, 64, 256 and 1024 concurrent streams,
   the streamed tokens per second that mfubench's client sustains (tokens from ``usage`` /
   wall time of the batch); then ``vllm bench serve`` (the installed vLLM) against the same
   server with the same streams and lengths (its ``output_throughput``). ``ratio`` = ours /
   peer at the concurrency where ours is highest.
2. **Added latency** (server paced at ``--itl-ms``): per request, added TTFT = the client's TTFT
   − the server's own (first token sent − request received); per token, added latency =
   arrival at the client − hand-over to the socket by the server, both on ``CLOCK_MONOTONIC``
   (one clock for every process of a Linux machine); added ITL = client gap − server gap. Added
   TTFT = request transit (client send → the server's first sight of the bytes, which at a
   burst of hundreds of requests includes the synthetic server's own queue) + first-token lag
   (server send → client arrival); both are reported.

    python benchmarks/client_overhead.py [--json] [--streams 1,64,256,1024] [--itl-ms 20]

``--json`` prints one line: ``ours_tokens_per_s``, ``peer_tokens_per_s``, ``ratio``,
``added_ttft_ms`` / ``added_token_latency_ms`` / ``added_itl_ms`` (percentiles in ms by number
of streams), and the per-concurrency details (``throughput``, ``latency``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mfubench.measure.client import CompletionClient, RequestRecord, run_async
from mfubench.measure.synthetic_server import MODEL_NAME

SERVER_CPU, CLIENT_CPU = 0, 1


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 90, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles of ``values`` (``p50`` …) and ``max``; None when empty."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for q in qs:
        out[f"p{q}"] = ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else None
    out["max"] = ordered[-1] if ordered else None
    return out


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


@contextmanager
def synthetic_server(itl_ms: float, tmp: Path, burst: int = 1) -> Iterator[str]:
    """The synthetic server as a subprocess pinned to :data:`SERVER_CPU`; yields its URL."""
    port_file = tmp / f"port-{itl_ms}"
    cmd = [sys.executable, "-m", "mfubench.measure.synthetic_server", "--port-file", str(port_file),
           "--itl-ms", str(itl_ms), "--burst", str(burst), "--trace", "--cpu", str(SERVER_CPU)]
    proc = subprocess.Popen(cmd)
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the synthetic server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port_file.read_text()}"
    finally:
        proc.terminate()
        proc.wait(10)


def _prompt(rng: random.Random, n: int = 8) -> list[int]:
    return [rng.randrange(1000, 8000) for _ in range(n)]


async def _batch(client: CompletionClient, prompts: list[list[int]], tokens: int) -> tuple[list[RequestRecord], float]:
    start = time.monotonic()
    records = await asyncio.gather(*(client.complete(p, tokens, len(prompts)) for p in prompts))
    return list(records), time.monotonic() - start


async def ours_throughput(url: str, streams: int, tokens: int, rng: random.Random) -> dict[str, Any]:
    """Tokens/s of mfubench's client over ``streams`` concurrent streams of ``tokens`` each."""
    async with CompletionClient(url, model=MODEL_NAME) as client:
        await _batch(client, [_prompt(rng) for _ in range(streams)], 4)  # open the connections (as a warm-up does)
        cpu = time.process_time()
        records, wall = await _batch(client, [_prompt(rng) for _ in range(streams)], tokens)
        cpu = time.process_time() - cpu
        await client.get_json("/synthetic/trace")  # clear the server's trace
    errors = [r.error for r in records if r.error]
    generated = sum(r.output_tokens or 0 for r in records)
    return {"streams": streams, "tokens_per_stream": tokens, "tokens_per_s": generated / wall, "wall_s": wall,
            "client_cpu_fraction": cpu / wall,
            "errors": len(errors), "first_error": errors[0] if errors else None}


def peer_throughput(url: str, streams: int, tokens: int, tokenizer: Path, tmp: Path) -> dict[str, Any]:
    """``vllm bench serve`` against ``url`` with the same streams and lengths (pinned likewise)."""
    name = f"peer-{streams}.json"
    cmd = [sys.executable, "-m", "mfubench.measure.vllm_launcher", "bench", "serve", "--backend", "vllm",
           "--base-url", url, "--model", MODEL_NAME, "--tokenizer", str(tokenizer), "--dataset-name", "random",
           "--random-input-len", "8", "--random-output-len", str(tokens), "--num-prompts", str(streams),
           "--max-concurrency", str(streams), "--request-rate", "inf", "--ignore-eos", "--disable-tqdm",
           "--save-result", "--result-dir", str(tmp), "--result-filename", name]
    env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                          preexec_fn=lambda: _pin(CLIENT_CPU))
    path = tmp / name
    if done.returncode != 0 or not path.exists():
        tail = " ".join(done.stderr.split()[-40:])
        return {"streams": streams, "tokens_per_s": None, "error": f"vllm bench serve failed: {tail}"}
    result = json.loads(path.read_text())
    return {"streams": streams, "tokens_per_stream": tokens, "tokens_per_s": result["output_throughput"],
            "median_ttft_ms": result.get("median_ttft_ms"), "failed": result.get("failed")}


async def added_latency(url: str, streams: int, tokens: int, rng: random.Random) -> dict[str, Any]:
    """The latency mfubench's client adds at ``streams`` concurrent paced streams."""
    async with CompletionClient(url, model=MODEL_NAME) as client:
        await _batch(client, [_prompt(rng) for _ in range(streams)], 2)  # open the connections
        await client.get_json("/synthetic/trace")
        prompts = [_prompt(rng) for _ in range(streams)]
        records, _ = await _batch(client, prompts, tokens)
        traces = {t["key"]: t for t in await client.get_json("/synthetic/trace")}
    ttft_ms: list[float] = []
    transit_ms: list[float] = []
    first_ms: list[float] = []
    token_ms: list[float] = []
    itl_ms: list[float] = []
    for prompt, record in zip(prompts, records, strict=True):
        trace = traces.get(",".join(str(t) for t in prompt[:8]))
        if trace is None or record.ttft_s is None or record.error:
            continue
        sent = trace["sent_ns"]
        server_ttft_s = (sent[0] - trace["received_ns"]) / 1e9
        ttft_ms.append((record.ttft_s - server_ttft_s) * 1e3)
        transit_ms.append((trace["received_ns"] / 1e9 - record.sent_s) * 1e3)
        first_ms.append((record.sent_s + record.ttft_s - sent[0] / 1e9) * 1e3)
        arrivals = [record.sent_s + record.ttft_s]
        for gap in record.itl_s:
            arrivals.append(arrivals[-1] + gap)
        for k, (arrived, sent_ns) in enumerate(zip(arrivals, sent, strict=False)):
            token_ms.append((arrived - sent_ns / 1e9) * 1e3)
            if k:
                itl_ms.append(((arrived - arrivals[k - 1]) - (sent_ns - sent[k - 1]) / 1e9) * 1e3)
    return {"streams": streams, "tokens_per_stream": tokens, "requests": len(ttft_ms),
            "errors": sum(1 for r in records if r.error),
            "added_ttft_ms": percentiles(ttft_ms), "request_transit_ms": percentiles(transit_ms),
            "first_token_lag_ms": percentiles(first_ms), "added_token_latency_ms": percentiles(token_ms),
            "added_itl_ms": percentiles([abs(x) for x in itl_ms])}


def _tokens_for(streams: int, budget: int) -> int:
    return min(8192, max(32, budget // streams))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", default="1,64,256,1024", help="concurrencies (default 1,64,256,1024)")
    p.add_argument("--tokens", type=int, default=131072, help="tokens per throughput batch (split over streams)")
    p.add_argument("--itl-ms", type=float, default=20.0, help="server step time for the latency runs (default 20)")
    p.add_argument("--latency-tokens", type=int, default=32, help="tokens per stream in the latency runs")
    p.add_argument("--burst", type=int, default=8,
                   help="throughput runs: chunks per stream the server writes at once (default 8)")
    p.add_argument("--repeats", type=int, default=1,
                   help="measure each figure this often; keep the best throughput and the latency run "
                   "of median added TTFT p50 (default 1)")
    p.add_argument("--no-peer", action="store_true", help="skip vllm bench serve")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    args = p.parse_args(argv)
    streams = [int(s) for s in args.streams.split(",")]
    load_before = os.getloadavg()[0]  # other work on the machine disturbs every figure
    _pin(CLIENT_CPU)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        ours: list[dict[str, Any]] = []
        peer: list[dict[str, Any]] = []
        with synthetic_server(0.0, tmp, args.burst) as url:
            for n in streams:
                runs = [run_async(ours_throughput(url, n, _tokens_for(n, args.tokens), rng)) for _ in range(args.repeats)]
                ours.append(max(runs, key=lambda r: r["tokens_per_s"]))
            if not args.no_peer:
                from mfubench.measure.tiny_model import TEST, build_tiny_model

                tokenizer = build_tiny_model(tmp / "tokenizer", TEST)
                for n in streams:
                    tries = [peer_throughput(url, n, _tokens_for(n, args.tokens), tokenizer, tmp)
                             for _ in range(args.repeats)]
                    peer.append(max(tries, key=lambda r: r["tokens_per_s"] or 0.0))
        with synthetic_server(args.itl_ms, tmp) as url:
            latency = []
            for n in streams:
                runs = sorted((run_async(added_latency(url, n, args.latency_tokens, rng)) for _ in range(args.repeats)),
                              key=lambda r: r["added_ttft_ms"]["p50"] or 0.0)
                latency.append(runs[len(runs) // 2])
    best = max(ours, key=lambda r: r["tokens_per_s"])
    peer_best = max((r["tokens_per_s"] or 0.0 for r in peer), default=0.0) or None
    summary = {
        "ours_tokens_per_s": best["tokens_per_s"],
        "ours_best_streams": best["streams"],
        "peer_tokens_per_s": peer_best,
        "ratio": best["tokens_per_s"] / peer_best if peer_best else None,
        "itl_ms": args.itl_ms,
        "added_ttft_ms": {str(r["streams"]): r["added_ttft_ms"] for r in latency},
        "added_token_latency_ms": {str(r["streams"]): r["added_token_latency_ms"] for r in latency},
        "added_itl_ms": {str(r["streams"]): r["added_itl_ms"] for r in latency},
        "throughput": [{"streams": o["streams"], "ours_tokens_per_s": o["tokens_per_s"],
                        "peer_tokens_per_s": next((q["tokens_per_s"] for q in peer if q["streams"] == o["streams"]), None),
                        "ours_errors": o["errors"], "client_cpu_fraction": o["client_cpu_fraction"]} for o in ours],
        "latency": latency,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "pinned": hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1,
        "load_average_1min_before": load_before,
        "repeats": args.repeats,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return 0


def _print(s: dict[str, Any]) -> None:
    print(f"ours {s['ours_tokens_per_s']:.0f} tokens/s (at {s['ours_best_streams']} streams), "
          f"peer {s['peer_tokens_per_s'] or float('nan'):.0f}, ratio {s['ratio'] or float('nan'):.2f}")
    print("streams  ours tok/s  peer tok/s  client CPU")
    for row in s["throughput"]:
        print(f"{row['streams']:>7}  {row['ours_tokens_per_s']:>10.0f}  {row['peer_tokens_per_s'] or float('nan'):>10.0f}"
              f"  {row['client_cpu_fraction']:>10.0%}")
    print(f"added latency at ITL {s['itl_ms']} ms (ms: p50 / p99)")
    print("streams  TTFT             token            ITL")
    for row in s["latency"]:
        cells = [f"{row[k]['p50']:.3f} / {row[k]['p99']:.3f}" if row[k]["p50"] is not None else "-"
                 for k in ("added_ttft_ms", "added_token_latency_ms", "added_itl_ms")]
        print(f"{row['streams']:>7}  " + "  ".join(f"{c:<15}" for c in cells))


if __name__ == "__main__":
    raise SystemExit(main())
