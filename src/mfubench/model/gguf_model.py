"""A GGUF file as a model: its metadata as a Hugging Face config, its tensors as the weights.

``load_gguf("model.gguf")`` reads the header only (:mod:`mfubench.model.gguf_file`), builds from
the metadata the same HF-style config dict :func:`mfubench.model.hf_config.parse_config` takes,
so a GGUF model is counted by the one adapter every other model goes through, and gives the
spec :class:`~mfubench.model.gguf_weights.GGUFWeights` whose bytes are the file's.

Keys read (llama.cpp ``LLM_KV_*`` names, ``<arch>`` = ``general.architecture``; GGUF spec,
ggml-org/ggml ``docs/gguf.md`` at d99724f2b141, "LLM" keys):

=========================================  ==========================================
``<arch>.block_count``                     ``num_hidden_layers``
``<arch>.embedding_length``                ``hidden_size``
``<arch>.feed_forward_length``             ``intermediate_size``
``<arch>.attention.head_count`` / ``_kv``  ``num_attention_heads`` / ``num_key_value_heads``
``<arch>.attention.key_length``            ``head_dim`` (``value_length`` must equal it)
``<arch>.context_length``                  ``max_position_embeddings``
``<arch>.rope.freq_base``                  ``rope_theta``
``<arch>.attention.sliding_window``        ``sliding_window`` (llama)
``<arch>.expert_count`` / ``_used_count``  ``num_experts`` / ``num_experts_per_tok``
``<arch>.expert_feed_forward_length``      ``moe_intermediate_size``
``<arch>.expert_shared_feed_forward_length``  ``shared_expert_intermediate_size``
``token_embd.weight`` rows (else ``tokenizer.ggml.tokens``)  ``vocab_size``
no ``output.weight``                       ``tie_word_embeddings``
=========================================  ==========================================

Architectures: ``llama`` (``mixtral`` when it has experts), ``qwen2``, ``qwen3``, ``qwen2moe``,
``qwen3moe``; any other is refused by name. Biases and MoE layers are read from the tensors
present (``attn_q.bias``, ``ffn_up.bias``, which layers have ``ffn_gate_inp``). The parameters of
each kind in the file must equal what the config describes, else the file's layout is not one
mfubench models and it says so, so the counted weight bytes are the file's tensor data exactly.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from mfubench.counting.components import components
from mfubench.errors import ConfigError, InputFileError
from mfubench.model.gguf_file import GGUFFile, looks_like_gguf, read_gguf
from mfubench.model.gguf_weights import block_index, gguf_weights
from mfubench.model.hf_config import MAX_SIZE, parse_config
from mfubench.model.spec import ModelSpec

__all__ = ["ARCHITECTURES", "gguf_config", "load_gguf", "looks_like_gguf"]

#: GGUF ``general.architecture`` -> HF ``model_type``.
ARCHITECTURES: dict[str, str] = {
    "llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
}


class _Meta:
    """Typed access to a GGUF file's metadata, naming the file and the key in errors."""

    def __init__(self, f: GGUFFile, arch: str) -> None:
        self.f = f
        self.arch = arch

    def get_int(self, key: str, *, required: bool = True, per_layer: bool = True) -> int | None:
        full = f"{self.arch}.{key}"
        value = self.f.metadata.get(full)
        if value is None:
            if required:
                raise InputFileError(f"{self.f.path}: metadata {full!r}: missing")
            return None
        if isinstance(value, tuple) and per_layer:
            values = set(value)
            if len(values) != 1:
                raise ConfigError(f"{self.f.path}: metadata {full!r} varies per layer "
                                  f"({sorted(values)[:4]}...): not supported")
            value = next(iter(values))
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputFileError(f"{self.f.path}: metadata {full!r}: must be an integer, "
                                 f"is {self.f.value_types.get(full)}")
        if value < 0 or value > MAX_SIZE:
            raise InputFileError(f"{self.f.path}: metadata {full!r}: {value} is out of range")
        return value

    def get_float(self, key: str) -> float | None:
        full = f"{self.arch}.{key}"
        value = self.f.metadata.get(full)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputFileError(f"{self.f.path}: metadata {full!r}: must be a number")
        return float(value)


def gguf_config(f: GGUFFile) -> dict[str, Any]:
    """The HF-style ``config.json`` contents a read GGUF file describes."""
    arch = f.architecture
    if arch is None:
        raise InputFileError(f"{f.path}: metadata 'general.architecture': missing or not a string")
    if arch not in ARCHITECTURES:
        raise ConfigError(f"{f.path}: GGUF architecture {arch!r} is not supported; supported: "
                          + ", ".join(ARCHITECTURES))
    m = _Meta(f, arch)
    hidden = m.get_int("embedding_length")
    heads = m.get_int("attention.head_count")
    assert hidden is not None and heads is not None
    kv_heads = m.get_int("attention.head_count_kv", required=False) or heads
    key_len = m.get_int("attention.key_length", required=False)
    value_len = m.get_int("attention.value_length", required=False)
    if key_len and value_len and key_len != value_len:
        raise ConfigError(f"{f.path}: key_length {key_len} != value_length {value_len}: "
                          f"not supported for {arch}")
    config: dict[str, Any] = {
        "model_type": ARCHITECTURES[arch],
        "hidden_size": hidden,
        "num_hidden_layers": m.get_int("block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": _vocab_size(f),
        "tie_word_embeddings": f.tensor("output.weight") is None,
        "torch_dtype": "bfloat16",
    }
    if key_len or value_len:
        config["head_dim"] = key_len or value_len
    for key, hf in (("context_length", "max_position_embeddings"),):
        if (v := m.get_int(key, required=False)) is not None:
            config[hf] = v
    if (theta := m.get_float("rope.freq_base")) is not None:
        config["rope_theta"] = theta
    ff = m.get_int("feed_forward_length", required=False)
    experts = m.get_int("expert_count", required=False) or 0
    if arch == "llama":
        config["attention_bias"] = f.tensor("blk.0.attn_q.bias") is not None
        config["mlp_bias"] = f.tensor("blk.0.ffn_up.bias") is not None
        if (window := m.get_int("attention.sliding_window", required=False)):
            config["sliding_window"] = window
        if experts:
            config.update(model_type="mixtral", num_local_experts=experts,
                          num_experts_per_tok=m.get_int("expert_used_count"),
                          intermediate_size=m.get_int("expert_feed_forward_length", required=False) or ff)
        else:
            config["intermediate_size"] = m.get_int("feed_forward_length")
    elif arch in ("qwen2", "qwen3"):
        config["intermediate_size"] = m.get_int("feed_forward_length")
    else:  # qwen2moe, qwen3moe
        moe_ff = m.get_int("expert_feed_forward_length")
        config.update(num_experts=m.get_int("expert_count"), num_experts_per_tok=m.get_int("expert_used_count"),
                      moe_intermediate_size=moe_ff, intermediate_size=ff or moe_ff,
                      decoder_sparse_step=1, mlp_only_layers=_dense_layers(f))
        if arch == "qwen2moe":
            config["shared_expert_intermediate_size"] = m.get_int(
                "expert_shared_feed_forward_length", required=False) or 0
    return config


def _vocab_size(f: GGUFFile) -> int:
    embd = f.tensor("token_embd.weight")
    if embd is not None and len(embd.shape) == 2:
        return embd.shape[1]
    tokens = f.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, tuple) and tokens:
        return len(tokens)
    raise InputFileError(f"{f.path}: no token_embd.weight and no tokenizer.ggml.tokens: "
                         "the vocabulary size is unknown")


def _dense_layers(f: GGUFFile) -> list[int]:
    """Layers without a router (``ffn_gate_inp``): dense feed-forward layers of an MoE model."""
    moe = {block_index(t.name) for t in f.tensors if ".ffn_gate_inp.weight" in t.name}
    layers = {block_index(t.name) for t in f.tensors} - {None}
    return sorted(i for i in layers - moe if i is not None)


def load_gguf(path: str | os.PathLike[str]) -> ModelSpec:
    """The :class:`ModelSpec` of a GGUF file, its weights the file's own (the spec's name is the
    file). Reads the header only."""
    f = read_gguf(path)
    spec = parse_config(gguf_config(f), f.path)
    weights = gguf_weights(f)
    spec = replace(spec, weights=weights)
    expected: dict[str, int] = {}
    for c in components(spec):
        expected[c.kind] = expected.get(c.kind, 0) + c.weights
        expected["norm"] = expected.get("norm", 0) + c.biases
    for kind in sorted(set(expected) | {k for k, _, _ in weights.kind_totals}):
        have, want = weights.kind_params(kind), expected.get(kind, 0)
        if have != want:
            what = "norm and bias" if kind == "norm" else kind
            raise ConfigError(
                f"{f.path}: the file's {what} tensors hold {have} parameters where its "
                f"{f.architecture} metadata describes {want}: a tensor layout mfubench does not model"
            )
    return spec
