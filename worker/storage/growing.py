"""Uploading a file while it is still being written: its finished parts go up as it grows.

A job's output is encoded while its segments are synthesised
(:mod:`worker.audio.stream`); a long one would otherwise sit on disk, whole,
before its first byte went up.  :class:`GrowingUpload` watches the file on a
thread of its own and sends each multipart part as soon as the file has grown
past it, so what is left when the encoder finishes is the last part or two::

    upload = GrowingUpload(storage, path, key, content_type="audio/mpeg")
    ...                               # the file grows (another thread writes it)
    result = upload.finish()          # the file is complete: the rest, then complete
    upload.abort()                    # or: nothing is left in the bucket

Encoders go back to the start of a file when they finish it (a WAV header's
sizes, an MP3's Xing frame, FLAC's STREAMINFO; an M4A with its index first is
rewritten whole), so part 1 is only sent by :meth:`finish`, and every part
sent early is read again then and sent again if its bytes changed (compared
by MD5): whatever a muxer does, the object is the finished file.  A file
smaller than two parts goes up as :meth:`Storage.upload_file` sends it.

Memory is one part.  The digest of the whole file is the caller's (it is
computed where the file is finished).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.storage.client import Storage
from worker.storage.model import UploadResult, encode_metadata, validate_key
from worker.storage.transport import Tally

log = logging.getLogger(__name__)

#: How far the file must have grown past a part before it is sent: a muxer's
#: buffer may still be settling the bytes just written.
_MARGIN = 256 << 10


class GrowingUpload:
    """One file uploaded in parts while it is written; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        path: Path,
        key: str,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        poll_seconds: float = 0.25,
    ) -> None:
        self.storage = storage
        self.path = path
        self.key = validate_key(key)
        self.content_type = content_type
        self.metadata = dict(metadata or {})
        self.part_bytes = storage.part_bytes
        self._poll = poll_seconds
        self._tally = Tally()
        self._upload_id: str | None = None
        self._sent: dict[int, tuple[str, str]] = {}  # part number → (MD5 hex, ETag)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"upload {path.name}", daemon=True)
        self._thread.start()

    @property
    def parts_sent(self) -> int:
        """Parts sent while the file was growing (for logs and tests)."""
        return len(self._sent)

    def finish(self, path: Path | None = None, sha256: str = "") -> UploadResult:
        """Send what is left of the now complete file (at ``path``, if it was renamed)
        and complete the upload; on any error the upload is aborted and the error raised.

        ``sha256`` is the file's digest, as its writer computed it (the result
        carries it; a file that never grew past two parts is hashed on the way)."""
        self._stop.set()
        self._thread.join()
        if path is not None:
            self.path = path
        if self._error is not None:
            self.abort()
            raise self._error
        if self._upload_id is None:  # never grew past two parts: one ordinary upload
            return self.storage.upload_file(
                self.path, self.key, content_type=self.content_type, metadata=self.metadata
            )
        try:
            return self._complete(sha256)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop, and abort the multipart upload if one was started."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None and not self.storage.abort_upload(self.key, upload_id):
            log.warning("upload %s of %s is left for the sweep: abort failed", upload_id, self.key)

    # -- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._poll):
                self._send_grown()
        except BaseException as exc:  # handed to finish()
            self._error = exc

    def _send_grown(self) -> None:
        """Send every part (from 2 on) the file has grown past."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:  # not created yet
            return
        number = max(self._sent, default=1) + 1
        while size >= number * self.part_bytes + _MARGIN and not self._stop.is_set():
            if self._upload_id is None:
                created = self.storage._requests.send(
                    "create_multipart_upload",
                    self.key,
                    tally=self._tally,
                    ContentType=self.content_type,
                    Metadata=encode_metadata(self.metadata),
                )
                self._upload_id = str(created["UploadId"])
            try:
                data = self._read(number)
            except FileNotFoundError:  # renamed into place meanwhile: finish() sends the rest
                return
            self._send(number, data)
            number += 1

    # -- parts -----------------------------------------------------------------------

    def _read(self, number: int) -> bytes:
        with self.path.open("rb") as f:
            f.seek((number - 1) * self.part_bytes)
            return f.read(self.part_bytes)

    def _send(self, number: int, data: bytes) -> None:
        sent: Any = self.storage._requests.send(
            "upload_part",
            self.key,
            tally=self._tally,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._sent[number] = (hashlib.md5(data).hexdigest(), str(sent["ETag"]))

    def _complete(self, sha256: str) -> UploadResult:
        """Part 1, the parts the file grew into since, and any part whose bytes changed."""
        assert self._upload_id is not None
        early = len(self._sent)
        size = self.path.stat().st_size
        count = -(-size // self.part_bytes)
        resent = 0
        for number in range(1, count + 1):
            data = self._read(number)
            known = self._sent.get(number)
            if known is None or known[0] != hashlib.md5(data).hexdigest():
                resent += known is not None
                self._send(number, data)
        for number in [n for n in self._sent if n > count]:  # the file shrank (it should not)
            del self._sent[number]
        parts = [{"PartNumber": n, "ETag": self._sent[n][1]} for n in sorted(self._sent)]
        etag = self.storage._complete(self.key, self._upload_id, parts, self._tally)
        log.info(
            "uploaded %s (%d bytes, %d parts, %d sent while it grew, %d sent again)",
            self.storage.url(self.key), size, count, early - resent, resent,
        )  # fmt: skip
        self._upload_id = None
        return UploadResult(self.storage.bucket, self.key, size, etag, sha256, self._tally.retries)
