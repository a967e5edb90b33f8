"""Human units, in one place: SI prefixes for FLOPs, FLOP/s, bytes and bytes/s, and percentages.

Everything inside mfubench is SI base units (FLOPs, bytes, seconds); only renderers call these.
Bytes use decimal prefixes (1 GB = 1e9 bytes), as datasheets quote bandwidth; ``gib`` is binary.
"""

from __future__ import annotations

import math

_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def si(value: float | None, unit: str, digits: int = 3) -> str:
    """``si(2.9e14, "FLOP") == "290 TFLOP"``; ``-`` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return f"0 {unit}"
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{_sig(value / scale, digits)} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"


def _sig(x: float, digits: int) -> str:
    text = f"{x:.{digits}g}"
    if "e" in text:
        text = f"{x:.0f}"
    return text


def pct(fraction: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: ``pct(0.3881) == "38.8 %"``; ``-`` for None."""
    if fraction is None or math.isnan(fraction):
        return "-"
    return f"{fraction * 100:.{digits}f} %"


#: Written after a utilisation that is not a plain figure: above 100 % (an ``above-peak`` row: a
#: peak, a time or a count is wrong) or of a point that could not have happened (``exceeds-*``).
ABOVE_PEAK_MARK = "⚠"


def util(fraction: float | None, digits: int = 1, marked: bool | None = None) -> str:
    """A utilisation (MFU, MBU, efficiency) as :func:`pct`, followed by :data:`ABOVE_PEAK_MARK`
    when ``marked`` (by default: when above 100 %): ``util(7.55) == "755.0 % ⚠"``. Never
    clamped."""
    text = pct(fraction, digits)
    if marked is None:
        marked = fraction is not None and fraction > 1.0
    return f"{text} {ABOVE_PEAK_MARK}" if marked and fraction is not None else text


def seconds(value: float | None) -> str:
    """Seconds with a fitting unit: ``1.3 ms``, ``16.0 s``."""
    if value is None or math.isnan(value):
        return "-"
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def gib(nbytes: float) -> str:
    """Binary gibibytes: ``gib(2**31) == "2.00 GiB"``."""
    return f"{nbytes / 2**30:.2f} GiB"
