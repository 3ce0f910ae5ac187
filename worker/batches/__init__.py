"""Batches: many jobs (a book's chapters) and what is made of them at the end.

A batch's items are ordinary jobs on the bulk queue.  When every item of a
generation has ended, the batch is acted on once: an audiobook and a manifest
are built if all succeeded, else the batch is reported as failed.  The path of
a book through these modules is drawn in ``docs/architecture.md``.

* :mod:`~worker.batches.model` – the record: ``Batch``, ``BatchItem``,
  ``Produce``, ``ChapterMaster``; the status is derived from the items
  (:func:`derive_status`), never stored;
* :mod:`~worker.batches.store` – ``BatchStore``: batch records, chapter
  masters, the once-only flags and the assembly lease in Redis;
* :mod:`~worker.batches.lifecycle` – the job runner's hooks (priority, chapter
  master, ``on_job_terminal``), the end of a batch (``maybe_finalize``), the
  reaper's fallback for an end nobody acted on (``reap_batches``), staging
  cleanup;
* :mod:`~worker.batches.build` – :func:`build_batch`: one build under the
  assembly lease, its attempts, and the record of what it made;
* :mod:`~worker.batches.products` – :func:`make_products`: the combined M4B or
  MP3 and the manifest, built from the chapter masters and uploaded;
* :mod:`~worker.batches.tasks` – the ``shoal.assemble_batch`` task.

Errors::

    BatchStoreError
    ├── BatchExists        create() of an id that is already stored
    └── BatchNotFound      an update of a batch that is not (or no longer) stored

    BuildFailed            the combined outputs cannot be built (permanent; build.py)
"""
