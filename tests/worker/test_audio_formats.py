"""Pure tests of output format choices: rates, bitrates, defaults, provider rate."""

from __future__ import annotations

import pytest

from worker.audio import (
    FORMATS,
    OutputFormat,
    UnsupportedOutput,
    allowed_bitrates,
    format_info,
    provider_pcm_rate,
    validate_output,
)
from worker.fish import SAMPLE_RATES, AudioFormat


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_every_format_is_described_and_its_defaults_are_valid(fmt: OutputFormat) -> None:
    info = format_info(fmt)
    assert info is FORMATS[fmt]
    assert info.default_sample_rate in info.sample_rates
    assert info.extension == f".{fmt.value}"
    assert info.content_type
    validate_output(fmt, None, None)
    for rate in info.sample_rates:
        validate_output(fmt.value, rate, info.default_bitrate_kbps)  # plain strings work too


def test_rates_and_defaults() -> None:
    assert FORMATS[OutputFormat.OPUS].default_sample_rate == 48000
    assert FORMATS[OutputFormat.MP3].default_bitrate_kbps == 128
    assert FORMATS[OutputFormat.M4A].content_type == "audio/mp4"
    assert 12000 in FORMATS[OutputFormat.OPUS].sample_rates
    assert 8000 not in FORMATS[OutputFormat.MP3].sample_rates
    assert not FORMATS[OutputFormat.FLAC].lossy


def test_bad_sample_rate_names_the_field_and_lists_the_allowed_rates() -> None:
    with pytest.raises(UnsupportedOutput) as info:
        validate_output(OutputFormat.MP3, 8000, None)
    assert isinstance(info.value, ValueError)
    assert info.value.field == "sample_rate"
    assert "16000, 22050, 24000, 32000, 44100, 48000" in str(info.value)


def test_unknown_format_names_the_field() -> None:
    with pytest.raises(UnsupportedOutput, match="allowed: wav, mp3, opus, flac, m4a, pcm") as info:
        validate_output("aiff", 44100, None)
    assert info.value.field == "format"


@pytest.mark.parametrize(
    ("fmt", "rate", "kbps", "allowed"),
    [
        (OutputFormat.MP3, 44100, 96, "64, 128, 192, 256, 320"),
        # MPEG-2 Layer III cannot go above 160 kbps (lame would clamp silently).
        (OutputFormat.MP3, 22050, 320, "64, 128"),
        (OutputFormat.OPUS, 48000, 300, "24–256"),
        (OutputFormat.OPUS, 48000, 16, "24–256"),
        # AAC spends at most 6 bits per sample: 96 kbps at 16 kHz.
        (OutputFormat.M4A, 16000, 128, "64–96"),
    ],
)
def test_bad_bitrate_lists_what_is_allowed_at_that_rate(
    fmt: OutputFormat, rate: int, kbps: int, allowed: str
) -> None:
    with pytest.raises(UnsupportedOutput, match=f"allowed: {allowed} kbps") as info:
        validate_output(fmt, rate, kbps)
    assert info.value.field == "bitrate_kbps"


@pytest.mark.parametrize("fmt", [OutputFormat.WAV, OutputFormat.FLAC, OutputFormat.PCM])
def test_lossless_formats_take_no_bitrate(fmt: OutputFormat) -> None:
    assert allowed_bitrates(fmt, 44100) == ()
    with pytest.raises(UnsupportedOutput, match="takes no bitrate"):
        validate_output(fmt, 44100, 128)


@pytest.mark.parametrize("value", [True, 128.0, "128"])
def test_bitrate_must_be_an_int(value: object) -> None:
    with pytest.raises(UnsupportedOutput):
        validate_output(OutputFormat.MP3, 44100, value)  # type: ignore[arg-type]


def test_allowed_bitrates_in_range() -> None:
    assert 200 in allowed_bitrates(OutputFormat.OPUS, 16000)
    assert list(allowed_bitrates(OutputFormat.M4A, 48000))[-1] == 256


@pytest.mark.parametrize(
    ("output_rate", "provider_rate"),
    [(8000, 8000), (24000, 24000), (44100, 44100), (22050, 44100), (48000, 44100), (12000, 44100)],
)
def test_provider_pcm_rate(output_rate: int, provider_rate: int) -> None:
    assert provider_pcm_rate(output_rate) == provider_rate
    assert provider_pcm_rate(output_rate) in SAMPLE_RATES[AudioFormat.PCM]
