"""The client's fast chunk decoder (msgspec) and its general path (json) give the same records.

The fast path only takes chunks of the usual shape and hands everything else to the general
path; whatever the chunk, the record must not depend on which path read it.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfubench.measure import client
from mfubench.measure.client import RequestRecord, StreamRecorder

pytest.importorskip("msgspec")

TOKEN = json.dumps({"choices": [{"index": 0, "text": "a", "token_ids": [5, 6], "finish_reason": None}]})
CHUNKS = [
    TOKEN,
    json.dumps({"choices": [{"text": "b", "finish_reason": "length"}]}),
    json.dumps({"choices": [{"text": "", "token_ids": None}]}),
    json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}}),
    json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3},
                "timings": {"prompt_ms": 2.5, "predicted_ms": 7.0}}),
    json.dumps({"choices": [{"text": "c", "finish_reason": "length"}], "timings": {"prompt_ms": "x"}}),
    json.dumps({"choices": [], "usage": "nonsense"}),
    json.dumps({"error": {"message": "boom", "code": 500}}),
    json.dumps({"object": "error", "message": "boom", "choices": []}),
    json.dumps({"choices": "no"}),
    json.dumps({"choices": [1]}),
    json.dumps({"usage": {}}),
    '{"choices": [{"text": "a", "token_ids": [1]}], "choices": []}',
    '{"choices": [{"text": NaN}]}',
    "{not json",
    "[DONE]",
    " [DONE] ",
    '  {"choices": []}',
]


def record(chunks: list[str]) -> RequestRecord:
    r = StreamRecorder(1, 3, 3, sent_s=0.0)
    for n, data in enumerate(chunks, start=1):
        if r.on_data(data, float(n)):
            break
    return r.finish(99.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(CHUNKS), max_size=6))
def test_fast_and_general_paths_agree(chunks: list[str]) -> None:
    fast = record(chunks)
    saved = client._fast_chunk
    client._fast_chunk = None
    try:
        general = record(chunks)
    finally:
        client._fast_chunk = saved
    assert fast == general
