"""A whole worker stack for integration tests, every part real:

Redis (the test session's), ``local_tts`` in a subprocess, moto's S3 over
HTTP, and Celery workers in subprocesses started with ``celery -A worker
worker`` exactly as the README says.  Each stack has its own key prefix (so its
own queues) and its own bucket, so stacks in parallel tests never meet.
Fixtures build them through :class:`Stacks`, which also tears them down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from tests.s3 import ACCESS_KEY, SECRET_KEY
from tests.servers import LocalTTS
from worker.audio import ProbeInfo, probe
from worker.celery import create_app, queue_names
from worker.jobs.model import TERMINAL, Job, JobRequest, JobStatus, estimate_billing, new_job_id
from worker.jobs.store import JobStore
from worker.jobs.tasks import enqueue
from worker.keys import Keys
from worker.settings import Settings
from worker.storage.client import Storage

ROOT = Path(__file__).resolve().parent.parent


class WorkerProcess:
    """One ``celery -A worker worker`` subprocess."""

    def __init__(self, env: Mapping[str, str], log_path: Path, concurrency: int) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        settings_prefix = env["SHOAL_KEY_PREFIX"]
        queues = ",".join(queue_names(Settings(key_prefix=settings_prefix)).values())
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker",
                "worker",
                "--loglevel",
                "INFO",
                "-Q",
                queues,
                "-c",
                str(concurrency),
                "-n",
                f"w{uuid.uuid4().hex[:8]}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b" ready." in self.log_path.read_bytes():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]

    def kill(self) -> None:
        """``kill -9``: no warm shutdown, no acknowledgement, nothing cleaned up."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class Stack:
    """Settings shared by the test process and its workers, plus handles on each part."""

    def __init__(
        self,
        *,
        redis_url: str,
        tts: LocalTTS,
        s3_endpoint: str,
        workdir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.tts = tts
        self.workdir = workdir
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        self.env: dict[str, str] = {
            "SHOAL_REDIS_URL": redis_url,
            "SHOAL_KEY_PREFIX": prefix,
            "SHOAL_FISH_BASE_URL": tts.url,
            "SHOAL_S3_ENDPOINT_URL": s3_endpoint,
            "SHOAL_S3_BUCKET": f"test-{uuid.uuid4().hex[:16]}",
            "SHOAL_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "SHOAL_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "SHOAL_S3_PATH_STYLE": "true",
            "SHOAL_SPOOL_DIR": str(workdir / "spool"),
            "SHOAL_WORKER_CONCURRENCY": "4",
            # Short segments: a paragraph is several, so every job exercises the stitching.
            "SHOAL_SEGMENT_MAX_CHARS": "60",
            "SHOAL_JOB_LEASE_SECONDS": "3",
            "SHOAL_PROVIDER_LEASE_SECONDS": "5",
            "SHOAL_RETRY_BASE_DELAY": "0.2",
            "SHOAL_RETRY_MAX_DELAY": "1",
            "SHOAL_CONNECT_TIMEOUT": "5",
            "SHOAL_FIRST_AUDIO_TIMEOUT": "15",
            "SHOAL_SILENCE_TIMEOUT": "10",
            # The segment cache off: tests that send one text twice to a shared stack
            # expect two renders.  Tests of the cache turn it on.
            "SHOAL_SEGMENT_CACHE_DAYS": "0",
        }
        self.env.update(env or {})
        self.settings = Settings(**_settings_kwargs(self.env))
        self.keys = Keys(prefix)
        self.redis = redis.Redis.from_url(redis_url)
        self.store = JobStore(self.redis, self.keys, self.settings.job_ttl_seconds)
        self.storage = Storage.from_settings(self.settings)
        self.storage.ensure_bucket()
        self.celery = create_app(self.settings)
        self.workers: list[WorkerProcess] = []

    def start_worker(self, concurrency: int = 4, **env: str) -> WorkerProcess:
        log = self.workdir / f"worker-{len(self.workers)}.log"
        worker = WorkerProcess({**self.env, **env}, log, concurrency).wait_ready()
        self.workers.append(worker)
        return worker

    def submit(self, text: str, *, tenant: str = "t1", **request: Any) -> Job:
        job = Job(
            id=new_job_id(),
            tenant=tenant,
            request=JobRequest(text=text, **request),
            billing=estimate_billing(text, self.settings.price_per_million_bytes_usd),
        )
        self.store.create(job)
        enqueue(job, self.settings, self.celery)
        return job

    def wait(
        self, job_id: str, timeout: float = 60.0, until: Iterable[JobStatus] = TERMINAL
    ) -> Job:
        wanted = set(until)
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.store.get(job_id)
            if job is not None and job.status in wanted:
                return job
            time.sleep(0.1)
        logs = "\n".join(w.log() for w in self.workers)
        raise TimeoutError(f"job {job_id} still {job and job.status} after {timeout}s\n{logs}")

    def staged(self, job_id: str) -> list[str]:
        """Keys of the job's staging objects (segment checkpoints) still in the bucket."""
        prefix = self.storage.staging_key(job_id, "")
        reply = self.storage.client.list_objects_v2(Bucket=self.storage.bucket, Prefix=prefix)
        return [item["Key"] for item in reply.get("Contents", ())]

    def fetch_output(self, job: Job, path: Path) -> ProbeInfo:
        """Download a finished job's output to ``path`` and decode it whole (raises if broken)."""
        assert job.output is not None, f"job {job.id} has no output: {job.error}"
        self.storage.download_file(job.output.key, path)
        raw_rate = job.output.sample_rate if job.output.format == "pcm" else None
        return probe(path, raw_pcm_rate=raw_rate)

    def logs(self) -> str:
        """The tail of every worker's log, for assertion messages."""
        return "\n".join(w.log() for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.celery.close()
        self.redis.close()


class Stacks:
    """Builds stacks on one Redis and one S3 and closes every one of them at the end.

    The one way tests get a stack: a fixture of any scope opens a ``Stacks`` and
    calls it with the provider and the settings its module needs (environment
    names, as the workers read them)::

        with Stacks(redis_url, s3.endpoint_url, workdir) as make:
            stack = make(tts, workers=1, SHOAL_PROVIDER_SLOTS="2")

    Closing stops each stack's workers, deletes its keys and clears any faults
    left on its provider (a provider may outlive the stack).
    """

    def __init__(self, redis_url: str, s3_endpoint: str, workdir: Path) -> None:
        self.redis_url = redis_url
        self.s3_endpoint = s3_endpoint
        self.workdir = workdir
        self.built: list[Stack] = []

    def __call__(
        self, tts: LocalTTS, *, s3_endpoint: str | None = None, workers: int = 0, **env: str
    ) -> Stack:
        """A new stack on ``tts`` (faults cleared, counters zeroed) with ``env`` over the defaults.

        ``s3_endpoint`` replaces the S3 address (a proxy in front of it, say);
        ``workers`` Celery workers are started and ready when this returns.
        """
        workdir = self.workdir / f"stack{len(self.built)}"
        workdir.mkdir(parents=True)
        tts.clear_faults()
        tts.reset()
        stack = Stack(
            redis_url=self.redis_url,
            tts=tts,
            s3_endpoint=s3_endpoint or self.s3_endpoint,
            workdir=workdir,
            env=env,
        )
        self.built.append(stack)
        for _ in range(workers):
            stack.start_worker()
        return stack

    def close(self) -> None:
        """Stop every stack's workers, delete its keys, clear its provider's faults."""
        for stack in self.built:
            stack.close()
            delete_prefix(stack.redis, stack.keys.prefix)
            if stack.tts.running:
                stack.tts.clear_faults()
        self.built.clear()

    def __enter__(self) -> Stacks:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def sentences(n: int) -> str:
    """``n`` distinct sentences of 50 characters: one segment each at 60 characters a segment."""
    return " ".join(f"Line {i:02d} tells of rivers, hills and quiet harbours." for i in range(n))


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Delete every key under ``prefix:`` (SCAN + DEL; never FLUSHDB, Redis is shared)."""
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


def _settings_kwargs(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if name.startswith("SHOAL_"):
            out[name.removeprefix("SHOAL_").lower()] = value
    return out
