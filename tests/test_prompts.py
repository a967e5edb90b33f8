"""Text prompts of an exact token length (``mfubench run --prompt-mode text``).

Alignment is tested on in-memory tokenizers (one that merges pieces and adds a BOS, ones that
cannot be aligned), on the tiny model's real byte-level BPE through ``tokenizers`` (with and
without a BOS post-processor), and end to end: ``mfubench run`` in text mode against the
synthetic server when it refuses token-id prompts, through its ``/tokenize`` and ``/detokenize``
and through a local ``tokenizer.json``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfubench import cli
from mfubench.analysis.measurement import Measurement
from mfubench.commands import run as run_command
from mfubench.errors import InputFileError, MfubenchError
from mfubench.measure.client import (
    CompletionClient,
    TextPrompt,
    completion_body,
    default_token_range,
)
from mfubench.measure.prompts import (
    LocalTokenizer,
    PromptAlignmentError,
    ServerTokenizer,
    TextPrompts,
    adjust,
    strip_specials,
)
from mfubench.measure.results_log import read_results
from mfubench.measure.synthetic_server import (
    MODEL_NAME,
    SyntheticConfig,
    SyntheticServer,
    synthetic_detokenize,
    synthetic_tokenize,
)
from mfubench.measure.tiny_model import TEST, build_tiny_model

RANGE = (10, 40)
BOS = 1


class MergingTokenizer:
    """Ids 10–39 are the letters ``a``–``j`` and twenty two-letter pieces; tokenizing is greedy
    longest match, so random letters often merge into fewer tokens than the ids they came from,
    or split differently; a BOS is added to every text."""

    PIECES = [*"abcdefghij", "ab", "bc", "cd", "de", "ef", "fg", "gh", "hi", "ij", "ja",
              "ac", "bd", "ce", "df", "eg", "fh", "gi", "hj", "ia", "jb"]

    def __init__(self, bos: bool = True) -> None:
        self.bos = bos
        self.calls = 0

    async def tokenize(self, text: str) -> list[int]:
        self.calls += 1
        ids, i = [BOS] if self.bos else [], 0
        while i < len(text):
            two = text[i : i + 2]
            if len(two) == 2 and two in self.PIECES:
                ids.append(10 + self.PIECES.index(two))
                i += 2
            else:
                ids.append(10 + self.PIECES.index(text[i]))
                i += 1
        return ids

    async def detokenize(self, ids: Sequence[int]) -> str:
        return "".join("<s>" if i == BOS else self.PIECES[i - 10] for i in ids)


class Stubborn:
    """Every text is one token more than its ids: no text reaches the asked length."""

    async def tokenize(self, text: str) -> list[int]:
        return [20] * (len(text.split()) + 1) if text else []

    async def detokenize(self, ids: Sequence[int]) -> str:
        return " ".join("w" for _ in ids)


def make(tokenizer: Any, length: int, seed: int = 0, token_range: tuple[int, int] = RANGE) -> TextPrompt:
    return asyncio.run(TextPrompts(tokenizer).make(random.Random(seed), length, token_range))


@settings(max_examples=60, deadline=None)
@given(length=st.integers(2, 300), seed=st.integers(0, 2**32))
def test_merging_tokenizer_prompts_have_exactly_the_asked_length(length: int, seed: int) -> None:
    tok = MergingTokenizer()
    prompt = make(tok, length, seed)
    tokens = asyncio.run(tok.tokenize(prompt.text))
    assert prompt.tokens == length and len(tokens) == length and tokens[0] == BOS


def test_random_letters_do_merge_so_alignment_is_needed() -> None:
    """The merging tokenizer really shrinks random ids (else the test above proves nothing)."""
    rng, tok = random.Random(1), MergingTokenizer(bos=False)
    ids = [rng.randrange(*RANGE) for _ in range(200)]
    text = asyncio.run(tok.detokenize(ids))
    assert len(asyncio.run(tok.tokenize(text))) < 200


def test_the_special_tokens_count_toward_the_length() -> None:
    with_bos, without = make(MergingTokenizer(), 50), make(MergingTokenizer(bos=False), 50)
    assert len(asyncio.run(MergingTokenizer(bos=False).tokenize(with_bos.text))) == 49
    assert len(asyncio.run(MergingTokenizer(bos=False).tokenize(without.text))) == 50


def test_a_length_the_special_tokens_fill_is_a_clear_error() -> None:
    with pytest.raises(PromptAlignmentError, match="adds 1 special tokens"):
        make(MergingTokenizer(), 1)


def test_a_text_that_never_aligns_is_an_error_not_a_wrong_length() -> None:
    with pytest.raises(PromptAlignmentError, match=r"no text of exactly 7 tokens after 8 round trips .*8, 8"):
        make(Stubborn(), 7)
    assert issubclass(PromptAlignmentError, MfubenchError)  # the CLI prints it on one line


def test_prompts_are_fresh_per_request() -> None:
    async def go() -> list[TextPrompt]:
        return await TextPrompts(MergingTokenizer()).batch(random.Random(3), 4, 30, RANGE)

    texts = [p.text for p in asyncio.run(go())]
    assert len(set(texts)) == 4 and all(p.tokens == 30 for p in asyncio.run(go()))


@pytest.mark.parametrize(
    ("tokens", "specials", "content"),
    [
        ([5, 6], [], [5, 6]),
        ([1, 5, 6], [1], [5, 6]),
        ([1, 5, 6, 2], [1, 2], [5, 6]),
        ([5, 6, 2], [2], [5, 6]),
        ([5, 6], [1], None),
    ],
)
def test_strip_specials_finds_them_in_front_and_behind(tokens: list[int], specials: list[int],
                                                       content: list[int] | None) -> None:
    assert strip_specials(tokens, specials) == content


def test_adjust_trims_or_extends_the_texts_own_ids() -> None:
    rng = random.Random(0)
    # the text of 5 ids made [BOS] + 3 tokens; 6 asked: its 3 content ids + 2 fresh ones
    grown = adjust([11, 12, 13, 14, 15], [BOS, 30, 31, 32], [BOS], 6, rng, RANGE)
    assert grown[:3] == [30, 31, 32] and len(grown) == 5 and all(RANGE[0] <= i < RANGE[1] for i in grown[3:])
    assert adjust([11] * 9, [BOS, *range(20, 29)], [BOS], 6, rng, RANGE) == [20, 21, 22, 23, 24]


def test_text_prompts_go_in_the_body_as_text() -> None:
    body = completion_body("m", TextPrompt("t5 t6", 2), 4)
    assert body["prompt"] == "t5 t6" and body["max_tokens"] == body["min_tokens"] == 4 and body["ignore_eos"]
    assert completion_body("m", [5, 6], 4)["prompt"] == [5, 6]


# --- a real tokenizer, through the tokenizers library ------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), TEST)


@pytest.fixture(scope="module")
def tiny_with_bos(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, processors

    tok = Tokenizer.from_file(str(tiny / "tokenizer.json"))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    path = tmp_path_factory.mktemp("bos") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.mark.parametrize("bos", [False, True])
def test_byte_level_bpe_prompts_have_exactly_the_asked_length(tiny: Path, tiny_with_bos: Path, bos: bool) -> None:
    tok = LocalTokenizer(tiny_with_bos if bos else tiny)
    token_range = default_token_range(TEST.vocab_size)

    async def go() -> list[tuple[int, list[int]]]:
        maker, rng, out = TextPrompts(tok), random.Random(7), []
        for length in [2, 3, 17, 64, 255, 1000]:
            for prompt in await maker.batch(rng, 3, length, token_range):
                out.append((length, await tok.tokenize(prompt.text)))
        return out

    for length, tokens in asyncio.run(go()):
        assert len(tokens) == length and (tokens[0] == BOS) == bos


def test_a_missing_local_tokenizer_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no tokenizer.json"):
        LocalTokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(InputFileError, match="not a tokenizers file"):
        LocalTokenizer(tmp_path)


# --- the synthetic server's tokenizer, and mfubench run in text mode ---------------------------


def test_synthetic_tokenizer_round_trips() -> None:
    assert synthetic_tokenize(synthetic_detokenize([5, 1000, 7])) == [5, 1000, 7]
    assert synthetic_tokenize("hello  t12\n") == [0, 12]


@pytest.fixture
def text_only() -> Iterator[SyntheticServer]:
    with SyntheticServer(SyntheticConfig(itl_s=0.001, text_only=True)) as server:
        yield server


def test_server_tokenizer_speaks_vllms_routes(text_only: SyntheticServer) -> None:
    async def go() -> tuple[list[int], str, TextPrompt]:
        async with CompletionClient(text_only.url, model=MODEL_NAME) as client:
            tok = ServerTokenizer(client)
            made = await TextPrompts(tok).make(random.Random(0), 12, (1000, 2000))
            return await tok.tokenize("t3 t4"), await tok.detokenize([8, 9]), made

    tokens, text, made = asyncio.run(go())
    assert tokens == [3, 4] and text == "t8 t9"
    assert made.tokens == 12 and len(made.text.split()) == 12


@pytest.fixture
def stub_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    def analyze(m: Measurement) -> list[dict[str, Any]]:
        return [{"phase": "total", "seconds": m.elapsed_s}]

    monkeypatch.setattr(run_command, "_analysis", lambda args: (analyze, 8192, None))


def grid(url: str, out: Path, *more: str) -> list[str]:
    return ["run", "--endpoint", url, "--model", "m", "--hardware", "cpu", "--batch-sizes", "1,3",
            "--input-tokens", "6,20", "--output-tokens", "3", "--repeats", "2", "--warmup", "1",
            "--out", str(out), "--seed", "0", *more]


def exact_requests(out: Path) -> list[dict[str, Any]]:
    requests = [json.loads(line) for line in out.read_text().splitlines() if '"type":"request"' in line]
    for r in requests:
        b, i, o = r["point"]
        assert r["error"] is None and (r["batch_size"], r["input_tokens"], r["output_tokens"]) == (b, i, o), r
        assert r["requested_input_tokens"] == i and r["finish_reason"] == "length"
    return requests


@pytest.mark.usefixtures("stub_analysis")
def test_run_in_text_mode_through_the_servers_tokenizer(text_only: SyntheticServer, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.jsonl"
    assert cli.main(grid(text_only.url, out, "--prompt-mode", "text", "--json")) == 0
    assert len(exact_requests(out)) == 2 * (1 + 3) * 2
    results = read_results(out)
    assert set(results.points) == {(1, 6, 3), (3, 6, 3), (1, 20, 3), (3, 20, 3)}
    assert results.header["prompt_mode"] == "text"
    assert all("input_count" not in p["flags"] for p in results.points.values())
    assert len(json.loads(capsys.readouterr().out)["rows"]) == 4


@pytest.mark.usefixtures("stub_analysis")
def test_run_in_text_mode_through_a_local_tokenizer(text_only: SyntheticServer, tmp_path: Path) -> None:
    """A ``tokenizer.json`` that splits like the synthetic server (``t<id>`` words); with
    ``--tokenizer`` the default mode is text."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    low, high = default_token_range(8192)
    vocab = {"[UNK]": 0, **{f"t{i}": i for i in range(low, high)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(tmp_path / "tokenizer.json"))
    out = tmp_path / "r.jsonl"
    assert cli.main(grid(text_only.url, out, "--tokenizer", str(tmp_path))) == 0
    assert len(exact_requests(out)) == 16
    assert read_results(out).header["prompt_mode"] == "text"


@pytest.mark.usefixtures("stub_analysis")
def test_token_ids_to_a_text_only_server_fail_clearly(text_only: SyntheticServer, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The default (ids) against a server that takes text only: the error names HTTP 400."""
    assert cli.main(grid(text_only.url, tmp_path / "r.jsonl")) == 3
    err = capsys.readouterr().err
    assert "HTTP 400" in err and "text prompts only" in err and "Traceback" not in err


def test_prompt_mode_resolution() -> None:
    assert run_command.prompt_mode("auto", None) == "ids"
    assert run_command.prompt_mode("auto", Path("tok")) == "text"
    assert run_command.prompt_mode("text", None) == "text"
    with pytest.raises(MfubenchError, match="no use with --prompt-mode ids"):
        run_command.prompt_mode("ids", Path("tok"))


@pytest.mark.usefixtures("stub_analysis")
def test_text_mode_without_tokenizer_routes_says_what_to_do(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A server with completions but no ``/tokenize``: one line asking for ``--tokenizer``."""
    from aiohttp import web

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "x"}]})

    async def go() -> int:
        app = web.Application()
        app.router.add_get("/v1/models", models)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            return await asyncio.to_thread(cli.main, grid(f"http://127.0.0.1:{port}", tmp_path / "r.jsonl",
                                                          "--prompt-mode", "text"))
        finally:
            await runner.cleanup()

    assert asyncio.run(go()) == 3
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("mfubench: error:")]
    assert len(lines) == 1 and "/tokenize" in lines[0] and "--tokenizer DIR" in lines[0] and "HTTP 404" in lines[0]


def test_text_prompts_travel_to_client_processes(text_only: SyntheticServer) -> None:
    from mfubench.measure.multiproc import ClientPool

    prompts = [TextPrompt(synthetic_detokenize([1000 + k] * 5), 5) for k in range(3)]
    with ClientPool(text_only.url, procs=2, model=MODEL_NAME) as pool:
        batch = asyncio.run(pool.send_batch(prompts, 2))
    assert len(batch.records) == 3 and all(r.exact and r.input_tokens == 5 for r in batch.records)
