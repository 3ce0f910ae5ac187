"""Pure tests of PcmStream: provider ``audio`` payloads to whole s16le samples."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.audio import CorruptAudio, PcmStream, UnsupportedFormat
from worker.fish import AudioFormat

# The RIFF and data sizes of a streamed WAV are placeholders (docs/protocol.md).
PLACEHOLDER_RIFF = 0xFFFFFF24
PLACEHOLDER_DATA = 0xFFFFFF00


def fmt_chunk(rate: int = 24000, channels: int = 1, bits: int = 16, tag: int = 1) -> bytes:
    block = channels * bits // 8
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: cbSize, valid bits, mask, sub-format GUID
        body += struct.pack("<HHI", 22, bits, 4) + b"\x01\x00" + bytes(14)
    return b"fmt " + struct.pack("<I", len(body)) + body


def wav_header(*, rate: int = 24000, extra: bytes = b"", tag: int = 1, **fmt: int) -> bytes:
    """A streaming WAV header: placeholder sizes, optional chunks before ``data``."""
    return (
        b"RIFF"
        + struct.pack("<I", PLACEHOLDER_RIFF)
        + b"WAVE"
        + fmt_chunk(rate, tag=tag, **fmt)
        + extra
        + b"data"
        + struct.pack("<I", PLACEHOLDER_DATA)
    )


# A LIST chunk of odd size, so the pad byte after it must be skipped too.
LIST_CHUNK = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00"
HEADERS = [
    wav_header(),
    wav_header(rate=44100, extra=LIST_CHUNK),
    wav_header(rate=16000, tag=0xFFFE),
    # fish-speech's streaming header: zero sizes.
    b"RIFF" + bytes(4) + b"WAVE" + fmt_chunk(44100) + b"data" + bytes(4),
]

pcm_bytes = st.binary(max_size=600).map(lambda b: b[: len(b) // 2 * 2])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, repeats allowed: empty events)."""
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def run(stream: PcmStream, events: list[bytes]) -> bytes:
    return b"".join(stream.feed(e) for e in events) + stream.close()


# --- pcm -----------------------------------------------------------------------------


def test_pcm_passes_whole_samples_through() -> None:
    stream = PcmStream(AudioFormat.PCM)
    assert stream.feed(b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04"
    assert stream.close() == b""
    assert stream.sample_rate is None


def test_pcm_carries_an_odd_byte_to_the_next_event() -> None:
    stream = PcmStream()
    assert stream.feed(b"\x01") == b""
    assert stream.feed(b"\x02\x03") == b"\x01\x02"
    assert stream.feed(b"\x04\x05\x06") == b"\x03\x04\x05\x06"
    assert stream.close() == b""


def test_pcm_leftover_byte_at_the_end_is_an_error() -> None:
    stream = PcmStream()
    assert stream.feed(b"\x01\x02\x03") == b"\x01\x02"
    with pytest.raises(CorruptAudio, match="half a sample"):
        stream.close()


def test_empty_events_mean_nothing() -> None:
    stream = PcmStream(AudioFormat.WAV)
    assert stream.feed(b"") == b""
    assert run(stream, [b"", HEADERS[0], b"", b"\x01\x02", b""]) == b"\x01\x02"


def test_pcm_does_not_strip_riff_bytes() -> None:
    data = HEADERS[0] + b"\x01\x02"
    assert run(PcmStream(AudioFormat.PCM), [data]) == data


@given(pcm=pcm_bytes, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_pcm_any_split_gives_the_same_samples(pcm: bytes, cuts: list[int]) -> None:
    stream = PcmStream()
    out = [stream.feed(e) for e in split(pcm, cuts)]
    assert all(len(chunk) % 2 == 0 for chunk in out)  # never half a sample
    assert b"".join(out) + stream.close() == pcm


def test_other_provider_formats_are_refused() -> None:
    with pytest.raises(UnsupportedFormat) as info:
        PcmStream(AudioFormat.MP3)
    assert isinstance(info.value, ValueError)
    assert info.value.field == "format"


def test_feed_after_close_is_an_error() -> None:
    stream = PcmStream()
    stream.close()
    with pytest.raises(CorruptAudio):
        stream.feed(b"\x00\x00")


# --- wav -----------------------------------------------------------------------------


@pytest.mark.parametrize("header", HEADERS, ids=["placeholder", "list-chunk", "extensible", "zero"])
def test_wav_header_is_stripped(header: bytes) -> None:
    stream = PcmStream(AudioFormat.WAV)
    assert run(stream, [header + b"\x01\x02\x03\x04"]) == b"\x01\x02\x03\x04"
    assert stream.headers == 1
    assert stream.sample_rate == struct.unpack_from("<I", header, 24)[0]


@given(
    header=st.sampled_from(HEADERS),
    pcm=pcm_bytes,
    cuts=st.lists(st.integers(min_value=0), max_size=12),
)
def test_wav_any_split_gives_the_same_samples(header: bytes, pcm: bytes, cuts: list[int]) -> None:
    stream = PcmStream(AudioFormat.WAV)
    assert run(stream, split(header + pcm, cuts)) == pcm
    assert stream.headers == 1


@given(
    first=st.sampled_from(HEADERS),
    second=st.sampled_from(HEADERS),
    pcm1=pcm_bytes,
    pcm2=pcm_bytes,
    cuts1=st.lists(st.integers(min_value=0), max_size=6),
    cuts2=st.lists(st.integers(min_value=0), max_size=6),
)
def test_wav_header_at_the_start_of_a_later_event_is_stripped(
    first: bytes, second: bytes, pcm1: bytes, pcm2: bytes, cuts1: list[int], cuts2: list[int]
) -> None:
    # An event begins exactly where the second header does; the rest is cut anywhere.
    events = split(first + pcm1, cuts1) + split(second + pcm2, cuts2)
    stream = PcmStream(AudioFormat.WAV)
    assert run(stream, events) == pcm1 + pcm2
    assert stream.headers == 2


def test_wav_header_after_held_audio_that_looked_like_riff() -> None:
    # b"R" alone might start a header, so it is held; the next event's own header wins.
    stream = PcmStream(AudioFormat.WAV)
    events = [HEADERS[0], b"\x01", b"R", HEADERS[1][:5], HEADERS[1][5:] + b"\x03\x04"]
    assert run(stream, events) == b"\x01R\x03\x04"
    assert stream.headers == 2


def test_wav_riff_bytes_inside_an_event_are_audio() -> None:
    # Only an event that *begins* with RIFF....WAVE carries a header.
    stream = PcmStream(AudioFormat.WAV)
    assert run(stream, [HEADERS[0] + b"\x01\x02" + HEADERS[0]]) == b"\x01\x02" + HEADERS[0]


def test_wav_without_a_header_is_taken_as_pcm() -> None:
    # Lenient: if the provider sends bare PCM for wav, keep it (docs/protocol.md, 'Audio payloads').
    stream = PcmStream(AudioFormat.WAV)
    assert run(stream, [b"RIFFxxxxWAVX\x01\x02", b"RI", b"FX"]) == b"RIFFxxxxWAVX\x01\x02RIFX"
    assert stream.headers == 0


def test_wav_short_riff_prefix_at_the_end_is_audio() -> None:
    stream = PcmStream(AudioFormat.WAV)
    assert stream.feed(b"RI") == b""  # might still become a header
    assert stream.feed(b"FF") == b""
    assert stream.close() == b"RIFF"


def test_wav_stream_ending_inside_a_header_is_an_error() -> None:
    stream = PcmStream(AudioFormat.WAV)
    stream.feed(HEADERS[0][:30])
    with pytest.raises(CorruptAudio, match="inside a WAV header"):
        stream.close()


def test_wav_header_after_half_a_sample_is_an_error() -> None:
    stream = PcmStream(AudioFormat.WAV)
    stream.feed(HEADERS[0] + b"\x01")
    with pytest.raises(CorruptAudio, match="half a sample"):
        stream.feed(HEADERS[0])


@pytest.mark.parametrize(("channels", "bits"), [(2, 16), (1, 8), (1, 24)])
def test_wav_that_is_not_16_bit_mono_is_refused(channels: int, bits: int) -> None:
    stream = PcmStream(AudioFormat.WAV)
    with pytest.raises(CorruptAudio, match="expected 16-bit mono"):
        stream.feed(wav_header(channels=channels, bits=bits) + bytes(4))


def test_wav_with_a_huge_chunk_before_data_is_refused() -> None:
    huge = b"junk" + struct.pack("<I", 10_000_000)
    stream = PcmStream(AudioFormat.WAV)
    with pytest.raises(CorruptAudio, match="not a streaming header"):
        stream.feed(b"RIFF" + bytes(4) + b"WAVE" + huge)
