"""The job store against a real Redis: records, forward-only transitions, listing, leases."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from worker.jobs.model import (
    Job,
    JobError,
    JobRequest,
    JobStatus,
    Output,
    Progress,
    ReferenceClip,
    estimate_billing,
    new_job_id,
)
from worker.jobs.store import (
    DueReason,
    InvalidCursor,
    JobExists,
    JobStore,
    MessageStanding,
)
from worker.keys import Keys

TTL = 3600


@pytest.fixture
def store(redis_client: redis.Redis, keys: Keys) -> JobStore:
    return JobStore(redis_client, keys, ttl_seconds=TTL)


def make_job(
    tenant: str = "acme",
    text: str = "Hello there.",
    batch_id: str | None = None,
    created_at: float | None = None,
    **request: object,
) -> Job:
    return Job(
        id=new_job_id(),
        tenant=tenant,
        request=JobRequest(text=text, **request),  # type: ignore[arg-type]
        billing=estimate_billing(text, 15.0),
        batch_id=batch_id,
        metadata={"chapter": 3, "tags": ["a"]},
        created_at=created_at if created_at is not None else time.time(),
    )


def sample_output() -> Output:
    return Output(
        url="s3://b/k.mp3",
        bucket="b",
        key="k.mp3",
        bytes=123,
        duration_s=1.5,
        format="mp3",
        sample_rate=44100,
        content_type="audio/mpeg",
        sha256="0" * 64,
    )


# -- records -----------------------------------------------------------------------


def test_create_and_get_round_trip(store: JobStore) -> None:
    job = make_job(references=[ReferenceClip(audio=b"\xff\x00RIFF\x81", text="ref")])
    store.create(job)
    assert store.get(job.id) == job
    assert store.get("job_missing") is None


def test_create_refuses_an_existing_id(store: JobStore) -> None:
    job = store.create(make_job())
    with pytest.raises(JobExists):
        store.create(job)


def test_get_for_tenant_hides_other_tenants_jobs(store: JobStore) -> None:
    job = store.create(make_job(tenant="acme"))
    assert store.get_for_tenant(job.id, "acme") == job
    assert store.get_for_tenant(job.id, "globex") is None
    assert store.get_for_tenant("job_missing", "acme") is None


def test_works_with_decoded_responses(
    redis_url: str, keys: Keys, redis_client: redis.Redis
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, keys, TTL)
    job = store.create(make_job(batch_id="b1"))
    assert store.transition(job.id, JobStatus.RUNNING)
    store.save_segment(job.id, 0, {"bytes": 1})
    assert store.get(job.id).status is JobStatus.RUNNING  # type: ignore[union-attr]
    assert store.list(tenant="acme")[0][0].id == job.id
    assert store.segments(job.id) == {0: {"bytes": 1}}
    client.close()


# -- transitions -------------------------------------------------------------------


def test_transitions_only_move_forward(store: JobStore) -> None:
    job = store.create(make_job())
    assert store.transition(job.id, JobStatus.RUNNING)
    assert not store.transition(job.id, JobStatus.RUNNING)
    assert not store.transition(job.id, JobStatus.QUEUED)
    assert store.transition(job.id, JobStatus.SUCCEEDED, output=sample_output())
    for status in (JobStatus.FAILED, JobStatus.CANCELED, JobStatus.RUNNING):
        assert not store.transition(job.id, status)
    stored = store.get(job.id)
    assert stored is not None
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.output == sample_output()
    assert not store.transition("job_missing", JobStatus.RUNNING)


def test_transition_sets_timestamps_and_error(store: JobStore) -> None:
    job = store.create(make_job())
    store.transition(job.id, JobStatus.RUNNING)
    running = store.get(job.id)
    assert running is not None and running.started_at is not None
    assert running.finished_at is None
    error = JobError(code="provider_unavailable", message="gave up after 5 attempts: 503")
    store.transition(job.id, JobStatus.FAILED, error=error)
    failed = store.get(job.id)
    assert failed is not None
    assert failed.error == error
    assert failed.finished_at is not None and failed.finished_at >= failed.started_at  # type: ignore[operator]
    assert failed.updated_at == failed.finished_at


def test_queued_job_can_be_canceled_directly(store: JobStore) -> None:
    job = store.create(make_job())
    assert store.transition(job.id, JobStatus.CANCELED)
    stored = store.get(job.id)
    assert stored is not None and stored.started_at is None and stored.finished_at is not None


def test_success_clears_an_earlier_attempts_error(store: JobStore) -> None:
    job = store.create(make_job())
    store.transition(job.id, JobStatus.RUNNING)
    store.record_error(job.id, JobError(code="provider_unavailable", message="429", retryable=True))
    assert store.get(job.id).error is not None  # type: ignore[union-attr]
    store.transition(job.id, JobStatus.SUCCEEDED, output=sample_output())
    assert store.get(job.id).error is None  # type: ignore[union-attr]


def race(
    store: JobStore,
    job_id: str,
    target: JobStatus,
    barrier: threading.Barrier,
    wins: list[JobStatus],
) -> None:
    """Start together with the other threads, then try to move the job to ``target``."""
    barrier.wait()
    if store.transition(job_id, target):
        wins.append(target)


def test_concurrent_transitions_one_terminal_state_wins(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    terminals = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED]
    for _ in range(5):
        job = store.create(make_job())
        store.transition(job.id, JobStatus.RUNNING)
        barrier = threading.Barrier(12)
        wins: list[JobStatus] = []
        threads = [
            threading.Thread(target=race, args=(store, job.id, terminals[i % 3], barrier, wins))
            for i in range(12)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 1
        assert store.get(job.id).status is wins[0]  # type: ignore[union-attr]
        # The status indexes agree with the record: exactly one holds the job.
        holding = [
            s for s in JobStatus if redis_client.zscore(keys.jobs_by_status(s), job.id) is not None
        ]
        assert holding == [wins[0]]


def test_terminal_status_applies_retention_ttl(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    job = store.create(make_job())
    store.transition(job.id, JobStatus.RUNNING)
    store.save_segment(job.id, 0, {"path": "x"})
    assert redis_client.ttl(keys.job(job.id)) == -1
    assert redis_client.ttl(keys.job_segments(job.id)) == -1
    store.transition(job.id, JobStatus.SUCCEEDED, output=sample_output())
    assert 0 < redis_client.ttl(keys.job(job.id)) <= TTL
    assert 0 < redis_client.ttl(keys.job_segments(job.id)) <= TTL
    # Later updates keep the TTL rather than making the record permanent.
    store.set_progress(job.id, Progress(segments_done=1, segments_total=1))
    store.save_segment(job.id, 1, {"path": "y"})
    assert 0 < redis_client.ttl(keys.job(job.id)) <= TTL
    assert 0 < redis_client.ttl(keys.job_segments(job.id)) <= TTL


def test_updates_never_recreate_an_expired_record(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    job = store.create(make_job())
    redis_client.delete(keys.job(job.id))  # as if the retention TTL ran out
    assert not store.set_progress(job.id, Progress(segments_done=1))
    assert not store.record_error(job.id, JobError(code="x", message="y"))
    assert not store.save_segment(job.id, 0, {})
    assert store.start_attempt(job.id, max_attempts=5).attempt is None
    assert not redis_client.exists(keys.job(job.id), keys.job_segments(job.id))


def test_start_attempt_counts_moves_and_refuses(store: JobStore) -> None:
    job = store.create(make_job())
    first = store.start_attempt(job.id, max_attempts=3)
    assert (first.status, first.attempt, first.moved) == (JobStatus.RUNNING, 1, True)
    stored = store.get(job.id)
    assert stored is not None and stored.started_at is not None and stored.attempts == 1
    assert store.list(status=JobStatus.RUNNING)[0][0].id == job.id
    # A retry: the job already runs; the attempt is counted, the status stays.
    again = store.start_attempt(job.id, max_attempts=3)
    assert (again.status, again.attempt, again.moved) == (JobStatus.RUNNING, 2, False)
    assert store.start_attempt(job.id, max_attempts=3).attempt == 3
    spent = store.start_attempt(job.id, max_attempts=3)
    assert spent.out_of_attempts and spent.attempt is None
    assert store.get(job.id).attempts == 3  # type: ignore[union-attr]
    # Ended, or gone: nothing is counted.
    assert store.transition(job.id, JobStatus.CANCELED)
    ended = store.start_attempt(job.id, max_attempts=9)
    assert (ended.status, ended.attempt, ended.out_of_attempts) == (JobStatus.CANCELED, None, False)
    assert store.get(job.id).attempts == 3  # type: ignore[union-attr]
    gone = store.start_attempt("job_missing", max_attempts=3)
    assert (gone.status, gone.attempt) == (None, None)


def test_attempts_progress_and_errors(store: JobStore) -> None:
    job = store.create(make_job())
    assert [store.start_attempt(job.id, max_attempts=5).attempt for _ in range(3)] == [1, 2, 3]
    progress = Progress(
        segments_done=2, segments_total=5, chars_done=10, chars_total=40, audio_seconds=1.25
    )
    assert store.set_progress(job.id, progress)
    error = JobError(code="provider_unavailable", message="429 busy", retryable=True)
    assert store.record_error(job.id, error)
    stored = store.get(job.id)
    assert stored is not None
    assert (stored.attempts, stored.progress, stored.error) == (3, progress, error)
    assert stored.status is JobStatus.RUNNING  # its first attempt started it


def test_events_are_published(store: JobStore, redis_client: redis.Redis, keys: Keys) -> None:
    job = store.create(make_job())
    pubsub = redis_client.pubsub()
    pubsub.subscribe(keys.job_events(job.id))
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    store.transition(job.id, JobStatus.RUNNING)
    store.set_progress(job.id, Progress(segments_done=1, segments_total=2))
    store.transition(job.id, JobStatus.SUCCEEDED, output=sample_output())
    events = []
    while len(events) < 3:
        message = pubsub.get_message(timeout=2)
        assert message is not None, events
        events.append(json.loads(message["data"]))
    pubsub.close()
    assert [e["type"] for e in events] == ["status", "progress", "status"]
    assert [e.get("status") for e in events] == ["running", None, "succeeded"]
    assert events[1]["progress"]["segments_done"] == 1
    assert events[2]["output"]["key"] == "k.mp3"
    assert all(e["job_id"] == job.id for e in events)


def test_delete_removes_record_and_index_entries(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    job = store.create(make_job(batch_id="b"))
    store.save_segment(job.id, 0, {})
    store.transition(job.id, JobStatus.RUNNING)
    assert store.acquire_job_lease(job.id, "w1", 30)
    assert store.schedule_retry(job.id, "w1", 30, "token") is not None
    assert store.delete(job.id)
    assert store.get(job.id) is None
    assert not store.delete(job.id)
    assert store.list(tenant="acme") == ([], None)
    assert store.list(batch_id="b") == ([], None)
    assert not [k for k in redis_client.scan_iter(match=f"{keys.prefix}:*")]


# -- listing -------------------------------------------------------------------------


@pytest.fixture
def populated(store: JobStore) -> Iterator[list[Job]]:
    """30 jobs, a millisecond apart: 3 tenants, some running, some in a batch."""
    base = time.time() - 100
    jobs = []
    for i in range(30):
        job = make_job(
            tenant=["acme", "globex", "initech"][i % 3],
            batch_id="book" if i % 5 == 0 else None,
            created_at=base + i / 1000,
        )
        store.create(job, batch_item=i if job.batch_id else None)
        if i % 2:
            store.transition(job.id, JobStatus.RUNNING)
        jobs.append(job)
    yield jobs


def collect(store: JobStore, limit: int, **filters: object) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(100):
        page, cursor = store.list(limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        assert len(page) <= limit
        ids += [job.id for job in page]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


def test_list_everything_newest_first(store: JobStore, populated: list[Job]) -> None:
    newest_first = [job.id for job in reversed(populated)]
    assert collect(store, limit=7) == newest_first
    assert collect(store, limit=30) == newest_first
    assert collect(store, limit=100) == newest_first


def test_list_filters(store: JobStore, populated: list[Job]) -> None:
    def expect(pred: object) -> list[str]:
        return [j.id for j in reversed(populated) if pred(j)]  # type: ignore[operator]

    assert collect(store, 4, tenant="acme") == expect(lambda j: j.tenant == "acme")
    running = [j.id for i, j in enumerate(populated) if i % 2][::-1]
    assert collect(store, 4, status=JobStatus.RUNNING) == running
    assert collect(store, 3, tenant="globex", status=JobStatus.RUNNING) == [
        i for i in running if i in expect(lambda j: j.tenant == "globex")
    ]
    # A batch lists in item order.
    assert collect(store, 2, batch_id="book") == [j.id for j in populated if j.batch_id]
    assert collect(store, 2, batch_id="book", tenant="acme") == [
        j.id for j in populated if j.batch_id and j.tenant == "acme"
    ]
    after, before = populated[9].created_at, populated[20].created_at
    assert collect(store, 4, created_after=after, created_before=before) == expect(
        lambda j: after < j.created_at < before
    )
    assert collect(store, 4, tenant="nobody") == []


def test_cursor_is_stable_while_jobs_are_added(store: JobStore, populated: list[Job]) -> None:
    page, cursor = store.list(tenant="acme", limit=4)
    for _ in range(3):
        store.create(make_job(tenant="acme"))  # newer than everything listed
    rest = collect(store, 100, tenant="acme")[3:]  # the new ones come first now
    second, _ = store.list(tenant="acme", limit=100, cursor=cursor)
    assert [j.id for j in page + second] == [
        j.id for j in reversed(populated) if j.tenant == "acme"
    ]
    assert [j.id for j in second] == rest[4:]


def test_equal_creation_times_paginate_without_loss(store: JobStore) -> None:
    now = time.time()
    ids = {store.create(make_job(created_at=now)).id for _ in range(45)}
    listed = collect(store, limit=4)
    assert len(listed) == 45 and set(listed) == ids


def test_listing_prunes_entries_of_expired_records(
    store: JobStore, redis_client: redis.Redis, keys: Keys, populated: list[Job]
) -> None:
    gone = populated[-1]
    redis_client.delete(keys.job(gone.id))  # the retention TTL ran out
    ids = collect(store, limit=5, tenant=gone.tenant)
    assert gone.id not in ids and len(ids) == 9
    assert redis_client.zscore(keys.jobs_by_tenant(gone.tenant), gone.id) is None
    assert redis_client.zscore(keys.jobs_all(), gone.id) is None


def test_bad_cursor_and_limit(store: JobStore) -> None:
    with pytest.raises(InvalidCursor):
        store.list(cursor="not a cursor!")
    with pytest.raises(ValueError):
        store.list(limit=0)


# -- segments ------------------------------------------------------------------------


def test_an_attempt_starts_under_its_lease_in_one_script(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    job = store.create(make_job())
    fresh = Progress(segments_total=2, chars_total=12)
    first = store.start_attempt(job.id, 3, created=job.created_at, progress=fresh, lease=("w1", 5))
    assert (first.leased, first.first, first.moved, first.attempt) == (True, True, True, 1)
    assert first.at is not None
    assert redis_client.get(keys.job_lease(job.id)) == b"w1"
    assert _score(redis_client, keys.jobs_leased(), job.id) == pytest.approx(5, abs=0.5)
    stored = store.get(job.id)
    assert stored is not None and (stored.status, stored.attempts) == (JobStatus.RUNNING, 1)
    assert stored.progress == fresh  # the first attempt's progress goes with its start
    # The index score given is the one create() wrote: the job stays where it was listed.
    assert store.list(status=JobStatus.RUNNING)[0][0].id == job.id
    # Another worker finds the lease taken: nothing changes.
    other = store.start_attempt(job.id, 3, progress=Progress(), lease=("w2", 5))
    assert (other.leased, other.attempt, other.status) == (False, None, JobStatus.RUNNING)
    assert store.get(job.id).attempts == 1  # type: ignore[union-attr]
    # Its owner takes it back (a retry that inherited it); a later attempt's progress
    # is its own to write (from its checkpoints), not the start's.
    again = store.start_attempt(job.id, 3, progress=Progress(), lease=("w1", 5))
    assert (again.leased, again.first, again.attempt) == (True, False, 2)
    assert store.get(job.id).progress == fresh  # type: ignore[union-attr]
    # A job that ended is not leased at all.
    store.transition(job.id, JobStatus.SUCCEEDED, output=sample_output())
    redis_client.delete(keys.job_lease(job.id))
    done = store.start_attempt(job.id, 3, lease=("w3", 5))
    assert (done.leased, done.status) == (False, JobStatus.SUCCEEDED)
    assert not redis_client.exists(keys.job_lease(job.id))


def test_a_started_job_leaves_the_due_list(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """A job a reaper queued (it carries a token) is taken off the due list by its start."""
    job = store.create(make_job())
    redis_client.zadd(keys.jobs_due(), {job.id: 0})  # due: its message went untaken
    assert store.claim_due(job.id, "t1", pickup=30) is DueReason.DUE
    found, standing = store.get_for_message(job.id, "t1")
    assert found is not None and found.id == job.id and standing is MessageStanding.CURRENT
    assert store.get_for_message(job.id, "t0")[1] is MessageStanding.STALE
    assert store.get_for_message("job_missing", None) == (None, MessageStanding.UNTRACKED)
    assert store.start_attempt(job.id, 3, lease=("w1", 5)).leased
    assert _score(redis_client, keys.jobs_due(), job.id) is None


def test_a_success_ends_the_attempt_in_one_script(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    job = store.create(make_job())
    assert store.start_attempt(job.id, 3, lease=("w1", 5)).leased
    store.save_segment(job.id, 0, {"key": "_staging/x/000000.pcm"})
    last = Progress(segments_done=1, segments_total=1, chars_done=12, chars_total=12)
    done = store.succeed(job, sample_output(), "w1", last)
    assert (done.moved, done.released) == (True, True)
    stored = store.get(job.id)
    assert stored is not None and stored.status is JobStatus.SUCCEEDED
    assert stored.progress == last and stored.output == sample_output()
    # Its checkpoint records and its lease went with it; the reapers list it nowhere.
    assert not redis_client.exists(keys.job_segments(job.id), keys.job_lease(job.id))
    assert redis_client.zcard(keys.jobs_leased()) == 0
    # Canceled meanwhile: refused, and the lease is kept for the cleanup.
    canceled = store.create(make_job())
    assert store.start_attempt(canceled.id, 3, lease=("w1", 5)).leased
    assert store.transition(canceled.id, JobStatus.CANCELED)
    assert store.succeed(canceled, sample_output(), "w1") == (False, False)
    assert redis_client.get(keys.job_lease(canceled.id)) == b"w1"


def test_a_success_without_checkpoints_drops_only_records_it_did_not_make(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """A first attempt that recorded nothing has nothing to drop, unless its lease was
    taken meanwhile: then another attempt's records are dropped, and its lease kept."""
    job = store.create(make_job())
    assert store.start_attempt(job.id, 3, lease=("w1", 5)).leased
    assert store.succeed(job, sample_output(), "w1", recorded=False) == (True, True)
    taken = store.create(make_job())
    assert store.start_attempt(taken.id, 3, lease=("w1", 5)).leased
    redis_client.delete(keys.job_lease(taken.id))  # lapsed; another worker took over
    assert store.start_attempt(taken.id, 3, lease=("w2", 5)).leased
    store.save_segment(taken.id, 0, {"key": "k"})
    assert store.succeed(taken, sample_output(), "w1", recorded=False) == (True, False)
    assert not redis_client.exists(keys.job_segments(taken.id))
    assert redis_client.get(keys.job_lease(taken.id)) == b"w2"


def test_a_late_checkpoint_lives_no_longer_than_its_job(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    job = store.create(make_job())
    store.transition(job.id, JobStatus.CANCELED)  # retention TTL from now on
    assert store.save_segment(job.id, 0, {"key": "k"})
    assert 0 < redis_client.pttl(keys.job_segments(job.id)) <= TTL * 1000


def test_segment_checkpoints(store: JobStore) -> None:
    job = store.create(make_job())
    assert store.segments(job.id) == {}
    store.save_segment(job.id, 2, {"path": "/spool/2", "samples": 100})
    store.save_segment(job.id, 0, {"path": "/spool/0", "samples": 50})
    assert store.segments(job.id) == {
        0: {"path": "/spool/0", "samples": 50},
        2: {"path": "/spool/2", "samples": 100},
    }
    store.clear_segments(job.id)
    assert store.segments(job.id) == {}


# -- job leases ------------------------------------------------------------------------


def test_job_lease_acquire_renew_release(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    job = store.create(make_job())
    assert store.acquire_job_lease(job.id, "w1", 5)
    assert not store.acquire_job_lease(job.id, "w2", 5)
    assert store.renew_job_lease(job.id, "w1", 10)
    assert 5000 < redis_client.pttl(keys.job_lease(job.id)) <= 10_000
    assert not store.renew_job_lease(job.id, "w2", 10)
    assert not store.release_job_lease(job.id, "w2")
    assert store.release_job_lease(job.id, "w1")
    assert not store.renew_job_lease(job.id, "w1", 10)  # lost is lost: re-acquire instead
    assert store.acquire_job_lease(job.id, "w2", 0.2)
    time.sleep(0.3)
    assert store.acquire_job_lease(job.id, "w3", 5)  # an expired lease is free


def _score(client: redis.Redis, key: str, member: str) -> float | None:
    """A member's score in seconds from now (Redis's clock), or None if it is absent."""
    score = client.zscore(key, member)
    if score is None:
        return None
    seconds, micros = client.time()
    return score / 1000 - (seconds + micros / 1e6)


def test_leases_keep_the_reapers_lists(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """A job an attempt runs is listed by its lease's expiry; given up undecided, it is
    due again a while later; finished, it is listed nowhere."""
    job = store.create(make_job())
    store.transition(job.id, JobStatus.RUNNING)
    assert store.acquire_job_lease(job.id, "w1", 5)
    assert _score(redis_client, keys.jobs_leased(), job.id) == pytest.approx(5, abs=0.5)
    assert store.renew_job_lease(job.id, "w1", 20)
    assert _score(redis_client, keys.jobs_leased(), job.id) == pytest.approx(20, abs=0.5)
    assert not store.renew_job_lease(job.id, "w2", 40)
    assert store.due_jobs(limit=10) == []
    # Given up while still running: its attempt decided nothing.
    assert store.release_job_lease(job.id, "w1", look_again_in=7)
    assert _score(redis_client, keys.jobs_leased(), job.id) is None
    assert _score(redis_client, keys.jobs_due(), job.id) == pytest.approx(7, abs=0.5)
    assert store.acquire_job_lease(job.id, "w2", 5)
    assert _score(redis_client, keys.jobs_due(), job.id) is None
    store.transition(job.id, JobStatus.SUCCEEDED, output=sample_output())
    assert store.release_job_lease(job.id, "w2", look_again_in=7)
    assert redis_client.zcard(keys.jobs_leased()) == redis_client.zcard(keys.jobs_due()) == 0


def test_a_lapsed_lease_is_claimed_by_one_reaper(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    leased, orphan, _queued, done = (store.create(make_job()) for _ in range(4))
    for job in (leased, orphan, done):
        store.transition(job.id, JobStatus.RUNNING)
        assert store.acquire_job_lease(job.id, "w1", 0.2 if job is not leased else 30)
    store.transition(done.id, JobStatus.SUCCEEDED, output=sample_output())
    assert store.due_jobs(limit=10) == []
    time.sleep(0.3)
    assert sorted(store.due_jobs(limit=10)) == sorted([orphan.id, done.id])
    assert len(store.due_jobs(limit=1)) == 1
    # Only one reaper gets to re-queue it; its token is the one valid message.
    assert store.message_standing(orphan.id, None) is MessageStanding.UNTRACKED
    assert store.claim_due(orphan.id, "t1", pickup=30) is DueReason.LAPSED
    assert store.claim_due(orphan.id, "t2", pickup=30) is None
    assert store.message_standing(orphan.id, "t1") is MessageStanding.CURRENT
    assert store.message_standing(orphan.id, "t2") is MessageStanding.STALE
    assert store.message_standing(orphan.id, None) is MessageStanding.STALE
    # Due again after the pickup time, should that message never be taken.
    assert _score(redis_client, keys.jobs_due(), orphan.id) == pytest.approx(30, abs=0.5)
    # A finished job leaves the lists without a message.
    assert store.claim_due(done.id, "t3", pickup=30) is None
    assert store.due_jobs(limit=10) == []
    assert redis_client.zrange(keys.jobs_leased(), 0, -1) == [leased.id.encode()]


def test_a_retry_holds_no_lease_and_is_due_after_its_backoff(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    job = store.create(make_job())
    store.transition(job.id, JobStatus.RUNNING)
    assert store.acquire_job_lease(job.id, "w1", 30)
    assert store.schedule_retry(job.id, "w2", 0.3, "r1") is None  # not w2's lease
    assert redis_client.exists(keys.job_lease(job.id))
    seconds, micros = redis_client.time()
    due = store.schedule_retry(job.id, "w1", 0.3, "r1")
    assert due == pytest.approx(seconds + micros / 1e6 + 0.3, abs=0.1)
    assert not redis_client.exists(keys.job_lease(job.id))
    assert _score(redis_client, keys.jobs_leased(), job.id) is None
    # While it waits, no message is valid: a redelivered one is dropped.
    assert store.message_standing(job.id, None) is MessageStanding.STALE
    assert store.due_jobs(limit=10) == []
    assert store.claim_due(job.id, "t1", pickup=30) is None  # not yet
    time.sleep(0.35)
    assert store.due_jobs(limit=10) == [job.id]
    assert store.claim_due(job.id, "t1", pickup=30) is DueReason.DUE
    assert store.message_standing(job.id, "t1") is MessageStanding.CURRENT
    assert store.due_jobs(limit=10) == []
    # Its message starts the next attempt: listed by the lease again.
    assert store.acquire_job_lease(job.id, "w3", 30)
    assert _score(redis_client, keys.jobs_due(), job.id) is None
    assert _score(redis_client, keys.jobs_leased(), job.id) == pytest.approx(30, abs=0.5)


def test_a_lease_of_an_earlier_version_is_adopted(
    store: JobStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """Running jobs an earlier version started (its leases are on no list) are listed by
    their lease's expiry, or as lapsed at once if they hold none."""
    held, orphan, listed = (store.create(make_job()) for _ in range(3))
    for job in (held, orphan, listed):
        store.transition(job.id, JobStatus.RUNNING)
    redis_client.set(keys.job_lease(held.id), "old-worker", px=20_000)  # as it took it
    assert store.acquire_job_lease(listed.id, "w1", 30)
    assert store.adopt_running_jobs(page=1) == 2
    assert store.adopt_running_jobs() == 0
    assert _score(redis_client, keys.jobs_leased(), held.id) == pytest.approx(20, abs=0.5)
    assert store.due_jobs(limit=10) == [orphan.id]
    # A held lease is never re-queued, whichever list says it is due.
    redis_client.zadd(keys.jobs_due(), {held.id: 0})
    assert store.claim_due(held.id, "t1", pickup=30) is None
    assert _score(redis_client, keys.jobs_due(), held.id) is None
    assert _score(redis_client, keys.jobs_leased(), held.id) == pytest.approx(20, abs=0.5)
