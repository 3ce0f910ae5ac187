"""Building a batch's combined outputs, in process, on real Redis and a real S3 server (moto).

Chapters are synthetic speech-like PCM kept as masters by the same hook the
runner calls (:func:`worker.batches.lifecycle.keep_chapter_master`); the build is
:func:`worker.batches.build.build_batch`, as the ``shoal.assemble_batch``
task runs it.  The M4B is read back with PyAV.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import redis

from tests.conftest import delete_prefix
from tests.worker.test_audio_book_sections import check_joined_timeline
from worker.audio import SegmentAudio
from worker.batches.build import build_batch
from worker.batches.lifecycle import keep_chapter_master, load_view, master_key, maybe_finalize
from worker.batches.model import (
    AssemblyState,
    Batch,
    BatchItem,
    BatchStatus,
    BookInfo,
    CombinedFormat,
    Produce,
    new_batch_id,
)
from worker.batches.store import BatchStore
from worker.celery import create_app, queue_names
from worker.jobs.model import Job, JobRequest, JobStatus, Output, estimate_billing, new_job_id
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.settings import Settings
from worker.storage.client import Storage

RATE = 22050
SILENCE_MS = (400, 700, 900)  # head, between chapters, tail
TOLERANCE_S = 0.05


def speech(seconds: float, seed: int) -> np.ndarray:
    """Speech-like s16 audio: a voiced tone under a syllable envelope, with pauses."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 110 + 40 * rng.random()
    voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
    envelope = np.clip(np.sin(2 * np.pi * (2.5 + rng.random()) * t), 0, None)
    samples = 0.25 * voice / 2 * envelope + 0.002 * rng.standard_normal(n)
    return (np.clip(samples, -1, 1) * 32767).astype(np.int16)


def text_for(seconds: float) -> str:
    """A text that should take about ``seconds`` to say (15 characters a second)."""
    words = "the sea was calm and grey at dawn "
    return (words * 20)[: round(seconds * 15)].strip() + "."


class Env:
    """A batch store, job store, storage and settings under one key prefix."""

    def __init__(self, client: redis.Redis, keys: Keys, storage: Storage, spool: Path) -> None:
        self.settings = Settings(
            key_prefix=keys.prefix,
            spool_dir=spool,
            job_lease_seconds=5,
            retry_base_delay=0.1,
            retry_max_delay=0.2,
        )
        self.keys = keys
        self.store = JobStore(client, keys, self.settings.job_ttl_seconds)
        self.batches = BatchStore(client, keys, self.settings.job_ttl_seconds)
        self.storage = storage
        self.spool = spool
        self.celery = create_app(self.settings)

    def job(
        self, batch_id: str, index: int, seconds: float, seed: int, job_id: str | None = None
    ) -> Job:
        """A succeeded chapter job of a stored batch, its master kept, in two segments with a
        pause between them (as the runner leaves it, through the runner's own hook)."""
        text = text_for(seconds)
        job = Job(
            id=job_id or new_job_id(),
            tenant="t",
            request=JobRequest(text=text, format="mp3"),
            billing=estimate_billing(text, 15.0),
            batch_id=batch_id,
        )
        folder = self.spool / job.id
        folder.mkdir(parents=True)
        audio = speech(seconds, seed)
        half = len(audio) // 2
        parts = []
        for n, piece in enumerate((audio[:half], audio[half:])):
            path = folder / f"{n:06d}.pcm"
            path.write_bytes(piece.tobytes())
            parts.append(SegmentAudio(path, RATE, 250 if n == 0 else 0))
        key = f"t/{batch_id}/chapters/{index + 1:03d}-{job.id}.mp3"
        self.storage.put_bytes(key, b"not used while the master is there")
        output = Output(
            url=self.storage.url(key),
            bucket=self.storage.bucket,
            key=key,
            bytes=10,
            duration_s=seconds + 0.25,
            format="mp3",
            sample_rate=RATE,
            content_type="audio/mpeg",
            sha256="0" * 64,
        )
        self.store.create(job, batch_item=index)
        keep_chapter_master(job, parts, storage=self.storage, store=self.store)
        self.store.transition(job.id, JobStatus.RUNNING)
        self.store.transition(job.id, JobStatus.SUCCEEDED, output=output)
        return job

    def batch(self, seconds: list[float], **produce: Any) -> Batch:
        batch_id = new_batch_id()
        ids = [new_job_id() for _ in seconds]
        head, gap, tail = SILENCE_MS
        batch = Batch(
            id=batch_id,
            tenant="t",
            items=[
                BatchItem(
                    job_id=job_id,
                    title=f"Chapter {i + 1}",
                    chars=len(text_for(s)),
                    utf8_bytes=len(text_for(s)),
                )
                for i, (job_id, s) in enumerate(zip(ids, seconds, strict=True))
            ],
            produce=Produce(
                sample_rate=RATE,
                head_silence_ms=head,
                chapter_silence_ms=gap,
                tail_silence_ms=tail,
                **produce,
            ),
            book=BookInfo(title="Sea Stories", author="Mary Writer"),
            callback_url="https://example.com/hook",
            billing=estimate_billing("x", 15.0),
        )
        self.batches.create(batch)
        for i, (job_id, s) in enumerate(zip(ids, seconds, strict=True)):
            self.job(batch_id, i, s, seed=i, job_id=job_id)
        return batch

    def build(self, batch: Batch, generation: int | None = None) -> str:
        current = self.batches.get(batch.id)
        assert current is not None
        gen = generation or current.assembly.generation
        outcome = build_batch(
            batch.id,
            gen,
            settings=self.settings,
            batches=self.batches,
            storage=self.storage,
            celery_app=self.celery,
        )
        return outcome.status

    def download(self, key: str, path: Path) -> Path:
        self.storage.download_file(key, path)
        return path

    def messages(self, role: str) -> list[tuple[str, dict[str, Any]]]:
        """(task name, kwargs) of the Celery messages waiting on one of the env's queues."""
        name = self.keys.celery_queue(queue_names(self.settings)[role])
        out = []
        for raw in self.store.redis.lrange(name, 0, -1):  # type: ignore[union-attr]
            envelope = json.loads(raw)
            _, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
            out.append((envelope["headers"]["task"], kwargs))
        return out


@pytest.fixture
def env(redis_client: redis.Redis, keys: Keys, storage: Storage, tmp_path: Path) -> Env:
    made = Env(redis_client, keys, storage, tmp_path / "spool")
    yield made
    made.celery.close()
    delete_prefix(redis_client, keys.prefix)


def chapters_of(path: Path) -> list[tuple[str, float]]:
    with av.open(str(path)) as container:
        return [
            (c["metadata"]["title"], float(c["start"] * c["time_base"]))
            for c in container.chapters()
        ]


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
    return np.concatenate(frames)


def test_m4b_from_masters_has_chapters_where_the_manifest_says(env: Env, tmp_path: Path) -> None:
    seconds = [3.0, 2.0, 4.0]
    batch = env.batch(seconds)
    assert env.build(batch) == "built"

    done = env.batches.get(batch.id)
    assert done is not None
    a = done.assembly
    assert a.state is AssemblyState.DONE and a.built_generation == 1
    assert a.combined is not None and a.manifest is not None
    assert a.combined.key == f"t/{batch.id}/v1/book.m4b"
    assert load_view(env.batches, done).status is BatchStatus.SUCCEEDED
    assert done.finished_at is not None

    book = env.download(a.combined.key, tmp_path / "book.m4b")
    manifest = json.loads(env.download(a.manifest.key, tmp_path / "m.json").read_text())
    assert manifest["batch_id"] == batch.id and manifest["generation"] == 1
    assert manifest["title"] == "Sea Stories" and manifest["author"] == "Mary Writer"
    assert manifest["file"] == a.combined.key
    entries = manifest["chapters"]
    assert [c["title"] for c in entries] == ["Chapter 1", "Chapter 2", "Chapter 3"]
    assert [c["source"] for c in entries] == ["master"] * 3
    assert [c["job_id"] for c in entries] == done.job_ids
    # Each chapter's audio is its segments plus the pause between them.
    for entry, s in zip(entries, seconds, strict=True):
        assert entry["duration_s"] == pytest.approx(s + 0.25, abs=0.002)

    read = chapters_of(book)
    assert [title for title, _ in read] == [c["title"] for c in entries]
    for (_, start), entry in zip(read, entries, strict=True):
        assert start == pytest.approx(entry["start_s"], abs=TOLERANCE_S)
    total = manifest["duration_s"]
    silences = tuple(ms / 1000 for ms in SILENCE_MS)
    check_joined_timeline(entries, total, silences, manifest["sample_rate"])  # type: ignore[arg-type]
    with av.open(str(book)) as container:
        assert float(container.duration / 1e6) == pytest.approx(total, abs=TOLERANCE_S)
        assert container.metadata.get("title") == "Sea Stories"

    # Masters stay for retries; the batch's staging is swept after its retention.
    for job_id in done.job_ids:
        assert env.storage.exists(master_key(env.storage, batch.id, job_id))
    # A second build of the same generation has nothing to do.
    assert env.build(batch) == "skipped"
    # batch.succeeded was queued for the callback URL, once, with the outputs.
    ((task, delivery),) = env.messages("callbacks")
    assert task == "shoal.deliver_callback" and delivery["event_type"] == "batch.succeeded"
    event = json.loads(delivery["body"])
    assert event["data"]["status"] == "succeeded"
    assert event["data"]["outputs"]["combined"]["key"] == a.combined.key


def test_a_retried_item_changes_only_its_own_chapter(env: Env, tmp_path: Path) -> None:
    batch = env.batch([2.0, 2.5, 2.0])
    # Each job kept its chapter's section (frames and record) with its master: the
    # build joins them and encodes nothing.
    old_sections = sections_of(env, batch.id)
    assert len(old_sections) == 6
    assert env.build(batch) == "built"
    first = env.batches.get(batch.id)
    assert first is not None and first.assembly.combined is not None
    assert sections_of(env, batch.id) == old_sections
    old_book = decode(env.download(first.assembly.combined.key, tmp_path / "1.m4b"))
    old_manifest = first.assembly.manifest
    assert old_manifest is not None

    # What the retry route does: a new job for item 1, the generation bumped.
    new = env.job(batch.id, 1, 2.5, seed=99)
    old_id = first.items[1].job_id

    def swap(b: Batch) -> Batch:
        items = list(b.items)
        items[1] = items[1].model_copy(update={"job_id": new.id, "replaced": [old_id]})
        assembly = b.assembly.model_copy(update={"generation": 2, "state": AssemblyState.WAITING})
        return b.model_copy(update={"items": items, "assembly": assembly, "finished_at": None})

    env.batches.update(batch.id, swap)
    assert env.build(batch) == "built"
    second = env.batches.get(batch.id)
    assert second is not None and second.assembly.combined is not None
    assert second.assembly.combined.key == f"t/{batch.id}/v2/book.m4b"
    new_book = decode(env.download(second.assembly.combined.key, tmp_path / "2.m4b"))
    manifest = json.loads(
        env.download(second.assembly.manifest.key, tmp_path / "m2.json").read_text()  # type: ignore[union-attr]
    )
    # Only the new chapter was encoded: the others' sections were kept and used; the
    # replaced chapter's is gone.
    sections = sections_of(env, batch.id)
    assert len(sections) == 6 and len(sections & old_sections) == 4
    # Same length (the new chapter is as long); before it, the very same samples.
    assert len(new_book) == len(old_book)
    spans = [
        (round(c["audio_start_s"] * RATE), round((c["audio_start_s"] + c["duration_s"]) * RATE))
        for c in manifest["chapters"]
    ]
    margin = 2048  # AAC frames overlap their neighbours by up to one frame
    b0, b1 = spans[1]
    assert np.array_equal(old_book[: b0 - margin], new_book[: b0 - margin])
    assert not np.allclose(old_book[b0 + margin : b1 - margin], new_book[b0 + margin : b1 - margin])
    # After it, the encoder's rate control remembers the new chapter: the same audio within
    # coding noise (below -60 dBFS), not the same bits.
    assert np.abs(old_book[b1 + margin :] - new_book[b1 + margin :]).max() < 1e-3

    # The previous generation's outputs and the replaced job's master are gone.
    assert not env.storage.exists(first.assembly.combined.key)
    assert not env.storage.exists(old_manifest.key)
    assert not env.storage.exists(master_key(env.storage, batch.id, old_id))
    assert set(env.batches.masters(batch.id)) == set(second.job_ids)


def test_a_kept_section_that_fails_its_digest_is_encoded_again(env: Env, tmp_path: Path) -> None:
    batch = env.batch([2.0, 2.0])
    assert env.build(batch) == "built"
    first = env.batches.get(batch.id)
    assert first is not None and first.assembly.manifest is not None
    frames = sorted(k for k in sections_of(env, batch.id) if k.endswith(".aac"))
    good = env.download(frames[0], tmp_path / "good.aac").read_bytes()
    env.storage.put_bytes(frames[0], good[: len(good) // 3])  # cut short behind our back

    def again(b: Batch) -> Batch:
        assembly = b.assembly.model_copy(update={"generation": 2, "state": AssemblyState.WAITING})
        return b.model_copy(update={"assembly": assembly, "finished_at": None})

    env.batches.update(batch.id, again)
    assert env.build(batch) == "built"
    second = env.batches.get(batch.id)
    assert second is not None and second.assembly.combined is not None
    # Encoded again from the master and written over: the same frames as the first time.
    assert env.download(frames[0], tmp_path / "again.aac").read_bytes() == good
    assert second.assembly.combined.duration_s == first.assembly.combined.duration_s  # type: ignore[union-attr]


def sections_of(env: Env, batch_id: str) -> set[str]:
    prefix = env.storage.staging_key(batch_id, "") + "sections/"
    return {key for key, _ in env.storage.list_objects(prefix)}


def test_a_master_of_a_canceled_batch_is_not_kept(env: Env) -> None:
    batch = env.batch([2.0])
    env.batches.update(batch.id, lambda b: b.model_copy(update={"canceled_at": time.time()}))
    late = env.job(batch.id, 1, 2.0, seed=5)  # its worker finished after the cancel
    assert late.id not in env.batches.masters(batch.id)
    assert not env.storage.exists(master_key(env.storage, batch.id, late.id))


def test_a_stale_generation_is_not_built(env: Env) -> None:
    batch = env.batch([2.0])

    def bump(b: Batch) -> Batch:
        return b.model_copy(update={"assembly": b.assembly.model_copy(update={"generation": 2})})

    env.batches.update(batch.id, bump)
    assert env.build(batch, generation=1) == "skipped"
    now = env.batches.get(batch.id)
    assert now is not None and now.assembly.state is AssemblyState.WAITING


def test_one_builder_at_a_time(env: Env) -> None:
    batch = env.batch([2.0])
    assert env.batches.acquire_assembly(batch.id, "someone-else", 5)
    assert env.build(batch) == "skipped"
    env.batches.release_assembly(batch.id, "someone-else")
    assert env.build(batch) == "built"


def test_a_chapter_far_too_short_fails_the_build(env: Env) -> None:
    batch = env.batch([2.0, 2.0])
    job = env.store.get(batch.items[1].job_id)
    assert job is not None
    # The text says 30 s; the audio is 2 s: truncated somewhere, never shipped.
    long_text = text_for(30.0)
    env.store.redis.hset(
        env.keys.job(job.id),
        "request",
        job.request.model_copy(update={"text": long_text}).model_dump_json(),
    )
    assert env.build(batch) == "failed"
    failed = env.batches.get(batch.id)
    assert failed is not None
    assert failed.assembly.state is AssemblyState.FAILED
    assert failed.assembly.error is not None and "item 1" in failed.assembly.error
    assert "cut short" in failed.assembly.error
    assert failed.assembly.combined is None
    assert load_view(env.batches, failed).status is BatchStatus.FAILED


def test_without_a_combined_book_only_the_manifest_is_made(env: Env, tmp_path: Path) -> None:
    batch = env.batch([2.0, 3.0], combined=None)
    assert env.build(batch) == "built"
    done = env.batches.get(batch.id)
    assert done is not None and done.assembly.combined is None
    assert done.assembly.manifest is not None
    manifest = json.loads(env.download(done.assembly.manifest.key, tmp_path / "m").read_text())
    assert manifest["format"] is None
    assert [c["file"] for c in manifest["chapters"]] == [
        f"t/{batch.id}/chapters/{i + 1:03d}-{job_id}.mp3" for i, job_id in enumerate(done.job_ids)
    ]
    assert manifest["duration_s"] == pytest.approx(5.5, abs=0.01)


def test_mp3_book_with_acx_loudness(env: Env, tmp_path: Path) -> None:
    batch = env.batch([3.0, 3.0], combined=CombinedFormat.MP3, loudness="acx")
    assert env.build(batch) == "built"
    done = env.batches.get(batch.id)
    assert done is not None and done.assembly.combined is not None
    loud = done.assembly.loudness
    assert loud is not None and loud["within_target"], loud
    assert -23 <= loud["rms_db"] <= -18 and loud["peak_db"] <= -3
    read = chapters_of(env.download(done.assembly.combined.key, tmp_path / "b.mp3"))
    assert [t for t, _ in read] == ["Chapter 1", "Chapter 2"]


def test_finalize_queues_one_build_when_every_item_succeeded(env: Env) -> None:
    batch = env.batch([2.0, 2.0])
    acted = [  # every job's end, and the reaper's looks, call it
        maybe_finalize(env.batches, batch.id, env.settings, sender=env.celery) for _ in range(3)
    ]
    assert acted == [True, False, False]
    builds = env.messages("bulk")
    assert builds == [("shoal.assemble_batch", {"batch_id": batch.id, "generation": 1})]
    now = env.batches.get(batch.id)
    assert now is not None and now.assembly.state is AssemblyState.PENDING
    assert load_view(env.batches, now).status is BatchStatus.RUNNING


def test_finalize_reports_a_partly_failed_batch_once(env: Env) -> None:
    batch = env.batch([2.0, 2.0])
    job_id = batch.items[0].job_id
    env.store.redis.hset(env.keys.job(job_id), "status", JobStatus.FAILED.value)
    acted = [maybe_finalize(env.batches, batch.id, env.settings, sender=env.celery) for _ in "ab"]
    assert acted == [True, False]
    ended = env.batches.get(batch.id)
    assert (
        ended is not None and load_view(env.batches, ended).status is BatchStatus.PARTIALLY_FAILED
    )
    assert not [m for m in env.messages("bulk")]
    ((_, delivery),) = env.messages("callbacks")
    assert delivery["event_type"] == "batch.failed"
    event = json.loads(delivery["body"])["data"]
    assert event["status"] == "partially_failed"
    assert [f["index"] for f in event["failed_items"]] == [0]
    now = env.batches.get(batch.id)
    assert now is not None and now.assembly.state is AssemblyState.SKIPPED
    assert now.finished_at is not None and now.finished_at <= time.time()


def test_builds_that_kept_losing_their_worker_give_up(env: Env) -> None:
    # As if every build the settings allow had started and died with its worker.
    batch = env.batch([2.0])
    limit = env.settings.max_attempts

    def died(b: Batch) -> Batch:
        assembly = b.assembly.model_copy(
            update={"state": AssemblyState.BUILDING, "attempts": limit, "error": "retrying: boom"}
        )
        return b.model_copy(update={"assembly": assembly})

    env.batches.update(batch.id, died)
    assert env.build(batch) == "failed"
    failed = env.batches.get(batch.id)
    assert failed is not None and failed.assembly.attempts == limit  # no build beyond it
    assert failed.assembly.state is AssemblyState.FAILED
    assert failed.assembly.error == f"gave up after {limit} builds: boom"
    assert failed.assembly.combined is None
