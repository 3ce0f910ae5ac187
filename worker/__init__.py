"""shoal's worker: Celery tasks that turn a job's text into an uploaded audio file.

``celery -A worker worker`` finds the app in :mod:`worker.celery`.  Importing
this package has no side effects, so ``local_tts`` and ``api`` can import the
pieces they share (the protocol, models, settings, keys, stores) without
building a Celery app.

Shared by every room:

* :mod:`worker.celery` – the Celery app: late acks, threads pool, three queues;
* :mod:`worker.queues` – task and queue names, the contract with the API and
  with messages already queued;
* :mod:`worker.settings` – ``Settings`` (``SHOAL_*``) behind ``get_settings()``;
* :mod:`worker.keys` – every Redis key name, under one prefix;
* :mod:`worker.retry` – retry policy as plain data and pure functions;
* :mod:`worker.lease` – the one lease helper (job runner, batch builder);
* :mod:`worker.digest` – the one file-digest helper (SHA-256).

Rooms, one per resource or concern: :mod:`worker.fish` (the provider protocol,
sans-I/O, and its client), :mod:`worker.audio` (PCM, assembly, audiobooks),
:mod:`worker.books` (book files to chapters), :mod:`worker.jobs`,
:mod:`worker.batches`, :mod:`worker.storage`, :mod:`worker.callbacks`.  Each
draws its own error tree.  ``docs/architecture.md`` follows one job and one
book through them.
"""
