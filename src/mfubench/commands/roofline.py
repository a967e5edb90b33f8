"""``mfubench roofline``: best-case times, bounds and limits of a model on hardware, no run."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from mfubench.analysis.feasibility import feasibility_flags, longest_context_that_fits, max_context
from mfubench.analysis.limits import limits
from mfubench.analysis.phases import Setup, phase_roofline, phase_work
from mfubench.commands.analyze import add_setup_options, setup_from_args
from mfubench.commands.argtypes import int_list
from mfubench.errors import MfubenchError
from mfubench.report.console import make_console
from mfubench.report.units import ABOVE_PEAK_MARK, seconds, si, util


def register(sub: Any) -> None:
    p = sub.add_parser("roofline", help="predicted best-case prefill/decode times and limits",
                       description=__doc__)
    p.add_argument("model", help="a bundled id, a config.json, a model folder or a .gguf file")
    p.add_argument("--batch-sizes", "-b", type=int_list, default=(1, 8, 32, 128))
    p.add_argument("--input-tokens", "-i", type=int_list, default=(1024,))
    p.add_argument("--output-tokens", "-o", type=int_list, default=(128,))
    add_setup_options(p, model_option=False)
    p.add_argument("--layouts", action="store_true",
                   help="rank every TP/DP/PP/EP layout of the --hardware device count by roofline "
                        "throughput per GPU at the first --input-tokens/--output-tokens, under "
                        "--max-itl/--max-ttft")
    p.add_argument("--max-itl", type=float, default=None, metavar="S",
                   help="with --layouts: the slowest decode step allowed, seconds")
    p.add_argument("--max-ttft", type=float, default=None, metavar="S",
                   help="with --layouts: the longest prefill of one prompt allowed, seconds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def predict(setup: Setup, batches: Sequence[int], inputs: Sequence[int], outputs: Sequence[int]) -> dict[str, Any]:
    """Roofline prediction for every point, with the limits of each context length."""
    points = []
    for i in inputs:
        for o in outputs:
            for b in batches:
                point: dict[str, Any] = {"batch_size": b, "input_tokens": i, "output_tokens": o,
                                         "flags": feasibility_flags(setup, b, i, o)}
                for phase in ("prefill", "decode"):
                    if phase == "decode" and o < 2:
                        continue
                    work = phase_work(setup, phase, b, i, o)
                    rl = phase_roofline(setup, work)
                    point[phase] = None if rl is None else {
                        "flops": work.flops, "bytes": work.bytes_per_gpu,
                        "roofline_s": rl.roofline_s, "compute_s": rl.compute_s,
                        "memory_s": rl.memory_s, "comm_s": rl.comm_s, "bound": rl.bound,
                        "arithmetic_intensity": rl.arithmetic_intensity,
                        "mfu_ceiling": rl.mfu_ceiling, "mbu_ceiling": rl.mbu_ceiling,
                    }
                points.append(point)
    machine = setup.machine()
    lim = {}
    for i in inputs:
        for o in outputs:
            ctx = i + o
            L = limits(setup, ctx)
            lim[str(ctx)] = {"max_batch": L.max_batch, "kv_bytes_per_sequence": L.kv_bytes_per_sequence,
                             "free_bytes_per_gpu": L.free_bytes_per_gpu,
                             "decode_compute_bound_batch": L.compute_bound_batch}
    from mfubench.model.formats import matmul_dtype

    _, peak_note = matmul_dtype(setup.spec.weights, setup.hardware.accelerator.peak_flops)
    limit, limit_source = max_context(setup)
    fits_by_batch = {str(b): longest_context_that_fits(setup, b) for b in batches}
    return {
        "model": setup.spec.name, "hardware": setup.hardware.name, "tp": setup.tp,
        "max_context": limit, "max_context_source": limit_source,
        "longest_context_by_batch": fits_by_batch,
        "convention": setup.convention, "dtype": setup.dtype, "peak": setup.peak_label,
        "peak_note": peak_note, "layout": setup.parallel.label,
        "ridge": machine.ridge if machine else None,
        "allreduce_latency_s": setup.allreduce_latency_s,
        "limits_by_context": lim, "points": points,
    }


def run_layouts(args: argparse.Namespace) -> int:
    """``--layouts``: the ranked table of :mod:`mfubench.analysis.layout_search`."""
    from dataclasses import replace

    from mfubench.analysis.layout_search import advice, rank_layouts
    from mfubench.analysis.phases import Setup
    from mfubench.commands.flops import resolve_model
    from mfubench.counting.workload import check_convention
    from mfubench.hardware.spec import parse_hardware

    for flag, value in (("--max-itl", args.max_itl), ("--max-ttft", args.max_ttft)):
        if value is not None and not value > 0:
            raise MfubenchError(f"{flag} must be a positive number of seconds, got {value!r}")
    spec = resolve_model(args.model, args.dtype)
    hardware = parse_hardware(args.hardware)
    if args.gpus_per_node:
        hardware = replace(hardware, gpus_per_node=args.gpus_per_node)
    i, o = args.input_tokens[0], args.output_tokens[0]
    conv = check_convention(args.convention)
    scores = rank_layouts(spec, hardware, i, o, args.max_itl, args.max_ttft, conv, args.kv_dtype,
                          args.ep_imbalance)
    rows: list[dict[str, Any]] = []
    for sc in scores:
        setup = Setup(spec, hardware, conv, sc.layout.tp, args.kv_dtype, layout=sc.layout)
        rows.append({"layout": sc.layout.label, "tp": sc.layout.tp, "dp": sc.layout.dp,
                     "pp": sc.layout.pp, "ep": sc.layout.ep, "batch": sc.batch,
                     "max_batch": sc.max_batch, "ttft_s": sc.ttft_s, "itl_s": sc.itl_s,
                     "throughput_per_gpu": sc.throughput_per_gpu, "limit": sc.limit,
                     "why": sc.why, "advice": advice(setup, sc, i + o)})
    result = {"model": spec.name, "hardware": hardware.name, "input_tokens": i, "output_tokens": o,
              "max_itl_s": args.max_itl, "max_ttft_s": args.max_ttft, "layouts": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console = make_console()
    bounds = ", ".join(f"{k} {v:g} s" for k, v in (("ITL <=", args.max_itl), ("TTFT <=", args.max_ttft))
                       if v is not None) or "no latency bound"
    t = Table(title=f"{spec.name} on {hardware.name}: layouts by roofline throughput per GPU "
                    f"({i} in, {o} out; {bounds})", title_justify="left")
    for h in ("#", "layout", "batch", "fits", "TTFT", "ITL", "tok/s/GPU", "limiting term"):
        t.add_column(h, justify="right" if h not in ("layout", "limiting term") else "left")
    for n, r in enumerate(rows, 1):
        t.add_row(str(n), r["layout"], str(r["batch"] or "-"), str(r["max_batch"]),
                  seconds(r["ttft_s"]) if r["ttft_s"] is not None else "-",
                  seconds(r["itl_s"]) if r["itl_s"] is not None else "-",
                  f"{r['throughput_per_gpu']:.4g}" if r["batch"] else "-",
                  r["limit"] + (f": {r['why']}" if r["why"] else ""))
    console.print(t)
    for r in rows[:3]:
        if r["advice"]:
            console.print(f"{r['layout']}: {r['advice']}", highlight=False)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.layouts:
        return run_layouts(args)
    setup = setup_from_args(args)
    result = predict(setup, args.batch_sizes, args.input_tokens, args.output_tokens)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console = make_console()
    console.print(f"[bold]{result['model']}[/] on {result['hardware']} ({result['layout']}), "
                  f"{result['dtype']}; {result['peak']}; ridge {result['ridge']:.3g} FLOP/byte")
    if result["peak_note"]:
        console.print(f"note: {result['peak_note']}", highlight=False)
    t = Table(title=f"best case per point (convention {setup.convention}; all-reduce latency "
                    f"{setup.allreduce_latency_s:g} s per message)", title_justify="left")
    for h in ("batch", "in", "out", "prefill s", "prefill bound", "MFU ceil.", "decode s",
              "decode bound", "decode FLOP/B", "MBU ceil.", "tok/s ceiling"):
        t.add_column(h, justify="right")
    t.add_column("flags", justify="left")
    for p in result["points"]:
        pre, dec = p.get("prefill"), p.get("decode")
        tok_s = (p["batch_size"] * (p["output_tokens"] - 1) / dec["roofline_s"]) if dec else None
        cannot = bool(p["flags"])  # a point the layout cannot hold: no plain ceilings
        t.add_row(str(p["batch_size"]), str(p["input_tokens"]), str(p["output_tokens"]),
                  seconds(pre["roofline_s"]) if pre else "-", pre["bound"] if pre else "-",
                  util(pre["mfu_ceiling"], 1, cannot) if pre else "-",
                  seconds(dec["roofline_s"]) if dec else "-", dec["bound"] if dec else "-",
                  f"{dec['arithmetic_intensity']:.3g}" if dec else "-",
                  util(dec["mbu_ceiling"], 1, cannot) if dec else "-",
                  f"{tok_s:.4g}" if tok_s else "-",
                  ", ".join(f.split(":")[0] for f in p["flags"]), style="bold red" if cannot else None)
    console.print(t)
    for p in result["points"]:
        for flag in p["flags"]:
            console.print(f"{ABOVE_PEAK_MARK} batch {p['batch_size']} in {p['input_tokens']} out "
                          f"{p['output_tokens']}: {flag}", highlight=False)
    longest = ", ".join(f"batch {b}: {ctx} tokens" for b, ctx in result["longest_context_by_batch"].items())
    console.print(f"longest context that fits in memory ({result['max_context_source']} "
                  f"{result['max_context']}): {longest}", highlight=False)
    for ctx, lim in result["limits_by_context"].items():
        turn = lim["decode_compute_bound_batch"]
        console.print(
            f"context {ctx}: KV {si(lim['kv_bytes_per_sequence'], 'B')} per sequence per GPU; "
            f"memory holds {lim['max_batch']} sequences; decode turns compute-bound at batch "
            f"{turn if turn else 'never'}", highlight=False)
    return 0
