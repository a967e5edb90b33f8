"""Measure what the local device reaches: GEMM FLOP/s per dtype and memory bandwidth.

What is measured (with PyTorch, CUDA when present, else the CPU with a given thread count):

* **GEMM FLOP/s** of square ``n x n @ n x n`` matmuls: ``2 * n**3 / t``, where ``t`` is the best
  (smallest) per-matmul time of a few repeats, each repeat timing enough back-to-back matmuls to
  last ``min_time``. Sizes grow (512 to 2048 on a CPU, 2048 to 8192 on a GPU) until one matmul
  takes over half a second; the best rate over the sizes is kept (the plateau).
* **Memory bandwidth** from arrays several times the last-level cache: a copy ``b = a``
  (counted as 2 x the array's bytes: read + write) and a triad ``a = b + s * c`` (3 x bytes);
  the best of the two, best of a few repeats. Write-allocate traffic is not counted, as in STREAM.

The result is a :class:`Calibration`, stored as JSON under ``$MFUBENCH_CACHE_DIR/calibration/``
(default ``~/.cache/mfubench/calibration/``), one file per device and thread count, so analyses
can report MFU both against the datasheet and against what this device actually reaches.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mfubench.errors import InputFileError, MfubenchError
from mfubench.hardware.dtypes import normalize_compute_dtype

SCHEMA_VERSION = 1

#: ``progress(step, done, total)``: called before each step and once at the end.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Calibration:
    """What one device reached, measured here.

    Attributes:
        device: the device's model name (``Intel(R) Xeon(R) Processor``, ``NVIDIA H100 80GB HBM3``).
        threads: CPU threads used (None for a GPU).
        peak_flops: best measured GEMM FLOP/s by dtype (only the dtypes measured).
        memory_bandwidth: best measured bytes/s (copy or triad, bytes read + written).
        measured_at: ISO 8601 UTC time of the measurement.
        method: how it was measured (sizes, repeats, formulas), for the record.
        torch_version: the PyTorch that ran it.
        backend: ``cpu`` or ``cuda``.
    """

    device: str
    threads: int | None
    peak_flops: Mapping[str, float] = field(hash=False)
    memory_bandwidth: float
    measured_at: str
    method: str
    torch_version: str
    backend: str = "cpu"

    @property
    def key(self) -> str:
        """The storage key: backend, device and thread count (``cpu-intel-r-xeon-r-processor-1t``)."""
        return device_key(self.backend, self.device, self.threads)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "key": self.key,
            "backend": self.backend,
            "device": self.device,
            "threads": self.threads,
            "peak_flops": dict(self.peak_flops),
            "memory_bandwidth": self.memory_bandwidth,
            "measured_at": self.measured_at,
            "method": self.method,
            "torch_version": self.torch_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "calibration") -> Calibration:
        """Validate a stored calibration (:class:`InputFileError` naming the bad field)."""
        try:
            peaks = {normalize_compute_dtype(k): float(v) for k, v in dict(data["peak_flops"]).items()}
            threads = data.get("threads")
            calibration = cls(
                device=str(data["device"]),
                threads=None if threads is None else int(threads),
                peak_flops=MappingProxyType(peaks),
                memory_bandwidth=float(data["memory_bandwidth"]),
                measured_at=str(data["measured_at"]),
                method=str(data.get("method", "")),
                torch_version=str(data.get("torch_version", "")),
                backend=str(data.get("backend", "cpu")),
            )
        except (KeyError, TypeError, ValueError, MfubenchError) as exc:
            raise InputFileError(f"{where}: malformed calibration ({exc!r})") from exc
        values = [*peaks.values(), calibration.memory_bandwidth]
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise InputFileError(f"{where}: calibration figures must be positive and finite")
        return calibration


def device_key(backend: str, device: str, threads: int | None) -> str:
    """``cpu-<model slug>-<N>t`` or ``cuda-<model slug>``: one stored calibration per key."""
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-") or "unknown"
    return f"{backend}-{slug}" + ("" if threads is None else f"-{threads}t")


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


@dataclass(frozen=True)
class _Plan:
    """Sizes and repeats of one calibration run."""

    gemm_sizes: tuple[int, ...]
    repeats: int
    min_time_s: float
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


def _plan(backend: str, quick: bool, memory_total: float) -> _Plan:
    if quick:
        return _Plan((64, 128), repeats=2, min_time_s=0.002, array_bytes=8 * 1024**2)
    if backend == "cuda":
        return _Plan((2048, 4096, 8192), repeats=3, min_time_s=0.1, array_bytes=1024**3)
    # Arrays 4x the last-level cache so the copy streams from DRAM; three of them must fit.
    wanted = max(4 * _last_level_cache_bytes(), 256 * 1024**2)
    cap = int(memory_total / 8) if memory_total else 1024**3
    return _Plan((512, 1024, 2048), repeats=3, min_time_s=0.1,
                 array_bytes=max(64 * 1024**2, min(wanted, cap, 2 * 1024**3)))


def _torch_dtype(torch: Any, dtype: str) -> Any:
    return {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16,
            "fp16": torch.float16}.get(dtype)


def _gemm_call(torch: Any, backend: str, dtype: str, n: int, device: str) -> Callable[[], Any] | None:
    """A zero-argument function doing one ``n x n x n`` GEMM in ``dtype``, or None if unsupported."""
    if dtype in ("fp32", "tf32", "bf16", "fp16"):
        if dtype == "tf32" and backend != "cuda":
            return None
        a = torch.randn(n, n, device=device).to(_torch_dtype(torch, dtype))
        b = torch.randn(n, n, device=device).to(_torch_dtype(torch, dtype))
        out = torch.empty(n, n, device=device, dtype=a.dtype)
        return lambda: torch.matmul(a, b, out=out)
    if dtype == "fp8" and backend == "cuda" and hasattr(torch, "_scaled_mm"):
        a = torch.randn(n, n, device=device).to(torch.float8_e4m3fn)
        b = torch.randn(n, n, device=device).to(torch.float8_e4m3fn).t()  # column-major
        one = torch.ones((), device=device)
        return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    if dtype == "int8" and hasattr(torch, "_int_mm"):
        a = torch.randint(-64, 64, (n, n), device=device, dtype=torch.int8)
        b = torch.randint(-64, 64, (n, n), device=device, dtype=torch.int8)
        return lambda: torch._int_mm(a, b)
    return None


def _timer(torch: Any, backend: str) -> Callable[[], float]:
    if backend == "cuda":
        def now() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()
        return now
    return time.perf_counter


def _best_time(fn: Callable[[], Any], now: Callable[[], float], plan: _Plan) -> float:
    """Best per-call seconds over ``plan.repeats`` batches of calls lasting ``plan.min_time_s``."""
    fn()  # warm-up (allocations, kernel selection)
    start = now()
    fn()
    single = max(now() - start, 1e-9)
    calls = max(1, math.ceil(plan.min_time_s / single))
    best = single
    for _ in range(plan.repeats):
        start = now()
        for _ in range(calls):
            fn()
        best = min(best, (now() - start) / calls)
    return best


def _measure_gemm(torch: Any, backend: str, device: str, dtype: str, plan: _Plan) -> float | None:
    """Best GEMM FLOP/s over growing sizes (stops at the plateau or a slow size)."""
    best_rate = 0.0
    now = _timer(torch, backend)
    for n in plan.gemm_sizes:
        try:
            fn = _gemm_call(torch, backend, dtype, n, device)
            if fn is None:
                return None
            seconds = _best_time(fn, now, plan)
        except (RuntimeError, TypeError, NotImplementedError):
            return None if best_rate == 0 else best_rate
        best_rate = max(best_rate, 2.0 * n**3 / seconds)
        if seconds > 0.5:  # larger sizes would only cost time: the rate has long plateaued
            break
    return best_rate or None


def _measure_bandwidth(torch: Any, backend: str, device: str, plan: _Plan) -> float:
    """Best of copy (2 x bytes) and triad (3 x bytes), bytes/s."""
    n = plan.array_bytes // 4
    a = torch.empty(n, dtype=torch.float32, device=device).fill_(1.0)
    b = torch.empty(n, dtype=torch.float32, device=device).fill_(2.0)
    c = torch.empty(n, dtype=torch.float32, device=device).fill_(3.0)
    now = _timer(torch, backend)
    short = _Plan(plan.gemm_sizes, plan.repeats, min_time_s=0.0, array_bytes=plan.array_bytes)
    copy_s = _best_time(lambda: b.copy_(a), now, short)
    triad_s = _best_time(lambda: torch.add(b, c, alpha=3.0, out=a), now, short)
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
) -> Calibration:
    """Measure GEMM FLOP/s for each of ``dtypes`` and the memory bandwidth (see module doc).

    ``threads`` sets the CPU thread count for the run (default: PyTorch's current one) and is part
    of the stored key. ``quick`` uses tiny sizes (for tests; the figures are then not peaks).
    A dtype the device cannot multiply in (tf32 and fp8 on a CPU) is left out of the result.
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
    plan = _plan(backend, quick, cpu.memory_total)
    steps = [f"gemm {d}" for d in wanted] + ["memory bandwidth"]
    previous_threads = torch.get_num_threads()
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32
    peaks: dict[str, float] = {}
    try:
        if run_threads is not None:
            torch.set_num_threads(run_threads)
        for i, dtype in enumerate(wanted):
            if progress:
                progress(steps[i], i, len(steps))
            if backend == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
            rate = _measure_gemm(torch, backend, torch_device, dtype, plan)
            if rate is not None and math.isfinite(rate):
                peaks[dtype] = rate
        if progress:
            progress(steps[-1], len(steps) - 1, len(steps))
        bandwidth = _measure_bandwidth(torch, backend, torch_device, plan)
    finally:
        torch.set_num_threads(previous_threads)
        torch.backends.cuda.matmul.allow_tf32 = previous_tf32
    if progress:
        progress("done", len(steps), len(steps))
    method = (
        f"torch.matmul square GEMMs on {backend}"
        + (f" with {run_threads} thread(s)" if run_threads else "")
        + f", n in {plan.gemm_sizes} (stop once one takes >0.5 s), best of {plan.repeats} repeats of "
        f">= {plan.min_time_s} s; FLOP/s = 2*n^3/t. Bandwidth: best of copy (2 x bytes) and "
        f"triad a=b+s*c (3 x bytes) over {plan.array_bytes / 2**20:.0f} MiB fp32 arrays"
        + (" (quick: tiny sizes, not peaks)" if quick else "")
    )
    return Calibration(
        device=name,
        threads=run_threads,
        peak_flops=MappingProxyType(peaks),
        memory_bandwidth=bandwidth,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        method=method,
        torch_version=str(torch.__version__),
        backend=backend,
    )
