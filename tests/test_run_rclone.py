"""worker.storage.client against ``make run``'s embedded store: ``rclone serve s3`` of a directory.

The store the launcher starts, started the same way (:mod:`shoal_run.parts`):
signatures checked, objects as files, kept across a restart.  What it does
differently from S3 is pinned here, so a new rclone that changes it shows up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shoal_run import parts
from shoal_run.procs import Child
from shoal_run.state import Secrets
from worker.storage.client import Storage, StorageRejected


class Rclone:
    def __init__(self, root: Path, secrets: Secrets) -> None:
        self.root = root
        self.secrets = secrets
        self.port = parts.free_port("127.0.0.1")
        self.child: Child | None = None

    def start(self) -> Rclone:
        config = self.root.parent / "rclone.conf"
        config.touch()
        argv = parts.rclone_argv(parts.rclone_binary(), "127.0.0.1", self.port, self.root, config)
        env = {
            **os.environ,
            **parts.rclone_env(self.secrets.s3_access_key_id, self.secrets.s3_secret_access_key),
        }
        self.child = Child("s3", argv, env=env, log_path=self.root.parent / "s3.log").start()
        self.child.wait_for_line("Starting s3 server on", 30)
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(5)
            self.child = None

    def storage(self, bucket: str = "shoal") -> Storage:
        return Storage(
            bucket=bucket,
            endpoint_url=f"http://127.0.0.1:{self.port}",
            access_key_id=self.secrets.s3_access_key_id,
            secret_access_key=self.secrets.s3_secret_access_key,
            path_style=True,
            checksum_when_required=True,
            part_bytes=5 << 20,
        )


@pytest.fixture
def rclone(tmp_path: Path) -> Iterator[Rclone]:
    server = Rclone(tmp_path / "s3", Secrets.generate())
    (tmp_path / "s3").mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_multipart_upload_presigned_get_and_cleanup(rclone: Rclone, tmp_path: Path) -> None:
    storage = rclone.storage()
    storage.ensure_bucket()  # made by CreateBucket: a folder at the root
    assert (rclone.root / "shoal").is_dir()
    storage.ensure_bucket()  # and found by HeadBucket the second time

    data = os.urandom((11 << 20) + 12345)  # three parts
    source = tmp_path / "out.mp3"
    source.write_bytes(data)
    result = storage.upload_file(
        source, "local/job_1.mp3", content_type="audio/mpeg", metadata={"job-id": "job_1"}
    )
    assert result.etag.endswith('-3"') and result.bytes == len(data)
    assert (rclone.root / "shoal" / "local" / "job_1.mp3").read_bytes() == data
    # HEAD gives the MD5 of the whole file, not the multipart ETag the upload answered:
    # Storage._complete's check for a completion whose answer was lost cannot match here.
    assert "-" not in storage.head("local/job_1.mp3")["etag"]
    assert storage.list_incomplete_uploads() == []

    url = storage.presign_get("local/job_1.mp3", filename="Été.mp3")
    got = httpx.get(url)
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "audio/mpeg"
    assert "filename*=UTF-8''%C3%89t%C3%A9.mp3" in got.headers["content-disposition"]
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.get(tampered).status_code == 403  # signatures are checked

    storage.download_file("local/job_1.mp3", tmp_path / "back.mp3")
    assert (tmp_path / "back.mp3").read_bytes() == data

    for i in range(3):
        storage.put_bytes(storage.staging_key("job_1", f"{i:06d}.pcm"), b"\0" * 100)
    assert storage.delete_prefix(storage.staging_key("job_1", "")) == 3
    assert not list((rclone.root / "shoal" / "_staging").glob("job_1/*"))


def test_what_differs_from_s3(rclone: Rclone, tmp_path: Path) -> None:
    storage = rclone.storage()
    storage.ensure_bucket()
    storage.put_bytes("a/b.wav", b"RIFF" + b"\0" * 96, "audio/wav", {"job-id": "j"})

    # A ranged GET answers 200 (not 206), though with only the range's bytes.
    ranged = httpx.get(storage.presign_get("a/b.wav"), headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 200 and ranged.content == b"RIFF"

    # Metadata names come back capitalised ("Job-Id"), not lower-cased as S3 does.
    assert storage.head("a/b.wav")["metadata"] == {"Job-Id": "j"}

    # Short access keys are refused outright.
    short = Storage(
        bucket="shoal",
        endpoint_url=f"http://127.0.0.1:{rclone.port}",
        access_key_id="AK",
        secret_access_key=rclone.secrets.s3_secret_access_key,
        path_style=True,
        checksum_when_required=True,
    )
    with pytest.raises(StorageRejected):
        short.head("a/b.wav")

    # After a restart objects are still there (they are files) but metadata is gone,
    # and the content type is guessed from the extension.
    rclone.stop()
    rclone.start()
    after = rclone.storage().head("a/b.wav")
    assert after["bytes"] == 100 and after["metadata"] == {}
    assert after["content_type"] in ("audio/wav", "audio/x-wav", "audio/vnd.wave")
