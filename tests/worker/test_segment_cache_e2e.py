"""The segment cache end to end: a real worker, local_tts counting its sessions, moto S3.

A segment spoken once is not spoken again: the second render of the same text
opens no provider session and gives the same samples; an edit re-renders only
the segments it touched; a corrupt cache object is replaced, never used; a job
with ``cache: false`` and another tenant's job find nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from tests.servers import LocalTTS
from tests.stack import Stack, Stacks
from worker.jobs.cache import CachedAudio, start_cache_sweep, sweep_cache
from worker.jobs.model import Job, JobStatus, utf8_bytes
from worker.jobs.text import segment_text
from worker.keys import Keys
from worker.settings import Settings
from worker.storage.client import Storage

PARAGRAPHS = [
    "The river ran low that summer. Nobody in the village could remember it so thin.",
    "Old Marta walked down to the stones every morning, and counted the herons.",
    "By August there were eleven of them, standing in the shallows like nails.",
    "Her grandson said they were waiting for something. She said they were fishing.",
]
TEXT = "\n\n".join(PARAGRAPHS)


@pytest.fixture
def stack(make_stack: Stacks, tone_tts: LocalTTS) -> Stack:
    return make_stack(tone_tts, workers=1, SHOAL_SEGMENT_CACHE_DAYS="30")


def sessions(stack: Stack) -> list[str]:
    """The texts of the provider sessions since the stack was built, in order."""
    stats = stack.tts.wait_idle()
    return [s["text"] for s in stats["sessions"]]


def render(stack: Stack, text: str, tmp_path: Path, **request: object) -> tuple[Job, bytes]:
    """Run one job to success; its output's bytes (raw PCM: samples, compared exactly)."""
    job = stack.submit(text, format="pcm", sample_rate=44100, **request)  # type: ignore[arg-type]
    done = stack.wait(job.id)
    assert done.status is JobStatus.SUCCEEDED, (done.error, stack.logs())
    assert done.output is not None
    path = tmp_path / f"{job.id}.pcm"
    stack.storage.download_file(done.output.key, path)
    return done, path.read_bytes()


def cache_objects(stack: Stack, tenant: str = "t1") -> dict[str, object]:
    """The tenant's cache objects: key → when written."""
    prefix = f"{stack.settings.s3_cache_prefix}/{tenant}/"
    return dict(stack.storage.list_objects(prefix))


def test_a_cached_render_equals_an_uncached_one(stack: Stack, tmp_path: Path) -> None:
    segments = [s for s in segment_text(TEXT, stack.settings.segment_max_chars) if s.text.strip()]
    fresh, fresh_pcm = render(stack, TEXT, tmp_path, cache=False)
    assert len(sessions(stack)) == len(segments)
    assert cache_objects(stack) == {}  # a fresh take adds nothing to the cache
    assert fresh.progress.segments_cached == 0 and fresh.progress.utf8_bytes_sent > 0

    first, first_pcm = render(stack, TEXT, tmp_path)  # fills the cache
    assert len(sessions(stack)) == 2 * len(segments)
    assert len(cache_objects(stack)) == len(segments)
    assert first.progress.utf8_bytes_sent == sum(utf8_bytes(s.text) for s in segments)
    assert first.progress.segments_cached == 0

    second, second_pcm = render(stack, TEXT, tmp_path)
    assert len(sessions(stack)) == 2 * len(segments)  # not one more session
    assert second.progress.segments_cached == len(segments)
    assert second.progress.utf8_bytes_sent == 0
    assert second.progress.utf8_bytes_cached == first.progress.utf8_bytes_sent
    assert second_pcm == first_pcm == fresh_pcm
    # The jobs' staging was cleaned; the cache objects their checkpoints pointed at stay.
    assert stack.staged(second.id) == []
    assert len(cache_objects(stack)) == len(segments)


def test_a_one_paragraph_edit_rerenders_only_its_segments(stack: Stack, tmp_path: Path) -> None:
    render(stack, TEXT, tmp_path)
    before = len(sessions(stack))
    edited = [*PARAGRAPHS]
    edited[2] = edited[2].replace("eleven", "twelve")
    text = "\n\n".join(edited)
    done, pcm = render(stack, text, tmp_path)
    touched = {s.text for s in segment_text(text, stack.settings.segment_max_chars)} - {
        s.text for s in segment_text(TEXT, stack.settings.segment_max_chars)
    }
    sent = sessions(stack)[before:]
    assert touched and sorted(sent) == sorted(touched)
    assert all(t.strip() in edited[2] for t in sent)  # all of them in the edited paragraph
    assert done.progress.utf8_bytes_sent == sum(utf8_bytes(t) for t in touched)
    # The same text uncached gives the same samples.
    _, fresh = render(stack, text, tmp_path, cache=False)
    assert pcm == fresh


def test_a_corrupt_cache_object_is_replaced_not_used(stack: Stack, tmp_path: Path) -> None:
    _, good = render(stack, TEXT, tmp_path)
    before = len(sessions(stack))
    keys = sorted(cache_objects(stack))
    # One object's audio flipped, its metadata (and so its digest) left as it was;
    # another cut short with metadata that agrees on the size but not the digest.
    flipped, cut = keys[0], keys[1]
    for key, damage in ((flipped, lambda b: bytes(x ^ 0x55 for x in b)), (cut, lambda b: b[:-2])):
        path = tmp_path / "obj"
        stack.storage.download_file(key, path)
        meta = stack.storage.head(key)["metadata"]
        data = damage(path.read_bytes())
        audio = CachedAudio.from_metadata(meta)
        assert audio is not None
        if len(data) != audio.bytes:
            meta = meta | {"pcm-bytes": str(len(data))}
        stack.storage.put_bytes(key, data, metadata=meta)
    done, pcm = render(stack, TEXT, tmp_path)
    assert len(sessions(stack)) == before + 2  # those two synthesised again, nothing else
    assert done.progress.segments_cached == done.progress.segments_total - 2
    assert pcm == good
    # Replaced with good audio: the next render takes all of it from the cache.
    again, pcm_again = render(stack, TEXT, tmp_path)
    assert len(sessions(stack)) == before + 2 and pcm_again == good
    assert again.progress.segments_cached == again.progress.segments_total


def test_cache_false_and_another_tenant_open_sessions_again(stack: Stack, tmp_path: Path) -> None:
    render(stack, TEXT, tmp_path)
    count = len(sessions(stack))
    written = cache_objects(stack)
    fresh, _ = render(stack, TEXT, tmp_path, cache=False)
    assert len(sessions(stack)) == 2 * count and fresh.progress.segments_cached == 0
    assert cache_objects(stack) == written  # neither read nor replaced
    other = stack.submit(TEXT, tenant="t2", format="pcm", sample_rate=44100)
    assert stack.wait(other.id).status is JobStatus.SUCCEEDED
    assert len(sessions(stack)) == 3 * count  # no hit across tenants
    assert len(cache_objects(stack, "t2")) == count and cache_objects(stack) == written


def test_the_sweep_deletes_what_went_unused(
    storage: Storage, redis_client: redis.Redis, keys: Keys
) -> None:
    settings = Settings(segment_cache_days=1)
    for name in ("old", "used", "new"):
        storage.put_bytes(f"_cache/t1/aa/{name}.pcm", b"\0\0")
    now = time.time() + 3 * 86400  # every object's upload is three days old by then
    redis_client.zadd(keys.cache_used(), {"_cache/t1/aa/used.pcm": now - 3600})
    redis_client.zadd(keys.cache_used(), {"_cache/t1/aa/new.pcm": now - 2 * 86400})
    redis_client.zadd(keys.cache_used(), {"_cache/t1/aa/gone.pcm": now - 5 * 86400})
    assert sweep_cache(storage, redis_client, keys, settings, now=now) == 2
    assert [k for k, _ in storage.list_objects("_cache/")] == ["_cache/t1/aa/used.pcm"]
    assert redis_client.zrange(keys.cache_used(), 0, -1) == [b"_cache/t1/aa/used.pcm"]
    assert int(redis_client.get(keys.cache_swept()) or 0) == 2


def test_one_worker_per_period_sweeps(
    storage: Storage, redis_client: redis.Redis, keys: Keys
) -> None:
    settings = Settings(segment_cache_days=1)
    storage.put_bytes("_cache/t1/aa/x.pcm", b"\0\0")
    assert start_cache_sweep(storage, redis_client, keys, settings)
    assert not start_cache_sweep(storage, redis_client, keys, settings)  # claimed this period
    ttl = redis_client.pttl(keys.cache_sweep_claim())
    assert 0 < ttl <= 6 * 3600 * 1000
    deadline = time.monotonic() + 10
    while _sweeping_now() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [k for k, _ in storage.list_objects("_cache/")] == ["_cache/t1/aa/x.pcm"]  # fresh
    assert not start_cache_sweep(storage, redis_client, keys, Settings(segment_cache_days=0))


def _sweeping_now() -> bool:
    from worker.jobs import cache

    return cache._sweeping.locked()
