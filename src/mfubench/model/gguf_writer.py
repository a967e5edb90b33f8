"""Write a Llama model folder (``measure/tiny_model``) as a GGUF file llama.cpp loads.

``python -m mfubench.model.gguf_writer FOLDER OUT.gguf --type Q4_K_M``

The folder holds a ``config.json`` (``LlamaForCausalLM``) and a byte-level BPE
``tokenizer.json``; it has no weights, so **the weights written are random**:

- for the types the ``gguf`` package can quantize (``gguf.quants``: F32, F16, BF16, Q4_0, Q4_1,
  Q5_0, Q5_1, Q8_0), random normal values (std 0.02; norms 1 + 0.02 noise) are quantized by it;
- for the K-quants and IQ types it cannot quantize (Q2_K .. Q6_K, IQ4_NL, IQ4_XS), random but
  valid blocks of ggml's exact layout are written: random bytes for the quants and packed
  sub-block scales (every bit pattern of those is a valid value), and fp16 super-block scales
  (``d``, ``dmin``) set to sane values of 1e-4 to 2e-4, so every weight is finite and small.

What is written is what llama.cpp's converter and quantizer write for ``LlamaForCausalLM``, read
from ggml-org/llama.cpp:

- metadata as ``convert_hf_to_gguf.py`` writes it (commit 0024aa7417efd50a7c2a79e049dfbbbceb0beaaf:
  ``TextModel.set_gguf_parameters``, ``get_vocab_base``, ``_set_vocab_gpt2``) and
  ``conversion/llama.py`` (commit 7bca1fd9ca2a681b0182e16f24f832b7be1942af:
  ``LlamaModel.set_gguf_parameters`` adds ``vocab_size`` and ``rope.dimension_count``): block
  count, context length, embedding and feed-forward lengths, head counts, key/value lengths,
  RoPE base, RMS-norm epsilon, file type; the tokenizer as the ``gpt2`` BPE model with the
  ``gpt-2`` pre-tokenizer (the GPT-2 regex of a ``ByteLevel`` pre-tokenizer), its tokens, token
  types (added special tokens CONTROL, other added tokens USER_DEFINED, ids the vocabulary lacks
  ``[PAD{i}]`` UNUSED), merges, bos/eos/unk ids and ``add_bos_token``;
- the tensor types of each file type as ``llama_tensor_get_type`` in ``src/llama-quant.cpp``
  (commit 007dbbf3fd17eefe9b47fee45f48f7ba5e62b714) chooses them for a dense Llama (no experts,
  not Falcon, not 70B): 1-D tensors (norms) stay F32; ``output.weight`` goes to Q6_K (Q8_0 in a
  Q8_0 file, or Q8_0 when its rows do not fit the type's blocks); ``attn_v`` and ``ffn_down`` get
  more bits in the layers ``use_more_bits`` picks (Q6_K in Q4_K_M and Q5_K_M; Q5_K for the first
  ``attn_v`` layers of Q4_K_S and Q3_K_M ...); a tensor whose rows are not a whole number of
  blocks falls back as ``tensor_type_fallback`` does. The layer of a tensor is its counter in
  llama.cpp's tensor order (by layer, then name: ``weight_name_comparer``), that is its index.
  F32, F16 and BF16 files are as ``convert_hf_to_gguf.py --outtype`` writes them: every 2-D
  weight in that type, 1-D ones in F32.

Q/K weights are not permuted (llama.cpp's converter permutes real checkpoints for its RoPE
layout); with random weights it changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mfubench.errors import ConfigError, MfubenchError
from mfubench.model.ggml_types import BY_NAME, GGMLType


@dataclass(frozen=True)
class FileType:
    """A llama.cpp file type (``llama_ftype`` in ``include/llama.h``) and its default tensor type."""

    name: str
    ftype: int
    default: str


#: The file types this writer produces: ``llama_ftype`` values from llama.cpp ``include/llama.h``
#: and defaults from ``llama_ftype_get_default_type`` (``src/llama-quant.cpp``). The IQ1/IQ2/IQ3
#: mixtures are left out: llama-quantize refuses them without an importance matrix.
FILE_TYPES: dict[str, FileType] = {ft.name: ft for ft in (
    FileType("F32", 0, "F32"), FileType("F16", 1, "F16"), FileType("BF16", 32, "BF16"),
    FileType("Q4_0", 2, "Q4_0"), FileType("Q4_1", 3, "Q4_1"), FileType("Q5_0", 8, "Q5_0"),
    FileType("Q5_1", 9, "Q5_1"), FileType("Q8_0", 7, "Q8_0"),
    FileType("Q2_K", 10, "Q2_K"), FileType("Q3_K_S", 11, "Q3_K"), FileType("Q3_K_M", 12, "Q3_K"),
    FileType("Q3_K_L", 13, "Q3_K"), FileType("Q4_K_S", 14, "Q4_K"), FileType("Q4_K_M", 15, "Q4_K"),
    FileType("Q5_K_S", 16, "Q5_K"), FileType("Q5_K_M", 17, "Q5_K"), FileType("Q6_K", 18, "Q6_K"),
    FileType("IQ4_NL", 25, "IQ4_NL"), FileType("IQ4_XS", 30, "IQ4_XS"),
)}

#: Types the gguf package quantizes itself (``gguf.quants.quantize``).
_GGUF_QUANTIZES = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"}

#: Byte offsets of the fp16 scales in one block (ggml-common.h ``block_*`` field order), for the
#: types written as random blocks.
_FP16_SCALES: dict[str, tuple[int, ...]] = {
    "Q2_K": (80, 82),    # scales[16], qs[64], d, dmin
    "Q3_K": (108,),      # hmask[32], qs[64], scales[12], d
    "Q4_K": (0, 2),      # d, dmin, scales[12], qs[128]
    "Q5_K": (0, 2),      # d, dmin, scales[12], qh[32], qs[128]
    "Q6_K": (208,),      # ql[128], qh[64], scales[16], d
    "IQ4_NL": (0,),      # d, qs[16]
    "IQ4_XS": (0,),      # d, scales_h, scales_l[4], qs[128]
    "IQ2_XXS": (0,), "IQ2_XS": (0,), "IQ2_S": (0,), "IQ3_XXS": (0,), "IQ3_S": (0,),
    "IQ1_S": (0,), "Q1_0": (0,),
}

# ggml-org/llama.cpp gguf-py TokenType values (tokenizer.ggml.token_type)
_NORMAL, _CONTROL, _USER_DEFINED, _UNUSED = 1, 3, 4, 5


@dataclass(frozen=True)
class PlannedTensor:
    """A tensor to write: its GGUF name, ggml shape (row length first) and type."""

    name: str
    shape: tuple[int, ...]
    type: GGMLType
    layer: int | None = None


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama-quant.cpp ``use_more_bits``: the first and last eighth, and every third layer."""
    return (i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8
            or (i_layer - n_layers // 8) % 3 == 2)


def _fallback(type_name: str, ncols: int) -> str:
    """llama-quant.cpp ``tensor_type_fallback``: a type whose blocks divide ``ncols``."""
    if ncols % BY_NAME[type_name].block_size == 0:
        return type_name
    table = {"IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL",
             "IQ2_S": "IQ4_NL", "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL",
             "Q2_K": "Q4_0", "Q3_K": "Q4_0", "TQ1_0": "Q4_0", "TQ2_0": "Q4_0",
             "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
    if type_name not in table:
        raise ConfigError(f"no fallback type for {type_name} rows of {ncols} values")
    out = table[type_name]
    return out if ncols % BY_NAME[out].block_size == 0 else "F16"


def tensor_type(ftype: str, name: str, shape: tuple[int, ...], layer: int | None,
                n_layers: int, n_gqa: int) -> str:
    """The ggml type ``ftype`` gives tensor ``name`` of a dense Llama (llama_tensor_get_type)."""
    ft = FILE_TYPES[ftype]
    if len(shape) < 2 or not name.endswith("weight") or "_norm.weight" in name:
        return "F32"  # norms (and any 1-D tensor) stay F32 in converted files
    if ft.default in ("F32", "F16", "BF16"):
        return ft.default  # not quantized: llama_tensor_get_type_impl is not consulted
    new = ft.default
    i = layer if layer is not None else 0
    n = n_layers
    if name == "output.weight":
        new = "Q8_0" if shape[0] % BY_NAME[new].block_size else ("Q6_K" if new != "Q8_0" else new)
    elif name == "token_embd.weight":
        pass  # changed only for IQ1/IQ2/IQ3_XXS/TQ file types, which are not written here
    elif name.endswith("attn_v.weight"):
        if ftype == "Q2_K":
            new = "Q4_K" if n_gqa >= 4 else "Q3_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < 2 else "Q4_K"
        elif ftype == "Q3_K_L":  # noqa: SIM114 (llama-quant.cpp's branches, in its order)
            new = "Q5_K"
        elif ftype in ("IQ4_NL", "IQ4_XS") and n_gqa >= 4:
            new = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i < 4:
            new = "Q5_K"
    elif name.endswith("ffn_down.weight"):
        if ftype == "Q2_K":
            new = "Q3_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < n // 16 else "Q4_K"
        elif ftype == "Q3_K_L":
            new = "Q5_K"
        elif ftype == "Q4_K_M":
            if _use_more_bits(i, n):
                new = "Q6_K"
        elif i < n // 8 and ftype in ("IQ4_NL", "IQ4_XS"):
            new = "Q5_K"  # without an importance matrix
        elif ftype == "Q5_K_M" and _use_more_bits(i, n):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i < n // 8:
            new = "Q5_K"
    elif name.endswith("attn_output.weight"):
        new = {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}.get(ftype, new)
    return _fallback(new, shape[0])


def plan_tensors(config: dict[str, Any], ftype: str) -> list[PlannedTensor]:
    """The tensors of a Llama ``config`` in ``ftype``, in llama.cpp's order (by layer, then name)."""
    if ftype not in FILE_TYPES:
        raise ConfigError(f"unknown --type {ftype!r}; choose one of {', '.join(FILE_TYPES)}")
    h = int(config["hidden_size"])
    n_layers = int(config["num_hidden_layers"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or h // heads)
    ff = int(config["intermediate_size"])
    vocab = int(config["vocab_size"])
    n_gqa = heads // kv_heads

    def make(name: str, shape: tuple[int, ...], layer: int | None = None) -> PlannedTensor:
        t = tensor_type(ftype, name, shape, layer, n_layers, n_gqa)
        return PlannedTensor(name, shape, BY_NAME[t], layer)

    out = [make("output.weight", (h, vocab)), make("output_norm.weight", (h,)),
           make("token_embd.weight", (h, vocab))]
    if config.get("tie_word_embeddings"):
        # no output.weight: the shared embedding is typed as the output (llama-quant.cpp)
        tied = tensor_type(ftype, "output.weight", (h, vocab), None, n_layers, n_gqa)
        out = [out[1], PlannedTensor("token_embd.weight", (h, vocab), BY_NAME[tied])]
    for i in range(n_layers):
        blk = f"blk.{i}."
        layer = [
            (blk + "attn_k.weight", (h, kv_heads * head_dim)),
            (blk + "attn_norm.weight", (h,)),
            (blk + "attn_output.weight", (heads * head_dim, h)),
            (blk + "attn_q.weight", (h, heads * head_dim)),
            (blk + "attn_v.weight", (h, kv_heads * head_dim)),
            (blk + "ffn_down.weight", (ff, h)),
            (blk + "ffn_gate.weight", (h, ff)),
            (blk + "ffn_norm.weight", (h,)),
            (blk + "ffn_up.weight", (h, ff)),
        ]
        out.extend(make(name, shape, i) for name, shape in layer)
    return out


def random_tensor(t: PlannedTensor, rng: np.random.Generator) -> npt.NDArray[Any]:
    """Random data of ``t``'s type: a float array (F32/F16) or the raw bytes of its blocks,
    shaped (rows..., bytes per row) as ``GGUFWriter.add_tensor(raw_dtype=...)`` takes them."""
    from gguf import quants
    from gguf.constants import GGMLQuantizationType

    np_shape = tuple(reversed(t.shape))  # numpy order: the row last
    name = t.type.name
    if name in _GGUF_QUANTIZES:
        if len(t.shape) == 1:
            values = (1.0 + 0.02 * rng.standard_normal(np_shape)).astype(np.float32)
        else:
            values = (0.02 * rng.standard_normal(np_shape)).astype(np.float32)
        if name == "F32":
            return values
        if name == "F16":
            return values.astype(np.float16)
        data: npt.NDArray[Any] = quants.quantize(values, GGMLQuantizationType[name])
        return data
    if name not in _FP16_SCALES:
        raise ConfigError(f"cannot write random {name} blocks")
    n_blocks = t.type.tensor_bytes(t.shape) // t.type.type_size
    blocks = rng.integers(0, 256, size=(n_blocks, t.type.type_size), dtype=np.uint8)
    for off in _FP16_SCALES[name]:
        scale = (1e-4 * rng.uniform(1.0, 2.0, n_blocks)).astype("<f2")
        blocks[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(*np_shape[:-1], t.type.row_bytes(t.shape[0]))


def read_vocab(folder: Path, vocab_size: int) -> tuple[list[str], list[int], list[str], dict[str, Any]]:
    """Tokens, token types and merges of ``tokenizer.json`` (a BPE model), and the special ids,
    as llama.cpp's ``get_vocab_base`` and ``gguf.SpecialVocab`` read them."""
    path = folder / "tokenizer.json"
    try:
        tok = json.loads(path.read_text("utf-8"))
        model = tok["model"]
        vocab: dict[str, int] = model["vocab"]
        raw_merges = model.get("merges") or []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot read the tokenizer ({exc})") from None
    if model.get("type") != "BPE":
        raise ConfigError(f"{path}: model type {model.get('type')!r}; only a BPE tokenizer is written")
    added = {a["id"]: a for a in tok.get("added_tokens") or []}
    by_id = {i: s for s, i in vocab.items()} | {i: a["content"] for i, a in added.items()}
    if by_id and max(by_id) >= vocab_size:
        raise ConfigError(f"{path}: token id {max(by_id)} is beyond vocab_size {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(_UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(_NORMAL if i not in added else
                         _CONTROL if added[i].get("special") else _USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in raw_merges]
    special: dict[str, Any] = {}
    ids = {s: i for i, s in enumerate(tokens)}
    tc_path = folder / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text("utf-8")) if tc_path.is_file() else {}
    for kind in ("bos", "eos", "unk", "pad"):
        content = tc.get(f"{kind}_token")
        if isinstance(content, dict):
            content = content.get("content")
        if content is None and kind == "unk":
            content = model.get("unk_token")
        if isinstance(content, str) and content in ids:
            special[kind] = ids[content]
    for key in ("add_bos_token", "add_eos_token"):
        if isinstance(tc.get(key), bool):
            special[key] = tc[key]
    return tokens, types, merges, special


def write_gguf(folder: str | Path, out: str | Path, ftype: str = "F16", seed: int = 0) -> Path:
    """Write the Llama model of ``folder`` as ``out`` in ``ftype`` (random weights); return ``out``."""
    import gguf

    folder, out = Path(folder), Path(out)
    try:
        config = json.loads((folder / "config.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder / 'config.json'}: cannot read ({exc})") from None
    if config.get("model_type") != "llama":
        raise ConfigError(f"{folder}: model_type {config.get('model_type')!r}; only llama is written")
    ftype = ftype.upper()
    planned = plan_tensors(config, ftype)
    h, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or h // heads)
    vocab_size = int(config["vocab_size"])
    tokens, types, merges, special = read_vocab(folder, vocab_size)

    w = gguf.GGUFWriter(str(out), "llama")
    w.add_type("model")
    w.add_name(folder.name)
    w.add_block_count(int(config["num_hidden_layers"]))
    if config.get("max_position_embeddings"):
        w.add_context_length(int(config["max_position_embeddings"]))
    w.add_embedding_length(h)
    w.add_feed_forward_length(int(config["intermediate_size"]))
    w.add_head_count(heads)
    w.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    if config.get("rope_theta") is not None:
        w.add_rope_freq_base(float(config["rope_theta"]))
    if config.get("rms_norm_eps") is not None:
        w.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    if config.get("head_dim") is not None:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_file_type(FILE_TYPES[ftype].ftype)
    w.add_vocab_size(vocab_size)
    w.add_rope_dimension_count(head_dim)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for kind, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id),
                      ("unk", w.add_unk_token_id), ("pad", w.add_pad_token_id)):
        if kind in special:
            add(special[kind])
    if "add_bos_token" in special:
        w.add_add_bos_token(special["add_bos_token"])
    if "add_eos_token" in special:
        w.add_add_eos_token(special["add_eos_token"])

    rng = np.random.default_rng(seed)
    for t in planned:
        data = random_tensor(t, rng)
        raw = None if t.type.name in ("F32", "F16") else gguf.GGMLQuantizationType[t.type.name]
        w.add_tensor(t.name, data, raw_dtype=raw)
    out.parent.mkdir(parents=True, exist_ok=True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mfubench.model.gguf_writer",
        description="Write a Llama model folder (config.json + tokenizer.json) as GGUF, with "
                    "random weights, in a llama.cpp file type.")
    parser.add_argument("folder", help="the model folder (python -m mfubench.measure.tiny_model)")
    parser.add_argument("out", help="the .gguf file to write")
    parser.add_argument("--type", default="F16", dest="ftype", metavar="TYPE",
                        help=f"file type: {', '.join(FILE_TYPES)} (default F16)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    args = parser.parse_args(argv)
    try:
        path = write_gguf(args.folder, args.out, args.ftype, args.seed)
    except MfubenchError as exc:
        print(f"gguf_writer: error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
