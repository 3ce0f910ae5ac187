"""Hostile EPUB archives: zip bombs, path traversal, too many members, encryption, entities.

The limits must hold *before* anything is decompressed (the central directory
is enough to refuse a bomb) and *while* decompressing (a central directory can
lie).  The bomb is streamed into an in-memory zip in 1 MiB chunks, so the test
never holds or writes its 300 MB.
"""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from tests.worker.test_books_fixtures import CONTAINER_XML, build_epub, sample_epub_spec
from worker.books import NotABook, UnsafeArchive, parse_book
from worker.books.archive import MAX_MEMBERS, SafeArchive

CENTRAL = b"PK\x01\x02"
LOCAL = b"PK\x03\x04"


def _epub_with(members: dict[str, bytes]) -> bytes:
    """A minimal EPUB shell (mimetype, container) plus ``members``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        zf.writestr("META-INF/container.xml", CONTAINER_XML)
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _patch_headers(data: bytes, name: bytes, *, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite one field of ``name``'s central-directory header (and its local header)."""
    out = bytearray(data)
    start = 0
    while (start := out.find(CENTRAL, start)) >= 0:
        name_len = struct.unpack_from("<H", out, start + 28)[0]
        if out[start + 46 : start + 46 + name_len] == name:
            struct.pack_into(fmt, out, start + offset, value)
            local = struct.unpack_from("<I", out, start + 42)[0]
            if offset == 8:  # general-purpose flags sit at offset 6 of the local header
                struct.pack_into(fmt, out, local + 6, value)
        start += 4
    return bytes(out)


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """An EPUB whose chapter unpacks to 300 MB of zeros, from about 1.4 MB."""
    buffer = io.BytesIO()
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        zf.writestr("META-INF/container.xml", CONTAINER_XML)
        with zf.open("OEBPS/bomb.xhtml", "w", force_zip64=True) as member:
            for _ in range(300):
                member.write(chunk)
    return buffer.getvalue()


def parse_unopened(monkeypatch: pytest.MonkeyPatch, data: bytes, **kwargs: object) -> None:
    """parse_book(data), failing the test if any member is opened for reading first."""

    def refuse(*args: object, **kw: object) -> None:
        raise AssertionError("a member was decompressed before the archive was checked")

    with monkeypatch.context() as patch:
        patch.setattr(zipfile.ZipFile, "open", refuse)
        parse_book(data, **kwargs)  # type: ignore[arg-type]


def test_zip_bomb_is_refused_from_the_central_directory(
    zip_bomb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(zip_bomb) < 5 << 20
    with pytest.raises(UnsafeArchive, match=r"'OEBPS/bomb.xhtml'.*314572800 bytes"):
        parse_unopened(monkeypatch, zip_bomb, filename="bomb.epub")
    # Under a generous size limit, its compression ratio still gives it away.
    with pytest.raises(UnsafeArchive, match=r"over 100:1\): a zip bomb"):
        parse_unopened(monkeypatch, zip_bomb, max_unpacked_bytes=1 << 30)


def test_total_unpacked_size_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    members = {f"OEBPS/{n}.xhtml": bytes(range(256)) * 400 for n in range(5)}  # 5 × 100 KiB
    with pytest.raises(UnsafeArchive, match=r"would unpack to \d+ bytes; the limit is 300000"):
        parse_unopened(monkeypatch, _epub_with(members), max_unpacked_bytes=300_000)


def test_compression_ratio_over_100_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _epub_with({"OEBPS/zeros.xhtml": bytes(4 << 20)})  # 4 MiB of zeros: ~1000:1
    with pytest.raises(UnsafeArchive, match=r"over 100:1"):
        parse_unopened(monkeypatch, data)


def test_small_repetitive_members_are_fine() -> None:
    spec = sample_epub_spec()
    spec.extra["OEBPS/padding.css"] = b" " * 500_000  # compresses ~1000:1, but is harmless
    assert parse_book(build_epub(spec)).chapters


@pytest.mark.parametrize(
    "name",
    ["../evil.xhtml", "OEBPS/../../evil.xhtml", "/etc/passwd", "C:/Windows/evil", "a\\..\\..\\b"],
)
def test_path_traversal_is_refused(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnsafeArchive, match="unsafe path"):
        parse_unopened(monkeypatch, _epub_with({name: b"x"}), filename="book.epub")


def test_too_many_members() -> None:
    members = {f"OEBPS/{n}.xhtml": b"" for n in range(MAX_MEMBERS + 1)}
    with pytest.raises(UnsafeArchive, match=f"{MAX_MEMBERS + 3} members"):
        parse_book(_epub_with(members))


def test_encrypted_member_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _epub_with({"OEBPS/secret.xhtml": b"<html/>"})
    data = _patch_headers(data, b"OEBPS/secret.xhtml", offset=8, fmt="<H", value=0x1)
    with pytest.raises(UnsafeArchive, match=r"encrypted member: 'OEBPS/secret\.xhtml'"):
        parse_unopened(monkeypatch, data)


def test_lying_central_directory_never_yields_more_than_declared() -> None:
    spec = sample_epub_spec()
    data = build_epub(spec)
    # Claim the chapter unpacks to 10 bytes: decompression stops there and the CRC fails.
    data = _patch_headers(data, b"OEBPS/ch1.xhtml", offset=24, fmt="<I", value=10)
    with pytest.raises(NotABook, match=r"member 'OEBPS/ch1\.xhtml' of the upload is corrupt"):
        parse_book(data)


def test_budget_is_enforced_while_decompressing() -> None:
    data = _epub_with({"OEBPS/a.xhtml": b"a" * 250})  # ~520 bytes unpacked in all
    archive = SafeArchive(data, max_unpacked_bytes=600)
    assert archive.read("OEBPS/a.xhtml") == b"a" * 250
    assert archive.read("OEBPS/a.xhtml") == b"a" * 250
    # Each read spends the budget: the third would pass 600 bytes in all.
    with pytest.raises(UnsafeArchive, match="unpacks past the limit"):
        archive.read("OEBPS/a.xhtml")


def test_xml_entity_declarations_are_refused() -> None:
    spec = sample_epub_spec()
    spec.docs[2].content = (
        '<?xml version="1.0"?><!DOCTYPE html [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>&b;</p></body></html>'
    )
    with pytest.raises(UnsafeArchive, match=r"'OEBPS/ch1\.xhtml' declares XML entities"):
        parse_book(build_epub(spec))


def test_html_named_entities_are_read() -> None:
    spec = sample_epub_spec()
    spec.docs[2].content = (
        '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body>'
        "<p>Caf&eacute;&nbsp;noir &mdash; &amp; more&hellip;</p></body></html>"
    )
    book = parse_book(build_epub(spec))
    assert book.chapters[0].text == "Café noir — & more…"


def test_deeply_nested_document_does_not_overflow() -> None:
    spec = sample_epub_spec()
    depth = 20_000
    spec.docs[2].content = (
        '<html xmlns="http://www.w3.org/1999/xhtml"><body>'
        + "<div>" * depth
        + "<p>Deep down.</p>"
        + "</div>" * depth
        + "</body></html>"
    )
    book = parse_book(build_epub(spec))
    assert book.chapters[0].text == "Deep down."
