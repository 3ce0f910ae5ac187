"""worker.storage.client against a real S3 API (moto over HTTP), with outages made by a TCP proxy.

Pure tests (keys, templates, metadata, error classification) need no
server; the rest talk to moto through boto3 exactly as production talks to S3.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

import worker.storage.client
import worker.storage.listing
from tests.s3 import SECRET_KEY, MotoS3, TcpProxy
from tests.worker.conftest import make_storage
from worker.retry import STORAGE_POLICY, RetryPolicy
from worker.settings import Settings
from worker.storage.client import (
    InvalidKey,
    ObjectNotFound,
    Storage,
    StorageRejected,
    StorageUnavailable,
    UploadSourceError,
)
from worker.storage.errors import classify
from worker.storage.model import decode_metadata, encode_metadata

MiB = 1 << 20
NOWHERE = "http://127.0.0.1:9"  # never contacted: for tests of pure key logic


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    """~11 MiB of random bytes: two full 5 MiB parts and a short last one."""
    path = tmp_path / "audio.bin"
    path.write_bytes(os.urandom(11 * MiB + 12345))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- round trips ----------------------------------------------------------------------


def test_multipart_round_trip(storage: Storage, big_file: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    meta = {"job-id": "job-1", "duration-s": "12.500", "title": "Été à 100%"}
    result = storage.upload_file(
        big_file, "acme/job-1.mp3", content_type="audio/mpeg", metadata=meta, progress=seen.append
    )

    size = big_file.stat().st_size
    assert (result.bucket, result.key, result.bytes) == (storage.bucket, "acme/job-1.mp3", size)
    assert result.etag.endswith('-3"')  # three parts: 5 + 5 + 1 MiB
    assert result.sha256 == sha256(big_file)
    assert seen == [5 * MiB, 10 * MiB, size]
    info = storage.head("acme/job-1.mp3")
    assert info["bytes"] == size
    assert info["content_type"] == "audio/mpeg"
    assert info["metadata"] == meta
    assert info["etag"] == result.etag
    assert storage.list_incomplete_uploads() == []

    out = tmp_path / "out" / "copy.mp3"
    out.parent.mkdir()
    out.write_bytes(b"stale")  # replaced whole, not appended to
    assert storage.download_file("acme/job-1.mp3", out) == size
    assert sha256(out) == result.sha256
    assert [p.name for p in out.parent.iterdir()] == ["copy.mp3"]  # no temp file left


def test_small_file_is_one_put(storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    path.write_bytes(b"RIFF" + os.urandom(1000))
    result = storage.upload_file(path, "t/short.wav", content_type="audio/wav")
    assert "-" not in result.etag  # a plain PUT's ETag is the MD5
    assert result.etag.strip('"') == hashlib.md5(path.read_bytes()).hexdigest()
    assert storage.head("t/short.wav")["content_type"] == "audio/wav"


def test_empty_file(storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "empty.pcm"
    path.touch()
    assert storage.upload_file(path, "t/empty.pcm", content_type="audio/L16").bytes == 0
    assert storage.head("t/empty.pcm")["bytes"] == 0


def test_huge_files_get_bigger_parts(
    storage: Storage, big_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # S3 allows 10,000 parts; with a limit of 2, 11 MiB must go as two 5.5 MiB parts.
    monkeypatch.setattr(worker.storage.client, "MAX_PARTS", 2)
    result = storage.upload_file(big_file, "t/two-parts.bin", content_type="audio/L16")
    assert result.etag.endswith('-2"')
    assert storage.head("t/two-parts.bin")["bytes"] == big_file.stat().st_size


def test_presigned_get_downloads_the_same_bytes(storage: Storage) -> None:
    data = os.urandom(200_000)
    storage.put_bytes("acme/j/out.opus", data, "audio/ogg")
    url = storage.presign_get("acme/j/out.opus", expires=60, filename="Chapitre 1 – Été.opus")
    assert "X-Amz-Expires=60" in url
    response = httpx.get(url)  # no credentials: the URL is the permission
    assert response.status_code == 200
    assert response.content == data
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Chapitre 1 _ Ete.opus"')
    assert "filename*=UTF-8''Chapitre%201%20%E2%80%93%20%C3%89t%C3%A9.opus" in disposition
    assert storage.presign_get("acme/j/out.opus").count("X-Amz-Expires=3600") == 1
    with pytest.raises(ValueError):
        storage.presign_get("acme/j/out.opus", expires=8 * 24 * 3600)


def signature_for_host(url: str, host: str) -> str:
    """The SigV4 signature a presigned GET ``url`` must carry when sent to ``host``.

    Computed here from the specification, not by botocore: the store checks
    the signature against the Host header it receives (moto checks none).
    """
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    params.pop("X-Amz-Signature")
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items())
    )
    canonical = "\n".join(["GET", parts.path, query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
    scope = params["X-Amz-Credential"].split("/", 1)[1]  # date/region/s3/aws4_request
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope, digest])
    key = f"AWS4{SECRET_KEY}".encode()
    for step in scope.split("/"):
        key = hmac.new(key, step.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def signature(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]


def test_presigned_urls_name_the_public_endpoint(s3_server: MotoS3, storage: Storage) -> None:
    # Under compose the workers reach the store as minio:9000 and browsers as
    # localhost:9000; here a proxy on another port stands for the public address.
    data = os.urandom(100_000)
    storage.put_bytes("acme/j/out.wav", data, "audio/wav")
    internal = urlsplit(s3_server.endpoint_url).netloc
    with TcpProxy("127.0.0.1", s3_server.port) as public:
        settings = Settings(
            s3_endpoint_url=s3_server.endpoint_url,
            s3_public_endpoint_url=public.url,
            s3_access_key_id="testing",
            s3_secret_access_key=SECRET_KEY,
            s3_bucket=storage.bucket,
            s3_path_style=True,
        )
        store = Storage.from_settings(settings)
        url = store.presign_get("acme/j/out.wav", expires=60)
        assert url.startswith(f"{public.url}/{storage.bucket}/acme/j/out.wav?")
        # Signed for the host it names, not for the one the workers use.
        assert signature(url) == signature_for_host(url, f"127.0.0.1:{public.port}")
        assert signature(url) != signature_for_host(url, internal)
        response = httpx.get(url)
        assert response.status_code == 200
        assert response.content == data
        assert public.accepted == 1  # through the public address
        # Requests other than presigning still go to the internal endpoint.
        assert store.head("acme/j/out.wav")["bytes"] == len(data)
        assert public.accepted == 1
        store.close()

    # Without a public endpoint, URLs name the endpoint requests go to, as before.
    plain = storage.presign_get("acme/j/out.wav", expires=60)
    assert plain.startswith(f"{s3_server.endpoint_url}/{storage.bucket}/acme/j/out.wav?")
    assert signature(plain) == signature_for_host(plain, internal)
    assert httpx.get(plain).content == data
    same = make_storage(
        s3_server.endpoint_url, bucket=storage.bucket, public_endpoint_url=s3_server.endpoint_url
    )
    assert same.presign_get("acme/j/out.wav").startswith(s3_server.endpoint_url)


def test_missing_objects(storage: Storage, tmp_path: Path) -> None:
    assert not storage.exists("nope/x")
    with pytest.raises(ObjectNotFound):
        storage.head("nope/x")
    with pytest.raises(ObjectNotFound):
        storage.download_file("nope/x", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    storage.delete("nope/x")  # deleting what is not there is fine


def test_ensure_bucket_is_idempotent(s3_server: MotoS3) -> None:
    store = make_storage(s3_server.endpoint_url)  # a bucket name nobody has used
    with pytest.raises(StorageRejected) as refused:
        store.put_bytes("acme/kept.txt", b"kept")
    assert refused.value.code == "NoSuchBucket"
    store.ensure_bucket()
    store.put_bytes("acme/kept.txt", b"kept")
    store.ensure_bucket()  # the bucket is there: not made again, nothing in it lost
    assert store.exists("acme/kept.txt")
    listed = store.client.list_buckets()["Buckets"]
    assert [b["Name"] for b in listed].count(store.bucket) == 1


def test_delete_prefix(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.storage.listing, "DELETE_BATCH", 2)  # exercise several batches
    prefix = storage.staging_key("job1", "")
    assert prefix == "_staging/job1/"
    for i in range(5):
        storage.put_bytes(storage.staging_key("job1", f"{i:06d}.pcm"), b"x" * i)
    storage.put_bytes(storage.staging_key("job10", "000000.pcm"), b"keep")  # a prefix sibling
    storage.put_bytes("acme/job1.wav", b"keep")

    assert storage.delete_prefix(prefix) == 5
    assert storage.delete_prefix(prefix) == 0
    assert not storage.exists("_staging/job1/000003.pcm")
    assert storage.exists("_staging/job10/000000.pcm")
    assert storage.exists("acme/job1.wav")
    for bad in ("", "/", "../x", "a//b/"):
        with pytest.raises(InvalidKey):
            storage.delete_prefix(bad)


# -- failures ---------------------------------------------------------------------------


def test_outage_during_upload_ends_in_success(
    s3_server: MotoS3, s3_proxy: TcpProxy, big_file: Path
) -> None:
    store = make_storage(s3_proxy.url)
    store.ensure_bucket()
    direct = make_storage(s3_server.endpoint_url, bucket=store.bucket)
    stopped = threading.Event()

    def outage() -> None:
        s3_proxy.stop()  # refuses new connections, resets the pooled one
        stopped.set()
        time.sleep(1.5)
        s3_proxy.start()

    outages: list[threading.Thread] = []

    def progress(sent: int) -> None:
        if not outages:  # after the first part: the outage hits the second
            outages.append(threading.Thread(target=outage))
            outages[0].start()
            assert stopped.wait(5)

    result = store.upload_file(
        big_file, "acme/outage.wav", content_type="audio/wav", progress=progress
    )
    outages[0].join()

    assert result.retries >= 1  # the part in flight was sent again...
    assert result.etag.endswith('-3"')  # ...and the upload went on: one upload of three parts
    assert result.sha256 == sha256(big_file)
    assert direct.head("acme/outage.wav")["bytes"] == big_file.stat().st_size
    assert direct.list_incomplete_uploads() == []


def test_outage_longer_than_the_retries_gives_up(s3_proxy: TcpProxy, tmp_path: Path) -> None:
    sleeps: list[float] = []
    store = make_storage(
        s3_proxy.url, retry=RetryPolicy(max_attempts=3, base_delay=0.1), sleep=sleeps.append
    )
    path = tmp_path / "a.wav"
    path.write_bytes(b"x" * 1000)
    s3_proxy.stop()
    with pytest.raises(StorageUnavailable, match="gave up after 3 attempts") as caught:
        store.upload_file(path, "acme/a.wav", content_type="audio/wav")
    assert caught.value.retryable
    assert len(sleeps) == 2


def test_one_request_attempt_fails_fast(s3_proxy: TcpProxy) -> None:
    # What the API and the launcher ask for: no retries, the first error as it is.
    sleeps: list[float] = []
    store = make_storage(s3_proxy.url, request_attempts=1, sleep=sleeps.append)
    assert store.retry.max_attempts == 1
    s3_proxy.stop()
    with pytest.raises(StorageUnavailable) as caught:
        store.head("acme/a.wav")
    assert "gave up" not in caught.value.message
    assert sleeps == []


def test_listings_follow_pages(storage: Storage) -> None:
    # S3 lists at most 1000 keys a page: 1003 objects take two listing requests.
    sent: list[str] = []
    storage.client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **kw: sent.append(kw["model"].name)
    )
    prefix = storage.staging_key("many", "")
    keys = [f"{prefix}{i:05d}" for i in range(1003)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: storage.put_bytes(key, b"x"), keys))
    assert storage.delete_prefix(prefix) == 1003
    assert len(sent) == 2
    assert storage.delete_prefix(prefix) == 0


def test_missing_bucket_is_permanent(s3_server: MotoS3, big_file: Path) -> None:
    sleeps: list[float] = []
    store = make_storage(s3_server.endpoint_url, sleep=sleeps.append)  # bucket never created
    with pytest.raises(StorageRejected) as caught:
        store.upload_file(big_file, "acme/x.wav", content_type="audio/wav")
    assert caught.value.code == "NoSuchBucket"
    assert not caught.value.retryable
    assert sleeps == []  # permanent: not retried
    store.ensure_bucket()
    assert store.list_incomplete_uploads() == []


def test_file_that_shrinks_mid_upload_is_aborted(storage: Storage, big_file: Path) -> None:
    def progress(sent: int) -> None:
        if sent == 5 * MiB:
            os.truncate(big_file, 7 * MiB)  # the second part will come up short

    with pytest.raises(UploadSourceError, match="shrank"):
        storage.upload_file(big_file, "acme/short.wav", content_type="audio/wav", progress=progress)
    assert storage.list_incomplete_uploads() == []
    assert not storage.exists("acme/short.wav")


def test_missing_file(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(UploadSourceError):
        storage.upload_file(tmp_path / "gone.wav", "acme/gone.wav", content_type="audio/wav")


def test_cancel_from_progress_aborts(storage: Storage, big_file: Path) -> None:
    class Canceled(Exception):
        pass

    def progress(sent: int) -> None:
        raise Canceled

    with pytest.raises(Canceled):
        storage.upload_file(big_file, "acme/c.wav", content_type="audio/wav", progress=progress)
    assert storage.list_incomplete_uploads() == []


# -- checksums and configuration ----------------------------------------------------


def _record_headers(store: Storage) -> list[dict[str, str]]:
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append({k.lower(): v for k, v in request.headers.items()})

    store.client.meta.events.register("before-send.s3", record)
    return sent


def _checksum_headers(headers: dict[str, str]) -> set[str]:
    return {k for k in headers if k.startswith(("x-amz-checksum", "x-amz-sdk-checksum"))}


@pytest.mark.parametrize("when_required", [True, False])
def test_checksum_modes(
    s3_server: MotoS3, big_file: Path, tmp_path: Path, when_required: bool
) -> None:
    store = make_storage(s3_server.endpoint_url, checksum_when_required=when_required)
    store.ensure_bucket()
    sent = _record_headers(store)
    result = store.upload_file(big_file, "acme/c.flac", content_type="audio/flac")
    store.put_bytes("acme/small", b"abc")
    uploads = [h for h in sent if _checksum_headers(h)]
    if when_required:
        assert uploads == []  # servers that reject boto3's checksums never see them
    else:
        assert uploads  # boto3's default: CRC checksums on every upload
    out = tmp_path / "c.flac"
    store.download_file("acme/c.flac", out)
    assert sha256(out) == result.sha256
    assert store.delete_prefix("acme/") == 2  # DeleteObjects requires a checksum: still works


def test_from_settings(s3_server: MotoS3) -> None:
    settings = Settings(
        s3_endpoint_url=s3_server.endpoint_url,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        s3_bucket="from-settings",
        s3_path_style=True,
        s3_checksum_when_required=True,
        s3_key_template="{tenant}/{date}/{job_id}.{ext}",
        s3_multipart_chunk_bytes=6 * MiB,
        presign_expiry_seconds=120,
    )
    store = Storage.from_settings(settings)
    config = store.client.meta.config
    assert config.s3["addressing_style"] == "path"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.retries["mode"] == "standard"
    assert config.retries["total_max_attempts"] == 1  # one retry layer: ours
    assert store.retry == STORAGE_POLICY
    assert (store.bucket, store.part_bytes, store.presign_expiry) == ("from-settings", 6 * MiB, 120)
    store.ensure_bucket()
    store.put_bytes("a/b", b"hello")
    assert store.head("a/b")["bytes"] == 5
    assert store.url("a/b") == "s3://from-settings/a/b"


# -- keys (no server) -----------------------------------------------------------------


def test_output_key_rendering() -> None:
    store = make_storage(NOWHERE, key_template="{tenant}/{date}/{job_id}.{ext}")
    key = store.output_key({"tenant": "acme", "job_id": "j1", "ext": "m4b", "date": "2025-01-02"})
    assert key == "acme/2025-01-02/j1.m4b"
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert store.output_key({"tenant": "acme", "job_id": "j1", "ext": "mp3"}) == (
        f"acme/{today}/j1.mp3"
    )
    default = make_storage(NOWHERE)
    assert default.output_key({"tenant": "t", "job_id": "j", "ext": "wav"}) == "t/j.wav"


@pytest.mark.parametrize(
    "template",
    [
        "/{tenant}/{job_id}.{ext}",  # leading slash
        "../{job_id}.{ext}",  # escapes upwards
        "{tenant}/../{job_id}",
        "{tenant}//{job_id}",  # empty segment
        "{tenant}/./{job_id}",
        "{tenant}/x.{ext}",  # no job id: jobs would overwrite each other
        "{tenant}/{job_id}.{format}",  # unknown field
        "{tenant.__class__}/{job_id}",  # attribute access
        "{tenant[0]}/{job_id}",  # indexing
        "{tenant!r}/{job_id}",  # conversion
        "{tenant:>20}/{job_id}",  # format spec
        "{tenant}/{job_id",  # unbalanced brace
        "{tenant}\\{job_id}",  # backslash
        "{job_id}/",  # a folder, not an object
    ],
)
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(InvalidKey):
        make_storage(NOWHERE, key_template=template)


@pytest.mark.parametrize(
    "values",
    [
        {"tenant": "..", "job_id": "j", "ext": "wav"},
        {"tenant": "a/b", "job_id": "j", "ext": "wav"},
        {"tenant": "", "job_id": "j", "ext": "wav"},
        {"tenant": "t", "job_id": "j\n", "ext": "wav"},
        {"tenant": "t", "ext": "wav"},  # missing job id
    ],
)
def test_bad_values_are_refused(values: dict[str, str]) -> None:
    with pytest.raises(InvalidKey):
        make_storage(NOWHERE).output_key(values)


def test_keys() -> None:
    store = make_storage(NOWHERE, staging_prefix="/tmp-area/")
    assert store.staging_key("j1", "000001.pcm") == "tmp-area/j1/000001.pcm"
    assert store.staging_key("j1", "") == "tmp-area/j1/"
    for job_id in ("", "..", "a/b"):
        with pytest.raises(InvalidKey):
            store.staging_key(job_id, "x")
    for key in ("", "/abs", "a/../b", "a/./b", "a//b", "dir/", "x" * 1025, "a\x00b"):
        with pytest.raises(InvalidKey):
            store.delete(key)  # refused before any request is made
    assert store.url("a/b.wav") == f"s3://{store.bucket}/a/b.wav"
    with pytest.raises(ValueError):
        make_storage(NOWHERE, part_bytes=1 * MiB)  # below S3's minimum part


def test_metadata_encoding() -> None:
    meta = {"Job-Id": "j1", "title": "Ça 100% «x»", "plain": "a b"}
    encoded = encode_metadata(meta)
    assert encoded["job-id"] == "j1"
    assert encoded["plain"] == "a b"
    assert encoded["title"].isascii()
    assert decode_metadata(encoded) == {"job-id": "j1", "title": "Ça 100% «x»", "plain": "a b"}
    with pytest.raises(TypeError):
        encode_metadata({"n": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        encode_metadata({"bad name": "x"})


# -- errors and backoff (pure) --------------------------------------------------------


def _client_error(code: str, status: int) -> ClientError:
    body = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(body, "PutObject")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_client_error("SlowDown", 503), StorageUnavailable),
        (_client_error("InternalError", 500), StorageUnavailable),
        (_client_error("Whatever", 502), StorageUnavailable),
        (_client_error("TooManyRequests", 429), StorageUnavailable),
        (_client_error("RequestTimeout", 400), StorageUnavailable),
        (_client_error("AccessDenied", 403), StorageRejected),
        (_client_error("InvalidAccessKeyId", 403), StorageRejected),
        (_client_error("NoSuchBucket", 404), StorageRejected),
        (_client_error("NoSuchKey", 404), ObjectNotFound),
        (_client_error("404", 404), ObjectNotFound),
        (_client_error("NoSuchUpload", 404), ObjectNotFound),
        (EndpointConnectionError(endpoint_url="http://x"), StorageUnavailable),
        (ReadTimeoutError(endpoint_url="http://x"), StorageUnavailable),
        (NoCredentialsError(), StorageRejected),
    ],
)
def test_error_classification(exc: Exception, kind: type[Exception]) -> None:
    error = classify(exc, "put_object s3://b/k")
    assert type(error) is kind
    assert error.retryable is (kind is StorageUnavailable)
    assert "s3://b/k" in str(error)
