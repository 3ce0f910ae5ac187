"""Pure tests of the sans-I/O Fish protocol core: no sockets."""

from __future__ import annotations

import ormsgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fish_samples import SDK_DEFAULT_REQUEST
from worker.fish import (
    Audio,
    AudioFormat,
    ClientSession,
    ClientState,
    EndSession,
    Finish,
    FinishReason,
    Flush,
    InvalidRequest,
    Latency,
    Log,
    MalformedFrame,
    ServerSession,
    ServerState,
    Start,
    Stop,
    Synthesize,
    Text,
    TTSRequest,
    UnexpectedEvent,
    Unknown,
    decode_client_event,
    decode_server_event,
    encode_client_event,
    encode_server_event,
    parse_request,
)


def frame(obj: dict) -> bytes:
    return ormsgpack.packb(obj)


# -- TTSRequest ------------------------------------------------------------------


def test_sdk_request_parses_with_defaults() -> None:
    req = parse_request(SDK_DEFAULT_REQUEST)
    assert req.format is AudioFormat.MP3
    assert req.sample_rate is None and req.effective_sample_rate == 44100
    assert req.prosody is None and req.speed == 1.0 and req.volume_db == 0.0


def test_legacy_sdk_request_with_first_13_keys() -> None:
    legacy = dict(list(SDK_DEFAULT_REQUEST.items())[:13])
    assert parse_request(legacy).temperature == 0.7


def test_sparse_nil_and_unknown_keys_are_accepted() -> None:
    req = parse_request(
        {
            "format": "PCM",
            "sample_rate": 16000,
            "prosody": {"speed": None, "volume": 3},
            "normalize": None,
            "brand_new_key": [1, 2],
            "latency": "low",
        }
    )
    assert req.format is AudioFormat.PCM and req.effective_sample_rate == 16000
    assert req.latency is Latency.LOW
    assert req.speed == 1.0 and req.volume_db == 3
    assert req.normalize is True


def test_empty_and_nil_request() -> None:
    assert parse_request({}) == TTSRequest()
    assert decode_client_event(frame({"event": "start", "request": None})) == Start(TTSRequest())


@pytest.mark.parametrize(("sent", "kbps"), [(32, 32), (64000, 64), (24000, 24), (-1000, -1000)])
def test_opus_bitrate_in_kbps_or_bps(sent: int, kbps: int) -> None:
    assert parse_request({"format": "opus", "opus_bitrate": sent}).opus_bitrate == kbps


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"format": "mp3", "sample_rate": 22050}, "sample_rate"),
        ({"format": "opus", "sample_rate": 44100}, "sample_rate"),
        ({"format": "flac"}, "format"),
        ({"chunk_length": 99}, "chunk_length"),
        ({"chunk_length": 301}, "chunk_length"),
        ({"min_chunk_length": 101}, "min_chunk_length"),
        ({"mp3_bitrate": 96}, "mp3_bitrate"),
        ({"opus_bitrate": 33}, "opus_bitrate"),
        ({"prosody": {"speed": 2.5}}, "prosody.speed"),
        ({"prosody": {"volume": -21}}, "prosody.volume"),
        ({"top_p": 1.5}, "top_p"),
        ({"temperature": -0.1}, "temperature"),
        ({"latency": "fast"}, "latency"),
        ({"early_stop_threshold": 2}, "early_stop_threshold"),
        ({"references": [{"text": "no audio"}]}, "references"),
    ],
)
def test_out_of_range_values_name_the_field(body: dict, field: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_request(body)
    assert err.value.field is not None and err.value.field.startswith(field)
    assert field.split(".")[0] in str(err.value)


def test_rate_error_lists_supported_rates() -> None:
    with pytest.raises(InvalidRequest, match=r"32000, 44100"):
        parse_request({"format": "mp3", "sample_rate": 16000})


def test_request_round_trips_through_the_wire() -> None:
    req = parse_request(
        {
            "format": "wav",
            "sample_rate": 24000,
            "reference_id": "abc",
            "references": [{"audio": b"\x00\x01", "text": "hi"}],
            "prosody": {"speed": 1.5, "volume": -3},
        }
    )
    event = decode_client_event(encode_client_event(Start(req)))
    assert event == Start(req)
    assert req.flat_references[0].audio == b"\x00\x01"


# -- events ----------------------------------------------------------------------


@pytest.mark.parametrize("event", [Text("héllo "), Flush(), Stop(), Start(TTSRequest())])
def test_client_events_round_trip(event: object) -> None:
    assert decode_client_event(encode_client_event(event)) == event  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "event",
    [
        Audio(b"\x00\xff" * 10),
        Finish(FinishReason.STOP),
        Finish(FinishReason.ERROR, "boom"),
        Log({"message": "x"}),
    ],
)
def test_server_events_round_trip(event: object) -> None:
    assert decode_server_event(encode_server_event(event)) == event  # type: ignore[arg-type]


def test_unknown_server_events_decode_as_unknown() -> None:
    assert decode_server_event(frame({"event": "error", "error": "x"})) == Unknown(
        "error", {"error": "x"}
    )
    assert decode_server_event(frame({"no": "event"})) == Unknown(None, {"no": "event"})
    assert isinstance(decode_server_event(frame({"event": "finish", "reason": "??"})), Unknown)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xc1", "not valid MessagePack"),
        (ormsgpack.packb([1, 2]), "must be a MessagePack map"),
        (frame({"text": "x"}), "no 'event'"),
        (frame({"event": "speak"}), "unknown client event 'speak'"),
        (frame({"event": "text", "text": 5}), "needs a string 'text'"),
        (frame({"event": "start"}), "has no 'request'"),
    ],
)
def test_malformed_client_frames(data: bytes, message: str) -> None:
    with pytest.raises(MalformedFrame, match=message):
        decode_client_event(data)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash_the_server_session(data: bytes) -> None:
    session = ServerSession()
    commands = session.receive_frame(data)
    assert all(isinstance(c, Synthesize | EndSession) for c in commands)


# -- client session --------------------------------------------------------------


def test_client_session_happy_path() -> None:
    c = ClientSession()
    c.start(TTSRequest())
    c.text("héllo")
    c.flush()
    c.stop()
    assert c.text_bytes == len("héllo".encode())
    assert c.receive(encode_server_event(Audio(b"abc"))) == Audio(b"abc")
    assert c.receive(encode_server_event(Log({}))) == Log({})
    assert c.receive(encode_server_event(Finish(FinishReason.STOP))) == Finish(FinishReason.STOP)
    assert c.state is ClientState.FINISHED and c.done and c.audio_bytes == 3


def test_client_session_refuses_out_of_order() -> None:
    c = ClientSession()
    with pytest.raises(UnexpectedEvent, match="'text' in state idle"):
        c.text("x")
    with pytest.raises(UnexpectedEvent):
        c.receive(encode_server_event(Audio(b"x")))
    c = ClientSession()
    c.start(TTSRequest())
    with pytest.raises(UnexpectedEvent, match="before 'stop'"):
        c.receive(encode_server_event(Finish(FinishReason.STOP)))
    c = ClientSession()
    c.start(TTSRequest())
    c.stop()
    with pytest.raises(UnexpectedEvent):
        c.stop()


def test_client_session_finish_error() -> None:
    c = ClientSession()
    c.start(TTSRequest())
    assert c.receive(encode_server_event(Finish(FinishReason.ERROR, "x"))).message == "x"  # type: ignore[union-attr]
    assert c.state is ClientState.FAILED


# -- server session --------------------------------------------------------------


def start(**req: object) -> bytes:
    return encode_client_event(Start(parse_request(req)))


def synthesized(commands: list) -> str:
    return "".join(c.text for c in commands if isinstance(c, Synthesize))


@given(st.lists(st.text(max_size=120), max_size=30), st.integers(100, 300))
def test_text_is_joined_exactly_and_cut_under_chunk_length(pieces: list[str], limit: int) -> None:
    s = ServerSession()
    out = s.receive_frame(start(chunk_length=limit))
    for piece in pieces:
        out += s.receive_frame(encode_client_event(Text(piece)))
    assert all(len(c.text) <= limit for c in out if isinstance(c, Synthesize))
    out += s.receive_frame(encode_client_event(Stop()))
    assert synthesized(out) == "".join(pieces)
    assert out[-1] == EndSession(FinishReason.STOP)
    assert s.state is ServerState.STOPPING


def test_synthesis_starts_at_chunk_length_at_a_sentence_end() -> None:
    s = ServerSession()
    s.receive_frame(start(chunk_length=100))
    out = s.receive_frame(encode_client_event(Text("One sentence here. " * 8)))
    assert out and all(c.text.endswith(". ") for c in out if isinstance(c, Synthesize))


def test_flush_synthesises_what_is_buffered() -> None:
    s = ServerSession()
    s.receive_frame(start())
    assert s.receive_frame(encode_client_event(Text("Hi"))) == []
    assert s.receive_frame(encode_client_event(Flush())) == [Synthesize("Hi")]
    assert s.receive_frame(encode_client_event(Flush())) == []


def test_empty_session_ends_with_finish_only() -> None:
    s = ServerSession()
    s.receive_frame(start())
    assert s.receive_frame(encode_client_event(Stop())) == [EndSession(FinishReason.STOP)]


def test_new_start_after_finish() -> None:
    s = ServerSession()
    s.receive_frame(start())
    s.receive_frame(encode_client_event(Stop()))
    s.session_finished()
    assert s.state is ServerState.AWAITING_START
    s.receive_frame(start(format="wav"))
    assert s.state is ServerState.STREAMING and s.sessions_started == 2


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([encode_client_event(Text("x"))], "'text' before 'start'"),
        ([encode_client_event(Flush())], "'flush' before 'start'"),
        ([start(), start()], "second 'start'"),
        ([start(), encode_client_event(Stop()), encode_client_event(Text("x"))], "after 'stop'"),
        ([frame({"event": "start", "request": {"sample_rate": 22050}})], "sample_rate"),
        ([b"\x93\x01"], "MessagePack"),
    ],
)
def test_out_of_order_and_invalid_input_ends_with_error(frames: list[bytes], message: str) -> None:
    s = ServerSession()
    out: list = []
    for f in frames:
        out += s.receive_frame(f)
    assert isinstance(out[-1], EndSession) and out[-1].reason is FinishReason.ERROR
    assert message in (out[-1].message or "")
    assert s.state is ServerState.CLOSED
    assert s.receive_frame(encode_client_event(Stop())) == []


def test_oversized_and_text_frames() -> None:
    s = ServerSession(max_message_bytes=10)
    (end,) = s.receive_frame(encode_client_event(Text("x" * 50)))
    assert isinstance(end, EndSession) and "over the limit of 10 bytes" in (end.message or "")
    (end,) = ServerSession().receive_text_frame()
    assert isinstance(end, EndSession) and "text frames" in (end.message or "")
