"""The one adapter from a Hugging Face ``config.json`` to a :class:`ModelSpec`.

Untrusted input: every field is read through :class:`_Reader`, which checks presence and type and
names the file and the field in its error. Families and what each contributes:

- ``llama``, ``mistral``, ``qwen2``, ``qwen3``: dense, GQA; ``mistral`` and ``qwen2``/``qwen3``
  may use a sliding window on every layer (qwen only with ``use_sliding_window``); ``qwen2``
  has q/k/v biases; ``qwen3`` per-head q/k norms.
- ``mixtral``, ``qwen2_moe``, ``qwen3_moe``: top-k MoE (Qwen2-MoE with a gated shared expert).
- ``gemma2``, ``gemma3`` (its ``text_config``; ``gemma3_text``): sliding-window layers beside
  full ones, four norms per layer, tied embeddings.
- ``deepseek_v3``: MLA, MoE with shared experts, the first ``first_k_dense_replace`` layers dense.
- ``deepseek_v32``: DeepSeek-V3 with DeepSeek Sparse Attention in every layer (an indexer of
  ``index_n_heads`` x ``index_head_dim`` picks ``index_topk`` keys); HF 5's ``mlp_layer_types``.
- ``llama4`` (its ``text_config``; ``llama4_text``): rotary layers attend within chunks of
  ``attention_chunk_size``, NoPE layers everything; MoE layers (``moe_layers`` or every
  ``interleave_moe_layer_step``-th) of top-k experts beside a shared one of the same size, the
  others dense of ``intermediate_size_mlp``; its q/k L2 norm has no weights.
- ``kimi_k2``: Kimi K2's name for the DeepSeek-V3 architecture.
- ``falcon_h1``: attention and a Mamba2 mixer in parallel in every layer, then a gated MLP;
  muP multipliers are elementwise (not counted).
- ``granitemoehybrid`` (Granite 4 hybrids): Mamba2 and attention layers (``layer_types``, legacy
  names ``mamba``/``attention``), a shared MLP in every layer with MoE beside it when
  ``num_local_experts`` > 0.
- ``kimi_linear``: Kimi Delta Attention layers beside MLA layers (``layer_types`` or the
  checkpoint's ``linear_attn_config``), DeepSeek-style MoE; the KDA state in float32.
- ``glm4_moe`` (GLM-4.5/4.6): q/k/v biases (not o), ``use_qk_norm`` per head, the first
  ``first_k_dense_replace`` layers dense, then shared + routed experts.
- ``minimax_m2``: q/k RMSNorm over all heads at once, every layer MoE without a shared expert.
- ``ernie4_5_moe``: ``use_bias`` on every projection and the LM head, MoE from
  ``moe_layer_start_index`` every ``moe_layer_interval`` layers with shared experts, its score
  correction bias a parameter.
- ``hunyuan_v1_moe``: per-head q/k norms, every layer MoE (``num_experts``/``moe_topk`` one or
  per layer) with a shared MLP, experts and shared MLP of ``intermediate_size``.
- ``lfm2``: ``layer_types`` (else ``full_attn_idxs``) of gated short-convolution layers and
  attention layers with per-head q/k norms; the feed-forward width derived as HF derives it.
- ``gpt_oss``: alternating sliding-window layers, attention sinks, biased MoE, MXFP4 experts.
- ``qwen3_next``: ``layer_types`` (else every ``full_attention_interval``-th layer) full
  attention with a gated output and q/k norms, the others gated-delta linear attention; MoE with
  a gated shared expert, as Qwen2-MoE.
- ``qwen3_5``, ``qwen3_5_moe`` (their ``text_config``): Qwen3-Next's layer kinds; dense MLPs,
  or MoE with a gated shared expert in every layer.
- ``nemotron_h``: ``hybrid_override_pattern`` (or HF 5's ``layers_block_type``), one block per
  layer after one norm: Mamba2 ``M``, attention ``*`` (no biases, no rotary), ReLU^2 MLP ``-``,
  MoE of ReLU^2 experts with a shared one ``E``; the recurrent state in
  ``mamba_ssm_cache_dtype`` (float32 unless given).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mfubench.errors import ConfigError
from mfubench.model.mixers import (
    ChunkedAttention,
    GatedDeltaNet,
    KimiDeltaAttention,
    Mamba2,
    Mixer,
    SelfAttention,
    ShortConv,
    SparseAttention,
)
from mfubench.model.quant import from_hf_quantization, normalize_dtype
from mfubench.model.spec import Attention, DenseMLP, Layer, ModelSpec, MoE

SUPPORTED_MODEL_TYPES: tuple[str, ...] = (
    "llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe",
    "gemma2", "gemma3", "gemma3_text", "deepseek_v3", "gpt_oss",
    "qwen3_next", "nemotron_h", "deepseek_v32", "llama4", "llama4_text", "kimi_k2",
    "glm4_moe", "minimax_m2", "ernie4_5_moe", "hunyuan_v1_moe", "lfm2",
    "qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text", "kimi_linear", "falcon_h1",
    "granitemoehybrid",
)

#: HF's remapping of legacy layer-type names (``transformers.configuration_utils``).
_LEGACY_LAYER_TYPES = {"mamba": "linear_attention", "attention": "full_attention"}

#: Gated-delta hybrids (3 linear-attention layers to 1 gated full-attention layer by default).
_GATED_DELTA_TYPES = ("qwen3_next", "qwen3_5_text", "qwen3_5_moe_text")

#: The DeepSeek-V3 architecture under its names: MLA and MoE with shared experts (``kimi_k2`` is
#: Moonshot's name for it in Kimi K2's remote-code config).
_DEEPSEEK_V3_TYPES = ("deepseek_v3", "deepseek_v32", "kimi_k2", "kimi_linear")

#: Families whose attention carries a per-head q/k RMSNorm (``use_qk_norm`` where the config has
#: it: GLM-4.5/4.6).
_QK_NORM_TYPES = ("qwen3", "qwen3_moe", "gemma3_text", "hunyuan_v1_moe", "lfm2", *_GATED_DELTA_TYPES)


#: Gemma3TextConfig's defaults (transformers 4.50+), which the published gemma-3 configs rely on:
#: their ``text_config`` omits these fields.
_GEMMA3_TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 262_208,
    "sliding_window_pattern": 6,
    "sliding_window": 4096,
    "head_dim": 256,
    "num_key_value_heads": 4,
    "max_position_embeddings": 131_072,
    "tie_word_embeddings": True,
}


#: Multimodal configs whose language model is their ``text_config`` (its own ``model_type``).
_TEXT_TOWERS = {"gemma3": "gemma3_text", "llama4": "llama4_text", "qwen3_5": "qwen3_5_text",
                "qwen3_5_moe": "qwen3_5_moe_text"}


#: The largest size a config field may give (2^40: a thousand times any real model's), and the
#: most decoder layers (real models have up to a few hundred): beyond them a config is refused
#: before anything is built, so a hostile ``num_hidden_layers`` cannot exhaust memory.
MAX_SIZE = 2**40
MAX_LAYERS = 100_000


class _Reader:
    """Typed, named access to a config mapping."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def get_int(self, key: str, default: int | None = None, *, minimum: int = 1) -> int:
        value = self.data.get(key)
        if value is None:
            if default is None:
                raise ConfigError(f"{self.where}: missing field {key!r}")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{self.where}: field {key!r} must be an integer, got {value!r}")
        if value < minimum:
            raise ConfigError(f"{self.where}: field {key!r} must be >= {minimum}, got {value}")
        if value > MAX_SIZE:
            raise ConfigError(f"{self.where}: field {key!r} is {value}, above 2^40 = {MAX_SIZE}: "
                              "far beyond any real model")
        return value

    def opt_int(self, key: str) -> int | None:
        return self.get_int(key) if self.has(key) else None

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where}: field {key!r} must be true or false, got {value!r}")
        return value

    def get_list(self, key: str) -> list[Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise ConfigError(f"{self.where}: field {key!r} must be a list, got {value!r}")
        return value


def parse_config(config: Mapping[str, Any], name: str = "config.json") -> ModelSpec:
    """Build the spec of a model from its ``config.json`` contents (``name`` is for messages)."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{name}: a config.json must hold a JSON object")
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise ConfigError(f"{name}: missing field 'model_type'")
    top = _Reader(config, name)
    if model_type in _TEXT_TOWERS:
        text = config.get("text_config")
        if not isinstance(text, Mapping):
            raise ConfigError(f"{name}: {model_type} config without a 'text_config' object")
        defaults = _GEMMA3_TEXT_DEFAULTS if model_type == "gemma3" else {}
        merged = {**defaults, **text}
        merged.setdefault("model_type", _TEXT_TOWERS[model_type])
        for key in ("quantization_config", "torch_dtype", "dtype", "tie_word_embeddings"):
            if key in config and key not in merged:
                merged[key] = config[key]
        spec = parse_config(merged, f"{name} (text_config)")
        from dataclasses import replace

        return replace(spec, name=name, model_type=model_type)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"{name}: model_type {model_type!r} is not supported; supported: "
            + ", ".join(SUPPORTED_MODEL_TYPES)
        )
    cfg = top
    hidden = cfg.get_int("hidden_size")
    num_layers = _num_layers(cfg, model_type)
    vocab = cfg.get_int("vocab_size")
    attention = _attention(cfg, model_type, hidden)
    if model_type == "nemotron_h":
        layers = _nemotron_h_layers(cfg)
    else:
        mixers = _mixers(cfg, model_type, num_layers)
        ffns = _ffns(cfg, model_type, num_layers)
        norms = 4 if model_type in ("gemma2", "gemma3_text") else 2
        layers = tuple(Layer(ffn=f, mixers=m, num_norms=norms) for f, m in zip(ffns, mixers, strict=True))
    dtype_name = config.get("torch_dtype") or config.get("dtype") or "bfloat16"
    try:
        dtype = normalize_dtype(str(dtype_name))
    except ConfigError as exc:
        raise ConfigError(f"{name}: field 'torch_dtype': {exc}") from None
    if dtype == "fp32":
        # Served as vLLM's `--dtype auto` serves float32 checkpoints (the Gemma 2 repos say
        # float32): downcast to bf16. `--dtype fp32` says otherwise.
        dtype = "bf16"
    try:
        weights = from_hf_quantization(config.get("quantization_config"), dtype, name)
    except (ValueError, TypeError) as exc:  # e.g. "bits": "x" or null, a non-list module list
        raise ConfigError(f"{name}: field 'quantization_config': {exc}") from None
    tie_default = model_type in ("gemma2", "gemma3_text", "ernie4_5_moe", "lfm2")  # HF's defaults
    if model_type == "lfm2" and cfg.has("tie_embedding"):  # LFM2's original name for it
        tie_default = cfg.get_bool("tie_embedding")
    try:
        return ModelSpec(
            name=name,
            model_type=model_type,
            hidden_size=hidden,
            vocab_size=vocab,
            attention=attention,
            layers=layers,
            tie_word_embeddings=cfg.get_bool("tie_word_embeddings", tie_default),
            weights=weights,
            max_position_embeddings=cfg.opt_int("max_position_embeddings"),
            state_dtype=_state_dtype(cfg, model_type),
            lm_head_bias=model_type == "ernie4_5_moe" and cfg.get_bool("use_bias"),
        )
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _num_layers(cfg: _Reader, model_type: str) -> int:
    if model_type == "nemotron_h":  # the pattern decides; HF ignores num_hidden_layers
        num_layers = len(_nemotron_h_pattern(cfg))
    else:
        num_layers = cfg.get_int("num_hidden_layers")
    if num_layers > MAX_LAYERS:
        raise ConfigError(f"{cfg.where}: field 'num_hidden_layers' is {num_layers}, above {MAX_LAYERS}: "
                          "far beyond any real model")
    return num_layers


def _state_dtype(cfg: _Reader, model_type: str) -> str | None:
    """The recurrent-state dtype vLLM uses: Nemotron-H's ``mamba_ssm_cache_dtype`` (vLLM's
    default for it: float32); the model dtype (None) for the others."""
    if model_type == "kimi_linear":  # vLLM keeps KDA's recurrent state in float32 (auto)
        return "fp32"
    if model_type != "nemotron_h":
        return None
    value = cfg.data.get("mamba_ssm_cache_dtype") or "float32"
    try:
        return normalize_dtype(str(value))
    except ConfigError as exc:
        raise ConfigError(f"{cfg.where}: field 'mamba_ssm_cache_dtype': {exc}") from None


#: Nemotron-H's layer letters (``hybrid_override_pattern``) and HF's names for them.
_NEMOTRON_H_LETTERS = {"M": "linear_attention", "*": "full_attention", "-": "mlp", "E": "moe"}


def _nemotron_h_pattern(cfg: _Reader) -> list[str]:
    """Every layer's block type: ``layers_block_type``/``layer_types`` (HF 5) or the
    ``hybrid_override_pattern`` string of the published configs."""
    for key in ("layers_block_type", "layer_types"):
        listed = cfg.get_list(key)
        if listed is not None:
            break
    else:
        pattern = cfg.data.get("hybrid_override_pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{cfg.where}: missing field 'hybrid_override_pattern' (or layer_types)")
        bad = sorted(set(pattern) - set(_NEMOTRON_H_LETTERS))
        if bad:
            raise ConfigError(f"{cfg.where}: field 'hybrid_override_pattern' has {bad!r}; "
                              f"letters are {', '.join(_NEMOTRON_H_LETTERS)}")
        listed = [_NEMOTRON_H_LETTERS[c] for c in pattern]
        key = "hybrid_override_pattern"
    for i, kind in enumerate(listed):
        if kind not in _NEMOTRON_H_LETTERS.values():
            raise ConfigError(f"{cfg.where}: {key}[{i}] is {kind!r}; expected one of "
                              + ", ".join(_NEMOTRON_H_LETTERS.values()))
    if len(listed) > MAX_LAYERS:
        raise ConfigError(f"{cfg.where}: field {key!r} has {len(listed)} layers, above {MAX_LAYERS}")
    return [str(k) for k in listed]


def _nemotron_h_layers(cfg: _Reader) -> tuple[Layer, ...]:
    """Nemotron-H: each layer is one block after one norm: Mamba2 (``M``), attention (``*``),
    a ReLU^2 MLP (``-``) or a MoE of ReLU^2 experts with a shared one (``E``)."""
    if cfg.has("moe_latent_size"):
        raise ConfigError(f"{cfg.where}: field 'moe_latent_size' (latent MoE projections) is not "
                          "supported")
    try:
        mamba = Mamba2(
            num_heads=cfg.get_int("mamba_num_heads"),
            head_dim=cfg.get_int("mamba_head_dim"),
            state_size=cfg.get_int("ssm_state_size"),
            n_groups=_first_int(cfg, "n_groups", "mamba_n_groups"),
            conv_kernel=_first_int(cfg, "conv_kernel", "mamba_d_conv"),
            conv_bias=cfg.get_bool("use_conv_bias", True),
            in_proj_bias=cfg.get_bool("use_bias"),
            out_proj_bias=cfg.get_bool("use_bias"),
        )
        layers: list[Layer] = []
        for kind in _nemotron_h_pattern(cfg):
            if kind == "linear_attention":
                layers.append(Layer(ffn=None, mixers=(mamba,), num_norms=1))
            elif kind == "full_attention":
                layers.append(Layer(ffn=None, mixers=(SelfAttention(),), num_norms=1))
            elif kind == "mlp":
                mlp = DenseMLP(cfg.get_int("intermediate_size"), gated=False, bias=cfg.get_bool("mlp_bias"))
                layers.append(Layer(ffn=mlp, mixers=(), num_norms=1))
            else:
                moe = MoE(
                    num_experts=_first_int(cfg, "n_routed_experts", "num_local_experts"),
                    top_k=cfg.get_int("num_experts_per_tok"),
                    expert_intermediate_size=cfg.get_int("moe_intermediate_size"),
                    shared_intermediate_size=cfg.get_int("moe_shared_expert_intermediate_size", 0,
                                                         minimum=0),
                    router_score_bias=True,
                    gated=False,
                )
                layers.append(Layer(ffn=moe, mixers=(), num_norms=1))
    except ValueError as exc:
        raise ConfigError(f"{cfg.where}: {exc}") from None
    return tuple(layers)


def _attention(cfg: _Reader, model_type: str, hidden: int) -> Attention:
    heads = cfg.get_int("num_attention_heads")
    try:
        if model_type in _DEEPSEEK_V3_TYPES:
            nope = cfg.get_int("qk_nope_head_dim")
            rope = cfg.get_int("qk_rope_head_dim")
            return Attention(
                num_heads=heads,
                num_kv_heads=heads,
                head_dim=nope + rope,
                v_head_dim=cfg.get_int("v_head_dim"),
                qkv_bias=cfg.get_bool("attention_bias"),
                o_bias=cfg.get_bool("attention_bias"),
                q_lora_rank=cfg.opt_int("q_lora_rank"),
                kv_lora_rank=cfg.get_int("kv_lora_rank"),
                qk_rope_head_dim=rope,
            )
        kv_heads = cfg.get_int("num_key_value_heads", heads)
        if cfg.has("head_dim"):
            head_dim = cfg.get_int("head_dim")
        elif model_type == "nemotron_h" and cfg.has("attention_head_dim"):  # its older name
            head_dim = cfg.get_int("attention_head_dim")
        else:
            if hidden % heads:
                raise ConfigError(
                    f"{cfg.where}: no 'head_dim' and hidden_size {hidden} is not a multiple of "
                    f"num_attention_heads {heads}"
                )
            head_dim = hidden // heads
        # Nemotron-H's and MiniMax-M2's attention have no biases whatever attention_bias says;
        # ERNIE 4.5 biases every projection with use_bias; GLM-4.5/4.6 only q, k and v.
        if model_type in ("nemotron_h", "minimax_m2"):
            biased = False
        elif model_type == "ernie4_5_moe":
            biased = cfg.get_bool("use_bias")
        else:
            biased = cfg.get_bool("attention_bias")
        qkv_bias = model_type == "qwen2" or model_type == "qwen2_moe" or biased
        o_bias = biased and model_type != "glm4_moe"
        qk_norm = model_type in _QK_NORM_TYPES or (
            model_type == "glm4_moe" and cfg.get_bool("use_qk_norm")) or model_type == "minimax_m2"
        return Attention(
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            v_head_dim=head_dim,
            qkv_bias=qkv_bias,
            o_bias=o_bias,
            qk_norm=qk_norm,
            qk_norm_full_width=model_type == "minimax_m2",
            sinks=model_type == "gpt_oss",
            output_gate=model_type in _GATED_DELTA_TYPES,
        )
    except ValueError as exc:
        raise ConfigError(f"{cfg.where}: {exc}") from None


def _mixers(cfg: _Reader, model_type: str, num_layers: int) -> list[tuple[Mixer, ...]]:
    """The token mixers of every layer: softmax attention with its window, or the layer kinds
    a hybrid's ``layer_types`` name."""
    if model_type in _GATED_DELTA_TYPES:
        kinds = _layer_types(cfg, num_layers, ("linear_attention", "full_attention"),
                             interval_key="full_attention_interval")
        delta = _gated_delta(cfg)
        return [(delta,) if k == "linear_attention" else (SelfAttention(),) for k in kinds]
    if model_type == "llama4_text":
        return _llama4_mixers(cfg, num_layers)
    if model_type == "kimi_linear":
        return _kimi_linear_mixers(cfg, num_layers)
    if model_type == "granitemoehybrid":
        return _granite_hybrid_mixers(cfg, num_layers)
    if model_type == "falcon_h1":  # attention and Mamba2 side by side in every layer
        return [(SelfAttention(), _falcon_h1_mamba(cfg))] * num_layers
    if model_type == "lfm2":
        conv = ShortConv(conv_kernel=cfg.get_int("conv_L_cache", 3), bias=cfg.get_bool("conv_bias"))
        listed = cfg.get_list("layer_types")
        if listed is None:  # HF: full attention at full_attn_idxs (default: every layer)
            full = cfg.get_list("full_attn_idxs")
            at = set(range(num_layers)) if full is None else set(full)
            listed = ["full_attention" if i in at else "conv" for i in range(num_layers)]
            kinds = [str(k) for k in listed]
        else:
            kinds = _layer_types(cfg, num_layers, ("conv", "full_attention"), interval_key="")
        return [(SelfAttention(),) if k == "full_attention" else (conv,) for k in kinds]
    if model_type == "deepseek_v32":  # every layer is DSA ("indexed_attention")
        try:
            sparse = SparseAttention(
                index_heads=cfg.get_int("index_n_heads"),
                index_head_dim=cfg.get_int("index_head_dim"),
                top_k=cfg.get_int("index_topk"),
                q_lora_rank=cfg.get_int("q_lora_rank"),
            )
        except ValueError as exc:
            raise ConfigError(f"{cfg.where}: {exc}") from None
        return [(sparse,)] * num_layers
    return [(SelfAttention(w),) for w in _windows(cfg, model_type, num_layers)]


def _granite_hybrid_mixers(cfg: _Reader, num_layers: int) -> list[tuple[Mixer, ...]]:
    """Granite 4 hybrids: ``layer_types`` of Mamba2 (``mamba``/``linear_attention``) and
    attention (``attention``/``full_attention``) layers; HF's default is all Mamba2."""
    listed = cfg.get_list("layer_types") or cfg.get_list("layers_block_type")
    if listed is None:
        kinds = ["linear_attention"] * num_layers
    else:
        if len(listed) != num_layers:
            raise ConfigError(f"{cfg.where}: 'layer_types' has {len(listed)} entries for {num_layers} layers")
        kinds = [_LEGACY_LAYER_TYPES.get(str(k), str(k)) for k in listed]
        for i, kind in enumerate(kinds):
            if kind not in ("linear_attention", "full_attention"):
                raise ConfigError(f"{cfg.where}: layer_types[{i}] is {listed[i]!r}; expected mamba or attention")
    inner = cfg.get_int("mamba_expand", 2) * cfg.get_int("hidden_size")
    heads = cfg.get_int("mamba_n_heads", 128)
    head = cfg.data.get("mamba_d_head", "auto")
    head_dim = inner // heads if head in (None, "auto") else cfg.get_int("mamba_d_head")
    if head_dim * heads != inner:
        raise ConfigError(f"{cfg.where}: mamba_n_heads {heads} x mamba_d_head {head_dim} is not "
                          f"mamba_expand x hidden_size = {inner}")
    try:
        mamba = Mamba2(
            num_heads=heads, head_dim=head_dim, state_size=cfg.get_int("mamba_d_state", 256),
            n_groups=cfg.get_int("mamba_n_groups", 1), conv_kernel=cfg.get_int("mamba_d_conv", 4),
            conv_bias=cfg.get_bool("mamba_conv_bias", True),
            in_proj_bias=cfg.get_bool("mamba_proj_bias"), out_proj_bias=cfg.get_bool("mamba_proj_bias"),
        )
    except ValueError as exc:
        raise ConfigError(f"{cfg.where}: {exc}") from None
    return [(mamba,) if k == "linear_attention" else (SelfAttention(),) for k in kinds]


def _falcon_h1_mamba(cfg: _Reader) -> Mamba2:
    """Falcon-H1's Mamba2 mixer: ``d_inner`` is ``mamba_d_ssm`` (else ``mamba_expand`` x
    hidden), split into ``mamba_n_heads`` heads of ``mamba_d_head`` ("auto": the quotient)."""
    heads = cfg.get_int("mamba_n_heads", 128)
    inner = cfg.get_int("mamba_d_ssm") if cfg.has("mamba_d_ssm") else (
        cfg.get_int("mamba_expand", 2) * cfg.get_int("hidden_size"))
    head = cfg.data.get("mamba_d_head", "auto")
    head_dim = inner // heads if head in (None, "auto") else cfg.get_int("mamba_d_head")
    if head_dim * heads != inner:
        raise ConfigError(f"{cfg.where}: mamba_n_heads {heads} x mamba_d_head {head_dim} is not the "
                          f"Mamba inner width {inner}")
    try:
        return Mamba2(
            num_heads=heads,
            head_dim=head_dim,
            state_size=cfg.get_int("mamba_d_state", 256),
            n_groups=cfg.get_int("mamba_n_groups", 1),
            conv_kernel=cfg.get_int("mamba_d_conv", 4),
            conv_bias=cfg.get_bool("mamba_conv_bias", True),
            in_proj_bias=cfg.get_bool("mamba_proj_bias"),
            out_proj_bias=cfg.get_bool("projectors_bias"),
            gated_norm=cfg.get_bool("mamba_rms_norm"),
        )
    except ValueError as exc:
        raise ConfigError(f"{cfg.where}: {exc}") from None


def _kimi_linear_mixers(cfg: _Reader, num_layers: int) -> list[tuple[Mixer, ...]]:
    """Kimi Linear: Kimi Delta Attention layers and MLA layers, from ``layer_types``, else the
    checkpoint's ``linear_attn_config`` (1-based ``kda_layers``/``full_attn_layers``), else HF's
    default (full attention at every 4th layer index from 4)."""
    sub = cfg.data.get("linear_attn_config") or {}
    if not isinstance(sub, Mapping):
        raise ConfigError(f"{cfg.where}: field 'linear_attn_config' must be an object")
    lin = _Reader(sub, f"{cfg.where} (linear_attn_config)")
    try:
        kda = KimiDeltaAttention(
            num_heads=lin.get_int("num_heads") if lin.has("num_heads") else cfg.get_int("linear_num_heads", 32),
            head_dim=lin.get_int("head_dim") if lin.has("head_dim") else cfg.get_int("linear_head_dim", 128),
            conv_kernel=(lin.get_int("short_conv_kernel_size") if lin.has("short_conv_kernel_size")
                         else cfg.get_int("linear_conv_kernel_dim", 4)),
        )
    except ValueError as exc:
        raise ConfigError(f"{cfg.where}: {exc}") from None
    if cfg.get_list("layer_types") is not None:
        kinds = _layer_types(cfg, num_layers, ("linear_attention", "full_attention"), interval_key="")
    elif lin.has("kda_layers") and lin.has("full_attn_layers"):
        full = lin.get_list("full_attn_layers") or []
        linear = lin.get_list("kda_layers") or []
        if sorted([*full, *linear]) != list(range(1, num_layers + 1)):
            raise ConfigError(f"{lin.where}: 'kda_layers' and 'full_attn_layers' must number each of "
                              f"the {num_layers} layers once, from 1")
        kinds = ["full_attention" if i + 1 in set(full) else "linear_attention" for i in range(num_layers)]
    else:
        kinds = ["full_attention" if i and i % 4 == 0 else "linear_attention" for i in range(num_layers)]
    return [(SelfAttention(),) if k == "full_attention" else (kda,) for k in kinds]


def _llama4_mixers(cfg: _Reader, num_layers: int) -> list[tuple[Mixer, ...]]:
    """Llama 4's iRoPE layers: rotary layers attend within chunks of ``attention_chunk_size``,
    the others (NoPE) attend everything. From ``layer_types`` where HF 5 writes it, else
    ``no_rope_layers`` (1 = rotary), else HF's default of one NoPE layer every
    ``no_rope_layer_interval`` (4)."""
    chunk = cfg.opt_int("attention_chunk_size")
    listed = cfg.get_list("layer_types")
    if listed is not None:
        kinds = _layer_types(cfg, num_layers, ("chunked_attention", "full_attention"),
                             interval_key="no_rope_layer_interval")
        chunked = [k == "chunked_attention" for k in kinds]
    else:
        rope = cfg.get_list("no_rope_layers") or []
        if rope:
            if len(rope) != num_layers or any(v not in (0, 1) for v in rope):
                raise ConfigError(f"{cfg.where}: field 'no_rope_layers' must give 0 or 1 for each of "
                                  f"the {num_layers} layers")
            chunked = [v == 1 for v in rope]
        else:
            interval = cfg.get_int("no_rope_layer_interval", 4)
            chunked = [(i + 1) % interval != 0 for i in range(num_layers)]
    if chunk is None:
        return [(SelfAttention(),)] * num_layers
    return [(ChunkedAttention(chunk),) if c else (SelfAttention(),) for c in chunked]


def _layer_types(cfg: _Reader, num_layers: int, allowed: tuple[str, ...], *,
                 interval_key: str) -> list[str]:
    """Each layer's kind from ``layer_types``, else (as HF derives it) every
    ``interval_key``-th layer ``allowed[1]`` and the others ``allowed[0]``."""
    listed = cfg.get_list("layer_types")
    if listed is None:
        interval = cfg.get_int(interval_key, 4)
        return [allowed[1] if (i + 1) % interval == 0 else allowed[0] for i in range(num_layers)]
    if len(listed) != num_layers:
        raise ConfigError(f"{cfg.where}: 'layer_types' has {len(listed)} entries for {num_layers} layers")
    for i, kind in enumerate(listed):
        if kind not in allowed:
            raise ConfigError(f"{cfg.where}: layer_types[{i}] is {kind!r}; expected one of "
                              + ", ".join(allowed))
    return [str(k) for k in listed]


def _gated_delta(cfg: _Reader) -> GatedDeltaNet:
    try:
        return GatedDeltaNet(
            num_k_heads=cfg.get_int("linear_num_key_heads"),
            num_v_heads=cfg.get_int("linear_num_value_heads"),
            head_k_dim=cfg.get_int("linear_key_head_dim"),
            head_v_dim=cfg.get_int("linear_value_head_dim"),
            conv_kernel=cfg.get_int("linear_conv_kernel_dim"),
        )
    except ValueError as exc:
        raise ConfigError(f"{cfg.where}: {exc}") from None


def _windows(cfg: _Reader, model_type: str, num_layers: int) -> list[int | None]:
    """The sliding window of every layer (None = full attention)."""
    window = cfg.get_int("sliding_window", 0, minimum=0) or None  # 0 and null both mean none
    if model_type in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe"):
        if not cfg.get_bool("use_sliding_window"):
            return [None] * num_layers
        # Qwen applies the window from layer max_window_layers on.
        first = cfg.get_int("max_window_layers", num_layers, minimum=0)
        return [window if i >= first else None for i in range(num_layers)]
    if window is None:
        return [None] * num_layers
    layer_types = cfg.get_list("layer_types")
    if layer_types is not None:
        if len(layer_types) < num_layers:
            raise ConfigError(
                f"{cfg.where}: 'layer_types' has {len(layer_types)} entries for {num_layers} layers"
            )
        out: list[int | None] = []
        for i, kind in enumerate(layer_types[:num_layers]):
            if kind not in ("sliding_attention", "full_attention"):
                raise ConfigError(f"{cfg.where}: layer_types[{i}] is {kind!r}")
            out.append(window if kind == "sliding_attention" else None)
        return out
    if model_type == "gemma2":  # even layers slide, odd ones see everything
        return [window if i % 2 == 0 else None for i in range(num_layers)]
    if model_type == "gemma3_text":
        pattern = cfg.get_int("sliding_window_pattern", 6)
        return [None if (i + 1) % pattern == 0 else window for i in range(num_layers)]
    if model_type == "gpt_oss":
        return [window if i % 2 == 0 else None for i in range(num_layers)]
    return [window] * num_layers  # mistral, mixtral, llama with a window: every layer


def _ffns(cfg: _Reader, model_type: str, num_layers: int) -> list[DenseMLP | MoE]:
    """The feed-forward block of every layer."""
    try:
        if model_type == "mixtral":
            moe = MoE(
                num_experts=cfg.get_int("num_local_experts"),
                top_k=cfg.get_int("num_experts_per_tok"),
                expert_intermediate_size=cfg.get_int("intermediate_size"),
            )
            return [moe] * num_layers
        if model_type in ("qwen2_moe", "qwen3_moe", "qwen3_next", "qwen3_5_moe_text"):
            shared = cfg.get_int("shared_expert_intermediate_size", 0, minimum=0)
            gated_shared = model_type in ("qwen2_moe", "qwen3_next", "qwen3_5_moe_text")
            moe = MoE(
                num_experts=_first_int(cfg, "num_experts", "num_local_experts"),
                top_k=cfg.get_int("num_experts_per_tok"),
                expert_intermediate_size=cfg.get_int("moe_intermediate_size"),
                shared_intermediate_size=shared if gated_shared else 0,
                shared_expert_gate=gated_shared and shared > 0,
            )
            if model_type == "qwen3_5_moe_text":  # HF: every layer MoE
                return [moe] * num_layers
            dense = DenseMLP(cfg.get_int("intermediate_size"))
            step = cfg.get_int("decoder_sparse_step", 1)
            mlp_only_list = cfg.get_list("mlp_only_layers") or []
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in mlp_only_list):
                raise ConfigError(f"{cfg.where}: field 'mlp_only_layers' must list layer indices, got {mlp_only_list!r}")
            mlp_only = set(mlp_only_list)
            return [
                moe if (i not in mlp_only and (i + 1) % step == 0) else dense
                for i in range(num_layers)
            ]
        if model_type in _DEEPSEEK_V3_TYPES:
            # Kimi Linear's HF config writes these under other names (num_experts, ...)
            shared_key = "n_shared_experts" if cfg.has("n_shared_experts") else "num_shared_experts"
            n_shared = cfg.get_int(shared_key, 0, minimum=0)
            moe_inter = cfg.get_int("moe_intermediate_size")
            moe = MoE(
                num_experts=_first_int(cfg, "n_routed_experts", "num_local_experts", "num_experts"),
                top_k=_first_int(cfg, "num_experts_per_tok", "num_experts_per_token"),
                expert_intermediate_size=moe_inter,
                shared_intermediate_size=n_shared * moe_inter,
                router_score_bias=str(cfg.data.get("topk_method", "noaux_tc")) == "noaux_tc",
            )
            dense = DenseMLP(cfg.get_int("intermediate_size"))
            kinds = (cfg.get_list("mlp_layer_types")
                     if model_type in ("deepseek_v32", "kimi_linear") else None)
            if kinds is not None:  # HF 5 writes the per-layer pattern: "dense" or "sparse"
                if len(kinds) != num_layers or any(k not in ("dense", "sparse") for k in kinds):
                    raise ConfigError(f"{cfg.where}: field 'mlp_layer_types' must give 'dense' or "
                                      f"'sparse' for each of the {num_layers} layers")
                return [moe if k == "sparse" else dense for k in kinds]
            first_dense = cfg.get_int("first_k_dense_replace", 0, minimum=0)
            freq = cfg.get_int("moe_layer_freq", 1)
            return [
                moe if (i >= first_dense and i % freq == 0) else dense for i in range(num_layers)
            ]
        if model_type == "llama4_text":
            inter = cfg.get_int("intermediate_size")
            moe = MoE(
                num_experts=cfg.get_int("num_local_experts"),
                top_k=cfg.get_int("num_experts_per_tok"),
                expert_intermediate_size=inter,
                shared_intermediate_size=inter,
            )
            dense = DenseMLP(cfg.get_int("intermediate_size_mlp"))
            listed = cfg.get_list("moe_layers")
            if listed is not None:
                if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < num_layers
                           for i in listed):
                    raise ConfigError(f"{cfg.where}: field 'moe_layers' must list layer indices "
                                      f"below {num_layers}")
                moe_at = set(listed)
            else:
                step = cfg.get_int("interleave_moe_layer_step", 1)
                moe_at = set(range(step - 1, num_layers, step))
            return [moe if i in moe_at else dense for i in range(num_layers)]
        if model_type == "glm4_moe":  # DeepSeek-style: shared experts, first layers dense
            moe_inter = cfg.get_int("moe_intermediate_size")
            moe = MoE(
                num_experts=_first_int(cfg, "n_routed_experts", "num_local_experts"),
                top_k=cfg.get_int("num_experts_per_tok"),
                expert_intermediate_size=moe_inter,
                shared_intermediate_size=cfg.get_int("n_shared_experts", 1, minimum=0) * moe_inter,
                router_score_bias=True,
            )
            dense = DenseMLP(cfg.get_int("intermediate_size"))
            first_dense = cfg.get_int("first_k_dense_replace", 1, minimum=0)
            return [moe if i >= first_dense else dense for i in range(num_layers)]
        if model_type == "minimax_m2":  # every layer MoE, no shared expert
            moe = MoE(
                num_experts=cfg.get_int("num_local_experts"),
                top_k=cfg.get_int("num_experts_per_tok"),
                expert_intermediate_size=cfg.get_int("intermediate_size"),
                router_score_bias=True,
            )
            if cfg.get_int("shared_intermediate_size", 0, minimum=0):
                raise ConfigError(f"{cfg.where}: field 'shared_intermediate_size' must be 0: "
                                  "MiniMax-M2 as HF and vLLM build it has no shared expert")
            return [moe] * num_layers
        if model_type == "ernie4_5_moe":
            moe_inter = cfg.get_int("moe_intermediate_size")
            moe = MoE(
                num_experts=_first_int(cfg, "moe_num_experts", "num_experts"),
                top_k=_first_int(cfg, "moe_k", "num_experts_per_tok"),
                expert_intermediate_size=moe_inter,
                shared_intermediate_size=cfg.get_int("moe_num_shared_experts", 0, minimum=0) * moe_inter,
                # ERNIE's e_score_correction_bias is an nn.Parameter (one per expert): booked
                # as the router's bias vector
                router_bias=True,
                shared_expert_bias=cfg.get_bool("use_bias"),
            )
            dense = DenseMLP(cfg.get_int("intermediate_size"), bias=cfg.get_bool("use_bias"))
            start = cfg.get_int("moe_layer_start_index", 1, minimum=0)
            end_raw = cfg.data.get("moe_layer_end_index", -1)
            end = num_layers - 1 if end_raw == -1 else cfg.get_int("moe_layer_end_index", minimum=0)
            interval = cfg.get_int("moe_layer_interval", 1)
            return [moe if (i + 1) % interval == 0 and start <= i <= end else dense
                    for i in range(num_layers)]
        if model_type == "hunyuan_v1_moe":
            inter = cfg.get_int("intermediate_size")
            # HF builds the experts and the shared MLP at intermediate_size
            return [MoE(num_experts=e, top_k=k, expert_intermediate_size=inter,
                        shared_intermediate_size=inter)
                    for e, k in zip(_per_layer_ints(cfg, "num_experts", num_layers),
                                    _per_layer_ints(cfg, "moe_topk", num_layers), strict=True)]
        if model_type == "granitemoehybrid":  # a shared MLP in every layer, MoE beside it if any
            shared = cfg.get_int("shared_intermediate_size", 1024)
            experts = cfg.get_int("num_local_experts", 8, minimum=0)
            if experts == 0:
                return [DenseMLP(shared)] * num_layers
            return [MoE(num_experts=experts, top_k=cfg.get_int("num_experts_per_tok", 2),
                        expert_intermediate_size=cfg.get_int("intermediate_size"),
                        shared_intermediate_size=shared)] * num_layers
        if model_type == "gpt_oss":
            top_k = _first_int(cfg, "num_experts_per_tok", "experts_per_token")
            moe = MoE(
                num_experts=cfg.get_int("num_local_experts"),
                top_k=top_k,
                expert_intermediate_size=cfg.get_int("intermediate_size"),
                router_bias=True,
                expert_bias=True,
            )
            return [moe] * num_layers
        if model_type == "lfm2":
            return [DenseMLP(_lfm2_intermediate(cfg))] * num_layers
        mlp_bias = cfg.get_bool("mlp_bias")
        return [DenseMLP(cfg.get_int("intermediate_size"), bias=mlp_bias)] * num_layers
    except ValueError as exc:
        raise ConfigError(f"{cfg.where}: {exc}") from None


def _lfm2_intermediate(cfg: _Reader) -> int:
    """LFM2's feed-forward width as HF derives it: with ``block_auto_adjust_ff_dim`` (default),
    ``2/3`` of ``intermediate_size`` (``block_ff_dim``), times ``block_ffn_dim_multiplier``,
    rounded up to a multiple of ``block_multiple_of``."""
    inter = _first_int(cfg, "intermediate_size", "block_ff_dim")
    if not cfg.get_bool("block_auto_adjust_ff_dim", True):
        return inter
    inter = int(2 * inter / 3)
    multiplier = cfg.data.get("block_ffn_dim_multiplier", 1.0)
    if multiplier is not None:
        if isinstance(multiplier, bool) or not isinstance(multiplier, int | float) or multiplier <= 0:
            raise ConfigError(f"{cfg.where}: field 'block_ffn_dim_multiplier' must be a positive "
                              f"number, got {multiplier!r}")
        inter = int(multiplier * inter)
        step = cfg.get_int("block_multiple_of", 256)
        inter = step * ((inter + step - 1) // step)
    if inter < 1:
        raise ConfigError(f"{cfg.where}: the derived feed-forward width is {inter}")
    return inter


def _per_layer_ints(cfg: _Reader, key: str, num_layers: int) -> list[int]:
    """A field HF allows as one integer or one per layer (Hunyuan's ``num_experts``)."""
    value = cfg.data.get(key)
    if isinstance(value, list):
        if len(value) != num_layers:
            raise ConfigError(f"{cfg.where}: field {key!r} has {len(value)} entries for "
                              f"{num_layers} layers")
        return [_Reader({key: v}, cfg.where).get_int(key) for v in value]
    return [cfg.get_int(key)] * num_layers


def _first_int(cfg: _Reader, *keys: str) -> int:
    """The first of ``keys`` the config has (fields renamed across transformers versions)."""
    for key in keys:
        if cfg.has(key):
            return cfg.get_int(key)
    raise ConfigError(f"{cfg.where}: missing field {keys[0]!r} (or {', '.join(keys[1:])})")
