"""Readiness checks and Prometheus metrics, read from Redis and storage when asked.

Readiness (``GET /readyz``) checks Redis (job store), the Celery broker and
the storage bucket, concurrently and with short timeouts, and names what is
down.

Metrics (``GET /metrics``) are collected at scrape time, so every API process
reports the same numbers and none has to see the jobs go by:

* ``shoal_jobs{status}`` — jobs in each status (records not yet expired);
* ``shoal_queue_depth{queue}`` — messages waiting in each Celery queue;
* ``shoal_provider_sessions_in_use`` / ``shoal_provider_slots`` — live leases
  of the provider governor, against the account's limit;
* ``shoal_job_duration_seconds{status}`` — a gauge histogram of how long the
  most recent finished jobs took from creation to finish (queue wait included);
* ``shoal_incomplete_uploads_swept_total`` — incomplete multipart uploads the
  workers' sweep aborted (:mod:`worker.storage.sweep`), ever;
* ``shoal_segment_cache_swept_total`` — segment cache objects the workers' sweep
  deleted as unused (:mod:`worker.jobs.cache`), ever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from api.deps import ApiContext
from api.schemas import CheckOut, ReadyOut
from worker.jobs.model import TERMINAL, JobStatus
from worker.queues import queue_names

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0
#: Finished jobs per status that the duration histogram looks at.
DURATION_SAMPLE = 500
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: kombu's default priority steps: each is a list of its own.
PRIORITY_STEPS = (0, 3, 6, 9)


def _check_redis(ctx: ApiContext) -> None:
    ctx.redis.ping()


def _check_broker(ctx: ApiContext) -> None:
    ctx.dispatch.check_broker(CHECK_TIMEOUT)


def _check_storage(ctx: ApiContext) -> None:
    try:
        ctx.storage.client.head_bucket(Bucket=ctx.storage.bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise RuntimeError(f"bucket {ctx.storage.bucket!r}: {code}") from exc
    except BotoCoreError as exc:
        raise RuntimeError(str(exc)) from exc


CHECKS: dict[str, Callable[[ApiContext], None]] = {
    "redis": _check_redis,
    "broker": _check_broker,
    "storage": _check_storage,
}


def readiness(ctx: ApiContext) -> ReadyOut:
    """Run every check at once; the answer names the ones that failed."""

    def run(check: Callable[[ApiContext], None]) -> CheckOut:
        try:
            check(ctx)
        except Exception as exc:
            return CheckOut(ok=False, detail=f"{type(exc).__name__}: {exc}"[:500])
        return CheckOut(ok=True)

    with ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz") as pool:
        futures = {name: pool.submit(run, check) for name, check in CHECKS.items()}
        checks = {name: future.result() for name, future in futures.items()}
    down = [name for name, check in checks.items() if not check.ok]
    if down:
        log.warning("not ready: %s", ", ".join(f"{n} ({checks[n].detail})" for n in down))
    return ReadyOut(status="unavailable" if down else "ready", checks=checks, down=down)


def queue_depths(ctx: ApiContext) -> dict[str, int]:
    """Messages waiting in each Celery queue, by role (``jobs``, ``bulk``, ``callbacks``)."""
    names = queue_names(ctx.settings)
    pipe = ctx.redis.pipeline(transaction=False)
    for queue in names.values():
        for pri in PRIORITY_STEPS:
            pipe.llen(ctx.keys.celery_queue(queue, pri))
    counts = iter(cast(list[int], pipe.execute()))
    return {role: sum(next(counts) for _ in PRIORITY_STEPS) for role in names}


class ShoalCollector(Collector):
    """Reads the numbers from Redis at each scrape."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check at registration: collecting needs Redis

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        k = ctx.keys
        pipe = ctx.redis.pipeline(transaction=False)
        for status in JobStatus:
            pipe.zcard(k.jobs_by_status(status))
        now_ms = int(time.time() * 1000)
        pipe.zcount(k.governor_holders(), now_ms, "+inf")
        pipe.get(k.uploads_swept())
        pipe.get(k.cache_swept())
        *counts, sessions, swept, cache_swept = pipe.execute()

        jobs = GaugeMetricFamily("shoal_jobs", "Jobs by status", labels=["status"])
        for status, count in zip(JobStatus, counts, strict=True):
            jobs.add_metric([status.value], count)
        yield jobs

        depth = GaugeMetricFamily(
            "shoal_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
        )
        for role, count in queue_depths(ctx).items():
            depth.add_metric([role], count)
        yield depth

        yield GaugeMetricFamily(
            "shoal_provider_sessions_in_use",
            "Provider sessions held now, across all workers",
            value=sessions,
        )
        yield GaugeMetricFamily(
            "shoal_provider_slots",
            "Provider sessions the account allows (SHOAL_PROVIDER_SLOTS)",
            value=ctx.settings.provider_slots,
        )
        yield CounterMetricFamily(
            "shoal_incomplete_uploads_swept",
            "Incomplete multipart uploads aborted by the workers' sweep",
            value=int(swept or 0),
        )
        yield CounterMetricFamily(
            "shoal_segment_cache_swept",
            "Segment cache objects deleted by the workers' sweep, unused for the retention",
            value=int(cache_swept or 0),
        )
        yield self._durations()

    def _durations(self) -> Metric:
        ctx = self.ctx
        family = GaugeHistogramMetricFamily(
            "shoal_job_duration_seconds",
            f"Creation to finish of the last {DURATION_SAMPLE} finished jobs of each status",
            labels=["status"],
        )
        for status in sorted(TERMINAL):
            ids = cast(
                list[Any],
                ctx.redis.zrevrange(ctx.keys.jobs_by_status(status), 0, DURATION_SAMPLE - 1),
            )
            pipe = ctx.redis.pipeline(transaction=False)
            for job_id in ids:
                name = job_id.decode() if isinstance(job_id, bytes) else job_id
                pipe.hmget(ctx.keys.job(name), ["created_at", "finished_at"])
            durations = [
                float(done) - float(created)
                for created, done in cast(list[Any], pipe.execute() if ids else [])
                if created is not None and done is not None
            ]
            buckets = [(str(le), float(sum(d <= le for d in durations))) for le in DURATION_BUCKETS]
            buckets.append(("+Inf", float(len(durations))))
            family.add_metric([status.value], buckets, gsum_value=sum(durations))
        return family


def metrics_registry(ctx: ApiContext) -> CollectorRegistry:
    """A registry of this app's own (not the process-global one), with the collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ShoalCollector(ctx))
    return registry
