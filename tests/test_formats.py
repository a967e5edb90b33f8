"""Block-scaled formats: exact bytes against tensors packed here, configs as producers write
them, and the peak each format runs at on devices with and without its math."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from mfubench.counting import memory
from mfubench.errors import ConfigError, MfubenchError
from mfubench.model.formats import FORMATS, block_format, matmul_dtype
from mfubench.model.quant import from_hf_quantization, weight_format
from mfubench.model.registry import load_model

ct = pytest.importorskip("compressed_tensors")
from compressed_tensors.compressors import ModelCompressor  # noqa: E402
from compressed_tensors.quantization import (  # noqa: E402
    QuantizationConfig,
    apply_quantization_config,
    preset_name_to_scheme,
)

#: compressed-tensors 0.17.0 presets (its own scheme definitions) -> the format we read
PRESETS = {
    "NVFP4": "nvfp4", "NVFP4A16": "nvfp4-w4a16", "MXFP4A16": "mxfp4", "MXFP8": "mxfp8",
    "FP8_BLOCK": "fp8-block-bf16", "W4AFP8": "w4a8-int8", "FP8": "fp8", "FP8_DYNAMIC": "fp8-channel-bf16",
}


def _compress(preset: str, rows: int, cols: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A random bf16 Linear of ``rows x cols`` quantized and compressed by compressed-tensors
    (the producer of these checkpoints): its state dict and its quantization_config."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(cols, rows, bias=False)).to(torch.bfloat16)
    cfg = QuantizationConfig(config_groups={"group_0": preset_name_to_scheme(preset, ["Linear"])})
    apply_quantization_config(model, cfg)
    with torch.no_grad():
        for name, p in model[0].named_parameters():
            if "scale" in name and p.dtype in (torch.float32, torch.bfloat16, torch.float8_e4m3fn):
                p.fill_(0.01)
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format=None)
    assert compressor is not None and compressor.quantization_config is not None
    compressor.compress_model(model)
    qc = compressor.quantization_config.model_dump(exclude_none=True)
    qc["quant_method"] = "compressed-tensors"
    qc["format"] = str(getattr(qc["format"], "value", qc["format"]))
    return model.state_dict(), qc


@pytest.mark.parametrize("preset", list(PRESETS))
def test_compressed_tensors_packed_bytes_equal_ours(preset: str) -> None:
    """The config compressed-tensors writes reads as the expected format, and the tensors it
    packs take exactly the format's bytes (its per-tensor scalars, where any, counted apart:
    they are in the model dtype here, fp32 in ModelOpt's)."""
    rows, cols = 256, 384
    sd, qc = _compress(preset, rows, cols)
    w = from_hf_quantization(qc, "bf16", "test")
    name = w.format_name or w.scheme
    assert name == PRESETS[preset]
    fmt = FORMATS[PRESETS[preset]]
    packed = sum(t.numel() * t.element_size() for t in sd.values() if t.numel() > 1
                 and t.dtype != torch.int64)  # weight_shape: 2 int64 of metadata per tensor
    scalars = [t for t in sd.values() if t.numel() == 1]
    assert packed == fmt.tensor_bytes(rows, cols) - fmt.tensor_scalars
    if preset == "NVFP4":  # NVFP4's two global scales are fp32 in every producer
        assert sum(t.numel() * t.element_size() for t in scalars) == fmt.tensor_scalars == 8
    assert packed == pytest.approx(rows * cols * fmt.bytes_per_param, rel=0.01 if fmt.grid == "channel" else 1e-12)


def test_w4a16_int4_symmetric_is_scales_only() -> None:
    sd, qc = _compress("W4A16", 256, 384)
    w = from_hf_quantization(qc, "bf16", "test")
    assert w.scheme == "int4" and w.group_size == 128 and not w.zero_points
    packed = sum(t.numel() * t.element_size() for k, t in sd.items() if "shape" not in k)
    assert packed == 256 * 384 * w.quantized_bytes() == 256 * 384 * (0.5 + 2 / 128)


def test_deepseek_fp8_block_and_modelopt_layouts_packed_with_torch() -> None:
    """DeepSeek-V3's FP8 (float8_e4m3fn weight, float32 ``weight_scale_inv`` per 128x128 tile,
    ceil at the edges) and ModelOpt's NVFP4 / FP8 per-tensor / per-channel layouts (vLLM
    0.32.0 modelopt.py), built as torch tensors of the exact dtypes and shapes."""
    def size(*ts: torch.Tensor) -> int:
        return sum(t.numel() * t.element_size() for t in ts)

    n, k = 300, 200  # not multiples of 128: the edge tiles count whole
    w8 = torch.randn(n, k).to(torch.float8_e4m3fn)
    tiles = torch.ones(math.ceil(n / 128), math.ceil(k / 128), dtype=torch.float32)
    assert size(w8, tiles) == block_format("fp8-block").tensor_bytes(n, k) == n * k + 3 * 2 * 4
    n, k = 512, 1024
    fp4 = torch.zeros(n, k // 2, dtype=torch.uint8).view(torch.float4_e2m1fn_x2)  # 2 E2M1 a byte
    e4m3 = torch.ones(n, k // 16).to(torch.float8_e4m3fn)
    two = (torch.ones(1, dtype=torch.float32), torch.ones(1, dtype=torch.float32))
    assert size(fp4, e4m3, *two) == block_format("nvfp4").tensor_bytes(n, k)
    e8m0 = torch.ones(n, k // 32).to(torch.float8_e8m0fnu)
    assert size(fp4, e8m0) == block_format("mxfp4").tensor_bytes(n, k)
    assert size(torch.zeros(n, k, dtype=torch.float8_e4m3fn), e8m0) == block_format("mxfp8").tensor_bytes(n, k)
    per_channel = torch.ones(n, 1, dtype=torch.float32)
    assert size(torch.zeros(n, k, dtype=torch.float8_e4m3fn), per_channel) == block_format("fp8-channel").tensor_bytes(n, k)
    assert size(torch.zeros(n, k, dtype=torch.float8_e4m3fn), *two) == block_format("fp8").tensor_bytes(n, k)
    assert block_format("nvfp4").bytes_per_param == 0.5625 and block_format("mxfp4").bytes_per_param == 0.53125
    assert block_format("mxfp8").bytes_per_param == 1.03125


#: ModelOpt configs in the two shapes vLLM 0.32.0 reads (modelopt.py ``from_config``): the
#: legacy hf_quant_config.json, shaped as nvidia/DeepSeek-R1-FP4 ships it (NVFP4, FP8 KV,
#: group 16, the LM head and the attention left out), and config.json's quantization_config.
MODELOPT_LEGACY = {"producer": {"name": "modelopt", "version": "0.23.0"},
                   "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8",
                                    "group_size": 16,
                                    "exclude_modules": ["lm_head", "model.layers.0.self_attn*"]}}
MODELOPT_CONFIG = {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16,
                   "kv_cache_scheme": {"num_bits": 8, "type": "float"}, "ignore": ["lm_head"]}


def test_modelopt_configs_read_as_vllm_reads_them() -> None:
    from vllm.model_executor.layers.quantization.modelopt import ModelOptNvFp4Config

    legacy = from_hf_quantization(MODELOPT_LEGACY, "bf16", "hf_quant_config.json")
    assert legacy.format_name == "nvfp4" and legacy.experts_only
    assert legacy.activation_dtype == "fp4"
    full = from_hf_quantization(MODELOPT_CONFIG, "bf16", "config.json")
    assert full.format_name == "nvfp4" and not full.experts_only
    for cfg in (MODELOPT_LEGACY, MODELOPT_CONFIG):  # vLLM takes both as NVFP4 of group 16
        assert ModelOptNvFp4Config.from_config(cfg).group_size == 16  # type: ignore[attr-defined]
    for algo, name in (("FP8_PB_WO", "fp8-block"), ("MXFP8", "mxfp8"), ("W4A16_NVFP4", "nvfp4-w4a16"),
                       ("FP8_PER_CHANNEL_PER_TOKEN", "fp8-channel")):
        assert from_hf_quantization({"quant_method": "modelopt", "quant_algo": algo}, "bf16", "c").format_name == name
    with pytest.raises(ConfigError, match="MIXED_PRECISION is per layer"):
        from_hf_quantization({"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION"}, "bf16", "c")
    with pytest.raises(ConfigError, match="group_size 32"):
        from_hf_quantization({"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 32}, "bf16", "c")


def test_model_weight_bytes_in_each_format() -> None:
    spec = load_model("meta-llama/Llama-3.1-8B")
    bf16 = memory.weight_bytes(spec, 1)
    for name in ("nvfp4", "mxfp8", "w4a8", "fp8-block"):
        q = memory.weight_bytes(spec.with_weights(weight_format(name)), 1)
        per = FORMATS[name].bytes_per_param
        assert q["mlp"] == bf16["mlp"] / 2 * per and q["q_proj"] == bf16["q_proj"] / 2 * per
        assert q["embed_tokens"] == bf16["embed_tokens"] and q["lm_head"] == bf16["lm_head"]


@pytest.mark.parametrize(("fmt", "device", "dtype", "note"), [
    ("nvfp4", "B200", "fp4", False), ("nvfp4", "H100-SXM", "bf16", True),
    ("mxfp8", "B200", "fp8", False), ("mxfp8", "H100-SXM", "bf16", True),
    ("nvfp4-w4a16", "B200", "bf16", False), ("w4a8", "H100-SXM", "fp8", False),
    ("fp8-block", "H100-SXM", "fp8", False), ("fp8-block", "A100-SXM-80GB", "bf16", True),
    ("mxfp4", "H100-SXM", "bf16", False),  # gpt-oss: W4A16 everywhere
])
def test_each_format_runs_at_the_peak_its_device_has(fmt: str, device: str, dtype: str, note: bool) -> None:
    from mfubench.analysis.phases import make_setup
    from mfubench.hardware.spec import parse_hardware

    hw = parse_hardware(device, attach_calibration=False)
    w = weight_format(fmt)
    got, why = matmul_dtype(w, hw.accelerator.peak_flops)
    assert got == dtype and (why is not None) == note
    spec = load_model("meta-llama/Llama-3.1-8B").with_weights(w)
    assert make_setup(spec, hw).dtype == dtype


def test_old_names_keep_their_rule() -> None:
    for name, dtype in (("fp8", "fp8"), ("int4", "bf16"), ("int8", "int8"), ("bf16", "bf16")):
        assert matmul_dtype(weight_format(name), {})[0] == dtype


def test_fp4_kv_cache_bytes() -> None:
    spec = load_model("meta-llama/Llama-3.1-8B")
    bf16 = memory.kv_bytes_per_token(spec, "bf16")
    assert memory.kv_bytes_per_token(spec, "fp8") == bf16 / 2
    assert memory.kv_bytes_per_token(spec, "nvfp4") == bf16 / 2 * 0.5625


def test_unknown_format_is_named() -> None:
    with pytest.raises(MfubenchError, match="unknown weight format 'nvfp5'"):
        block_format("nvfp5")
    with pytest.raises(ConfigError, match="mix schemes"):
        from_hf_quantization({"quant_method": "compressed-tensors", "config_groups": {
            "a": {"weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16}},
            "b": {"weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}}}, "bf16", "c")
