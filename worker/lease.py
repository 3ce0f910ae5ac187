"""One lease helper: hold a Redis lease while working, and stop when it is lost.

A lease is a Redis key with a TTL whose value names its owner.  The job runner
holds one per job (so two workers never run one job, and a dead worker's job is
noticed when its lease lapses); the batch builder holds one per batch build.
The stores keep the key names and the Redis commands
(:meth:`worker.jobs.store.JobStore.acquire_job_lease` and its siblings,
:meth:`worker.batches.store.BatchStore.acquire_assembly` and its siblings);
this module keeps the pattern around them, once:

1. :meth:`Lease.acquire` takes the lease (or takes back one the same owner
   holds: a job's retry queued by an earlier version inherits its owner token);
2. :meth:`Lease.renewing` renews it in a background thread every third of its
   TTL while the work runs;
3. :meth:`Lease.held` / :meth:`Lease.check` answer "is it still ours?" before
   anything that costs money or writes an output: a provider session, an
   upload, a record;
4. :meth:`Lease.release` gives it up at the end, unless the store gave it up
   with the work's last record, in the same script (:meth:`Lease.giving_up`:
   a job that succeeded, :meth:`worker.jobs.store.JobStore.succeed`).  A job waiting out a retry's
   backoff holds no lease: nothing could use it, and a worker too busy to start
   the retry would keep every other worker from it
   (:meth:`worker.jobs.store.JobStore.schedule_retry`).

A lease is *lost* when a renewal finds another owner, or none: :attr:`Lease.lost`
is set, and the work must stop — no session, no upload, no record — because
another worker carries on.  A renewal that fails because Redis cannot be
reached is not a loss: the renewer tries again, and if Redis stays away past
the TTL, the next renewal finds the lease gone.

Errors::

    LeaseLost    raised by Lease.check() once the lease is another's
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from worker.batches.store import BatchStore
    from worker.jobs.store import JobStore

__all__ = ["Lease", "LeaseLost", "assembly_lease", "job_lease", "new_owner"]

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The lease is held by another owner (or by nobody): stop, and leave the work to it."""


def new_owner() -> str:
    """A fresh owner token: ``host:pid:random``, readable in Redis when debugging."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Lease:
    """One Redis lease held by this process; safe to ask from any thread.

    ``acquire``, ``renew`` and ``release`` are the store's operations on this
    lease's key, taking the owner (and a TTL in seconds).  ``what`` names the
    leased thing in log lines ("job 01J…", "batch 01J… build").
    """

    def __init__(
        self,
        what: str,
        ttl: float,
        *,
        acquire: Callable[[str, float], bool],
        renew: Callable[[str, float], bool],
        release: Callable[[str], object],
        owner: str | None = None,
        trust_renewals: bool = False,
    ) -> None:
        """``trust_renewals``: :meth:`held` answers from a recent renewal without
        a round trip (the job runner asks before every session and checkpoint)."""
        if ttl <= 0:
            raise ValueError(f"a lease needs a positive TTL, got {ttl}")
        self.what = what
        self.ttl = ttl
        self.owner = owner or new_owner()
        self.lost = threading.Event()  # set once a renewal found the lease another's
        # Until this time.monotonic() the lease is surely ours: a third of the TTL
        # after a renewal was sent that succeeded (see held()).
        self._sure_until = 0.0
        self._acquire = acquire
        self._renew = renew
        self._release = release
        self._trust = trust_renewals
        # The store is giving the lease up with the work's end (see giving_up()),
        # and has given it up.
        self._ending = threading.Event()
        self._released = False

    def acquire(self) -> bool:
        """Take the lease for ``ttl`` seconds; True if it is ours now.

        An owner that already holds it (a retry that inherited its token) takes
        it back by renewing it.
        """
        sent = time.monotonic()
        if self._acquire(self.owner, self.ttl) or self._renew(self.owner, self.ttl):
            self._confirmed(sent, self.ttl)
            return True
        return False

    def taken(self, sent: float) -> None:
        """The store took the lease for ``ttl`` seconds in a step of the work's own,
        sent at ``sent`` (``time.monotonic()``), instead of :meth:`acquire`: an
        attempt's start (:meth:`worker.jobs.store.JobStore.start_attempt`)."""
        self._confirmed(sent, self.ttl)

    @contextlib.contextmanager
    def renewing(self) -> Iterator[Lease]:
        """Renew the lease in a background thread for the duration of the block."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self._renew_until, args=(stop,), name=f"lease {self.what}", daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def held(self) -> bool:
        """Whether the lease is still ours, renewing it on the way (blocking).

        With ``trust_renewals``, within a third of the TTL of a renewal that
        succeeded (the renewer's, every third of the TTL) the answer needs no
        round trip: the key outlives that renewal by the whole TTL, and no
        other worker takes a lease before it lapses.  If Redis cannot be reached the answer is the
        renewer's last word: a blip must not stop work that is still ours.
        """
        if self.lost.is_set() or self._released:
            return False
        if time.monotonic() < self._sure_until:
            return True
        sent = time.monotonic()
        try:
            if self._renew(self.owner, self.ttl):
                self._confirmed(sent, self.ttl)
                return True
        except redis.RedisError as exc:
            log.warning("%s: lease check failed (%s); carrying on", self.what, exc)
            return not self.lost.is_set()
        self._lose()
        return False

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless the lease is still ours (see :meth:`held`)."""
        if not self.held():
            raise LeaseLost(f"{self.what}: lease lost; another worker carries on")

    def extend(self, seconds: float) -> bool:
        """Keep the lease for ``seconds`` from now, longer or shorter than its TTL."""
        self._sure_until = 0.0  # shorter than the TTL, perhaps: ask from now on
        try:
            return self._renew(self.owner, seconds)
        except redis.RedisError as exc:
            log.warning("%s: could not keep the lease (%s); it will lapse", self.what, exc)
            return False

    @contextlib.contextmanager
    def giving_up(self) -> Iterator[Lease]:
        """Around a store call that may give the lease up with the work's last
        record (one script, no release after it): meanwhile the renewer takes the
        lease's going for no loss.  Call :meth:`given_up` inside if it did."""
        self._ending.set()
        try:
            yield self
        finally:
            if not self._released:
                self._ending.clear()

    def given_up(self) -> None:
        """The store gave the lease up (see :meth:`giving_up`): nothing is left to release."""
        self._released = True
        self._sure_until = 0.0

    def release(self) -> None:
        """Give the lease up if it is still ours; if Redis is away, it lapses on its own."""
        self._sure_until = 0.0
        if self._released:
            return
        try:
            self._release(self.owner)
        except redis.RedisError as exc:
            log.warning("%s: could not release the lease (%s); it will lapse", self.what, exc)

    def _renew_until(self, stop: threading.Event) -> None:
        while not stop.wait(self.ttl / 3):
            if self._released:
                return
            sent = time.monotonic()
            try:
                if not self._renew(self.owner, self.ttl):
                    if self._ending.is_set():  # gone with the work's end, most likely
                        continue
                    self._lose()
                    return
                self._confirmed(sent, self.ttl)
            except redis.RedisError as exc:
                log.warning("%s: lease renewal failed (%s); will try again", self.what, exc)

    def _confirmed(self, sent: float, seconds: float) -> None:
        """A renewal sent at ``sent`` for ``seconds`` succeeded."""
        if self._trust:
            self._sure_until = max(self._sure_until, sent + seconds / 3)

    def _lose(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            log.warning("%s: lease lost; another worker carries on", self.what)


def job_lease(store: JobStore, job_id: str, ttl: float, owner: str | None = None) -> Lease:
    """The lease of one attempt of a job (``owner``: the token an earlier version's
    retry inherits).  A job its release leaves running is due again a TTL later."""
    return Lease(
        f"job {job_id}",
        ttl,
        acquire=lambda who, seconds: store.acquire_job_lease(job_id, who, seconds),
        renew=lambda who, seconds: store.renew_job_lease(job_id, who, seconds),
        release=lambda who: store.release_job_lease(job_id, who, look_again_in=ttl),
        owner=owner,
        trust_renewals=True,
    )


def assembly_lease(batches: BatchStore, batch_id: str, ttl: float) -> Lease:
    """The lease of one batch's build: one builder at a time."""
    return Lease(
        f"batch {batch_id} build",
        ttl,
        acquire=lambda who, seconds: batches.acquire_assembly(batch_id, who, seconds),
        renew=lambda who, seconds: batches.renew_assembly(batch_id, who, seconds),
        release=lambda who: batches.release_assembly(batch_id, who),
    )
