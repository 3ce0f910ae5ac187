"""Turn the ``audio`` payloads of one provider session into raw s16le PCM.

Pure: bytes in, bytes out, no I/O.  The worker asks the provider for ``pcm``
(docs/protocol.md, 'Audio payloads'): raw s16le mono with no header, where nothing promises
that an event holds a whole number of samples, so an odd trailing byte is
carried to the next event and never half a sample is emitted.

For ``wav`` the provider sends a RIFF header with placeholder sizes at the
start of the stream, and perhaps again at the start of a later event (the
docs do not settle it), so a ``RIFF....WAVE`` header is stripped wherever an
event begins with one: every chunk up to and including the ``data`` chunk's
header, with the sizes ignored.  Bytes at the start of an event are held back
until they either prove to be a header or cannot be one.
"""

from __future__ import annotations

import struct

from worker.audio.errors import CorruptAudio, UnsupportedFormat
from worker.fish import AudioFormat

_RIFF = b"RIFF"
_WAVE = b"WAVE"
_PREFIX_LEN = 12  # "RIFF" + size + "WAVE"
# A real header is 44 bytes, or a few hundred with LIST/fact chunks; anything
# far larger is not a header we should hold in memory waiting for "data".
_MAX_HEADER = 64 * 1024
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class PcmStream:
    """Raw PCM from the ``audio`` payloads of ONE provider session.

    ``feed`` each payload in order and write what it returns; ``close`` at
    ``finish`` (it raises :class:`CorruptAudio` if the stream ended with half
    a sample or inside a WAV header).  ``sample_rate`` is the rate named by
    the last WAV header seen (``None`` for ``pcm``), ``headers`` how many
    headers were stripped.
    """

    __slots__ = ("_carry", "_closed", "_held", "_phase", "_wav", "headers", "sample_rate")

    def __init__(self, provider_format: AudioFormat | str = AudioFormat.PCM) -> None:
        fmt = AudioFormat(provider_format)
        if fmt not in (AudioFormat.PCM, AudioFormat.WAV):
            raise UnsupportedFormat(
                f"format: PcmStream reads pcm or wav, not {fmt.value}", field="format"
            )
        self._wav = fmt is AudioFormat.WAV
        self._carry = b""  # 0 or 1 byte: the first half of a sample
        self._held = bytearray()  # a possible or partial WAV header
        self._phase = "pcm"  # "pcm", "probe" (maybe a header) or "header" (surely one)
        self._closed = False
        self.headers = 0  # WAV headers stripped so far
        self.sample_rate: int | None = None

    def feed(self, payload: bytes) -> bytes:
        """Take one ``audio`` payload; return the whole samples it completes."""
        if self._closed:
            raise CorruptAudio("audio after the PCM stream was closed")
        if not payload:
            return b""  # empty events happen and mean nothing
        data = bytes(payload)
        if self._wav and self._phase == "pcm":
            self._phase = "probe"  # every event may open with a header
        if self._phase == "probe":
            if self._held and not _could_be_header(self._held + data) and _could_be_header(data):
                # What was held (say a lone b"R") was audio: this event starts the header.
                released = self._whole_samples(bytes(self._held))
                self._held.clear()
                return released + self.feed(data)
            self._held += data
            data = b""
            if not _could_be_header(self._held):
                data = bytes(self._held)
                self._held.clear()
                self._phase = "pcm"
            elif len(self._held) >= _PREFIX_LEN:
                if self._carry:
                    raise CorruptAudio("a WAV header arrived after half a sample")
                self._phase = "header"
            else:
                return b""
        if self._phase == "header":
            self._held += data
            start = self._header_end()
            if start is None:
                return b""
            data = bytes(self._held[start:])
            self._held.clear()
            self._phase = "pcm"
            self.headers += 1
        return self._whole_samples(data)

    def close(self) -> bytes:
        """End the stream; return any samples still held back."""
        if self._closed:
            return b""
        self._closed = True
        if self._phase == "header":
            raise CorruptAudio("the stream ended inside a WAV header")
        tail = b""
        if self._phase == "probe":
            # Too short to be a header: it was audio all along.
            tail = self._whole_samples(bytes(self._held))
            self._held.clear()
        if self._carry:
            raise CorruptAudio("the stream ended with half a sample (an odd number of bytes)")
        return tail

    def _whole_samples(self, data: bytes) -> bytes:
        if self._carry:
            data = self._carry + data
        if len(data) % 2:
            self._carry = data[-1:]
            return data[:-1]
        self._carry = b""
        return data

    def _header_end(self) -> int | None:
        """Offset of the first PCM byte after a held header, or None if incomplete."""
        buf = self._held
        pos = _PREFIX_LEN
        while len(buf) >= pos + 8:
            chunk_id = bytes(buf[pos : pos + 4])
            (size,) = struct.unpack_from("<I", buf, pos + 4)
            if chunk_id == b"data":
                return pos + 8  # its size is a placeholder: the stream runs to finish
            end = pos + 8 + size + (size & 1)  # chunks are padded to even sizes
            if end > _MAX_HEADER:
                raise CorruptAudio(
                    f"WAV chunk {chunk_id!r} of {size} bytes before the data chunk; "
                    "not a streaming header"
                )
            if len(buf) < end:
                return None
            if chunk_id == b"fmt ":
                self._check_fmt(bytes(buf[pos + 8 : pos + 8 + size]))
            pos = end
        if len(buf) > _MAX_HEADER:
            raise CorruptAudio("no WAV data chunk within the first 64 KiB")
        return None

    def _check_fmt(self, body: bytes) -> None:
        if len(body) < 16:
            raise CorruptAudio(f"WAV fmt chunk of {len(body)} bytes, need at least 16")
        tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
        if tag not in (_WAVE_FORMAT_PCM, _WAVE_FORMAT_EXTENSIBLE) or channels != 1 or bits != 16:
            raise CorruptAudio(
                f"WAV stream is format {tag:#x}, {channels} channel(s), {bits}-bit; "
                "expected 16-bit mono PCM"
            )
        self.sample_rate = rate


def _could_be_header(held: bytes | bytearray) -> bool:
    """Whether ``held`` is, or may still grow into, ``RIFF????WAVE``."""
    head = bytes(held[:4])
    if head != _RIFF[: len(head)]:
        return False
    wave = bytes(held[8:12])
    return wave == _WAVE[: len(wave)]
