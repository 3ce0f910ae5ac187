"""Figures 3 and 4: how well the provider's concurrent sessions are used.

3. With ``SHOAL_PROVIDER_SLOTS=N`` and more work queued than N sessions can
   take, sample the provider's open sessions (local_tts ``/_admin/stats``) and
   the governor's holders and waiters at ~20 Hz: the most ever open (must be
   ≤ N) and the mean while someone waited for a slot, against N.
4. One long book (many segments, ``job_parallel_segments`` = slots): its wall
   time against total audio / (provider speed × slots).
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.infra import Sampler, Services, log
from bench.jobs import Clock, timed_job, wait_all
from bench.report import Row
from bench.sizes import Sizes
from bench.texts import book, paragraphs
from tests.stack import Stack
from worker.jobs.text import segment_text

FORMAT = "mp3"


def run(services: Services, sizes: Sizes) -> list[Row]:
    tts = services.tts(sizes.rtf, sizes.ttfb_ms)
    n = sizes.slot_limit
    stack = services.stack(
        tts,
        SHOAL_PROVIDER_SLOTS=str(n),
        SHOAL_JOB_PARALLEL_SEGMENTS=str(sizes.book_parallel),
        SHOAL_SEGMENT_MAX_CHARS=str(sizes.book_segment_chars),
        SHOAL_WORKER_CONCURRENCY="8",
    )
    try:
        log(f"starting a worker (figures 3-4: {n} provider slots)")
        stack.start_worker(concurrency=8)
        clock = Clock.of(stack.redis)
        timed_job(stack, "Warm up.", clock, timeout=60)
        return [*slot_use(stack, sizes), long_book(stack, clock, sizes)]
    finally:
        services.close_stack(stack)


def slot_use(stack: Stack, sizes: Sizes) -> list[Row]:
    """Figure 3."""
    n = sizes.slot_limit
    texts = [paragraphs(sizes.slot_job_chars, seed=100 + i) for i in range(sizes.slot_jobs)]
    segments = sum(len(segment_text(t, stack.settings.segment_max_chars)) for t in texts)
    holders = stack.keys.governor_holders()
    waiters = stack.keys.governor_waiters()
    stack.tts.reset()

    def probe() -> tuple[int, int, int]:
        with stack.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(holders, "(0", "+inf")  # the leases, not the peak
            pipe.zcard(waiters)
            held, waiting = pipe.execute()
        return stack.tts.stats()["sessions_active"], int(held), int(waiting)

    log(f"3 slot use: {len(texts)} jobs, {segments} segments, {n} slots, sampling at 20 Hz")
    with Sampler(probe, hz=20) as sampler:
        ids = [stack.submit(t, format=FORMAT, cache=False).id for t in texts]
        wait_all(stack, ids, timeout=900)
    stats = stack.tts.stats()
    samples: list[tuple[int, int, int]] = [s for _, s in sampler.samples]
    queued = [s for s in samples if s[2] > 0]  # someone was waiting for a slot
    if not queued:
        raise RuntimeError("no sample saw a waiter: the workload never exceeded the slots")
    active_max = max(s[0] for s in samples)
    held_max = max(s[1] for s in samples)
    mean_active = statistics.fmean(s[0] for s in queued)
    mean_held = statistics.fmean(s[1] for s in queued)
    common: dict[str, Any] = {
        "slots": n,
        "jobs": len(texts),
        "segments": segments,
        "samples": len(samples),
        "samples_queued": len(queued),
    }
    return [
        Row(
            figure="3a",
            name="provider sessions open, max",
            value=max(active_max, stats["sessions_peak"]),
            reference=n,
            unit="",
            meaning="must be ≤1: never more sessions than the account allows",
            details={
                **common,
                "server_peak": stats["sessions_peak"],
                "sampled_max": active_max,
                "governor_held_max": held_max,
                "rejected_429": stats["handshakes"]["rejected"].get("429", 0),
            },
        ),
        Row(
            figure="3b",
            name="provider sessions open while work queued, mean",
            value=mean_active,
            reference=n,
            unit="",
            meaning="close to 1: slots stay busy while jobs wait for one",
            details={"governor_held_mean": mean_held, "probe_errors": sampler.errors},
        ),
    ]


def long_book(stack: Stack, clock: Clock, sizes: Sizes) -> Row:
    """Figure 4."""
    n = sizes.slot_limit
    text = book(sizes.book_segments, sizes.book_segment_chars, seed=7)
    segments = segment_text(text, stack.settings.segment_max_chars)
    stack.tts.reset()
    log(
        f"4 long book: {len(segments)} segments, {sizes.book_parallel} in parallel, {n} slots, "
        f"rtf {sizes.rtf:g}"
    )
    timing = timed_job(stack, text, clock, timeout=900, format=FORMAT)
    audio_s = timing.job.output.duration_s if timing.job.output else 0.0
    ideal = audio_s * sizes.rtf / n  # total audio / (provider speed × slots)
    # What a perfect scheduler could do with these segments: each one costs
    # ttfb + its audio × rtf, handed in order to the first free slot.
    rate = 44100 * 2  # the provider PCM the job asked for (mp3 at 44.1 kHz)
    sessions = sorted(stack.tts.stats()["sessions"], key=lambda s: s["n"])
    costs = [sizes.ttfb_ms / 1000 + s["audio_bytes"] / rate * sizes.rtf for s in sessions]
    # Where the slots stood idle: before the first session, between sessions, after the last.
    first = min(s["opened_at"] for s in sessions)
    last = max(s["closed_at"] or s["opened_at"] for s in sessions)
    busy = sum((s["closed_at"] or s["opened_at"]) - s["opened_at"] for s in sessions)
    return Row(
        figure="4",
        name="long book wall / (audio / (speed × slots))",
        value=timing.wall,
        reference=ideal,
        unit="s",
        meaning="≥1; 1.0 = every slot busy from first to last second",
        details={
            "segments": len(segments),
            "audio_s": audio_s,
            "slots": n,
            "rtf": sizes.rtf,
            "schedule_bound_s": _list_schedule(costs, n),
            "sessions_busy_s": busy,
            "slots_busy_share": busy / (n * (last - first)) if last > first else 0.0,
            "first_session_after_s": first - timing.submitted_at,
            "after_last_session_s": timing.submitted_at + timing.wall - last,
            "synthesis_s": timing.synthesis,
            "assemble_upload_s": timing.finish,
            "assembly_x_realtime": audio_s / timing.finish if timing.finish else 0.0,
            "pickup_s": timing.pickup,
        },
    )


def _list_schedule(costs: list[float], slots: int) -> float:
    """Makespan of running ``costs`` in order, each on the first slot to come free."""
    free = [0.0] * slots
    for cost in costs:
        i = free.index(min(free))
        free[i] += cost
    return max(free) if costs else 0.0
