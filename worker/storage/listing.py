"""What a :class:`~worker.storage.client.Storage` lists and deletes.

:class:`Listing` is a part of ``Storage`` (it inherits it): objects under a
prefix, deletion of one, many or a whole prefix (in ``DeleteObjects`` batches
of :data:`DELETE_BATCH`), and multipart uploads left incomplete.  Every request
goes through the storage's one retrying transport.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from worker.storage.errors import TRANSIENT_CODES, StorageRejected, StorageUnavailable
from worker.storage.model import IncompleteUpload, validate_key, validate_prefix
from worker.storage.transport import Requests

log = logging.getLogger(__name__)

DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys


class Listing:
    """Listing and deletion, for :class:`~worker.storage.client.Storage`."""

    _requests: Requests

    def url(self, key: str) -> str:
        raise NotImplementedError  # Storage's

    def list_objects(self, prefix: str) -> Iterator[tuple[str, datetime | None]]:
        """Every object under ``prefix`` (non-empty): its key and when it was written."""
        for page in self._requests.pages("list_objects_v2", validate_prefix(prefix)):
            for item in page.get("Contents", ()):
                yield item["Key"], item.get("LastModified")

    # -- deletion ----------------------------------------------------------------

    def delete(self, key: str) -> None:
        """Delete one object; deleting a missing key is not an error."""
        self._requests.send("delete_object", validate_key(key))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; returns how many.

        An empty prefix is refused: it would empty the bucket.
        """
        prefix = validate_prefix(prefix)
        deleted = 0
        batch: list[str] = []
        for page in self._requests.pages("list_objects_v2", prefix):
            batch.extend(item["Key"] for item in page.get("Contents", ()))
            while len(batch) >= DELETE_BATCH:
                deleted += self._delete_batch(batch[:DELETE_BATCH])
                batch = batch[DELETE_BATCH:]
        if batch:
            deleted += self._delete_batch(batch)
        if deleted:
            log.info("deleted %d object(s) under %s", deleted, self.url(prefix))
        return deleted

    def delete_many(self, keys: list[str]) -> int:
        """Delete the objects ``keys`` (missing ones are no error); returns how many."""
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            deleted += self._delete_batch(
                [validate_key(k) for k in keys[start : start + DELETE_BATCH]]
            )
        return deleted

    def _delete_batch(self, keys: list[str]) -> int:
        objects = {"Objects": [{"Key": k} for k in keys], "Quiet": True}
        errors = self._requests.send("delete_objects", Delete=objects).get("Errors") or []
        if errors:
            first = errors[0]
            code = first.get("Code")
            where = self.url(first.get("Key", ""))
            message = f"delete_objects {where}: {code} {first.get('Message', '')}"
            kind = StorageUnavailable if code in TRANSIENT_CODES else StorageRejected
            raise kind(message, code=code)
        return len(keys)

    # -- incomplete multipart uploads ---------------------------------------------

    def list_incomplete_uploads(self, prefix: str = "") -> list[IncompleteUpload]:
        """Multipart uploads under ``prefix`` that were neither completed nor aborted.

        :func:`worker.storage.sweep.sweep_incomplete_uploads` aborts the stale
        ones of shoal's (:meth:`abort_upload`).
        """
        return [
            IncompleteUpload(u["Key"], u["UploadId"], u.get("Initiated"))
            for page in self._requests.pages("list_multipart_uploads", prefix)
            for u in page.get("Uploads", ())
        ]
