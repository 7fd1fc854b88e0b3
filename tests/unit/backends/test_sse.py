"""The shared SSE reader (chater_gpt/backends/sse.py): frames split anywhere across
reads, every line ending, comments, multi-line data, and an unfinished last frame."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chater_gpt.backends.sse import SseEvent, SseParser, sse_events

STREAM = (
    b": keep-alive comment\r\n"
    b"event: message_start\r\n"
    b'data: {"a": 1}\r\n'
    b"\r\n"
    b"data: first line\n"
    b"data:second line\n"
    b"id: 7\n"
    b"retry: 100\n"
    b"\n"
    b"event: ping\rdata: \xc3\xa9t\xc3\xa9\r\r"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SseEvent("message_start", '{"a": 1}'),
    SseEvent("message", "first line\nsecond line"),
    SseEvent("ping", "été"),
    SseEvent("message", "[DONE]"),
]


def parse_in_pieces(data: bytes, size: int) -> list[SseEvent]:
    parser = SseParser()
    events: list[SseEvent] = []
    for start in range(0, len(data), size):
        events.extend(parser.feed(data[start : start + size]))
    return events + parser.finish()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, len(STREAM)])
def test_events_come_out_whole_however_the_bytes_are_split(size: int) -> None:
    assert parse_in_pieces(STREAM, size) == EXPECTED


def test_a_frame_without_its_blank_line_is_dropped_at_the_end() -> None:
    assert parse_in_pieces(b"data: one\n\ndata: cut sho", 4) == [SseEvent("message", "one")]
    assert parse_in_pieces(b"data: one\n\ndata: two\n", 100) == [SseEvent("message", "one")]


def test_a_cr_at_the_very_end_still_ends_its_frame() -> None:
    assert parse_in_pieces(b"data: one\r\r", 100) == [SseEvent("message", "one")]


def test_frames_without_data_and_unknown_fields_are_not_events() -> None:
    assert parse_in_pieces(b"event: ping\n\nfoo: bar\n\ndata\n\n", 3) == [SseEvent("message", "")]


def test_only_one_space_after_the_colon_is_removed() -> None:
    assert parse_in_pieces(b"data:  two spaces\n\n", 100) == [SseEvent("message", " two spaces")]


async def test_the_async_reader_yields_events_as_the_body_arrives() -> None:
    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(STREAM), 4):
            yield STREAM[start : start + 4]

    assert [event async for event in sse_events(body())] == EXPECTED
