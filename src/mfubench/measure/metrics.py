"""A serving engine's ``/metrics`` (Prometheus text exposition): parse, and diff over a window.

:func:`parse_prometheus` turns the text into ``{(name, labels): value}`` with ``labels`` a
sorted tuple of ``(key, value)`` pairs. :func:`server_delta` subtracts a scrape taken before a
measured window from one taken after, summing over label sets (engines, model names), for the
counters an engine exports (:mod:`mfubench.measure.engine`; vLLM's by default: those of
``--enable-mfu-metrics`` and its request-phase histograms; llama.cpp's token and seconds
counters ``llamacpp:*``):

- ``flops``, ``read_bytes``, ``write_bytes``: ``vllm:estimated_{flops,read_bytes,write_bytes}
  _per_gpu_total`` (vLLM's own estimate, per GPU);
- ``prompt_tokens``, ``generation_tokens``: ``vllm:prompt_tokens_total``,
  ``vllm:generation_tokens_total``;
- ``prefill_time``, ``decode_time``, ``queue_time``: ``_sum`` and ``_count`` of the
  histograms ``vllm:request_{prefill,decode,queue}_time_seconds``.

A counter absent from either scrape, or lower after than before (a restarted server), gives
None (not 0): "not exported" differs from "no work".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from mfubench.errors import ServerError
from mfubench.measure.engine import VLLM, Engine

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]

#: vLLM's counters and histograms (the default engine's), by ServerDelta field.
COUNTERS: Mapping[str, str] = VLLM.counters
HISTOGRAMS: Mapping[str, str] = VLLM.histograms

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<rest>\S.*)$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_SPECIAL = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan, "Inf": math.inf}


def parse_prometheus(text: str) -> Samples:
    """``{(name, labels): value}`` of every sample line; comments and blank lines skipped.

    Raises :class:`ServerError` naming the line when a sample line is malformed.
    """
    samples: Samples = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ServerError(f"/metrics line {number} is not a Prometheus sample: {line[:120]!r}")
        labels = _parse_labels(match["labels"] or "", number)
        value_text = match["rest"].split()[0]  # an optional timestamp may follow
        try:
            value = _SPECIAL[value_text] if value_text in _SPECIAL else float(value_text)
        except ValueError:
            raise ServerError(f"/metrics line {number}: bad value {value_text!r}") from None
        samples[(match["name"], labels)] = value
    return samples


def _parse_labels(text: str, number: int) -> Labels:
    pairs: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _LABEL.match(text, pos)
        if match is None:
            raise ServerError(f"/metrics line {number}: bad labels {{{text[:120]}}}")
        value = match[2].replace("\\\\", "\0").replace('\\"', '"').replace("\\n", "\n")
        pairs.append((match[1], value.replace("\0", "\\")))
        pos = match.end()
    return tuple(sorted(pairs))


def total(samples: Samples, name: str) -> float | None:
    """Sum of ``name`` over all its label sets; None when no sample has that name."""
    values = [v for (n, _), v in samples.items() if n == name]
    return math.fsum(values) if values else None


@dataclass(frozen=True)
class ServerDelta:
    """Changes of the engine's counters over one window (None where not exported).

    Attributes:
        flops / read_bytes / write_bytes: the engine's estimated FLOPs and bytes (per GPU).
        prompt_tokens / generation_tokens: tokens the engine prefilled and generated.
        prefill_time_sum_s / _count (and decode, queue): histogram sums (seconds) and counts
            of requests that finished the phase in the window.
    """

    flops: float | None = None
    read_bytes: float | None = None
    write_bytes: float | None = None
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    prefill_time_sum_s: float | None = None
    prefill_time_count: float | None = None
    decode_time_sum_s: float | None = None
    decode_time_count: float | None = None
    queue_time_sum_s: float | None = None
    queue_time_count: float | None = None

    def mean_s(self, phase: str) -> float | None:
        """Mean seconds per request of ``phase`` (``prefill``, ``decode``, ``queue``)."""
        total_s = getattr(self, f"{phase}_time_sum_s")
        count = getattr(self, f"{phase}_time_count")
        if total_s is None or not count:
            return None
        return float(total_s) / float(count)


def server_delta(before: Samples, after: Samples, engine: Engine = VLLM) -> ServerDelta:
    """The :class:`ServerDelta` from scrape ``before`` to scrape ``after``, under the counter
    names of ``engine`` (vLLM's by default; :mod:`mfubench.measure.engine`)."""
    values: dict[str, float | None] = {}
    for field, name in engine.counters.items():
        values[field] = _diff(before, after, name)
    for prefix, name in engine.histograms.items():
        values[f"{prefix}_sum_s"] = _diff(before, after, f"{name}_sum")
        values[f"{prefix}_count"] = _diff(before, after, f"{name}_count")
    for field, name in engine.seconds_counters.items():
        values[field] = _diff(before, after, name)
    return ServerDelta(**values)


def _diff(before: Samples, after: Samples, name: str) -> float | None:
    a, b = total(before, name), total(after, name)
    if a is None or b is None or b < a:  # b < a: the counter was reset (a new server)
        return None
    return b - a
