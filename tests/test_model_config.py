"""Reading configs: ids, aliases, paths, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfubench.cli import main
from mfubench.errors import ConfigError, UnknownModelError
from mfubench.model.hf_config import parse_config
from mfubench.model.registry import load_model

LLAMA = dict(model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, intermediate_size=96, vocab_size=100)


def test_bundled_id_alias_and_case() -> None:
    a = load_model("meta-llama/Llama-3.3-70B-Instruct")
    b = load_model("META-LLAMA/llama-3.3-70b-instruct")
    assert a.attention == b.attention and a.layers == b.layers


def test_head_dim_read_not_derived() -> None:
    qwen3 = load_model("Qwen/Qwen3-30B-A3B")
    assert qwen3.hidden_size // qwen3.attention.num_heads == 64
    assert qwen3.attention.head_dim == 128
    assert load_model("openai/gpt-oss-20b").attention.head_dim == 64
    assert load_model("google/gemma-2-9b").attention.head_dim == 256


def test_family_structure() -> None:
    ds = load_model("deepseek-ai/DeepSeek-V3")
    assert ds.attention.is_mla and ds.weights.name == "fp8-block"
    assert [type(lyr.ffn).__name__ for lyr in ds.layers[:4]] == ["DenseMLP"] * 3 + ["MoE"]
    oss = load_model("openai/gpt-oss-120b")
    assert [lyr.window for lyr in oss.layers[:2]] == [128, None]
    assert oss.weights.name == "mxfp4-experts"
    gemma3 = load_model("google/gemma-3-27b-it")
    assert sum(lyr.window is None for lyr in gemma3.layers) == 62 // 6


def test_local_folder_and_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    assert load_model(str(tmp_path)).num_layers == 2
    assert load_model(str(tmp_path / "config.json")).hidden_size == 64


def test_unknown_id_suggests_bundled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnknownModelError, match="Llama-3.1-8B"):
        load_model("meta-llama/Llama-3.1-8X")


@pytest.mark.parametrize(
    "bad, field",
    [
        ({**LLAMA, "model_type": "bert"}, "supported: llama"),
        ({k: v for k, v in LLAMA.items() if k != "hidden_size"}, "hidden_size"),
        ({**LLAMA, "num_attention_heads": "four"}, "num_attention_heads"),
        ({**LLAMA, "num_key_value_heads": 3}, "num_kv_heads"),
        ({**LLAMA, "quantization_config": {"quant_method": "bitsandbytes"}}, "bitsandbytes"),
    ],
)
def test_bad_configs_name_the_field(bad: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field) as err:
        parse_config(bad, "my/config.json")
    assert "my/config.json" in str(err.value)


def test_bad_json_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_model(str(path))


def test_flops_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["flops", "meta-llama/Llama-3.3-70B-Instruct", "--input-tokens", "2048", "--json",
                 "--convention", "palm", "--tp", "4"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("params_total", "params_active", "weight_bytes", "kv_bytes_per_token", "convention"):
        assert key in out
    assert out["convention"] == "palm"
    assert out["prefill"]["flops"] / 1e12 == pytest.approx(295.7, abs=0.05)
    # a decode step reads every weight but the embedding table (one row per token), plus KV
    embed = out["weight_bytes_breakdown"]["embed_tokens"]
    read = out["decode"]["read_bytes_breakdown"]
    assert read["embed_tokens"] == embed / 128256
    assert out["decode"]["read_bytes"] == pytest.approx(
        out["weight_bytes"] - embed + read["embed_tokens"] + read["kv_cache"]
    )
    assert out["request"]["flops"] == out["prefill"]["flops"]  # one output token: prefill only


def test_flops_cli_user_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["flops", "no/such-model-xyz", "-i", "10"])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("mfubench: error:") and err.count("\n") == 1


def test_float32_checkpoints_are_counted_as_served_in_bf16() -> None:
    gemma = load_model("google/gemma-2-9b")
    assert gemma.weights.dtype == "bf16"
    from mfubench.model.quant import weight_format

    assert gemma.with_weights(weight_format("fp32")).weights.bytes_per_param("linear") == 4
