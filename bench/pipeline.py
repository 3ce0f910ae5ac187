"""Figures 1 and 2: what the pipeline costs on top of the provider.

1. A job's wall time against a bare protocol client streaming the same
   segments with the same parallelism against the same paced provider.
2. Many one-sentence jobs through one worker process: jobs per second and per
   CPU-second of the worker, against the bare client's sessions per second
   and per CPU-second at the same concurrency.
"""

from __future__ import annotations

import time

from bench import clients
from bench.infra import Services, cpu_seconds, log
from bench.jobs import Clock, JobTiming, timed_job, wait_all
from bench.report import Row, median
from bench.sizes import Sizes
from bench.texts import paragraphs, short_sentences
from tests.stack import Stack
from worker.audio import format_info, provider_pcm_rate
from worker.jobs.text import segment_text
from worker.settings import Settings

#: Output of the jobs in figures 1 and 2: the API's default format.
FORMAT = "mp3"
PARALLEL = 3  # SHOAL_JOB_PARALLEL_SEGMENTS default
SEGMENT_MAX_CHARS = Settings.model_fields["segment_max_chars"].default


def run(services: Services, sizes: Sizes) -> list[Row]:
    tts = services.tts(sizes.rtf, sizes.ttfb_ms)
    stack = services.stack(
        tts,
        SHOAL_PROVIDER_SLOTS=str(max(sizes.short_concurrency, PARALLEL)),
        SHOAL_JOB_PARALLEL_SEGMENTS=str(PARALLEL),
        # The production segment length (the test stack's is short): 15 segments in figure 1.
        SHOAL_SEGMENT_MAX_CHARS=str(SEGMENT_MAX_CHARS),
        SHOAL_WORKER_CONCURRENCY=str(sizes.short_concurrency),
    )
    try:
        log("starting a worker (figures 1-2)")
        stack.start_worker(concurrency=sizes.short_concurrency)
        clock = Clock.of(stack.redis)
        # A first job loads codecs and opens connections; neither figure should pay that.
        timed_job(stack, "Warm up.", clock, timeout=60)
        rows = [overhead(stack, clock, sizes)]
        rows += short_jobs(stack, clock, sizes)
        return rows
    finally:
        services.close_stack(stack)


def _provider_rate() -> int:
    return provider_pcm_rate(format_info(FORMAT).default_sample_rate)


def overhead(stack: Stack, clock: Clock, sizes: Sizes) -> Row:
    """Figure 1."""
    text = paragraphs(sizes.overhead_chars, seed=11)
    segments = [s.text for s in segment_text(text, stack.settings.segment_max_chars)]
    spec = {
        "kind": "shoal",
        "url": stack.tts.url,
        "texts": [s for s in segments if not s.isspace()],
        "concurrency": PARALLEL,
        "format": "pcm",
        "sample_rate": _provider_rate(),
    }
    bare: list[float] = []
    jobs: list[JobTiming] = []
    for rep in range(sizes.overhead_reps):
        log(f"1 overhead: bare client, {len(segments)} segments ({rep + 1}/{sizes.overhead_reps})")
        bare.append(clients.run(spec)["wall_s"])
        log(f"1 overhead: the same text as a job ({rep + 1}/{sizes.overhead_reps})")
        jobs.append(timed_job(stack, text, clock, timeout=600, format=FORMAT))
    best = min(jobs, key=lambda t: t.wall)
    audio_s = jobs[0].job.output.duration_s if jobs[0].job.output else 0.0
    return Row(
        figure="1",
        name="pipeline overhead: job wall / bare client",
        value=median([t.wall for t in jobs]),
        reference=median(bare),
        unit="s",
        meaning="≥1; 1.0 = the pipeline adds nothing to provider time (aim ≤ 1.2)",
        details={
            "audio_s": audio_s,
            "segments": len(segments),
            "parallel": PARALLEL,
            "format": FORMAT,
            "pickup_s": best.pickup,
            "synthesis_s": best.synthesis,
            "assemble_upload_s": best.finish,
            "assembly_x_realtime": audio_s / best.finish if best.finish else 0.0,
            "bare_runs_s": [round(b, 3) for b in bare],
            "job_runs_s": [round(t.wall, 3) for t in jobs],
        },
    )


def short_jobs(stack: Stack, clock: Clock, sizes: Sizes) -> list[Row]:
    """Figure 2 (three rows: throughput, throughput per CPU-second, CPU per job)."""
    texts = short_sentences(sizes.short_jobs)
    spec = {
        "kind": "shoal",
        "url": stack.tts.url,
        "texts": texts,
        "concurrency": sizes.short_concurrency,
        "format": "pcm",
        "sample_rate": _provider_rate(),
    }
    log(f"2 short jobs: bare client, {len(texts)} sessions, {sizes.short_concurrency} at once")
    bare = clients.run(spec)
    log(f"2 short jobs: {len(texts)} one-sentence jobs through one worker process")
    pid = stack.workers[0].proc.pid
    cpu0 = cpu_seconds(pid)
    t0 = time.time()
    ids = [stack.submit(t, format=FORMAT, cache=False).id for t in texts]
    submitted = time.time() - t0
    jobs = wait_all(stack, ids, timeout=600)
    cpu = cpu_seconds(pid) - cpu0
    wall = max(clock.local(j.finished_at or 0) for j in jobs) - t0
    n = len(jobs)
    bare_rate, bare_per_cpu = bare["sessions"] / bare["wall_s"], bare["sessions"] / bare["cpu_s"]
    return [
        Row(
            figure="2a",
            name="short jobs/s, one worker process",
            value=n / wall,
            reference=bare_rate,
            unit="/s",
            meaning="≤1; job rate / bare sessions rate at the same concurrency",
            details={
                "jobs": n,
                "concurrency": sizes.short_concurrency,
                "wall_s": wall,
                "submit_s": submitted,
                "bare_wall_s": bare["wall_s"],
            },
        ),
        Row(
            figure="2b",
            name="short jobs per worker CPU-second",
            value=n / cpu,
            reference=bare_per_cpu,
            unit="/cpu-s",
            meaning="jobs per core-second / bare sessions per core-second (client CPU)",
            details={
                "worker_cpu_s": cpu,
                "worker_cpu_ms_per_job": 1000 * cpu / n,
                "bare_cpu_ms_per_session": 1000 * bare["cpu_s"] / bare["sessions"],
                "cores_busy": cpu / wall,
            },
        ),
        Row(
            figure="2c",
            name="worker CPU per one-sentence job",
            value=1000 * cpu / n,
            reference=1000 * bare["cpu_s"] / bare["sessions"],
            unit="ms",
            meaning="≥1; a job's CPU in the worker / a bare session's in the client (≤ 40 ms)",
        ),
    ]
