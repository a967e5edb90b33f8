"""The above-peak invariant: a utilisation over 100 % is never a plain figure.

MFU, MBU and the roofline efficiency are fractions of what the hardware can do at most; a
value above 1 means one of the three inputs is wrong, never that the hardware did more than it
can. Such a row keeps its figures (never clamped, never dropped) and carries the flag
``above-peak: ...`` naming the figures and their likely cause, so every renderer can mark them
and the summary can say so in words. The causes, from the row's own evidence:

* **a peak below what was reached**: a measured peak that did not time the engine's kernel
  path, dtype or thread count (recalibrate with ``--model``, ``--dtypes`` and ``--threads``), a
  bandwidth below what caches serve (a model smaller than the last-level cache), or a datasheet
  peak of another dtype than the engine ran (fp8, int8, sparsity: say ``--dtype``);
* **a time that does not cover the work**: a mean per-request TTFT or ITL taken under load
  (each request's time, shorter than the batch's span), or a time of one request for a batch;
* **a count that is too high**: prompt tokens served from the prefix cache, outputs that
  stopped early, or a convention that counts more than the model does (``palm``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfubench.report.units import pct, si

if TYPE_CHECKING:
    from mfubench.analysis.phases import Row

ABOVE_PEAK = "above-peak"

#: The row fields that are fractions of a peak, with their names in words.
UTILISATIONS: dict[str, str] = {
    "mfu": "MFU",
    "mbu": "MBU",
    "mfu_measured": "MFU against the measured peak",
    "mbu_measured": "MBU against the measured bandwidth",
    "efficiency": "roofline efficiency",
}


def above_peak(row: Row) -> tuple[str, ...]:
    """The utilisation fields of ``row`` above 1, in :data:`UTILISATIONS` order."""
    return tuple(k for k in UTILISATIONS if (v := getattr(row, k)) is not None and v > 1.0)


def above_peak_flag(row: Row, fields: tuple[str, ...]) -> str:
    """The flag text for a row whose ``fields`` exceed 1: what, then the likely causes, the one
    the row's evidence points to first."""
    figures = " and ".join(f"{UTILISATIONS[k]} {pct(getattr(row, k))}" for k in fields)
    causes = likely_causes(row, fields)
    return (f"{ABOVE_PEAK}: {figures} exceed 100 %, which no hardware does; not a utilisation. "
            f"Likely {'; or '.join(causes)}")


def likely_causes(row: Row, fields: tuple[str, ...]) -> list[str]:
    """The causes of ``fields`` exceeding 1 on ``row``, most likely first (module doc)."""
    flops_over = any(k in fields for k in ("mfu", "mfu_measured"))
    bytes_over = any(k in fields for k in ("mbu", "mbu_measured"))
    peak: list[str] = []
    if flops_over:
        reached = si(row.achieved_flops_per_s, "FLOP/s")
        if row.peak_source == "measured" or "mfu_measured" in fields:
            peak.append(f"a measured {row.dtype} peak below what the run reached ({reached} in "
                        "all): the calibration did not time the engine's kernel path, dtype or "
                        "thread count; run `mfubench calibrate --model M --dtypes "
                        f"{row.dtype} --threads N` as the server runs")
        else:
            peak.append(f"a run faster than the datasheet's dense {row.dtype} peak ({reached} in "
                        f"all): the engine ran another dtype than {row.dtype} (fp8, int8) or "
                        "sparse kernels; say --dtype")
    if bytes_over:
        peak.append(f"a bandwidth below what was served ({si(row.achieved_bytes_per_s, 'B/s')} "
                    "per device): caches held part of the bytes (weights smaller than the "
                    "last-level cache), or the bandwidth was measured with fewer threads")
    if not peak:  # only the efficiency: the roofline's own peaks are below what was reached
        peak.append("a roofline peak below what was reached")
    time = [f"a time that does not cover the work (seconds from {row.seconds_source or '?'}: "
            "a mean per-request TTFT or ITL under load is shorter than the batch's span)"]
    count = ["a count too high (prompt tokens served from the prefix cache, early stops"
             + (", or the palm convention, which counts more than the model does" if row.convention == "palm" else "")
             + ")"]
    # A point the layout cannot hold explains everything; a measured peak that is beaten most
    # often missed the engine's kernels (the calibration's known blind spot); a datasheet peak
    # that is beaten most often met a per-request time.
    first = [f"a point the layout cannot hold ({', '.join(row.infeasible)}): not all of it was "
             "in flight, so the time does not cover its work"] if row.infeasible else []
    order = [*peak, *time, *count] if row.peak_source == "measured" else [*time, *peak, *count]
    return [*first, *order]
