"""The ways a GEMM can run here, each a *path* that calibration times.

A path turns ``(dtype, m, k, n)`` into a zero-argument function doing one ``m x k x n`` GEMM
(``2 * m * k * n`` FLOPs), or None when it cannot run that dtype. Engines do not run square
``a @ b``; they run linear layers, ``x @ W.T``, through whatever kernel library they bind. Which
layout and library is fastest differs by CPU: on an AVX2-only CPU a bf16 ``a @ b`` ran at
0.96 GFLOP/s while ``torch.nn.functional.linear`` ran at 9.9 (shared/notes/vllm-cpu.md), so a
peak taken from one path alone can be beaten by an engine using another.

==================  ==========================================================================
path                what it runs
==================  ==========================================================================
``matmul``          ``torch.matmul(a, b)``, both ``m x k`` / ``k x n`` row-major (square sizes)
``linear``          ``torch.nn.functional.linear(x, W)``, ``W`` of ``n x k``: the layout of
                    every linear layer (vLLM CPU's fallback)
``vllm-onednn``     vLLM CPU's oneDNN linear (``ops.create_onednn_mm`` on the prepacked weight,
                    then ``ops.onednn_mm``): what vLLM CPU runs for unquantized layers
``vllm-sgl``        vLLM CPU's AMX weight-packed linear (``ops.weight_packed_linear_cpu``), used
                    for small weights on AMX CPUs
``scaled-mm``       CUDA fp8: ``torch._scaled_mm`` (e4m3, column-major ``B``, bf16 out)
``int-mm``          int8: ``torch._int_mm``
==================  ==========================================================================

The vLLM paths exist where ``vllm._custom_ops`` imports (vllm-cpu installed) and the CPU
supports them; a path that fails to build for a dtype (oneDNN refuses bf16 below AVX-512) is
left out, as vLLM then falls back to ``linear``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GemmFn = Callable[[], Any]


@dataclass(frozen=True)
class GemmShape:
    """One weight matrix as a GEMM operand, ``x (M x k) @ W.T (k x n)``, named after the layer
    (``qkv_proj``) or ``square``; M is chosen by whoever times it."""

    name: str
    k: int
    n: int

CPU_PATHS: tuple[str, ...] = ("linear", "matmul", "vllm-onednn", "vllm-sgl", "int-mm")
CUDA_PATHS: tuple[str, ...] = ("linear", "matmul", "scaled-mm", "int-mm")

_FLOAT = ("fp32", "tf32", "bf16", "fp16")


def torch_dtype(torch: Any, dtype: str) -> Any:
    """The torch dtype of a float compute dtype (tf32 runs on fp32 tensors), else None."""
    return {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16,
            "fp16": torch.float16}.get(dtype)


def _vllm_ops() -> Any:
    """``vllm._custom_ops`` where vllm (vllm-cpu) imports, else None."""
    with contextlib.suppress(Exception):
        import vllm._custom_ops as ops  # type: ignore[import-not-found,import-untyped]

        return ops
    return None


def make_gemm(torch: Any, path: str, dtype: str, m: int, k: int, n: int,
              device: str = "cpu") -> GemmFn | None:
    """One ``m x k x n`` GEMM in ``dtype`` through ``path``, or None where it cannot run.

    Raises whatever the library raises when building the operands fails for another reason
    (out of memory): callers treat that as the path being unavailable at that size."""
    cuda = device.startswith("cuda")
    if dtype == "tf32" and not cuda:
        return None
    if path in ("linear", "matmul", "vllm-onednn", "vllm-sgl") and dtype not in _FLOAT:
        return None
    tdtype = torch_dtype(torch, dtype)
    if path == "matmul":
        a = torch.randn(m, k, device=device).to(tdtype)
        b = torch.randn(k, n, device=device).to(tdtype)
        out = torch.empty(m, n, device=device, dtype=tdtype)
        return lambda: torch.matmul(a, b, out=out)
    if path == "linear":
        x = torch.randn(m, k, device=device).to(tdtype)
        w = torch.randn(n, k, device=device).to(tdtype)
        return lambda: torch.nn.functional.linear(x, w)
    if path in ("vllm-onednn", "vllm-sgl"):
        return None if cuda else _vllm_gemm(torch, path, tdtype, m, k, n)
    if path == "scaled-mm":
        if not cuda or dtype != "fp8" or not hasattr(torch, "_scaled_mm"):
            return None
        a8 = torch.randn(m, k, device=device).to(torch.float8_e4m3fn)
        b8 = torch.randn(n, k, device=device).to(torch.float8_e4m3fn).t()  # column-major
        one = torch.ones((), device=device)
        return lambda: torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    if path == "int-mm":
        if dtype != "int8" or not hasattr(torch, "_int_mm"):
            return None
        a_i = torch.randint(-64, 64, (m, k), device=device, dtype=torch.int8)
        b_i = torch.randint(-64, 64, (k, n), device=device, dtype=torch.int8)
        return lambda: torch._int_mm(a_i, b_i)
    return None


def _vllm_gemm(torch: Any, path: str, tdtype: Any, m: int, k: int, n: int) -> GemmFn | None:
    ops = _vllm_ops()
    if ops is None:
        return None
    x = torch.randn(m, k).to(tdtype)
    w = torch.randn(n, k).to(tdtype)
    try:
        if path == "vllm-onednn":
            if not getattr(ops, "_supports_onednn", False):
                return None
            handler = ops.create_onednn_mm(w.t(), 32)
            fn: GemmFn = lambda: ops.onednn_mm(handler, x, None)  # noqa: E731
        else:
            # Gate on the effective ISA, not torch's AMX probe: under ONEDNN_MAX_CPU_ISA below
            # AMX the kernel aborts the process (a C++ terminate no Python code can catch).
            from mfubench.hardware.cpu_isa import local_isa

            amx = {torch.bfloat16: "amx_bf16", torch.float16: "amx_fp16"}.get(tdtype)
            if amx is None or not local_isa().has(amx):
                return None
            packed = torch.ops._C.convert_weight_packed(w)
            fn = lambda: ops.weight_packed_linear_cpu(x, packed, n, None)  # noqa: E731
        fn()  # oneDNN builds its primitive on first use: a refusal shows here
    except (RuntimeError, AttributeError, TypeError):
        return None
    return fn
