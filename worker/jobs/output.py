"""A job attempt's output file: encoded segment by segment as they finish, then uploaded.

:class:`JobOutput` is what the runner holds for one attempt.  It is made
before the first provider session opens, and each segment is handed to it
the moment its checkpoint is recorded (:meth:`JobOutput.add`, from the
synthesizer's ``on_segment``); a :class:`~worker.audio.StreamingAssembly`
encodes them in text order on a thread of its own, so when the last segment
arrives only that one is left to encode.  Segments finished by an earlier
attempt are fetched from their checkpoints in the background meanwhile
(:meth:`JobOutput.fetch`), and any segment still missing at the end
(:meth:`JobOutput.complete`) is taken from its checkpoint then.

The output file is the one :func:`~worker.audio.assemble` would make of the
same segments: same pauses, same fades, same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from worker.audio import (
    AssembledAudio,
    OutputFormat,
    SegmentAudio,
    StreamingAssembly,
    format_info,
)
from worker.jobs.checkpoints import SegmentCheckpoint
from worker.jobs.model import Job, Output
from worker.jobs.text import Segment
from worker.settings import Settings
from worker.storage.client import ObjectNotFound, Storage
from worker.storage.growing import GrowingUpload

#: Output formats whose files only change in their first part when finished, so
#: their parts can go up while they are written (see worker.storage.growing).
GROWING_FORMATS = frozenset(
    {OutputFormat.MP3, OutputFormat.WAV, OutputFormat.PCM, OutputFormat.FLAC, OutputFormat.OPUS}
)

log = logging.getLogger(__name__)


class CheckpointLost(Exception):
    """A finished segment's checkpoint or its object is missing; the next attempt redoes it."""

    def __init__(self, message: str, *, object_gone: bool = False) -> None:
        super().__init__(message)
        self.object_gone = object_gone  # the record is there, the object is not


def segment_path(spool: Path, index: int) -> Path:
    """Where segment ``index``'s PCM lies in an attempt's spool (as the synthesizer writes it)."""
    return spool / f"{index:06d}.pcm"


def pauses_after(job: Job, segments: Sequence[Segment], settings: Settings) -> list[int]:
    """The silence after each segment, in ms: the paragraph pause (none after the
    last segment) plus what a ``<break>`` asks for."""
    pause = job.request.paragraph_silence_ms
    if pause is None:
        pause = settings.paragraph_silence_ms
    last = len(segments) - 1
    return [
        (pause if seg.paragraph_end and i != last else 0) + seg.break_ms
        for i, seg in enumerate(segments)
    ]


class JobOutput:
    """One attempt's output file, assembled while its segments are synthesised."""

    def __init__(
        self,
        job: Job,
        segments: Sequence[Segment],
        spool: Path,
        settings: Settings,
        storage: Storage,
        *,
        on_encoded: Callable[[int], None] | None = None,
    ) -> None:
        req = job.request
        self.job = job
        self.storage = storage
        self.info = format_info(req.format)
        self.rate = req.sample_rate or self.info.default_sample_rate
        self.spool = spool
        self.segments = list(segments)
        self._pauses = pauses_after(job, self.segments, settings)
        self._position = {seg.index: i for i, seg in enumerate(self.segments)}
        # First, as it may refuse a user's key: nothing has started yet.
        self.key = req.output_key or storage.output_key(
            {"tenant": job.tenant, "job_id": job.id, "ext": self.info.extension.lstrip(".")}
        )
        self.assembly = StreamingAssembly(
            len(self.segments),
            spool / f"output{self.info.extension}",
            self.info.format,
            self.rate,
            bitrate_kbps=req.bitrate_kbps,
            on_encoded=on_encoded,
        )
        # Its parts go up as the file grows, but for an M4A: its index is moved to
        # the front when it is finished, which rewrites the whole file.
        self._upload: GrowingUpload | None = None
        if self.info.format in GROWING_FORMATS:
            self._upload = GrowingUpload(
                storage,
                self.assembly.out_path.with_name(self.assembly.out_path.name + ".part"),
                self.key,
                content_type=self.info.content_type,
                metadata={"job-id": job.id},
            )

    @property
    def encoded(self) -> int:
        """Segments written into the output file so far."""
        return self.assembly.encoded

    def part(self, index: int, sample_rate: int) -> SegmentAudio:
        """Segment ``index``'s audio as the assembly takes it: its file, rate and pause."""
        position = self._position[index]
        return SegmentAudio(segment_path(self.spool, index), sample_rate, self._pauses[position])

    def add(self, checkpoint: SegmentCheckpoint) -> None:
        """Segment ``checkpoint.index`` is complete in the spool: encode it when its turn comes."""
        position = self._position.get(checkpoint.index)
        if position is None or self.assembly.has(position):
            return
        self.assembly.add(position, self.part(checkpoint.index, checkpoint.sample_rate))

    def fetch(self, checkpoints: Mapping[int, SegmentCheckpoint], storage: Storage) -> None:
        """Bring segments finished by earlier attempts into the spool, in text order, and
        add each; raises :class:`CheckpointLost` for an object that is gone."""
        for seg in self.segments:
            cp = checkpoints.get(seg.index)
            if cp is not None and not self.assembly.has(self._position[seg.index]):
                self._bring(cp, storage)
                self.add(cp)

    def complete(
        self, checkpoints: Mapping[int, SegmentCheckpoint], storage: Storage
    ) -> list[SegmentAudio]:
        """Every segment in text order, each added (fetched first if it is not in the
        spool); raises :class:`CheckpointLost` for one without a checkpoint."""
        parts = []
        for seg in self.segments:
            cp = checkpoints.get(seg.index)
            if cp is None:  # cleared or replaced meanwhile (a stalled worker): redo it
                raise CheckpointLost(f"segment {seg.index} has no checkpoint")
            if not self.assembly.has(self._position[seg.index]):
                self._bring(cp, storage)
                self.add(cp)
            parts.append(self.part(seg.index, cp.sample_rate))
        return parts

    def finish(self) -> AssembledAudio:
        """The finished output file (every segment must have been added)."""
        return self.assembly.finish()

    def abort(self) -> None:
        """Stop encoding and uploading; the partial file and any parts sent are removed."""
        self.assembly.abort()
        if self._upload is not None:
            self._upload.abort()

    def upload(self, audio: AssembledAudio) -> Output:
        """Upload the finished file (what is left of it) under the job's output key;
        the record's :class:`Output`."""
        metadata = {"job-id": self.job.id, "duration-s": f"{audio.duration_s:.3f}"}
        if self._upload is not None:
            # The duration is known only now; the parts sent so far carry the job id.
            self._upload.metadata = metadata
            self._upload.finish(audio.path, audio.sha256)
        else:
            self.storage.upload_file(
                audio.path, self.key, content_type=audio.content_type, metadata=metadata
            )
        return Output(
            url=self.storage.url(self.key),
            bucket=self.storage.bucket,
            key=self.key,
            bytes=audio.bytes,
            duration_s=round(audio.duration_s, 3),
            format=audio.format.value,
            sample_rate=audio.sample_rate,
            content_type=audio.content_type,
            sha256=audio.sha256,
        )

    def _bring(self, cp: SegmentCheckpoint, storage: Storage) -> None:
        """The checkpoint's PCM into the spool, unless this attempt already has it."""
        path = segment_path(self.spool, cp.index)
        if path.exists() and path.stat().st_size == cp.bytes:
            return
        try:
            storage.download_file(cp.key, path)
        except ObjectNotFound as exc:
            # Deleted behind our back (a lifecycle rule, a cleanup): start over.
            raise CheckpointLost(
                f"segment {cp.index}'s audio is gone: {exc}", object_gone=True
            ) from exc
