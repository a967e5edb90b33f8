"""The dtype rule: which peak a matmul of given weight and activation dtypes uses."""

from __future__ import annotations

import pytest

from mfubench.errors import MfubenchError
from mfubench.hardware.dtypes import compute_dtype, normalize_compute_dtype, normalize_dtype


@pytest.mark.parametrize(
    ("alias", "dtype"),
    [
        ("bfloat16", "bf16"), ("torch.bfloat16", "bf16"), ("BF16", "bf16"),
        ("float16", "fp16"), ("half", "fp16"), ("float32", "fp32"), ("float", "fp32"),
        ("float8_e4m3fn", "fp8"), ("e5m2", "fp8"), ("nvfp4", "fp4"), ("mxfp4", "fp4"),
        ("int8", "int8"), ("nf4", "int4"), ("tf32", "tf32"),
    ],
)
def test_normalize_dtype_aliases(alias: str, dtype: str) -> None:
    assert normalize_dtype(alias) == dtype


def test_unknown_dtype_is_a_user_error() -> None:
    with pytest.raises(MfubenchError, match="unknown dtype"):
        normalize_dtype("fp12")
    with pytest.raises(MfubenchError, match="not a matmul dtype"):
        normalize_compute_dtype("int4")


@pytest.mark.parametrize(
    ("weight", "activation", "expected"),
    [
        ("bf16", "bf16", "bf16"),
        ("fp16", "fp16", "fp16"),
        ("fp8", "fp8", "fp8"),          # W8A8 fp8 -> the fp8 peak
        ("int8", "int8", "int8"),       # W8A8 int8
        ("fp4", "fp4", "fp4"),          # W4A4 nvfp4
        ("int4", "bf16", "bf16"),       # W4A16 (AWQ/GPTQ): weight-only, bf16 peak
        ("int4", "fp16", "fp16"),
        ("int8", "bf16", "bf16"),       # W8A16
        ("fp8", "bf16", "bf16"),        # fp8 weight-only (Marlin on Ampere)
        ("mxfp4", "bf16", "bf16"),      # gpt-oss experts on a GPU without fp4 units
        ("int4", "int8", "int8"),       # W4A8: weights widened to int8
        ("fp4", "fp8", "fp8"),          # fp4 weights x fp8 activations
        ("fp8", "fp4", "fp8"),
        ("bf16", "fp8", "bf16"),        # fp8 activations cannot make bf16 weights fp8
        ("fp32", "bf16", "bf16"),       # autocast
        ("bfloat16", "float8_e4m3fn", "bf16"),
        ("float8_e4m3fn", "float8_e4m3fn", "fp8"),
    ],
)
def test_compute_dtype(weight: str, activation: str, expected: str) -> None:
    assert compute_dtype(weight, activation) == expected


def test_compute_dtype_defaults_to_bf16_activations() -> None:
    assert compute_dtype("int4") == "bf16"
    assert compute_dtype("fp8") == "bf16"


def test_int4_is_not_an_activation_dtype() -> None:
    with pytest.raises(MfubenchError):
        compute_dtype("int4", "int4")
