"""Figure 8: what a job costs the Redis every worker of every machine shares.

One Redis serves the whole cluster (about 100k commands a second), so the
commands a job sends bound how many jobs a cluster can run.  This figure runs
on a Redis of its own (a ``redis-server`` started for it, nothing else on
it), with one worker process, and reads ``INFO commandstats``: every command
counts, those run inside Lua scripts too (a script is one round trip, not one
command).  Subtracted: what the idle worker sends anyway (Celery's broker
polling, the reaper), measured just before at the same place, and the
benchmark's own commands.

8a. commands per one-sentence job (submission by the API included);
8b. commands per segment beyond the first, from jobs of ``SEGMENTS`` segments.

Their references are the budgets of the issue that set them (40 and 15), so
a ratio at or below 1 meets the budget.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from bench.infra import WORKER_ENV, Services, log
from bench.report import Row
from bench.sizes import Sizes
from bench.texts import short_sentences
from shoal_run.parts import ephemeral_redis
from tests.stack import Stack
from worker.jobs.model import TERMINAL
from worker.jobs.text import segment_text

#: Budgets: commands per one-sentence job, and per further segment.
JOB_BUDGET = 40
SEGMENT_BUDGET = 15
SEGMENTS = 6  # segments of the multi-segment jobs of 8b
MAX_CHARS = 120  # every sentence of bench.texts.short_sentences fits, no two together
IDLE_S = 3.0  # how long the idle worker is listened to
#: Commands the measurement itself sends (INFO, CONFIG RESETSTAT) are not the job's.
_OURS = {"info", "config|resetstat", "config", "psubscribe", "punsubscribe"}


def run(services: Services, sizes: Sizes) -> list[Row]:
    tts = services.tts(sizes.rtf, sizes.ttfb_ms)
    workdir = Path(tempfile.mkdtemp(prefix="redis-cost-", dir=services.workdir))
    with ephemeral_redis(workdir) as url:
        log(f"8 redis commands: a Redis of its own at {url}")
        # One sentence is one segment; the multi-segment texts are cut at each sentence.
        stack = Stack(
            redis_url=url,
            tts=tts,
            s3_endpoint=services.s3.endpoint_url,
            workdir=workdir,
            env={**WORKER_ENV, "SHOAL_SEGMENT_MAX_CHARS": str(MAX_CHARS)},
        )
        try:
            stack.start_worker(concurrency=sizes.short_concurrency)
            return measure(stack, sizes)
        finally:
            with contextlib.suppress(Exception):
                stack.close()


def measure(stack: Stack, sizes: Sizes) -> list[Row]:
    """Figures 8a and 8b on a stack whose Redis nothing else uses."""
    client = stack.redis
    texts = short_sentences(sizes.redis_jobs + SEGMENTS * sizes.redis_jobs + 1)
    _run_jobs(stack, [texts.pop()])  # warm-up: codecs, connections, scripts loaded
    idle_rate = _idle_rate(client)
    log(f"8 redis commands: {sizes.redis_jobs} one-sentence jobs, one at a time")
    singles = [texts.pop() for _ in range(sizes.redis_jobs)]
    one, one_top = _cost(stack, singles, idle_rate)
    log(f"8 redis commands: {sizes.redis_jobs} jobs of {SEGMENTS} segments, one at a time")
    groups = ["\n\n".join(texts.pop() for _ in range(SEGMENTS)) for _ in range(sizes.redis_jobs)]
    many, _ = _cost(stack, groups, idle_rate)
    cut = [len(segment_text(text, MAX_CHARS)) for text in singles + groups]
    if cut != [1] * len(singles) + [SEGMENTS] * len(groups):
        raise RuntimeError(f"the texts were not cut as meant: {cut}")
    extra = (many - one) / (SEGMENTS - 1)
    top = ", ".join(f"{name} {count:.1f}" for name, count in one_top)
    return [
        Row(
            figure="8a",
            name="redis commands per one-sentence job",
            value=one,
            reference=JOB_BUDGET,
            unit="cmd",
            meaning="≤1 meets the budget (INFO commandstats on a Redis of its own)",
            details={
                "jobs": sizes.redis_jobs,
                "idle_commands_per_s": round(idle_rate, 2),
                "most_per_job": top,
            },
        ),
        Row(
            figure="8b",
            name="redis commands per further segment",
            value=extra,
            reference=SEGMENT_BUDGET,
            unit="cmd",
            meaning="≤1 meets the budget",
            details={"segments_per_job": SEGMENTS, "commands_per_job": round(many, 1)},
        ),
    ]


def _stats(client: redis.Redis) -> Counter[str]:
    raw: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    out: Counter[str] = Counter()
    for name, value in raw.items():
        command = name.removeprefix("cmdstat_")
        if command not in _OURS:
            out[command] = int(value["calls"])
    return out


def _idle_rate(client: redis.Redis) -> float:
    """Commands per second the idle worker sends (broker polling, reaper)."""
    client.config_resetstat()
    started = time.monotonic()
    time.sleep(IDLE_S)
    return sum(_stats(client).values()) / (time.monotonic() - started)


def _cost(stack: Stack, jobs: list[str], idle_rate: float) -> tuple[float, list[tuple[str, float]]]:
    """Mean commands per job (idle traffic subtracted) and the commands most sent."""
    client = stack.redis
    client.config_resetstat()
    started = time.monotonic()
    _run_jobs(stack, jobs)
    elapsed = time.monotonic() - started
    stats = _stats(client)
    total = sum(stats.values()) - idle_rate * elapsed
    top = [(name, count / len(jobs)) for name, count in stats.most_common(6)]
    return total / len(jobs), top


def _run_jobs(stack: Stack, texts: list[str]) -> None:
    """Each text as an mp3 job, one after another, each waited for on its event channel
    (one PSUBSCRIBE, no polling: the wait adds nothing to the count)."""
    pubsub = stack.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(stack.keys.job_events("*"))
    terminal = {status.value for status in TERMINAL}
    try:
        for text in texts:
            job = stack.submit(text, format="mp3")
            deadline = time.monotonic() + 120
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job.id} unfinished after 120 s")
                message = pubsub.get_message(timeout=1.0)
                if message is None or message["type"] != "pmessage":
                    continue
                event = json.loads(message["data"])
                if event.get("job_id") == job.id and event.get("status") in terminal:
                    if event["status"] != "succeeded":
                        raise RuntimeError(f"job {job.id} {event['status']}: {event.get('error')}")
                    break
    finally:
        pubsub.close()
