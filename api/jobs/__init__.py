"""``/v1/jobs``: submit one text, show, list, cancel, download and follow jobs.

* :mod:`~api.jobs.router` – the routes; HTTP only;
* :mod:`~api.jobs.schemas` – ``JobCreate`` in, ``JobOut`` and ``JobList`` out;
* :mod:`~api.jobs.service` – what the routes do apart from HTTP: submit (checks,
  idempotency, the in-flight limit, store, dispatch), cancel, and the view of a
  job with a presigned download URL.

The job's record and store are the worker's (:mod:`worker.jobs`); the task is
sent by name (:mod:`api.dispatch`).  Errors are the API's (:mod:`api.errors`).
"""
