"""The timestamped reply's sans-I/O parser (worker/fish/timestamps.py): pure, no sockets.

Event-stream framing however the bytes are split, the newest alignment of a
chunk replacing older ones, chunk offsets making times absolute, chunk ends,
errors, and replies that are not the protocol.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from worker.fish import ProtocolError
from worker.fish.stream_ts import timestamp_url
from worker.fish.timestamps import (
    AlignedSegment,
    ChunkAudio,
    ChunkEnd,
    SseDecoder,
    StreamFailed,
    TimestampParser,
)
from worker.settings import Settings


def event(
    seq: int,
    audio: bytes = b"",
    segments: list[tuple[str, float, float]] | None = None,
    offset: float = 0.0,
    content: str = "",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "audio_base64": base64.b64encode(audio).decode(),
        "content": content,
        "chunk_seq": seq,
        "chunk_audio_offset_sec": offset,
        "alignment": None,
    }
    if segments is not None:
        out["alignment"] = {
            "audio_duration": max((e for _, _, e in segments), default=0.0),
            "segments": [{"text": t, "start": s, "end": e} for t, s, e in segments],
        }
    return out


def sse(*objects: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objects)


# -- framing -------------------------------------------------------------------


def test_sse_framing_rules() -> None:
    stream = (
        b": a comment\r\n"
        b'event: error\r\ndata: {"a": 1}\r\n\r\n'
        b"data:first\ndata: second\n\n"
        b"id: 7\rretry: 10\rdata: cr\r\r"
        b"\n\n"  # blank lines with no data dispatch nothing
        b"data: unterminated"
    )
    decoder = SseDecoder()
    assert decoder.feed(stream) == [
        ("error", '{"a": 1}'),
        ("message", "first\nsecond"),
        ("message", "cr"),
    ]
    assert decoder.close() == [("message", "unterminated")]


def test_sse_split_anywhere_gives_the_same_events() -> None:
    data = sse(event(0, b"\x01\x02", [("hi", 0.0, 0.2)]), event(1, b"\x03\x04")).replace(
        b"\n\n", b"\r\n\r\n"
    )
    whole = SseDecoder().feed(data)
    for size in (1, 2, 3, 7, 64):
        decoder = SseDecoder()
        got = []
        for i in range(0, len(data), size):
            got += decoder.feed(data[i : i + size])
        assert got + decoder.close() == whole, size


# -- chunks and alignments -----------------------------------------------------


def test_chunk_events_and_ends() -> None:
    parser = TimestampParser()
    events = parser.feed(
        sse(
            event(0, b"aa", [("One", 0.0, 0.3)], content="One two. "),
            event(0, b"bb", [("One", 0.0, 0.3), ("two.", 0.3, 0.7)], content="One two. "),
            event(1, b"cc", [("Three", 0.1, 0.4)], offset=0.75, content="Three"),
        )
    )
    assert events == [
        ChunkAudio(0, b"aa"),
        ChunkAudio(0, b"bb"),
        ChunkEnd(0, 0.0, "One two. ", 4),
        ChunkAudio(1, b"cc"),
    ]
    assert parser.close() == [ChunkEnd(1, 0.75, "Three", 2)]
    assert parser.segments() == [
        AlignedSegment("One", 0.0, 0.3),
        AlignedSegment("two.", 0.3, 0.7),
        AlignedSegment("Three", 0.85, 1.15),  # the chunk's offset makes it absolute
    ]


def test_newest_alignment_replaces_older_even_after_the_chunk_ended() -> None:
    parser = TimestampParser()
    parser.feed(sse(event(0, b"aa", [("Hello", 0.0, 0.5), ("wrld", 0.5, 0.9)])))
    parser.feed(sse(event(1, b"bb", [("again", 0.0, 0.2)], offset=1.0)))
    # A late snapshot for chunk 0, alignment only: it replaces the first one.
    assert parser.feed(sse(event(0, b"", [("Hello", 0.0, 0.4), ("world", 0.45, 0.9)]))) == []
    parser.close()
    assert [s.text for s in parser.segments()] == ["Hello", "world", "again"]
    assert parser.segments()[1] == AlignedSegment("world", 0.45, 0.9)


def test_placement_overrides_the_providers_offsets() -> None:
    parser = TimestampParser()
    parser.feed(sse(event(0, b"a", [("a", 0.0, 0.1)]), event(1, b"b", [("b", 0.1, 0.2)], 5.0)))
    parser.close()
    assert parser.segments({0: 0.0, 1: 2.0})[1] == AlignedSegment("b", 2.1, 2.2)


def test_a_chunk_without_alignment_is_reported() -> None:
    parser = TimestampParser()
    parser.feed(sse(event(0, b"a", [("a", 0.0, 0.1)]), event(1, b"b")))
    parser.close()
    assert parser.unaligned() == [1]


def test_error_object_and_error_event() -> None:
    parser = TimestampParser()
    got = parser.feed(sse(event(0, b"a"), {"event": "error", "message": "over quota"}))
    assert got == [ChunkAudio(0, b"a"), StreamFailed("over quota")]
    assert parser.failed == "over quota"
    named = TimestampParser().feed(b'event: error\ndata: {"detail": "bad voice"}\n\n')
    assert named == [StreamFailed("bad voice")]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"data: not json\n\n", "not JSON"),
        (b"data: [1, 2]\n\n", "not an object"),
        (b'data: {"chunk_seq": -1}\n\n', "chunk_seq"),
        (b'data: {"chunk_seq": 0, "audio_base64": "***"}\n\n', "base64"),
        (b'data: {"chunk_seq": 0, "chunk_audio_offset_sec": "x"}\n\n', "offset"),
        (
            b'data: {"chunk_seq": 0, "alignment": {"segments": [{"text": "a", "start": -1}]}}\n\n',
            "start",
        ),
    ],
)
def test_replies_that_are_not_the_protocol(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        TimestampParser().feed(data)


def test_audio_for_an_ended_chunk_is_refused() -> None:
    parser = TimestampParser()
    parser.feed(sse(event(0, b"a"), event(1, b"b")))
    with pytest.raises(ProtocolError, match="chunk 0"):
        parser.feed(sse(event(0, b"late")))


# -- where the endpoint is -----------------------------------------------------


@pytest.mark.parametrize(
    ("ws", "http"),
    [
        ("wss://api.example/v1/tts/live", "https://api.example/v1/tts/stream/with-timestamp"),
        ("ws://127.0.0.1:8765/v1/tts/live", "http://127.0.0.1:8765/v1/tts/stream/with-timestamp"),
        ("ws://proxy/fish/v1/tts/live", "http://proxy/fish/v1/tts/stream/with-timestamp"),
    ],
)
def test_timestamp_url_sits_beside_the_live_endpoint(ws: str, http: str) -> None:
    assert timestamp_url(ws) == http


def test_settings_name_the_endpoint() -> None:
    settings = Settings(fish_base_url="https://tts.example/base/", _env_file=None)
    assert settings.provider_timestamp_url == (
        "https://tts.example/base/v1/tts/stream/with-timestamp"
    )
    assert timestamp_url(settings.provider_ws_url) == settings.provider_timestamp_url
