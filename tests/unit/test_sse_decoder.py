"""The upstream SSE decoder: chunks of any size, multi-line data, every line ending, comments apart from data."""

from __future__ import annotations

import pytest

from engine.providers.sse import EventTooLarge, SSEDecoder


def _decode(chunks: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    out: list[bytes] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


STREAM = b'data: {"a":1}\n\n: keep-alive\n\ndata: {"b":\r\ndata: 2}\r\n\r\nevent: x\rdata: [DONE]\r\r'
EXPECTED = [b'{"a":1}', b'{"b":\n2}', b"[DONE]"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_any_chunking_gives_the_same_events(size: int):
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert _decode(chunks) == EXPECTED


def test_a_one_megabyte_line_in_pieces():
    payload = b'{"content":"' + b"x" * 1_000_000 + b'"}'
    frame = b"data: " + payload + b"\n\n"
    assert _decode([frame[i : i + 65_536] for i in range(0, len(frame), 65_536)]) == [payload]


def test_comments_are_not_data_and_field_bytes_are():
    decoder = SSEDecoder()
    decoder.feed(b": ping\n\n")
    assert not decoder.saw_data
    decoder.feed(b"data: par")  # a data line still arriving counts as data
    assert decoder.saw_data
    assert decoder.feed(b"tial\n\n") == [b"partial"] and decoder.saw_data
    decoder.feed(b": keep")
    assert not decoder.saw_data


def test_an_event_without_a_closing_blank_line_still_ends_the_body():
    assert _decode([b"data: [DONE]"]) == [b"[DONE]"]


def test_an_event_past_the_limit_is_refused():
    decoder = SSEDecoder(max_event_bytes=100)
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data: " + b"x" * 200)
