"""Drive a load on a server and measure it: a concurrency (closed loop) or a request rate (open loop).

A *level* is one load (``Load("concurrency", C)``, ``Load("rate", λ, arrival)`` or
``Load("trace")``) with a source of requests (:mod:`mfubench.measure.request_source`: fixed
lengths, lengths drawn per request, or a workload file's), for ``requests`` measured requests
(or as many as are sent in ``duration_s``) after ``warmup`` unmeasured ones:

1. warm-up: ``warmup`` requests under the same load, all finished before the window opens;
2. the window: scrape ``/metrics``, send the ``requests`` measured requests under the load
   (closed loop: C workers, each sending its next request when its last one finished; open
   loop: arrivals at ``λ``, Poisson (exponential gaps), gamma (shape ``burstiness``, mean gap
   ``1/λ``) or constant; a trace: at its recorded times; with a duration, no request is sent
   after it has passed), wait for all of them, scrape again (until the engine's token counters
   include them). The engine's counter deltas therefore cover exactly the measured requests.
3. the **steady state** inside the window: the requests sent after the first one finished
   (the ramp-up) and done before the last one was sent (the drain). Their mean TTFT and TPOT,
   and the completions per second over that stretch, are the level's figures under load;
   ``duration_s`` and ``completed`` are the whole window's, matching the counters. With too
   few requests for a steady stretch the level is flagged ``no-steady-state`` and uses them all.

Every request is exact in length (random token ids, ``min_tokens = max_tokens``,
``ignore_eos``; usage checked against each request's own asked lengths by the level's flags).
When the lengths differ, the measurement carries their
:class:`~mfubench.analysis.request_mix.RequestMix`, and the analysis sums the work per length. The load held is checked: the mean number
in flight over the steady stretch against C; for a rate, the span its random schedule planned
(or a trace's recorded span) against the span the sends took (a client that could not send on
time); more than 10 % off
flags the level ``load-not-held``.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mfubench.analysis.load import Load
from mfubench.analysis.measurement import Measurement
from mfubench.analysis.request_mix import RequestMix
from mfubench.measure.client import CompletionClient, Prompt, RequestRecord, random_prompt
from mfubench.measure.metrics import ServerDelta
from mfubench.measure.request_source import Drawn, RequestSource
from mfubench.measure.selfcheck import LoopLagProbe
from mfubench.measure.sweep import (
    FATAL_ERROR_KINDS,
    LOOP_LAG_LIMIT_S,
    count_flags,
    counters_match,
    engine_timings,
    latency_percentiles,
    metrics_available,
    percentile,
    scrape_metrics,
    settled_delta,
)

#: How far the achieved load may stray from the asked one before the level is flagged.
LOAD_TOLERANCE = 0.10

LevelKey = tuple[str, float, int | str, int | str]
"""``(kind, level, input, output)``: one level of a load run; ``input`` and ``output`` are the
lengths of a fixed shape, else its source's key (:mod:`mfubench.measure.request_source`)."""


@dataclass(frozen=True)
class LevelPlan:
    """One level to measure (module doc): ``requests`` measured requests, or as many as are sent
    in ``duration_s``; a trace replays its file once."""

    load: Load
    source: RequestSource
    requests: int | None
    warmup: int = 0
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.load.kind not in ("concurrency", "rate", "trace"):
            raise ValueError(f"a level drives a concurrency, a rate or a trace, not {self.load.kind!r}")
        if (self.load.kind == "trace") != (self.source.arrivals_s is not None):
            raise ValueError("a trace level replays a workload with arrival times, and only it")
        if (self.requests is None) == (self.duration_s is None):
            raise ValueError("a level needs a number of requests or a duration, not both")
        if (self.requests is not None and self.requests < 1) or self.warmup < 0 or (
                self.duration_s is not None and not self.duration_s > 0):
            raise ValueError("a level needs requests >= 1 or a duration > 0, and warmup >= 0")

    @property
    def key(self) -> LevelKey:
        return (self.load.kind, self.load.level or 0.0, *self.source.key)

    @property
    def input_tokens(self) -> int:
        """The prompt length of a fixed shape, else the source's rounded mean."""
        return self.source.nominal[0]

    @property
    def output_tokens(self) -> int:
        return self.source.nominal[1]

    @property
    def label(self) -> str:
        """``concurrency 8, input 512 output 128`` (the trace's load is its workload)."""
        if self.load.kind == "trace":
            return f"trace {self.source.label}"
        return f"{self.load.label}, {self.source.label}"

    @property
    def stop(self) -> str:
        """How the measured window ends, in words."""
        if self.duration_s is not None:
            return f"{self.duration_s:g} s of requests"
        return f"{self.requests} requests"


@dataclass(frozen=True)
class SLO:
    """Service-level objectives: a request meets them when its TTFT and TPOT are within."""

    ttft_s: float | None = None
    tpot_s: float | None = None

    def met(self, r: RequestRecord) -> bool:
        tpot = request_tpot(r)
        return ((self.ttft_s is None or (r.ttft_s is not None and r.ttft_s <= self.ttft_s))
                and (self.tpot_s is None or (tpot is not None and tpot <= self.tpot_s)))


@dataclass(frozen=True)
class LevelResult:
    """The measured requests of a level, the engine's counter delta over them, the loop lag."""

    plan: LevelPlan
    records: tuple[RequestRecord, ...]
    delta: ServerDelta | None
    loop_lag_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def next_gap(load: Load, rng: random.Random) -> float:
    """One gap (s) to the next arrival of an open loop at ``load.level`` per second: constant,
    gamma (shape ``burstiness``, mean ``1/λ``) or exponential (Poisson, the default)."""
    assert load.level is not None
    rate = load.level
    if load.arrival == "constant":
        return 1.0 / rate
    if load.arrival == "gamma":
        shape = load.burstiness or 1.0
        return rng.gammavariate(shape, 1.0 / (rate * shape))
    return rng.expovariate(rate)


Make = Callable[[int], tuple[Prompt, int]]
"""The ``index``-th request of a level: its prompt and its exact output length."""


async def _closed_loop(client: CompletionClient, make: Make, concurrency: int, count: int | None,
                       deadline: float | None) -> list[RequestRecord]:
    """``concurrency`` workers, each sending its next request when its last one is done, until
    ``count`` requests were sent or ``deadline`` (``time.monotonic()``) has passed."""
    records: list[RequestRecord] = []
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while (count is None or sent < count) and (deadline is None or time.monotonic() < deadline):
            index = sent
            sent += 1  # claimed before the await: each index goes to one worker
            prompt, output_tokens = make(index)
            records.append(await client.complete(prompt, output_tokens, concurrency))

    workers = concurrency if count is None else min(concurrency, count)
    await asyncio.gather(*(worker() for _ in range(workers)))
    return sorted(records, key=lambda r: r.sent_s)


async def _open_loop(client: CompletionClient, make: Make, gaps: Iterator[float], count: int | None,
                     deadline: float | None) -> tuple[list[RequestRecord], float]:
    """Send each request at its arrival time (the gaps' schedule), whatever the server does,
    until ``count`` were sent or the next would arrive after ``deadline``; also the span the
    schedule planned, first send to last."""
    tasks: list[asyncio.Task[RequestRecord]] = []
    due = time.monotonic()
    planned = 0.0
    for index, gap in enumerate(gaps):
        if count is not None and index >= count:
            break
        if index and deadline is not None and due + gap > deadline:
            break
        due += gap if index else 0.0
        planned += gap if index else 0.0
        prompt, output_tokens = make(index)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        tasks.append(asyncio.create_task(client.complete(prompt, output_tokens, 1)))
    return list(await asyncio.gather(*tasks)), planned


def _gaps(plan: LevelPlan, rng: random.Random) -> Iterator[float]:
    """The open loop's gaps: the trace's recorded ones, else drawn for the rate without end."""
    arrivals = plan.source.arrivals_s
    if arrivals is not None:
        yield 0.0
        for before, after in zip(arrivals, arrivals[1:], strict=False):
            yield after - before
        return
    while True:
        yield next_gap(plan.load, rng)


async def _send(client: CompletionClient, plan: LevelPlan, make: Make, count: int | None,
                deadline: float | None, rng: random.Random) -> tuple[list[RequestRecord], float | None]:
    """The records, and for an open loop the span its schedule planned (first to last send)."""
    if plan.load.kind == "concurrency":
        assert plan.load.level is not None
        return await _closed_loop(client, make, round(plan.load.level), count, deadline), None
    return await _open_loop(client, make, _gaps(plan, rng), count, deadline)


async def drive_level(client: CompletionClient, plan: LevelPlan, *, token_range: tuple[int, int],
                      rng: random.Random, settle_timeout_s: float = 2.0) -> LevelResult:
    """Warm up, then measure one level (module doc)."""
    def maker(first: int) -> Make:
        def make(index: int) -> tuple[Prompt, int]:
            input_tokens, output_tokens = plan.source.lengths(first + index, rng)
            return random_prompt(rng, input_tokens, token_range), output_tokens
        return make

    if plan.warmup:  # a trace warms up one request at a time: its schedule is for the window
        if plan.load.kind == "trace":
            await _closed_loop(client, maker(0), 1, plan.warmup, None)
        else:
            await _send(client, plan, maker(0), plan.warmup, None, rng)
    before = await scrape_metrics(client) if await metrics_available(client) else None
    first = 0 if plan.load.kind == "trace" else plan.warmup
    deadline = None if plan.duration_s is None else time.monotonic() + plan.duration_s
    count = plan.requests
    if plan.load.kind == "trace" and count is None:
        count = len(plan.source.arrivals_s or ())
    async with LoopLagProbe() as probe:
        records, planned_span = await _send(client, plan, maker(first), count, deadline, rng)
    delta = None
    if before is not None and not any(r.error_kind in FATAL_ERROR_KINDS for r in records):
        delta = await settled_delta(client, before, records, settle_timeout_s)
    return LevelResult(plan, tuple(records), delta, probe.p90_s, {"planned_span_s": planned_span})


def request_tpot(r: RequestRecord) -> float | None:
    """Seconds per output token after the first: ``(e2e - ttft) / (output - 1)``."""
    if r.ttft_s is None or r.e2e_s is None or not r.output_tokens or r.output_tokens < 2:
        return None
    return (r.e2e_s - r.ttft_s) / (r.output_tokens - 1)


def steady_state(records: Sequence[RequestRecord]) -> tuple[list[RequestRecord], float, float] | None:
    """The requests sent after the first finished and done before the last was sent, and that
    stretch's start and end (``time.monotonic()``); None when no request fits in it."""
    done = [r.done_at_s for r in records if r.done_at_s is not None]
    if not done:
        return None
    start, end = min(done), max(r.sent_s for r in records)
    inside = [r for r in records if r.sent_s >= start and r.done_at_s is not None and r.done_at_s <= end]
    return (inside, start, end) if inside and end > start else None


def level_flags(result: LevelResult, steady: bool, held: float | None) -> list[str]:
    """Why a level's figures are doubtful (empty when clean); as the sweep's, plus the load's."""
    plan, records = result.plan, result.records
    flags = count_flags(records)  # each request against its own asked lengths
    if result.loop_lag_s > LOOP_LAG_LIMIT_S:
        flags.append("client-bound")
    if not counters_match(result.delta, records):
        flags.append("server_counts")
    if not steady:
        flags.append(f"no-steady-state: {len(records)} requests are too few for a stretch between "
                     "ramp-up and drain at this load; the figures include both (give more --num-requests)")
    if held is not None and abs(held - 1.0) > LOAD_TOLERANCE:
        flags.append(f"load-not-held: {held:.0%} of the asked {plan.label} was achieved")
    return flags


def level_measurement(result: LevelResult, slo: SLO | None = None) -> tuple[Measurement | None, list[str]]:
    """The level's Measurement under its load (module doc) and its flags."""
    plan = result.plan
    ok = [r for r in result.records if r.error is None and r.input_tokens and r.output_tokens
          and r.e2e_s is not None]
    if not ok:
        return None, level_flags(result, False, None)
    found = steady_state(ok)
    steady, start, end = found if found else (ok, min(r.sent_s for r in ok), max(r.done_at_s or 0 for r in ok))
    window = max(r.done_at_s or 0.0 for r in ok) - min(r.sent_s for r in ok)
    span = end - start
    completions = sum(1 for r in ok if r.done_at_s is not None and start <= r.done_at_s <= end)
    throughput = completions / span if found and completions else len(ok) / window
    if plan.load.kind == "concurrency":
        assert plan.load.level is not None
        in_flight = math.fsum(max(0.0, min(r.done_at_s or 0.0, end) - max(r.sent_s, start)) for r in ok) / span
        held = in_flight / plan.load.level if span > 0 else None
    else:  # the schedule's own span against the sends': random gaps are not a failure to hold
        sends = sorted(r.sent_s for r in result.records)
        planned = result.extra.get("planned_span_s")
        held = (planned / (sends[-1] - sends[0])
                if planned and len(sends) > 1 and sends[-1] > sends[0] else None)
    flags = level_flags(result, found is not None, held)
    ttfts = [r.ttft_s for r in steady if r.ttft_s is not None]
    tpots = [t for r in steady if (t := request_tpot(r)) is not None and t > 0]  # 0: one chunk
    mix = RequestMix.of((r.input_tokens or 0, r.output_tokens or 0) for r in ok)
    extra: dict[str, Any] = {
        "flags": flags, "requests": len(result.records), "failed_requests": len(result.records) - len(ok),
        "steady_requests": len(steady), "steady_window_s": span, "load_held": held,
        "loop_lag_s": result.loop_lag_s, "warmup_requests": plan.warmup,
        "requested_input_tokens": plan.input_tokens, "lengths": plan.source.label,
        "stop": plan.stop,
    }
    engine = engine_timings(steady)
    if engine:
        extra["engine_timings"] = engine
    latency = latency_percentiles(steady)
    if tpots:
        latency["tpot_s"] = {f"p{q}": percentile(tpots, q) for q in (50, 90, 99)}
    if latency:
        extra["latency_percentiles"] = latency
    if slo is not None and (slo.ttft_s is not None or slo.tpot_s is not None):
        good = sum(1 for r in steady if slo.met(r)) / len(steady)
        extra["slo"] = {"ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s, "met_fraction": good,
                        "goodput_req_s": good * throughput}
    d = result.delta
    batch = (round(plan.load.level) if plan.load.kind == "concurrency" and plan.load.level
             else max(1, round(throughput * (math.fsum(r.e2e_s or 0.0 for r in steady) / len(steady)))))
    measurement = Measurement(
        batch_size=batch,
        input_tokens=mix.mean_input,
        output_tokens=mix.mean_output,
        requested_output_tokens=plan.output_tokens if plan.source.is_fixed else None,
        mix=None if mix.uniform else mix,
        ttft_s=math.fsum(ttfts) / len(ttfts) if ttfts else None,
        tpot_s=math.fsum(tpots) / len(tpots) if tpots else None,
        duration_s=window if window > 0 else None,
        completed=len(ok),
        request_throughput=throughput,
        output_tokens_per_s=math.fsum(float(r.output_tokens or 0) for r in ok) / window if window > 0 else None,
        server_flops=None if d is None else d.flops,
        server_read_bytes=None if d is None else d.read_bytes,
        server_write_bytes=None if d is None else d.write_bytes,
        load=plan.load,
        source=f"mfubench run, {plan.label}",
        extra=extra,
    )
    return measurement, flags


@dataclass(frozen=True)
class LevelOutcome:
    """A finished level: its measurement (None when nothing could be timed), rows and flags."""

    plan: LevelPlan
    measurement: Measurement | None
    rows: list[dict[str, Any]]
    flags: tuple[str, ...]

    @property
    def key(self) -> LevelKey:
        return self.plan.key

    def to_json(self) -> dict[str, Any]:
        """The ``point`` line of the level in the results file (with its ``load``)."""
        from dataclasses import asdict

        from mfubench.measure.sweep import measurement_json

        m = self.measurement
        line: dict[str, Any] = {
            "type": "point",
            "batch_size": m.batch_size if m is not None else 1,
            "input_tokens": self.plan.input_tokens,
            "output_tokens": self.plan.output_tokens,
            "load": asdict(self.plan.load),
            "flags": list(self.flags),
            "measurement": None if m is None else measurement_json(m),
            "rows": self.rows,
        }
        if not isinstance(self.plan.source, Drawn) or not self.plan.source.is_fixed:
            line["lengths"] = list(self.plan.source.key)  # the level's key (point_key)
        return line


async def run_levels(
    client: CompletionClient,
    plans: Sequence[LevelPlan],
    analyze: Any,
    log: Any,
    *,
    token_range: tuple[int, int],
    rng: random.Random,
    finished: Sequence[Any] = (),
    hooks: Any = None,
    slo: SLO | None = None,
) -> list[LevelOutcome]:
    """Measure every level of ``plans`` not in ``finished``; write request and point lines as
    each level ends (a crash loses at most the level in progress)."""
    from mfubench.errors import ServerError
    from mfubench.measure.sweep import SweepHooks, _raise_if_fatal

    hooks = hooks or SweepHooks()
    done = set(finished)
    out: list[LevelOutcome] = []
    for plan in plans:
        if plan.key in done:
            continue
        try:
            result = await drive_level(client, plan, token_range=token_range, rng=rng)
            start = min((r.sent_s for r in result.records), default=0.0)
            for record in result.records:  # sent_after_s: the level's own timeline
                log.write({"type": "request", "level": list(plan.key), **record.to_json(),
                           "sent_after_s": record.sent_s - start})
            _raise_if_fatal(result.records, hooks)
        except ServerError as exc:
            raise ServerError(
                f"{client.base_url} failed at {plan.label}: {hooks.check_server() or exc}; "
                f"{len(done) + len(out)} "
                f"finished levels are in {log.path} (--resume continues)") from exc
        measurement, flags = level_measurement(result, slo)
        rows = [dict(r) for r in analyze(measurement)] if measurement is not None else []
        for row in rows:
            mine = [f for f in flags if f not in (row.get("flags") or [])]
            row["flags"] = [*(row.get("flags") or []), *mine]
        outcome = LevelOutcome(plan, measurement, rows, tuple(flags))
        log.write(outcome.to_json())
        hooks.on_point(outcome)
        out.append(outcome)
    return out
