"""Words for numbers: why a phase reached the utilisation it did, and what would move it.

Each sentence is built from the row's own figures (intensity, ridge, bound, MFU/MBU, efficiency)
and the setup's limits; nothing is asserted that the numbers do not show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mfubench.analysis.above_peak import ABOVE_PEAK, likely_causes
from mfubench.analysis.feasibility import INFEASIBLE
from mfubench.analysis.under_load import DECODE_WITH_PREFILL, PREFILL_NOT_SEPARABLE
from mfubench.report.units import pct, seconds, util

if TYPE_CHECKING:
    from mfubench.analysis.phases import Row, Setup


def explain_row(setup: Setup, row: Row) -> str:
    """One paragraph on one row."""
    where = f"batch {row.batch_size}" if row.load == "static" else row.load
    if row.bound is None or row.ridge is None:
        return (f"{row.phase} at {where}: no {row.dtype} peak for "
                f"{row.hardware}, so no MFU or roofline")
    head = (f"{row.phase} at {where} is {row.bound}-bound: "
            f"{row.arithmetic_intensity:.3g} FLOP/byte against a ridge of {row.ridge:.3g}")
    parts = [head]
    if row.load != "static" and isinstance(row.extra.get("derived"), str):
        parts.append(f"{'one mean engine step' if row.phase == 'decode' else 'time-averaged'}: "
                     f"{row.extra['derived']}")
    if row.mfu is not None and row.mbu is not None:
        parts.append(f"MFU {util(row.mfu, 1, row.marked('mfu'))}, MBU {util(row.mbu, 1, row.marked('mbu'))}")
    if row.efficiency is not None and row.roofline_s is not None:
        parts.append(f"{util(row.efficiency, 0, row.marked('efficiency'))} of the roofline's speed "
                     f"({seconds(row.roofline_s)} best case vs {seconds(row.seconds)} measured)")
    if row.above_peak:
        parts.append("above the peak, so these are not utilisations: see the above-peak flag")
    if row.infeasible:
        parts.append(f"the layout could not have served this point ({', '.join(row.infeasible)}), "
                     "so these are not utilisations")
    advice = _advice(setup, row)
    text = "; ".join(parts) + "."
    return text + (" " + advice if advice else "")


def _advice(setup: Setup, row: Row) -> str:
    from mfubench.analysis.limits import compute_bound_batch, max_batch

    if row.phase == "decode" and row.bound == "memory":
        context = round(row.input_tokens + row.output_tokens)
        turn = compute_bound_batch(setup, round(row.input_tokens))
        fits, _, _ = max_batch(setup, context)
        decoding = row.extra.get("sequences_decoding")
        if turn is None:
            reach = "no batch makes it compute-bound at this context (the KV cache grows as fast as the work)"
        elif isinstance(decoding, float):
            reach = (f"MFU can only rise with >= {turn} sequences decoding at once: raise the "
                     "concurrency or the rate")
        else:
            reach = f"MFU can only rise with batch >= {turn}"
        tokens = f"{decoding:.3g}" if isinstance(decoding, float) else str(row.batch_size)
        return (f"Each step streams the weights and the KV cache once for {tokens} "
                f"token(s): {reach}, and memory holds {fits} sequences of "
                f"{context} tokens.")
    if row.bound == "compute" and row.efficiency is not None and row.efficiency < 0.7:
        return ("Compute-bound but below 70 % of the roofline: look at kernel efficiency, "
                "scheduling, the sampled token and the HTTP path inside the measured time.")
    if row.bound == "communication":
        return ("The TP all-reduces dominate: fewer GPUs per replica, a faster interconnect or "
                "larger batches (fewer, larger messages) move it.")
    return ""


def where(row: Row, short: bool = False) -> str:
    """The point a row belongs to in words: ``batch 8`` (``b=8``) for a static batch, else its
    load (``concurrency 8``, ``rate 4 req/s (poisson)``, ``trace``)."""
    if row.load != "static":
        return row.load
    return f"b={row.batch_size}" if short else f"batch {row.batch_size}"


def summary(rows: Sequence[Row]) -> list[str]:
    """A few sentences over all rows: the best point of each phase and the pattern.

    The ranges are of the rows within the peak; rows above it are counted and named apart, so
    no figure above 100 % appears as a utilisation."""
    out: list[str] = []
    for phase in ("prefill", "decode"):
        measured = [r for r in rows if r.phase == phase and r.mfu is not None]
        sel = [r for r in measured if r.plain]
        if measured and not sel:
            out.append(f"{phase}: every row is above the peak or could not have happened, so no "
                       "utilisation is given.")
            continue
        if not sel:
            continue
        best = max(sel, key=lambda r: r.mfu or 0.0)
        bounds = sorted({r.bound or "?" for r in sel})
        line = (f"{phase}: MFU {pct(min(r.mfu or 0 for r in sel))} to {pct(best.mfu)} "
                f"(best at {where(best)}), bound: {', '.join(bounds)}")
        mbus = [r.mbu for r in sel if r.mbu is not None]
        if phase == "decode" and mbus:
            line += f"; MBU {pct(min(mbus))} to {pct(max(mbus))}: decode is judged by MBU, not MFU"
        if len(sel) < len(measured):
            line += f" (over the {len(sel)} of {len(measured)} rows that are plain figures)"
        out.append(line + ".")
    over = [r for r in rows if r.above_peak]
    if over:
        places = ", ".join(f"{r.phase} {where(r, short=True)}" for r in over)
        likely = likely_causes(over[0], over[0].above_peak)[0]
        out.append(f"{len(over)} row(s) are above the peak ({places}): a figure over 100 % is not "
                   f"a utilisation but a wrong peak, time or count; most likely {likely}.")
    loads = list(dict.fromkeys(r.load for r in rows if r.load != "static"))
    if loads:
        out.append(f"under load ({', '.join(loads)}): decode is one mean engine step (Little's law "
                   "for the sequences decoding, TPOT for its time) and total is time-averaged over "
                   f"the run; {PREFILL_NOT_SEPARABLE}, so there is no prefill row.")
    cannot = [r for r in rows if r.infeasible]
    if cannot:
        kinds = sorted({k for r in cannot for k in r.infeasible})
        places = ", ".join(f"{r.phase} {where(r, short=True)}" for r in cannot)
        out.append(f"{len(cannot)} row(s) could not have happened as described ({', '.join(kinds)}: "
                   f"{places}): beyond the context or the memory of the layout, so their figures are "
                   "not utilisations; see their flags.")
    own = (ABOVE_PEAK, *INFEASIBLE, DECODE_WITH_PREFILL)
    flagged = [r for r in rows if any(not f.startswith(own) for f in r.flags)]
    if flagged:
        out.append(f"{len(flagged)} row(s) carry flags (early stops, estimated times); see the flags column.")
    return out
