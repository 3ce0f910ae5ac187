"""The SHA-256 digest shoal records beside every file it stores.

One helper for every place that hashes a file's bytes (an assembled output, an
audiobook, a chapter master, a master checked after download, an upload), so
the chunk size and the hex form are decided once.  :class:`Digest` is the
streaming form, for bytes hashed on their way somewhere else (an upload read
part by part, parts copied into one file); :func:`file_digest` reads a whole
file through one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Files are read in pieces of this size, so memory stays flat however large the file.
CHUNK_BYTES = 1 << 20


class Digest:
    """A running SHA-256 of the bytes passed to :meth:`update`, and how many there were."""

    __slots__ = ("_hash", "size")

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        """Add the next bytes."""
        self._hash.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        """The digest of everything added so far, as 64 lowercase hex digits."""
        return self._hash.hexdigest()


def file_digest(path: Path) -> Digest:
    """The digest and size of the file at ``path``; raises ``OSError`` if it cannot be read."""
    digest = Digest()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of the file at ``path``."""
    return file_digest(path).hexdigest()


def sha256_bytes(data: bytes) -> str:
    """The hex SHA-256 of ``data``, as :func:`sha256_file` gives it for a file of these bytes."""
    return hashlib.sha256(data).hexdigest()
