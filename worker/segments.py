"""Synthesis of one job's segments: provider sessions → PCM checkpoints.

Each segment streams in its own provider session, inside a governor slot,
into a PCM spool file on disk; the finished file is uploaded to staging and
recorded on the job, so a later attempt synthesises only what is missing.
Segments run in parallel up to the per-job limit; order is restored at assembly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from worker.audio import PcmStream
from worker.fish import AudioFormat, ProviderError, TTSRequest
from worker.fish.client import ProviderConfig, stream_tts
from worker.governor import Governor
from worker.retry import RetryPolicy
from worker.segmenter import Segment
from worker.storage import Storage
from worker.store import JobStore

log = logging.getLogger(__name__)

#: Quick retries of one segment inside an attempt, before the attempt fails.
SEGMENT_RETRY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=5.0)


@dataclass(frozen=True, slots=True)
class SegmentCheckpoint:
    """A finished segment: where its PCM is kept and what it holds."""

    index: int
    key: str  # staging object
    bytes: int
    sample_rate: int
    chars: int

    @property
    def duration_s(self) -> float:
        return self.bytes / 2 / self.sample_rate

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "key": self.key,
            "bytes": self.bytes,
            "sample_rate": self.sample_rate,
            "chars": self.chars,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SegmentCheckpoint:
        return cls(
            index=int(data["index"]),  # type: ignore[call-overload]
            key=str(data["key"]),
            bytes=int(data["bytes"]),  # type: ignore[call-overload]
            sample_rate=int(data["sample_rate"]),  # type: ignore[call-overload]
            chars=int(data["chars"]),  # type: ignore[call-overload]
        )


class SegmentSynthesizer:
    """Synthesises the missing segments of one job attempt."""

    def __init__(
        self,
        *,
        job_id: str,
        owner: str,
        provider: ProviderConfig,
        request: TTSRequest,
        governor: Governor,
        storage: Storage,
        store: JobStore,
        spool: Path,
        parallel: int,
        priority: int = 0,
        on_segment: Callable[[SegmentCheckpoint], None] | None = None,
        on_error: Callable[[ProviderError], None] | None = None,
    ) -> None:
        if request.format is not AudioFormat.PCM:
            raise ValueError("segments are always requested as raw PCM")
        self.job_id = job_id
        self.owner = owner
        self.provider = provider
        self.request = request
        self.governor = governor
        self.storage = storage
        self.store = store
        self.spool = spool
        self.parallel = parallel
        self.priority = priority
        self.on_segment = on_segment
        self.on_error = on_error

    async def run(self, segments: list[Segment], cancel: asyncio.Event) -> None:
        """Synthesise ``segments``; the first failure cancels the rest and is raised."""
        limit = asyncio.Semaphore(self.parallel)

        async def one(segment: Segment) -> None:
            async with limit:
                if cancel.is_set():
                    return
                await self._with_retries(segment, cancel)

        try:
            async with asyncio.TaskGroup() as group:
                for segment in segments:
                    group.create_task(one(segment))
        except ExceptionGroup as group:
            raise _most_telling(group) from group

    async def _with_retries(self, segment: Segment, cancel: asyncio.Event) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._synthesize(segment, cancel)
                return
            except ProviderError as exc:
                if self.on_error is not None:
                    self.on_error(exc)
                if not SEGMENT_RETRY.should_retry(attempt, exc.retryable):
                    raise
                delay = SEGMENT_RETRY.delay(attempt, random.random())
                log.info(
                    "job %s segment %d: %s; retrying in %.1fs",
                    self.job_id,
                    segment.index,
                    exc,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cancel.wait(), delay)

    async def _synthesize(self, segment: Segment, cancel: asyncio.Event) -> None:
        path = self.spool / f"{segment.index:06d}.pcm"
        pcm = PcmStream(self.request.format)
        if segment.text.isspace():
            path.write_bytes(b"")  # nothing to say: no provider session, no audio
        else:
            await self._stream(segment, path, pcm, cancel)
        await self._checkpoint(segment, path)

    async def _stream(
        self, segment: Segment, path: Path, pcm: PcmStream, cancel: asyncio.Event
    ) -> None:
        async with self.governor.slot(self.owner, priority=self.priority):
            with path.open("wb") as out:

                def write(data: bytes) -> None:
                    out.write(pcm.feed(data))

                await stream_tts(self.provider, self.request, segment.text, write, cancel=cancel)
                out.write(pcm.close())

    async def _checkpoint(self, segment: Segment, path: Path) -> None:
        size = path.stat().st_size
        key = self.storage.staging_key(self.job_id, path.name)
        await asyncio.to_thread(
            self.storage.upload_file,
            path,
            key,
            content_type="application/octet-stream",
            metadata={"job-id": self.job_id, "segment": str(segment.index)},
        )
        checkpoint = SegmentCheckpoint(
            index=segment.index,
            key=key,
            bytes=size,
            sample_rate=self.request.effective_sample_rate,
            chars=len(segment.text),
        )
        self.store.save_segment(self.job_id, segment.index, checkpoint.to_json())
        if self.on_segment is not None:
            self.on_segment(checkpoint)


def _most_telling(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error of parallel segments that decides the attempt: a permanent
    provider error over anything else, else the first."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, ProviderError) and not exc.retryable:
            return exc
    return leaves[0]
