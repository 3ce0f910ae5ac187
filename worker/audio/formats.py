"""Output formats a job can ask for, and the sample rates and bitrates each allows.

The worker always asks the provider for raw PCM and encodes the output
itself, so the formats here are what *we* can encode (PyAV: libmp3lame,
libopus, aac, flac, pcm_s16le), not what the provider streams.
:func:`provider_pcm_rate` picks the PCM rate to request for a given output
rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from worker.audio.errors import UnsupportedOutput
from worker.fish import SAMPLE_RATES, AudioFormat

_Format = TypeVar("_Format", bound=StrEnum)


class OutputFormat(StrEnum):
    """Formats of a job's finished audio file."""

    WAV = "wav"  # RIFF/WAVE, s16le mono PCM, correct sizes (so at most 4 GiB)
    MP3 = "mp3"  # MPEG-1/2 Layer III, CBR, libmp3lame, with a LAME tag for gapless decoding
    OPUS = "opus"  # one Ogg Opus stream, libopus
    FLAC = "flac"  # native FLAC, lossless, 16-bit
    M4A = "m4a"  # AAC-LC in MP4 (iPod flavour), moov atom first (+faststart)
    PCM = "pcm"  # raw s16le mono, no header; the rate travels in the job record


_PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
_MP3_RATES = (16000, 22050, 24000, 32000, 44100, 48000)
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # the rates libopus runs at natively
_M4A_RATES = (16000, 22050, 24000, 32000, 44100, 48000)

#: Provider PCM rate to fall back to when it cannot produce the output rate itself.
FALLBACK_PROVIDER_RATE = 44100

# MPEG-2 Layer III (the 16/22.05/24 kHz rates) tops out at 160 kbps; lame
# silently clamps higher requests, so refuse them rather than lie.
_MP3_LSF_MAX_KBPS = 160
# The AAC encoder cannot spend more than 6144 bits per channel per 1024-sample
# frame, i.e. 6 bits per sample; above that it clamps (16 kHz -> 96 kbps).
_AAC_MAX_BITS_PER_SAMPLE = 6


@dataclass(frozen=True, slots=True)
class FormatInfo:
    """What one output format allows, and how its files are labelled.

    ``bitrates_kbps`` is ``None`` for formats that take no bitrate (lossless
    and raw); else the discrete values or the inclusive range allowed at the
    highest sample rate (see :func:`allowed_bitrates` for a given rate).
    """

    format: OutputFormat
    sample_rates: tuple[int, ...]
    default_sample_rate: int
    bitrates_kbps: tuple[int, ...] | range | None
    default_bitrate_kbps: int | None
    content_type: str
    extension: str  # with the leading dot

    @property
    def lossy(self) -> bool:
        """Whether the format takes a bitrate (and adds encoder delay)."""
        return self.bitrates_kbps is not None


FORMATS: Mapping[OutputFormat, FormatInfo] = {
    OutputFormat.WAV: FormatInfo(
        OutputFormat.WAV, _PCM_RATES, 44100, None, None, "audio/wav", ".wav"
    ),
    OutputFormat.MP3: FormatInfo(
        OutputFormat.MP3, _MP3_RATES, 44100, (64, 128, 192, 256, 320), 128, "audio/mpeg", ".mp3"
    ),
    OutputFormat.OPUS: FormatInfo(
        OutputFormat.OPUS, _OPUS_RATES, 48000, range(24, 257), 64, "audio/ogg", ".opus"
    ),
    OutputFormat.FLAC: FormatInfo(
        OutputFormat.FLAC, _PCM_RATES, 44100, None, None, "audio/flac", ".flac"
    ),
    OutputFormat.M4A: FormatInfo(
        OutputFormat.M4A, _M4A_RATES, 44100, range(64, 257), 96, "audio/mp4", ".m4a"
    ),
    # There is no registered media type for little-endian headerless PCM
    # (audio/L16 is big-endian), so say only that it is bytes.
    OutputFormat.PCM: FormatInfo(
        OutputFormat.PCM, _PCM_RATES, 44100, None, None, "application/octet-stream", ".pcm"
    ),
}


def format_info(fmt: OutputFormat | str) -> FormatInfo:
    """The :class:`FormatInfo` of ``fmt``; raises :class:`UnsupportedOutput` if unknown."""
    return FORMATS[parse_format(OutputFormat, fmt)]


def allowed_bitrates(fmt: OutputFormat | str, sample_rate: int) -> Sequence[int]:
    """Bitrates in kbps allowed for ``fmt`` at ``sample_rate`` (empty if it takes none)."""
    info = format_info(fmt)
    if info.bitrates_kbps is None:
        return ()
    if info.format is OutputFormat.MP3 and sample_rate < 32000:
        return tuple(b for b in info.bitrates_kbps if b <= _MP3_LSF_MAX_KBPS)
    if info.format is OutputFormat.M4A:
        ceiling = _AAC_MAX_BITS_PER_SAMPLE * sample_rate // 1000
        bitrates = info.bitrates_kbps
        assert isinstance(bitrates, range)
        return range(bitrates.start, min(bitrates.stop, ceiling + 1))
    return info.bitrates_kbps


def validate_output(
    fmt: OutputFormat | str, sample_rate: int | None, bitrate_kbps: int | None
) -> None:
    """Check an output choice; ``None`` stands for the format's default.

    Raises :class:`UnsupportedOutput` (a ``ValueError``) whose ``field`` is
    ``format``, ``sample_rate`` or ``bitrate_kbps`` and whose message lists
    the allowed values.
    """
    info = format_info(fmt)
    name = info.format.value
    rate = info.default_sample_rate if sample_rate is None else sample_rate
    if not _is_int(rate) or rate not in info.sample_rates:
        raise UnsupportedOutput(
            f"sample_rate: {rate!r} Hz is not supported for {name}; "
            f"allowed: {_list(info.sample_rates)} Hz",
            field="sample_rate",
        )
    if bitrate_kbps is None:
        return
    allowed = allowed_bitrates(info.format, rate)
    if not allowed:
        raise UnsupportedOutput(
            f"bitrate_kbps: {name} takes no bitrate (it is not a lossy format); leave it unset",
            field="bitrate_kbps",
        )
    if not _is_int(bitrate_kbps) or bitrate_kbps not in allowed:
        raise UnsupportedOutput(
            f"bitrate_kbps: {bitrate_kbps!r} kbps is not supported for {name} at {rate} Hz; "
            f"allowed: {_list(allowed)} kbps",
            field="bitrate_kbps",
        )


def provider_pcm_rate(sample_rate: int) -> int:
    """The PCM rate to request from the provider for an output at ``sample_rate``.

    The output rate itself when the provider offers it for ``pcm``, else
    44100 Hz, which the assembler then resamples.
    """
    if sample_rate in SAMPLE_RATES[AudioFormat.PCM]:
        return sample_rate
    return FALLBACK_PROVIDER_RATE


def parse_format(
    kind: type[_Format], fmt: _Format | str, refusal: str = "is not supported"
) -> _Format:
    """``fmt`` as a member of ``kind`` (a job's or a book's formats).

    Raises :class:`UnsupportedOutput` (field ``format``) saying ``refusal`` and
    listing the allowed values.
    """
    try:
        return kind(fmt)
    except ValueError:
        allowed = ", ".join(f.value for f in kind)
        raise UnsupportedOutput(
            f"format: {fmt!r} {refusal}; allowed: {allowed}", field="format"
        ) from None


def _is_int(value: object) -> bool:
    # bool is an int subclass; True kbps is a bug, not a bitrate.
    return isinstance(value, int) and not isinstance(value, bool)


def _list(values: Sequence[int]) -> str:
    if isinstance(values, range):
        return f"{values.start}–{values.stop - 1}"
    return ", ".join(map(str, values))
