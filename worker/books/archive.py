"""Read members of an untrusted zip without letting it exhaust memory or escape its folder.

Everything that can be known from the central directory is checked *before*
anything is decompressed (:class:`SafeArchive` refuses the archive at once):

* more than :data:`MAX_MEMBERS` members (checked from the end-of-central-
  directory record, before :mod:`zipfile` even lists them);
* a total uncompressed size over ``max_unpacked_bytes``;
* a member that claims to expand more than :data:`MAX_RATIO` times, once it is
  over :data:`RATIO_FLOOR` (small files of repeated markup legitimately
  compress well, and cannot hurt);
* member names that are absolute, carry a drive letter or a NUL, or climb out
  with ``..`` (nothing is written to disk, but such a name means a hostile
  file, and we would rather say so than guess what it meant);
* encrypted members.

The central directory can lie, so the same limits are enforced while
decompressing: :meth:`SafeArchive.read` reads in chunks and stops as soon as a
member grows past its declared size or the archive's remaining budget.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib

from worker.books.errors import NotABook, UnsafeArchive

__all__ = ["MAX_MEMBERS", "MAX_RATIO", "RATIO_FLOOR", "SafeArchive", "member_names"]

MAX_MEMBERS = 10_000
MAX_RATIO = 100
RATIO_FLOOR = 1 << 20
CHUNK = 64 << 10
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_DRIVE = re.compile(r"^[A-Za-z]:")
# What zipfile and its decompressors raise on a broken archive or member.
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)


def _declared_members(data: bytes) -> int | None:
    """The member count in the end-of-central-directory record, or None if unknown."""
    # The record is at the end, possibly followed by a comment of up to 64 KiB.
    start = data.rfind(_EOCD, max(0, len(data) - _EOCD_SIZE - 0xFFFF))
    if start < 0 or len(data) < start + _EOCD_SIZE:
        return None
    (total,) = struct.unpack_from("<H", data, start + 10)
    return None if total == 0xFFFF else int(total)  # 0xFFFF: the real count is in ZIP64


def _unsafe_name(name: str) -> bool:
    """Whether a member name is absolute, has a drive or NUL, or climbs out with '..'."""
    path = name.replace("\\", "/")
    if "\x00" in name or path.startswith("/") or _DRIVE.match(path):
        return True
    return ".." in path.split("/")


def _open(data: bytes, label: str) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The zip and its members, refused before listing when it declares too many."""
    declared = _declared_members(data)
    if declared is not None and declared > MAX_MEMBERS:
        raise UnsafeArchive(f"{label} has {declared} members; more than {MAX_MEMBERS} is refused")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (*_CORRUPT, struct.error) as exc:
        raise NotABook(f"{label} is not a readable zip archive: {exc}") from exc
    if len(infos) > MAX_MEMBERS:
        raise UnsafeArchive(f"{label} has {len(infos)} members; more than {MAX_MEMBERS} is refused")
    return archive, infos


def member_names(data: bytes, *, label: str) -> tuple[str, ...]:
    """The member names of a zip, read from its central directory (nothing is decompressed).

    What tells an EPUB from a Word document; the member count is checked first.
    """
    _, infos = _open(data, label)
    return tuple(info.filename for info in infos)


class SafeArchive:
    """An untrusted zip (an EPUB, a DOCX), checked up front; members read with a running budget.

    ``label`` names the upload in error messages.
    """

    def __init__(self, data: bytes, *, max_unpacked_bytes: int, label: str = "the EPUB") -> None:
        self.label = label
        self._zip, infos = _open(data, label)
        total = 0
        for info in infos:
            self._check_member(info, max_unpacked_bytes)
            total += info.file_size
        if total > max_unpacked_bytes:
            raise UnsafeArchive(
                f"{label} would unpack to {total} bytes; the limit is {max_unpacked_bytes}"
            )
        self._infos = {info.filename: info for info in infos}
        self._folded = {name.casefold(): info for name, info in reversed(self._infos.items())}
        self._budget = max_unpacked_bytes

    def _check_member(self, info: zipfile.ZipInfo, max_unpacked_bytes: int) -> None:
        name = info.filename
        if _unsafe_name(name):
            raise UnsafeArchive(f"{self.label} has a member with an unsafe path: {name!r}")
        if info.flag_bits & 0x1:
            raise UnsafeArchive(f"{self.label} has an encrypted member: {name!r}")
        if info.file_size > max_unpacked_bytes:
            raise UnsafeArchive(
                f"member {name!r} of {self.label} would unpack to {info.file_size} bytes; "
                f"the limit is {max_unpacked_bytes}"
            )
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise UnsafeArchive(
                f"member {name!r} of {self.label} expands {info.file_size} bytes from "
                f"{info.compress_size} (over {MAX_RATIO}:1): a zip bomb"
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Member names in archive order."""
        return tuple(self._infos)

    def find(self, name: str) -> str | None:
        """The member called ``name``, matched exactly, else ignoring case; or None."""
        if name in self._infos:
            return name
        info = self._folded.get(name.casefold())
        return info.filename if info else None

    def first_name(self) -> str | None:
        """The first member's name (where an EPUB's ``mimetype`` belongs)."""
        return next(iter(self._infos), None)

    def read(self, name: str) -> bytes:
        """Decompress one member in chunks, never past its declared size or the budget."""
        info = self._infos.get(name)
        if info is None:
            raise NotABook(f"{self.label} has no member {name!r}")
        limit = min(info.file_size, self._budget)
        out = bytearray()
        try:
            with self._zip.open(info) as member:
                while chunk := member.read(CHUNK):
                    out += chunk
                    if len(out) > limit:
                        raise UnsafeArchive(
                            f"member {name!r} of {self.label} unpacks past "
                            f"{'its declared size' if limit == info.file_size else 'the limit'}"
                        )
        except _CORRUPT as exc:
            raise NotABook(f"member {name!r} of {self.label} is corrupt: {exc}") from exc
        self._budget -= len(out)
        return bytes(out)
