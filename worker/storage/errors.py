"""Errors of :mod:`worker.storage.client`, and how botocore's failures map onto them.

The tree (drawn again in :mod:`worker.storage.client`, which re-exports it)::

    StorageError              anything the store could not do; ``retryable`` says which kind
    ├── StorageUnavailable    transient: refused/reset connections, timeouts, 5xx, throttling
    └── StorageRejected       permanent: access denied, no such bucket, bad request or config
        ├── ObjectNotFound    the key (or multipart upload) does not exist
        ├── InvalidKey        a key or key template that is empty or escapes its prefix
        └── UploadSourceError the local file is unreadable or changed during the upload
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

# Error codes that mean "try again later" whatever the HTTP status says.
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "OperationAborted",  # a conflicting operation is in progress
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchUpload", "NotFound", "404"})
# botocore errors that no retry can fix: the request or the configuration is wrong.
_PERMANENT_BOTOCORE = (
    NoCredentialsError,
    PartialCredentialsError,
    NoRegionError,
    ParamValidationError,
)


class StorageError(Exception):
    """Root of storage errors. ``code`` is the S3 error code, ``status`` the HTTP status."""

    retryable = False

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class StorageUnavailable(StorageError):
    """The store could not be reached or asked us to slow down: retry with backoff."""

    retryable = True


class StorageRejected(StorageError):
    """The store refused the request for good: retrying the same request cannot help."""


class ObjectNotFound(StorageRejected):
    """No such key (or multipart upload)."""


class InvalidKey(StorageRejected, ValueError):
    """A key, prefix or key template that is empty, malformed or escapes its place."""


class UploadSourceError(StorageRejected):
    """The file to upload could not be read, or changed size while it was sent."""


def classify(exc: BaseException, what: str) -> StorageError:
    """The StorageError for a failure of ``what`` (e.g. ``"upload s3://b/k"``).

    The caller raises it ``from exc``. Unknown botocore errors count as
    transient: they are transport trouble (broken streams, bad checksums in
    transit), and the retry loops are bounded.
    """
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "")
        status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        text = error.get("Message") or code or str(exc)
        message = f"{what}: {text}" + (f" ({code}, HTTP {status})" if status else f" ({code})")
        if code in TRANSIENT_CODES or (status is not None and (status >= 500 or status == 429)):
            return StorageUnavailable(message, code=code, status=status)
        if code in NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"):
            return ObjectNotFound(message, code=code, status=status)
        return StorageRejected(message, code=code, status=status)
    if isinstance(exc, _PERMANENT_BOTOCORE):
        return StorageRejected(f"{what}: {exc}", code=type(exc).__name__)
    if isinstance(exc, BotoCoreError):
        return StorageUnavailable(f"{what}: {exc}", code=type(exc).__name__)
    return StorageError(f"{what}: {exc!r}")
