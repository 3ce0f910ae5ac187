"""The sweep of incomplete uploads (worker.storage.sweep): what a failed abort left is aborted.

The end-to-end test breaks a real upload and its abort with the TCP proxy in
front of moto, brings the store back, and watches a real worker's reaper
abort it and count it in ``/metrics``.  The others pin down which uploads are
shoal's, how old is old enough, and that one worker sweeps per period.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from tests.api.server import ApiServer
from tests.s3 import MotoS3, TcpProxy
from tests.servers import LocalTTS
from tests.stack import Stacks
from tests.worker.conftest import make_storage
from worker.batches.model import new_batch_id
from worker.jobs.model import new_job_id
from worker.keys import Keys
from worker.retry import RetryPolicy
from worker.settings import Settings, TenantConfig
from worker.storage.client import Storage, StorageUnavailable
from worker.storage.sweep import (
    claim_sweep,
    is_stale,
    sweep_incomplete_uploads,
    sweep_period,
    upload_scopes,
)

MiB = 1 << 20
DAY = 24 * 3600


def covered(key: str, template: str = "{tenant}/{job_id}.{ext}", staging: str = "_staging") -> bool:
    return any(s.covers(key) for s in upload_scopes(template, staging, ["acme"]))


# -- which uploads are shoal's, and when they are old (pure) ------------------------------


def test_only_shoals_own_keys_are_in_scope() -> None:
    job, batch = new_job_id(), new_batch_id()
    ours = [
        f"_staging/{job}/000003.pcm",  # a segment checkpoint
        f"_staging/{batch}/masters/{job}.pcm",  # a chapter master
        f"t1/{job}.mp3",  # the key template's output, for any tenant
        "acme/my/own/key.wav",  # a configured tenant's custom output key
        f"acme/{batch}/v2/book.m4b",
    ]
    theirs = [
        "other-app/big.bin",
        "_staging-old/x.bin",  # a sibling of the staging prefix
        "_stagingx",
        "t1/notes.txt",  # not a configured tenant, not the template's shape
        f"t1/sub/{job}.mp3",
        f"{job}.mp3",
        "acmeX/a.wav",
    ]
    assert [k for k in ours if not covered(k)] == []
    assert [k for k in theirs if covered(k)] == []

    # A template with a fixed head is listed under it; one without, matched key by key.
    dated = "audio/{date}/{tenant}/{job_id}.{ext}"
    assert upload_scopes(dated, "_staging", [])[-1].prefix == "audio/"
    assert covered(f"audio/2025-01-02/t1/{job}.opus", dated)
    assert not covered("audio/readme.txt", dated)
    assert covered(f"2025-01-02/{job}.wav", "{date}/{job_id}.{ext}")
    assert not covered("2025-01-02/report.pdf", "{date}/{job_id}.{ext}")
    # Without a staging prefix, staging keys start with their job's or batch's id.
    assert covered(f"{job}/000001.pcm", staging="")
    assert covered(f"{batch}/cover", staging="")
    assert not covered("photos/cat.jpg", staging="")


def test_an_upload_is_stale_when_both_dates_say_so() -> None:
    now = 1_000_000.0
    old = datetime.fromtimestamp(now - DAY - 1, UTC)
    young = datetime.fromtimestamp(now - 60, UTC)
    assert is_stale(old, now - DAY, now, DAY)
    assert is_stale(None, now - DAY, now, DAY)  # the store gave no date: shoal's own counts
    assert not is_stale(old, now - 60, now, DAY)  # first seen a minute ago
    assert not is_stale(young, now - DAY, now, DAY)  # the store says it started a minute ago


def test_sweep_period() -> None:
    assert sweep_period(DAY) == 3600  # hourly with the default age
    assert sweep_period(2) == 1


# -- the sweep on moto and Redis -------------------------------------------------------


def start_upload(storage: Storage, key: str) -> str:
    """Begin a multipart upload of ``key`` and leave it incomplete; returns its id."""
    upload_id = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)["UploadId"]
    storage.client.upload_part(
        Bucket=storage.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1000
    )
    return str(upload_id)


def incomplete(storage: Storage) -> set[str]:
    return {u.key for u in storage.list_incomplete_uploads()}


def test_sweep_aborts_only_stale_uploads_of_shoal(
    storage: Storage, redis_client: redis.Redis, keys: Keys
) -> None:
    age = 600
    tenant = TenantConfig(id="acme", key_sha256=["0" * 64])
    settings = Settings(tenants=[tenant], s3_incomplete_upload_max_age_seconds=age)
    job = new_job_id()
    old = {f"_staging/{job}/000000.pcm", f"t1/{job}.wav", "acme/custom/chapter.m4b"}
    foreign = {"other-app/big.bin", "_staging-old/x.bin", "t1/notes.txt"}
    for key in old | foreign:
        start_upload(storage, key)

    def sweep(now: float) -> int:
        return sweep_incomplete_uploads(storage, redis_client, keys, settings, now=now)

    # moto dates every upload in 2010: only shoal's own first sighting holds them back.
    t0 = time.time()
    assert sweep(t0) == 0
    assert incomplete(storage) == old | foreign
    young = f"_staging/{new_job_id()}/000000.pcm"
    start_upload(storage, young)
    assert sweep(t0 + age - 1) == 0

    assert sweep(t0 + age) == 3
    assert incomplete(storage) == foreign | {young}
    assert redis_client.get(keys.uploads_swept()) == b"3"
    # What is gone is forgotten; the young upload is remembered from when it was first seen.
    assert redis_client.hkeys(keys.uploads_seen()) == [
        u.upload_id.encode() for u in storage.list_incomplete_uploads() if u.key == young
    ]

    assert sweep(t0 + 2 * age - 2) == 0  # young: first seen at t0 + age - 1
    assert sweep(t0 + 2 * age - 1) == 1
    assert incomplete(storage) == foreign
    assert redis_client.get(keys.uploads_swept()) == b"4"


def test_one_sweeper_per_period(redis_client: redis.Redis, keys: Keys) -> None:
    settings = Settings(s3_incomplete_upload_max_age_seconds=2)  # a sweep every second
    assert claim_sweep(redis_client, keys, settings)
    assert not claim_sweep(redis_client, keys, settings)  # another worker, same period
    time.sleep(sweep_period(2) + 0.1)
    assert claim_sweep(redis_client, keys, settings)


# -- end to end: a real upload, a real outage, a real worker -----------------------------


def scrape(api: ApiServer) -> dict[str, float]:
    with api.client() as http:
        text = http.get("/metrics").text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_an_upload_whose_abort_failed_is_swept_by_the_workers_reaper(
    make_stack: Stacks,
    tone_tts: LocalTTS,
    s3_server: MotoS3,
    s3_proxy: TcpProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stack = make_stack(
        tone_tts, s3_endpoint=s3_proxy.url, SHOAL_S3_INCOMPLETE_UPLOAD_MAX_AGE_SECONDS="2"
    )
    quick = RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.05)
    uploader = Storage.from_settings(stack.settings, retry=quick, part_bytes=5 * MiB)
    direct = make_storage(s3_server.endpoint_url, bucket=stack.storage.bucket)
    path = tmp_path / "audio.bin"
    path.write_bytes(os.urandom(11 * MiB))
    job = new_job_id()
    ours = {
        uploader.output_key({"tenant": "t1", "job_id": job, "ext": "wav"}),
        uploader.staging_key(job, "000000.pcm"),
    }

    def store_goes_down(sent: int) -> None:
        s3_proxy.stop()  # after the first part: the next part and the abort both fail

    caplog.set_level(logging.WARNING, logger="worker.storage.client")
    for key in sorted(ours):
        s3_proxy.start()
        with pytest.raises(StorageUnavailable):
            uploader.upload_file(path, key, content_type="audio/wav", progress=store_goes_down)
    assert caplog.text.count("left for cleanup: abort failed") == 2
    foreign = {"other-app/big.bin", "_staging-old/x.bin"}
    for key in foreign:
        start_upload(direct, key)
    s3_proxy.start()  # the store is back; nothing has cleaned up
    assert incomplete(direct) == ours | foreign

    stack.start_worker()
    deadline = time.monotonic() + 30
    while incomplete(direct) != foreign and time.monotonic() < deadline:
        time.sleep(0.2)
    assert incomplete(direct) == foreign, stack.logs()
    assert stack.redis.get(stack.keys.uploads_swept()) == b"2"
    assert "aborted upload" in stack.logs()
    with ApiServer(stack.settings) as api:
        assert scrape(api)["shoal_incomplete_uploads_swept_total"] == 2
    uploader.close()
    direct.close()
