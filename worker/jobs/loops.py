"""One event loop per worker thread, kept for every attempt that thread runs.

An attempt's synthesis is asynchronous (provider sessions, the governor) while
the Celery threads pool calls the runner synchronously.  A new event loop, a
new ``redis.asyncio`` client (and its connections) and a new governor for every
attempt cost a one-sentence job more CPU and Redis round trips than its
session; so each worker thread keeps one :class:`ThreadLoop` — one loop, one
async Redis client, one :class:`~worker.jobs.governor.Governor` — and
:meth:`ThreadLoops.run` runs each attempt's coroutine on it.

Nothing of one attempt outlives it on the loop: tasks still pending when the
coroutine returns (a governor's slot release, say) get a moment to finish,
then are canceled and awaited, as :func:`asyncio.run` would do at its end.
:meth:`ThreadLoops.close` (at worker shutdown) closes every thread's client
and loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio

from worker.jobs.governor import Governor
from worker.keys import Keys
from worker.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds that tasks left behind by an attempt (a slot release in flight) get
#: to finish before they are canceled.
SETTLE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ThreadLoop:
    """One thread's event loop and what lives on it."""

    loop: asyncio.AbstractEventLoop
    client: redis.asyncio.Redis  # the governor's and the cancel watcher's connections
    governor: Governor


class ThreadLoops:
    """Lazily made :class:`ThreadLoop` per calling thread; safe to share between threads."""

    def __init__(self, settings: Settings, keys: Keys) -> None:
        self.settings = settings
        self.keys = keys
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[ThreadLoop] = []
        self._closed = False

    def current(self) -> ThreadLoop:
        """This thread's loop, made on first use."""
        here: ThreadLoop | None = getattr(self._local, "loop", None)
        if here is None or here.loop.is_closed():
            here = self._make()
            self._local.loop = here
        return here

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to its end on this thread's loop; settle what it left behind."""
        here = self.current()
        try:
            return here.loop.run_until_complete(coro)
        finally:
            settle(here.loop)

    def close(self) -> None:
        """Close every thread's client and loop (at worker shutdown; none may be running)."""
        with self._lock:
            loops, self._all, self._closed = self._all, [], True
        for here in loops:
            if here.loop.is_closed():
                continue
            if here.loop.is_running():  # its thread is still in an attempt: leave it be
                log.warning("an event loop still runs at shutdown; not closed")
                continue
            try:
                here.loop.run_until_complete(here.client.aclose())
                here.loop.run_until_complete(here.loop.shutdown_asyncgens())
                here.loop.run_until_complete(here.loop.shutdown_default_executor())
            except Exception:  # shutting down anyway: a dead connection is no reason to stop
                log.warning("closing a worker thread's event loop failed", exc_info=True)
            finally:
                here.loop.close()

    def _make(self) -> ThreadLoop:
        loop = asyncio.new_event_loop()
        client = redis.asyncio.Redis.from_url(self.settings.redis_url)
        governor = Governor(
            client,
            self.keys,
            limit=self.settings.provider_slots,
            lease_seconds=self.settings.provider_lease_seconds,
        )
        here = ThreadLoop(loop, client, governor)
        with self._lock:
            if not self._closed:
                self._all.append(here)
        return here


def settle(loop: asyncio.AbstractEventLoop) -> None:
    """Let the loop's leftover tasks finish for a moment, then cancel and await the rest."""
    pending = asyncio.all_tasks(loop)
    if not pending:
        return
    _, pending = loop.run_until_complete(asyncio.wait(pending, timeout=SETTLE_SECONDS))
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
