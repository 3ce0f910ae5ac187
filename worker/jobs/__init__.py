"""Jobs: one text in, one audio file out.  The worker's side of ``/v1/jobs``.

The path of a job through these modules is drawn in ``docs/architecture.md``:
the task hands the job to the runner, which cuts the text, synthesises the
missing segments inside governor slots, assembles them and records the outcome.

* :mod:`~worker.jobs.model` – the record: ``Job``, ``JobRequest``, ``JobStatus``
  (``queued → running → succeeded | failed | canceled``), ``Output``,
  ``Progress``, ``Billing``, ``ErrorCode``; :func:`estimate_billing`;
* :mod:`~worker.jobs.store` – ``JobStore``: records, indexes, segment
  checkpoints, session counts and job leases in Redis; every change that must
  not interleave is one Lua script (:mod:`~worker.jobs.lua`); its checkpoints
  and session counts are in :mod:`~worker.jobs.store_segments`, its leases,
  retries and the reaper's reads in :mod:`~worker.jobs.store_leases`;
* :mod:`~worker.jobs.listing` – pages of jobs: which index to walk, filters,
  cursors;
* :mod:`~worker.jobs.tasks` – the ``shoal.synthesize`` task and the reaper that
  re-queues jobs whose worker died (and acts on batches left waiting);
* :mod:`~worker.jobs.runner` – ``JobRunner.run``: one attempt, from lease to
  transition, and what each error means for the job; the end of an attempt
  (the last segments, the file encoded and uploaded, captions) is
  :mod:`~worker.jobs.assembly`;
* :mod:`~worker.jobs.text` – :func:`segment_text`: the text cut into segments,
  the unit of streaming, retry and checkpoint;
* :mod:`~worker.jobs.synth` – ``SegmentSynthesizer``: segments to PCM
  checkpoints in staging, in parallel, one provider session each
  (:mod:`~worker.jobs.checkpoints`: what a checkpoint holds);
* :mod:`~worker.jobs.governor` – ``Governor``: provider slots shared by every
  worker, a fair leased semaphore in Redis;
* :mod:`~worker.jobs.truncation` – :func:`check_duration`: audio far shorter
  than its text is refused.

Errors of the store (:mod:`~worker.jobs.errors`; the runner's failures are
recorded on the job as an ``ErrorCode``, not raised to callers)::

    StoreError
    ├── JobExists          create() of an id that is already stored
    ├── JobNotFound        an update of a job that is not (or no longer) stored
    ├── CorruptJobRecord   a stored hash that does not decode into a Job
    └── InvalidCursor      a listing cursor the store did not hand out

``AudioTruncated`` (:mod:`~worker.jobs.truncation`) is a transient provider
error, in the tree of :mod:`worker.fish.errors`.
"""
