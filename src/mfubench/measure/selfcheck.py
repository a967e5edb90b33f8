"""The client's check on itself: is it keeping up with what it measures?

- *Event-loop lag*: :class:`LoopLagProbe` ticks every ``tick_s`` on the client's event loop and
  records how late each tick woke. A loop busy parsing streams (or a process starved of CPU)
  wakes late, and then every arrival it stamps is late too.
- *Send-schedule lag*: how long after a batch was due its last request actually went out
  (each :class:`~mfubench.measure.client.RequestRecord` carries its true ``sent_s``).

The sweep turns both into the ``client-bound`` flag (thresholds in :mod:`mfubench.measure.sweep`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mfubench.measure.client import CompletionClient, Prompt, RequestRecord

#: Period of the event-loop lag probe (seconds).
LOOP_TICK_S = 0.002


class LoopLagProbe:
    """``async with LoopLagProbe() as p:`` ticks every ``tick_s`` while the block runs; then
    ``p.worst_s`` is the latest any tick woke and ``p.p90_s`` the lateness of the tick at the
    90th percentile (0 when the loop was always on time).

    ``p90_s`` is the one that says the client could not keep up: a client that is saturated is
    late on most ticks, while one stall (a garbage collection, the OS giving the core to the
    server for a moment) makes ``worst_s`` large but delays one arrival's stamp, and the gap
    after it shrinks by as much, so mean ITLs are unbiased.
    """

    def __init__(self, tick_s: float = LOOP_TICK_S) -> None:
        self.tick_s = tick_s
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def worst_s(self) -> float:
        return max(self.lags, default=0.0)

    @property
    def p90_s(self) -> float:
        if not self.lags:
            return 0.0
        ordered = sorted(self.lags)
        return ordered[max(1, math.ceil(0.9 * len(ordered))) - 1]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.tick_s
            await asyncio.sleep(self.tick_s)
            self.lags.append(max(0.0, loop.time() - due))

    async def __aenter__(self) -> LoopLagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass(frozen=True)
class BatchResult:
    """A batch sent at once: its records, the event-loop lag while it ran (90th percentile and
    worst), and when it was due (``time.monotonic()``, system-wide on Linux)."""

    records: tuple[RequestRecord, ...]
    loop_lag_s: float  # the probe's 90th-percentile lateness (see LoopLagProbe)
    due_s: float
    loop_lag_worst_s: float = 0.0

    @property
    def send_lag_s(self) -> float:
        """Last true send − due time (0 for an empty batch)."""
        return max((max(0.0, r.sent_s - self.due_s) for r in self.records), default=0.0)


async def send_batch(client: CompletionClient, prompts: Sequence[Prompt], output_tokens: int,
                     batch_size: int | None = None, due_s: float | None = None) -> BatchResult:
    """Send ``prompts`` at once on ``client`` (at ``due_s`` when given), probing the loop."""
    if due_s is not None:
        await asyncio.sleep(max(0.0, due_s - time.monotonic()))
    size = batch_size or len(prompts)
    async with LoopLagProbe() as probe:
        start = time.monotonic() if due_s is None else due_s
        records = await asyncio.gather(*(client.complete(p, output_tokens, size) for p in prompts))
    return BatchResult(tuple(records), probe.p90_s, start, probe.worst_s)
