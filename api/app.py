"""The FastAPI application factory: ``uvicorn --factory api.app:create_app``.

:func:`create_app` builds everything from one :class:`~worker.settings.Settings`
(``get_settings()`` when none is given), so tests make apps of their own and
importing this module builds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from api import estimate, system
from api.batches import router as batches
from api.bodies import BodyLimit
from api.books import router as books
from api.deps import ApiContext
from api.errors import install_handlers
from api.jobs import router as jobs
from api.lexicons import router as lexicons
from api.openapi import install_links
from api.probes import metrics_registry
from api.schemas import MAX_REFERENCES
from api.validation import MAX_REFERENCE_BYTES
from api.voices import router as voices
from api.web import install_web
from worker.settings import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """\
Batch speech synthesis: submit a text, poll or follow the job, download the audio.

Every `/v1` call needs `Authorization: Bearer <key>`. Errors are
`{"error": {"code", "message", "field"}}`.
"""


def _version() -> str:
    try:
        return version("shoal")
    except PackageNotFoundError:
        return "0"


def body_limit(settings: Settings) -> int:
    """Largest request body: the longest text JSON-escaped, plus reference clips in base64."""
    text = settings.max_text_bytes * 6  # every character escaped as \\uXXXX at worst
    references = MAX_REFERENCES * (MAX_REFERENCE_BYTES * 4 // 3 + 4096)
    return text + references + (1 << 20)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API: routers, error handlers, and the resources of ``settings``."""
    s = settings or get_settings()
    ctx = ApiContext.build(s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not s.tenants:
            log.warning("no tenants configured (SHOAL_TENANTS): every /v1 call will get 401")
        log.info("shoal API up: %d tenant(s), redis %s", len(s.tenants), s.redis_url)
        try:
            yield
        finally:
            ctx.close()

    app = FastAPI(
        title="shoal",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local files by api.web, never from a CDN
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.metrics = metrics_registry(ctx)
    app.add_middleware(BodyLimit, limit=body_limit(s))
    install_handlers(app)
    app.include_router(system.router)
    app.include_router(jobs.router, prefix="/v1")
    app.include_router(estimate.router, prefix="/v1")
    app.include_router(batches.router, prefix="/v1")
    app.include_router(books.router, prefix="/v1")
    app.include_router(lexicons.router, prefix="/v1")
    app.include_router(voices.router, prefix="/v1")
    install_links(app)
    install_web(app)
    return app
