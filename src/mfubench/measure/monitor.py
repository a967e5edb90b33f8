"""Watch live endpoints through their own ``/metrics``: counter windows for ``mfubench monitor``.

Each endpoint is scraped every ``sample_s`` seconds; every ``interval_s`` seconds its window
closes: the deltas of its counters since the window opened (:class:`~mfubench.analysis.window.
Counters`), the gauges at its end, and its busy share (the fraction of the window's samples
with a request running). The engine's metric names come from its
:class:`~mfubench.measure.engine.Engine` (``monitor``), detected once per endpoint.

What goes wrong is said and the watch goes on:

- a counter lower than before (a restarted server): the window is dropped, flagged
  ``counter-reset``, and the next one starts from the new values;
- an endpoint that stops answering: its windows are ``unreachable`` until it answers again,
  then a fresh baseline is taken (nothing is computed across the gap);
- a counter the engine never exports, or one that stays at 0 while tokens are generated (vLLM
  without ``--enable-mfu-metrics``): the figures fall back to the token counters, and say so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mfubench.analysis.window import Counters
from mfubench.errors import ServerError
from mfubench.measure.client import CompletionClient
from mfubench.measure.engine import Engine
from mfubench.measure.metrics import Samples, parse_prometheus, total

_COUNTER_FIELDS = ("flops", "read_bytes", "write_bytes", "prompt_tokens", "generation_tokens", "steps")
_GAUGES = ("running", "waiting", "kv_usage")


@dataclass
class Window:
    """One closed window of one endpoint: its counters, or why there are none."""

    endpoint: str
    started_s: float
    ended_s: float
    counters: Counters | None
    status: str = "ok"  # ok, counter-reset, unreachable, warming-up
    notes: list[str] = field(default_factory=list)


def counters_between(before: Samples, after: Samples, engine: Engine, seconds: float,
                     busy_share: float | None) -> tuple[Counters | None, list[str]]:
    """The window's :class:`Counters` from two scrapes (None and ``counter-reset`` when a
    counter went down), and notes on counters that are absent or did not move."""
    names = engine.monitor
    values: dict[str, float | None] = {}
    notes: list[str] = []

    def delta(name: str) -> float | None:
        a, b = total(before, name), total(after, name)
        if a is None or b is None:
            return None
        if b < a:
            raise _Reset(name)
        return b - a

    try:
        for key in _COUNTER_FIELDS:
            if key in names:
                values[key] = delta(names[key])
        if "steps_histogram" in names and values.get("steps") is None:
            values["steps"] = delta(names["steps_histogram"] + "_count")
        for key, name in (("prompt", names.get("prompt_histogram")), ("generation", names.get("generation_histogram"))):
            if name:
                values[f"finished_{key}_tokens"] = delta(name + "_sum")
                if values.get("finished_requests") is None:  # the first histogram that is there
                    values["finished_requests"] = delta(name + "_count")
    except _Reset as reset:
        return None, [f"counter-reset: {reset.name} went down (the server restarted?); this window is dropped"]
    for key in _GAUGES:
        values[key] = total(after, names[key]) if key in names else None
    counted = names.get("generation_tokens")
    sets = {labels for name, labels in after if name == counted} if counted else set()
    replicas = len({dict(labels).get("engine") for labels in sets}) if sets else 1
    if values.get("flops") == 0 and (values.get("generation_tokens") or 0) > 0:
        notes.append(f"{names['flops']} did not move while tokens were generated (vLLM without "
                     "--enable-mfu-metrics?): the figures come from the token counters")
        for key in ("flops", "read_bytes", "write_bytes"):
            values[key] = None
    for key in ("flops", "prompt_tokens"):
        if key in names and values.get(key) is None and total(after, names[key]) is None:
            notes.append(f"{names[key]} is not exported")
    return Counters(seconds=seconds, busy_share=busy_share, replicas=max(1, replicas),
                    **values), notes  # type: ignore[arg-type]


def engine_from_metrics(samples: Samples) -> Engine | None:
    """The engine whose monitored metrics most appear in ``samples`` (None: none of them)."""
    from mfubench.measure.engine import ENGINES

    names = {name for name, _ in samples}
    hits, best = max(((sum(1 for m in e.monitor.values() if m in names or f"{m}_count" in names), e)
                      for e in ENGINES.values()), key=lambda scored: scored[0])
    return best if hits else None


class _Reset(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass
class _State:
    client: CompletionClient
    engine: Engine | None = None
    baseline: Samples | None = None
    last: Samples | None = None
    opened_s: float = 0.0
    last_s: float = 0.0
    samples: int = 0
    busy: int = 0
    reachable: bool = True


class Watcher:
    """Scrape ``urls`` every ``sample_s``; :meth:`close_windows` every ``interval_s`` (use as
    ``async with Watcher(urls) as w:``)."""

    def __init__(self, urls: list[str], *, api_key: str | None = None, timeout_s: float = 5.0) -> None:
        self._states = {url: _State(CompletionClient(url, api_key=api_key, timeout_s=timeout_s)) for url in urls}

    async def __aenter__(self) -> Watcher:
        for state in self._states.values():
            await state.client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for state in self._states.values():
            await state.client.__aexit__(None, None, None)

    def engines(self) -> Mapping[str, str]:
        return {url: s.engine.name if s.engine else "?" for url, s in self._states.items()}

    async def sample(self) -> None:
        """One scrape of every endpoint (concurrently): busy counts, and baselines where missing."""
        await asyncio.gather(*(self._sample(url, s) for url, s in self._states.items()))

    async def _sample(self, url: str, s: _State) -> None:
        try:
            if s.engine is None:
                s.engine = await s.client.detect_engine()
            samples = parse_prometheus(await s.client.get_text("/metrics"))
        except ServerError:
            s.reachable, s.baseline = False, None
            return
        if not s.engine.monitor:  # a server the API did not name: by the metrics it exports
            s.engine = engine_from_metrics(samples) or s.engine
        s.reachable = True
        now = time.monotonic()
        s.last_s = now
        if s.baseline is None:
            s.baseline, s.last, s.opened_s, s.samples, s.busy = samples, samples, now, 0, 0
            return
        s.samples += 1
        running_name = s.engine.monitor.get("running") if s.engine else None
        running = total(samples, running_name) if running_name else None
        if running:
            s.busy += 1
        s.last = samples

    def close_windows(self) -> list[Window]:
        """Close every endpoint's window at its last sample and open the next one there."""
        out: list[Window] = []
        now = time.monotonic()
        for url, s in self._states.items():
            if not s.reachable or s.engine is None:
                out.append(Window(url, now, now, None, "unreachable", [f"{url}/metrics does not answer"]))
                continue
            last = s.last
            if s.baseline is None or last is None or s.samples == 0:
                out.append(Window(url, now, now, None, "warming-up", ["first samples of this endpoint"]))
                continue
            seconds = max(1e-9, s.last_s - s.opened_s)
            share = s.busy / s.samples if s.samples else None
            counters, notes = counters_between(s.baseline, last, s.engine, seconds, share)
            status = "ok" if counters is not None else "counter-reset"
            out.append(Window(url, s.opened_s, s.last_s, counters, status, notes))
            s.baseline, s.opened_s, s.samples, s.busy = last, s.last_s, 0, 0
        return out


def window_json(window: Window, figures: Any, model: str) -> dict[str, Any]:
    """One ``--json`` line: the window, its figures (``mfu``, ``mbu``, ...) and its notes."""
    c = window.counters
    line: dict[str, Any] = {
        "endpoint": window.endpoint, "model": model, "status": window.status,
        "window_s": window.ended_s - window.started_s, "notes": list(window.notes),
    }
    if c is not None:
        line.update(running=c.running, waiting=c.waiting, kv_usage=c.kv_usage, busy_share=c.busy_share,
                    prompt_tokens=c.prompt_tokens, generation_tokens=c.generation_tokens,
                    engine_flops_per_gpu=c.flops)
    if figures is not None:
        line.update(source=figures.source, flops_per_gpu=figures.flops_per_gpu,
                    bytes_per_gpu=figures.bytes_per_gpu, mfu=figures.mfu, mbu=figures.mbu,
                    mfu_busy=figures.mfu_busy, mbu_busy=figures.mbu_busy,
                    tokens_per_s=figures.tokens_per_s, prefill_flops_share=figures.prefill_flops_share,
                    flags=list(figures.flags))
        line["notes"] += list(figures.notes)
    return line
