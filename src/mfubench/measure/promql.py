"""Read a fleet through Prometheus's HTTP API (``mfubench monitor --prometheus URL``).

Instead of scraping every replica's ``/metrics``, one instant query per counter over the fleet:
``GET /api/v1/query?query=sum by (instance, model_name) (increase(NAME[W]))`` gives every
instance's delta over the last ``W`` at once (:meth:`PrometheusAPI.fleet_counters`, as
:class:`~mfubench.analysis.window.Counters` for :func:`~mfubench.analysis.window.
window_figures`), or the recorded ``mfubench:mfu:ratio`` of :mod:`mfubench.report.
prometheus_rules` directly (:meth:`PrometheusAPI.recorded`).

``increase()`` is Prometheus's: extrapolated to the window's edges and corrected for counter
resets (a restarted replica), so it is close to, not exactly, the delta of two scrapes.
The counters are summed over the label sets of one instance and model, as
:func:`~mfubench.measure.metrics.total` sums one scrape's.

Every reply is checked at the boundary (HTTP ``/api/v1`` envelope: ``status``,
``data.resultType``, ``data.result[i].metric`` / ``.value``): anything else is a
:class:`~mfubench.errors.ServerError` naming the URL and the field. Reference: the Prometheus
HTTP API, https://prometheus.io/docs/prometheus/latest/querying/api/ (instant queries and the
response envelope).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import aiohttp

from mfubench.analysis.window import Counters
from mfubench.errors import ServerError
from mfubench.measure.engine import Engine

#: The labels a fleet is keyed by: ``instance`` and the engine's model label (vLLM, SGLang).
MODEL_LABELS: Mapping[str, str] = {"vllm": "model_name", "sglang": "model_name"}
_COUNTERS = ("flops", "read_bytes", "write_bytes", "prompt_tokens", "generation_tokens", "steps")
_GAUGES = ("running", "waiting", "kv_usage")
_NUMBERS = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf, "Inf": math.inf}

#: (instance, model): ``model`` is "" where the engine has no model label.
FleetKey = tuple[str, str]


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: its labels, its value, and the evaluation time."""

    labels: Mapping[str, str]
    value: float
    time_s: float


def duration(seconds: float) -> str:
    """A PromQL duration for ``seconds`` (``60s``; milliseconds where fractional)."""
    if seconds <= 0:
        raise ValueError(f"a window must be positive, got {seconds}")
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def parse_vector(reply: Any, url: str) -> list[Sample]:
    """The samples of an instant-query reply; :class:`ServerError` naming ``url`` and the
    field when the reply is not Prometheus's ``{"status": "success", "data": {"resultType":
    "vector", "result": [...]}}``."""
    if not isinstance(reply, dict):
        raise ServerError(f"{url}: the reply is not a JSON object")
    status = reply.get("status")
    if status == "error":
        raise ServerError(f"{url}: Prometheus refused the query ({reply.get('errorType', '?')}): "
                          f"{reply.get('error', '')}")
    if status != "success":
        raise ServerError(f"{url}: field 'status' is {status!r}, not 'success'")
    data = reply.get("data")
    if not isinstance(data, dict):
        raise ServerError(f"{url}: field 'data' is missing or not an object")
    if data.get("resultType") != "vector":
        raise ServerError(f"{url}: field 'data.resultType' is {data.get('resultType')!r}, not 'vector'")
    result = data.get("result")
    if not isinstance(result, list):
        raise ServerError(f"{url}: field 'data.result' is not a list")
    out: list[Sample] = []
    for i, item in enumerate(result):
        where = f"data.result[{i}]"
        if not isinstance(item, dict):
            raise ServerError(f"{url}: field '{where}' is not an object")
        metric = item.get("metric")
        if not isinstance(metric, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in metric.items()):
            raise ServerError(f"{url}: field '{where}.metric' is not an object of strings")
        pair = item.get("value")
        if (not isinstance(pair, list) or len(pair) != 2 or isinstance(pair[0], bool)
                or not isinstance(pair[0], int | float) or not isinstance(pair[1], str)):
            raise ServerError(f"{url}: field '{where}.value' is not [time, \"number\"]: {pair!r:.80}")
        try:
            value = _NUMBERS[pair[1]] if pair[1] in _NUMBERS else float(pair[1])
        except ValueError:
            raise ServerError(f"{url}: field '{where}.value[1]' is not a number: {pair[1]!r:.40}") from None
        out.append(Sample(dict(metric), value, float(pair[0])))
    return out


class PrometheusAPI:
    """Instant queries against one Prometheus (use as ``async with PrometheusAPI(url) as p:``)."""

    def __init__(self, base_url: str, *, timeout_s: float = 30.0, headers: Mapping[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PrometheusAPI:
        self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def query(self, expr: str, at_s: float | None = None) -> list[Sample]:
        """The instant vector of ``expr`` (now, or at ``at_s`` Unix seconds)."""
        if self._session is None:
            raise RuntimeError("PrometheusAPI used outside 'async with'")
        params = {"query": expr} | ({"time": repr(at_s)} if at_s is not None else {})
        url = f"{self.base_url}/api/v1/query?{urlencode(params)}"
        try:
            async with self._session.get(url) as resp:
                text = await resp.text(errors="replace")
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            raise ServerError(f"cannot connect to Prometheus at {self.base_url}: {exc.os_error}") from exc
        except TimeoutError as exc:
            raise ServerError(f"{url}: no answer within {self._timeout.total:.0f} s") from exc
        except aiohttp.ClientError as exc:
            raise ServerError(f"{url}: {type(exc).__name__}: {exc}") from exc
        try:
            reply = json.loads(text)
        except json.JSONDecodeError:
            raise ServerError(f"{url}: HTTP {status}, not JSON: {text[:160]!r}") from None
        if status != 200 and not (isinstance(reply, dict) and reply.get("status") == "error"):
            raise ServerError(f"{url}: HTTP {status}: {text[:160]!r}")
        return parse_vector(reply, url)

    async def by_instance(self, expr: str, model_label: str | None,
                          at_s: float | None = None) -> dict[FleetKey, float]:
        """``expr``'s samples keyed by (instance, model); a sample without ``instance`` is an
        error (the query must keep it)."""
        out: dict[FleetKey, float] = {}
        for s in await self.query(expr, at_s):
            if "instance" not in s.labels:
                raise ServerError(f"{self.base_url}: a sample of {expr!r} has no 'instance' label: {dict(s.labels)}")
            out[(s.labels["instance"], s.labels.get(model_label, "") if model_label else "")] = s.value
        return out

    async def fleet_counters(self, engine: Engine, window_s: float, *,
                             model: str | None = None, at_s: float | None = None) -> dict[FleetKey, Counters]:
        """Every instance's :class:`Counters` over the last ``window_s``: ``increase()`` of the
        engine's counters (:attr:`Engine.monitor`), the gauges now, and the busy share (the
        fraction of the window's evaluation steps with a request running). ``model``: only
        that model's series (engines with a model label); ``at_s``: the window's end (Unix
        seconds; default now)."""
        names = dict(engine.monitor)
        model_label = MODEL_LABELS.get(engine.name)
        by = "instance" + (f", {model_label}" if model_label else "")
        sel = f'{{{model_label}={json.dumps(model)}}}' if model and model_label else ""
        w = duration(window_s)
        if "steps" not in names and "steps_histogram" in names:
            names["steps"] = names["steps_histogram"] + "_count"
        fields: dict[str, dict[FleetKey, float]] = {}
        for key in _COUNTERS:
            if key in names:
                fields[key] = await self.by_instance(f"sum by ({by}) (increase({names[key]}{sel}[{w}]))", model_label, at_s)
        for key, hist in (("prompt", names.get("prompt_histogram")), ("generation", names.get("generation_histogram"))):
            if hist:
                fields[f"finished_{key}_tokens"] = await self.by_instance(
                    f"sum by ({by}) (increase({hist}_sum{sel}[{w}]))", model_label, at_s)
                fields["finished_requests"] = await self.by_instance(
                    f"sum by ({by}) (increase({hist}_count{sel}[{w}]))", model_label, at_s)
        for key in _GAUGES:
            if key in names:
                fields[key] = await self.by_instance(f"sum by ({by}) ({names[key]}{sel})", model_label, at_s)
        if "generation_tokens" in names:  # data-parallel engines behind one instance (vLLM's engine label)
            fields["replicas"] = await self.by_instance(
                f"count by ({by}) (count by ({by}, engine) ({names['generation_tokens']}{sel}))", model_label, at_s)
        if "running" in names:
            fields["busy_share"] = await self.by_instance(
                f"avg_over_time(clamp_max(sum by ({by}) ({names['running']}{sel}), 1)[{w}:])", model_label, at_s)
        out: dict[FleetKey, Counters] = {}
        for k in sorted({k for values in fields.values() for k in values}):
            values: dict[str, Any] = {f: v.get(k) for f, v in fields.items()}
            if values.get("flops") == 0 and (values.get("generation_tokens") or 0) > 0:
                # vLLM without --enable-mfu-metrics: its estimates stay at 0; the tokens count
                values.update(flops=None, read_bytes=None, write_bytes=None)
            values["replicas"] = max(1, int(values.get("replicas") or 1))
            out[k] = Counters(seconds=window_s, **values)
        return out

    async def recorded(self, model: str | None = None) -> dict[FleetKey, tuple[float | None, float | None]]:
        """The recorded ``(mfubench:mfu:ratio, mfubench:mbu:ratio)`` of every instance (None where
        a rule records nothing, e.g. no MBU from an engine without a step count)."""
        from mfubench.report.prometheus_rules import OUT_MODEL_LABEL, RULE_MBU, RULE_MFU

        sel = f'{{{OUT_MODEL_LABEL}={json.dumps(model)}}}' if model else ""
        mfu = await self.by_instance(RULE_MFU + sel, OUT_MODEL_LABEL)
        mbu = await self.by_instance(RULE_MBU + sel, OUT_MODEL_LABEL)
        return {k: (mfu.get(k), mbu.get(k)) for k in sorted(set(mfu) | set(mbu))}
