"""``mfubench run``: measure a live serving engine over a sweep and analyse every point.

Sends ``batch`` requests at once for every point of batch sizes × input lengths × output
lengths, with exact token counts, times prefill and decode from the stream, reads the engine's
``/metrics`` around each window, and writes results as JSONL as it goes (``--resume`` skips the
points already finished). With ``--launch vllm`` it starts vLLM CPU itself (with
``--enable-mfu-metrics`` unless told otherwise) and stops it at the end; its log goes beside
the results.

Prompts are token ids of the exact length (vLLM takes them). For servers that take text only
(SGLang, TGI, llama.cpp, ``transformers serve``), ``--prompt-mode text`` sends texts aligned to
the exact token length through the server's ``/tokenize`` and ``/detokenize``, or through a local
``--tokenizer`` (``auto``, the default: text when ``--tokenizer`` is given, else ids). The texts
are made before each batch is sent; the counts reported still come from ``usage``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mfubench import __version__
from mfubench.commands.argtypes import (
    duration_s,
    int_list,
    lengths_arg,
    nonnegative_int,
    positive_int,
    rate_list,
    slo,
)
from mfubench.errors import InputFileError, MfubenchError, ServerError
from mfubench.measure.lengths import Lengths
from mfubench.measure.results_log import (
    SCHEMA_VERSION,
    PointKey,
    ResultsFile,
    ResultsLog,
    decode_lines,
    read_results,
    split_torn_tail,
    truncate_torn,
)
from mfubench.model.quant import WEIGHT_FORMAT_NAMES
from mfubench.report.console import make_console
from mfubench.report.units import util

#: Flags of the extra vLLM arguments whose value is a secret (redacted in the header).
_SECRET_FLAGS = ("--api-key",)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="measure a live server (or launch vLLM) over a sweep; MFU and MBU per phase",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--endpoint", metavar="URL", help="base URL of an OpenAI-compatible server")
    where.add_argument("--launch", choices=("vllm", "llama.cpp"),
                       help="start this engine on 127.0.0.1 for the run (llama.cpp: from the xllamacpp wheel)")
    p.add_argument("--model", required=True,
                   help="what the FLOPs are counted for (an id, a folder, a config.json or a .gguf "
                   "file); with --launch, what the engine serves (llama.cpp: a .gguf, or a folder "
                   "converted to one first, at --gguf-type)")
    p.add_argument("--gguf-type", default=None, metavar="TYPE",
                   help="--launch llama.cpp with a folder: the GGUF file type to write it as (F16, "
                   "BF16, F32, Q8_0, Q4_K_M, ...; default F16, or --dtype's bf16/fp16/fp32)")
    p.add_argument("--slots", type=positive_int, default=None, metavar="N",
                   help="--launch llama.cpp: parallel slots, the most requests decoded together "
                   "(default: the largest batch or concurrency, 8 for a rate)")
    p.add_argument("--hardware", required=True, help="the accelerator (a catalog name) the server runs on")
    p.add_argument("--batch-sizes", type=int_list, default=None, metavar="B,...",
                   help="static batches: B requests sent at once (default 1)")
    load = p.add_argument_group("under load (instead of static batches)")
    load.add_argument("--concurrency", type=int_list, default=None, metavar="C,...",
                      help="closed loop: C requests in flight, a new one sent as one finishes")
    load.add_argument("--request-rate", type=rate_list, default=None, metavar="R,...",
                      help="open loop: requests sent at R per second, whatever the server does")
    load.add_argument("--arrival", choices=("poisson", "gamma", "constant"), default="poisson",
                      help="with --request-rate: how the gaps between requests are drawn (default poisson)")
    load.add_argument("--burstiness", type=float, default=None, metavar="K",
                      help="with --arrival gamma: the shape (below 1 burstier than Poisson, above smoother)")
    load.add_argument("--num-requests", type=positive_int, default=None, metavar="N",
                      help="measured requests per level (default: max(32, 4 x C) or max(32, 10 s x R))")
    load.add_argument("--warmup-requests", type=nonnegative_int, default=None, metavar="N",
                      help="unmeasured requests per level first (default: C, or R x 1 s, at least 1)")
    load.add_argument("--slo", type=slo, default=None, metavar="ttft=S,tpot=S",
                      help="service-level objectives: goodput is the share of requests within them")
    load.add_argument("--duration", type=duration_s, default=None, metavar="S",
                      help="instead of --num-requests: send requests for S seconds per level")
    load.add_argument("--workload", type=Path, default=None, metavar="FILE",
                      help='JSONL of {"input_tokens", "output_tokens", "arrival_s"?} per request: with '
                      "arrival times a trace, else the lengths under --concurrency/--request-rate")
    p.add_argument("--input-tokens", type=lengths_arg, default=None, metavar="I,...",
                   help="prompt lengths; under load also LO:HI (uniform) or MEAN~SD (normal) per request")
    p.add_argument("--output-tokens", type=lengths_arg, default=None, metavar="O,...",
                   help="output lengths, as --input-tokens")
    p.add_argument("--repeats", type=positive_int, default=3, help="measured rounds per point (default 3)")
    p.add_argument("--warmup", type=nonnegative_int, default=1, help="unmeasured rounds per point first (default 1)")
    p.add_argument("--convention", default="causal", help="what FLOPs count (as for `mfubench flops`; default causal)")
    p.add_argument("--tp", type=positive_int, default=None,
                   help="tensor-parallel degree of the server (default: the device count of --hardware)")
    p.add_argument("--dtype", choices=WEIGHT_FORMAT_NAMES, default=None,
                   help="how the served weights are stored, for the counts (default: the config's); "
                        "with --launch, bf16/fp16/fp32 is also vLLM's --dtype (default bf16)")
    p.add_argument("--served-model", metavar="NAME", help="the name the server knows (default: the first of /v1/models)")
    p.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key (sent as Bearer)")
    p.add_argument("--out", type=Path, default=Path("results.jsonl"), help="results file (default results.jsonl)")
    p.add_argument("--resume", action="store_true", help="append to --out and skip the points it has finished")
    p.add_argument("--seed", type=int, default=None, help="seed of the random prompt ids (default: fresh)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="seconds per request (default 600)")
    p.add_argument("--startup-timeout", type=float, default=600.0, metavar="S",
                   help="with --launch: seconds to wait for /health (default 600)")
    p.add_argument("--max-model-len", type=positive_int, default=None,
                   help="with --launch: vLLM's --max-model-len (default: enough for the sweep, at least 2048)")
    p.add_argument("--prompt-mode", choices=("ids", "text", "auto"), default="auto",
                   help="prompts as token ids, or as texts aligned to the exact token length "
                   "(default auto: text with --tokenizer, else ids)")
    p.add_argument("--tokenizer", type=Path, metavar="DIR",
                   help="text prompts: align them with this tokenizer.json (or its folder), "
                   "not the server's /tokenize and /detokenize")
    p.add_argument("--client-procs", type=positive_int, default=1, metavar="N",
                   help="client processes sharing each batch, for concurrency one process cannot drive (default 1)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--allow-infeasible", action="store_true",
                   help="measure points beyond the context or the memory of the layout anyway "
                        "(their rows are flagged; default: refuse them before anything is sent)")
    p.add_argument("--json", action="store_true", help='print {"rows": [...]} on stdout at the end')
    p.add_argument("engine_args", nargs="*", metavar="-- ENGINE_ARGS",
                   help="after --: extra arguments for the launched engine")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mfubench.measure.sweep import SweepPlan

    if args.engine_args and not args.launch:
        raise MfubenchError(f"extra engine arguments {' '.join(args.engine_args)!r} need --launch")
    if args.launch == "vllm":
        launch_dtype(args.dtype)  # a format a launched vLLM cannot take fails before anything starts
    if args.gguf_type is not None and args.launch != "llama.cpp":
        raise MfubenchError("--gguf-type converts a folder for --launch llama.cpp")
    if args.slots is not None and args.launch != "llama.cpp":
        raise MfubenchError("--slots sets a launched llama.cpp's parallel slots")
    if args.launch == "llama.cpp":
        prepare_llamacpp(args)  # the counted model is the served file
    from mfubench.commands.run_levels import level_plans, run_levels_command

    levels = level_plans(args)
    if levels is not None:
        return run_levels_command(args, levels)
    static_lengths(args)
    args.batch_sizes = args.batch_sizes or (1,)  # a static run; the header records what ran
    plan = SweepPlan(args.batch_sizes, args.input_tokens, args.output_tokens, args.repeats, args.warmup)
    analyze, vocab_size, setup = _analysis(args)
    api_key = _api_key(args.api_key_env)
    existing = _existing(args)
    finished = set(existing.points) if existing else set()
    todo = [k for k in plan.points() if k not in finished]
    mode = prompt_mode(args.prompt_mode, args.tokenizer)
    infeasible = _infeasible(setup, todo)
    if args.dry_run:
        return _print_plan(args, plan, todo, mode, infeasible)
    if infeasible and not args.allow_infeasible:
        shown = "; ".join(f"batch {b} input {i} output {o}: {flags[0]}" for (b, i, o), flags in infeasible[:3])
        more = f" (and {len(infeasible) - 3} more)" if len(infeasible) > 3 else ""
        raise MfubenchError(f"{len(infeasible)} point(s) cannot be served as a batch on "
                            f"{args.hardware}: {shown}{more}; drop them, or pass --allow-infeasible "
                            "to measure them anyway (their rows are flagged)")
    from mfubench.measure.client import default_token_range

    token_range = default_token_range(vocab_size)
    local = None
    if args.tokenizer is not None:
        from mfubench.measure.prompts import LocalTokenizer

        local = LocalTokenizer(args.tokenizer)  # a bad path fails before any server starts
    from mfubench.measure.client import run_async

    with _server(args) as (url, check_server):
        points = run_async(_measure(args, plan, url, check_server, api_key, analyze, token_range, existing,
                                    mode, local))
    _render(args, points, setup)
    return 0


def _analysis(args: argparse.Namespace) -> tuple[Callable[[Any], list[dict[str, Any]]], int, Any]:
    """The analysis callable for every point, the vocabulary size and the analysis setup (model,
    hardware and convention resolved once, before anything is sent)."""
    from mfubench.analysis.phases import analyze_point, make_setup
    from mfubench.commands.flops import resolve_model
    from mfubench.counting.workload import check_convention
    from mfubench.hardware.spec import parse_hardware

    model = resolve_model(args.model, args.dtype)
    # the launched engine's context is known; a server's at --endpoint is taken as the model's
    max_model_len = (args.max_model_len or launch_max_model_len(args)) if args.launch else None
    setup = make_setup(model, parse_hardware(args.hardware), check_convention(args.convention),
                       args.tp, max_model_len=max_model_len)

    def analyze(measurement: Any) -> list[dict[str, Any]]:
        return [row.to_dict() for row in analyze_point(setup, measurement)]

    return analyze, int(model.vocab_size), setup


def prompt_mode(mode: str, tokenizer: Path | None) -> str:
    """``ids`` or ``text``: ``auto`` is text when a local tokenizer is given, else ids."""
    if mode == "auto":
        return "text" if tokenizer is not None else "ids"
    if mode == "ids" and tokenizer is not None:
        raise MfubenchError("--tokenizer aligns text prompts; it has no use with --prompt-mode ids")
    return mode


def _api_key(var: str | None) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise MfubenchError(f"--api-key-env {var}: that environment variable is not set")
    return value


def _existing(args: argparse.Namespace) -> ResultsFile | None:
    """The results file to resume (checked against this run's model/hardware/convention)."""
    out: Path = args.out
    if not out.exists() or out.stat().st_size == 0:
        return None
    if not args.resume:
        raise MfubenchError(f"{out} exists; pass --resume to continue it, or another --out")
    kept, torn = split_torn_tail(decode_lines(out.read_bytes(), out), alone=True)
    if torn is not None and not kept.strip():  # only a torn header: nothing was measured
        if not args.dry_run:
            truncate_torn(out, torn)
        print(f"{out}: only a torn header ({torn.size} bytes); starting afresh", file=sys.stderr)
        return None
    existing = read_results(out)  # a torn final line is reported (a warning) and skipped
    for name in ("model", "hardware", "convention", "dtype"):
        then, now = existing.header.get(name), getattr(args, name)
        if then != now:
            raise InputFileError(f"{out}:1: measured with {name} {then!r}, this run asks {now!r}; use another --out")
    if existing.torn is not None and not args.dry_run:
        truncate_torn(out, existing.torn)  # appending after half a line would tear the next one
        print(f"{out}: truncated the torn line {existing.torn.number} ({existing.torn.size} bytes) "
              "before appending", file=sys.stderr)
    return existing


def _infeasible(setup: Any, todo: Sequence[PointKey]) -> list[tuple[PointKey, list[str]]]:
    """The points of ``todo`` beyond the layout's context or memory, with their flags."""
    if setup is None:  # an analysis replaced in tests
        return []
    from mfubench.analysis.feasibility import feasibility_flags

    checked = [(key, feasibility_flags(setup, *key)) for key in todo]
    return [(key, flags) for key, flags in checked if flags]


def _print_plan(args: argparse.Namespace, plan: Any, todo: Sequence[PointKey], mode: str,
                infeasible: Sequence[tuple[PointKey, list[str]]] = ()) -> int:
    requests = sum(b * (plan.repeats + plan.warmup) for b, _, _ in todo)
    summary = {
        "points": len(plan.points()),
        "to_measure": [list(k) for k in todo],
        "requests": requests,
        "prompt_tokens": sum(b * i * (plan.repeats + plan.warmup) for b, i, _ in todo),
        "output_tokens": sum(b * o * (plan.repeats + plan.warmup) for b, _, o in todo),
        "prompt_mode": mode,
        "out": str(args.out),
        "target": args.endpoint or f"launch {args.launch} {args.model}",
        "infeasible": [{"point": list(key), "flags": flags} for key, flags in infeasible],
    }
    if args.json:
        print(json.dumps({"plan": summary}))
    else:
        print(f"{summary['target']}: {len(todo)} of {summary['points']} points to measure, "
              f"{requests} requests ({summary['prompt_tokens']} prompt + {summary['output_tokens']} "
              f"output tokens, {mode} prompts), results in {args.out}")
        cannot = dict(infeasible)
        for b, i, o in todo:
            flags = cannot.get((b, i, o), [])
            note = ("  " + ", ".join(f.split(":")[0] for f in flags)) if flags else ""
            print(f"  batch {b:>4}  input {i:>6}  output {o:>6}{note}")
        for key, flags in infeasible:
            for flag in flags:
                print(f"  batch {key[0]} input {key[1]} output {key[2]}: {flag}")
    return 0


def static_lengths(args: argparse.Namespace) -> None:
    """A static run's ``--input-tokens`` and ``--output-tokens`` as whole numbers: every request
    of a batch has the same lengths (distributions and workloads are for runs under load)."""
    if args.workload is not None or args.duration is not None:
        raise MfubenchError("--workload and --duration are for runs under load (give --concurrency "
                            "or --request-rate, or a workload with arrival times)")
    for name in ("input_tokens", "output_tokens"):
        values = getattr(args, name)
        flag = "--" + name.replace("_", "-")
        if values is None:
            raise MfubenchError(f"{flag} is required")
        drawn = [v.label for v in values if not v.is_fixed]
        if drawn:
            raise MfubenchError(f"{flag} {drawn[0]}: lengths drawn per request are for runs under load "
                                "(--concurrency, --request-rate); a static batch has one shape")
        setattr(args, name, tuple(int(v.a) for v in values))


def launch_max_model_len(args: argparse.Namespace) -> int:
    """The ``--max-model-len`` a launched vLLM gets by default: enough for the longest request
    of the sweep (of a distribution, its longest draw; of a workload, its longest request),
    at least 2048."""
    longest = getattr(args, "longest_request", None)
    if longest is not None:
        return int(max(2048, longest))

    def high(value: int | Lengths) -> int:
        return value.high if isinstance(value, Lengths) else value

    return int(max(2048, max(map(high, args.input_tokens)) + max(map(high, args.output_tokens))))


#: ``--dtype`` values a launched vLLM takes as its own ``--dtype`` (quantized formats come from
#: the checkpoint's ``quantization_config``, not from a flag).
_VLLM_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def launch_dtype(dtype: str | None) -> str:
    """vLLM's ``--dtype`` for ``run --dtype`` (default bfloat16); a clear error for a quantized
    format, which a launched server can only take from its checkpoint."""
    if dtype is None:
        return "bfloat16"
    if dtype not in _VLLM_DTYPES:
        raise MfubenchError(f"--dtype {dtype} with --launch: a launched vLLM serves bf16, fp16 or "
                            "fp32; quantized weights come from the checkpoint's quantization_config")
    return _VLLM_DTYPES[dtype]


@contextmanager
def _server(args: argparse.Namespace) -> Iterator[tuple[str, Callable[[], str | None]]]:
    """The server's URL, and a check that says why it is gone (None while it is fine)."""
    if not args.launch:
        yield str(args.endpoint).rstrip("/"), lambda: None
        return
    if args.launch == "llama.cpp":
        with _llamacpp_server(args) as served:
            yield served
        return
    from mfubench.measure.server import launch_vllm

    extra = list(args.engine_args)
    served_dtype = launch_dtype(args.dtype)
    if not any(a.startswith(("--enable-mfu-metrics", "--no-enable-mfu-metrics")) for a in extra):
        extra.append("--enable-mfu-metrics")
    with launch_vllm(
        args.model,
        log_path=args.out.with_name(args.out.name + ".vllm.log"),
        max_model_len=args.max_model_len or launch_max_model_len(args),
        extra_args=extra,
        startup_timeout_s=args.startup_timeout,
        dtype=served_dtype,
    ) as server:
        yield server.url, _gone(server)


def _gone(server: Any) -> Callable[[], str | None]:
    def check() -> str | None:
        if server.alive():
            return None
        code = server.process.returncode
        return f"the launched {server.name} exited with code {code} (log {server.log_path}): {server.log_tail(5)}"

    return check


#: ``--dtype`` of a folder converted for llama.cpp -> the GGUF file type written.
_GGUF_TYPES = {"bf16": "BF16", "fp16": "F16", "fp32": "F32"}


def prepare_llamacpp(args: argparse.Namespace) -> None:
    """``--launch llama.cpp``: make ``args.model`` the GGUF file served (a folder is written as
    one first, beside ``--out``, at ``--gguf-type``), before anything is counted, so that the
    analysis counts the file's own bytes; record the folder in ``args.converted_from``."""
    model = Path(args.model)
    if model.is_file():
        if args.gguf_type is not None:
            raise MfubenchError(f"--gguf-type converts a folder; {model} is already a file")
        return
    if not model.is_dir():
        raise MfubenchError(f"--launch llama.cpp serves a .gguf file or a local model folder, not {args.model!r}")
    if args.dtype is not None and args.dtype not in _GGUF_TYPES:
        raise MfubenchError(f"--dtype {args.dtype} with --launch llama.cpp: give --gguf-type (Q8_0, Q4_K_M, ...)")
    from mfubench.model.gguf_writer import FILE_TYPES, write_gguf

    ftype = (args.gguf_type or _GGUF_TYPES.get(args.dtype or "fp16", "F16")).upper()
    if ftype not in FILE_TYPES:
        raise MfubenchError(f"--gguf-type {ftype}: expected one of {', '.join(FILE_TYPES)}")
    out = args.out.with_name(f"{model.resolve().name}-{ftype}.gguf")
    if not out.exists():
        write_gguf(model, out, ftype)
        print(f"wrote {out} ({ftype}) from {model} for llama.cpp", file=sys.stderr)
    args.converted_from, args.model, args.dtype = str(model), str(out), None


def llamacpp_slots(args: argparse.Namespace) -> int:
    """Parallel slots of a launched llama.cpp: ``--slots``, else what the sweep needs at once."""
    if args.slots is not None:
        return int(args.slots)
    if args.concurrency:
        return int(max(args.concurrency))
    if args.request_rate or getattr(args, "workload", None):
        return 8
    return int(max(args.batch_sizes or (1,)))


@contextmanager
def _llamacpp_server(args: argparse.Namespace) -> Iterator[tuple[str, Callable[[], str | None]]]:
    import importlib.metadata

    from mfubench.measure.server import launch_llamacpp

    try:
        args.launched = f"xllamacpp {importlib.metadata.version('xllamacpp')}"
    except importlib.metadata.PackageNotFoundError:
        raise MfubenchError("--launch llama.cpp needs the xllamacpp wheel: pip install 'mfubench[llamacpp]'") from None
    with launch_llamacpp(
        args.model,
        log_path=args.out.with_name(args.out.name + ".llamacpp.log"),
        ctx_per_slot=args.max_model_len or launch_max_model_len(args),
        parallel=llamacpp_slots(args),
        extra_args=list(args.engine_args),
        startup_timeout_s=min(args.startup_timeout, 300.0),
    ) as server:
        yield server.url, _gone(server)


async def _measure(
    args: argparse.Namespace,
    plan: Any,
    url: str,
    check_server: Callable[[], str | None],
    api_key: str | None,
    analyze: Callable[[Any], list[dict[str, Any]]],
    token_range: tuple[int, int],
    existing: ResultsFile | None,
    mode: str = "ids",
    local: Any = None,
) -> list[dict[str, Any]]:
    """Run the sweep; return the ``point`` lines of the plan's finished points, in plan order."""
    from mfubench.measure.client import CompletionClient
    from mfubench.measure.sweep import SweepHooks, run_sweep

    async with CompletionClient(url, api_key=api_key, timeout_s=args.timeout) as client:
        models = await client.models()
        served = args.served_model or (models[0] if models else None)
        if not served:
            raise ServerError(f"{url}/v1/models lists no model; pass --served-model")
        if args.served_model and args.served_model not in models:
            raise ServerError(f"{url} does not serve {args.served_model!r}; it lists {', '.join(models)}")
        client.model = served
        engine, version = await client.identify()
        maker = await _text_prompts(client, local, token_range) if mode == "text" else None
        finished = set(existing.points) if existing else set()
        todo = [k for k in plan.points() if k not in finished]
        with ResultsLog(args.out) as log:
            if existing is None:
                log.write({**header(args, served, engine.name, version), "prompt_mode": mode})
            with _progress(len(todo) * plan.repeats) as (advance, say):
                hooks = SweepHooks(
                    check_server=check_server,
                    on_round=lambda key, repeat: advance(f"batch {key[0]} in {key[1]} out {key[2]}"),
                    on_point=lambda point: say(point_line(point)),
                )
                rng = random.Random(args.seed)
                with _client_pool(args, url, served, api_key, engine.name) as batcher:
                    await run_sweep(client, plan, analyze, log, token_range=token_range, rng=rng,
                                    finished=finished, hooks=hooks, batcher=batcher, prompts=maker)
    points = read_results(args.out).points
    return [points[key] for key in plan.points() if key in points]


async def _text_prompts(client: Any, local: Any, token_range: tuple[int, int]) -> Any:
    """The text-prompt maker, checked once before the sweep: the local tokenizer, or the
    server's ``/tokenize`` and ``/detokenize`` (a server without them: a clear error)."""
    from mfubench.measure.prompts import ServerTokenizer, TextPrompts

    maker = TextPrompts(local if local is not None else ServerTokenizer(client))
    try:
        await maker.check(token_range)
    except ServerError as exc:
        if local is not None:
            raise
        raise ServerError(f"text prompts need the server's /tokenize and /detokenize, or --tokenizer DIR: {exc}") from exc
    return maker


@contextmanager
def _client_pool(args: argparse.Namespace, url: str, served: str, api_key: str | None,
                 engine: str = "vllm") -> Iterator[Any]:
    """``--client-procs N`` > 1: a pool of client processes sharing each batch; else None."""
    if args.client_procs <= 1:
        yield None
        return
    from mfubench.measure.multiproc import ClientPool

    with ClientPool(url, procs=args.client_procs, model=served, api_key=api_key, timeout_s=args.timeout,
                    engine=engine) as pool:
        yield pool


def header(args: argparse.Namespace, served_model: str, engine: str, engine_version: str | None) -> dict[str, Any]:
    """The provenance line: tool and engine, model, hardware, convention, args without secrets."""
    line = {
        "type": "header",
        "schema_version": SCHEMA_VERSION,
        "tool": "mfubench",
        "tool_version": __version__,
        "engine": engine,
        "engine_version": engine_version,
        "served_model": served_model,
        "model": args.model,
        "hardware": args.hardware,
        "convention": args.convention,
        "dtype": args.dtype,
        "args": safe_args(args),
        "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if getattr(args, "converted_from", None):
        line["converted_from"] = str(args.converted_from)  # the folder the served GGUF was written from
    if getattr(args, "launched", None):
        line["launched"] = args.launched  # the engine package that served, and its version
    return line


def safe_args(args: argparse.Namespace) -> dict[str, Any]:
    """The command's arguments as JSON, with secrets redacted (the key's variable name stays)."""
    out: dict[str, Any] = {}
    for name, value in vars(args).items():
        if name == "func" or callable(value):
            continue
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, tuple):
            value = [v.label if isinstance(v, Lengths) else v for v in value]
        out[name] = value
    extra = list(out.get("engine_args") or [])
    for i, arg in enumerate(extra):
        for flag in _SECRET_FLAGS:
            if arg == flag and i + 1 < len(extra):
                extra[i + 1] = "<redacted>"
            elif arg.startswith(flag + "="):
                extra[i] = flag + "=<redacted>"
    out["engine_args"] = extra
    return out


def point_line(point: Any) -> str:
    """One line of the live table: a finished point's phases with MFU, MBU and bound."""
    b, i, o = point.key
    parts = [f"batch {b:>4} in {i:>5} out {o:>4}"]
    for row in point.rows:
        if row.get("phase") == "total":
            continue
        seconds = row.get("seconds")
        timing = "-" if seconds is None else f"{seconds:.3g} s"
        bound = f"{row['bound']}-bound" if row.get("bound") else "no peak"
        over, cannot = row.get("above_peak") or [], row.get("infeasible") or []
        parts.append(f"{row.get('phase')} {timing} {row_figures(row)} ({bound})"
                     + (" above the peak" if over else "") + "".join(f" {c}" for c in cannot))
    if point.flags:
        parts.append(flagged(point.flags))
    return " | ".join(parts)


def row_figures(row: Mapping[str, Any]) -> str:
    """``MFU 38.7 % MBU 17.7 %`` of a row dict, each marked when it is not a plain figure
    (above the peak, or a point the layout could not hold)."""
    over, cannot = row.get("above_peak") or [], bool(row.get("infeasible"))
    return (f"MFU {util(row.get('mfu'), 1, 'mfu' in over or cannot)} "
            f"MBU {util(row.get('mbu'), 1, 'mbu' in over or cannot)}")


def flagged(flags: Sequence[Any]) -> str:
    """``flagged: client-bound, output_count``: the flags' names, for a live line."""
    return "flagged: " + ", ".join(str(f).split(":")[0] for f in flags)


@contextmanager
def _progress(total: int) -> Iterator[tuple[Callable[[str], None], Callable[[str], None]]]:
    """A rich progress bar on stderr, and above it a line per finished point (the live table):
    the first callable advances the bar by one measured round, the second prints a line."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=make_console(stderr=True),
    )
    task = progress.add_task("measuring", total=total)
    with progress:
        yield (lambda description: progress.update(task, advance=1, description=description),
               lambda line: progress.console.print(line, highlight=False, markup=False))


def _render(args: argparse.Namespace, points: list[dict[str, Any]], setup: Any) -> None:
    """The tables of ``mfubench analyze`` over the whole results file (resumed points too), or
    ``{"rows": [...]}`` with ``--json``; flagged points are kept out of the figures and named on
    stderr. ``setup`` None (an analysis replaced in tests): this run's rows as JSON."""
    from mfubench.analysis.phases import analyze
    from mfubench.commands.analyze import emit
    from mfubench.io.importers import load_measurements

    measurements = load_measurements(args.out)
    clean = [m for m in measurements if not m.extra.get("flags")]
    if setup is None:
        print(json.dumps({"rows": [r for p in points for r in p.get("rows", [])]}, allow_nan=False))
    else:
        emit(analyze(setup, clean), setup, args)
    for m in measurements:
        if m.extra.get("flags"):
            print(f"left out: batch {m.batch_size} input {m.input_tokens:g} output "
                  f"{m.output_tokens:g}: {', '.join(map(str, m.extra['flags']))}", file=sys.stderr)
    if any("client-bound" in (p.get("flags") or []) for p in points):
        print("client-bound: the client itself was late on some points (event-loop or send lag, see "
              "docs/performance.md); try --client-procs N", file=sys.stderr)
    print(f"results: {args.out}", file=sys.stderr)


