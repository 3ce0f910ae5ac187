"""Audio assembly: provider PCM in, one complete output file out.

The worker always asks the provider for raw PCM (s16le mono) and builds the
output itself, in bounded memory (see docs/architecture.md):

* :mod:`~worker.audio.formats` – the output formats, their rates and bitrates,
  and the provider PCM rate to request for an output rate;
* :mod:`~worker.audio.pcm` – :class:`PcmStream`, one provider session's
  ``audio`` payloads to whole PCM samples (pure, no I/O);
* :mod:`~worker.audio.assemble` – :func:`assemble`, segment PCM files to one
  wav/mp3/opus/flac/m4a/pcm file in bounded memory;
* :mod:`~worker.audio.sinks` – the encoders a file is written with, and
  writing beside a file and renaming it into place;
* :mod:`~worker.audio.decode` and :mod:`~worker.audio.probe` – reading a
  finished file back; :func:`probe` decodes a whole file and checks it;
* :mod:`~worker.audio.book` – :func:`build_audiobook`, a book's chapters to
  one M4B or MP3 with chapter markers, tags, cover and a manifest (its steps
  in ``book_render``, ``book_layout``, ``book_output``, ``id3`` and
  ``book_manifest``); :mod:`~worker.audio.book_sections` – an M4B joined
  from chapters encoded one by one, so a rebuild encodes only what changed;
* :mod:`~worker.audio.stream` – :class:`StreamingAssembly`, the same
  assembly on a thread of its own, fed segment by segment as they finish.
* :mod:`~worker.audio.loudness` – ACX loudness: the target and
  :func:`measure_loudness`; :mod:`~worker.audio.normalize` – gain, limiter
  and room tone; :mod:`~worker.audio.peaks` – true peaks between samples.

Every error is an :class:`AudioError`; :mod:`~worker.audio.errors` draws the
tree and says which errors are worth a retry.
"""

from worker.audio.assemble import AssembledAudio, SegmentAudio, assemble
from worker.audio.book import (
    AudiobookResult,
    BookFormat,
    BookMeta,
    ChapterAudio,
    ChapterLoudness,
    ManifestChapter,
    build_audiobook,
    chapter_from_file,
)
from worker.audio.errors import (
    AudioError,
    CorruptAudio,
    EncodeError,
    InvalidBook,
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
from worker.audio.loudness import ACX, LoudnessReport, LoudnessTarget, measure_loudness
from worker.audio.pcm import PcmStream
from worker.audio.probe import ProbeInfo, probe
from worker.audio.reference import check_reference_audio
from worker.audio.stream import AssemblyAborted, StreamingAssembly

__all__ = [
    "ACX",
    "FORMATS",
    "AssembledAudio",
    "AssemblyAborted",
    "AudioError",
    "AudiobookResult",
    "BookFormat",
    "BookMeta",
    "ChapterAudio",
    "ChapterLoudness",
    "CorruptAudio",
    "EncodeError",
    "FormatInfo",
    "InvalidBook",
    "LoudnessReport",
    "LoudnessTarget",
    "ManifestChapter",
    "OutputFormat",
    "OutputTooLarge",
    "PcmStream",
    "ProbeInfo",
    "SegmentAudio",
    "StreamingAssembly",
    "UnsupportedFormat",
    "UnsupportedOutput",
    "allowed_bitrates",
    "assemble",
    "build_audiobook",
    "chapter_from_file",
    "check_reference_audio",
    "format_info",
    "measure_loudness",
    "probe",
    "provider_pcm_rate",
    "validate_output",
]
