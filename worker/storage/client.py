"""S3-compatible storage through one boto3 client: AWS, MinIO, R2, B2, Ceph, moto.

Uploads stream from a file on disk in multipart parts (one PUT below one part),
so memory holds one part however long the audio is. ``upload_part_copy`` and
ranged GETs are never used: some S3-compatible servers break them.

Retries have one layer, here: every S3 request (a PUT, each part, the
completion, a GET with its body, a DELETE, a page of a listing) is sent again
after a transient failure per :data:`worker.retry.STORAGE_POLICY`, and botocore
is told to send each request once.  An outage of a few seconds costs the part
that was in flight, not the upload: the upload goes on from that part, ending
in one finished object and no incomplete multipart upload.  An upload that
fails anyway is aborted; one whose abort fails too is left to the workers'
sweep (:mod:`worker.storage.sweep`).

Presigned URLs may name another endpoint than the one requests go to
(``public_endpoint_url``): the address clients reach the store at, as opposed
to the one workers do (``http://minio:9000`` inside compose).  SigV4 signs the
Host, so such a URL is signed by a second client made for that endpoint.

Keys, templates, metadata and the small values returned live in
:mod:`worker.storage.model`; the errors (re-exported here, their tree drawn
there) in :mod:`worker.storage.errors`; the sending and retrying of requests in
:mod:`worker.storage.transport`; listing and deletion in :mod:`worker.storage.listing`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from worker.digest import sha256_bytes
from worker.retry import STORAGE_POLICY, RetryPolicy
from worker.settings import Settings
from worker.storage.errors import (
    InvalidKey,
    ObjectNotFound,
    StorageError,
    StorageRejected,
    StorageUnavailable,
    UploadSourceError,
    classify,
)
from worker.storage.listing import Listing
from worker.storage.model import (
    DEFAULT_KEY_TEMPLATE,
    IncompleteUpload,
    UploadResult,
    check_template,
    content_disposition,
    decode_metadata,
    encode_metadata,
    multipart_etag,
    render_key,
    validate_key,
    validate_prefix,
    validate_segment,
)
from worker.storage.transport import Parts, Requests, Tally, client_config, read_exact

__all__ = [
    "IncompleteUpload",
    "InvalidKey",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "StorageRejected",
    "StorageUnavailable",
    "UploadResult",
    "UploadSourceError",
]

log = logging.getLogger(__name__)

MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs live at most a week
MIN_PART_BYTES = 5 << 20  # S3's smallest part (all but the last)
MAX_PARTS = 10_000  # S3's most parts per upload; bigger files get bigger parts
DOWNLOAD_CHUNK = 1 << 20


class Storage(Listing):
    """One bucket of an S3-compatible store, through one thread-safe boto3 client."""

    # Long only by its keyword parameters (one per setting) and their docstring.
    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        path_style: bool = False,
        checksum_when_required: bool = False,
        key_template: str = DEFAULT_KEY_TEMPLATE,
        staging_prefix: str = "_staging",
        part_bytes: int = 8 << 20,
        presign_expiry: int = 3600,
        retry: RetryPolicy = STORAGE_POLICY,
        request_attempts: int | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_pool_connections: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Build the client; nothing touches the network until the first call.

        ``retry`` is how each request is retried; ``request_attempts``, if
        given, replaces its number of sends (1: fail fast, for callers that
        only presign or probe). ``public_endpoint_url``, if given, is the
        endpoint presigned URLs name instead of ``endpoint_url``.
        ``checksum_when_required`` turns off boto3's
        default CRC checksums for servers that reject them (rclone, older MinIO
        and Ceph). ``sleep`` is injectable so tests of the retries need not wait.
        """
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES} (S3's minimum)")
        if not 1 <= presign_expiry <= MAX_PRESIGN_SECONDS:
            raise ValueError("presign_expiry must be 1 s to 7 days (SigV4's limit)")
        self.bucket = bucket
        self.key_template = check_template(key_template)
        self.staging_prefix = staging_prefix.strip("/")
        self.part_bytes = part_bytes
        self.presign_expiry = presign_expiry
        if request_attempts is not None:
            retry = dataclasses.replace(retry, max_attempts=request_attempts)
        self.retry = retry
        self._region = region
        config = client_config(
            region=region,
            path_style=path_style,
            checksum_when_required=checksum_when_required,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
        )
        # A session of our own: boto3's default session is not thread-safe to build clients.
        session = boto3.session.Session()

        def make_client(endpoint: str | None) -> Any:
            return session.client(
                "s3",
                endpoint_url=endpoint or None,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=config,
            )

        self.client: Any = make_client(endpoint_url)
        public = public_endpoint_url or None
        # Presigning sends nothing: this client only signs URLs for the public host.
        self._presigner: Any = (
            make_client(public) if public and public != endpoint_url else self.client
        )
        self._requests = Requests(self.client, bucket, retry, sleep)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Storage:
        """A Storage from the ``s3_*`` settings; keyword ``overrides`` win."""
        secret = settings.s3_secret_access_key
        params: dict[str, Any] = {
            "bucket": settings.s3_bucket,
            "endpoint_url": settings.s3_endpoint_url,
            "public_endpoint_url": settings.s3_public_endpoint_url,
            "region": settings.s3_region,
            "access_key_id": settings.s3_access_key_id,
            "secret_access_key": secret.get_secret_value() if secret else None,
            "path_style": settings.s3_path_style,
            "checksum_when_required": settings.s3_checksum_when_required,
            "key_template": settings.s3_key_template,
            "staging_prefix": settings.s3_staging_prefix,
            "part_bytes": settings.s3_multipart_chunk_bytes,
            "presign_expiry": settings.presign_expiry_seconds,
        }
        params.update(overrides)
        return cls(**params)

    def close(self) -> None:
        """Close the clients' connection pools."""
        self.client.close()
        if self._presigner is not self.client:
            self._presigner.close()

    # -- keys --------------------------------------------------------------------

    def output_key(self, template_vars: Mapping[str, str]) -> str:
        """The key of a job's output: ``key_template`` with {tenant}, {job_id}, {ext}, {date}.

        ``date`` defaults to today (UTC, ``YYYY-MM-DD``). Raises
        :class:`InvalidKey` for values that would escape their place in the key.
        """
        return render_key(self.key_template, template_vars)

    def staging_key(self, job_id: str, name: str) -> str:
        """Key of a job's intermediate object; with ``name=""`` the job's staging prefix."""
        job_id = validate_segment("job_id", job_id)
        prefix = f"{self.staging_prefix}/{job_id}/" if self.staging_prefix else f"{job_id}/"
        return validate_prefix(prefix) if not name else validate_key(prefix + name)

    def url(self, key: str) -> str:
        """The object's location as ``s3://bucket/key``."""
        return f"s3://{self.bucket}/{key}"

    # -- bucket ------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (and is ours)."""
        try:
            self._requests.send("head_bucket")
            return
        except ObjectNotFound:
            pass
        params: dict[str, Any] = {}
        if self._region != "us-east-1":  # us-east-1 refuses its own name as a constraint
            params["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            self._requests.send("create_bucket", **params)
        except StorageRejected as exc:
            if exc.code != "BucketAlreadyOwnedByYou":  # a race with ourselves is fine
                raise
            return
        log.info("created bucket %s", self.bucket)

    # -- uploads -----------------------------------------------------------------

    def upload_file(
        self,
        path: str | os.PathLike[str],
        key: str,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> UploadResult:
        """Upload a file to ``key``, streaming it part by part.

        ``metadata`` becomes ``x-amz-meta-*`` (string values; non-ASCII ones
        are percent-encoded, and :meth:`head` decodes them). ``progress`` is
        called with the bytes sent so far after each part; if it raises, the
        upload is aborted and the exception propagates (a way to cancel).
        Each request is retried per ``self.retry``; a multipart upload that
        fails anyway is aborted.
        """
        key = validate_key(key)
        meta = encode_metadata(metadata or {})
        source = Path(path)
        tally = Tally()
        started = time.monotonic()
        try:
            f = source.open("rb")
        except OSError as exc:
            raise UploadSourceError(f"cannot read {source.name}: {exc}") from exc
        with f:
            size = os.fstat(f.fileno()).st_size
            if size < self.part_bytes:
                data = read_exact(f, size, source)
                result = self._put(key, data, content_type, meta, tally)
                if progress is not None:
                    progress(size)
            else:
                parts = Parts(f, size, source, max(self.part_bytes, -(-size // MAX_PARTS)))
                result = self._put_multipart(parts, key, content_type, meta, progress, tally)
        elapsed = time.monotonic() - started
        log.info("uploaded %s (%d bytes) in %.2fs", self.url(key), result.bytes, elapsed)
        return result

    def _put(
        self, key: str, data: bytes, content_type: str, meta: dict[str, str], tally: Tally
    ) -> UploadResult:
        put = self._requests.send(
            "put_object", key, tally=tally, Body=data, ContentType=content_type, Metadata=meta
        )
        digest = sha256_bytes(data)
        return UploadResult(self.bucket, key, len(data), put["ETag"], digest, tally.retries)

    def _put_multipart(
        self,
        parts: Parts,
        key: str,
        content_type: str,
        meta: dict[str, str],
        progress: Callable[[int], None] | None,
        tally: Tally,
    ) -> UploadResult:
        created = self._requests.send(
            "create_multipart_upload", key, tally=tally, ContentType=content_type, Metadata=meta
        )
        upload_id = created["UploadId"]
        try:
            done: list[dict[str, Any]] = []
            for number, chunk in parts:
                # Bytes, not a stream: a retried part is sent again from memory.
                sent = self._requests.send(
                    "upload_part",
                    key,
                    tally=tally,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                )
                done.append({"PartNumber": number, "ETag": sent["ETag"]})
                if progress is not None:
                    progress(parts.sent)
            etag = self._complete(key, upload_id, done, tally)
        except BaseException:
            # Any failure, cancellation included: an incomplete upload costs storage.
            if not self.abort_upload(key, upload_id):
                log.warning("upload %s of %s is left for cleanup: abort failed", upload_id, key)
            raise
        return UploadResult(
            self.bucket, key, parts.size, etag, parts.digest.hexdigest(), retries=tally.retries
        )

    def _complete(self, key: str, upload_id: str, parts: list[dict[str, Any]], tally: Tally) -> str:
        try:
            done = self._requests.send(
                "complete_multipart_upload",
                key,
                tally=tally,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            return str(done["ETag"])
        except ObjectNotFound:
            # A retried complete whose first try succeeded but whose answer was lost
            # finds no upload; an object with exactly our parts' ETag says it completed.
            if self.head(key)["etag"] != multipart_etag([p["ETag"] for p in parts]):
                raise
            return multipart_etag([p["ETag"] for p in parts])

    def abort_upload(self, key: str, upload_id: str) -> bool:
        """Abort one multipart upload; False if the store could not be reached.

        An upload already gone (completed or aborted) counts as aborted.
        """
        try:
            self._requests.send("abort_multipart_upload", key, UploadId=upload_id)
        except ObjectNotFound:
            return True  # already gone: completed or aborted
        except StorageError as exc:
            log.warning("abort of upload %s of %s failed: %s", upload_id, key, exc)
            return False
        log.info("aborted upload %s of %s", upload_id, key)
        return True

    def put_bytes(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> UploadResult:
        """Store a small object from memory in one PUT."""
        meta = encode_metadata(metadata or {})
        return self._put(validate_key(key), data, content_type, meta, Tally())

    # -- downloads and queries ---------------------------------------------------

    def download_file(self, key: str, path: str | os.PathLike[str]) -> int:
        """Stream an object to ``path`` (replaced atomically); returns the bytes written.

        The whole object is fetched each attempt: some servers answer ranged GETs
        with the whole object, so resuming from an offset is not safe.
        """
        key = validate_key(key)
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")

        def attempt() -> int:
            body = self._requests.once("get_object", key)["Body"]
            written = 0
            try:
                with tmp.open("wb") as out:
                    for chunk in body.iter_chunks(DOWNLOAD_CHUNK):
                        out.write(chunk)
                        written += len(chunk)
            except (BotoCoreError, ClientError) as exc:  # the stream broke mid-way
                raise classify(exc, f"get_object {self.url(key)}") from exc
            finally:
                body.close()
            os.replace(tmp, target)
            return written

        try:
            # One request, retried whole: its body is part of it (a stream can break mid-way).
            return self._requests.retrying("download", key, attempt)
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        """A small object's bytes, read into memory (marks, manifests: never audio)."""
        key = validate_key(key)

        def attempt() -> bytes:
            body = self._requests.once("get_object", key)["Body"]
            try:
                return bytes(body.read())
            except (BotoCoreError, ClientError) as exc:  # the stream broke mid-way
                raise classify(exc, f"get_object {self.url(key)}") from exc
            finally:
                body.close()

        return self._requests.retrying("download", key, attempt)

    def head(self, key: str) -> dict[str, Any]:
        """The object's ``bytes``, ``content_type``, ``etag``, ``metadata``, ``last_modified``."""
        got = self._requests.send("head_object", validate_key(key))
        return {
            "key": key,
            "bytes": int(got["ContentLength"]),
            "content_type": got.get("ContentType"),
            "etag": got.get("ETag"),
            "metadata": decode_metadata(got.get("Metadata") or {}),
            "last_modified": got.get("LastModified"),
        }

    def exists(self, key: str) -> bool:
        """True if ``key`` names an object."""
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def presign_get(self, key: str, expires: int | None = None, filename: str | None = None) -> str:
        """A URL anyone can GET for ``expires`` seconds (default from settings).

        With ``filename`` the download is served as an attachment of that name.
        The URL names ``public_endpoint_url`` if one was given.
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": validate_key(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        ttl = self.presign_expiry if expires is None else expires
        if not 1 <= ttl <= MAX_PRESIGN_SECONDS:
            raise ValueError("expires must be 1 s to 7 days (SigV4's limit)")
        try:
            url = self._presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl)
        except (BotoCoreError, ClientError) as exc:
            raise classify(exc, f"presign {self.url(key)}") from exc
        return str(url)
