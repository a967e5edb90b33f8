"""``mfubench analyze``: MFU, MBU and the roofline of measured results, phase by phase."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from mfubench.analysis.explain import summary
from mfubench.analysis.phases import Row, Setup, analyze, make_setup
from mfubench.analysis.roofline import DEFAULT_ALLREDUCE_LATENCY_S
from mfubench.commands.argtypes import positive_int
from mfubench.commands.flops import add_model_options, layout_from_args, resolve_model
from mfubench.counting.workload import check_convention
from mfubench.hardware.spec import parse_hardware
from mfubench.report import tables
from mfubench.report.console import make_console


def add_setup_options(p: argparse.ArgumentParser, model_option: bool = True,
                      hardware_required: bool = True) -> None:
    """--model, --hardware and the counting options, shared by analyze/roofline/report
    (``analyze`` takes the device from files that name it: ``hardware_required=False``)."""
    if model_option:
        p.add_argument("--model", "-m", required=True,
                       help="what the FLOPs are counted for: a bundled id, a config.json, a folder "
                            "or a .gguf file")
    p.add_argument("--hardware", required=hardware_required, default=None,
                   help="NxNAME (4xH100-SXM), NAME (one device) or cpu (measured peaks)"
                        + ("" if hardware_required else "; optional for results that name their "
                           "device (llama-bench's gpu_info), looked up in the catalog"))
    add_model_options(p)
    p.add_argument("--gpus-per-node", type=positive_int, default=None,
                   help="GPUs per node (default: the system's in the catalog, e.g. 8 for HGX, 4 "
                        "per NVL72 tray); collectives beyond the NVLink domain use the network")
    p.add_argument("--allreduce-latency-s", type=float, default=DEFAULT_ALLREDUCE_LATENCY_S,
                   help="per-message TP all-reduce latency the roofline assumes "
                        f"(default {DEFAULT_ALLREDUCE_LATENCY_S:g} s)")
    p.add_argument("--max-model-len", type=positive_int, default=None,
                   help="the engine's longest context (vLLM's --max-model-len); points beyond "
                        "it are flagged exceeds-context (default: the model's maximum)")


def setup_from_args(args: argparse.Namespace, measurements: list[Any] | None = None) -> Setup:
    spec = resolve_model(args.model, args.dtype)
    if args.hardware is None:
        from mfubench.analysis.devices import hardware_of

        hardware = hardware_of(measurements or [])
    else:
        hardware = parse_hardware(args.hardware)
    if getattr(args, "gpus_per_node", None):
        hardware = replace(hardware, gpus_per_node=args.gpus_per_node)
    return make_setup(spec, hardware, check_convention(args.convention), args.tp, args.kv_dtype,
                      args.allreduce_latency_s, getattr(args, "max_model_len", None),
                      layout=layout_from_args(args, hardware.count))


def register(sub: Any) -> None:
    p = sub.add_parser("analyze", help="MFU, MBU and roofline of measured results",
                       description=__doc__)
    p.add_argument("results", nargs="+", help="seed-format JSON, CSV/JSON tables, vllm bench "
                   "serve JSON, peer benchmarks' exports, llama-bench json/jsonl/csv/md, or "
                   "mfubench results JSONL")
    add_setup_options(p, hardware_required=False)
    p.add_argument("--requested-output-tokens", type=float, default=None,
                   help="output length the runs asked for (flags early stops)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help='print {"rows": [...]}')
    fmt.add_argument("--csv", action="store_true", help="print the rows as CSV")
    fmt.add_argument("--markdown", action="store_true", help="print markdown tables")
    p.set_defaults(func=run)


def load_all(paths: list[str], requested: float | None = None) -> list[Any]:
    """Every measured point of ``paths`` (any format the importers read)."""
    from mfubench.commands.report import load_sources  # report builds on this module

    return load_sources(paths, requested)[0]


def run(args: argparse.Namespace) -> int:
    measurements = load_all(args.results, args.requested_output_tokens)
    setup = setup_from_args(args, measurements)
    rows = analyze(setup, measurements)
    from mfubench.analysis.as_run import shown_setup

    emit(rows, shown_setup(setup, measurements), args)
    return 0


def emit(rows: list[Row], setup: Setup, args: argparse.Namespace) -> None:
    """Print rows in the format the flags ask for (shared with ``mfubench run``)."""
    if getattr(args, "json", False):
        print(json.dumps({"convention": setup.convention, "peak": setup.peak_label,
                          "rows": [r.to_dict() for r in rows]}, indent=2))
    elif getattr(args, "csv", False):
        print(tables.to_csv(rows), end="")
    elif getattr(args, "markdown", False):
        print(tables.markdown(rows, setup.peak_label))
        for line in summary(rows):
            print(f"- {line}")
    else:
        console = make_console()
        for table in tables.terminal_tables(rows, setup.peak_label):
            console.print(table)
        for line in summary(rows):
            console.print(f"• {line}")
        for r in rows:
            if r.phase != "total":
                console.print(f"  {r.explanation}", highlight=False)
