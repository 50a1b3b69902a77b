"""local/sse.py, the SSE reader the tests and make bench share: frames, line endings, chunking, comments."""

from __future__ import annotations

import pytest

from local.sse import SseFrame, SseParser, frames

BODY = (
    'event: response.created\ndata: {"type":"response.created"}\n\n'
    ": keep-alive\n\n"
    'event: response.output_text.delta\r\ndata: {"delta":\r\ndata: "é"}\r\n\r\n'
    "event: x\rdata: [DONE]\r\r"
)
EXPECTED = [
    SseFrame(("event: response.created", 'data: {"type":"response.created"}')),
    SseFrame(("event: response.output_text.delta", 'data: {"delta":', 'data: "é"}')),
    SseFrame(("event: x", "data: [DONE]")),
]


def test_frames_from_lines():
    lines = BODY.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    got = list(frames(lines))
    assert got == EXPECTED
    assert got[0].event == "response.created" and got[0].json() == {"type": "response.created"}
    assert got[1].data == '{"delta":\n"é"}' and got[1].json() == {"delta": "é"}
    assert got[2].done and not got[0].done


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_parser_in_chunks_of_any_size(size: int):
    data = BODY.encode()
    parser = SseParser()
    got = [frame for start in range(0, len(data), size) for frame in parser.feed(data[start : start + size])]
    assert got + parser.close() == EXPECTED


def test_an_unterminated_last_block_is_kept_and_a_frame_without_event_has_none():
    parser = SseParser()
    assert parser.feed(b"data: 1\n\ndata: 2") == [SseFrame(("data: 1",))]
    assert parser.close() == [SseFrame(("data: 2",))]
    assert list(frames(["data: 3"])) == [SseFrame(("data: 3",))]
    assert SseFrame(("data: 3",)).event is None
