"""``POST /v1/books`` over HTTP on a real stack with no worker: reading, refusing, queueing.

Bad books (not an EPUB, an EPUB without text, an upload over the limit, a zip
bomb, a cover that is not an image, bad options; a scanned or locked PDF, a
"DOCX" or "HTML" file that is not one) get a 4xx naming the problem and leave
nothing behind: no batch, no job, no message.  A good one becomes a batch with
one item per chapter, and the answer lists them; a dry run lists every
skipped part with its reason.  A chapter range keeps only those chapters: one
test narrates it to the end on a stack with a worker (``live``).
"""

from __future__ import annotations

import dataclasses
import fractions
import io
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from pypdf import PdfReader, PdfWriter

from tests.api.conftest import ApiEnv
from tests.api.server import queued_messages
from tests.worker.test_books_fixtures import (
    CONTAINER_XML,
    PNG_1X1,
    SAMPLE_MARKDOWN,
    Doc,
    EpubSpec,
    build_epub,
    sample_epub_spec,
    xhtml,
)
from tests.worker.test_books_formats import WEB_PAGE, make_pdf, novel_pages
from worker.batches.store import BatchStore


def upload(
    env: ApiEnv,
    data: bytes,
    filename: str,
    *,
    tenant: str = "t1",
    params: dict[str, Any] | None = None,
    **form: Any,
) -> Any:
    files: dict[str, Any] = {"file": (filename, data, "application/octet-stream")}
    if "cover" in form:
        files["cover"] = ("cover.png", form.pop("cover"), "image/png")
    if isinstance(form.get("options"), dict):
        form["options"] = json.dumps(form["options"])
    with env.client(tenant) as http:
        return http.post("/v1/books", files=files, data=form, params=params)


def footprint(env: ApiEnv) -> tuple[int, int, int]:
    """Messages queued, batch keys and job keys under the stack's prefix."""
    prefix = env.stack.keys.prefix
    redis = env.stack.redis
    return (
        queued_messages(env.stack),
        len(list(redis.scan_iter(f"{prefix}:batch:*"))),
        len(list(redis.scan_iter(f"{prefix}:job:*"))),
    )


def png() -> bytes:
    """A small real PNG, encoded by FFmpeg (covers must decode)."""
    pixels = np.zeros((48, 64, 3), dtype=np.uint8)
    pixels[8:40, 8:56, 1] = 255
    context = av.CodecContext.create("png", "w")
    context.width, context.height, context.pix_fmt = 64, 48, "rgb24"
    context.time_base = fractions.Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
    return b"".join(bytes(p) for p in [*context.encode(frame), *context.encode(None)])


PNG = png()


def zip_bomb() -> bytes:
    """An EPUB whose one chapter inflates 4 MiB of zeros from a few KiB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        zf.writestr("META-INF/container.xml", CONTAINER_XML)
        zf.writestr("OEBPS/bomb.xhtml", b"\0" * (4 << 20))
    return buffer.getvalue()


def empty_epub() -> bytes:
    blank = xhtml("<section><h1>   </h1><p> </p></section>")
    return build_epub(EpubSpec(docs=[Doc("c1", "c1.xhtml", blank)], nav=None, cover=None))


@pytest.mark.parametrize(
    ("data", "filename", "form", "status", "code", "field", "says"),
    [
        (PNG_1X1, "novel.epub", {}, 422, "not_a_book", "file", ""),
        (b"PK\x03\x04 not really a zip", "novel.epub", {}, 422, "not_a_book", "file", ""),
        (b"", "empty.txt", {}, 422, None, "file", ""),
        (None, "hollow.epub", {}, 422, "empty_book", "file", ""),
        (None, "bomb.epub", {}, 422, "unsafe_archive", "file", "bomb.xhtml"),
        (b"Chapter 1\n\n" + b"word " * 21000, "huge.txt", {}, 413, "book_too_large", "file", ""),
        (b"# One\n\nText.", "b.md", {"cover": b"GIF89a"}, 422, None, "cover", "JPEG or PNG"),
        (
            b"# One\n\nText.",
            "b.md",
            {"options": {"produce": {"combined": "wav"}}},
            422,
            None,
            "options.produce.combined",
            "",
        ),
        (b"# One\n\nText.", "b.md", {"options": "{not json"}, 422, None, "options", ""),
        (
            b"# One\n\nText.",
            "b.md",
            {"options": {"produce": {"combined": None, "loudness": "acx"}}},
            422,
            None,
            "produce.loudness",
            "",
        ),
        (
            b"# One\n\n" + b"Long text here. " * 300,
            "b.md",
            {},
            413,
            None,
            "file",
            "chapter 1",
        ),
    ],
)
def test_bad_books_are_refused_and_leave_nothing(
    idle: ApiEnv,
    data: bytes | None,
    filename: str,
    form: dict[str, Any],
    status: int,
    code: str | None,
    field: str,
    says: str,
) -> None:
    if data is None:
        data = empty_epub() if filename == "hollow.epub" else zip_bomb()
    before = footprint(idle)
    answer = upload(idle, data, filename, **form)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["field"] == field, error
    if code is not None:
        assert error["code"] == code, error
    assert says in error["message"], error
    assert error["message"]
    assert footprint(idle) == before


def test_dry_run_shows_the_chapters_and_makes_nothing(idle: ApiEnv) -> None:
    before = footprint(idle)
    spec = dataclasses.replace(sample_epub_spec(), cover=PNG)
    answer = upload(idle, build_epub(spec), "novel.epub", params={"dry_run": "true"})
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["batch"] is None
    book = out["book"]
    assert book["title"] == "The Test Book" and book["author"] == "Ada Author"
    assert book["kind"] == "epub" and book["language"] == "en" and book["cover"] is True
    titles = [c["title"] for c in book["chapters"]]
    assert len(titles) == 3 and "Rain" in titles[1] and "Sun" in titles[2]
    assert all(c["chars"] > 0 and c["source"] for c in book["chapters"])
    assert any("opyright" in s for s in book["skipped"])
    assert book["utf8_bytes"] == sum(c["utf8_bytes"] for c in book["chapters"])
    assert footprint(idle) == before

    # A cover FFmpeg cannot decode is left out, and the answer says so.
    answer = upload(idle, build_epub(sample_epub_spec()), "n.epub", params={"dry_run": "1"})
    assert answer.json()["book"]["cover"] is False
    assert any("cover" in s for s in answer.json()["book"]["skipped"])


def test_a_markdown_book_becomes_a_batch_of_its_chapters(idle: ApiEnv) -> None:
    answer = upload(
        idle,
        SAMPLE_MARKDOWN.encode(),
        "sea.md",
        author="Someone Else",
        cover=PNG,
        options={
            "produce": {"combined": "mp3", "chapter_silence_ms": 1500},
            "defaults": {"prosody": {"speed": 1.1}},
            "metadata": {"series": 1},
        },
    )
    assert answer.status_code == 202, answer.text
    out = answer.json()
    book, batch = out["book"], out["batch"]
    assert answer.headers["Location"] == f"/v1/batches/{batch['id']}"
    assert book["title"] == "Sea Stories" and book["author"] == "Someone Else"
    titles = [c["title"] for c in book["chapters"]]
    assert titles[-3:] == ["The Harbour", "The Storm", "The Return"]
    assert [i["title"] for i in batch["items"]] == titles
    assert [i["source"] for i in batch["items"]] == [c["source"] for c in book["chapters"]]
    assert batch["book"]["kind"] == "markdown" and batch["book"]["cover"] is True
    assert batch["book"]["filename"] == "sea.md"
    assert batch["produce"]["combined"] == "mp3" and batch["metadata"] == {"series": 1}
    assert batch["status"] == "queued"
    # The title is read first; the chapter's text follows, cleaned.
    job = idle.stack.store.get(batch["items"][titles.index("The Storm")]["job_id"])
    assert job is not None
    assert job.request.text.startswith("The Storm.\n\n")
    assert "~~" not in job.request.text and "* * *" not in job.request.text
    assert job.request.prosody is not None and job.request.prosody.speed == 1.1
    stored = BatchStore(idle.stack.redis, idle.stack.keys, 3600).get(batch["id"])
    assert stored is not None and stored.book.cover_key is not None
    assert idle.stack.storage.exists(stored.book.cover_key)


def test_speak_titles_off_and_idempotent_uploads(idle: ApiEnv) -> None:
    text = b"Chapter 1\n\nThe first part.\n\nChapter 2\n\nThe second part.\n"
    headers_options = {"options": {"speak_titles": False}}
    with idle.client("idem") as http:
        responses = [
            http.post(
                "/v1/books",
                files={"file": ("two.txt", text, "text/plain")},
                data={"options": json.dumps(headers_options["options"])},
                headers={"Idempotency-Key": "upload-1"},
            )
            for _ in range(2)
        ]
        changed = http.post(
            "/v1/books",
            files={"file": ("two.txt", text + b"More.", "text/plain")},
            headers={"Idempotency-Key": "upload-1"},
        )
    first, again = responses
    assert first.status_code == 202 and again.status_code == 200, again.text
    assert again.json()["batch"]["id"] == first.json()["batch"]["id"]
    assert changed.status_code == 409
    job = idle.stack.store.get(first.json()["batch"]["items"][0]["job_id"])
    assert job is not None and job.request.text == "The first part."


# -- more formats: refused saying why, or read and shown with every skipped part ------


def scanned_pdf() -> bytes:
    """A PDF whose one page has no text at all, as a scan has none."""
    return make_pdf([[]])


def locked_pdf() -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(novel_pages()))))
    writer.encrypt(user_password="secret", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "filename", "code", "says"),
    [
        (scanned_pdf, "scan.pdf", "no_text_layer", "run OCR first"),
        (locked_pdf, "locked.pdf", "protected_book", "password"),
        (lambda: b"%PDF-1.7\n garbage", "broken.pdf", "not_a_book", "not a readable PDF"),
        (lambda: b"Chapter 1\n\nText.", "fake.docx", "not_a_book", "not a Word document"),
        (lambda: PNG, "page.html", "not_a_book", "not an HTML document: it is a PNG image"),
        (lambda: b"Just words.", "page.html", "not_a_book", "has no HTML markup"),
        (lambda: b"<!doctype html><p> </p>", "blank.html", "empty_book", ""),
    ],
)
def test_bad_html_docx_and_pdf_books_are_refused_and_leave_nothing(
    idle: ApiEnv, make: Callable[[], bytes], filename: str, code: str, says: str
) -> None:
    before = footprint(idle)
    answer = upload(idle, make(), filename)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["field"] == "file", error
    assert says in error["message"] and filename in error["message"], error
    assert footprint(idle) == before


def test_a_word_zip_bomb_is_refused_and_leaves_nothing(idle: ApiEnv) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", b"<" + b" " * (8 << 20) + b"/>")
    before = footprint(idle)
    answer = upload(idle, bomb.getvalue(), "bomb.docx")
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "unsafe_archive"
    assert footprint(idle) == before


def test_a_dry_run_shows_every_skipped_part_and_why(idle: ApiEnv) -> None:
    before = footprint(idle)
    answer = upload(idle, WEB_PAGE, "sea.html", params={"dry_run": "true"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["batch"] is None
    book = answer.json()["book"]
    assert book["kind"] == "html" and book["title"] == "Sea Stories"
    assert [c["title"] for c in book["chapters"]] == ["Sea Stories", "The Harbour", "The Storm"]
    assert all(c["estimated_cost_usd"] > 0 for c in book["chapters"])
    total = sum(c["estimated_cost_usd"] for c in book["chapters"])
    assert total == pytest.approx(book["estimated_cost_usd"], rel=0.01)
    parts = {(p["category"], p["reason"], p["source"]) for p in book["skipped_parts"]}
    assert parts == {
        ("front_matter", "table of contents", "sea.html"),
        ("notes", "1 note", "sea.html"),
        ("table", "1 table", "sea.html#two"),
        ("code", "1 code block", "sea.html#two"),
    }
    assert [p["title"] for p in book["skipped_parts"] if p["source"] == "sea.html#two"] == [
        "The Storm",
        "The Storm",
    ]
    assert len(book["skipped"]) == len(book["skipped_parts"])
    assert footprint(idle) == before


def test_titles_are_spoken_as_words_and_marked_as_written(idle: ApiEnv) -> None:
    text = b"# I\n\nThe sea was calm.\n\n# CHAPTER THE SECOND\n\nThe storm came.\n"
    spoken = upload(idle, text, "storm.md")
    assert spoken.status_code == 202, spoken.text
    items = spoken.json()["batch"]["items"]
    assert [i["title"] for i in items] == ["I", "CHAPTER THE SECOND"]  # the chapter markers
    texts = [job.request.text for i in items if (job := idle.stack.store.get(i["job_id"]))]
    assert texts == [
        "Chapter One.\n\nThe sea was calm.",  # a number, never the pronoun
        "Chapter the Second.\n\nThe storm came.",
    ]
    written = upload(idle, text, "storm.md", options={"titles": "as_written"})
    job = idle.stack.store.get(written.json()["batch"]["items"][0]["job_id"])
    assert job is not None and job.request.text == "I.\n\nThe sea was calm."
    bad = upload(idle, text, "storm.md", options={"titles": "shouted"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "options.titles"


def test_an_svg_cover_becomes_the_audiobooks_png(idle: ApiEnv) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="400"><rect width="300"'
    svg += b' height="400" fill="#246"/></svg>'
    with idle.client("t1") as http:
        answer = http.post(
            "/v1/books",
            files={
                "file": ("sea.md", b"# One\n\nText.\n\n# Two\n\nMore.", "text/markdown"),
                "cover": ("cover.svg", svg, "image/svg+xml"),
            },
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["book"]["cover"] is True
    stored = BatchStore(idle.stack.redis, idle.stack.keys, 3600).get(answer.json()["batch"]["id"])
    assert stored is not None and stored.book.cover_type == "image/png"


# -- chapter ranges: only some chapters, numbered from 1 (a chapter's index + 1) --------------


def numbered_book(count: int) -> bytes:
    """A Markdown book of ``count`` chapters titled "Chapter 1" … "Chapter N"."""
    return "".join(
        f"# Chapter {n}\n\nThe text of chapter {n}, {'and more ' * n}words.\n\n"
        for n in range(1, count + 1)
    ).encode()


@pytest.mark.parametrize(
    ("chapters", "dry_run", "says"),
    [
        ("7-9", False, "the book has 5 chapters (1-5): 7-9 is past its end"),
        ("4-9", True, "(1-5): 6-9 of 4-9 is past its end"),
        ([2, 6], False, "(1-5): 6 of 2,6 is past its end"),
        ("", False, "the range is empty"),
        ([], True, "the range is empty"),
        ("5-3", False, '"5-3" is reversed: write "3-5"'),
        ("3-", False, "'3-' is not a chapter number"),
        ("1,,2", False, "empty part between commas"),
        ("0-2", False, "numbered from 1"),
        ([1, "x"], False, "whole numbers only"),
        (3, False, 'a range like "3-5"'),
    ],
)
def test_a_bad_chapter_range_is_refused_naming_it_and_leaves_nothing(
    idle: ApiEnv, chapters: Any, dry_run: bool, says: str
) -> None:
    before = footprint(idle)
    params = {"dry_run": "true"} if dry_run else None
    answer = upload(
        idle, numbered_book(5), "five.md", params=params, options={"chapters": chapters}
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == "options.chapters", error
    assert error["message"].startswith("options.chapters: ") and says in error["message"], error
    assert footprint(idle) == before


def test_a_dry_run_shows_which_chapters_a_range_narrates_and_counts_only_those(
    idle: ApiEnv,
) -> None:
    before = footprint(idle)
    whole = upload(idle, numbered_book(5), "five.md", params={"dry_run": "true"}).json()["book"]
    answer = upload(
        idle,
        numbered_book(5),
        "five.md",
        params={"dry_run": "true"},
        options={"chapters": "5, 1,4"},  # any order, spaces allowed
    )
    assert answer.status_code == 200, answer.text
    book = answer.json()["book"]
    assert book["chapter_range"] == "1,4-5" and whole["chapter_range"] is None
    assert [c["title"] for c in book["chapters"]] == [f"Chapter {n}" for n in range(1, 6)]
    assert [c["narrated"] for c in book["chapters"]] == [True, False, False, True, True]
    assert all(c["narrated"] for c in whole["chapters"])
    chosen = [c for c in book["chapters"] if c["narrated"]]
    assert book["utf8_bytes"] == sum(c["utf8_bytes"] for c in chosen) < whole["utf8_bytes"]
    assert book["chars"] == sum(c["chars"] for c in chosen)
    cost = sum(c["estimated_cost_usd"] for c in chosen)
    assert book["estimated_cost_usd"] == pytest.approx(cost, rel=0.01)
    assert book["estimated_cost_usd"] < whole["estimated_cost_usd"]
    assert footprint(idle) == before


def test_a_range_makes_a_batch_of_only_those_chapters_billed_for_only_those(
    idle: ApiEnv,
) -> None:
    answer = upload(idle, numbered_book(5), "five.md", options={"chapters": [4, 2]})
    assert answer.status_code == 202, answer.text
    batch = answer.json()["batch"]
    # Book order, the book's own titles and numbers: "Chapter 4" stays "Chapter 4".
    assert [i["title"] for i in batch["items"]] == ["Chapter 2", "Chapter 4"]
    assert [i["source"] for i in batch["items"]] == [
        c["source"] for c in answer.json()["book"]["chapters"] if c["narrated"]
    ]
    jobs = [idle.stack.store.get(i["job_id"]) for i in batch["items"]]
    texts = [job.request.text for job in jobs if job is not None]
    assert texts[0].startswith("Chapter Two.\n\nThe text of chapter 2,")
    assert texts[1].startswith("Chapter Four.\n\nThe text of chapter 4,")
    assert batch["billing"]["utf8_bytes"] == sum(len(t.encode()) for t in texts)


def test_a_range_narrates_only_those_chapters_into_the_audiobook(
    live: ApiEnv, tmp_path: Path
) -> None:
    book = numbered_book(3)
    answer = upload(live, book, "three.md", options={"chapters": "2-3"})
    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["batch"]["id"]
    deadline = time.monotonic() + 90
    with live.client() as http:
        while (batch := http.get(f"/v1/batches/{batch_id}").json())["outputs"]["combined"] is None:
            assert batch["status"] in ("queued", "running", "succeeded"), batch
            assert time.monotonic() < deadline, batch
            time.sleep(0.2)
    assert batch["status"] == "succeeded", batch
    assert [i["title"] for i in batch["items"]] == ["Chapter 2", "Chapter 3"]
    combined = batch["outputs"]["combined"]
    path = tmp_path / f"three.{combined['format']}"
    path.write_bytes(httpx.get(combined["download_url"], timeout=30).content)
    with av.open(str(path)) as container:
        markers = [c["metadata"]["title"] for c in container.chapters()]
    assert markers == ["Chapter 2", "Chapter 3"]
