"""Text prompts of an exact token length, for servers that take no token-id prompts.

SGLang, TGI, llama.cpp and ``transformers serve`` take the prompt as text, so its length in
tokens is whatever the server's tokenizer makes of it. :class:`TextPrompts` makes texts whose
tokenization has exactly the asked length ``L``:

1. once: ``tokenize("")`` gives the special tokens the tokenizer adds to every prompt (a BOS,
   say: ``k`` of them), so the text itself must make ``L − k`` tokens;
2. draw ``L − k`` fresh random token ids (as for token-id prompts, so that prefix caching
   cannot hide work) and ``detokenize`` them into text;
3. ``tokenize`` that text: ``n`` tokens. ``n = L``: done. Otherwise the ids are replaced by the
   text's own tokenization (special tokens stripped; a re-tokenized text is almost always
   stable under one more round trip), trimmed by ``n − L`` ids from the end or extended by
   ``L − n`` fresh random ids, and step 2 repeats, at most ``max_attempts`` times;
4. a text that does not reach ``L`` within them is a :class:`PromptAlignmentError`, never a
   prompt of the wrong length.

Tokenizing and detokenizing go through a :class:`TokenizerIO`: the server's own
``POST /tokenize`` and ``POST /detokenize`` (vLLM's shape; :class:`ServerTokenizer`), or a
local ``tokenizer.json`` loaded with the ``tokenizers`` library (:class:`LocalTokenizer`; it
must be the tokenizer the server uses, with the same special tokens). The counts the run reports
still come from each request's ``usage``; a text the server counts differently is flagged there.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from mfubench.errors import InputFileError, MfubenchError, ServerError
from mfubench.measure.client import CompletionClient, TextPrompt, random_prompt

#: Round trips (detokenize, tokenize) tried per prompt before giving up.
MAX_ATTEMPTS = 8


class PromptAlignmentError(MfubenchError):
    """No text of exactly the asked token length could be made."""


class TokenizerIO(Protocol):
    """The two operations alignment needs: text to ids (with the special tokens the server adds
    to a prompt) and ids to text."""

    async def tokenize(self, text: str) -> list[int]: ...

    async def detokenize(self, ids: Sequence[int]) -> str: ...


class ServerTokenizer:
    """The server's own tokenizer: vLLM's ``POST /tokenize`` (``{"model", "prompt"}`` →
    ``{"count", "tokens"}``, special tokens added as for a completion) and ``POST /detokenize``
    (``{"model", "tokens"}`` → ``{"prompt"}``); llama.cpp's the same with ``content`` for
    ``prompt`` and ``add_special`` (the engine's ``text_field`` and ``tokenize_extra``)."""

    def __init__(self, client: CompletionClient) -> None:
        self.client = client

    async def tokenize(self, text: str) -> list[int]:
        engine = self.client.engine
        reply = await self.client.post_json("/tokenize", {"model": self.client.model, engine.text_field: text,
                                                          **engine.tokenize_extra})
        tokens = reply.get("tokens") if isinstance(reply, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise ServerError(f"{self.client.base_url}/tokenize: no 'tokens' list of ids in {_excerpt(reply)}")
        count = reply.get("count", len(tokens))
        if count != len(tokens):
            raise ServerError(f"{self.client.base_url}/tokenize: count {count} but {len(tokens)} tokens")
        return tokens

    async def detokenize(self, ids: Sequence[int]) -> str:
        reply = await self.client.post_json("/detokenize", {"model": self.client.model, "tokens": list(ids)})
        key = self.client.engine.text_field
        text = reply.get(key) if isinstance(reply, dict) else None
        if not isinstance(text, str):
            raise ServerError(f"{self.client.base_url}/detokenize: no {key!r} text in {_excerpt(reply)}")
        return text


class LocalTokenizer:
    """A local ``tokenizer.json`` (a folder holding one, or the file), through ``tokenizers``:
    ``encode`` with its special tokens (its post-processor's BOS/EOS), ``decode`` of the ids."""

    def __init__(self, path: Path) -> None:
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise InputFileError(f"{path}: no tokenizer.json there (--tokenizer takes the model's folder)")
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(file))
        except Exception as exc:  # the library raises its own untyped errors on a bad file
            raise InputFileError(f"{file}: not a tokenizers file: {exc}") from exc
        self.path = file

    async def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=True).ids)

    async def detokenize(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False))


class TextPrompts:
    """Makes :class:`TextPrompt` s of exact token lengths through ``tokenizer`` (see the module)."""

    def __init__(self, tokenizer: TokenizerIO, max_attempts: int = MAX_ATTEMPTS) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.tokenizer = tokenizer
        self.max_attempts = max_attempts
        self._specials: list[int] | None = None

    async def specials(self) -> list[int]:
        """The ids the tokenizer adds to every prompt (those of the empty text), asked once."""
        if self._specials is None:
            self._specials = await self.tokenizer.tokenize("")
        return self._specials

    async def check(self, token_range: tuple[int, int]) -> None:
        """Both operations answer (before a sweep starts): tokenize the empty text, detokenize
        the lowest id prompts use."""
        await self.specials()
        await self.tokenizer.detokenize([token_range[0]])

    async def make(self, rng: random.Random, length: int, token_range: tuple[int, int]) -> TextPrompt:
        """A text that the tokenizer makes exactly ``length`` tokens of (special tokens included)."""
        specials = await self.specials()
        want = length - len(specials)
        if want < 1:
            raise PromptAlignmentError(
                f"a text prompt of {length} tokens is impossible: the tokenizer adds {len(specials)} "
                f"special tokens to every prompt"
            )
        ids = random_prompt(rng, want, token_range)
        counts = []
        for _ in range(self.max_attempts):
            text = await self.tokenizer.detokenize(ids)
            tokens = await self.tokenizer.tokenize(text)
            if len(tokens) == length:
                return TextPrompt(text, length)
            counts.append(len(tokens))
            ids = adjust(ids, tokens, specials, length, rng, token_range)
        raise PromptAlignmentError(
            f"no text of exactly {length} tokens after {self.max_attempts} round trips through the "
            f"tokenizer (it made {', '.join(map(str, counts))}); use token-id prompts if the server takes them"
        )

    async def batch(self, rng: random.Random, count: int, length: int,
                    token_range: tuple[int, int]) -> list[TextPrompt]:
        """``count`` fresh prompts of ``length`` tokens (made one after another, before sending)."""
        return [await self.make(rng, length, token_range) for _ in range(count)]


def adjust(ids: Sequence[int], tokens: Sequence[int], specials: Sequence[int], length: int,
           rng: random.Random, token_range: tuple[int, int]) -> list[int]:
    """The content ids to try next, after ``ids`` became text that tokenized to ``tokens``
    (``length`` asked): the text's own content ids (``tokens`` without ``specials``; ``ids``
    where they cannot be told apart) trimmed or extended by ``length − len(tokens)``."""
    content = strip_specials(tokens, specials)
    base = list(ids) if content is None else content
    keep = len(base) + length - len(tokens)
    if keep <= len(base):
        return base[: max(keep, 1)]
    return base + random_prompt(rng, keep - len(base), token_range)


def strip_specials(tokens: Sequence[int], specials: Sequence[int]) -> list[int] | None:
    """``tokens`` without the special tokens the tokenizer added (``specials``, those it adds to
    the empty text: a prefix part, a suffix part, or both); None when they are not found."""
    n = len(specials)
    if n == 0:
        return list(tokens)
    for split in range(n, -1, -1):  # specials[:split] in front, specials[split:] at the end
        head, tail = list(specials[:split]), list(specials[split:])
        if len(tokens) >= n and list(tokens[:split]) == head and list(tokens[len(tokens) - len(tail):]) == tail:
            return list(tokens[split : len(tokens) - len(tail)])
    return None


def _excerpt(reply: Any) -> str:
    text = " ".join(str(reply).split())
    return text if len(text) <= 200 else text[:199] + "…"


__all__ = [
    "MAX_ATTEMPTS",
    "LocalTokenizer",
    "PromptAlignmentError",
    "ServerTokenizer",
    "TextPrompts",
    "TokenizerIO",
    "adjust",
    "strip_specials",
]
