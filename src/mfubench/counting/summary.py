"""One call that counts everything ``mfubench flops`` reports, as a JSON-ready mapping.

Names are part of the interface (scripts depend on them): ``params_total``, ``params_active``,
``weight_bytes`` (per GPU), ``kv_bytes_per_token`` (per GPU, all attention layers),
``state_bytes_per_sequence`` (per GPU: the fixed state of linear-attention/SSM layers, 0 without),
``prefill.flops``
(``batch`` sequences of ``input_tokens``), ``decode.flops`` and ``decode.bytes`` (one step of
``batch`` sequences each adding a token to a cache of ``context`` tokens), ``request.flops``
(``batch`` whole requests of ``input_tokens`` in and ``output_tokens`` out), ``convention``.
FLOPs are for the whole model (``*_per_gpu`` for one of ``tp`` GPUs); bytes are per GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mfubench import __version__
from mfubench.counting import flops, memory
from mfubench.counting.components import check_tp
from mfubench.counting.layout import Layout
from mfubench.counting.workload import Convention, DecodeStep, PrefillChunk, Request
from mfubench.model.spec import ModelSpec


@dataclass(frozen=True)
class CountQuery:
    """What to count: ``batch`` requests of ``input_tokens`` in, ``output_tokens`` out."""

    input_tokens: int
    output_tokens: int = 1
    context: int | None = None  # decode cache length; defaults to input_tokens
    batch: int = 1
    tp: int = 1
    kv_dtype: str | None = None
    convention: Convention = "causal"


def count(spec: ModelSpec, q: CountQuery) -> dict[str, Any]:
    """Every count of ``q`` for ``spec``: parameters, bytes, prefill, decode step, request."""
    check_tp(spec, q.tp)
    context = q.input_tokens if q.context is None else q.context
    chunk = PrefillChunk(q.input_tokens, 0, q.batch)
    step = DecodeStep.uniform(q.batch, context)
    pre = flops.prefill(spec, chunk, q.convention)
    dec = flops.decode(spec, step, q.convention)
    req = flops.request(spec, Request(q.input_tokens, q.output_tokens, q.batch), q.convention)
    pre_bytes = memory.prefill_bytes(spec, chunk, q.kv_dtype, q.tp)
    dec_bytes = memory.decode_bytes(spec, step, q.kv_dtype, q.tp)
    weights = memory.weight_bytes(spec, q.tp)
    return {
        "tool": f"mfubench {__version__}",
        "model": spec.name,
        "model_type": spec.model_type,
        "convention": q.convention,
        "flops_unit": "FLOPs, 2 per multiply-add, whole model (all GPUs)",
        "bytes_unit": "bytes (decimal), per GPU",
        "tp": q.tp,
        "dtype": spec.weights.name,
        "kv_dtype": q.kv_dtype or memory.default_kv_dtype(spec),
        "batch": q.batch,
        "input_tokens": q.input_tokens,
        "output_tokens": q.output_tokens,
        "context": context,
        "params_total": memory.params_total(spec),
        "params_active": memory.params_active(spec),
        "params": memory.param_breakdown(spec),
        "weight_bytes": sum(weights.values()),
        "weight_bytes_total": sum(memory.weight_bytes(spec, 1).values()),
        "weight_bytes_breakdown": weights,
        "kv_bytes_per_token": memory.kv_bytes_per_token(spec, q.kv_dtype, q.tp),
        "state_bytes_per_sequence": memory.state_bytes_per_sequence(spec, q.tp),
        "prefill": _phase(spec, pre, q.tp, pre_bytes),
        "decode": _phase(spec, dec, q.tp, dec_bytes),
        "request": {"flops": flops.total(req), "flops_breakdown": req},
    }


def _phase(spec: ModelSpec, fl: dict[str, int], tp: int, nbytes: memory.StepBytes) -> dict[str, Any]:
    return {
        "flops": flops.total(fl),
        "flops_per_gpu": sum(flops.per_gpu(spec, fl, tp).values()),
        "flops_breakdown": fl,
        "bytes": nbytes.total,
        "read_bytes": sum(nbytes.read.values()),
        "write_bytes": sum(nbytes.write.values()),
        "read_bytes_breakdown": nbytes.read,
        "write_bytes_breakdown": nbytes.write,
    }


def layout_counts(spec: ModelSpec, q: CountQuery, layout: Layout) -> dict[str, Any]:
    """Per-GPU counts of ``q`` under ``layout``, stage by stage (the busiest GPU of each):
    its layers, weight bytes, the KV one GPU holds for its DP rank's share of ``q.batch``, and
    the prefill and decode step of :func:`count` (FLOPs and bytes per GPU)."""
    from mfubench.counting import parallel as par

    par.check_layout(spec, layout)
    context = q.input_tokens if q.context is None else q.context
    chunk = PrefillChunk(q.input_tokens, 0, q.batch)
    stages = []
    for s in range(layout.pp):
        pre = par.prefill_stage(spec, layout, chunk, s, q.convention, q.kv_dtype)
        dec = par.decode_span_stage(spec, layout, q.batch, context, 1, s, q.kv_dtype)
        stages.append({
            "stage": s, "layers": [pre.layers.start, pre.layers.stop],
            "weight_bytes": sum(pre.weight_bytes.values()),
            "weight_bytes_breakdown": pre.weight_bytes,
            "kv_bytes": par.kv_bytes_per_gpu(spec, layout, q.batch, context + 1, q.kv_dtype, s),
            "prefill": {"flops_per_gpu": pre.flops_total, "bytes": pre.bytes_total,
                        "flops_breakdown": pre.flops},
            "decode": {"flops_per_gpu": dec.flops_total, "bytes": dec.bytes_total,
                       "flops_breakdown": dec.flops, "read_bytes_breakdown": dec.read},
        })
    return {"tp": layout.tp, "dp": layout.dp, "pp": layout.pp, "ep": layout.ep,
            "ep_imbalance": layout.imbalance, "devices": layout.devices, "label": layout.label,
            "expert_tp": layout.expert_tp, "rank_batch": par.ceil_div(q.batch, layout.dp),
            "stages": stages}
