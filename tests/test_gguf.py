"""GGUF: ggml's block layouts, our header reader, GGUF -> ModelSpec, and the writer.

The "show" of issue 14 item 1: for each type written here, the bytes our reader gives each tensor
equal the ``gguf`` package's reader (an independent implementation) and the real gaps between
consecutive tensors in the file; the counted weight bytes of the spec equal the sum, exactly;
and every file loads in llama.cpp (xllamacpp) and generates tokens.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfubench.counting.memory import param_breakdown, params_total, weight_bytes
from mfubench.errors import ConfigError, InputFileError, MfubenchError
from mfubench.measure.tiny_model import DEMO, TEST, build_tiny_model, llama_config
from mfubench.model.ggml_types import BY_ID, BY_NAME, GGML_TYPES, ggml_type, tensor_bytes
from mfubench.model.gguf_file import read_gguf, read_gguf_bytes
from mfubench.model.gguf_model import gguf_config, load_gguf, looks_like_gguf
from mfubench.model.gguf_weights import LLAMA_FTYPES, GGUFWeights, tensor_kind
from mfubench.model.hf_config import parse_config

gguf = pytest.importorskip("gguf")

from mfubench.model import gguf_writer  # noqa: E402  (needs numpy and gguf)
from mfubench.model.gguf_writer import FILE_TYPES, plan_tensors, write_gguf  # noqa: E402

#: The file types the issue asks for, then the others the writer knows.
REQUIRED = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_XS"]
OTHERS = [t for t in FILE_TYPES if t not in REQUIRED]


def _align(n: int, a: int) -> int:
    return n + (a - n % a) % a


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), TEST)


@pytest.fixture(scope="module")
def files(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("gguf")
    return {t: write_gguf(folder, out / f"tiny-{t}.gguf", t) for t in REQUIRED + OTHERS}


# -- ggml types ------------------------------------------------------------------------------


def test_types_match_the_gguf_package_quant_sizes() -> None:
    """Every type the gguf package knows has our id, name, block size and bytes per block.

    One known difference: gguf-py still says Q8_1 is 40 bytes (its old ``float d, s`` layout);
    ggml's ``block_q8_1`` has been two fp16 + 32 quants = 36 bytes (``static_assert`` in
    ggml-common.h) since that file was created (ggml 67f59ec2, 2024-03-14). Q8_1 is ggml's
    activation-side type and never stored in model files.
    """
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    differ = {}
    for qt in GGMLQuantizationType:
        ours = BY_ID[qt.value]
        assert ours.name == qt.name
        if (ours.block_size, ours.type_size) != GGML_QUANT_SIZES[qt]:
            differ[qt.name] = ((ours.block_size, ours.type_size), GGML_QUANT_SIZES[qt])
    assert differ == {"Q8_1": ((32, 36), (32, 40))}
    newer = set(BY_NAME) - {qt.name for qt in GGMLQuantizationType}
    assert newer <= {"Q2_0"}  # added to ggml after gguf-py 0.19


def test_block_layouts() -> None:
    assert (BY_NAME["Q4_K"].block_size, BY_NAME["Q4_K"].type_size) == (256, 144)
    assert BY_NAME["Q4_K"].bits_per_value == 4.5
    assert BY_NAME["Q6_K"].bits_per_value == 6.5625
    assert BY_NAME["Q8_0"].bits_per_value == 8.5
    assert BY_NAME["IQ4_XS"].bits_per_value == 4.25
    assert ggml_type("q4_k") is BY_NAME["Q4_K"] and ggml_type(12) is BY_NAME["Q4_K"]
    assert tensor_bytes("Q4_K", (256, 10)) == 1440
    assert tensor_bytes("F32", ()) == 4
    with pytest.raises(ValueError, match="whole number of blocks"):
        tensor_bytes("Q4_K", (100, 3))
    with pytest.raises(KeyError, match="removed"):
        ggml_type(31)
    assert len({t.id for t in GGML_TYPES}) == len(GGML_TYPES)


def test_writer_file_type_ids_are_llama_h_ids() -> None:
    for name, ft in FILE_TYPES.items():
        assert LLAMA_FTYPES[ft.ftype] == name


# -- files written here, per type ----------------------------------------------------------


@pytest.mark.parametrize("ftype", REQUIRED + OTHERS)
def test_reader_bytes_equal_gguf_reader_and_the_gaps(files: dict[str, Path], ftype: str) -> None:
    path = files[ftype]
    ours = read_gguf(path)
    theirs = gguf.GGUFReader(str(path))
    assert ours.data_offset == theirs.data_offset and ours.alignment == theirs.alignment == 32
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for a, b in zip(ours.tensors, theirs.tensors, strict=True):
        assert a.n_bytes == int(b.n_bytes), a.name
        assert a.type.id == int(b.tensor_type) and list(a.shape) == [int(x) for x in b.shape]
        assert a.data_start == int(b.data_offset) and a.n_elements == int(b.n_elements)
    # the real gaps between consecutive tensors in the data section: each tensor's bytes, padded
    starts = sorted(ours.tensors, key=lambda t: t.offset)
    ends = [t.data_start for t in starts[1:]] + [ours.file_size]
    for t, nxt in zip(starts, ends, strict=True):
        gap = nxt - t.data_start
        assert t.n_bytes <= gap < t.n_bytes + ours.alignment, t.name
        assert gap == _align(t.n_bytes, ours.alignment), t.name
    assert ours.file_size == ours.data_offset + sum(_align(t.n_bytes, 32) for t in ours.tensors)


@pytest.mark.parametrize("ftype", REQUIRED + OTHERS)
def test_counted_weight_bytes_equal_the_tensor_data(files: dict[str, Path], ftype: str) -> None:
    path = files[ftype]
    f = read_gguf(path)
    spec = load_gguf(path)
    assert isinstance(spec.weights, GGUFWeights) and spec.weights.exact
    assert spec.name == str(path) and spec.weights.name == ftype
    counted = sum(weight_bytes(spec).values())
    assert abs(counted - f.tensor_data_bytes) < 1e-6
    assert spec.weights.counted_bytes == spec.weights.tensor_data_bytes == f.tensor_data_bytes
    # per ggml type: the bytes of each type's tensors are their blocks, exactly
    for name, count, nbytes in spec.weights.tensor_types:
        ts = [t for t in f.tensors if t.type.name == name]
        t0 = BY_NAME[name]
        assert count == len(ts)
        assert nbytes == sum(t.n_elements // t.type.block_size * t0.type_size for t in ts)
    # parameters: the tensors' elements, and the HF config's own count
    assert params_total(spec) == sum(t.n_elements for t in f.tensors)
    assert params_total(spec) == params_total(parse_config(llama_config(TEST)))
    assert param_breakdown(spec) == param_breakdown(parse_config(llama_config(TEST)))


def test_bytes_per_type_of_the_required_files(files: dict[str, Path]) -> None:
    """The headline figures: weight bytes and types of the TEST model in each file type."""
    table = {t: load_gguf(files[t]).weights for t in REQUIRED}
    types = {t: {n for n, _, _ in w.tensor_types} for t, w in table.items()}  # type: ignore[attr-defined]
    assert types["F32"] == {"F32"}
    assert types["F16"] == {"F16", "F32"} and types["BF16"] == {"BF16", "F32"}
    assert types["Q8_0"] == {"Q8_0", "F32"}
    assert types["Q4_0"] == {"Q4_0", "Q6_K", "F32"}  # output.weight goes to Q6_K
    assert types["Q4_K_M"] == {"Q4_K", "Q6_K", "F32"}
    assert types["Q5_K_M"] == {"Q5_K", "Q6_K", "F32"}
    assert types["Q6_K"] == {"Q6_K", "F32"}
    assert types["IQ4_XS"] == {"IQ4_XS", "Q6_K", "F32"}
    n = params_total(parse_config(llama_config(TEST)))
    f32 = table["F32"].counted_bytes  # type: ignore[attr-defined]
    assert f32 == 4 * n
    assert table["F16"].counted_bytes == table["BF16"].counted_bytes  # type: ignore[attr-defined]
    # the table of docs/counting.md
    assert {t: w.counted_bytes for t, w in table.items()} == {  # type: ignore[attr-defined]
        "F32": 26_223_616, "F16": 13_116_416, "BF16": 13_116_416, "Q8_0": 6_972_416,
        "Q6_K": 5_385_216, "Q5_K_M": 4_836_864, "Q4_K_M": 4_320_768, "Q4_0": 4_236_288,
        "IQ4_XS": 4_097_024,
    }


def test_q4_k_m_mixture_follows_llama_quant() -> None:
    """use_more_bits(i, n): the first and last eighth and every third layer get Q6_K attn_v and
    ffn_down; the output Q6_K; the rest Q4_K; norms F32 (llama-quant.cpp)."""
    def types(cfg: dict[str, Any], ftype: str) -> dict[str, str]:
        return {t.name: t.type.name for t in plan_tensors(cfg, ftype)}

    tiny = types(llama_config(TEST), "Q4_K_M")
    assert tiny["output.weight"] == "Q6_K" and tiny["token_embd.weight"] == "Q4_K"
    for i in range(4):
        want = "Q6_K" if i in (2, 3) else "Q4_K"
        assert tiny[f"blk.{i}.attn_v.weight"] == tiny[f"blk.{i}.ffn_down.weight"] == want
        assert tiny[f"blk.{i}.attn_q.weight"] == tiny[f"blk.{i}.ffn_up.weight"] == "Q4_K"
        assert tiny[f"blk.{i}.attn_norm.weight"] == "F32"
    demo = types(llama_config(DEMO), "Q4_K_M")  # 12 layers: 0, 3, 6, 9, 10, 11
    more = [i for i in range(12) if demo[f"blk.{i}.ffn_down.weight"] == "Q6_K"]
    assert more == [0, 3, 6, 9, 10, 11]
    assert [i for i in range(12) if demo[f"blk.{i}.attn_v.weight"] == "Q6_K"] == more
    q3 = types(llama_config(DEMO), "Q3_K_M")
    assert [q3[f"blk.{i}.attn_v.weight"] for i in range(3)] == ["Q5_K", "Q5_K", "Q4_K"]
    assert q3["blk.0.attn_output.weight"] == "Q4_K" and q3["blk.0.ffn_up.weight"] == "Q3_K"
    assert types(llama_config(TEST), "Q8_0")["output.weight"] == "Q8_0"
    odd = dict(llama_config(TEST), intermediate_size=96)  # ffn_down rows of 96: no Q4_K blocks
    assert types(odd, "Q4_K_M")["blk.0.ffn_down.weight"] == "Q5_0"  # tensor_type_fallback


def test_tied_embeddings(folder: Path, tmp_path: Path) -> None:
    tied = tmp_path / "tied"
    tied.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tied / name).write_bytes((folder / name).read_bytes())
    config = dict(llama_config(TEST), tie_word_embeddings=True)
    (tied / "config.json").write_text(json.dumps(config))
    path = write_gguf(tied, tmp_path / "tied.gguf", "Q4_K_M")
    f = read_gguf(path)
    assert f.tensor("output.weight") is None
    assert f.tensor("token_embd.weight").type.name == "Q6_K"  # type: ignore[union-attr]
    spec = load_gguf(path)
    assert spec.tie_word_embeddings
    assert abs(sum(weight_bytes(spec).values()) - f.tensor_data_bytes) < 1e-6
    assert params_total(spec) == sum(t.n_elements for t in f.tensors)
    assert params_total(spec) == params_total(parse_config(config))


def test_metadata_and_tokenizer_as_llama_cpp_writes_them(files: dict[str, Path], folder: Path) -> None:
    f = read_gguf(files["Q4_K_M"])
    md = f.metadata
    assert md["general.architecture"] == "llama" and md["general.file_type"] == 15
    assert md["llama.block_count"] == 4 and md["llama.embedding_length"] == 256
    assert md["llama.attention.head_count_kv"] == 2 and md["llama.attention.key_length"] == 64
    assert md["llama.rope.dimension_count"] == 64 and md["llama.vocab_size"] == 8192
    assert md["tokenizer.ggml.model"] == "gpt2" and md["tokenizer.ggml.pre"] == "gpt-2"
    tok = json.loads((folder / "tokenizer.json").read_text())
    tokens = md["tokenizer.ggml.tokens"]
    assert len(tokens) == 8192 and tokens[:3] == ("<unk>", "<s>", "</s>")
    assert all(tokens[i] == s for s, i in tok["model"]["vocab"].items())
    assert md["tokenizer.ggml.token_type"][:4] == (3, 3, 3, 1)
    assert len(md["tokenizer.ggml.merges"]) == len(tok["model"]["merges"])
    assert (md["tokenizer.ggml.bos_token_id"], md["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert md["tokenizer.ggml.add_bos_token"] is True
    assert f.value_types["tokenizer.ggml.tokens"] == "array[string]"
    cfg = gguf_config(f)
    assert cfg["head_dim"] == 64 and cfg["max_position_embeddings"] == 4096
    assert looks_like_gguf(files["Q4_K_M"]) and not looks_like_gguf(folder / "config.json")
    assert not looks_like_gguf(folder / "missing.gguf")


def test_writer_cli(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.gguf"
    assert gguf_writer.main([str(folder), str(out), "--type", "q5_k_m"]) == 0
    assert load_gguf(out).weights.name == "Q5_K_M"
    assert gguf_writer.main([str(folder), str(out), "--type", "Q9"]) == 2
    assert "unknown --type 'Q9'" in capsys.readouterr().err


# -- other architectures (synthetic files written with the gguf package) ---------------------


def _synthetic(path: Path, arch: str, cfg: dict[str, Any], tensors: dict[str, tuple[int, ...]]) -> Path:
    import numpy as np

    w = gguf.GGUFWriter(str(path), arch)
    for key, value in cfg.items():
        if isinstance(value, int):
            w.add_uint32(f"{arch}.{key}", value)
        else:
            w.add_float32(f"{arch}.{key}", value)
    for name, shape in tensors.items():
        data = np.zeros(tuple(reversed(shape)), dtype=np.float32)
        if len(shape) >= 2 and shape[0] % 32 == 0:
            w.add_tensor(name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _qwen_tensors(h: int, layers: int, heads: int, kv: int, d: int, vocab: int, *,
                  bias: bool = False, qk_norm: bool = False, ff: int = 0, experts: int = 0,
                  moe_ff: int = 0, tied: bool = False) -> dict[str, tuple[int, ...]]:
    t: dict[str, tuple[int, ...]] = {"token_embd.weight": (h, vocab), "output_norm.weight": (h,)}
    if not tied:
        t["output.weight"] = (h, vocab)
    for i in range(layers):
        b = f"blk.{i}."
        t |= {b + "attn_norm.weight": (h,), b + "ffn_norm.weight": (h,),
              b + "attn_q.weight": (h, heads * d), b + "attn_k.weight": (h, kv * d),
              b + "attn_v.weight": (h, kv * d), b + "attn_output.weight": (heads * d, h)}
        if bias:
            t |= {b + "attn_q.bias": (heads * d,), b + "attn_k.bias": (kv * d,),
                  b + "attn_v.bias": (kv * d,)}
        if qk_norm:
            t |= {b + "attn_q_norm.weight": (d,), b + "attn_k_norm.weight": (d,)}
        if experts:
            t |= {b + "ffn_gate_inp.weight": (h, experts),
                  b + "ffn_gate_exps.weight": (h, moe_ff, experts),
                  b + "ffn_up_exps.weight": (h, moe_ff, experts),
                  b + "ffn_down_exps.weight": (moe_ff, h, experts)}
        else:
            t |= {b + "ffn_gate.weight": (h, ff), b + "ffn_up.weight": (h, ff),
                  b + "ffn_down.weight": (ff, h)}
    return t


def _check_exact(path: Path, hf: dict[str, Any]) -> None:
    f = read_gguf(path)
    spec = load_gguf(path)
    assert abs(sum(weight_bytes(spec).values()) - f.tensor_data_bytes) < 1e-6
    assert params_total(spec) == sum(t.n_elements for t in f.tensors)
    assert param_breakdown(spec) == param_breakdown(parse_config(hf))


def test_qwen2_qwen3_and_qwen3moe(tmp_path: Path) -> None:
    base = {"embedding_length": 64, "block_count": 2, "attention.head_count": 4,
            "attention.head_count_kv": 2, "context_length": 512, "rope.freq_base": 1e6}
    hf = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "vocab_size": 96, "max_position_embeddings": 512}
    p = _synthetic(tmp_path / "q2.gguf", "qwen2", base | {"feed_forward_length": 128},
                   _qwen_tensors(64, 2, 4, 2, 16, 96, bias=True, ff=128, tied=True))
    _check_exact(p, hf | {"model_type": "qwen2", "intermediate_size": 128, "tie_word_embeddings": True})
    p = _synthetic(tmp_path / "q3.gguf", "qwen3", base | {"feed_forward_length": 128,
                   "attention.key_length": 32, "attention.value_length": 32},
                   _qwen_tensors(64, 2, 4, 2, 32, 96, qk_norm=True, ff=128))
    _check_exact(p, hf | {"model_type": "qwen3", "intermediate_size": 128, "head_dim": 32})
    moe = {"expert_count": 8, "expert_used_count": 2, "expert_feed_forward_length": 32,
           "attention.key_length": 32, "attention.value_length": 32}
    p = _synthetic(tmp_path / "q3moe.gguf", "qwen3moe", base | moe,
                   _qwen_tensors(64, 2, 4, 2, 32, 96, qk_norm=True, experts=8, moe_ff=32))
    spec = load_gguf(p)
    assert spec.is_moe and spec.model_type == "qwen3_moe"
    assert spec.weights.bytes_per_param("expert") == 34 / 32 == spec.weights.bytes_per_param("linear")
    assert spec.weights.bytes_per_param("router") == 34 / 32  # Q8_0 here (real files: F32)
    _check_exact(p, hf | {"model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2,
                          "moe_intermediate_size": 32, "intermediate_size": 32, "head_dim": 32})


def test_refuses_other_architectures_and_layouts(tmp_path: Path) -> None:
    base = {"embedding_length": 64, "block_count": 2, "attention.head_count": 4,
            "feed_forward_length": 128}
    p = _synthetic(tmp_path / "g.gguf", "gemma3", base, _qwen_tensors(64, 2, 4, 4, 16, 96, ff=128))
    with pytest.raises(ConfigError, match="architecture 'gemma3' is not supported"):
        load_gguf(p)
    # metadata saying 3 layers over tensors of 2: the linear parameters disagree
    p = _synthetic(tmp_path / "l.gguf", "llama", base | {"block_count": 3},
                   _qwen_tensors(64, 2, 4, 4, 16, 96, ff=128))
    with pytest.raises(ConfigError, match=r"l\.gguf: the file's linear tensors hold"):
        load_gguf(p)
    p = _synthetic(tmp_path / "m.gguf", "llama", {k: v for k, v in base.items() if k != "block_count"},
                   _qwen_tensors(64, 2, 4, 4, 16, 96, ff=128))
    with pytest.raises(InputFileError, match=r"m\.gguf: metadata 'llama.block_count': missing"):
        load_gguf(p)


# -- malformed files ------------------------------------------------------------------------


def _s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def _kv_u32(key: str, value: int) -> bytes:
    return _s(key) + struct.pack("<II", 4, value)


def _build(*, magic: bytes = b"GGUF", version: int = 3, kvs: list[bytes] | None = None,
           tensors: list[tuple[str, tuple[int, ...], int, int]] | None = None,
           data: bytes = b"", n_tensors: int | None = None, n_kv: int | None = None,
           alignment: int = 32) -> bytes:
    kvs = [_s("general.architecture") + struct.pack("<I", 8) + _s("llama")] if kvs is None else kvs
    tensors = [("a.weight", (32, 2), 0, 0)] if tensors is None else tensors
    out = magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                              len(kvs) if n_kv is None else n_kv)
    out += b"".join(kvs)
    for name, shape, type_id, offset in tensors:
        out += _s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<IQ", type_id, offset)
    out += b"\0" * ((alignment - len(out) % alignment) % alignment)
    return out + (data or b"\1" * 256)


def test_a_hand_built_file_reads() -> None:
    f = read_gguf_bytes(_build(), "x.gguf")
    assert f.architecture == "llama" and f.tensors[0].n_bytes == 256 and f.data_offset % 32 == 0


@pytest.mark.parametrize(("blob", "field"), [
    (_build(magic=b"GGML"), "header: magic"),
    (_build(version=1), "header: version: unsupported version 1"),
    (_build(version=4), "header: version: unsupported version 4"),
    (_build(version=3 << 24), "big-endian"),
    (_build()[:10], "header: tensor_count: truncated"),
    (_build(n_tensors=1 << 40), "header: tensor_count"),
    (_build(n_kv=1 << 40), "header: metadata_kv_count"),
    (_build(kvs=[struct.pack("<Q", 1 << 62) + b"x"]), "metadata key #0: string of"),
    (_build(kvs=[_s(b"\xff\xfe") + struct.pack("<IB", 0, 1)]), "not valid UTF-8"),
    (_build(kvs=[_s("k") + struct.pack("<IB", 7, 2)]), "metadata 'k': bool byte is 2"),
    (_build(kvs=[_s("k") + struct.pack("<I", 99)]), "metadata 'k': unknown value type 99"),
    (_build(kvs=[_s("k") + struct.pack("<IIQ", 9, 8, 1 << 50)]), "metadata 'k': array of"),
    (_build(kvs=[_kv_u32("k", 1), _kv_u32("k", 2)]), "duplicate key 'k'"),
    (_build(kvs=[_kv_u32("general.alignment", 24)]), "'general.alignment': 24 is not a power of 2"),
    (_build(kvs=[_s("general.alignment") + struct.pack("<IQ", 10, 32)]), "must be uint32"),
    (_build(tensors=[("a.weight", (32,), 77, 0)]), "tensor 'a.weight' (type): unknown ggml type id 77"),
    (_build(tensors=[("a.weight", (32,), 31, 0)]), "(Q4_0_4_4) was removed"),
    (_build(tensors=[("a.weight", (100,), 12, 0)]), "not a whole number of Q4_K blocks"),
    (_build(tensors=[("a.weight", (1, 1, 1, 1, 1), 0, 0)]), "(n_dims): 5 dimensions"),
    (_build(tensors=[("a.weight", (1 << 62, 4), 0, 0)]), "more than 2^63 elements"),
    (_build(tensors=[("a.weight", (32,), 0, 16)]), "(offset): 16 is not a multiple of the alignment"),
    (_build(tensors=[("a.weight", (32, 100), 0, 0)]), "lies beyond the end of the file"),
    (_build(tensors=[("a.weight", (32,), 0, 0), ("b.weight", (32,), 0, 64)]), "overlaps tensor"),
    (_build(tensors=[("a.weight", (8,), 0, 0), ("a.weight", (8,), 0, 32)]), "duplicate tensor name"),
    (_build(tensors=[("x" * 64, (8,), 0, 0)]), "above ggml's limit of 63"),
    (_build(kvs=[_kv_u32("general.alignment", 1 << 30)]), "data section: starts at"),
])
def test_malformed_files_are_refused_naming_the_field(blob: bytes, field: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(blob)
    with pytest.raises(InputFileError) as err:
        read_gguf(path)
    assert str(err.value).startswith(f"{path}: ") and field in str(err.value)


def test_unreadable_and_tiny_files(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="cannot read"):
        read_gguf(tmp_path / "absent.gguf")
    (tmp_path / "e.gguf").write_bytes(b"GG")
    with pytest.raises(InputFileError, match="e.gguf: header: truncated"):
        read_gguf(tmp_path / "e.gguf")
    with pytest.raises(InputFileError):
        read_gguf(tmp_path)  # a folder


# -- fuzzing ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_real_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real file written with the gguf package: every value type, arrays, three tensor types."""
    import numpy as np

    path = tmp_path_factory.mktemp("fuzz") / "small.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint8("t.u8", 7)
    w.add_int8("t.i8", -7)
    w.add_uint16("t.u16", 700)
    w.add_int16("t.i16", -700)
    w.add_uint32("t.u32", 70000)
    w.add_int32("t.i32", -70000)
    w.add_float32("t.f32", 0.5)
    w.add_uint64("t.u64", 1 << 40)
    w.add_int64("t.i64", -(1 << 40))
    w.add_float64("t.f64", 0.25)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo")
    w.add_array("t.arr_s", ["a", "bb", "ccc"])
    w.add_array("t.arr_i", [1, 2, 3])
    w.add_array("t.arr_b", [True, False])
    w.add_tensor("a.weight", np.ones((2, 32), dtype=np.float32))
    w.add_tensor("b.weight", gguf.quants.quantize(np.ones((2, 64), dtype=np.float32),
                                                  gguf.GGMLQuantizationType.Q8_0),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("c.weight", np.zeros((1, 144), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = path.read_bytes()
    f = read_gguf_bytes(data)
    assert f.metadata["t.str"] == "héllo" and f.metadata["t.arr_s"] == ("a", "bb", "ccc")
    assert f.metadata["t.bool"] is True and f.metadata["t.arr_b"] == (True, False)
    assert [t.type.name for t in f.tensors] == ["F32", "Q8_0", "Q4_K"]
    return data


def _last_data_end(data: bytes) -> int:
    f = read_gguf_bytes(data)
    return max(t.data_start + t.n_bytes for t in f.tensors)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_truncations_raise_input_file_error(small_real_file: bytes, data: st.DataObject) -> None:
    end = _last_data_end(small_real_file)
    cut = data.draw(st.integers(0, end - 1))
    with pytest.raises(InputFileError):
        read_gguf_bytes(small_real_file[:cut], "cut.gguf")


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_byte_flips_never_crash(small_real_file: bytes, data: st.DataObject) -> None:
    blob = bytearray(small_real_file)
    header_end = read_gguf_bytes(small_real_file).data_offset
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, header_end - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    try:
        f = read_gguf_bytes(bytes(blob), "flip.gguf")
    except InputFileError:
        return
    # a flip the format cannot notice (a value, a name): what it reads is still consistent
    for t in f.tensors:
        assert t.data_start + t.n_bytes <= f.file_size


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_the_tiny_model_file(files: dict[str, Path], data: st.DataObject) -> None:
    """Truncations and flips of a full model file (its 8192-token vocabulary in the header):
    InputFileError, or a header whose tensors still lie inside the file."""
    real = files["Q4_K_M"].read_bytes()
    f = read_gguf_bytes(real)
    cut = data.draw(st.integers(0, _last_data_end(real) - 1))
    with pytest.raises(InputFileError):
        read_gguf_bytes(real[:cut], "cut.gguf")
    blob = bytearray(real)
    pos = data.draw(st.integers(0, f.data_offset - 1))
    blob[pos] ^= data.draw(st.integers(1, 255))
    try:
        flipped = read_gguf_bytes(bytes(blob), "flip.gguf")
    except InputFileError:
        return
    assert all(t.data_start + t.n_bytes <= flipped.file_size for t in flipped.tensors)


def test_load_gguf_errors_are_mfubench_errors(files: dict[str, Path], tmp_path: Path) -> None:
    """A damaged model file through load_gguf: one line naming the file, never a traceback."""
    real = bytearray(files["Q4_K_M"].read_bytes())
    f = read_gguf_bytes(bytes(real))
    key = b"llama.embedding_length"
    at = real.index(key) + len(key)
    real[at:at + 4] = struct.pack("<I", 8)  # value type string where a uint32 was
    path = tmp_path / "damaged.gguf"
    path.write_bytes(bytes(real))
    with pytest.raises(MfubenchError) as err:
        load_gguf(path)
    assert str(path) in str(err.value)
    assert f.tensors  # the undamaged file read


def test_tensor_kinds() -> None:
    assert tensor_kind("token_embd.weight") == "embedding"
    assert tensor_kind("output.weight") == "lm_head"
    assert tensor_kind("blk.3.attn_q.weight") == "linear"
    assert tensor_kind("blk.3.attn_q.bias") == "norm"
    assert tensor_kind("blk.3.ffn_down_exps.weight") == "expert"
    assert tensor_kind("blk.3.ffn_gate_inp.weight") == "router"
    assert tensor_kind("blk.3.ffn_gate_inp_shexp.weight") == "linear"
    assert tensor_kind("blk.3.attn_k_norm.weight") == "norm"
    assert tensor_kind("rope_freqs.weight") is None


# -- llama.cpp loads every file ------------------------------------------------------------


@pytest.mark.llamacpp
@pytest.mark.parametrize("ftype", REQUIRED + OTHERS)
def test_llama_cpp_loads_and_generates(files: dict[str, Path], ftype: str) -> None:
    try:
        import xllamacpp as xlc
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        pytest.skip(f"xllamacpp is not importable: {exc}")
    params = xlc.CommonParams()
    params.model.path = str(files[ftype])
    params.n_ctx = 256
    params.n_parallel = 1
    params.warmup = False
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    server = xlc.Server(params)
    try:
        out = server.handle_completions({"prompt": [1, 5, 6], "max_tokens": 4, "temperature": 0})
    finally:
        del server
    assert isinstance(out, dict), out
    assert out["usage"]["completion_tokens"] == 4 and out["usage"]["prompt_tokens"] == 3
    assert out["choices"][0]["finish_reason"] == "length"


def test_a_gguf_file_stands_where_a_config_does(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """``--model file.gguf`` on the commands: the weights are the file's bytes, the KV cache
    llama.cpp's default f16, and ``--dtype`` (which would replace the file's types) is refused."""
    from mfubench.cli import main
    from mfubench.model.gguf_file import read_gguf
    from mfubench.model.registry import load_model

    path = files["Q4_K_M"]
    spec = load_model(str(path))
    assert spec.weights.name == "Q4_K_M"
    assert main(["flops", str(path), "-i", "64", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    tensors = read_gguf(path).tensors
    assert doc["weight_bytes"] == sum(t.n_bytes for t in tensors)
    assert doc["kv_dtype"] == "fp16"  # K and V, 2 bytes each, per layer and KV head
    assert doc["kv_bytes_per_token"] == 2 * 2 * TEST.num_hidden_layers * TEST.num_key_value_heads * TEST.head_dim
    assert main(["flops", str(path), "-i", "64", "--dtype", "bf16"]) == 2
    assert "drop --dtype" in capsys.readouterr().err
