"""Callbacks: signed webhooks that tell a job's or a batch's ``callback_url`` what happened.

Every event is built and queued in one place (``emit``) and delivered by its
own task on the callbacks queue, signed the Standard Webhooks way with the
tenant's secret and retried on a schedule of seconds to hours.  A callback
never changes a job's status.  Events, headers and retries are described in
``docs/operations.md`` ("Callbacks").

* :mod:`~worker.callbacks.signing` – pure: ``sign``, ``verify``, event ids;
* :mod:`~worker.callbacks.urls` – which URLs may receive callbacks (public
  addresses only, unless the operator allows private ones);
* :mod:`~worker.callbacks.emit` – the one place that builds an event and
  queues its delivery, for jobs and batches alike;
* :mod:`~worker.callbacks.delivery` – the ``shoal.deliver_callback`` task:
  POST, classify the answer, record the attempt on the job, schedule the next.

Errors::

    CallbackError
    ├── InvalidSecret             a secret that is not ``whsec_<base64>`` (also a ValueError)
    └── WebhookVerificationError  verify(): headers missing, timestamp stale, no signature matches
"""
