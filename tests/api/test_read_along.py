"""Timings of books over HTTP on a real stack (a Celery worker, local_tts, moto S3): each
chapter gets its captions, the manifest lists them with their offsets in the book, and
``produce.read_along`` makes an EPUB 3 with Media Overlays that Debian's epubcheck accepts.
"""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import ApiEnv
from tests.api.server import queued_messages
from tests.api.test_books import upload
from tests.epubcheck import epubcheck

BOOK = """# The Harbour

Boats rocked at the quay. Gulls cried over the water.

The tide came in slowly.

# The Storm

Waves rose higher than the mast. Nobody slept.
"""


def wait_built(http: httpx.Client, batch_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch = http.get(f"/v1/batches/{batch_id}").json()
        if batch["status"] not in ("queued", "running") and batch["outputs"]["assembly"][
            "state"
        ] in ("done", "failed"):
            return dict(batch)
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)


def test_a_book_gets_chapter_captions_and_a_read_along_epub(live: ApiEnv, tmp_path: Path) -> None:
    options = {"produce": {"read_along": True, "combined": "m4b"}}
    answer = upload(live, BOOK.encode(), "sea.md", tenant="t2", options=options)
    assert answer.status_code == 202, answer.text
    with live.client("t2") as http:
        batch = wait_built(http, answer.json()["batch"]["id"])
        assert batch["status"] == "succeeded", batch
        epub = batch["outputs"]["read_along"]
        assert epub is not None and epub["download_url"], batch["outputs"]
        jobs = [http.get(f"/v1/jobs/{i['job_id']}").json() for i in batch["items"]]
        manifest = httpx.get(batch["outputs"]["manifest"]["download_url"]).json()
        data = httpx.get(epub["download_url"]).content
    assert len(data) == epub["bytes"]
    for job in jobs:
        assert job["request"]["timestamps"] == "sentence"
        assert {c["format"] for c in job["captions"]} == {"vtt", "srt", "json"}
    chapters = manifest["chapters"]
    assert manifest["read_along"] == epub["key"]
    assert [c["captions"]["vtt"] for c in chapters] == [
        next(c["key"] for c in job["captions"] if c["format"] == "vtt") for job in jobs
    ]
    assert chapters[0]["captions_offset_s"] == chapters[0]["audio_start_s"] > 0
    assert chapters[1]["captions_offset_s"] > chapters[0]["captions_offset_s"]

    path = tmp_path / "sea.epub"
    path.write_bytes(data)
    valid, report = epubcheck(path)
    assert valid, report
    with zipfile.ZipFile(path) as book:
        smil = book.read("OEBPS/c001.smil").decode()
        xhtml = book.read("OEBPS/c001.xhtml").decode()
        opf = book.read("OEBPS/content.opf").decode()
    # The spoken title is the heading; every sentence a span the overlay points at.
    assert '<h1 id="t1">The Harbour</h1>' in xhtml
    assert '<span id="s2">Gulls cried over the water.</span>' in xhtml
    assert xhtml.count("<p>") == 2
    clips = re.findall(r'<text src="c001\.xhtml#(\w+)"/>', smil)
    assert clips == ["t1", "s1", "s2", "s3"]
    assert 'media-type="audio/mpeg"' in opf and "media:duration" in opf


def test_a_read_along_book_needs_mp3_or_m4a_chapters(idle: ApiEnv) -> None:
    before = queued_messages(idle.stack)
    options = {"produce": {"read_along": True, "chapter_format": "wav"}}
    answer = upload(idle, BOOK.encode(), "sea.md", tenant="t2", options=options)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == "produce.read_along" and "mp3 or m4a" in error["message"]
    assert queued_messages(idle.stack) == before
