"""The CPU ISA: caps from the environment (how an AVX2-only CPU is emulated on an AVX-512 one),
the best instruction per dtype with its FLOPs per cycle, and the dtype a CPU engine serves."""

from __future__ import annotations

import pytest

from mfubench.hardware.cpu_isa import AVX2_ENV, cpu_isa, effective_flags, serving_dtype

SAPPHIRE_RAPIDS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                   "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
CASCADE_LAKE = ("avx", "avx2", "fma", "avx512f", "avx512_vnni")
COOPER_LAKE = (*CASCADE_LAKE, "avx512_bf16")
ZEN2 = ("avx", "avx2", "fma")
GRAVITON3 = ("asimd", "asimdhp", "asimddp", "sve", "bf16", "i8mm")


def test_no_caps_keep_every_flag() -> None:
    isa = cpu_isa(SAPPHIRE_RAPIDS, {})
    assert isa.effective == SAPPHIRE_RAPIDS and isa.limits == ()


def test_the_avx2_emulation_removes_avx512_and_amx_and_names_each_cap() -> None:
    isa = cpu_isa(SAPPHIRE_RAPIDS, AVX2_ENV)
    assert isa.effective == ("avx", "avx2", "fma")
    assert isa.limits == ("ONEDNN_MAX_CPU_ISA=AVX2", "ATEN_CPU_CAPABILITY=avx2",
                          "MKL_ENABLE_INSTRUCTIONS=AVX2")
    assert not isa.native("bf16") and isa.native("fp32")
    # on a CPU that already is AVX2-only, the same caps remove nothing
    assert cpu_isa(ZEN2, AVX2_ENV).limits == ()


@pytest.mark.parametrize(("env", "kept"), [
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, {"avx512f", "avx512_bf16"}),
    ({"ONEDNN_MAX_CPU_ISA": "avx512_core"}, {"avx512f"}),
    ({"ATEN_CPU_CAPABILITY": "default"}, set()),
    ({"ONEDNN_MAX_CPU_ISA": "NOT_A_LEVEL"}, set(SAPPHIRE_RAPIDS)),  # ignored, as oneDNN does
])
def test_each_cap_level(env: dict[str, str], kept: set[str]) -> None:
    flags, _ = effective_flags(SAPPHIRE_RAPIDS, env)
    assert kept <= set(flags)
    assert "amx_bf16" not in flags or env.get("ONEDNN_MAX_CPU_ISA") == "NOT_A_LEVEL"


@pytest.mark.parametrize(("flags", "dtype", "name", "per_cycle", "native"), [
    (SAPPHIRE_RAPIDS, "fp32", "AVX-512 FMA", 64, True),
    (SAPPHIRE_RAPIDS, "bf16", "AMX-BF16", 1024, True),
    (SAPPHIRE_RAPIDS, "int8", "AMX-INT8", 2048, True),
    (SAPPHIRE_RAPIDS, "fp16", "AVX512_FP16", 128, True),
    (COOPER_LAKE, "bf16", "AVX512_BF16", 128, True),
    (CASCADE_LAKE, "int8", "AVX512_VNNI", 256, True),
    (CASCADE_LAKE, "bf16", "emulated: converted to fp32, AVX-512 FMA", 64, False),
    (ZEN2, "fp32", "AVX2 FMA", 32, True),
    (ZEN2, "bf16", "emulated: converted to fp32, AVX2 FMA", 32, False),
    (GRAVITON3, "bf16", "BFMMLA", 128, True),
    (GRAVITON3, "int8", "SMMLA (i8mm)", 256, True),
    (("asimd",), "bf16", "emulated: converted to fp32, NEON FMLA", 32, False),
])
def test_instruction_table(flags: tuple[str, ...], dtype: str, name: str, per_cycle: int,
                           native: bool) -> None:
    ins = cpu_isa(flags, {}).instruction(dtype)
    assert ins is not None and (ins.name, ins.flop_per_cycle, ins.native) == (name, per_cycle, native)
    assert cpu_isa(flags, {}).instruction("fp8") is None  # no CPU has fp8 matmul instructions


def test_an_emulated_dtype_is_never_faster_than_fp32() -> None:
    for flags in (SAPPHIRE_RAPIDS, COOPER_LAKE, CASCADE_LAKE, ZEN2, GRAVITON3, ("asimd",)):
        isa = cpu_isa(flags, {})
        fp32 = isa.instruction("fp32")
        for dtype in ("bf16", "fp16"):
            ins = isa.instruction(dtype)
            assert ins is not None and fp32 is not None
            assert ins.native or ins.flop_per_cycle == fp32.flop_per_cycle


def test_serving_dtype_is_bf16_only_where_the_cpu_multiplies_it() -> None:
    assert serving_dtype(cpu_isa(SAPPHIRE_RAPIDS, {}))[0] == "bf16"
    assert serving_dtype(cpu_isa(COOPER_LAKE, {}))[0] == "bf16"
    assert serving_dtype(cpu_isa(GRAVITON3, {}))[0] == "bf16"
    dtype, why = serving_dtype(cpu_isa(ZEN2, {}))
    assert dtype == "fp32" and "emulated" in why
    dtype, why = serving_dtype(cpu_isa(SAPPHIRE_RAPIDS, AVX2_ENV))
    assert dtype == "fp32" and "ONEDNN_MAX_CPU_ISA=AVX2" in why
    assert serving_dtype(cpu_isa(CASCADE_LAKE, {}))[0] == "fp32"  # AVX-512 without BF16
