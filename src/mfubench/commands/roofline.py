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


def run(args: argparse.Namespace) -> int:
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
