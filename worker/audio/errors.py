"""Errors of the audio package: format choices, provider streams, assembly, probing.

AudioError
├── UnsupportedFormat      a format, rate or bitrate this package cannot handle (also ValueError)
│   └── UnsupportedOutput  an output choice outside the allowed values; ``field`` names it
├── CorruptAudio           bytes that are not valid audio of the kind they claim to be
├── OutputTooLarge         the result cannot be represented in the format (WAV over 4 GiB)
├── EncodeError            the encoder or muxer failed while writing the output
└── InvalidBook            an audiobook that cannot be built as asked (also ValueError)

``UnsupportedOutput`` is a request error (fail the job at once, never retry);
``CorruptAudio`` from a provider stream is transient (the segment can be
synthesised again); ``OutputTooLarge`` is permanent for the chosen format;
``InvalidBook`` (no chapters, a chapter without audio, a cover that is not a
JPEG or PNG image) is permanent: building again gives the same answer.
"""

from __future__ import annotations


class AudioError(Exception):
    """Root of the audio package's errors."""


class UnsupportedFormat(AudioError, ValueError):
    """A format, sample rate or bitrate that this package cannot produce or read.

    ``field`` names the offending value (``format``, ``sample_rate``,
    ``bitrate_kbps``) when there is one; ``message`` is the text without a
    traceback, fit for a job's error record.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class UnsupportedOutput(UnsupportedFormat):
    """An output format, sample rate or bitrate outside the allowed values."""


class CorruptAudio(AudioError):
    """Audio bytes that do not decode, or a stream that breaks its own framing."""


class OutputTooLarge(AudioError):
    """The output does not fit the chosen format (a WAV's 32-bit sizes)."""


class EncodeError(AudioError):
    """The encoder or muxer failed while writing the output file."""


class InvalidBook(AudioError, ValueError):
    """An audiobook that cannot be built as asked: no chapters, an empty chapter, a bad cover."""
