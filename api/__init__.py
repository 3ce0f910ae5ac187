"""shoal's HTTP API: jobs in, status, progress and audio out (DESIGN §3, §5).

Run it with uvicorn's factory mode (nothing is built at import time)::

    uvicorn --factory api.app:create_app --host 0.0.0.0 --port 8000

Modules: :mod:`api.app` (the factory), :mod:`api.routes` (one router per
resource), :mod:`api.schemas` (request and response schemas),
:mod:`api.deps` (resources, auth), :mod:`api.validation`, :mod:`api.limits`
(rate, in-flight, idempotency), :mod:`api.jobs.service`, :mod:`api.events` (SSE),
:mod:`api.probes` (readiness, metrics), :mod:`api.errors`.

Errors (:mod:`api.errors`), each answered as ``{"error": {"code", "message", "field"}}``::

    ApiError                  an answer other than success; ``status``, ``code``, ``field``
    ├── Unauthorized          401
    ├── NotFound              404 (also for other tenants' jobs)
    ├── Conflict              409
    ├── PayloadTooLarge       413
    ├── InvalidInput          422
    ├── RateLimited           429, with Retry-After
    └── Unavailable           503
"""
