"""GrowingUpload against moto: parts go up while the file grows; the object is the final file."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from worker.storage.client import Storage
from worker.storage.growing import GrowingUpload

PART = 5 << 20  # the test storage's part size


def _wait(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _fetch(storage: Storage, key: str, path: Path) -> bytes:
    storage.download_file(key, path)
    return path.read_bytes()


def test_parts_go_up_while_the_file_grows_and_a_patched_head_is_sent_last(
    storage: Storage, tmp_path: Path
) -> None:
    path = tmp_path / "out.mp3.part"
    upload = GrowingUpload(storage, path, "t/job.mp3", content_type="audio/mpeg", poll_seconds=0.02)
    chunk = os.urandom(1 << 20)
    with path.open("wb") as f:
        f.write(b"\0" * 1024)  # a header to be patched at the end, as muxers do
        for _ in range(3 * PART // len(chunk) + 1):
            f.write(chunk)
            f.flush()
        # Parts 2 and 3 went up while the file was still being written.
        _wait(lambda: upload.parts_sent >= 2)
        assert storage.list_incomplete_uploads() != []
        f.write(b"tail")
        f.seek(0)
        f.write(b"HEADER")  # the finished file differs in its first part only
    final = path.with_name("out.mp3")
    path.rename(final)
    digest = hashlib.sha256(final.read_bytes()).hexdigest()
    result = upload.finish(final, digest)
    assert result.bytes == final.stat().st_size and result.sha256 == digest
    assert _fetch(storage, "t/job.mp3", tmp_path / "back") == final.read_bytes()
    assert storage.list_incomplete_uploads() == []


def test_a_part_rewritten_after_it_went_up_is_sent_again(storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "out.m4a"
    upload = GrowingUpload(
        storage, path, "t/rewritten", content_type="audio/mp4", poll_seconds=0.02
    )
    path.write_bytes(os.urandom(3 * PART))
    _wait(lambda: upload.parts_sent >= 1)  # part 2 (part 3 is the last: it waits)
    data = bytearray(path.read_bytes())
    data[PART + 10 : PART + 20] = b"0123456789"  # an index moved to the front, say
    path.write_bytes(bytes(data))
    upload.finish()
    assert _fetch(storage, "t/rewritten", tmp_path / "back") == bytes(data)


def test_a_small_file_goes_up_in_one_piece_and_abort_leaves_nothing(
    storage: Storage, tmp_path: Path
) -> None:
    path = tmp_path / "small.wav"
    upload = GrowingUpload(storage, path, "t/small", content_type="audio/wav", poll_seconds=0.02)
    path.write_bytes(b"RIFF" + os.urandom(1000))
    upload.finish()
    assert upload.parts_sent == 0
    assert _fetch(storage, "t/small", tmp_path / "back") == path.read_bytes()

    big = tmp_path / "big.wav"
    aborted = GrowingUpload(storage, big, "t/aborted", content_type="audio/wav", poll_seconds=0.02)
    big.write_bytes(os.urandom(3 * PART))
    _wait(lambda: aborted.parts_sent >= 1)
    aborted.abort()
    assert storage.list_incomplete_uploads() == []
    assert not storage.exists("t/aborted")
