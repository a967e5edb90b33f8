"""Several client processes for one batch: concurrency that one Python process cannot drive.

``ClientPool(url, procs=N, ...)`` starts ``N`` worker processes (``spawn``), each with its own
event loop and :class:`~mfubench.measure.client.CompletionClient`. :meth:`ClientPool.send_batch`
gives worker ``k`` the prompts ``k, k + N, …`` and a common due time a little ahead; each worker
sends its slice at that time and returns its records and its worst event-loop lag. Times are
``time.monotonic()`` (``CLOCK_MONOTONIC``, one clock for every process of a Linux machine;
``time.perf_counter`` would not be comparable across processes), so the merged records time
the batch as one. The API key travels to the workers through their pipe, never through
arguments or the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from mfubench.measure.client import CompletionClient, Prompt, TextPrompt, run_async
from mfubench.measure.engine import engine_named
from mfubench.measure.selfcheck import BatchResult, send_batch

#: How far ahead of now a batch is due, so that every worker has its slice in time (seconds).
LEAD_S = 0.05


def _worker(conn: Connection, url: str, model: str, api_key: str | None, timeout_s: float,
            engine: str = "vllm") -> None:
    async def serve() -> None:
        async with CompletionClient(url, model=model, api_key=api_key, timeout_s=timeout_s) as client:
            client.engine = engine_named(engine)  # the parent's detected dialect
            loop = asyncio.get_running_loop()
            while True:
                job = await loop.run_in_executor(None, conn.recv)
                if job is None:
                    return
                prompts, output_tokens, batch_size, due_s = job
                result = await send_batch(client, prompts, output_tokens, batch_size, due_s)
                conn.send((list(result.records), result.loop_lag_s, result.loop_lag_worst_s))

    with contextlib.suppress(KeyboardInterrupt, EOFError, BrokenPipeError):
        run_async(serve())


class ClientPool:
    """``procs`` client processes behind one :meth:`send_batch` (use ``with ClientPool(...)``)."""

    def __init__(self, url: str, *, procs: int, model: str, api_key: str | None = None,
                 timeout_s: float = 600.0, engine: str = "vllm") -> None:
        if procs < 1:
            raise ValueError("procs must be at least 1")
        ctx = multiprocessing.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        for _ in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, url, model, api_key, timeout_s, engine), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    async def send_batch(self, prompts: Sequence[Prompt], output_tokens: int) -> BatchResult:
        """Send ``prompts`` at once over every worker; their records merged, in prompt order."""
        n = len(self._conns)
        due_s = time.monotonic() + LEAD_S
        busy = [k for k in range(n) if prompts[k::n]]
        for k in busy:
            mine = [p if isinstance(p, TextPrompt) else list(p) for p in prompts[k::n]]
            self._conns[k].send((mine, output_tokens, len(prompts), due_s))
        loop = asyncio.get_running_loop()
        replies = await asyncio.gather(*(loop.run_in_executor(None, self._conns[k].recv) for k in busy))
        records: list[Any] = [None] * len(prompts)
        for k, (slice_records, *_) in zip(busy, replies, strict=True):
            records[k::n] = slice_records
        return BatchResult(tuple(records), max(r[1] for r in replies), due_s,
                           max(r[2] for r in replies))

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send(None)
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
