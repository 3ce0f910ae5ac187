"""``make demo``: narrate the bundled sample end to end through the API, as a client would.

It submits the sample text (``samples/sample.txt``) with ``POST /v1/jobs``,
polls ``GET /v1/jobs/{id}`` until the job finishes, downloads the audio from
``GET /v1/jobs/{id}/audio`` (a redirect to a presigned URL of the store),
checks the file against the job record (size, SHA-256) and decodes it whole,
saves it under ``out/``, and prints the job record.  Then it uploads the
two-chapter sample book (``samples/book.md``) with ``POST /v1/books``, polls
``GET /v1/batches/{id}`` until the audiobook is built, and saves and checks the
M4B and its manifest the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from worker.audio import AudioError, probe

log = logging.getLogger(__name__)

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
BATCH_TERMINAL = frozenset({"succeeded", "partially_failed", "failed", "canceled"})
JOB_TIMEOUT = 300.0
POLL_INTERVAL = 0.5


class DemoFailed(Exception):
    """A step of the demo went wrong; the message says which."""


@dataclass(frozen=True, slots=True)
class Narration:
    """One demo item: a bundled text, the format to ask for, the file to save."""

    name: str
    text: str
    format: str


def sample_text() -> str:
    return resources.files("shoal_run").joinpath("samples/sample.txt").read_text("utf-8")


def sample_book() -> bytes:
    """The two-chapter Markdown book the demo turns into an audiobook."""
    return resources.files("shoal_run").joinpath("samples/book.md").read_bytes()


def narrations() -> list[Narration]:
    return [Narration("sample", sample_text(), "mp3")]


class DemoClient:
    """The few API calls the demo makes, with the tenant's key."""

    def __init__(self, api_url: str, api_key: str) -> None:
        self.http = httpx.Client(
            base_url=api_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30.0,
            follow_redirects=True,
        )

    def close(self) -> None:
        self.http.close()

    def submit(self, item: Narration) -> dict[str, Any]:
        body = {"text": item.text, "format": item.format, "metadata": {"demo": item.name}}
        return _json(self.http.post("/v1/jobs", json=body), "POST /v1/jobs", 202)

    def wait(self, job_id: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = _json(self.http.get(f"/v1/jobs/{job_id}"), f"GET /v1/jobs/{job_id}", 200)
            if job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise DemoFailed(f"job {job_id} still {job['status']} after {timeout:.0f} s")
            time.sleep(POLL_INTERVAL)

    def submit_book(self, data: bytes) -> dict[str, Any]:
        files = {"file": ("book.md", data, "text/markdown")}
        form = {"options": json.dumps({"produce": {"combined": "m4b"}})}
        return _json(self.http.post("/v1/books", files=files, data=form), "POST /v1/books", 202)

    def wait_batch(self, batch_id: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        where = f"GET /v1/batches/{batch_id}"
        while True:
            batch = _json(self.http.get(f"/v1/batches/{batch_id}"), where, 200)
            if batch["status"] in BATCH_TERMINAL:
                return batch
            if time.monotonic() > deadline:
                raise DemoFailed(f"batch {batch_id} still {batch['status']} after {timeout:.0f} s")
            time.sleep(POLL_INTERVAL)

    def download(self, job: dict[str, Any], path: Path) -> None:
        """Stream the job's audio (through the API's redirect) to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        where = f"GET /v1/jobs/{job['id']}/audio"
        with self.http.stream("GET", f"/v1/jobs/{job['id']}/audio") as got:
            if got.status_code != 200:
                got.read()
                raise DemoFailed(f"{where} answered {got.status_code}: {got.text[:500]}")
            with tmp.open("wb") as out:
                for chunk in got.iter_bytes(1 << 16):
                    out.write(chunk)
        tmp.replace(path)


def fetch(url: str, path: Path, size: int, sha256: str) -> None:
    """Download a presigned URL (no API key: the URL carries its own signature) and
    check it against the record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    got = httpx.get(url, timeout=60.0)
    if got.status_code != 200:
        raise DemoFailed(f"GET {path.name} answered {got.status_code}: {got.text[:500]}")
    if len(got.content) != size or hashlib.sha256(got.content).hexdigest() != sha256:
        raise DemoFailed(f"{path.name}: the download differs from the batch record")
    path.write_bytes(got.content)


def _json(got: httpx.Response, what: str, expected: int) -> dict[str, Any]:
    if got.status_code != expected:
        raise DemoFailed(f"{what} answered {got.status_code}: {got.text[:1000]}")
    data: dict[str, Any] = got.json()
    return data


def check_file(job: dict[str, Any], path: Path) -> float:
    """Compare the saved file with the job's output record and decode it; its duration."""
    output = job["output"]
    data = path.read_bytes()
    if len(data) != output["bytes"]:
        raise DemoFailed(f"{path}: {len(data)} bytes, the job says {output['bytes']}")
    if hashlib.sha256(data).hexdigest() != output["sha256"]:
        raise DemoFailed(f"{path}: SHA-256 differs from the job record's")
    raw_rate = output["sample_rate"] if output["format"] == "pcm" else None
    try:
        info = probe(path, raw_pcm_rate=raw_rate)
    except AudioError as exc:
        raise DemoFailed(f"{path}: not valid audio: {exc}") from exc
    return info.duration_s


def run_demo(api_url: str, api_key: str, out_dir: Path, echo: Any = print) -> bool:
    """Narrate every demo item; True if all of them succeeded and saved valid audio."""
    client = DemoClient(api_url, api_key)
    ok = True
    try:
        for item in narrations():
            try:
                job = client.submit(item)
                echo(f"demo: {item.name}: job {job['id']} queued ({len(item.text)} characters)")
                job = client.wait(job["id"])
                echo(json.dumps(job, indent=2))
                if job["status"] != "succeeded":
                    raise DemoFailed(f"job {job['id']} {job['status']}: {job.get('error')}")
                path = out_dir / f"{item.name}.{item.format}"
                client.download(job, path)
                seconds = check_file(job, path)
                echo(f"demo: {item.name}: saved {path} ({seconds:.1f} s of audio)")
            except (DemoFailed, httpx.HTTPError) as exc:
                echo(f"demo: {item.name}: FAILED: {exc}")
                ok = False
        try:
            narrate_book(client, out_dir, echo)
        except (DemoFailed, httpx.HTTPError, KeyError, TypeError) as exc:
            echo(f"demo: book: FAILED: {exc!r}")
            ok = False
    finally:
        client.close()
    return ok


def narrate_book(client: DemoClient, out_dir: Path, echo: Any) -> None:
    """The sample book to an M4B with chapters, plus its manifest, under ``out_dir``."""
    book = client.submit_book(sample_book())
    titles = ", ".join(c["title"] for c in book["book"]["chapters"])
    echo(f"demo: book: batch {book['batch']['id']} queued, chapters: {titles}")
    batch = client.wait_batch(book["batch"]["id"])
    echo(json.dumps(batch, indent=2))
    combined = batch["outputs"]["combined"]
    if batch["status"] != "succeeded" or combined is None:
        raise DemoFailed(f"batch {batch['id']} {batch['status']}: {batch.get('error')}")
    path = out_dir / f"book.{combined['format']}"
    fetch(combined["download_url"], path, combined["bytes"], combined["sha256"])
    manifest = batch["outputs"]["manifest"]
    fetch(manifest["download_url"], out_dir / "book.json", manifest["bytes"], manifest["sha256"])
    try:
        seconds = probe(path).duration_s
    except AudioError as exc:
        raise DemoFailed(f"{path}: not valid audio: {exc}") from exc
    echo(f"demo: book: saved {path} ({seconds:.1f} s of audio) and its manifest")
