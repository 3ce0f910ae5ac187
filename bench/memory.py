"""Figure 5: a worker's peak memory for a short job against a very long one.

Memory should stay flat however long the text: audio goes through a spool
on disk and multipart upload, never whole into RAM.  One worker process runs a
warm-up job, a ~1-minute job, a middle-sized book and a long book (1 hour by
default, 20 minutes with ``--quick``, 10 hours with ``--full``) against a tone
provider with no pacing (``rtf`` 0), at a low sample rate so that hours of
audio take minutes.  The worker's resident memory is sampled at 20 Hz during
each job (``/proc/PID/status`` ``VmRSS``); ``VmHWM``, the kernel's own peak,
is reported too.

Two rows: 5a is the headline comparison, long book against the 1-minute job; 5b
compares the long book with the middle one.  Both of those upload their
output in several parts (a small one goes up in a single request), so 5b is
the slope — growth with length — without the fixed cost of a multipart upload.
"""

from __future__ import annotations

from typing import Any

from bench.infra import Sampler, Services, log, memory_kib
from bench.jobs import Clock, JobTiming, timed_job
from bench.report import Row
from bench.sizes import Sizes
from bench.texts import paragraphs
from tests.stack import Stack

#: The tone engine's pace, close enough to size texts (the real figure comes back).
CHARS_PER_AUDIO_S = 15.0


def run(services: Services, sizes: Sizes) -> list[Row]:
    tts = services.tts(0.0, 0.0)
    stack = services.stack(tts, SHOAL_WORKER_CONCURRENCY="1")
    try:
        log("starting a worker (figure 5)")
        worker = stack.start_worker(concurrency=1)
        runs = _Runs(stack, worker.proc.pid, sizes)
        runs.job("warm-up", "Warm up.")
        short_chars = int(sizes.rss_short_audio_s * CHARS_PER_AUDIO_S)
        short = runs.job("short", paragraphs(short_chars, seed=5, sentences_per_paragraph=(1, 2)))
        mid = runs.book("middle", sizes.rss_mid_audio_s, seed=6)
        long = runs.book("long", sizes.rss_long_audio_s, seed=7)
        hwm = memory_kib(worker.proc.pid)["VmHWM"]
        common: dict[str, Any] = {"format": f"{sizes.rss_format}@{sizes.rss_sample_rate}"}
        return [
            Row(
                figure="5a",
                name=f"peak worker RSS: {long.hours:.2f} h book / {short.audio_s:.0f} s job",
                value=long.peak_mib,
                reference=short.peak_mib,
                unit="MiB",
                meaning="≈1: memory does not grow with the length of the text",
                details={
                    **common,
                    "long_audio_h": long.hours,
                    "long_wall_s": long.timing.wall,
                    "long_segments": long.timing.job.progress.segments_total,
                    "long_output_mib": long.output_mib,
                    "long_peak_synthesis_mib": long.synthesis_peak_mib,
                    "long_peak_assemble_upload_mib": long.finish_peak_mib,
                    "short_audio_s": short.audio_s,
                    "short_output_mib": short.output_mib,
                    "vm_hwm_mib": hwm / 1024,
                },
            ),
            Row(
                figure="5b",
                name=f"peak worker RSS: {long.hours:.2f} h / {mid.hours:.2f} h book",
                value=long.peak_mib,
                reference=mid.peak_mib,
                unit="MiB",
                meaning="≈1: no growth between two books that both upload in parts",
                details={
                    "growth_mib": long.peak_mib - mid.peak_mib,
                    "mid_parts": _parts(mid.output_mib, stack),
                    "long_parts": _parts(long.output_mib, stack),
                    "mid_output_mib": mid.output_mib,
                    "part_mib": stack.settings.s3_multipart_chunk_bytes / 2**20,
                },
            ),
        ]
    finally:
        services.close_stack(stack)


def _parts(output_mib: float, stack: Stack) -> int:
    """How many parts an output of this size goes up in (1: a single PUT)."""
    part_mib = stack.settings.s3_multipart_chunk_bytes / 2**20
    return max(1, -int(-output_mib // part_mib))


class _Measured:
    def __init__(self, timing: JobTiming, peak_kib: int) -> None:
        output = timing.job.output
        if output is None or output.duration_s <= 0:
            raise RuntimeError(f"job {timing.job.id} produced no audio")
        self.timing = timing
        self.audio_s = output.duration_s
        self.hours = output.duration_s / 3600
        self.output_mib = output.bytes / 2**20
        self.peak_mib = peak_kib / 1024
        self.synthesis_peak_mib = 0.0  # peak while segments streamed in
        self.finish_peak_mib = 0.0  # peak while the output was assembled and uploaded


class _Runs:
    """Jobs on one worker, each with its RSS sampled."""

    def __init__(self, stack: Stack, pid: int, sizes: Sizes) -> None:
        self.stack = stack
        self.pid = pid
        self.sizes = sizes
        self.clock = Clock.of(stack.redis)
        self.request = {"format": sizes.rss_format, "sample_rate": sizes.rss_sample_rate}

    def book(self, label: str, audio_s: float, seed: int) -> _Measured:
        text = paragraphs(int(audio_s * CHARS_PER_AUDIO_S), seed=seed)
        return self.job(label, text)

    def job(self, label: str, text: str) -> _Measured:
        sizes = self.sizes
        log(
            f"5 memory: {label} job, {len(text)} characters "
            f"(~{len(text) / CHARS_PER_AUDIO_S / 60:.1f} min, "
            f"{sizes.rss_format} {sizes.rss_sample_rate} Hz)"
        )
        # Long texts make each read of the record costly; poll those less often.
        poll = 0.02 if len(text) < 20_000 else 0.5
        with Sampler(lambda: memory_kib(self.pid)["VmRSS"], hz=20) as sampler:
            timing = timed_job(
                self.stack, text, self.clock, timeout=6 * 3600, poll=poll, **self.request
            )
        measured = _Measured(timing, max(value for _, value in sampler.samples))
        cut = timing.synthesized_at
        during = [v for t, v in sampler.samples if t < cut]
        after = [v for t, v in sampler.samples if t >= cut]
        measured.synthesis_peak_mib = max(during, default=0) / 1024
        measured.finish_peak_mib = max(after, default=0) / 1024
        return measured
