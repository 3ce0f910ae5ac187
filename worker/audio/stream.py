"""Assemble a job's output while its segments are still being synthesised.

:func:`~worker.audio.assemble.assemble` needs every segment before it starts;
a job whose segments arrive one by one, in any order, over minutes would then
encode only after the last one.  :class:`StreamingAssembly` runs the same
:class:`~worker.audio.assemble.Pipeline` on a thread of its own instead::

    assembly = StreamingAssembly(len(segments), out, OutputFormat.MP3, 44100)
    ...                                  # as each segment's PCM file is complete:
    assembly.add(index, SegmentAudio(path, rate, pause_ms))
    ...
    audio = assembly.finish()            # after the last add: the rest, then the file

Segment ``i`` is encoded as soon as it and every segment before it are in,
so the encoder (PyAV releases the GIL while it encodes) works while later
segments are still streaming from the provider, and what is left at the end
is the last segment or so.  Only the fade-out region of the segment encoded
last waits for the next one (its fade depends on that one's first samples).

The output is the same file :func:`assemble` makes of the same segments,
written beside its path and renamed into place when finished; aborted, or
failed, nothing is left.  Memory is one block, however long the job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from worker.audio.assemble import (
    AssembledAudio,
    Pipeline,
    SegmentAudio,
    check_lengths,
    measure_segment,
)
from worker.audio.formats import OutputFormat, format_info, validate_output
from worker.audio.sinks import open_sink, replacing
from worker.digest import file_digest

log = logging.getLogger(__name__)


class AssemblyAborted(Exception):
    """:meth:`StreamingAssembly.abort` was called while the thread waited or worked."""


class StreamingAssembly:
    """One output file assembled from ``count`` segments as they arrive; thread-safe.

    Raises :class:`~worker.audio.errors.UnsupportedOutput` at once for a bad
    format, rate or bitrate.  Errors while assembling (a corrupt segment file,
    the encoder failing, a WAV over 4 GiB) stop the thread and are raised by
    :meth:`finish`.  ``on_encoded`` is called on the assembly's thread with the
    number of segments encoded so far, after each.
    """

    def __init__(
        self,
        count: int,
        out_path: Path,
        fmt: OutputFormat,
        sample_rate: int,
        *,
        bitrate_kbps: int | None = None,
        head_silence_ms: int = 0,
        tail_silence_ms: int = 0,
        block_samples: int = 32768,
        on_encoded: Callable[[int], None] | None = None,
    ) -> None:
        if count < 0:
            raise ValueError(f"count must not be negative, not {count}")
        info = format_info(fmt)
        validate_output(info.format, sample_rate, bitrate_kbps)
        check_lengths(
            block_samples, head_silence_ms=head_silence_ms, tail_silence_ms=tail_silence_ms
        )
        self.count = count
        self.out_path = out_path
        self._info = info
        self._rate = sample_rate
        self._bitrate = info.default_bitrate_kbps if bitrate_kbps is None else bitrate_kbps
        self._head_ms = head_silence_ms
        self._tail_ms = tail_silence_ms
        self._block = block_samples
        self._on_encoded = on_encoded
        self._cond = threading.Condition()
        self._ready: dict[int, SegmentAudio] = {}  # added, not yet taken by the thread
        self._taken = 0  # segments handed to the pipeline
        self._encoded = 0
        self._aborted = False
        self._error: BaseException | None = None
        self._result: AssembledAudio | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"assemble-{out_path.parent.name}", daemon=True
        )
        self._thread.start()

    @property
    def encoded(self) -> int:
        """Segments written into the output so far (in order: 0 .. encoded-1)."""
        with self._cond:
            return self._encoded

    def has(self, index: int) -> bool:
        """Whether segment ``index`` was added already."""
        with self._cond:
            return index < self._taken or index in self._ready

    def add(self, index: int, segment: SegmentAudio) -> None:
        """Hand over segment ``index``, whose file is complete; any order, once each."""
        if not 0 <= index < self.count:
            raise ValueError(f"segment {index} is not one of 0..{self.count - 1}")
        with self._cond:
            if index < self._taken or index in self._ready:
                raise ValueError(f"segment {index} was added already")
            self._ready[index] = segment
            self._cond.notify_all()

    def finish(self, timeout: float | None = None) -> AssembledAudio:
        """Wait for the output (every segment must have been added) and return it.

        Raises what stopped the thread, :class:`ValueError` if segments are
        missing, :class:`TimeoutError` after ``timeout`` seconds.
        """
        with self._cond:
            missing = [i for i in range(self._taken, self.count) if i not in self._ready]
        if missing and self._error is None:
            raise ValueError(f"segments {missing[:5]} were never added")
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"assembly of {self.out_path.name} still running")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def abort(self) -> None:
        """Stop the thread and remove the partial file; a no-op once finished."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()
        self._thread.join()

    # -- the thread ----------------------------------------------------------------

    def _next(self) -> SegmentAudio:
        """The next segment in order, once it is in (or :class:`AssemblyAborted`)."""
        with self._cond:
            while not self._aborted and self._taken not in self._ready:
                self._cond.wait()
            if self._aborted:
                raise AssemblyAborted
            segment = self._ready.pop(self._taken)
            self._taken += 1
            return segment

    def _run(self) -> None:
        try:
            self._result = self._assemble()
        except AssemblyAborted:
            log.debug("assembly of %s aborted", self.out_path)
            self._error = AssemblyAborted()
        except BaseException as exc:  # handed to finish(), on the caller's thread
            self._error = exc

    def _assemble(self) -> AssembledAudio:
        with replacing(self.out_path) as part:
            sink = open_sink(self._info.format, part, self._rate, self._bitrate)
            try:
                pipeline = Pipeline(sink, self._rate, self._block)
                pipeline.start(self._head_ms)
                for _ in range(self.count):
                    pipeline.feed(measure_segment(self._next()))
                    with self._cond:
                        self._encoded += 1
                        encoded = self._encoded
                    if self._on_encoded is not None:
                        self._on_encoded(encoded)
                written = pipeline.finish(self._tail_ms)
                with self._cond:
                    if self._aborted:
                        raise AssemblyAborted
            except BaseException:
                sink.abort()
                raise
            sink.close()
        digest = file_digest(self.out_path)
        return AssembledAudio(
            path=self.out_path,
            format=self._info.format,
            sample_rate=self._rate,
            duration_s=written / self._rate,
            bytes=digest.size,
            content_type=self._info.content_type,
            sha256=digest.hexdigest(),
        )
