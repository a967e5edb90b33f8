"""Weights stored as a GGUF file holds them: bytes per parameter of each kind, from the file.

A GGUF file gives every tensor its own ggml type (a Q4_K_M file mixes Q4_K, Q6_K and F32), so no
single scheme describes it. :class:`GGUFWeights` is a :class:`~mfubench.model.quant.WeightFormat`
whose ``bytes_per_param(kind)`` is, for each weight kind the counting code asks about, the exact
total bytes of that kind's tensors in the file over their parameter count. Since
:func:`mfubench.counting.memory.weight_bytes` multiplies each component's parameters by its
kind's bytes per parameter, the sum over components is the file's tensor data exactly (each
component alone gets its kind's average: ``q_proj`` and ``ffn_down`` share the ``linear`` figure).

GGUF tensor names (llama.cpp ``LLM_TENSOR_*`` names, ``blk.N.`` per layer) map to kinds:

=========================================================  ==============
``token_embd.weight``                                      ``embedding``
``output.weight`` (absent when embeddings are tied)        ``lm_head``
``attn_q/k/v/output``, ``attn_qkv``, ``ffn_gate/up/down``,  ``linear``
``ffn_*_shexp``, ``ffn_gate_inp_shexp`` (shared experts)
``ffn_gate/up/down_exps``, ``ffn_gate_up_exps``            ``expert``
``ffn_gate_inp`` (the router)                              ``router``
``*_norm.weight`` and every ``.bias``                      vectors
=========================================================  ==============

Vectors (norms, biases) are what the counting code stores "in the model dtype": their bytes are
exact when they all have one plain type (F32 in files llama.cpp's converter writes), which
becomes :attr:`WeightFormat.dtype`. Tensors of no kind (``rope_freqs.weight``, a buffer in
Hugging Face models) are listed in :attr:`GGUFWeights.unmapped` and not counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mfubench.model.gguf_file import GGUFFile
from mfubench.model.quant import WeightFormat, WeightKind

#: Weight kinds of :mod:`mfubench.counting.components` (and the vectors stored in the dtype).
KINDS: tuple[str, ...] = ("embedding", "lm_head", "linear", "expert", "router", "norm")

_LINEAR = {"attn_q", "attn_k", "attn_v", "attn_output", "attn_qkv", "ffn_gate", "ffn_up",
           "ffn_down", "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp", "ffn_gate_inp_shexp"}
_EXPERT = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps", "ffn_gate_up_exps"}
_BLOCK = re.compile(r"blk\.(\d+)\.(.+)\.(weight|bias)")

#: ``general.file_type`` (llama.cpp ``include/llama.h`` ``enum llama_ftype``; ids 40/41 as
#: llama.cpp's gguf-py 0.19 ``LlamaFileType`` numbers them).
LLAMA_FTYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
    39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
}

#: Plain ggml types a vector may have, as :data:`mfubench.model.quant.DTYPE_BYTES` names them.
_VECTOR_DTYPES = {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}


def tensor_kind(name: str) -> str | None:
    """The weight kind of a GGUF tensor name (``norm`` for norms and biases), None for others."""
    if name == "token_embd.weight":
        return "embedding"
    if name == "output.weight":
        return "lm_head"
    if name in ("output_norm.weight", "output_norm.bias", "output.bias", "token_embd_norm.weight"):
        return "norm"
    m = _BLOCK.fullmatch(name)
    if m is None:
        return None
    base, suffix = m.group(2), m.group(3)
    if suffix == "bias" or base.endswith("_norm"):
        return "norm"
    if base in _LINEAR:
        return "linear"
    if base in _EXPERT:
        return "expert"
    if base == "ffn_gate_inp":
        return "router"
    return None


def block_index(name: str) -> int | None:
    """The layer of a ``blk.N.`` tensor name."""
    m = _BLOCK.fullmatch(name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class GGUFWeights(WeightFormat):
    """The weights of a GGUF file, with their exact bytes by kind.

    Attributes:
        file: the GGUF file.
        file_type: ``general.file_type`` by name (``Q4_K_M``), else the commonest tensor type.
        kind_totals: ``(kind, parameters, bytes)`` of the file's tensors of each kind
            (``norm``: every norm and bias vector).
        tensor_types: ``(ggml type, tensors, bytes)`` of the whole file.
        tensor_data_bytes: all tensor data of the file (``unmapped`` tensors included).
        unmapped: tensors of no kind, not counted.
        exact: the counted weight bytes equal the file's tensor data (no unmapped tensors, and
            every vector in the plain type of ``dtype``).
        kv_dtype: the KV-cache type llama.cpp uses unless told otherwise (``-ctk``/``-ctv``: f16).
    """

    file: str = ""
    file_type: str = ""
    kind_totals: tuple[tuple[str, int, int], ...] = ()
    tensor_types: tuple[tuple[str, int, int], ...] = ()
    tensor_data_bytes: int = 0
    unmapped: tuple[str, ...] = ()
    exact: bool = True
    kv_dtype: str = "fp16"

    @property
    def name(self) -> str:
        """The file type: ``Q4_K_M``, ``F16``, ..."""
        return self.file_type or "gguf"

    def kind_params(self, kind: str) -> int:
        return next((p for k, p, _ in self.kind_totals if k == kind), 0)

    def kind_bytes(self, kind: str) -> int:
        return next((b for k, _, b in self.kind_totals if k == kind), 0)

    @property
    def counted_bytes(self) -> int:
        """Bytes of every tensor of a kind: what the counting code's weight bytes sum to."""
        return sum(b for _, _, b in self.kind_totals)

    def bytes_per_param(self, kind: WeightKind) -> float:
        """Total bytes of the file's ``kind`` tensors over their parameters (a tied LM head is
        the embedding; a kind the file has none of reads as its linear layers)."""
        params, nbytes = self.kind_params(kind), self.kind_bytes(kind)
        if params == 0 and kind == "lm_head":
            params, nbytes = self.kind_params("embedding"), self.kind_bytes("embedding")
        if params == 0:
            params, nbytes = self.kind_params("linear"), self.kind_bytes("linear")
        return nbytes / params if params else 0.0


def gguf_weights(f: GGUFFile) -> GGUFWeights:
    """The :class:`GGUFWeights` of a read GGUF file."""
    totals: dict[str, list[int]] = {k: [0, 0] for k in KINDS}
    unmapped: list[str] = []
    vector_types: set[str] = set()
    by_type: dict[str, list[int]] = {}
    for t in f.tensors:
        entry = by_type.setdefault(t.type.name, [0, 0])
        entry[0] += 1
        entry[1] += t.n_bytes
        kind = tensor_kind(t.name)
        if kind is None:
            unmapped.append(t.name)
            continue
        totals[kind][0] += t.n_elements
        totals[kind][1] += t.n_bytes
        if kind == "norm":
            vector_types.add(t.type.name)
    dtype = _VECTOR_DTYPES.get(next(iter(vector_types)), "fp32") if len(vector_types) == 1 else "fp32"
    exact = not unmapped and (not vector_types or vector_types == {_type_of(dtype)})
    ftype_id = f.metadata.get("general.file_type")
    file_type = LLAMA_FTYPES.get(ftype_id, "") if isinstance(ftype_id, int) else ""
    if not file_type and by_type:
        file_type = max(by_type.items(), key=lambda kv: kv[1][1])[0]
    activation = {"F32": "fp32", "BF16": "bf16"}.get(file_type, "fp16")
    return GGUFWeights(
        dtype=dtype,
        activation_dtype=activation,
        file=f.path,
        file_type=file_type,
        kind_totals=tuple((k, p, b) for k, (p, b) in totals.items() if p or b),
        tensor_types=tuple(sorted((n, c, b) for n, (c, b) in by_type.items())),
        tensor_data_bytes=f.tensor_data_bytes,
        unmapped=tuple(unmapped),
        exact=exact,
    )


def _type_of(dtype: str) -> str:
    return {v: k for k, v in _VECTOR_DTYPES.items()}[dtype]
