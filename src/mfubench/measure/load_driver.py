"""Drive a load on a server and measure it: a concurrency (closed loop) or a request rate (open loop).

A *level* is one load (``Load("concurrency", C)`` or ``Load("rate", λ, arrival)``) at one shape
(``input_tokens``, ``output_tokens``), for ``requests`` measured requests after ``warmup``
unmeasured ones:

1. warm-up: ``warmup`` requests under the same load, all finished before the window opens;
2. the window: scrape ``/metrics``, send the ``requests`` measured requests under the load
   (closed loop: C workers, each sending its next request when its last one finished; open
   loop: arrivals at ``λ``, Poisson (exponential gaps), gamma (shape ``burstiness``, mean gap
   ``1/λ``) or constant), wait for all of them, scrape again (until the engine's token counters
   include them). The engine's counter deltas therefore cover exactly the measured requests.
3. the **steady state** inside the window: the requests sent after the first one finished
   (the ramp-up) and done before the last one was sent (the drain). Their mean TTFT and TPOT,
   and the completions per second over that stretch, are the level's figures under load;
   ``duration_s`` and ``completed`` are the whole window's, matching the counters. With too
   few requests for a steady stretch the level is flagged ``no-steady-state`` and uses them all.

Every request is exact in length (random token ids, ``min_tokens = max_tokens``,
``ignore_eos``; usage checked by the level's flags). The load held is checked: the mean number
in flight over the steady stretch against C; for a rate, the span its random schedule planned
against the span the sends took (a client that could not send on time); more than 10 % off
flags the level ``load-not-held``.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mfubench.analysis.load import Load
from mfubench.analysis.measurement import Measurement
from mfubench.measure.client import CompletionClient, Prompt, RequestRecord, random_prompt
from mfubench.measure.metrics import ServerDelta
from mfubench.measure.selfcheck import LoopLagProbe
from mfubench.measure.sweep import (
    FATAL_ERROR_KINDS,
    LOOP_LAG_LIMIT_S,
    count_flags,
    counters_match,
    latency_percentiles,
    metrics_available,
    percentile,
    scrape_metrics,
    settled_delta,
)

#: How far the achieved load may stray from the asked one before the level is flagged.
LOAD_TOLERANCE = 0.10

LevelKey = tuple[str, float, int, int]
"""``(kind, level, input_tokens, output_tokens)``: one level of a load run."""


@dataclass(frozen=True)
class LevelPlan:
    """One level to measure (module doc)."""

    load: Load
    input_tokens: int
    output_tokens: int
    requests: int
    warmup: int = 0

    def __post_init__(self) -> None:
        if self.load.kind not in ("concurrency", "rate"):
            raise ValueError(f"a level drives a concurrency or a rate, not {self.load.kind!r}")
        if self.requests < 1 or self.warmup < 0 or self.input_tokens < 1 or self.output_tokens < 1:
            raise ValueError("a level needs requests, input and output tokens >= 1 and warmup >= 0")

    @property
    def key(self) -> LevelKey:
        assert self.load.level is not None
        return (self.load.kind, self.load.level, self.input_tokens, self.output_tokens)


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


def arrival_gaps(load: Load, count: int, rng: random.Random) -> list[float]:
    """``count`` gaps (s) between arrivals at ``load.level`` per second; the first is 0."""
    assert load.level is not None
    rate = load.level
    if load.arrival == "constant":
        gaps = [1.0 / rate] * count
    elif load.arrival == "gamma":
        shape = load.burstiness or 1.0
        gaps = [rng.gammavariate(shape, 1.0 / (rate * shape)) for _ in range(count)]
    else:  # poisson (the default)
        gaps = [rng.expovariate(rate) for _ in range(count)]
    return [0.0, *gaps[1:]] if gaps else []


async def _closed_loop(client: CompletionClient, prompts: Sequence[Prompt], output_tokens: int,
                       concurrency: int) -> list[RequestRecord]:
    """Send ``prompts`` with ``concurrency`` in flight: each worker sends its next request
    when its last one is done."""
    records: list[RequestRecord | None] = [None] * len(prompts)
    order = iter(range(len(prompts)))

    async def worker() -> None:
        for i in order:  # one iterator shared by the workers: each index goes to one of them
            records[i] = await client.complete(prompts[i], output_tokens, concurrency)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(prompts)))))
    return [r for r in records if r is not None]


async def _open_loop(client: CompletionClient, prompts: Sequence[Prompt], output_tokens: int,
                     gaps: Sequence[float]) -> list[RequestRecord]:
    """Send each prompt at its arrival time (the gaps' schedule), whatever the server does."""
    tasks: list[asyncio.Task[RequestRecord]] = []
    due = time.monotonic()
    for prompt, gap in zip(prompts, gaps, strict=True):
        due += gap
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        tasks.append(asyncio.create_task(client.complete(prompt, output_tokens, 1)))
    return list(await asyncio.gather(*tasks))


async def _send(client: CompletionClient, plan: LevelPlan, prompts: Sequence[Prompt],
                rng: random.Random) -> tuple[list[RequestRecord], float | None]:
    """The records, and for an open loop the span its schedule planned (first to last send)."""
    if plan.load.kind == "concurrency":
        assert plan.load.level is not None
        return await _closed_loop(client, prompts, plan.output_tokens, round(plan.load.level)), None
    gaps = arrival_gaps(plan.load, len(prompts), rng)
    return await _open_loop(client, prompts, plan.output_tokens, gaps), math.fsum(gaps)


async def drive_level(client: CompletionClient, plan: LevelPlan, *, token_range: tuple[int, int],
                      rng: random.Random, settle_timeout_s: float = 2.0) -> LevelResult:
    """Warm up, then measure one level (module doc)."""
    def fresh(count: int) -> list[Prompt]:
        return [random_prompt(rng, plan.input_tokens, token_range) for _ in range(count)]

    if plan.warmup:
        await _send(client, plan, fresh(plan.warmup), rng)
    before = await scrape_metrics(client) if await metrics_available(client) else None
    prompts = fresh(plan.requests)
    async with LoopLagProbe() as probe:
        records, planned_span = await _send(client, plan, prompts, rng)
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
    flags = count_flags(records, plan.input_tokens, plan.output_tokens)
    if result.loop_lag_s > LOOP_LAG_LIMIT_S:
        flags.append("client-bound")
    if not counters_match(result.delta, records):
        flags.append("server_counts")
    if not steady:
        flags.append(f"no-steady-state: {len(records)} requests are too few for a stretch between "
                     "ramp-up and drain at this load; the figures include both (give more --num-requests)")
    if held is not None and abs(held - 1.0) > LOAD_TOLERANCE:
        flags.append(f"load-not-held: {held:.0%} of the asked {plan.load.label} was achieved")
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
    tpots = [t for r in steady if (t := request_tpot(r)) is not None]
    mean_in, mean_out = (math.fsum(float(getattr(r, k) or 0) for r in ok) / len(ok)
                         for k in ("input_tokens", "output_tokens"))
    extra: dict[str, Any] = {
        "flags": flags, "requests": len(result.records), "failed_requests": len(result.records) - len(ok),
        "steady_requests": len(steady), "steady_window_s": span, "load_held": held,
        "loop_lag_s": result.loop_lag_s, "warmup_requests": plan.warmup,
        "requested_input_tokens": plan.input_tokens,
    }
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
        input_tokens=mean_in,
        output_tokens=mean_out,
        requested_output_tokens=plan.output_tokens,
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
        source=f"mfubench run, {plan.load.label} input={plan.input_tokens} output={plan.output_tokens}",
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
        return {
            "type": "point",
            "batch_size": m.batch_size if m is not None else 1,
            "input_tokens": self.plan.input_tokens,
            "output_tokens": self.plan.output_tokens,
            "load": asdict(self.plan.load),
            "flags": list(self.flags),
            "measurement": None if m is None else measurement_json(m),
            "rows": self.rows,
        }


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
            for record in result.records:
                log.write({"type": "request", "level": list(plan.key), **record.to_json()})
            _raise_if_fatal(result.records, hooks)
        except ServerError as exc:
            raise ServerError(
                f"{client.base_url} failed at {plan.load.label} input={plan.input_tokens} "
                f"output={plan.output_tokens}: {hooks.check_server() or exc}; {len(done) + len(out)} "
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
