"""MFU, MBU and the roofline of measured points, phase by phase.

Every :class:`~mfubench.analysis.measurement.Measurement` gives up to three rows:

``prefill``
    ``batch`` prompts of ``input_tokens``. Seconds: the batch's TTFT span, or the whole elapsed
    time of a run with one output token (the seed's prefill runs).
``decode``
    the ``output_tokens - 1`` decode steps that follow, the KV cache growing from
    ``input_tokens`` to ``input_tokens + output_tokens - 2``. Seconds, first that applies:
    mean ITL x steps (``itl``); elapsed - TTFT of the same point (``elapsed-ttft``); elapsed
    minus the prefill time of a matching point of the same analysis (same batch and input
    length: ``elapsed-minus-measured-prefill``); elapsed minus the roofline's prefill time
    (``elapsed-minus-roofline-prefill``, an estimate, flagged).
``total``
    whole requests: elapsed, else TTFT + ITL x steps, else batch x output / tokens-per-second.

For each row::

    mfu  = flops / (seconds * devices * peak_flops[dtype])      FLOPs: whole model, convention C
    mbu  = bytes_per_gpu / (seconds * memory_bandwidth)          bytes: per GPU, see counting.memory
    efficiency = roofline_s / seconds

``mfu``/``mbu`` use the datasheet (dense) peak; ``mfu_measured``/``mbu_measured`` the calibrated
peak when one exists (for ``cpu`` the measured peak *is* the peak, and ``mfu`` uses it).
A dtype the device has no peak for gives ``mfu = None``, never a number against the wrong peak.
A row where any of these exceeds 1 keeps its figures, lists them in ``above_peak`` and carries
the ``above-peak`` flag with the likely cause (:mod:`mfubench.analysis.above_peak`); a point the
layout could not have served (beyond the context or the memory) lists ``infeasible`` and its
flags (:mod:`mfubench.analysis.feasibility`). Neither kind of figure is shown plain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from mfubench.analysis.above_peak import above_peak, above_peak_flag
from mfubench.analysis.feasibility import feasibility_flags
from mfubench.analysis.load import LoadKind
from mfubench.analysis.measurement import Measurement, decode_steps
from mfubench.analysis.roofline import DEFAULT_ALLREDUCE_LATENCY_S, Machine, Roofline, roofline
from mfubench.counting import flops as fl
from mfubench.counting import memory
from mfubench.counting.components import check_tp
from mfubench.counting.layout import Layout
from mfubench.counting.workload import Convention, PrefillChunk
from mfubench.errors import MfubenchError
from mfubench.hardware.spec import HardwareSpec
from mfubench.model.spec import ModelSpec

Phase = Literal["prefill", "decode", "total"]
ACTIVATION_BYTES = 2  # bf16/fp16 activations crossing the TP all-reduce


@dataclass(frozen=True)
class Setup:
    """What an analysis counts against: the model, the hardware and the conventions."""

    spec: ModelSpec
    hardware: HardwareSpec
    convention: Convention = "causal"
    tp: int = 1
    kv_dtype: str | None = None
    allreduce_latency_s: float = DEFAULT_ALLREDUCE_LATENCY_S
    max_model_len: int | None = None  # the engine's longest context, where known
    peak_dtype: str | None = None  # the engine's GEMM peak where it is not the dtype rule's
    layout: Layout | None = None  # a TP/DP/PP/EP layout (None: one TP replica of ``tp``)

    @property
    def parallel(self) -> Layout:
        """The parallel layout: ``layout``, else one tensor-parallel replica of ``tp``."""
        return self.layout if self.layout is not None else Layout(tp=self.tp)

    @property
    def dtype(self) -> str:
        """The matmul dtype whose peak applies: ``peak_dtype`` where the engine names one
        (llama.cpp's CUDA fp16 GEMMs: ``fp16_acc16``), else the dtype rule of ``hardware.dtypes``."""
        if self.peak_dtype:
            return self.peak_dtype
        from mfubench.model.formats import matmul_dtype

        return matmul_dtype(self.spec.weights, self.hardware.accelerator.peak_flops)[0]

    def machine(self, measured: bool = False) -> Machine | None:
        """The per-GPU figures for the roofline; None when the device has no peak for the dtype
        (or, with ``measured``, no calibration)."""
        hw = self.hardware
        use_measured = measured or hw.measured
        if measured and hw.calibration is None:
            return None
        peak = hw.peak_flops(self.dtype, measured=use_measured)
        bandwidth = hw.memory_bandwidth(measured=use_measured)
        if peak is None or bandwidth is None:
            return None
        link = hw.accelerator.interconnect
        return Machine(
            name=hw.name,
            devices=self.parallel.devices,
            peak_flops=peak,
            memory_bandwidth=bandwidth,
            memory_capacity=hw.memory_capacity,
            link_bandwidth=link.bandwidth_per_direction if link else None,
            dtype=self.dtype,
            peak_source="measured" if use_measured else "datasheet",
            allreduce_latency_s=self.allreduce_latency_s,
            tp=self.tp,
        )

    @property
    def peak_label(self) -> str:
        """How the denominators are described on every table."""
        m = self.machine()
        if m is None:
            return f"{self.hardware.name}: no {self.dtype} peak"
        kind = "measured" if m.peak_source == "measured" else "datasheet dense"
        return (f"{kind} {self.dtype} peak {m.peak_flops / 1e12:.4g} TFLOP/s and "
                f"{m.memory_bandwidth / 1e12:.4g} TB/s per device, x{m.devices}")


def make_setup(
    spec: ModelSpec,
    hardware: HardwareSpec,
    convention: Convention = "causal",
    tp: int | None = None,
    kv_dtype: str | None = None,
    allreduce_latency_s: float = DEFAULT_ALLREDUCE_LATENCY_S,
    max_model_len: int | None = None,
    layout: Layout | None = None,
) -> Setup:
    """A :class:`Setup`; ``tp`` defaults to the device count and must equal it (one replica
    of the model over all the devices named); a ``layout`` must use every device named."""
    if layout is not None and not (layout.plain_tp and layout.imbalance == 1.0):
        from mfubench.counting.parallel import check_layout

        if layout.devices != hardware.count:
            raise MfubenchError(
                f"{layout.label} uses --tp x --dp x --pp = {layout.devices} devices but --hardware "
                f"{hardware.name} has {hardware.count}: make them equal")
        check_layout(spec, layout)
        return Setup(spec, hardware, convention, layout.tp, kv_dtype, allreduce_latency_s,
                     max_model_len, layout=layout)
    if layout is not None:
        tp = layout.tp
    tp = hardware.count if tp is None else tp
    if tp != hardware.count:
        raise MfubenchError(
            f"--tp {tp} but --hardware {hardware.name} has {hardware.count} device(s); the "
            "analysis models one replica spanning every device named: make them equal"
        )
    check_tp(spec, tp)
    return Setup(spec, hardware, convention, tp, kv_dtype, allreduce_latency_s, max_model_len)


@dataclass(frozen=True)
class Work:
    """FLOPs and bytes of a phase, and its TP traffic."""

    flops: float  # whole model
    flops_per_gpu: float
    bytes_per_gpu: float
    messages: float
    message_bytes: float
    comm_terms: tuple[tuple[str, float], ...] = ()  # a layout's collectives, seconds (.comm)

    def __add__(self, other: Work) -> Work:
        # messages of different sizes: keep the total bytes exact by averaging the size
        messages = self.messages + other.messages
        size = ((self.messages * self.message_bytes + other.messages * other.message_bytes)
                / messages) if messages else 0.0
        terms = dict(self.comm_terms)
        for name, seconds in other.comm_terms:
            terms[name] = terms.get(name, 0.0) + seconds
        return Work(self.flops + other.flops, self.flops_per_gpu + other.flops_per_gpu,
                    self.bytes_per_gpu + other.bytes_per_gpu, messages, size, tuple(terms.items()))


def prefill_work(setup: Setup, batch: int, input_tokens: int, cached: int = 0) -> Work:
    """Work of ``batch`` prompts of ``input_tokens`` prefilled together, after ``cached``
    tokens already in each sequence's cache (a test at a depth)."""
    if setup.layout is not None:
        from mfubench.analysis.layout_work import layout_prefill_work

        return layout_prefill_work(setup, batch, input_tokens, cached)
    spec, tp = setup.spec, setup.tp
    chunk = PrefillChunk(input_tokens, cached, batch)
    f = fl.prefill(spec, chunk, setup.convention)
    b = memory.prefill_bytes(spec, chunk, setup.kv_dtype, tp)
    return Work(fl.total(f), sum(fl.per_gpu(spec, f, tp).values()), b.total,
                2 * spec.num_layers, batch * input_tokens * spec.hidden_size * ACTIVATION_BYTES)


def decode_work(setup: Setup, batch: int, input_tokens: int, steps: int) -> Work:
    """Work of ``steps`` decode steps of ``batch`` sequences after prompts of ``input_tokens``
    (the KV cache grows by one token per step; weights are read once per step)."""
    if setup.layout is not None:
        from mfubench.analysis.layout_work import layout_decode_work

        return layout_decode_work(setup, batch, input_tokens, steps)
    spec, tp = setup.spec, setup.tp
    if steps <= 0:
        return Work(0, 0, 0, 0, 0)
    f = fl.decode_span(spec, batch, input_tokens, steps)
    total_bytes = memory.decode_span_bytes(spec, batch, input_tokens, steps, setup.kv_dtype, tp).total
    return Work(fl.total(f), sum(fl.per_gpu(spec, f, tp).values()), total_bytes,
                2 * spec.num_layers * steps, batch * spec.hidden_size * ACTIVATION_BYTES)


def phase_work(setup: Setup, phase: Phase, batch: int, input_tokens: int, output_tokens: int,
               depth: int = 0) -> Work:
    """The work of a phase of ``batch`` requests of ``input_tokens`` in, ``output_tokens`` out,
    on caches already holding ``depth`` tokens (0 but for a test at a depth). Without a prompt
    (``input_tokens`` 0, a decode-only test) every output token is a decode step."""
    if phase == "prefill":
        return prefill_work(setup, batch, input_tokens, depth)
    steps = output_tokens - 1 if input_tokens >= 1 else output_tokens
    decode = decode_work(setup, batch, depth + input_tokens, steps)
    if phase == "decode" or input_tokens < 1:
        return decode
    return prefill_work(setup, batch, input_tokens, depth) + decode


def phase_roofline(setup: Setup, work: Work, measured: bool = False) -> Roofline | None:
    machine = setup.machine(measured)
    if machine is None:
        return None
    rl = roofline(machine, work.flops_per_gpu, work.bytes_per_gpu, work.messages, work.message_bytes)
    if work.comm_terms:
        rl = replace(rl, comm_s=rl.comm_s + sum(t for _, t in work.comm_terms),
                     comm_breakdown=work.comm_terms)
    return rl


@dataclass(frozen=True)
class Row:
    """One phase of one measured point: what was done, how long it took, how well it used the
    hardware and what bounds it. Field names are an interface (``--json``).

    ``load`` is the measurement's load as a label (``concurrency 64``, ``rate 4 req/s
    (poisson)``); ``load_kind`` and ``load_level`` are the same load as data: its kind
    (``static``, ``concurrency``, ``rate``, ``trace``) and level (C requests in flight, λ
    requests per second, a static batch's B where the load names one; None for a trace)."""

    batch_size: int
    input_tokens: float
    output_tokens: float
    phase: Phase
    seconds: float | None
    seconds_source: str
    flops: float
    flops_per_gpu: float
    bytes: float
    achieved_flops_per_s: float | None
    achieved_bytes_per_s: float | None
    mfu: float | None
    mbu: float | None
    mfu_measured: float | None
    mbu_measured: float | None
    arithmetic_intensity: float
    ridge: float | None
    bound: str | None
    roofline_s: float | None
    compute_s: float | None
    memory_s: float | None
    comm_s: float | None
    efficiency: float | None
    mfu_ceiling: float | None
    mbu_ceiling: float | None
    convention: str
    dtype: str
    hardware: str
    peak_source: str | None
    tp: int
    flags: tuple[str, ...] = ()
    source: str = ""
    server_flops: float | None = None
    server_read_bytes: float | None = None
    server_write_bytes: float | None = None
    explanation: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    above_peak: tuple[str, ...] = ()
    infeasible: tuple[str, ...] = ()
    load: str = "static"
    load_kind: LoadKind = "static"
    load_level: float | None = None
    layout: str = ""  # the parallel layout's label (``TP2 DP4 EP8``); empty: one TP replica of ``tp``

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flags"] = list(self.flags)
        d["above_peak"] = list(self.above_peak)
        d["infeasible"] = list(self.infeasible)
        d["extra"] = dict(self.extra)
        return d

    def marked(self, name: str) -> bool:
        """True when the utilisation ``name`` (``mfu``, ``mbu``, ``efficiency``...) is not a plain
        figure: it exceeds the peak, or the point could not have happened (``infeasible``)."""
        return name in self.above_peak or bool(self.infeasible)

    @property
    def plain(self) -> bool:
        """True when every utilisation of the row is a plain figure."""
        return not self.above_peak and not self.infeasible


def _ratio(num: float, den: float | None) -> float | None:
    return None if not den else num / den


def make_row(
    setup: Setup,
    m: Measurement,
    phase: Phase,
    seconds: float | None,
    seconds_source: str,
    flags: Sequence[str] = (),
) -> Row:
    """A row from the phase's work and its measured seconds (None: roofline only)."""
    batch, inp, out = m.batch_size, round(m.input_tokens), max(1, round(m.output_tokens))
    work = phase_work(setup, phase, batch, inp, out, m.depth or 0)
    return row_of_work(setup, m, phase, work, seconds, seconds_source, flags)


def row_of_work(
    setup: Setup,
    m: Measurement,
    phase: Phase,
    work: Work,
    seconds: float | None,
    seconds_source: str,
    flags: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> Row:
    """A row of ``m`` from a phase's ``work`` (counted by the caller: a static batch's phase, or
    the work under a load) over its measured ``seconds``, with the roofline, the utilisation,
    the feasibility checks and the above-peak invariant."""
    batch = m.batch_size
    rl = phase_roofline(setup, work)
    rl_measured = phase_roofline(setup, work, measured=True) if setup.hardware.calibration else None
    machine = setup.machine()
    machine_measured = setup.machine(measured=True) if setup.hardware.calibration else None
    secs = seconds if seconds and seconds > 0 else None
    flops_rate = work.flops / secs if secs else None
    bytes_rate = work.bytes_per_gpu / secs if secs else None
    server = phase == "total"

    def util(rate: float | None, mach: Machine | None, kind: str) -> float | None:
        if rate is None or mach is None:
            return None
        return rate / (mach.total_peak_flops if kind == "f" else mach.memory_bandwidth)

    row = Row(
        batch_size=batch,
        input_tokens=m.input_tokens,
        output_tokens=m.output_tokens,
        phase=phase,
        seconds=secs,
        seconds_source=seconds_source,
        flops=work.flops,
        flops_per_gpu=work.flops_per_gpu,
        bytes=work.bytes_per_gpu,
        achieved_flops_per_s=flops_rate,
        achieved_bytes_per_s=bytes_rate,
        mfu=util(flops_rate, machine, "f"),
        mbu=util(bytes_rate, machine, "b") if machine else _bandwidth_only_mbu(setup, bytes_rate),
        mfu_measured=util(flops_rate, machine_measured, "f"),
        mbu_measured=util(bytes_rate, machine_measured, "b"),
        arithmetic_intensity=work.flops_per_gpu / work.bytes_per_gpu if work.bytes_per_gpu else 0.0,
        ridge=rl.ridge if rl else None,
        bound=rl.bound if rl else None,
        roofline_s=rl.roofline_s if rl else None,
        compute_s=rl.compute_s if rl else None,
        memory_s=rl.memory_s if rl else None,
        comm_s=rl.comm_s if rl else None,
        efficiency=_ratio(rl.roofline_s, secs) if rl else None,
        mfu_ceiling=rl.mfu_ceiling if rl else None,
        mbu_ceiling=rl.mbu_ceiling if rl else None,
        convention=setup.convention,
        dtype=setup.dtype,
        hardware=setup.hardware.name,
        peak_source=machine.peak_source if machine else None,
        tp=setup.tp,
        layout="" if setup.layout is None else setup.layout.label,
        flags=tuple(flags),
        source=m.source,
        server_flops=m.server_flops if server else None,
        server_read_bytes=m.server_read_bytes if server else None,
        server_write_bytes=m.server_write_bytes if server else None,
        extra={**_row_extra(m, phase, rl_measured), **(extra or {})},
        load=m.load.label,
        load_kind=m.load.kind,
        load_level=m.load.level,
    )
    cannot = feasibility_flags(setup, batch, m.input_tokens + (m.depth or 0), m.output_tokens)
    if cannot:
        row = replace(row, infeasible=tuple(f.split(":")[0] for f in cannot),
                      flags=(*row.flags, *cannot))
    over = above_peak(row)
    if over:  # after feasibility: a point that could not happen is the likeliest cause
        row = replace(row, above_peak=over, flags=(*row.flags, above_peak_flag(row, over)))
    return row


def _bandwidth_only_mbu(setup: Setup, bytes_rate: float | None) -> float | None:
    """MBU on a device with a bandwidth but no peak for the dtype (Apple's GPUs publish no
    FLOP/s): bytes need no peak, so the MBU is still a figure while the MFU is None."""
    bandwidth = setup.hardware.memory_bandwidth(measured=setup.hardware.measured)
    return bytes_rate / bandwidth if bytes_rate and bandwidth else None


def _row_extra(m: Measurement, phase: Phase, rl_measured: Roofline | None) -> dict[str, Any]:
    """What a row carries beyond its fields: the roofline against the measured peak, per-request
    latency percentiles of its phase (TTFT, ITL, end-to-end) and the engine's own per-request
    phase times (vLLM's prefill/decode/queue histograms) where the point recorded them.

    Under a load (no prefill row) the ``total`` row also carries the level's per-request
    latencies: ``ttft_percentiles_s`` and ``tpot_percentiles_s`` where the point recorded them,
    and the means ``ttft_mean_s`` and ``tpot_mean_s`` (TPOT, else ITL)."""
    extra: dict[str, Any] = {}
    if rl_measured:
        extra["measured_roofline_s"] = rl_measured.roofline_s
    if m.depth is not None:
        extra["depth"] = m.depth
    latency = m.extra.get("latency_percentiles") if isinstance(m.extra, Mapping) else None
    wanted = [{"prefill": "ttft_s", "decode": "itl_s", "total": "e2e_s"}[phase]]
    if m.load.continuous and phase == "total":
        # no prefill row under load: the level's per-request TTFT and TPOT ride on its total row
        wanted += ["ttft_s", "tpot_s"]
        for key, value in (("ttft_mean_s", m.ttft_s), ("tpot_mean_s", m.tpot_s or m.itl_s)):
            if value is not None:
                extra[key] = value
    for name in wanted:
        if isinstance(latency, Mapping) and isinstance(latency.get(name), Mapping):
            extra[f"{name.removesuffix('_s')}_percentiles_s"] = dict(latency[name])
    server = m.extra.get("server") if isinstance(m.extra, Mapping) else None
    if isinstance(server, Mapping):
        for key in (f"{phase}_time_s", "queue_time_s"):
            if phase != "total" and isinstance(server.get(key), int | float):
                extra[f"server_{key}"] = float(server[key])
    return extra


def _point_flags(m: Measurement) -> list[str]:
    flags = []
    if m.stopped_early:
        flags.append(f"stopped-early: {m.output_tokens:g} of {m.requested_output_tokens:g} output "
                     "tokens on average (EOS not ignored); counts use the average")
    for flag in m.extra.get("flags", ()) if isinstance(m.extra, Mapping) else ():
        flags.append(str(flag))
    return flags


def _elapsed(m: Measurement) -> tuple[float | None, str]:
    if m.elapsed_s:
        return m.elapsed_s, "elapsed"
    if m.output_tokens_per_s:
        return m.batch_size * m.output_tokens / m.output_tokens_per_s, "output-tokens-per-s"
    return None, ""


def _prefill_seconds(m: Measurement) -> tuple[float | None, str]:
    if m.ttft_s:
        return m.ttft_s, "ttft"
    elapsed, how = _elapsed(m)
    if elapsed and round(m.output_tokens) <= 1:
        return elapsed, f"{how} (one output token)"
    return None, ""


def analyze_point(setup: Setup, m: Measurement, peers: Iterable[Measurement] = ()) -> list[Row]:
    """The rows of one measured point; ``peers`` are the other points of the same analysis,
    searched for a prefill measurement matching this point's batch and input length."""
    if m.as_run is not None:
        from mfubench.analysis.as_run import point_setup

        setup, as_run_flags = point_setup(setup, m)
        m = replace(m, extra={**m.extra, "flags": [*m.extra.get("flags", ()), *as_run_flags]})
    flags = _point_flags(m)
    if m.load.continuous:
        from mfubench.analysis.under_load import analyze_under_load

        return [_explained(setup, r) for r in analyze_under_load(setup, m, flags)]
    rows: list[Row] = []
    steps = decode_steps(m)
    pre_s, pre_how = _prefill_seconds(m)
    if pre_s:
        rows.append(make_row(setup, m, "prefill", pre_s, pre_how, flags))
    if steps > 0:
        dec_s, dec_how, dec_flags = _decode_seconds(setup, m, steps, pre_s, peers)
        rows.append(make_row(setup, m, "decode", dec_s, dec_how, [*flags, *dec_flags]))
    total_s, total_how = _elapsed(m)
    if total_s is None and m.ttft_s and m.itl_s:
        total_s, total_how = m.ttft_s + m.itl_s * steps, "ttft + itl x steps"
    if total_s:
        rows.append(make_row(setup, m, "total", total_s, total_how, flags))
    return [_explained(setup, r) for r in rows]


def _decode_seconds(
    setup: Setup, m: Measurement, steps: int, pre_s: float | None, peers: Iterable[Measurement]
) -> tuple[float | None, str, list[str]]:
    if m.itl_s:
        return m.itl_s * steps, "itl", []
    elapsed, _ = _elapsed(m)
    if elapsed is None:
        return None, "", ["no decode timing"]
    if pre_s:
        return _positive_or_flag(elapsed - pre_s, "elapsed-ttft")
    for peer in peers:
        if (peer is not m and peer.batch_size == m.batch_size and peer.depth == m.depth
                and round(peer.input_tokens) == round(m.input_tokens)):
            peer_s, _ = _prefill_seconds(peer)
            if peer_s:
                return _positive_or_flag(elapsed - peer_s, "elapsed-minus-measured-prefill")
    rl = phase_roofline(setup, prefill_work(setup, m.batch_size, round(m.input_tokens), m.depth or 0))
    if rl is None:
        return None, "", ["no prefill time to subtract"]
    secs, how, fl_ = _positive_or_flag(elapsed - rl.roofline_s, "elapsed-minus-roofline-prefill")
    return secs, how, [*fl_, "decode-time-estimated: prefill time taken from the roofline"]


def _positive_or_flag(seconds: float, how: str) -> tuple[float | None, str, list[str]]:
    if seconds > 0:
        return seconds, how, []
    return None, how, [f"decode time {seconds:.3g} s is not positive"]


def _explained(setup: Setup, row: Row) -> Row:
    from mfubench.analysis.explain import explain_row

    return replace(row, explanation=explain_row(setup, row))


def analyze(setup: Setup, measurements: Sequence[Measurement]) -> list[Row]:
    """Rows for every measured point, in the order given."""
    rows: list[Row] = []
    for m in measurements:
        rows.extend(analyze_point(setup, m, measurements))
    return rows
