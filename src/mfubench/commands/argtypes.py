"""Argument types the subcommands share: they reject bad values at parse time, in one line."""

from __future__ import annotations

import argparse
from typing import Any

from mfubench.counting.workload import MAX_COUNT

_LIMIT = f"at most 2^40 = {MAX_COUNT}, far beyond any real deployment"


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0, "an integer >= 0")


def int_list(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` as ``(1, 2, 4)``: positive integers, comma-separated."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    if any(v > MAX_COUNT for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: each value must be {_LIMIT}")
    return values


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text!r} is too large: {_LIMIT}")
    return value


def rate_list(text: str) -> tuple[float, ...]:
    """``"0.5,2,8"`` as ``(0.5, 2.0, 8.0)``: positive finite numbers (requests per second)."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}") from None
    if not values or any(not (0 < v <= MAX_COUNT) for v in values):  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}")
    return values


def slo(text: str) -> dict[str, float]:
    """``"ttft=0.5,tpot=0.05"`` (seconds) as ``{"ttft_s": 0.5, "tpot_s": 0.05}``."""
    out: dict[str, float] = {}
    for part in (p for p in text.split(",") if p.strip()):
        name, _, value = part.partition("=")
        key = {"ttft": "ttft_s", "tpot": "tpot_s"}.get(name.strip().lower())
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if key is None or not (0 < number < float("inf")):
            raise argparse.ArgumentTypeError(f"expected ttft=SECONDS,tpot=SECONDS, got {text!r}")
        out[key] = number
    if not out:
        raise argparse.ArgumentTypeError(f"expected ttft=SECONDS,tpot=SECONDS, got {text!r}")
    return out


def lengths_arg(text: str) -> tuple[Any, ...]:
    """``--input-tokens``/``--output-tokens``: lengths, fixed (``512``), uniform (``128:1024``)
    or normal (``512~128``), comma-separated (:mod:`mfubench.measure.lengths`)."""
    from mfubench.errors import MfubenchError
    from mfubench.measure.lengths import lengths_list

    try:
        return tuple(lengths_list(text))
    except MfubenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration_s(text: str) -> float:
    """Seconds > 0, finite (``--duration``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf") or value > 1e7:
        raise argparse.ArgumentTypeError(f"expected seconds > 0 (at most 10^7), got {text!r}")
    return value
