"""``mfubench flops``: count the FLOPs and bytes of inference for a model."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from mfubench.commands.argtypes import positive_int
from mfubench.counting.layout import Layout
from mfubench.counting.summary import CountQuery, count
from mfubench.counting.workload import CONVENTIONS, check_convention
from mfubench.errors import MfubenchError
from mfubench.model.quant import WEIGHT_FORMAT_NAMES, weight_format
from mfubench.model.registry import load_model
from mfubench.model.spec import ModelSpec
from mfubench.report.console import make_console
from mfubench.report.units import si


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Options every command that counts shares: weights, KV dtype, TP, convention."""
    p.add_argument("--tp", type=positive_int, default=None,
                   help="tensor-parallel degree (default: the device count of --hardware over "
                        "--dp x --pp, else 1)")
    p.add_argument("--dp", type=positive_int, default=1,
                   help="attention data-parallel ranks (vLLM --data-parallel-size): each serves "
                        "its share of the batch; routed experts span tp x dp GPUs (default 1)")
    p.add_argument("--pp", type=positive_int, default=1,
                   help="pipeline stages, layers split as vLLM splits them (default 1)")
    p.add_argument("--ep", type=positive_int, default=1,
                   help="expert-parallel sets: routed experts partitioned over E sets, each expert "
                        "split (tp x dp)/E ways; vLLM --enable-expert-parallel is E = tp x dp "
                        "(default 1: every expert split over tp x dp)")
    p.add_argument("--ep-imbalance", type=float, default=1.0,
                   help="routing skew: the busiest EP set's routed tokens over the mean (default 1)")
    p.add_argument("--dtype", choices=WEIGHT_FORMAT_NAMES, default=None,
                   help="how weights are stored (default: the config's dtype and quantization): "
                        "bf16/fp16/fp32 plain; fp8 and int8 are W8A8 (the matmuls run at the fp8/"
                        "int8 peak); int4 is W4A16 AWQ/GPTQ and mxfp4 W4A16 (bf16 peak); nvfp4 "
                        "(W4A4, fp4 peak), mxfp8 (W8A8) where the device has block-scaled math, "
                        "else dequantized at the bf16 peak; fp8-channel, fp8-block, w4a8, "
                        "nvfp4-w4a16 (docs/counting.md)")
    p.add_argument("--kv-dtype", default=None,
                   help="KV-cache dtype (default: the model dtype): bf16, fp16, fp8, nvfp4")
    p.add_argument("--convention", choices=CONVENTIONS, default="causal",
                   help="what FLOPs count (see docs/counting.md; default causal)")


def layout_from_args(args: argparse.Namespace, devices: int | None = None) -> Layout | None:
    """The ``--tp/--dp/--pp/--ep/--ep-imbalance`` layout, or None for one TP replica (today's
    path); ``--tp`` defaults to ``devices / (dp x pp)``."""
    dp, pp, ep = getattr(args, "dp", 1), getattr(args, "pp", 1), getattr(args, "ep", 1)
    imbalance = getattr(args, "ep_imbalance", 1.0)
    if dp == 1 and pp == 1 and ep == 1 and imbalance == 1.0:
        return None
    tp = args.tp
    if tp is None:
        n = devices or dp * pp
        if n % (dp * pp):
            raise MfubenchError(f"--dp {dp} x --pp {pp} does not divide the {n} devices of "
                                "--hardware; give --tp")
        tp = n // (dp * pp)
    return Layout(tp=tp, dp=dp, pp=pp, ep=ep, imbalance=imbalance)


def resolve_model(name: str, dtype: str | None) -> ModelSpec:
    spec = load_model(name)
    if dtype:
        from mfubench.model.gguf_weights import GGUFWeights

        if isinstance(spec.weights, GGUFWeights):
            raise MfubenchError(f"--dtype {dtype} with {name}: a GGUF file's weights are counted at "
                                f"its own types ({spec.weights.name}); drop --dtype")
        spec = spec.with_weights(weight_format(dtype, spec.weights.dtype))
    return spec


def register(sub: Any) -> None:
    p = sub.add_parser("flops", help="count FLOPs and bytes of inference from a model config",
                       description=__doc__)
    p.add_argument("model", help="a bundled id (meta-llama/Llama-3.3-70B-Instruct), a config.json "
                   ", a model folder or a .gguf file; other ids are fetched from the Hub when online")
    p.add_argument("--input-tokens", "-i", type=positive_int, required=True)
    p.add_argument("--output-tokens", "-o", type=positive_int, default=1)
    p.add_argument("--context", "-c", type=int, default=None,
                   help="decode: tokens already cached (default: --input-tokens)")
    p.add_argument("--batch", "-b", type=positive_int, default=1)
    add_model_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = resolve_model(args.model, args.dtype)
    query = CountQuery(
        input_tokens=args.input_tokens,
        output_tokens=args.output_tokens,
        context=args.context,
        batch=args.batch,
        tp=args.tp or 1,
        kv_dtype=args.kv_dtype,
        convention=check_convention(args.convention),
    )
    result = count(spec, query)
    layout = layout_from_args(args)
    if layout is not None:
        from mfubench.counting.summary import layout_counts

        result["layout"] = layout_counts(spec, query, layout)
        result["tp"] = layout.tp
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    render(result)
    if "layout" in result:
        render_layout(result["layout"])
    return 0


def render_layout(lay: dict[str, Any]) -> None:
    """The per-stage table of ``mfubench flops --dp/--pp/--ep``."""
    console = make_console()
    t = Table(title=f"{lay['label']} ({lay['devices']} GPUs; each expert split {lay['expert_tp']} "
                    f"ways; {lay['rank_batch']} sequences per DP rank; busiest GPU per stage)")
    for h in ("stage", "layers", "weights/GPU", "KV/GPU", "prefill FLOPs/GPU", "prefill bytes/GPU",
              "decode FLOPs/GPU", "decode bytes/GPU"):
        t.add_column(h, justify="right")
    for st in lay["stages"]:
        a, b = st["layers"]
        t.add_row(str(st["stage"]), f"{a}-{b - 1}", si(st["weight_bytes"], "B", 4),
                  si(st["kv_bytes"], "B", 4), si(st["prefill"]["flops_per_gpu"], "FLOP", 4),
                  si(st["prefill"]["bytes"], "B", 4), si(st["decode"]["flops_per_gpu"], "FLOP", 4),
                  si(st["decode"]["bytes"], "B", 4))
    console.print(t)


def render(r: dict[str, Any]) -> None:
    console = make_console()
    console.print(
        f"[bold]{r['model']}[/] ({r['model_type']}), weights {r['dtype']}, KV {r['kv_dtype']}, "
        f"TP {r['tp']}, convention [bold]{r['convention']}[/]"
    )
    console.print(
        f"parameters {si(r['params_total'], '', 4)} total, {si(r['params_active'], '', 4)} active; "
        f"weights {si(r['weight_bytes'], 'B', 4)} per GPU; KV {si(r['kv_bytes_per_token'], 'B', 4)} "
        "per token per GPU"
        + (f"; fixed state {si(r['state_bytes_per_sequence'], 'B', 4)} per sequence per GPU"
           if r.get("state_bytes_per_sequence") else "")
    )
    t = Table(title=f"FLOPs by component ({r['flops_unit']}; convention {r['convention']})")
    t.add_column("component")
    pre, dec, req = r["prefill"], r["decode"], r["request"]
    t.add_column(f"prefill {r['batch']}x{r['input_tokens']}", justify="right")
    t.add_column(f"decode step {r['batch']}x(ctx {r['context']})", justify="right")
    t.add_column(f"request {r['batch']}x({r['input_tokens']} in, {r['output_tokens']} out)",
                 justify="right")
    for key in pre["flops_breakdown"]:
        t.add_row(key, si(pre["flops_breakdown"][key], "FLOP"), si(dec["flops_breakdown"][key], "FLOP"),
                  si(req["flops_breakdown"][key], "FLOP"))
    t.add_row("[bold]total", si(pre["flops"], "FLOP", 4), si(dec["flops"], "FLOP", 4),
              si(req["flops"], "FLOP", 4))
    t.add_row("bytes moved per GPU", si(pre["bytes"], "B", 4), si(dec["bytes"], "B", 4), "")
    console.print(t)
