"""``Idempotency-Key``: a retried ``POST`` answers with what the first one made.

A request that carries the header claims the key for the id it is about to
create, together with a fingerprint of the request (:class:`Claim`, kept in
Redis by :class:`Idempotency`).  A retry with the same key finds the claim:

* same fingerprint: the answer is the resource the first request made
  (waiting up to :data:`IDEMPOTENT_WAIT_SECONDS` while it is still being
  made), with status 200 and ``Idempotent-Replayed: true``;
* another fingerprint: 409 ``idempotency_key_reused``.

If making the resource fails, the claim is released, so a retry makes it
anew.  :func:`create_once` runs that whole protocol for jobs, batches and
books alike; batches and books claim their keys under ``batches/`` and
``books/`` so one key can serve each route once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, cast

import redis
from fastapi import Header, Response

from api.errors import Conflict, InvalidInput
from worker.keys import Keys

T = TypeVar("T")

#: How long a retried request waits for what its Idempotency-Key is still making.
IDEMPOTENT_WAIT_SECONDS = 5.0
#: Longest key accepted (printable ASCII, no spaces).
MAX_KEY_CHARS = 255
_POLL_SECONDS = 0.05

#: The header as routes take it; :func:`check_idempotency_key` checks its value.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="retries with the same key and request get what the first one made: "
        "one job, batch or book",
    ),
]


def check_idempotency_key(key: str | None) -> str | None:
    """The header's value if usable as a key: 1–255 printable ASCII characters."""
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY_CHARS or not all(33 <= ord(c) < 127 for c in key):
        raise InvalidInput(
            "Idempotency-Key: must be 1 to 255 printable ASCII characters without spaces",
            field="Idempotency-Key",
        )
    return key


@dataclass(frozen=True, slots=True)
class Claim:
    """What an Idempotency-Key stands for: the id of what it made, and the request's hash."""

    id: str  # a job or batch id
    fingerprint: str


def fingerprint(payload: Any) -> str:
    """A stable hash of a JSON-able request: the same request always hashes the same."""
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(raw.encode()).hexdigest()


class Idempotency:
    """``Idempotency-Key`` claims of each tenant, kept ``ttl`` seconds.

    A claim is stored as ``{"job_id", "fingerprint"}`` JSON; the field keeps
    the name ``job_id`` (also for batches) so claims made before an upgrade
    still read.
    """

    def __init__(self, client: redis.Redis, keys: Keys, ttl: int) -> None:
        self.redis = client
        self.keys = keys
        self.ttl = ttl

    def claim(self, tenant: str, key: str, claim: Claim) -> Claim | None:
        """Take ``key`` for ``claim``; None if taken now, else the earlier claim."""
        name = self.keys.idempotency(tenant, key)
        value = json.dumps({"job_id": claim.id, "fingerprint": claim.fingerprint})
        if self.redis.set(name, value, nx=True, ex=self.ttl):
            return None
        raw = self.redis.get(name)
        if raw is None:  # expired between the two calls: try once more
            return None if self.redis.set(name, value, nx=True, ex=self.ttl) else claim
        data = json.loads(cast(bytes | str, raw))
        return Claim(str(data["job_id"]), str(data["fingerprint"]))

    def release(self, tenant: str, key: str, made_id: str) -> None:
        """Forget ``key`` if it still stands for ``made_id`` (that was never made)."""
        name = self.keys.idempotency(tenant, key)
        raw = self.redis.get(name)
        if raw is not None and json.loads(cast(bytes | str, raw)).get("job_id") == made_id:
            self.redis.delete(name)


@dataclass(frozen=True, slots=True)
class Created(Generic[T]):
    """What a ``POST`` made, and whether this request made it (False: a replay)."""

    value: T
    created: bool


def create_once(
    store: Idempotency,
    tenant: str,
    key: str | None,
    claim: Claim,
    *,
    create: Callable[[], T],
    load: Callable[[str], T | None],
    request: str = "request",
) -> Created[T]:
    """Run ``create`` once per ``key``: a retry gets what the first request made.

    ``load`` finds what an earlier request made by its id (for this tenant);
    ``request`` names what was fingerprinted in the 409 a different one gets.
    Without a key, ``create`` simply runs.
    """
    if key is not None:
        earlier = store.claim(tenant, key, claim)
        if earlier is not None:
            return Created(_replay(earlier, claim, load, request), created=False)
    try:
        made = create()
    except BaseException:
        if key is not None:
            store.release(tenant, key, claim.id)
        raise
    return Created(made, created=True)


def _replay(earlier: Claim, mine: Claim, load: Callable[[str], T | None], request: str) -> T:
    """What an earlier request with the same key made (or is still making)."""
    if earlier.fingerprint != mine.fingerprint:
        raise Conflict(
            f"Idempotency-Key: already used with a different {request}",
            field="Idempotency-Key",
            code="idempotency_key_reused",
        )
    deadline = time.monotonic() + IDEMPOTENT_WAIT_SECONDS
    while True:
        made = load(earlier.id)
        if made is not None:
            return made
        if time.monotonic() > deadline:
            raise Conflict(
                "Idempotency-Key: the first request with this key is still being processed",
                field="Idempotency-Key",
                code="idempotency_in_progress",
            )
        time.sleep(_POLL_SECONDS)


def answer_created(response: Response, location: str, created: bool) -> None:
    """Point ``Location`` at what a ``POST`` made; a replay answers 200, not 202."""
    response.headers["Location"] = location
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
