"""Audio assembly: provider PCM in, one complete output file out.

The worker always asks the provider for raw PCM (s16le mono) and builds the
output itself (DESIGN.md §4):

* :mod:`~worker.audio.formats` – the output formats, their rates and bitrates,
  and the provider PCM rate to request for an output rate;
* :mod:`~worker.audio.pcm` – :class:`PcmStream`, one provider session's
  ``audio`` payloads to whole PCM samples (pure, no I/O);
* :mod:`~worker.audio.assemble` – :func:`assemble`, segment PCM files to one
  wav/mp3/opus/flac/m4a/pcm file in bounded memory;
* :mod:`~worker.audio.probe` – :func:`probe`, decode a whole file and check it.

Errors, all under one root:

AudioError
├── UnsupportedFormat      a format, rate or bitrate this package cannot handle (also ValueError)
│   └── UnsupportedOutput  an output choice outside the allowed values; ``field`` names it
├── CorruptAudio           bytes that are not valid audio of the kind they claim to be
├── OutputTooLarge         the result cannot be represented in the format (WAV over 4 GiB)
└── EncodeError            the encoder or muxer failed while writing the output
"""

from worker.audio.assemble import AssembledAudio, SegmentAudio, assemble
from worker.audio.errors import (
    AudioError,
    CorruptAudio,
    EncodeError,
    OutputTooLarge,
    UnsupportedFormat,
    UnsupportedOutput,
)
from worker.audio.formats import (
    FORMATS,
    FormatInfo,
    OutputFormat,
    allowed_bitrates,
    format_info,
    provider_pcm_rate,
    validate_output,
)
from worker.audio.pcm import PcmStream
from worker.audio.probe import ProbeInfo, probe
from worker.audio.reference import check_reference_audio

__all__ = [
    "FORMATS",
    "AssembledAudio",
    "AudioError",
    "CorruptAudio",
    "EncodeError",
    "FormatInfo",
    "OutputFormat",
    "OutputTooLarge",
    "PcmStream",
    "ProbeInfo",
    "SegmentAudio",
    "UnsupportedFormat",
    "UnsupportedOutput",
    "allowed_bitrates",
    "assemble",
    "check_reference_audio",
    "format_info",
    "probe",
    "provider_pcm_rate",
    "validate_output",
]
