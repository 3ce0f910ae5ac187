"""``/v1/batches``: many texts as one batch, followed, canceled, and retried item by item.

* :mod:`~api.batches.router` – the routes; HTTP only;
* :mod:`~api.batches.schemas` – ``BatchCreate`` and ``ItemRetryIn`` in,
  ``BatchOut`` out; ``BatchOptions``, which books share;
* :mod:`~api.batches.service` – submit a batch: every check, then the batch
  record and one job per item on the bulk queue, all or nothing;
* :mod:`~api.batches.views` – what ``GET /v1/batches/{id}`` shows: the derived
  status, the items' jobs, presigned outputs; it only reads;
* :mod:`~api.batches.actions` – cancel a batch, retry one item (a new job and
  a new generation).

The batch's record, store and lifecycle are the worker's (:mod:`worker.batches`).
Errors are the API's (:mod:`api.errors`).
"""
