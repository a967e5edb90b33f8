"""MFU and MBU inside the user's Prometheus: recording rules and a Grafana dashboard over them.

``mfubench monitor --prometheus-rules FILE`` writes :func:`recording_rules`: one rule group
recording, per instance and model,

``mfubench:mfu:ratio``
    per-GPU FLOP/s over the per-GPU peak FLOP/s;
``mfubench:mbu:ratio``
    per-GPU bytes/s over the per-GPU memory bandwidth,

the same figures as :func:`mfubench.analysis.window.window_figures` over a window of
``rate_window``. The work comes from the engine's own per-GPU estimates where it exports them
(vLLM with ``--enable-mfu-metrics``; the rules then carry ``mfubench_source="engine"``), else
from its token counters through mfubench's count (``mfubench_source="tokens"``)::

    mfu = (rate(prompt_tokens) x F_prompt + rate(generation_tokens) x F_generated) / peak
    mbu = (rate(steps) x B_weights + rate(generation_tokens) x B_kv) / bandwidth

with the constants of :func:`~mfubench.analysis.window.token_costs` at the given mean lengths
(a rule cannot read a window's mean prompt: the lengths are fixed when the file is written,
and the file says which). An engine without a step count (SGLang) gets no ``mbu`` rule from its
token counters, and the file says why. Every number in an expression has a comment naming what
it is and where it comes from (the catalog's datasheet peak, mfubench's count).

Grouping: by ``instance`` and the engine's model label (``model_name`` on vLLM and SGLang);
engines without one (llama.cpp, TGI) get ``model_name`` as a static label, so every recorded
series has the same labels. Each counter's rate is summed over the labels that split one
replica's work (TGI's ``method="prefill"``/``"decode"``) and averaged over those that tell
replicas apart (vLLM's data-parallel ``engine="0"``, ``"1"``, ...; SGLang's ranks): each replica
runs on GPUs of its own and the figure is per GPU. (With one replica per instance, the usual
case, this is the plain sum :func:`~mfubench.measure.metrics.total` takes.) A figure above 1 is recorded as it is (never clamped); the
dashboard draws the line at 1.0.

The YAML is written by hand (no PyYAML at runtime): scalars as JSON strings, which YAML reads
as its double-quoted scalars, and each expression as a literal block.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mfubench.analysis.phases import Setup
from mfubench.analysis.window import token_costs
from mfubench.errors import MfubenchError
from mfubench.measure.engine import Engine, engine_named

RULE_MFU = "mfubench:mfu:ratio"
RULE_MBU = "mfubench:mbu:ratio"
#: The label each engine names its model by (absent: the rules add ``model_name`` statically).
MODEL_LABELS: Mapping[str, str] = {"vllm": "model_name", "sglang": "model_name"}
#: Labels that tell apart the replicas (or GPUs) within one instance: each carries a figure of
#: its own, so the rules average over them (vLLM's data-parallel ``engine``; SGLang's ranks).
REPLICA_LABELS: Mapping[str, tuple[str, ...]] = {"vllm": ("engine",), "sglang": ("dp_rank", "pp_rank", "tp_rank")}
OUT_MODEL_LABEL = "model_name"
Source = Literal["engine", "tokens"]


@dataclass(frozen=True)
class Rule:
    """One recording rule: its name, its expression (with PromQL ``#`` comments), its static
    labels, and the comment lines written above it."""

    record: str
    expr: str
    labels: Mapping[str, str]
    comments: tuple[str, ...] = ()


def group_labels(engine: Engine) -> tuple[str, ...]:
    """The labels the rules keep: ``instance`` and the engine's model label where it has one."""
    model = MODEL_LABELS.get(engine.name)
    return ("instance", model) if model else ("instance",)


def counter_names(engine: Engine) -> dict[str, str]:
    """The engine's counters the rules read (``flops``, ``prompt_tokens``, ``steps``, ...)."""
    names = {k: v for k, v in engine.monitor.items()
             if k in ("flops", "read_bytes", "write_bytes", "prompt_tokens", "generation_tokens", "steps")}
    if "steps" not in names and "steps_histogram" in engine.monitor:
        names["steps"] = engine.monitor["steps_histogram"] + "_count"
    return names


def _num(x: float) -> str:
    """A float as PromQL reads it back exactly."""
    return repr(float(x))


def _selector(name: str, matchers: Mapping[str, str]) -> str:
    if not matchers:
        return name
    inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(matchers.items()))
    return f"{name}{{{inner}}}"


def build_rules(
    setup: Setup,
    *,
    engine: str = "vllm",
    model_label: str | None = None,
    rate_window: str = "1m",
    input_tokens: float | None = None,
    output_tokens: float | None = None,
    source: Source | None = None,
) -> tuple[list[Rule], list[str]]:
    """The rules of :func:`recording_rules` and the notes on what could not be recorded."""
    eng = engine_named(engine)
    machine = setup.machine()
    if machine is None:
        raise MfubenchError(f"no recording rules: {setup.hardware.name} has no {setup.dtype} peak "
                            "(MFU would be against a wrong peak)")
    names = counter_names(eng)
    by = group_labels(eng)
    model_key = MODEL_LABELS.get(eng.name)
    matchers = {model_key: model_label} if model_key and model_label else {}
    static: dict[str, str] = {}
    if model_key is None:
        static[OUT_MODEL_LABEL] = model_label or setup.spec.name
    has_engine = all(k in names for k in ("flops", "read_bytes", "write_bytes"))
    has_tokens = "prompt_tokens" in names and "generation_tokens" in names
    lengths = input_tokens is not None and output_tokens is not None
    if source == "engine" and not has_engine:
        raise MfubenchError(f"{eng.name} exports no FLOP/byte estimates: use its token counters")
    use_engine = has_engine and source != "tokens"
    use_tokens = has_tokens and source != "engine" and (lengths or not use_engine)
    if not use_engine and not has_tokens:
        raise MfubenchError(f"{eng.name} exports neither FLOP nor token counters: no recording rules")
    if use_tokens and not lengths:
        raise MfubenchError(f"recording rules from {eng.name}'s token counters need the mean prompt "
                            "and output lengths (--input-tokens, --output-tokens): the FLOPs per "
                            "token depend on them")
    acc = setup.hardware.accelerator
    peak = f"/ {_num(machine.peak_flops)}  # per-GPU peak {setup.dtype} FLOP/s of {acc.name} " \
           f"({machine.peak_source}, dense; catalog: {acc.source})"
    bandwidth = f"/ {_num(machine.memory_bandwidth)}  # per-GPU memory bandwidth of {acc.name}, " \
                f"bytes/s ({machine.peak_source}; catalog: {acc.source})"
    replicas = REPLICA_LABELS.get(eng.name, ())

    def per_gpu(key: str) -> str:
        """The counter's rate summed over the labels that split the work (TGI's ``method``),
        averaged over the replicas."""
        inner = f"rate({_selector(names[key], matchers)}[{rate_window}])"
        if not replicas:
            return f"sum by ({', '.join(by)}) ({inner})"
        return f"avg by ({', '.join(by)}) (sum by ({', '.join(by + replicas)}) ({inner}))"

    notes: list[str] = []
    head = (f"{setup.spec.name} on {setup.hardware.name} (TP {setup.tp}, {setup.dtype}, "
            f"convention {setup.convention}), engine {eng.name}, over {rate_window}")
    mfu: dict[str, str] = {}
    mbu: dict[str, str] = {}
    if use_engine:
        mfu["engine"] = f"{per_gpu('flops')}\n{peak}"
        mbu["engine"] = f"(\n  {per_gpu('read_bytes')}\n  + {per_gpu('write_bytes')}\n)\n{bandwidth}"
    costs = token_costs(setup, input_tokens, output_tokens) if use_tokens and input_tokens is not None \
        and output_tokens is not None else None
    if costs is not None and input_tokens is not None and output_tokens is not None:
        cache = round(input_tokens + output_tokens / 2)
        mfu["tokens"] = (
            f"(\n  {per_gpu('prompt_tokens')}\n"
            f"    * {_num(costs.flops_per_prompt_token)}  # per-GPU FLOPs per prompt token, prefill "
            f"of {max(1, round(input_tokens))} tokens (mfubench's count)\n"
            f"  + {per_gpu('generation_tokens')}\n"
            f"    * {_num(costs.flops_per_generated_token)}  # per-GPU FLOPs per generated token, "
            f"decode at a {cache}-token cache (mfubench's count)\n)\n{peak}")
        if "steps" in names:
            mbu["tokens"] = (
                f"(\n  {per_gpu('steps')}\n"
                f"    * {_num(costs.weight_bytes_per_step)}  # per-GPU bytes one engine step reads "
                "besides the KV cache: the weights (mfubench's count)\n"
                f"  + {per_gpu('generation_tokens')}\n"
                f"    * {_num(costs.kv_bytes_per_generated_token)}  # per-GPU KV-cache bytes one "
                f"generated token reads and writes at a {cache}-token cache (mfubench's count)\n)\n"
                f"{bandwidth}")
        else:
            notes.append(f"no {RULE_MBU} from {eng.name}'s token counters: it exports no step count "
                         "to count the weight reads by")
    how = {"engine": "the engine's own per-GPU estimates (FLOPs; read + write bytes)",
           "tokens": (f"its token counters through mfubench's count at a mean prompt of "
                      f"{input_tokens:g} and output of {output_tokens:g} tokens"
                      if input_tokens is not None and output_tokens is not None else "")}
    rules: list[Rule] = []
    for record, what, exprs in ((RULE_MFU, "MFU", mfu), (RULE_MBU, "MBU", mbu)):
        if not exprs:
            continue
        if len(exprs) == 1:
            (kind, expr), = exprs.items()
            rules.append(Rule(record, expr, {**static, "mfubench_source": kind},
                              (f"{what} of {head}, from {how[kind]}",)))
            continue
        # both: the engine's figure where its counter moves, else the tokens' (vLLM without
        # --enable-mfu-metrics exports the counters at 0); the source said in a label
        expr = (f'label_replace(\n  (\n{_indent(exprs["engine"], 4)}\n  ) > 0,\n'
                f'  "mfubench_source", "engine", "", ""\n)\nor on ({", ".join(by)})\nlabel_replace(\n  (\n'
                f'{_indent(exprs["tokens"], 4)}\n  ),\n  "mfubench_source", "tokens", "", ""\n)')
        rules.append(Rule(record, expr, dict(static), (
            f"{what} of {head}, from {how['engine']} where they move,",
            f"  else from {how['tokens']}")))
    return rules, notes


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.split("\n"))


def recording_rules(
    setup: Setup,
    *,
    engine: str = "vllm",
    model_label: str | None = None,
    rate_window: str = "1m",
    input_tokens: float | None = None,
    output_tokens: float | None = None,
    source: Source | None = None,
    group: str = "mfubench",
    interval: str | None = None,
) -> str:
    """A Prometheus rule file (YAML) recording ``mfubench:mfu:ratio`` and ``mfubench:mbu:ratio``
    (module doc).

    Args:
        setup: the model, hardware and layout the constants are counted for.
        engine: the engine whose counters the rules read (``vllm``, ``sglang``, ``tgi``,
            ``llama.cpp``).
        model_label: the model's name as served: on engines with a model label, the rules read
            only that model's series; on the others it is the static ``model_name`` (default:
            the model's id).
        rate_window: the PromQL range of ``rate()`` (``1m``: at least 4 scrapes at 15 s).
        input_tokens / output_tokens: the mean lengths the token counters are counted at (needed
            unless the engine's own estimates are used).
        source: ``engine`` or ``tokens``; default: the engine's estimates where it has them.
        group / interval: the rule group's name and evaluation interval (default: the global one).

    Raises :class:`MfubenchError` when no rule can be written (no peak, no counters, no lengths).
    """
    rules, notes = build_rules(setup, engine=engine, model_label=model_label, rate_window=rate_window,
                               input_tokens=input_tokens, output_tokens=output_tokens, source=source)
    lines = [
        "# Prometheus recording rules written by mfubench (`mfubench monitor --prometheus-rules`).",
        f"# {setup.spec.name} on {setup.hardware.name}: {setup.peak_label}.",
        "# Check with `promtool check rules FILE`; load with `rule_files:` in prometheus.yml.",
        *(f"# note: {n}" for n in notes),
        "groups:",
        f"  - name: {json.dumps(group)}",
    ]
    if interval:
        lines.append(f"    interval: {json.dumps(interval)}")
    lines.append("    rules:")
    for rule in rules:
        lines += [f"      # {c}" for c in rule.comments]
        lines.append(f"      - record: {json.dumps(rule.record)}")
        lines.append("        expr: |-")
        lines += [f"          {line}" if line else "" for line in rule.expr.rstrip("\n").split("\n")]
        if rule.labels:
            lines.append("        labels:")
            lines += [f"          {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(rule.labels.items())]
    return "\n".join(lines) + "\n"


def grafana_dashboard(
    *,
    title: str = "mfubench: MFU and MBU",
    uid: str = "mfubench-mfu",
    refresh: str = "30s",
    legend: str = "{{instance}} {{model_name}}",
) -> dict[str, Any]:
    """A Grafana dashboard (JSON model) over the recorded series: MFU and MBU per instance, and
    their fleet mean per model; a ``datasource`` variable (any Prometheus) and a ``model_name``
    filter. Units ``percentunit`` on a 0..1 axis (``softMax`` 1: an above-peak figure widens
    the axis instead of being cut off), with a red threshold line at 1.0 marking above-peak."""
    ds = {"type": "prometheus", "uid": "${datasource}"}

    def panel(pid: int, ptitle: str, expr: str, legend_format: str, x: int, y: int, w: int,
              description: str) -> dict[str, Any]:
        return {
            "id": pid, "type": "timeseries", "title": ptitle, "description": description,
            "datasource": ds, "gridPos": {"h": 9, "w": w, "x": x, "y": y},
            "targets": [{"refId": "A", "datasource": ds, "expr": expr, "legendFormat": legend_format}],
            "fieldConfig": {
                "defaults": {
                    "unit": "percentunit", "min": 0, "softMax": 1, "decimals": 1,
                    "thresholds": {"mode": "absolute", "steps": [
                        {"color": "green", "value": None}, {"color": "red", "value": 1.0}]},
                    "custom": {"thresholdsStyle": {"mode": "line"}, "drawStyle": "line",
                               "lineWidth": 1, "fillOpacity": 0, "spanNulls": False},
                },
                "overrides": [],
            },
            "options": {"legend": {"displayMode": "table", "placement": "bottom",
                                   "calcs": ["mean", "max", "lastNotNull"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
        }

    sel = f'{{{OUT_MODEL_LABEL}=~"$model_name"}}'
    above = " Above the red line at 100 % the figure exceeds the peak: check the peak or the count."
    panels: Sequence[dict[str, Any]] = [
        panel(1, "MFU per instance", f"{RULE_MFU}{sel}", legend, 0, 0, 12,
              "Model FLOPs utilisation over wall time: per-GPU FLOP/s over the per-GPU peak "
              f"(recorded by mfubench's rules as {RULE_MFU})." + above),
        panel(2, "MBU per instance", f"{RULE_MBU}{sel}", legend, 12, 0, 12,
              "Memory bandwidth utilisation over wall time: per-GPU bytes/s over the per-GPU "
              f"bandwidth (recorded as {RULE_MBU})." + above),
        panel(3, "MFU, fleet mean per model", f"avg by ({OUT_MODEL_LABEL}) ({RULE_MFU}{sel})",
              f"{{{{{OUT_MODEL_LABEL}}}}}", 0, 9, 12, "The mean of the instances' MFU." + above),
        panel(4, "MBU, fleet mean per model", f"avg by ({OUT_MODEL_LABEL}) ({RULE_MBU}{sel})",
              f"{{{{{OUT_MODEL_LABEL}}}}}", 12, 9, 12, "The mean of the instances' MBU." + above),
    ]
    return {
        "title": title, "uid": uid, "tags": ["mfubench", "llm-inference"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": refresh,
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0},
            {"name": "model_name", "label": "model", "type": "query", "datasource": ds,
             "query": {"query": f"label_values({RULE_MFU}, {OUT_MODEL_LABEL})", "refId": "model_name"},
             "definition": f"label_values({RULE_MFU}, {OUT_MODEL_LABEL})",
             "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
             "current": {"text": "All", "value": "$__all"}, "hide": 0},
        ]},
        "annotations": {"list": []},
        "panels": list(panels),
    }
