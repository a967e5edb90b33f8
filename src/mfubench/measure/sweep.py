"""The sweep engine: measure every point (batch × input × output) and write results as it goes.

For each point not already finished:

1. ``warmup`` rounds of ``batch`` requests of the point's shape, outside any window;
2. ``repeats`` times: scrape ``/metrics``, send ``batch`` requests at once (``asyncio.gather``),
   wait for all, scrape ``/metrics`` again (polling briefly until the engine's token counters
   include the batch, since vLLM records them just after it streams ``[DONE]``);
3. one :class:`~mfubench.analysis.measurement.Measurement` from the repeats (means over them):

   - ``ttft_s`` = last first-token arrival − first send (the batch's prefill span);
   - ``itl_s`` = mean of the inter-token times of all decode tokens of the batch;
   - ``elapsed_s`` = last ``[DONE]`` − first send;
   - ``output_tokens_per_s`` = generated tokens of the batch / ``elapsed_s``;
   - ``server_*`` = the engine's FLOP and byte counter deltas over the window;

4. ``analyze(measurement)`` gives the point's rows (by phase); the point line is written.

Self-check, every measured round (:mod:`mfubench.measure.selfcheck`): a timer ticks every 2 ms and records how late
it woke (event-loop lag: the client was busy), and each request's true send time is compared
with the round's start (send-schedule lag: the client was slow to get the batch out). A point
where, in some round, the loop was late by more than ``max(LOOP_LAG_LIMIT_S, 10 % of the round's
ITL)`` on a tenth of its ticks or more (the 90th-percentile lag; one stall delays one stamp and
shortens the next gap as much, so it does not bias the means) or the last request went out later than ``max(SEND_LAG_LIMIT_S, 10 % of the round's
prefill span)`` is flagged ``client-bound``: its figures are the client's as much as the server's.

A point whose usage counts or ``finish_reason`` differ from what was asked, whose requests
failed in a way the run can survive (time-out, malformed stream), or whose engine token
counters moved by other amounts than the batch's (other traffic) is flagged in
``extra["flags"]`` and on its rows, and kept out of the figures. A failure the run cannot
survive (connection refused, an HTTP error status, a server that died) raises
:class:`~mfubench.errors.ServerError` after everything finished is on disk.

Fresh random prompt ids per request (also in warm-up), so prefix caching cannot hide work. With a
``prompts`` maker (text mode, :mod:`mfubench.measure.prompts`) each batch's ids become texts of
the exact token length, made before the round starts, outside its timed window and its scrapes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mfubench.analysis.measurement import Measurement
from mfubench.errors import ServerError
from mfubench.measure.client import CompletionClient, Prompt, RequestRecord, random_prompt
from mfubench.measure.metrics import Samples, ServerDelta, parse_prometheus, server_delta, total
from mfubench.measure.results_log import PointKey, ResultsLog
from mfubench.measure.selfcheck import BatchResult, send_batch


class Batcher(Protocol):
    """Something that sends a batch at once: several client processes (``--client-procs``)."""

    async def send_batch(self, prompts: Sequence[Prompt], output_tokens: int) -> BatchResult: ...


class PromptMaker(Protocol):
    """Makes a batch's prompts of an exact token length (text mode:
    :class:`~mfubench.measure.prompts.TextPrompts`); without one, prompts are token ids."""

    async def batch(self, rng: random.Random, count: int, length: int,
                    token_range: tuple[int, int]) -> Sequence[Prompt]: ...

Analyze = Callable[[Measurement], list[dict[str, Any]]]
"""The analysis of one point: rows by phase (``prefill``, ``decode``, ``total``)."""

#: Absolute floors of the ``client-bound`` thresholds (seconds); each limit is also at least
#: 10 % of the figure it would distort (the round's ITL for loop lag, its TTFT span for sends).
LOOP_LAG_LIMIT_S = 0.005
SEND_LAG_LIMIT_S = 0.005
CLIENT_BOUND_FRACTION = 0.10

#: HTTP statuses that mean "busy, try later": the round is sent again after each delay.
RETRY_STATUSES = frozenset({429, 503})
RETRY_DELAYS_S = (0.5, 2.0, 8.0)

#: Request failures that end the run (the server is unreachable, refuses, or died).
FATAL_ERROR_KINDS = frozenset({"connect", "http", "disconnect"})


@dataclass(frozen=True)
class SweepPlan:
    """What to measure: the grid, and how often each point is repeated.

    Attributes:
        batch_sizes / input_tokens / output_tokens: the grid; each point sends ``batch``
            requests of ``input`` prompt tokens asking for ``output`` tokens.
        repeats: measured rounds per point (the point's figures are means over them).
        warmup: unmeasured rounds per point before them.
    """

    batch_sizes: tuple[int, ...]
    input_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    repeats: int = 3
    warmup: int = 1

    def __post_init__(self) -> None:
        for name in ("batch_sizes", "input_tokens", "output_tokens"):
            values = getattr(self, name)
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must be positive integers, got {values!r}")
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError("repeats must be at least 1 and warmup at least 0")

    def points(self) -> list[PointKey]:
        """Every ``(batch, input, output)``: shapes outermost, so the batch sizes of one shape
        are measured back to back."""
        return [
            (b, i, o) for i in self.input_tokens for o in self.output_tokens for b in self.batch_sizes
        ]


@dataclass(frozen=True)
class RoundResult:
    """One batch sent at once: its records and the engine's counter delta over it."""

    records: tuple[RequestRecord, ...]
    delta: ServerDelta | None
    loop_lag_s: float = 0.0  # 90th-percentile event-loop lateness while the batch ran
    send_lag_s: float = 0.0
    retries: int = 0
    loop_lag_worst_s: float = 0.0

    @property
    def client_bound(self) -> bool:
        """The client could not keep up in this round (see the module's thresholds)."""
        itl, ttft = self.itl_s or 0.0, self.ttft_s or 0.0
        return self.loop_lag_s > max(LOOP_LAG_LIMIT_S, CLIENT_BOUND_FRACTION * itl) or self.send_lag_s > max(
            SEND_LAG_LIMIT_S, CLIENT_BOUND_FRACTION * ttft
        )

    @property
    def ttft_s(self) -> float | None:
        """Last first token − first send (None unless every request had a first token)."""
        firsts = [r.first_token_at_s for r in self.records]
        if not firsts or any(t is None for t in firsts):
            return None
        return max(t for t in firsts if t is not None) - min(r.sent_s for r in self.records)

    @property
    def elapsed_s(self) -> float | None:
        """Last ``[DONE]`` − first send."""
        dones = [r.done_at_s for r in self.records if r.done_at_s is not None]
        return max(dones) - min(r.sent_s for r in self.records) if dones else None

    @property
    def itl_s(self) -> float | None:
        """Mean inter-token time over every decode token of the batch."""
        gaps = [g for r in self.records for g in r.itl_s]
        return math.fsum(gaps) / len(gaps) if gaps else None

    def to_json(self) -> dict[str, Any]:
        return {
            "ttft_s": self.ttft_s,
            "itl_s": self.itl_s,
            "elapsed_s": self.elapsed_s,
            "loop_lag_s": self.loop_lag_s,
            "loop_lag_worst_s": self.loop_lag_worst_s,
            "send_lag_s": self.send_lag_s,
            "retries": self.retries,
            "server": None if self.delta is None else _delta_json(self.delta),
        }


@dataclass(frozen=True)
class PointResult:
    """A finished point: its measurement (None when nothing could be timed), rows and flags."""

    key: PointKey
    measurement: Measurement | None
    rows: list[dict[str, Any]]
    flags: tuple[str, ...]
    rounds: tuple[RoundResult, ...] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """The ``point`` line of the results file."""
        b, i, o = self.key
        m = self.measurement
        return {
            "type": "point",
            "batch_size": b,
            "input_tokens": i,
            "output_tokens": o,
            "flags": list(self.flags),
            "measurement": None if m is None else measurement_json(m),
            "rows": self.rows,
        }


@dataclass
class SweepHooks:
    """How the sweep talks to what is around it.

    Attributes:
        check_server: None while the server is fine, else why not (a launched server that
            exited, with its log tail); asked after any failed request.
        on_round: called after each measured round (for progress display).
        on_point: called after each finished point.
    """

    check_server: Callable[[], str | None] = lambda: None
    on_round: Callable[[PointKey, int], None] = lambda key, repeat: None
    on_point: Callable[[PointResult], None] = lambda result: None


async def run_sweep(
    client: CompletionClient,
    plan: SweepPlan,
    analyze: Analyze,
    log: ResultsLog,
    *,
    token_range: tuple[int, int],
    rng: random.Random,
    finished: Iterable[PointKey] = (),
    hooks: SweepHooks | None = None,
    settle_timeout_s: float = 2.0,
    batcher: Batcher | None = None,
    prompts: PromptMaker | None = None,
) -> list[PointResult]:
    """Measure every point of ``plan`` not in ``finished``; write request and point lines.

    Returns the results of the points measured now. Raises :class:`ServerError` on a failure
    the run cannot survive; every point finished before it is already on disk.
    """
    hooks = hooks or SweepHooks()
    done = set(finished)
    scrape = await metrics_available(client)
    results: list[PointResult] = []
    for key in plan.points():
        if key in done:
            continue
        try:
            point = await _measure_point(client, key, plan, analyze, log, token_range, rng, hooks, scrape,
                                         settle_timeout_s, batcher, prompts)
        except ServerError as exc:
            where = f"point batch={key[0]} input={key[1]} output={key[2]}"
            finished_now = len(done) + len(results)
            raise ServerError(
                f"{client.base_url} failed at {where}: {hooks.check_server() or exc}; "
                f"{finished_now} finished points are in {log.path} (--resume continues)"
            ) from exc
        hooks.on_point(point)
        results.append(point)
    return results


async def _measure_point(
    client: CompletionClient,
    key: PointKey,
    plan: SweepPlan,
    analyze: Analyze,
    log: ResultsLog,
    token_range: tuple[int, int],
    rng: random.Random,
    hooks: SweepHooks,
    scrape: bool,
    settle_timeout_s: float,
    batcher: Batcher | None,
    maker: PromptMaker | None = None,
) -> PointResult:
    """Warm up, measure ``plan.repeats`` rounds of ``key``, write its lines; return the point."""
    batch, input_tokens, output_tokens = key
    for _ in range(plan.warmup):
        prompts = await _prompts(maker, rng, batch, input_tokens, token_range)
        warm = await _round_with_retries(client, prompts, output_tokens, scrape, settle_timeout_s, batcher, None)
        _raise_if_fatal(warm.records, hooks)
    rounds: list[RoundResult] = []
    for repeat in range(plan.repeats):
        prompts = await _prompts(maker, rng, batch, input_tokens, token_range)
        retried = functools.partial(_write_retried, log, key, repeat)
        result = await _round_with_retries(client, prompts, output_tokens, scrape, settle_timeout_s, batcher, retried)
        for record in result.records:
            log.write({"type": "request", "point": list(key), "repeat": repeat, **record.to_json()})
        _raise_if_fatal(result.records, hooks)
        rounds.append(result)
        hooks.on_round(key, repeat)
    point = build_point(key, rounds, analyze)
    log.write(point.to_json())
    return point


async def _prompts(maker: PromptMaker | None, rng: random.Random, count: int, length: int,
                   token_range: tuple[int, int]) -> Sequence[Prompt]:
    """``count`` fresh prompts of ``length`` tokens: random ids, or ``maker``'s texts."""
    if maker is None:
        return [random_prompt(rng, length, token_range) for _ in range(count)]
    return await maker.batch(rng, count, length, token_range)


def _write_retried(log: ResultsLog, key: PointKey, repeat: int, record: RequestRecord) -> None:
    log.write({"type": "request", "point": list(key), "repeat": repeat, "retried": True, **record.to_json()})


async def _round_with_retries(
    client: CompletionClient,
    prompts: Sequence[Prompt],
    output_tokens: int,
    scrape: bool,
    settle_timeout_s: float,
    batcher: Batcher | None,
    on_retried: Callable[[RequestRecord], None] | None,
) -> RoundResult:
    """:func:`_round`, sent again (the whole batch, so it still goes out at once) after
    :data:`RETRY_DELAYS_S` while the server answers 429 or 503 (busy, not broken); the
    result carries how many times it was retried, and ``on_retried`` sees each record of the
    attempts given up."""
    retries = 0
    while True:
        result = await _round(client, prompts, output_tokens, scrape, settle_timeout_s, batcher)
        busy = any(r.http_status in RETRY_STATUSES for r in result.records)
        if not busy or retries >= len(RETRY_DELAYS_S):
            return dataclasses.replace(result, retries=retries) if retries else result
        if on_retried is not None:
            for record in result.records:
                on_retried(record)
        await asyncio.sleep(RETRY_DELAYS_S[retries])
        retries += 1


async def _round(
    client: CompletionClient,
    prompts: Sequence[Prompt],
    output_tokens: int,
    scrape: bool,
    settle_timeout_s: float,
    batcher: Batcher | None = None,
) -> RoundResult:
    """Send ``prompts`` at once; scrape the engine's counters around them."""
    before = await scrape_metrics(client) if scrape else None
    if batcher is None:
        batch = await send_batch(client, prompts, output_tokens)
    else:
        batch = await batcher.send_batch(prompts, output_tokens)
    records = batch.records
    loop_lag, send_lag = batch.loop_lag_s, batch.send_lag_s
    if before is None or any(r.error_kind in FATAL_ERROR_KINDS for r in records):
        return RoundResult(tuple(records), None, loop_lag, send_lag,
                           loop_lag_worst_s=batch.loop_lag_worst_s)
    delta = await settled_delta(client, before, records, settle_timeout_s)
    return RoundResult(tuple(records), delta, loop_lag, send_lag,
                       loop_lag_worst_s=batch.loop_lag_worst_s)


async def settled_delta(client: CompletionClient, before: Samples, records: Sequence[RequestRecord],
                        settle_timeout_s: float) -> ServerDelta:
    """The engine's counter delta since ``before``, polled until its token counters include
    ``records`` (vLLM records them just after ``[DONE]``) or ``settle_timeout_s`` passed."""
    expected_prompt = sum(r.input_tokens or 0 for r in records)
    expected_generated = sum(r.output_tokens or 0 for r in records)
    deadline = time.monotonic() + settle_timeout_s
    while True:
        delta = server_delta(before, await scrape_metrics(client), client.engine)
        settled = (delta.prompt_tokens or 0) >= expected_prompt and (delta.generation_tokens or 0) >= expected_generated
        if settled or delta.generation_tokens is None or time.monotonic() > deadline:
            return delta
        await asyncio.sleep(0.02)


async def scrape_metrics(client: CompletionClient) -> Samples:
    """The server's ``/metrics`` samples."""
    return parse_prometheus(await client.get_text("/metrics"))


async def metrics_available(client: CompletionClient) -> bool:
    """True when ``/metrics`` answers with the engine's token counters."""
    name = client.engine.counters.get("generation_tokens")
    if name is None:
        return False
    try:
        samples = await scrape_metrics(client)
    except ServerError:
        return False
    return total(samples, name) is not None


def _raise_if_fatal(records: Sequence[RequestRecord], hooks: SweepHooks) -> None:
    """:class:`ServerError` when a request failed because the server is gone or refused."""
    failed = [r for r in records if r.error is not None]
    if not failed:
        return
    dead = hooks.check_server()
    fatal = [r for r in failed if r.error_kind in FATAL_ERROR_KINDS]
    if dead is not None or fatal:
        raise ServerError(dead or str((fatal or failed)[0].error))


def build_point(key: PointKey, rounds: Sequence[RoundResult], analyze: Analyze) -> PointResult:
    """The point's measurement (means over ``rounds``), its flags and its rows."""
    batch, input_tokens, output_tokens = key
    records = [r for rnd in rounds for r in rnd.records]
    flags = point_flags(key, rounds)
    measurement = _measurement(key, rounds, records, flags)
    rows: list[dict[str, Any]] = []
    if measurement is not None:
        rows = [dict(row) for row in analyze(measurement)]
        for row in rows:
            row.setdefault("batch_size", batch)
            row.setdefault("input_tokens", input_tokens)
            row.setdefault("output_tokens", output_tokens)
            if flags:
                mine = [f for f in flags if f not in (row.get("flags") or [])]
                row["flags"] = [*(row.get("flags") or []), *mine]
    return PointResult(key, measurement, rows, flags, tuple(rounds))


def point_flags(key: PointKey, rounds: Sequence[RoundResult]) -> tuple[str, ...]:
    """Why a point must stay out of the figures (empty when it is clean).

    - ``request_errors``: some request failed;
    - ``input_count``/``output_count``: usage differs from the requested lengths;
    - ``finish_reason``: some request did not end with ``length``;
    - ``merged_first_chunk``: some request's first chunk carried several tokens, so its
      TTFT includes decode steps and prefill cannot be told from decode;
    - ``client-bound``: in some round the client itself was late (event-loop or send lag
      over the module's thresholds), so the timings are partly the client's;
    - ``server_counts``: the engine's token counters moved by other amounts than the
      batch's (other traffic, or a counter that did not settle), so its deltas are not ours.
    """
    _, input_tokens, output_tokens = key
    records = [r for rnd in rounds for r in rnd.records]
    ok = [r for r in records if r.error is None]
    flags = count_flags(records, input_tokens, output_tokens)
    if any(r.merged_first_chunk for r in ok):
        flags.append("merged_first_chunk")
    if any(rnd.client_bound for rnd in rounds):
        flags.append("client-bound")
    if any(not counters_match(rnd.delta, rnd.records) for rnd in rounds):
        flags.append("server_counts")
    return tuple(flags)


def count_flags(records: Sequence[RequestRecord], input_tokens: int | None = None,
                output_tokens: int | None = None) -> list[str]:
    """``request_errors``, ``input_count``, ``output_count``, ``finish_reason``: requests that
    failed, or did not have exactly the asked lengths (``input_tokens``/``output_tokens``, else
    each request's own) and end by ``length``."""
    ok = [r for r in records if r.error is None]
    flags = []
    if len(ok) < len(records):
        flags.append("request_errors")
    if any(r.input_tokens != (r.requested_input_tokens if input_tokens is None else input_tokens)
           for r in ok):
        flags.append("input_count")
    if any(r.output_tokens != (r.requested_output_tokens if output_tokens is None else output_tokens)
           for r in ok):
        flags.append("output_count")
    if any(r.finish_reason != "length" for r in ok):
        flags.append("finish_reason")
    return flags


def counters_match(delta: ServerDelta | None, records: Sequence[RequestRecord]) -> bool:
    """False when the engine's token counters moved by other amounts than ``records``' usage
    (other traffic, or a counter that did not settle); True when there are no counters."""
    if delta is None or delta.prompt_tokens is None or delta.generation_tokens is None:
        return True
    return (delta.prompt_tokens == sum(r.input_tokens or 0 for r in records)
            and delta.generation_tokens == sum(r.output_tokens or 0 for r in records))


def _measurement(
    key: PointKey, rounds: Sequence[RoundResult], records: Sequence[RequestRecord], flags: Sequence[str]
) -> Measurement | None:
    batch, input_tokens, output_tokens = key
    ok = [r for r in records if r.error is None and r.input_tokens is not None and r.output_tokens is not None]
    if not ok:
        return None
    elapsed = _mean(r.elapsed_s for r in rounds)
    ttft = _mean(r.ttft_s for r in rounds)
    itl = _mean(r.itl_s for r in rounds)
    mean_output = math.fsum(float(r.output_tokens or 0) for r in ok) / len(ok)
    generated = math.fsum(float(r.output_tokens or 0) for r in ok)
    time_s = math.fsum(r.elapsed_s or 0.0 for r in rounds)
    if elapsed is None and ttft is None and itl is None:
        return None
    deltas = [r.delta for r in rounds]
    extra: dict[str, Any] = {
        "flags": list(flags),
        "requested_input_tokens": input_tokens,
        "repeats": [r.to_json() for r in rounds],
        "requests": len(records),
        "failed_requests": len(records) - len(ok),
    }
    gaps = [g for r in ok for g in r.itl_s]
    if gaps:
        # decode tokens that arrived in one chunk with the previous token: the stream did not
        # resolve those steps (a busy server or client); 1.0 leaves itl_s unmeasured (None)
        extra["merged_token_fraction"] = sum(1 for g in gaps if g == 0.0) / len(gaps)
    latency = latency_percentiles(ok)
    if latency:
        extra["latency_percentiles"] = latency
    server = _server_means(deltas)
    if server:
        extra["server"] = server
    engine = engine_timings(ok)
    if engine:
        extra["engine_timings"] = engine
    return Measurement(
        batch_size=batch,
        input_tokens=math.fsum(float(r.input_tokens or 0) for r in ok) / len(ok),
        output_tokens=mean_output,
        requested_output_tokens=output_tokens,
        ttft_s=_positive(ttft),
        itl_s=_positive(itl),
        elapsed_s=_positive(elapsed),
        output_tokens_per_s=_positive(generated / time_s if time_s > 0 else None),
        server_flops=_mean_delta(deltas, "flops"),
        server_read_bytes=_mean_delta(deltas, "read_bytes"),
        server_write_bytes=_mean_delta(deltas, "write_bytes"),
        source=f"mfubench run, point batch={batch} input={input_tokens} output={output_tokens}",
        extra=extra,
    )


def engine_timings(records: Sequence[RequestRecord]) -> dict[str, float]:
    """The engine's own per-request times (llama.cpp's ``timings``) beside the client's, as
    means over ``records``: ``prefill_s`` (its prompt processing) against ``client_ttft_s``
    (which adds the network and the first sampled token), ``decode_s`` (its generation after
    the first token) against ``client_decode_s`` (end-to-end minus TTFT). Empty when the
    engine reports none."""
    timed = [r for r in records if r.engine_prefill_s is not None and r.engine_decode_s is not None
             and r.ttft_s is not None and r.e2e_s is not None]
    if not timed:
        return {}
    n = len(timed)
    return {
        "requests": float(n),
        "prefill_s": math.fsum(r.engine_prefill_s or 0.0 for r in timed) / n,
        "client_ttft_s": math.fsum(r.ttft_s or 0.0 for r in timed) / n,
        "decode_s": math.fsum(r.engine_decode_s or 0.0 for r in timed) / n,
        "client_decode_s": math.fsum((r.e2e_s or 0.0) - (r.ttft_s or 0.0) for r in timed) / n,
    }


#: The percentiles the results keep of per-request latencies.
PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_percentiles(records: Sequence[RequestRecord]) -> dict[str, dict[str, float]]:
    """p50/p90/p99 over the measured requests: TTFT and end-to-end per request, and every
    inter-token gap of every request (the streams' own timing, not batch means)."""
    series = {
        "ttft_s": [r.ttft_s for r in records if r.ttft_s is not None],
        "itl_s": [g for r in records for g in r.itl_s],
        "e2e_s": [r.e2e_s for r in records if r.e2e_s is not None],
    }
    return {
        name: {f"p{q}": percentile(values, q) for q in PERCENTILES}
        for name, values in series.items() if values
    }


def _server_means(deltas: Sequence[ServerDelta | None]) -> dict[str, float]:
    """Per-request means of the engine's phase histograms, and per-round token deltas."""
    if not deltas or any(d is None for d in deltas):
        return {}
    present = [d for d in deltas if d is not None]
    out: dict[str, float] = {}
    for phase in ("prefill", "decode", "queue"):
        means = [d.mean_s(phase) for d in present]
        if all(m is not None for m in means):
            out[f"{phase}_time_s"] = math.fsum(m for m in means if m is not None) / len(means)
    for name in ("prompt_tokens", "generation_tokens"):
        value = _mean_delta(deltas, name)
        if value is not None:
            out[name] = value
    return out


def _mean_delta(deltas: Sequence[ServerDelta | None], name: str) -> float | None:
    values = [None if d is None else getattr(d, name) for d in deltas]
    if not values or any(v is None for v in values):
        return None
    return math.fsum(v for v in values if v is not None) / len(values)


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else None


def _positive(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value > 0 else None


def measurement_json(m: Measurement) -> dict[str, Any]:
    """A Measurement as its results line stores it (``source`` aside; the load as an object)."""
    out: dict[str, Any] = {
        "batch_size": m.batch_size,
        "input_tokens": m.input_tokens,
        "output_tokens": m.output_tokens,
        "requested_output_tokens": m.requested_output_tokens,
        "ttft_s": m.ttft_s,
        "itl_s": m.itl_s,
        "elapsed_s": m.elapsed_s,
        "output_tokens_per_s": m.output_tokens_per_s,
        "server_flops": m.server_flops,
        "server_read_bytes": m.server_read_bytes,
        "server_write_bytes": m.server_write_bytes,
        "extra": dict(m.extra),
    }
    if m.load.continuous:
        out.update(load=dataclasses.asdict(m.load), tpot_s=m.tpot_s, duration_s=m.duration_s,
                   completed=m.completed, request_throughput=m.request_throughput)
    if m.mix is not None:
        out["mix"] = m.mix.to_json()
    return out


def _delta_json(d: ServerDelta) -> Mapping[str, float | None]:
    return {k: getattr(d, k) for k in d.__dataclass_fields__}
