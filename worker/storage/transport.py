"""How :mod:`worker.storage.client` sends S3 requests: the one retry layer, and files as parts.

botocore is configured (:func:`client_config`) to send each request once;
:class:`Requests` sends it again after a transient failure
(:class:`~worker.storage.errors.StorageUnavailable`) per the storage's
:class:`~worker.retry.RetryPolicy` — :data:`worker.retry.STORAGE_POLICY` unless
told otherwise — logging each retry, and gives up with "gave up after N
attempts: ...".  Ours rather than botocore's because ours are deterministic to
test (the delays are computed, the sleep injectable), outlast an outage of
several seconds, and also cover a GET whose body breaks mid-way.  Listings are
followed page by page, each page one request retried on its own.

:class:`Parts` reads a file to upload as numbered parts, one in memory at a
time, hashing it on the way and refusing a file that changes size meanwhile.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from worker.digest import Digest
from worker.retry import RetryPolicy, give_up_message
from worker.storage.errors import StorageUnavailable, UploadSourceError, classify

__all__ = ["Parts", "Requests", "Tally", "client_config", "read_exact"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How an S3 operation is named in the log line of its retry ("upload of s3://b/k failed").
_KIND = {
    "put_object": "upload",
    "create_multipart_upload": "upload",
    "upload_part": "upload",
    "complete_multipart_upload": "upload",
    "abort_multipart_upload": "abort",
    "get_object": "download",
    "delete_object": "delete",
    "delete_objects": "delete",
    "list_objects_v2": "listing",
    "list_multipart_uploads": "listing",
}
#: Per listing: the request parameters that ask for the next page, and the
#: response fields that give their values.
_NEXT_PAGE = {
    "list_objects_v2": (("ContinuationToken", "NextContinuationToken"),),
    "list_multipart_uploads": (
        ("KeyMarker", "NextKeyMarker"),
        ("UploadIdMarker", "NextUploadIdMarker"),
    ),
}


class Tally:
    """How many requests of one call (an upload: its parts, its completion) were sent again."""

    __slots__ = ("retries",)

    def __init__(self) -> None:
        self.retries = 0


class Requests:
    """The S3 requests of one bucket through one boto3 client (thread-safe, as boto3's is)."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        retry: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.retry = retry
        self._sleep = sleep

    def send(
        self, op: str, key: str | None = None, *, tally: Tally | None = None, **params: Any
    ) -> Any:
        """One S3 request on the bucket (and ``key``), sent again after transient failures."""
        kind = _KIND.get(op, op)
        return self.retrying(kind, key or "", lambda: self.once(op, key, **params), tally)

    def once(self, op: str, key: str | None = None, **params: Any) -> Any:
        """One S3 request, sent once; botocore's errors raised as StorageErrors."""
        if key is not None:
            params["Key"] = key
        try:
            return getattr(self.client, op)(Bucket=self.bucket, **params)
        except (BotoCoreError, ClientError) as exc:
            raise classify(exc, f"{op} {self._url(key or '')}") from exc

    def pages(self, op: str, prefix: str) -> Iterator[dict[str, Any]]:
        """The pages of a listing (``list_objects_v2``, ``list_multipart_uploads``)."""
        params: dict[str, Any] = {"Prefix": prefix}
        while True:
            page = self.send(op, **params)
            yield page
            following = {arg: page[field] for arg, field in _NEXT_PAGE[op] if page.get(field)}
            if not page.get("IsTruncated") or not following:
                return
            params = {"Prefix": prefix, **following}

    def retrying(self, kind: str, key: str, fn: Callable[[], T], tally: Tally | None = None) -> T:
        """``fn()`` (one request, sent once), run again after StorageUnavailable per the policy.

        A policy of one attempt raises the first error as it is; otherwise the
        last one is raised as "gave up after N attempts: ...".
        """
        policy = self.retry
        attempt = 1
        while True:
            try:
                return fn()
            except StorageUnavailable as exc:
                if not policy.should_retry(attempt, True):
                    if attempt == 1:
                        raise
                    message = give_up_message(attempt, exc.message)
                    raise StorageUnavailable(message, code=exc.code, status=exc.status) from exc
                delay = policy.delay(attempt, random.random())
                log.warning(
                    "%s of %s failed (attempt %d/%d): %s; retry in %.2fs",
                    *(kind, self._url(key), attempt, policy.max_attempts, exc, delay),
                )
                self._sleep(delay)
                attempt += 1
                if tally is not None:
                    tally.retries += 1

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def client_config(
    *,
    region: str,
    path_style: bool,
    checksum_when_required: bool,
    connect_timeout: float,
    read_timeout: float,
    max_pool_connections: int,
) -> Config:
    """botocore's settings: each request sent once (the retries are ours), pooled, timed out.

    ``checksum_when_required`` turns off boto3's default CRC checksums for
    servers that reject them (rclone, older MinIO and Ceph).
    """
    checksum = "when_required" if checksum_when_required else None
    return Config(
        region_name=region,
        signature_version="s3v4",
        s3={"addressing_style": "path" if path_style else "auto"},
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
        tcp_keepalive=True,
        request_checksum_calculation=checksum,
        response_checksum_validation=checksum,
    )


class Parts:
    """A file read as numbered parts of ``part_bytes``, hashed on the way."""

    def __init__(self, f: IO[bytes], size: int, source: Path, part_bytes: int) -> None:
        self.f, self.size, self.source, self.part_bytes = f, size, source, part_bytes
        self.sent = 0
        self.digest = Digest()

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        number = 0
        while self.sent < self.size:
            # One part in memory at a time.
            chunk = read_exact(self.f, min(self.part_bytes, self.size - self.sent), self.source)
            self.digest.update(chunk)
            self.sent += len(chunk)
            number += 1
            yield number, chunk
        if self.f.read(1):  # a spool still being written is not ours to publish
            raise UploadSourceError(f"{self.source.name} grew during the upload")


def read_exact(f: IO[bytes], n: int, source: Path) -> bytes:
    """Exactly ``n`` bytes of ``f``: a short read means the file shrank under us."""
    try:
        data = f.read(n)
    except OSError as exc:
        raise UploadSourceError(f"cannot read {source.name}: {exc}") from exc
    if len(data) != n:
        raise UploadSourceError(f"{source.name} shrank during the upload")
    return data
