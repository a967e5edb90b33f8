"""A Llama-architecture model folder built locally, with no download: the demo's and tests' model.

The folder holds a ``config.json`` (``LlamaForCausalLM``, bf16) and a byte-level BPE tokenizer
trained here with ``tokenizers`` on generated text (``tokenizer.json`` + ``tokenizer_config.json``
with ``<s>``/``</s>``). It has no weights: vLLM serves it with ``--load-format dummy`` (random
weights), which costs exactly the FLOPs and bytes of the real architecture.

Presets (sizes measured on a 2-core CPU, see ``shared/notes/vllm-cpu.md``):

- :data:`DEMO`: hidden 768, 12 layers, 12 heads, 4 KV heads, head_dim 64, intermediate 2048,
  vocab 8192 (88 M parameters): decode is memory-bound and prefill compute-bound on a CPU.
- :data:`TEST`: hidden 256, 4 layers, 4 heads, 2 KV heads, head_dim 64, intermediate 512,
  vocab 8192 (6.56 M parameters): starts and serves in seconds.

Run ``python -m mfubench.measure.tiny_model FOLDER [demo|test]`` to build one.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Special tokens of the tokenizer, at ids 0, 1, 2 (in this order).
SPECIAL_TOKENS: tuple[str, ...] = ("<unk>", "<s>", "</s>")


@dataclass(frozen=True)
class TinyLlamaPreset:
    """The shape of a locally built Llama model.

    Attributes:
        hidden_size: width of the residual stream.
        num_hidden_layers: decoder layers.
        num_attention_heads: query heads.
        num_key_value_heads: key/value heads (GQA when fewer than the query heads).
        head_dim: width of one head (kept explicit, not derived as hidden/heads).
        intermediate_size: width of the SwiGLU MLP.
        vocab_size: rows of the embedding and of the LM head; the tokenizer is trained to it.
        max_position_embeddings: longest context the config allows.
    """

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_key_value_heads: int = 4
    head_dim: int = 64
    intermediate_size: int = 2048
    vocab_size: int = 8192
    max_position_embeddings: int = 4096

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.vocab_size <= len(SPECIAL_TOKENS) + 256:
            raise ValueError("vocab_size must leave room for the 256 bytes and the special tokens")


DEMO = TinyLlamaPreset()
TEST = TinyLlamaPreset(
    hidden_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    intermediate_size=512,
    vocab_size=8192,
)
PRESETS: dict[str, TinyLlamaPreset] = {"demo": DEMO, "test": TEST}


def llama_config(preset: TinyLlamaPreset) -> dict[str, Any]:
    """The HF ``config.json`` of ``preset``: Llama, bf16, untied embeddings, RoPE theta 10000."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": preset.hidden_size,
        "num_hidden_layers": preset.num_hidden_layers,
        "num_attention_heads": preset.num_attention_heads,
        "num_key_value_heads": preset.num_key_value_heads,
        "head_dim": preset.head_dim,
        "intermediate_size": preset.intermediate_size,
        "vocab_size": preset.vocab_size,
        "max_position_embeddings": preset.max_position_embeddings,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "bfloat16",
    }


def build_tiny_model(folder: str | Path, preset: TinyLlamaPreset = DEMO) -> Path:
    """Write ``config.json`` and a trained tokenizer into ``folder``; return the folder.

    Idempotent: files already present with the same config are left alone (a folder holding a
    different config raises ``FileExistsError`` rather than being overwritten).
    """
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    config = llama_config(preset)
    config_path = path / "config.json"
    if config_path.exists():
        existing = json.loads(config_path.read_text())
        if existing != config:
            raise FileExistsError(f"{config_path} holds a different model config; pick another folder")
    else:
        _write_atomic(config_path, json.dumps(config, indent=2) + "\n")
    if not (path / "tokenizer.json").exists() or not (path / "tokenizer_config.json").exists():
        _write_tokenizer(path, preset.vocab_size)
    return path


def _write_tokenizer(path: Path, vocab_size: int) -> None:
    """Train a byte-level BPE of exactly ``vocab_size`` tokens on generated text and save it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_generated_text(), trainer=trainer)
    tmp = path / "tokenizer.json.tmp"
    tokenizer.save(str(tmp))
    tmp.replace(path / "tokenizer.json")
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": 1_000_000,
        "clean_up_tokenization_spaces": False,
    }
    _write_atomic(path / "tokenizer_config.json", json.dumps(tokenizer_config, indent=2) + "\n")


def _generated_text(lines: int = 20_000, seed: int = 0) -> list[str]:
    """Deterministic pseudo-words (Zipf-like syllable mix), enough distinct pairs for 8k merges."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + list("aeiou")
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(6000)]
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    out = []
    for _ in range(lines):
        n = rng.randint(4, 16)
        out.append(" ".join(rng.choices(words, weights=weights, k=n)) + rng.choice([".", ",", "!", "?"]))
    return out


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    usage = f"usage: python -m mfubench.measure.tiny_model FOLDER [{'|'.join(PRESETS)}]"
    if args and args[0] in ("-h", "--help"):
        print(usage)
        return 0
    if (not args or len(args) > 2 or (len(args) == 2 and args[1] not in PRESETS)
            or args[0].startswith("-")):  # an option is not a folder to write a model into
        print(usage, file=sys.stderr)
        return 2
    folder = build_tiny_model(args[0], PRESETS[args[1] if len(args) == 2 else "demo"])
    print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
