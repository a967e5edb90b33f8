"""The SSE parser on byte sequences: however the bytes are split, the events are the same."""

from __future__ import annotations

import json

import pytest

from mfubench.measure.sse import SSEError, SSEEvent, SSEParser


def parse(chunks: list[bytes], max_event_bytes: int = 1 << 20) -> tuple[list[SSEEvent], bool]:
    parser = SSEParser(max_event_bytes=max_event_bytes)
    events = [e for c in chunks for e in parser.feed(c)]
    events += parser.close()
    return events, parser.truncated


def every_split(data: bytes) -> list[list[bytes]]:
    """The stream as one chunk, byte by byte, and cut at every position into two."""
    splits = [[data], [data[i : i + 1] for i in range(len(data))]]
    splits += [[data[:i], data[i:]] for i in range(1, len(data))]
    return splits


VLLM_STREAM = (
    b'data: {"choices":[{"index":0,"text":"h\xc3\xa9","token_ids":[7573],"finish_reason":null}]}\n\n'
    b": keep-alive\n\n"
    b'data: {"choices":[{"index":0,"text":"\xe2\x82\xac","token_ids":[3464,12],"finish_reason":"length"}]}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":3,"total_tokens":11}}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_same_events_for_every_split_and_line_ending(newline: bytes) -> None:
    data = VLLM_STREAM.replace(b"\n", newline)
    for chunks in every_split(data):
        events, truncated = parse(chunks)
        assert [e.data for e in events][-1] == "[DONE]"
        assert len(events) == 4, chunks
        assert json.loads(events[0].data)["choices"][0]["text"] == "hé"
        assert json.loads(events[1].data)["choices"][0]["text"] == "€"
        assert json.loads(events[2].data)["usage"]["completion_tokens"] == 3
        assert not truncated


def test_split_utf8_character_is_decoded_whole() -> None:
    data = "data: 日本\n\n".encode()
    cut = data.index("本".encode()) + 1  # inside the 3-byte character
    events, _ = parse([data[:cut], data[cut:]])
    assert events == [SSEEvent(data="日本")]


def test_invalid_utf8_becomes_replacement_character() -> None:
    events, _ = parse([b"data: a\xffb\n\n"])
    assert events[0].data == "a\ufffdb"


def test_comments_are_dropped_and_do_not_dispatch() -> None:
    events, _ = parse([b": ping\n", b":\n\n", b"data: x\n", b": mid-event comment\n", b"\n"])
    assert events == [SSEEvent(data="x")]


def test_multi_line_data_joins_with_newline() -> None:
    events, _ = parse([b"data: first\ndata:second\ndata:  third\n\n"])
    assert events[0].data == "first\nsecond\n third"


def test_event_type_and_id_are_kept() -> None:
    events, _ = parse([b"event: error\nid: 7\ndata: {\"error\": \"boom\"}\n\n", b"data: y\n\n"])
    assert events[0] == SSEEvent(data='{"error": "boom"}', event="error", id="7")
    assert events[1] == SSEEvent(data="y", event="message", id="7")  # the last id carries over


def test_field_without_colon_and_unknown_fields_are_ignored() -> None:
    events, _ = parse([b"data\nretry: 10\nfoo: bar\n\n"])
    assert events == [SSEEvent(data="")]


def test_event_without_data_is_not_dispatched() -> None:
    events, _ = parse([b"event: ping\n\n", b"id: 3\n\n"])
    assert events == []


def test_error_json_in_the_middle_is_an_ordinary_event() -> None:
    data = b'data: {"a":1}\n\ndata: {"error":{"message":"out of memory","code":500}}\n\ndata: [DONE]\n\n'
    events, _ = parse([data])
    assert json.loads(events[1].data)["error"]["code"] == 500
    assert events[2].data == "[DONE]"


def test_unterminated_event_at_close_is_dropped_and_marked_truncated() -> None:
    events, truncated = parse([b"data: a\n\ndata: partial"])
    assert events == [SSEEvent(data="a")]
    assert truncated
    events, truncated = parse([b"data: a\n\ndata: b\n"])  # line ended, event did not
    assert events == [SSEEvent(data="a")]
    assert truncated


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    events, _ = parse([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"])
    assert [e.data for e in events] == ["a", "b"]


def test_empty_chunk_keeps_pending_cr() -> None:
    events, _ = parse([b"data: a\r", b"", b"\n\r\n"])
    assert [e.data for e in events] == ["a"]


def test_oversized_event_raises_even_without_a_line_end() -> None:
    parser = SSEParser(max_event_bytes=100)
    parser.feed(b"data: " + b"x" * 50)
    with pytest.raises(SSEError, match="100 bytes"):
        parser.feed(b"x" * 60)


def test_oversized_event_across_many_data_lines_raises() -> None:
    parser = SSEParser(max_event_bytes=100)
    with pytest.raises(SSEError):
        parser.feed(b"data: 0123456789\n" * 20)


def test_events_up_to_the_limit_pass_and_the_limit_is_per_event() -> None:
    line = b"data: " + b"x" * 80 + b"\n\n"
    events, _ = parse([line * 50], max_event_bytes=100)
    assert len(events) == 50
