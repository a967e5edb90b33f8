"""``mfubench run --concurrency ... | --request-rate ...``: a run under load, level by level.

Each level is a load (a concurrency C, a rate R with its arrivals, or a trace) with a source of
requests (fixed lengths, lengths drawn per request as ``128:1024`` or ``512~128``, or a
``--workload`` file), driven by :mod:`mfubench.measure.load_driver`: warm-up requests first,
then ``--num-requests`` measured ones (or as many as ``--duration`` seconds send) with the
engine's counters read around them, the steady state
between ramp-up and drain giving the figures under load. Results go to ``--out`` as they come
(a ``point`` line per level, with its ``load``), ``--resume`` skips the finished levels, and
the tables at the end are those of ``mfubench analyze`` (:mod:`mfubench.analysis.under_load`).
"""

from __future__ import annotations

import argparse
import json
import random
from typing import Any

from mfubench.analysis.load import Load
from mfubench.errors import MfubenchError
from mfubench.measure.load_driver import SLO, LevelPlan
from mfubench.measure.request_source import Drawn, Replayed, RequestSource
from mfubench.measure.workload_file import Workload, read_workload


def level_plans(args: argparse.Namespace) -> list[LevelPlan] | None:
    """The levels ``--concurrency``, ``--request-rate`` or a timed ``--workload`` ask for (None:
    a static run)."""
    workload = read_workload(args.workload) if args.workload is not None else None
    trace = workload is not None and workload.is_trace
    if args.concurrency is None and args.request_rate is None and not trace:
        if (args.burstiness is not None or args.num_requests is not None or args.slo is not None
                or args.workload is not None):
            raise MfubenchError("--burstiness, --num-requests, --slo and a --workload without arrival "
                                "times need --concurrency or --request-rate")
        return None
    if (args.concurrency is not None) + (args.request_rate is not None) + trace > 1:
        raise MfubenchError("give one load per run: --concurrency, --request-rate, or a --workload "
                            "with arrival times (a trace)")
    if args.batch_sizes is not None:
        raise MfubenchError("--batch-sizes is for static batches; under load give --concurrency or --request-rate")
    if args.burstiness is not None and args.arrival != "gamma":
        raise MfubenchError("--burstiness shapes --arrival gamma")
    if args.prompt_mode == "text" or args.tokenizer is not None or args.client_procs > 1:
        raise MfubenchError("under load, prompts are token ids from one client process "
                            "(--prompt-mode text, --tokenizer and --client-procs are for static batches)")
    if args.duration is not None and args.num_requests is not None:
        raise MfubenchError("give --num-requests or --duration per level, not both")
    sources = _sources(args, workload)
    longest = [sum(src.longest) for src in sources]
    args.longest_request = max(longest)  # a launched vLLM's default --max-model-len
    if trace:
        assert workload is not None
        if args.duration is not None:
            raise MfubenchError("a trace replays its workload once; --duration is for --concurrency "
                                "and --request-rate")
        count = len(workload.lengths)
        if args.num_requests is not None and args.num_requests > count:
            raise MfubenchError(f"--num-requests {args.num_requests}: the trace {workload.name} has "
                                f"{count} requests")
        return [LevelPlan(Load("trace"), sources[0], args.num_requests or count, args.warmup_requests or 0)]
    loads: list[tuple[Load, int, int]] = []
    for c in args.concurrency or ():
        loads.append((Load("concurrency", float(c)), args.num_requests or max(32, 4 * c),
                      c if args.warmup_requests is None else args.warmup_requests))
    for r in args.request_rate or ():
        load = Load("rate", r, args.arrival, args.burstiness if args.arrival == "gamma" else None)
        loads.append((load, args.num_requests or max(32, round(10 * r)),
                      max(1, round(r)) if args.warmup_requests is None else args.warmup_requests))
    duration = args.duration
    return [LevelPlan(load, src, None if duration is not None else n, w, duration)
            for src in sources for load, n, w in loads]


def _sources(args: argparse.Namespace, workload: Workload | None) -> list[RequestSource]:
    """The request sources of the levels: the workload's requests, or every pair of lengths."""
    if workload is not None:
        if args.input_tokens is not None or args.output_tokens is not None:
            raise MfubenchError(f"--workload {args.workload} gives every request's lengths; drop "
                                "--input-tokens and --output-tokens")
        return [Replayed(workload)]
    for name in ("input_tokens", "output_tokens"):
        if getattr(args, name) is None:
            raise MfubenchError(f"--{name.replace('_', '-')} is required (or a --workload)")
    return [Drawn(i, o) for i in args.input_tokens for o in args.output_tokens]


def run_levels_command(args: argparse.Namespace, plans: list[LevelPlan]) -> int:
    from mfubench.commands import run as run_command
    from mfubench.measure.client import default_token_range, run_async

    analyze, vocab_size, setup = run_command._analysis(args)
    api_key = run_command._api_key(args.api_key_env)
    existing = run_command._existing(args)
    finished = set(existing.points) if existing else set()
    todo = [p for p in plans if p.key not in finished]
    infeasible = _infeasible(setup, todo)
    if args.dry_run:
        return _print_levels(args, plans, todo, infeasible)
    if infeasible and not args.allow_infeasible:
        shown = "; ".join(f"{p.label} (longest request {'+'.join(map(str, p.source.longest))}): {flags[0]}"
                          for p, flags in infeasible[:3])
        raise MfubenchError(f"{len(infeasible)} level(s) cannot be held on {args.hardware}: {shown}; "
                            "drop them, or pass --allow-infeasible to measure them anyway")
    token_range = default_token_range(vocab_size)
    with run_command._server(args) as (url, check_server):
        levels = run_async(_measure(args, plans, url, check_server, api_key, analyze, token_range, existing))
    run_command._render(args, [level.to_json() for level in levels], setup)
    return 0


def _infeasible(setup: Any, todo: list[LevelPlan]) -> list[tuple[LevelPlan, list[str]]]:
    """Levels beyond the layout's context or memory, checked as ``run`` checks its points, at the
    level's longest request: a concurrency at C sequences in flight, a rate or a trace at one
    (its mean in flight is known only once measured: its rows are checked then)."""
    from mfubench.commands.run import _infeasible as points_infeasible

    keys = [(round(p.load.level or 1) if p.load.kind == "concurrency" else 1, *p.source.longest)
            for p in todo]
    flagged = dict(points_infeasible(setup, keys))
    return [(p, flagged[key]) for p, key in zip(todo, keys, strict=True) if key in flagged]


def _print_levels(args: argparse.Namespace, plans: list[LevelPlan], todo: list[LevelPlan],
                  infeasible: list[tuple[LevelPlan, list[str]]]) -> int:
    summary = {
        "levels": len(plans),
        "to_measure": [{"load": p.load.label, "lengths": p.source.label, "input_tokens": p.input_tokens,
                        "output_tokens": p.output_tokens, "requests": p.requests,
                        "duration_s": p.duration_s, "warmup": p.warmup}
                       for p in todo],
        "requests": sum((p.requests or 0) + p.warmup for p in todo),
        "duration_s": sum(p.duration_s or 0.0 for p in todo) or None,
        "out": str(args.out),
        "target": args.endpoint or f"launch {args.launch} {args.model}",
        "infeasible": [{"load": p.load.label, "flags": flags} for p, flags in infeasible],
    }
    if args.json:
        print(json.dumps({"plan": summary}))
        return 0
    timed = f" and {summary['duration_s']:g} s of timed levels" if summary["duration_s"] else ""
    print(f"{summary['target']}: {len(todo)} of {len(plans)} levels to measure, {summary['requests']} "
          f"requests{timed}, results in {args.out}")
    for p in todo:
        print(f"  {p.label:<52} {p.stop} after {p.warmup} warm-up")
    for p, flags in infeasible:
        for flag in flags:
            print(f"  {p.label}: {flag}")
    return 0


async def _measure(args: argparse.Namespace, plans: list[LevelPlan], url: str, check_server: Any,
                   api_key: str | None, analyze: Any, token_range: tuple[int, int],
                   existing: Any) -> list[Any]:
    """Measure the levels not finished yet; return the levels measured now."""
    from mfubench.commands import run as run_command
    from mfubench.errors import ServerError
    from mfubench.measure.client import CompletionClient
    from mfubench.measure.load_driver import run_levels
    from mfubench.measure.results_log import ResultsLog
    from mfubench.measure.sweep import SweepHooks

    async with CompletionClient(url, api_key=api_key, timeout_s=args.timeout) as client:
        models = await client.models()
        served = args.served_model or (models[0] if models else None)
        if not served:
            raise ServerError(f"{url}/v1/models lists no model; pass --served-model")
        client.model = served
        engine, version = await client.identify()
        finished = set(existing.points) if existing else set()
        todo = [p for p in plans if p.key not in finished]
        with ResultsLog(args.out) as log:
            if existing is None:
                log.write({**run_command.header(args, served, engine.name, version), "prompt_mode": "ids",
                           "load": plans[0].load.kind})
            with run_command._progress(len(todo)) as (advance, say):
                def on_level(level: Any) -> None:
                    advance(level.plan.label)
                    say(level_line(level))

                hooks = SweepHooks(check_server=check_server, on_point=on_level)
                slo = SLO(**args.slo) if args.slo else None
                return await run_levels(client, plans, analyze, log, token_range=token_range,
                                        rng=random.Random(args.seed), finished=list(finished),
                                        hooks=hooks, slo=slo)


def level_line(level: Any) -> str:
    """One line of the live table: a finished level's TTFT, TPOT, throughput, MFU and MBU."""
    from mfubench.commands.run import flagged, row_figures

    m = level.measurement
    parts = [level.plan.label]
    if m is not None and m.ttft_s is not None and m.tpot_s is not None:
        parts.append(f"TTFT {m.ttft_s * 1e3:.3g} ms TPOT {m.tpot_s * 1e3:.3g} ms "
                     f"{m.request_throughput or 0:.3g} req/s")
    parts += [f"{row.get('phase')} {row_figures(row)}" for row in level.rows]
    if level.flags:
        parts.append(flagged(level.flags))
    return " | ".join(parts)
