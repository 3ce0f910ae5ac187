"""Pure parts of batches: derived status, the duration check, priorities, masters; and the
batch store's atomic updates and run-once flags against a real Redis."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis

from worker.batches.lifecycle import BATCH_PRIORITY_OFFSET, governor_priority, split_master
from worker.batches.model import (
    AssemblyState,
    Batch,
    BatchItem,
    BatchStatus,
    BookInfo,
    ChapterMaster,
    MasterPiece,
    derive_status,
    new_batch_id,
)
from worker.batches.store import BatchExists, BatchNotFound, BatchStore
from worker.jobs.model import Billing, Job, JobRequest, JobStatus, new_job_id
from worker.jobs.truncation import (
    SPOKEN_PER_SECOND,
    AudioTruncated,
    check_duration,
    expected_seconds,
    spoken_chars,
)
from worker.keys import Keys

Q, R, S, F, C = (
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELED,
)


def batch(n: int = 3, **update: object) -> Batch:
    made = Batch(
        id=new_batch_id(),
        tenant="t",
        items=[
            BatchItem(job_id=new_job_id(), title=f"c{i}", chars=10, utf8_bytes=10) for i in range(n)
        ],
        book=BookInfo(title="B"),
        billing=Billing(utf8_bytes=30, estimated_cost_usd=0.0),
    )
    return made.model_copy(update=update)


def built(state: AssemblyState) -> Batch:
    b = batch()
    return b.model_copy(update={"assembly": b.assembly.model_copy(update={"state": state})})


@pytest.mark.parametrize(
    ("statuses", "state", "expected"),
    [
        ([Q, Q, Q], AssemblyState.WAITING, BatchStatus.QUEUED),
        ([S, Q, Q], AssemblyState.WAITING, BatchStatus.RUNNING),
        ([R, Q, Q], AssemblyState.WAITING, BatchStatus.RUNNING),
        ([S, F, R], AssemblyState.WAITING, BatchStatus.RUNNING),
        ([S, S, S], AssemblyState.PENDING, BatchStatus.RUNNING),  # the book is being built
        ([S, S, S], AssemblyState.BUILDING, BatchStatus.RUNNING),
        ([S, S, S], AssemblyState.DONE, BatchStatus.SUCCEEDED),
        ([S, S, S], AssemblyState.FAILED, BatchStatus.FAILED),
        ([S, F, S], AssemblyState.SKIPPED, BatchStatus.PARTIALLY_FAILED),
        ([S, C, S], AssemblyState.SKIPPED, BatchStatus.PARTIALLY_FAILED),
        ([F, F, C], AssemblyState.SKIPPED, BatchStatus.FAILED),
        ([C, C, C], AssemblyState.SKIPPED, BatchStatus.CANCELED),
        ([S, None, S], AssemblyState.WAITING, BatchStatus.PARTIALLY_FAILED),  # a record expired
    ],
)
def test_status_is_derived_from_the_items(
    statuses: list[JobStatus | None], state: AssemblyState, expected: BatchStatus
) -> None:
    assert derive_status(built(state), statuses) is expected


def test_a_canceled_batch_is_canceled_whatever_its_items() -> None:
    b = batch(canceled_at=1.0)
    assert derive_status(b, [S, R, Q]) is BatchStatus.CANCELED
    assert BatchStatus.CANCELED.terminal and not BatchStatus.RUNNING.terminal


def test_expected_seconds_and_the_floor() -> None:
    text = "word " * 40  # 160 letters, 200 characters
    assert spoken_chars(text) == 160
    assert expected_seconds(text) == pytest.approx(160 / SPOKEN_PER_SECOND)
    assert expected_seconds(text, speed=2.0) == pytest.approx(80 / SPOKEN_PER_SECOND)
    with pytest.raises(ValueError):
        expected_seconds(text, speed=0)
    full = expected_seconds(text)
    check_duration(full, text)  # as expected
    check_duration(0.36 * full, text)  # fast, but plausible
    with pytest.raises(AudioTruncated, match=r"segment 4 is 4\.00 s long for 200 characters"):
        check_duration(4.0, text, what="segment 4")
    check_duration(0.36 * full / 2, text, speed=2.0)
    check_duration(0.0, "Hi there, you.")  # too short a text to judge
    check_duration(0.0, "* * * " * 20 + "\n---\n")  # nothing to say: nothing expected
    check_duration(30.0, "海" * 200)  # slower scripts only make it lenient
    assert AudioTruncated("x").retryable  # retried like a dropped session


def test_batch_jobs_wait_behind_narration_jobs_for_slots() -> None:
    def job(priority: int, batch_id: str | None) -> Job:
        return Job(
            id=new_job_id(),
            tenant="t",
            request=JobRequest(text="x", priority=priority),
            billing=Billing(utf8_bytes=1, estimated_cost_usd=0),
            batch_id=batch_id,
        )

    assert governor_priority(job(0, None)) == 0
    assert governor_priority(job(9, "bat_x")) == 9 - BATCH_PRIORITY_OFFSET
    assert governor_priority(job(9, "bat_x")) < governor_priority(job(0, None))


def test_a_master_splits_back_into_its_segments(tmp_path: Path) -> None:
    pieces = [b"\x01\x00" * 100, b"\x02\x00" * 50, b"\x03\x00" * 7]
    source = tmp_path / "master.pcm"
    source.write_bytes(b"".join(pieces))
    master = ChapterMaster(
        job_id="job_1",
        key="k",
        bytes=source.stat().st_size,
        sha256="",
        pieces=[
            MasterPiece(bytes=200, sample_rate=16000, silence_after_ms=300),
            MasterPiece(bytes=100, sample_rate=16000),
            MasterPiece(bytes=14, sample_rate=24000),
        ],
    )
    parts = split_master(master, source, tmp_path / "parts")
    assert [p.path.read_bytes() for p in parts] == pieces
    assert [(p.sample_rate, p.silence_after_ms) for p in parts] == [
        (16000, 300),
        (16000, 0),
        (24000, 0),
    ]
    assert master.duration_s == pytest.approx(100 / 16000 + 0.3 + 50 / 16000 + 7 / 24000)
    source.write_bytes(b"".join(pieces) + b"\0\0")
    with pytest.raises(ValueError, match="longer"):
        split_master(master, source, tmp_path / "again")


def test_store_updates_are_atomic_and_flags_fire_once(
    redis_client: redis.Redis, keys: Keys
) -> None:
    store = BatchStore(redis_client, keys, ttl_seconds=60)
    b = store.create(batch())
    with pytest.raises(BatchExists):
        store.create(b)
    assert store.get_for_tenant(b.id, "other") is None

    def bump(x: Batch) -> Batch:
        a = x.assembly
        return x.model_copy(
            update={"assembly": a.model_copy(update={"generation": a.generation + 1})}
        )

    threads = [
        threading.Thread(target=lambda: [store.update(b.id, bump) for _ in range(10)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    now = store.get(b.id)
    assert now is not None and now.assembly.generation == 41  # no update lost
    assert store.update(b.id, lambda x: None) is None
    assert redis_client.ttl(keys.batch(b.id)) == -1  # unfinished: kept
    store.update(b.id, lambda x: x.model_copy(update={"finished_at": 1.0}))
    assert 0 < int(redis_client.ttl(keys.batch(b.id))) <= 60  # type: ignore[arg-type]
    with pytest.raises(BatchNotFound):
        store.update("bat_missing", bump)

    assert store.claim_finalize(b.id, "1") and not store.claim_finalize(b.id, "1")
    assert store.claim_finalize(b.id, "1-canceled")
    store.release_finalize(b.id, "1")
    assert store.claim_finalize(b.id, "1")
    assert store.claim_item_event("job_a") and not store.claim_item_event("job_a")
    assert store.acquire_assembly(b.id, "me", 5) and not store.acquire_assembly(b.id, "you", 5)
    assert store.renew_assembly(b.id, "me", 5) and not store.renew_assembly(b.id, "you", 5)
    store.release_assembly(b.id, "you")
    assert store.assembly_held(b.id)
    store.release_assembly(b.id, "me")
    assert not store.assembly_held(b.id)

    store.schedule_staging_cleanup(b.id, at=100.0)
    assert store.due_staging_cleanups(now=50.0) == []
    assert store.due_staging_cleanups(now=150.0) == [b.id]
    assert store.due_staging_cleanups(now=150.0) == []  # handed out once
