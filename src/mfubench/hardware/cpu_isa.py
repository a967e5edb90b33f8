"""What a CPU core can multiply in, and how many FLOPs per cycle: the ISA behind a CPU ceiling.

The CPU's feature flags (``/proc/cpuinfo``) say which instructions exist; the environment can
forbid some to the software that runs here (``ONEDNN_MAX_CPU_ISA`` caps oneDNN, which vLLM CPU
and PyTorch's bf16 matmuls use; ``ATEN_CPU_CAPABILITY`` caps PyTorch's own kernels). The
*effective* ISA is the flags minus what those caps forbid: it is how an AVX2-only machine is
emulated on an AVX-512 one, and what the ceiling and the served dtype are decided on.

FLOPs per cycle per core, 2 per multiply-add, for the best instruction of each dtype, assuming
the widest implementation of it (upper bounds: a part with fewer or narrower units is slower):

========  ==============================================================  ============
dtype     instruction (throughput per core)                               FLOP/cycle
========  ==============================================================  ============
fp32      AVX-512 FMA: 2 ports x 16 lanes x 2                             64
fp32      AVX2 FMA: 2 ports x 8 lanes x 2                                 32
fp32      AVX (no FMA): 1 add + 1 mul port x 8 lanes                      16
fp32      SSE: 1 add + 1 mul port x 4 lanes                               8
bf16      AMX-BF16 TDPBF16PS: 16x16x32 multiply-adds per 16 cycles        1024
bf16      AVX512_BF16 VDPBF16PS: 2 ports x 32 pairs x 2                   128
fp16      AMX-FP16 TDPFP16PS                                              1024
fp16      AVX512_FP16 VFMADDPH: 2 ports x 32 lanes x 2                    128
int8      AMX-INT8 TDPBUSD: 16x16x64 multiply-adds per 16 cycles          2048
int8      AVX512_VNNI VPDPBUSD: 2 ports x 64 x 2                          256
int8      AVX-VNNI (256-bit) VPDPBUSD: 2 ports x 32 x 2                   128
int8      AVX2 VPMADDUBSW: 2 ports x 32 x 2                               128
fp32      Arm NEON FMLA: 4 pipes x 4 lanes x 2                            32
bf16      Arm BFMMLA (bf16): 4 pipes x 16 multiply-adds x 2               128
fp16      Arm NEON FMLA .8h (asimdhp): 4 pipes x 8 lanes x 2              64
int8      Arm SMMLA (i8mm): 4 pipes x 32 x 2; SDOT (asimddp): 4 x 16 x 2  256; 128
========  ==============================================================  ============

Sources: Intel 64 and IA-32 Architectures Optimization Reference Manual (AMX: 1024 bf16 and
2048 int8 operations per cycle per core; two 512-bit FMA units on Xeon Scalable Gold/Platinum);
Arm Neoverse V1/V2 and Apple M-series have four 128-bit FP/SIMD pipes (Neoverse N1/N2 two).
Parts with one 512-bit FMA unit (Xeon Silver/Bronze) or 256-bit data paths (AMD Zen 4 runs
AVX-512 double-pumped) reach half the AVX-512 figure.

A dtype without a native instruction on the effective ISA is **emulated**: converted to fp32
and multiplied there, so its ceiling is the fp32 one (bf16 on an AVX2-only CPU).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: ``ONEDNN_MAX_CPU_ISA`` values (oneDNN's ``dnnl_cpu_isa_t`` names, lower case) and the x86
#: feature flags each level still allows; flags not listed are allowed by every level.
_ONEDNN_LEVELS: tuple[tuple[str, frozenset[str]], ...] = (
    ("sse41", frozenset()),
    ("avx", frozenset({"avx"})),
    ("avx2", frozenset({"avx", "avx2", "fma"})),
    ("avx2_vnni", frozenset({"avx", "avx2", "fma", "avx_vnni"})),
    ("avx2_vnni_2", frozenset({"avx", "avx2", "fma", "avx_vnni"})),
    ("avx512_core", frozenset({"avx", "avx2", "fma", "avx_vnni", "avx512f"})),
    ("avx512_core_vnni", frozenset({"avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni"})),
    ("avx512_core_bf16", frozenset({"avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni",
                                    "avx512_bf16"})),
    ("avx512_core_fp16", frozenset({"avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni",
                                    "avx512_bf16", "avx512_fp16"})),
    ("avx512_core_amx", frozenset({"avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni",
                                   "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                                   "amx_int8"})),
)
#: x86 flags a cap can remove (everything a level above SSE4.1 adds).
_CAPPABLE: frozenset[str] = frozenset().union(*(allowed for _, allowed in _ONEDNN_LEVELS),
                                              {"amx_fp16"})
#: ``ATEN_CPU_CAPABILITY`` values and the flags they allow (PyTorch's vectorised kernels).
_ATEN_LEVELS: dict[str, frozenset[str]] = {
    "default": frozenset(),
    "avx2": frozenset({"avx", "avx2", "fma", "avx_vnni"}),
    "avx512": _CAPPABLE,
    "zvector": _CAPPABLE,
    "vsx": _CAPPABLE,
    "sve256": _CAPPABLE,
}

#: ``MKL_ENABLE_INSTRUCTIONS`` values (MKL's fp32 GEMMs, which ``torch.matmul`` uses on x86).
_MKL_LEVELS: dict[str, frozenset[str]] = {
    "sse4_2": frozenset(),
    "avx": frozenset({"avx"}),
    "avx2": frozenset({"avx", "avx2", "fma"}),
    **{name: _CAPPABLE for name in ("avx512", "avx512_e1", "avx512_e2", "avx512_e3", "avx512_e4",
                                    "avx512_e5", "avx10")},
}

#: The environment variables that cap the ISA, each with its levels. Emulating an AVX2-only CPU
#: on an AVX-512 one takes all three families set to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2
#: ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2``).
ISA_CAPS: dict[str, dict[str, frozenset[str]]] = {
    "ONEDNN_MAX_CPU_ISA": dict(_ONEDNN_LEVELS),
    "DNNL_MAX_CPU_ISA": dict(_ONEDNN_LEVELS),
    "ATEN_CPU_CAPABILITY": _ATEN_LEVELS,
    "MKL_ENABLE_INSTRUCTIONS": _MKL_LEVELS,
}

#: The environment that emulates an AVX2-only x86 CPU (AMD EPYC before Zen 4) here.
AVX2_ENV: dict[str, str] = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                            "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


@dataclass(frozen=True)
class Instruction:
    """The best instruction of a dtype on an ISA: its name, FLOPs per cycle per core, and
    whether the dtype is native (False: converted to fp32 and multiplied there)."""

    name: str
    flop_per_cycle: int
    native: bool = True


@dataclass(frozen=True)
class CpuIsa:
    """A CPU's instruction set as the software here may use it.

    Attributes:
        arch: ``x86`` or ``arm``.
        flags: the CPU's own flags (``detect.INTERESTING_FLAGS`` it has).
        effective: ``flags`` minus what the environment's caps forbid.
        limits: the caps that removed something, as ``VAR=value`` texts.
    """

    arch: str
    flags: tuple[str, ...]
    effective: tuple[str, ...]
    limits: tuple[str, ...] = ()

    def has(self, flag: str) -> bool:
        return flag in self.effective

    def instruction(self, dtype: str) -> Instruction | None:
        """The best instruction for ``dtype`` (fp32, bf16, fp16, int8); None for others."""
        return (_arm_instruction if self.arch == "arm" else _x86_instruction)(self, dtype)

    def native(self, dtype: str) -> bool:
        """True when the effective ISA multiplies ``dtype`` without converting it to fp32."""
        found = self.instruction(dtype)
        return found is not None and found.native


def _fp32_x86(isa: CpuIsa) -> Instruction:
    if isa.has("avx512f"):
        return Instruction("AVX-512 FMA", 64)
    if isa.has("avx2") and isa.has("fma"):
        return Instruction("AVX2 FMA", 32)
    if isa.has("avx"):
        return Instruction("AVX", 16)
    return Instruction("SSE", 8)


def _x86_instruction(isa: CpuIsa, dtype: str) -> Instruction | None:
    fp32 = _fp32_x86(isa)
    emulated = Instruction(f"emulated: converted to fp32, {fp32.name}", fp32.flop_per_cycle, False)
    if dtype == "fp32":
        return fp32
    if dtype == "bf16":
        if isa.has("amx_bf16"):
            return Instruction("AMX-BF16", 1024)
        return Instruction("AVX512_BF16", 128) if isa.has("avx512_bf16") else emulated
    if dtype == "fp16":
        if isa.has("amx_fp16"):
            return Instruction("AMX-FP16", 1024)
        return Instruction("AVX512_FP16", 128) if isa.has("avx512_fp16") else emulated
    if dtype == "int8":
        for flag, name, per_cycle in (("amx_int8", "AMX-INT8", 2048),
                                      ("avx512_vnni", "AVX512_VNNI", 256),
                                      ("avx_vnni", "AVX-VNNI", 128), ("avx2", "AVX2 VPMADDUBSW", 128)):
            if isa.has(flag):
                return Instruction(name, per_cycle)
        return Instruction("SSE", 32)
    return None


def _arm_instruction(isa: CpuIsa, dtype: str) -> Instruction | None:
    fp32 = Instruction("NEON FMLA", 32)
    emulated = Instruction("emulated: converted to fp32, NEON FMLA", 32, False)
    if dtype == "fp32":
        return fp32
    if dtype == "bf16":
        return Instruction("BFMMLA", 128) if isa.has("bf16") else emulated
    if dtype == "fp16":
        return Instruction("NEON FMLA .8h", 64) if isa.has("asimdhp") else emulated
    if dtype == "int8":
        if isa.has("i8mm"):
            return Instruction("SMMLA (i8mm)", 256)
        return Instruction("SDOT", 128) if isa.has("asimddp") else Instruction("NEON MLA", 64)
    return None


def effective_flags(flags: tuple[str, ...], env: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(flags the environment's caps allow, the caps that remove something) for x86 flags.

    Each variable of :data:`ISA_CAPS` that is set to one of its levels removes the flags above
    that level; unknown values are ignored (the libraries ignore them too)."""
    allowed = set(flags)
    limits: list[str] = []
    for var, levels in ISA_CAPS.items():
        level = levels.get(env.get(var, "").strip().lower())
        if level is None:
            continue
        if any(f in _CAPPABLE and f not in level for f in flags):
            limits.append(f"{var}={env[var]}")
        allowed = {f for f in allowed if f not in _CAPPABLE or f in level}
    return tuple(f for f in flags if f in allowed), tuple(limits)


def cpu_isa(flags: tuple[str, ...], env: Mapping[str, str] | None = None) -> CpuIsa:
    """The :class:`CpuIsa` of a CPU with these flags under ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    arch = "arm" if any(f in flags for f in ("asimd", "sve")) else "x86"
    if arch == "arm":
        return CpuIsa(arch, flags, flags)
    effective, limits = effective_flags(flags, env)
    return CpuIsa(arch, flags, effective, limits)


def local_isa() -> CpuIsa:
    """This machine's CPU ISA under this process's environment."""
    from mfubench.hardware.detect import detect_cpu

    return cpu_isa(detect_cpu().flags)


def serving_dtype(isa: CpuIsa) -> tuple[str, str]:
    """The dtype a CPU engine (vLLM CPU) runs natively here, and why: bf16 where the effective
    ISA multiplies bf16 (AVX512_BF16 or AMX on x86, BF16 on Arm), else fp32."""
    bf16 = isa.instruction("bf16")
    capped = f" (ISA capped by {', '.join(isa.limits)})" if isa.limits else ""
    if bf16 is not None and bf16.native:
        return "bf16", f"this CPU multiplies bf16 natively ({bf16.name}){capped}"
    fp32 = isa.instruction("fp32")
    fp32_name = fp32.name if fp32 else "fp32"
    return "fp32", (f"this CPU has no bf16 instructions{capped}: bf16 would be emulated "
                    f"through fp32, so fp32 ({fp32_name}) is served")
