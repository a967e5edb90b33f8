"""The bundled Hugging Face configs: every index entry names a file that exists and parses,
ids and aliases are unique, and every entry says where its config and its published
parameter counts come from."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

CONFIG_DIR = Path(str(files("mfubench.model") / "configs"))
INDEX: list[dict[str, Any]] = json.loads((CONFIG_DIR / "index.json").read_text())

# The ids issue 2 requires to resolve offline.
REQUIRED_IDS = {
    "meta-llama/Llama-3.3-70B-Instruct",
    "meta-llama/Llama-3.1-8B",
    "meta-llama/Llama-3.1-70B",
    "meta-llama/Llama-3.1-405B",
    "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen2.5-72B-Instruct",
    "Qwen/Qwen3-8B",
    "Qwen/Qwen3-30B-A3B",
    "Qwen/Qwen3-235B-A22B",
    "mistralai/Mistral-7B-v0.1",
    "mistralai/Mixtral-8x7B-v0.1",
    "google/gemma-2-9b",
    "google/gemma-2-27b",
    "google/gemma-3-27b-it",
    "deepseek-ai/DeepSeek-V3",
    "openai/gpt-oss-20b",
    "openai/gpt-oss-120b",
}

ENTRY_KEYS = {
    "id",
    "file",
    "aliases",
    "config_source",
    "published_params_total",
    "published_params_active",
    "params_source",
    "notes",
    "published_active_excludes_embedding",
    "published_params_vision",
}


def _config(entry: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CONFIG_DIR / entry["file"]).read_text())
    return loaded


def test_index_covers_the_required_ids() -> None:
    assert {e["id"] for e in INDEX} >= REQUIRED_IDS


@pytest.mark.parametrize("entry", INDEX, ids=lambda e: e["id"])
def test_entry_has_all_fields_and_a_source(entry: dict[str, Any]) -> None:
    assert set(entry) == ENTRY_KEYS
    assert entry["config_source"].strip()
    assert entry["file"] == entry["id"].replace("/", "--") + ".json"
    if entry["config_source"].startswith("RECONSTRUCTED"):
        assert "reconstructed" in entry["notes"]


@pytest.mark.parametrize("entry", INDEX, ids=lambda e: e["id"])
def test_file_exists_and_parses_as_a_config(entry: dict[str, Any]) -> None:
    config = _config(entry)
    assert isinstance(config["model_type"], str)
    assert isinstance(config["architectures"], list)


def test_every_json_file_is_indexed() -> None:
    on_disk = {p.name for p in CONFIG_DIR.glob("*.json")} - {"index.json"}
    assert on_disk == {e["file"] for e in INDEX}


def test_ids_and_aliases_are_unique() -> None:
    names = [e["id"] for e in INDEX] + [a for e in INDEX for a in e["aliases"]]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("entry", INDEX, ids=lambda e: e["id"])
def test_published_counts_are_sourced_and_consistent(entry: dict[str, Any]) -> None:
    total, active = entry["published_params_total"], entry["published_params_active"]
    if total is not None or active is not None:
        assert entry["params_source"].strip()
    if active is not None:
        assert isinstance(total, int) and isinstance(active, int)
        assert 0 < active < total


def test_head_dim_is_explicit_where_it_differs_from_hidden_over_heads() -> None:
    by_id = {e["id"]: _config(e) for e in INDEX}
    for model_id in ("Qwen/Qwen3-30B-A3B", "google/gemma-2-9b", "openai/gpt-oss-20b"):
        c = by_id[model_id]
        assert c["head_dim"] != c["hidden_size"] // c["num_attention_heads"]
    text = by_id["google/gemma-3-27b-it"]["text_config"]
    assert text["head_dim"] != text["hidden_size"] // text["num_attention_heads"]


def test_gpt_oss_layer_types_alternate_and_cover_every_layer() -> None:
    for model_id in ("openai/gpt-oss-20b", "openai/gpt-oss-120b"):
        c = _config(next(e for e in INDEX if e["id"] == model_id))
        assert len(c["layer_types"]) == c["num_hidden_layers"]
        assert c["layer_types"][0::2] == ["sliding_attention"] * (c["num_hidden_layers"] // 2)
        assert c["quantization_config"]["quant_method"] == "mxfp4"
        assert "lm_head" in c["quantization_config"]["modules_to_not_convert"]


def test_deepseek_v3_keeps_its_fp8_block_quantization() -> None:
    c = _config(next(e for e in INDEX if e["id"] == "deepseek-ai/DeepSeek-V3"))
    assert c["quantization_config"]["quant_method"] == "fp8"
    assert c["quantization_config"]["weight_block_size"] == [128, 128]
    assert (c["first_k_dense_replace"], c["n_routed_experts"], c["n_shared_experts"]) == (3, 256, 1)
