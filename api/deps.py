"""What routes depend on: the app's resources, the current tenant, the job in the path.

:class:`ApiContext` holds everything built from the settings (Redis client, job
store, storage, the task dispatcher, limits); :func:`api.app.create_app` builds one and
keeps it on ``app.state``.  Routes take them as ``Annotated`` dependencies::

    def get_job(job: OwnedJob, storage: StorageDep) -> JobOut: ...

Authentication: ``Authorization: Bearer <key>``; the key's SHA-256 is
compared, in constant time, with every configured tenant key hash.  Each
authenticated request counts against the tenant's requests per minute.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.dispatch import Dispatcher
from api.errors import NotFound, RateLimited, Unauthorized
from api.idempotency import Idempotency
from api.limits import InFlight, RequestRate
from worker.jobs.model import Job
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.settings import Settings, TenantConfig
from worker.storage.client import Storage

log = logging.getLogger(__name__)


@dataclass
class ApiContext:
    """Every resource the API uses, built once per app from one :class:`Settings`."""

    settings: Settings
    keys: Keys
    redis: redis.Redis
    store: JobStore
    storage: Storage
    dispatch: Dispatcher
    rate: RequestRate
    in_flight: InFlight
    idempotency: Idempotency

    @classmethod
    def build(cls, settings: Settings) -> ApiContext:
        """Build the clients; none of them connects until first used."""
        keys = Keys(settings.key_prefix)
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=3,
            socket_timeout=10,
            health_check_interval=30,
        )
        # The API only presigns and checks readiness: fail fast rather than retry.
        storage = Storage.from_settings(
            settings, request_attempts=1, connect_timeout=2.0, read_timeout=5.0
        )
        return cls(
            settings=settings,
            keys=keys,
            redis=client,
            store=JobStore(client, keys, settings.job_ttl_seconds),
            storage=storage,
            dispatch=Dispatcher(settings),
            rate=RequestRate(client, keys),
            in_flight=InFlight(client, keys),
            idempotency=Idempotency(client, keys, settings.idempotency_ttl_seconds),
        )

    def close(self) -> None:
        """Close every client's connections."""
        self.dispatch.close()
        self.storage.close()
        self.redis.close()


def _context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(_context)]


def _settings(ctx: Ctx) -> Settings:
    return ctx.settings


def _store(ctx: Ctx) -> JobStore:
    return ctx.store


def _storage(ctx: Ctx) -> Storage:
    return ctx.storage


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[JobStore, Depends(_store)]
StorageDep = Annotated[Storage, Depends(_storage)]

_bearer = HTTPBearer(
    auto_error=False,
    description="an API key of a tenant (SHOAL_TENANTS stores its SHA-256)",
)


def authenticate(settings: Settings, key: str) -> TenantConfig | None:
    """The tenant owning ``key``, comparing hashes in constant time (no early exit)."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    found: TenantConfig | None = None
    for tenant in settings.tenants:
        for stored in tenant.key_sha256:
            if hmac.compare_digest(digest, stored.strip().lower()) and found is None:
                found = tenant
    return found


def current_tenant(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TenantConfig:
    """The authenticated tenant, after counting this request against its rate limit."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized()
    tenant = authenticate(ctx.settings, credentials.credentials)
    if tenant is None:
        raise Unauthorized("unknown API key")
    admission = ctx.rate.hit(tenant.id, tenant.requests_per_minute)
    if not admission.admitted:
        raise RateLimited(
            f"more than {tenant.requests_per_minute} requests a minute; "
            f"retry in {admission.retry_after} s",
            retry_after=admission.retry_after,
        )
    return tenant


Tenant = Annotated[TenantConfig, Depends(current_tenant)]

JobId = Annotated[str, Path(min_length=1, max_length=128, description="a job id, `job_…`")]


def owned_job(job_id: JobId, tenant: Tenant, store: StoreDep) -> Job:
    """The job in the path if it is the tenant's; 404 otherwise (ids do not leak)."""
    job = store.get_for_tenant(job_id, tenant.id)
    if job is None:
        raise NotFound(f"no job {job_id!r}", field="job_id")
    return job


OwnedJob = Annotated[Job, Depends(owned_job)]
