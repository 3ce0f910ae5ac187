"""shoal's HTTP API: jobs, batches and books in; status, progress and audio out.

It never synthesises.  It checks a request, stores the record, and sends a task
by name (:mod:`api.dispatch`); it imports no worker runtime, only the models,
settings, keys and stores it shares with the worker.  A ``GET`` never changes
state.  Run it with uvicorn's factory mode (nothing is built at import time)::

    uvicorn --factory api.app:create_app --host 0.0.0.0 --port 8000

Modules shared by every resource:

* :mod:`api.app` – :func:`~api.app.create_app`, the application factory;
* :mod:`api.deps` – ``ApiContext`` (clients built from the settings) and the
  ``Annotated`` dependencies: tenant, owned job, store, storage;
* :mod:`api.errors` – the error tree below and its one JSON shape;
* :mod:`api.bodies` – reads request bodies; one it cannot read is refused saying why;
* :mod:`api.limits` – requests per minute and jobs in flight, per tenant;
* :mod:`api.idempotency` – ``Idempotency-Key`` for every ``POST`` that creates;
* :mod:`api.dispatch` – sends Celery tasks by name: the only way to the workers;
* :mod:`api.validation` – checks of a request that need settings or I/O;
* :mod:`api.schemas` – schema building blocks the resources share;
* :mod:`api.events` – a job's Server-Sent Events;
* :mod:`api.probes` and :mod:`api.system` – ``/healthz``, ``/readyz``, ``/metrics``;
* :mod:`api.estimate` – ``POST /v1/estimate``.

One room per resource, each with ``router.py``, ``schemas.py`` and
``service.py``: :mod:`api.jobs`, :mod:`api.batches`, :mod:`api.books`.

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
