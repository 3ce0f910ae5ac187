"""The end of an attempt's work: every segment in the file, the file uploaded.

:meth:`~worker.jobs.runner.JobRunner.run` calls :func:`assemble_and_upload`
once its segments are synthesised.  The attempt's output has been encoding
them as they finished (:class:`~worker.jobs.output.JobOutput`); what is left is
any segment it lacks (an earlier attempt's, fetched from its checkpoint), the
encoder's last blocks, the upload, and a job's captions beside it.  A batch
chapter's master (and M4B section) is kept meanwhile, on a thread of its own
(:func:`~worker.batches.lifecycle.keep_chapter_master_alongside`).

The job's readers learn the phase (``encoding``, then ``uploading``) from its
progress, when the attempt keeps its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import NamedTuple

from worker.audio import SegmentAudio, provider_pcm_rate
from worker.batches import lifecycle as batches
from worker.jobs.captions import caption_files, caption_marks, job_timeline, upload_captions
from worker.jobs.checkpoints import SegmentCheckpoint, stored_checkpoints
from worker.jobs.model import Captions, ErrorCode, Job, Output, Phase, Progress
from worker.jobs.outcomes import JobFailed
from worker.jobs.output import JobOutput
from worker.jobs.store import JobStore
from worker.jobs.text import Segment
from worker.storage.client import Storage

__all__ = ["Made", "assemble_and_upload"]


class Made(NamedTuple):
    """What an attempt made: the uploaded output, the checkpoints it was made of, and
    the attempt's progress (None when the attempt did not keep its own)."""

    output: Output
    checkpoints: dict[int, SegmentCheckpoint]
    progress: Progress | None


def assemble_and_upload(
    job: Job,
    segments: list[Segment],
    output: JobOutput,
    progress: Progress | None,
    held: dict[int, SegmentCheckpoint] | None,
    *,
    storage: Storage,
    store: JobStore,
) -> Made:
    """Finish ``output`` with every segment, upload it (and the job's captions).

    ``progress`` is the attempt's own (None: leave the record's as it is);
    ``held``, the checkpoints the attempt holds (None: read them).  On any
    error the output is aborted (encoder and upload) before it is raised.
    """
    kept: Callable[[], object] = _nothing
    try:
        parts, checkpoints = _complete(job, segments, output, held, storage=storage, store=store)
        # A batch chapter's master and M4B section are kept while its own file is encoded.
        kept = batches.keep_chapter_master_alongside(job, parts, storage=storage, store=store)
        if progress is not None and progress.phase is not Phase.ENCODING:
            _set_phase(store, job.id, progress, Phase.ENCODING, output)
        audio = output.finish()
    except BaseException:
        output.abort()
        with contextlib.suppress(Exception):
            kept()  # before its files go
        raise
    kept()
    # A job of one segment uploads next to nothing: its readers learn the
    # rest from the record of its end, which carries this progress.
    alone = progress is not None and progress.segments_total == 1
    _set_phase(store, job.id, progress, Phase.UPLOADING, output, write=not alone)
    uploaded = output.upload(audio)
    if job.request.timestamps is not None:
        captions = _captions(storage, job, segments, parts, checkpoints, uploaded)
        uploaded = uploaded.model_copy(update={"captions": captions})
    return Made(uploaded, checkpoints, progress)


def _captions(
    storage: Storage,
    job: Job,
    segments: list[Segment],
    parts: list[SegmentAudio],
    checkpoints: Mapping[int, SegmentCheckpoint],
    uploaded: Output,
) -> list[Captions]:
    """The job's captions, from its checkpoints' word marks, uploaded beside its output."""
    timeline = job_timeline(parts, uploaded.sample_rate)
    marks = caption_marks(job, segments, checkpoints, timeline)
    return upload_captions(storage, job, uploaded.key, caption_files(marks))


def _complete(
    job: Job,
    segments: list[Segment],
    output: JobOutput,
    held: dict[int, SegmentCheckpoint] | None,
    *,
    storage: Storage,
    store: JobStore,
) -> tuple[list[SegmentAudio], dict[int, SegmentCheckpoint]]:
    """Every segment's PCM in the spool and handed to the output, in text order;
    and the checkpoints they came from (``held``, the attempt's own, if it has
    every segment's: no need to read them again)."""
    pcm_rate = provider_pcm_rate(output.rate)
    if held is not None and all(seg.index in held for seg in segments):
        checkpoints = held
    else:
        checkpoints = stored_checkpoints(store, job.id, segments, pcm_rate)
    parts = output.complete(checkpoints, storage)
    if not any(cp.bytes for cp in checkpoints.values()):
        # Encoders cannot make a valid mp3, opus or m4a of nothing.
        raise JobFailed(ErrorCode.PROVIDER_REQUEST, "the provider returned no audio at all")
    return parts, checkpoints


def _set_phase(
    store: JobStore,
    job_id: str,
    progress: Progress | None,
    phase: Phase,
    output: JobOutput,
    *,
    write: bool = True,
) -> None:
    """Tell the job's readers what the attempt does now (one progress write,
    unless not ``write``: then the record's end carries it)."""
    if progress is None:  # not this attempt's own: leave the record's as it is
        return
    progress.phase = phase
    progress.segments_encoded = output.encoded
    if write:
        store.set_progress(job_id, progress)


def _nothing() -> None:
    """What waits for work that was never started."""
