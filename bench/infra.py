"""The real parts a benchmark run needs, started once and always stopped.

:class:`Services` owns everything: a Redis (the one the tests would use, else
one it starts), moto's S3 in this process, ``local_tts`` servers (one per
pacing), and :class:`~tests.stack.Stack` objects with their Celery worker
subprocesses.  Each stack has a key prefix and bucket of its own, so a run
never touches anyone else's keys, and every key under the prefix is deleted
when the stack closes.  Interrupted (Ctrl-C, SIGTERM), workers are killed
rather than drained, so the run ends at once.

Also here: per-process CPU time and memory (psutil when installed, else
``/proc``) and a background sampler.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from shoal_run.parts import ephemeral_redis, redis_answers
from tests.s3 import MotoS3
from tests.servers import LocalTTS
from tests.stack import Stack, delete_prefix

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"

#: Settings every benchmark worker gets: generous leases and timeouts, so a
#: loaded two-core machine measures slowness rather than provoking retries.
WORKER_ENV = {
    "SHOAL_JOB_LEASE_SECONDS": "30",
    "SHOAL_PROVIDER_LEASE_SECONDS": "30",
    "SHOAL_RETRY_BASE_DELAY": "0.5",
    "SHOAL_RETRY_MAX_DELAY": "2",
    "SHOAL_CONNECT_TIMEOUT": "10",
    "SHOAL_FIRST_AUDIO_TIMEOUT": "60",
    "SHOAL_SILENCE_TIMEOUT": "60",
}


#: Set by :func:`stop_on_signals` when Ctrl-C or SIGTERM arrives: clean up fast.
INTERRUPTED = threading.Event()


def stop_on_signals() -> None:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt, remembering that they came."""

    def handler(signum: int, frame: FrameType | None) -> None:
        INTERRUPTED.set()
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def log(message: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- Redis ---------------------------------------------------------------------


@contextlib.contextmanager
def redis_url(workdir: Path) -> Iterator[str]:
    """A Redis that answers, found as the tests find theirs (conftest.py)."""
    explicit = os.environ.get("SHOAL_TEST_REDIS_URL")
    if explicit:
        yield explicit
        return
    if redis_answers(DEFAULT_REDIS_URL, 0.5):
        yield DEFAULT_REDIS_URL
        return
    with ephemeral_redis(workdir) as url:
        log(f"started a Redis at {url}")
        yield url


# -- processes -----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    try:
        import psutil  # optional: /proc otherwise
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (peak resident) of a process, in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


class Sampler:
    """Calls ``probe`` about ``hz`` times a second in a thread; keeps ``(t, value)``.

    ``t`` is ``time.time()``, comparable with :class:`bench.jobs.JobTiming` times.
    """

    def __init__(self, probe: Callable[[], Any], hz: float = 20.0) -> None:
        self.probe = probe
        self.period = 1.0 / hz
        self.samples: list[tuple[float, Any]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), self.probe()))
            except Exception:  # a probe may race a process exit; count, carry on
                self.errors += 1
            due += self.period
            self._stop.wait(max(0.0, due - time.monotonic()))


# -- services ------------------------------------------------------------------


@dataclass
class Services:
    """Everything a run starts, torn down in reverse order by :meth:`close`."""

    workdir: Path
    redis_url: str
    s3: MotoS3
    exits: contextlib.ExitStack
    servers: dict[tuple[float, float], LocalTTS] = field(default_factory=dict)
    stacks: list[Stack] = field(default_factory=list)
    interrupted: bool = False

    @classmethod
    @contextlib.contextmanager
    def start(cls) -> Iterator[Services]:
        """Start Redis (if needed) and moto; yield; stop everything, even on Ctrl-C."""
        # moto's werkzeug server logs every request; the run's output is its own.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        with contextlib.ExitStack() as exits:
            workdir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="shoal-bench-")))
            url = exits.enter_context(redis_url(workdir))
            s3 = exits.enter_context(MotoS3())
            services = cls(workdir=workdir, redis_url=url, s3=s3, exits=exits)
            try:
                yield services
            except BaseException:
                services.interrupted = True
                raise
            finally:
                services.close()

    def tts(self, rtf: float, ttfb_ms: float) -> LocalTTS:
        """A tone-engine local_tts paced at ``rtf`` and ``ttfb_ms`` (one per pacing)."""
        key = (rtf, ttfb_ms)
        if key not in self.servers:
            server = LocalTTS(engine="tone", rtf=rtf, ttfb_ms=ttfb_ms)
            self.servers[key] = server.start()
            log(f"local_tts (tone, rtf {rtf:g}, ttfb {ttfb_ms:g} ms) at {server.url}")
        return self.servers[key]

    def stack(self, tts: LocalTTS, **env: str) -> Stack:
        """A stack of its own (prefix, queues, bucket) on ``tts``; no worker yet."""
        workdir = Path(tempfile.mkdtemp(prefix="stack-", dir=self.workdir))
        stack = Stack(
            redis_url=self.redis_url,
            tts=tts,
            s3_endpoint=self.s3.endpoint_url,
            workdir=workdir,
            env={**WORKER_ENV, **env},
        )
        self.stacks.append(stack)
        return stack

    def close_stack(self, stack: Stack) -> None:
        """Stop the stack's workers (kill them if interrupted) and delete its keys."""
        if stack not in self.stacks:
            return
        self.stacks.remove(stack)
        if self.interrupted or INTERRUPTED.is_set():
            for worker in stack.workers:
                worker.kill()
        with contextlib.suppress(Exception):
            stack.close()
        with contextlib.suppress(Exception), redis.Redis.from_url(self.redis_url) as client:
            delete_prefix(client, stack.keys.prefix)

    def close(self) -> None:
        for stack in list(self.stacks):
            self.close_stack(stack)
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
