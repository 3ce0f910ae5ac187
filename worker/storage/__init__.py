"""Storage: one bucket of an S3-compatible store (AWS, MinIO, R2, B2, Ceph), through boto3.

Outputs, segment checkpoints and chapter masters go up from files on disk in
multipart parts, so memory holds one part however long the audio.  What is kept
where and for how long is in ``docs/operations.md`` ("Storage lifecycle").

* :mod:`~worker.storage.client` – ``Storage``: uploads, downloads, presigned
  URLs, deletes;
* :mod:`~worker.storage.transport` – how requests are sent: the one retry layer
  (:data:`worker.retry.STORAGE_POLICY`; botocore's own is off), and a file
  read as numbered multipart parts, one in memory at a time;
* :mod:`~worker.storage.errors` – the error tree below, and how botocore's
  failures map onto it;
* :mod:`~worker.storage.model` – the pure parts: object keys and key templates,
  metadata, and the small values the client returns;
* :mod:`~worker.storage.sweep` – the sweep of incomplete multipart uploads an
  abort could not clean, run from the workers' reaper.

Errors::

    StorageError              anything the store could not do; ``retryable`` says which kind
    ├── StorageUnavailable    transient: refused/reset connections, timeouts, 5xx, throttling
    └── StorageRejected       permanent: access denied, no such bucket, bad request or config
        ├── ObjectNotFound    the key (or multipart upload) does not exist
        ├── InvalidKey        a key or key template that is empty or escapes its prefix
        └── UploadSourceError the local file is unreadable or changed during the upload
"""
