"""One measured point, whatever tool measured it: the input of every MFU/MBU analysis.

A :class:`Measurement` is a batch of ``batch_size`` requests, each of ``input_tokens`` prompt
tokens and ``output_tokens`` generated ones (averages over the batch when they differ), with any
of the timings below, under a :class:`~mfubench.analysis.load.Load` (a static batch unless said:
under a concurrency, a rate or a trace the timings are per-request means). Importers (the seed's format, CSV/JSON tables, vLLM bench, mfubench's own
results) and the live sweep all produce this one type; the analysis never looks further back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mfubench.analysis.load import STATIC, Load
from mfubench.analysis.request_mix import RequestMix
from mfubench.counting.workload import MAX_COUNT
from mfubench.errors import InputFileError


@dataclass(frozen=True)
class Measurement:
    """A measured point.

    Attributes:
        batch_size: requests sent at once (all in flight together); under a concurrency load,
            the requests kept in flight; under a rate or a trace, the mean number in flight
            (Little's law, rounded, at least 1: ``extra["batch_size_from"]`` says so).
        input_tokens: prompt tokens per request (mean over the batch).
        output_tokens: generated tokens per request (mean over the batch).
        requested_output_tokens: what was asked for; when ``output_tokens`` is below it the
            requests stopped early (EOS) and the point is flagged.
        ttft_s: seconds from sending the batch until every request had its first token: the
            batch's prefill span (includes queueing and the first sampled token).
        itl_s: mean seconds between two tokens of a request during decode (one decode step of
            the whole batch).
        elapsed_s: seconds for the whole batch, first send to last token.
        output_tokens_per_s: generated tokens of the whole batch per second.
        server_flops / server_read_bytes / server_write_bytes: the serving engine's own counter
            deltas over the point (vLLM ``--enable-mfu-metrics``), per GPU as the engine counts.
        load: how the requests arrived (static by default).
        tpot_s: mean seconds per output token after the first, per request (under load).
        duration_s: seconds of the whole run (under load: first request sent to last done).
        completed: requests that completed in the run.
        request_throughput: completed requests per second.
        mix: the lengths of the requests when they differ (a
            :class:`~mfubench.analysis.request_mix.RequestMix`); its means are
            ``input_tokens`` and ``output_tokens``, and the analysis under load sums the work
            per distinct length instead of counting every request at the mean.
        source: where the point came from (a file and key, or a run), for messages.
        extra: anything else the source carried, kept for provenance.
        depth: a test on a KV cache already holding ``depth`` tokens per sequence, filled
            before the timed work (llama-bench's ``n_depth``); None for an ordinary point. At a
            depth the prompt is prefilled after the cached tokens and decode starts at
            ``depth + input_tokens``; ``input_tokens`` may be 0 (a decode-only test), and then
            every output token is a decode step (there is no prefill to sample the first one):
            see :func:`decode_steps`.
        as_run: what the measuring tool says the run loaded and ran on (weight bytes, KV type,
            devices, layer split, offload), applied per point by
            :func:`mfubench.analysis.as_run.point_setup`; None when the tool says nothing.
    """

    batch_size: int
    input_tokens: float
    output_tokens: float
    requested_output_tokens: float | None = None
    ttft_s: float | None = None
    itl_s: float | None = None
    elapsed_s: float | None = None
    output_tokens_per_s: float | None = None
    server_flops: float | None = None
    server_read_bytes: float | None = None
    server_write_bytes: float | None = None
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    load: Load = STATIC
    tpot_s: float | None = None
    duration_s: float | None = None
    completed: int | None = None
    request_throughput: float | None = None
    mix: RequestMix | None = None
    depth: int | None = None
    as_run: Any = None  # an mfubench.analysis.as_run.AsRun (typed there; no import cycle)

    def __post_init__(self) -> None:
        where = self.source or "measurement"
        if self.depth is not None and (isinstance(self.depth, bool) or not isinstance(self.depth, int)
                                       or not 0 <= self.depth <= MAX_COUNT):
            raise InputFileError(f"{where}: depth must be a whole number of tokens >= 0, got {self.depth!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InputFileError(f"{where}: batch_size must be a positive integer, got {self.batch_size!r}")
        if self.batch_size > MAX_COUNT:
            raise InputFileError(f"{where}: batch_size {self.batch_size} exceeds 2^40 = {MAX_COUNT}, "
                                 "far beyond any real deployment")
        for name in ("input_tokens", "output_tokens"):
            value = getattr(self, name)
            least = 1 if name == "input_tokens" and self.depth is None else 0
            if not _finite(value) or value < least:
                raise InputFileError(f"{where}: {name} must be a positive number, got {value!r}")
            if value > MAX_COUNT:
                raise InputFileError(f"{where}: {name} {value:g} exceeds 2^40 = {MAX_COUNT}, far "
                                     "beyond any real deployment")
        for name in TIMINGS:
            value = getattr(self, name)
            if value is not None and (not _finite(value) or value <= 0):
                raise InputFileError(f"{where}: {name} must be a positive number, got {value!r}")
        if all(getattr(self, name) is None for name in TIMINGS):
            raise InputFileError(f"{where}: no timing; give at least one of {', '.join(TIMINGS)}")
        if self.completed is not None and (
                not isinstance(self.completed, int) or isinstance(self.completed, bool)
                or not 1 <= self.completed <= MAX_COUNT):
            raise InputFileError(f"{where}: completed must be a whole number of requests >= 1, "
                                 f"got {self.completed!r}")
        if self.mix is not None:
            for name, mean in (("input_tokens", self.mix.mean_input), ("output_tokens", self.mix.mean_output)):
                if not math.isclose(getattr(self, name), mean, rel_tol=1e-6):
                    raise InputFileError(f"{where}: {name} {getattr(self, name)!r} is not the mean of its "
                                         f"request mix ({mean:.6g})")

    @property
    def stopped_early(self) -> bool:
        """True when the requests produced fewer tokens than were asked for (EOS, stop strings)."""
        return (
            self.requested_output_tokens is not None
            and self.output_tokens < self.requested_output_tokens - 1e-9
        )


def decode_steps(m: Measurement) -> int:
    """Decode steps of a point: ``output_tokens - 1`` after a prefill (which samples the first
    output token), every output token when there is no prompt (a decode-only test at a depth)."""
    out = round(m.output_tokens)
    return max(0, out - 1) if round(m.input_tokens) >= 1 else max(0, out)


#: The timing fields; a measurement needs at least one.
TIMINGS: tuple[str, ...] = ("ttft_s", "itl_s", "elapsed_s", "output_tokens_per_s", "tpot_s",
                            "duration_s", "request_throughput")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
