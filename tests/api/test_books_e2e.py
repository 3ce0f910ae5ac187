"""Books end to end: upload → chapters narrated by a real Celery worker → one chaptered audiobook.

Every part is real: the API over HTTP, Redis, Celery workers in subprocesses,
``local_tts`` (tone engine) and moto's S3; callbacks go to a receiver inside
the test.  Books are built by the tests (an EPUB with front matter and a
cover, a Markdown book); the M4B that comes back is read with PyAV.
"""

from __future__ import annotations

import dataclasses
import fractions
import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from shoal_cli import main as cli
from shoal_cli.keys import hash_key
from tests.api.server import ApiServer, api_settings, tenant
from tests.s3 import MotoS3
from tests.servers import LocalTTS
from tests.stack import Stack, Stacks, WorkerProcess
from tests.worker.test_audio_book_sections import check_joined_timeline
from tests.worker.test_books_fixtures import Doc, EpubSpec, build_epub, nav_document, xhtml
from worker.audio import measure_loudness
from worker.audio.book_sections import FRAME
from worker.callbacks.signing import verify

KEY = "books-e2e-key"
SECRET = "whsec_" + "c2VjcmV0LW9mLXRoZS1ib29rcy10ZXN0cw=="
RATE = 22050
SILENCE = {"head_silence_ms": 300, "chapter_silence_ms": 800, "tail_silence_ms": 600}
TOLERANCE_S = 0.05
#: The worker's tenants, with the webhook secret its callbacks are signed with.
TENANTS_JSON = json.dumps(
    [{"id": "books", "key_sha256": [hash_key(KEY)], "webhook_secret": SECRET}]
)


def png() -> bytes:
    pixels = np.zeros((48, 64, 3), dtype=np.uint8)
    pixels[8:40, 8:56, 2] = 255
    context = av.CodecContext.create("png", "w")
    context.width, context.height, context.pix_fmt = 64, 48, "rgb24"
    context.time_base = fractions.Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
    return b"".join(bytes(p) for p in [*context.encode(frame), *context.encode(None)])


def prose(seed: str, sentences: int) -> str:
    words = ("harbour", "lantern", "morning", "river", "quiet", "stone", "window", "harvest")
    return " ".join(
        f"The {words[(i + len(seed)) % 8]} of {seed} was {words[(i * 3) % 8]} and still."
        for i in range(sentences)
    )


def epub(chapters: list[tuple[str, str]]) -> bytes:
    """An EPUB with a title page, a table of contents, the chapters and a copyright page."""
    docs = [
        Doc(
            "title",
            "title.xhtml",
            xhtml(
                '<section epub:type="titlepage"><h1>Night Harbour</h1><p>I. Author</p></section>'
            ),
        ),
        Doc(
            "nav",
            "nav.xhtml",
            nav_document([(f"c{i}.xhtml", t) for i, (t, _) in enumerate(chapters)]),
            properties="nav",
        ),
    ]
    for i, (title, text) in enumerate(chapters):
        docs.append(Doc(f"c{i}", f"c{i}.xhtml", xhtml(f"<h1>{title}</h1><p>{text}</p>")))
    docs.append(
        Doc("copy", "copy.xhtml", xhtml("<p>Copyright © 2025 I. Author. All rights reserved.</p>"))
    )
    spec = EpubSpec(docs=docs, nav=[], title="Night Harbour", creator="I. Author", cover=png())
    return build_epub(spec)


class Receiver:
    """Callbacks land here: (headers, raw body) of every POST."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, str], bytes]] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self) -> list[dict[str, Any]]:
        out = []
        for headers, body in list(self.received):
            verify(SECRET, headers, body)
            out.append(json.loads(body))
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclasses.dataclass
class Env:
    stack: Stack
    api: ApiServer
    tts: LocalTTS
    receiver: Receiver

    def client(self) -> httpx.Client:
        return self.api.client(KEY)

    def start_worker(self) -> WorkerProcess:
        return self.stack.start_worker(
            SHOAL_TENANTS=TENANTS_JSON, SHOAL_ALLOW_PRIVATE_CALLBACKS="true"
        )


@pytest.fixture(scope="module")
def env(redis_url: str, api_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("books-e2e")
    with (
        LocalTTS(engine="tone", rtf=0.02, ttfb_ms=30) as tts,
        Stacks(redis_url, api_s3.endpoint_url, workdir) as make,
    ):
        stack = make(
            tts,
            SHOAL_SEGMENT_MAX_CHARS="150",
            SHOAL_MAX_ATTEMPTS="2",
            SHOAL_VISIBILITY_TIMEOUT="10",  # a killed worker's unstarted message comes back
        )
        receiver = Receiver()
        try:
            made = Env(stack, None, tts, receiver)  # type: ignore[arg-type]
            made.start_worker()
            settings = api_settings(stack, [tenant("books", KEY)], allow_private_callbacks=True)
            with ApiServer(settings) as api:
                made.api = api
                yield made
        finally:
            receiver.close()


def options(**produce: Any) -> dict[str, Any]:
    return {
        "produce": {"chapter_sample_rate": RATE, "sample_rate": RATE, **SILENCE, **produce},
    }


def submit(env: Env, data: bytes, filename: str, opts: dict[str, Any]) -> dict[str, Any]:
    with env.client() as http:
        answer = http.post(
            "/v1/books",
            files={"file": (filename, data, "application/octet-stream")},
            data={"options": json.dumps(opts)},
        )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def wait_batch(
    env: Env, batch_id: str, timeout: float = 90.0, generation: int = 1
) -> dict[str, Any]:
    """Poll the batch until it is terminal with ``generation`` built."""
    deadline = time.monotonic() + timeout
    with env.client() as http:
        while True:
            batch = http.get(f"/v1/batches/{batch_id}").json()
            a = batch["outputs"]["assembly"]
            done = batch["status"] not in ("queued", "running")
            if done and (a["built_generation"] == generation or batch["status"] != "succeeded"):
                return dict(batch)
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch still {batch['status']}: {batch}\n{env.stack.logs()}")
            time.sleep(0.2)


def download(url: str, path: Path) -> Path:
    answer = httpx.get(url, timeout=30)
    assert answer.status_code == 200, answer.text
    path.write_bytes(answer.content)
    return path


def chapters_of(path: Path) -> list[tuple[str, float]]:
    with av.open(str(path)) as container:
        return [
            (c["metadata"]["title"], float(c["start"] * c["time_base"]))
            for c in container.chapters()
        ]


def frames_of(path: Path) -> list[bytes]:
    """The book's AAC frames, as stored."""
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])


def check_book(batch: dict[str, Any], tmp_path: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """Download the book and manifest; check chapters, offsets and total duration."""
    combined, manifest_out = batch["outputs"]["combined"], batch["outputs"]["manifest"]
    assert combined is not None and manifest_out is not None, batch
    book = download(combined["download_url"], tmp_path / f"{name}.{combined['format']}")
    assert hashlib.sha256(book.read_bytes()).hexdigest() == combined["sha256"]
    manifest = json.loads(
        download(manifest_out["download_url"], tmp_path / f"{name}.json").read_text()
    )
    titles = [item["title"] for item in batch["items"]]
    assert [c["title"] for c in manifest["chapters"]] == titles
    read = chapters_of(book)
    assert [title for title, _ in read] == titles
    for (_, start), chapter in zip(read, manifest["chapters"], strict=True):
        assert start == pytest.approx(chapter["start_s"], abs=TOLERANCE_S)
    silence = manifest["silence_ms"]
    total = manifest["duration_s"]
    silences = (silence["head"] / 1000, silence["between_chapters"] / 1000, silence["tail"] / 1000)
    check_joined_timeline(manifest["chapters"], total, silences, manifest["sample_rate"])
    with av.open(str(book)) as container:
        assert float(container.duration / 1e6) == pytest.approx(total, abs=TOLERANCE_S)
    # Each chapter is as long as its own file, and made from its lossless master.
    for item, chapter in zip(batch["items"], manifest["chapters"], strict=True):
        assert chapter["source"] == "master"
        assert chapter["file"] == item["output"]["key"]
        assert chapter["duration_s"] == pytest.approx(item["output"]["duration_s"], abs=0.03)
    return book, manifest


CHAPTERS = [
    ("The Lantern", prose("lantern", 4)),
    ("Low Tide", prose("tide", 3)),
    ("The Long Night", prose("night", 5)),
]


def test_epub_to_m4b_with_chapters_where_the_manifest_says(env: Env, tmp_path: Path) -> None:
    opts = options() | {"callback_url": env.receiver.url}
    out = submit(env, epub(CHAPTERS), "night-harbour.epub", opts)
    assert [c["title"] for c in out["book"]["chapters"]] == [t for t, _ in CHAPTERS]
    assert out["book"]["skipped"], "front matter should be skipped and listed"
    batch = wait_batch(env, out["batch"]["id"])
    assert batch["status"] == "succeeded", batch
    assert batch["items_done"] == 3 and batch["items_failed"] == 0
    assert batch["progress"]["percent"] == 100.0
    book, manifest = check_book(batch, tmp_path, "epub")
    assert manifest["title"] == "Night Harbour" and manifest["author"] == "I. Author"
    with av.open(str(book)) as container:
        assert container.metadata.get("title") == "Night Harbour"
        assert container.metadata.get("artist") == "I. Author"
    # Each chapter's own file is there too, as its job made it.
    first = batch["items"][0]["output"]
    assert download(first["download_url"], tmp_path / "c1.mp3").stat().st_size == first["bytes"]

    # Callbacks: one batch.item.succeeded per chapter, then batch.succeeded; all signed.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        kinds = [e["type"] for e in env.receiver.events() if batch_of(e) == batch["id"]]
        if "batch.succeeded" in kinds:
            break
        time.sleep(0.1)
    assert sorted(kinds) == ["batch.item.succeeded"] * 3 + ["batch.succeeded"], kinds
    final = next(
        e
        for e in env.receiver.events()
        if e["type"] == "batch.succeeded" and e["data"]["id"] == batch["id"]
    )
    assert final["data"]["outputs"]["combined"]["sha256"] == batch["outputs"]["combined"]["sha256"]
    items = [
        e["data"]
        for e in env.receiver.events()
        if e["type"] == "batch.item.succeeded" and e["data"]["batch_id"] == batch["id"]
    ]
    assert sorted(i["index"] for i in items) == [0, 1, 2]


def batch_of(event: dict[str, Any]) -> str | None:
    data = event["data"]
    return data.get("batch_id") or data.get("id")


MARKDOWN = "\n\n".join(
    [
        "---\ntitle: Stone and River\nauthor: M. Down\n---",
        "## Contents\n\n- [Stone](#stone)\n- [River](#river)",
        f"# Stone\n\n{prose('stone', 4)}",
        f"# River\n\n{prose('river', 3)}\n\n* * *\n\n{prose('bank', 2)}",
    ]
)


def test_markdown_to_m4b_normalised_to_acx(env: Env, tmp_path: Path) -> None:
    out = submit(env, MARKDOWN.encode(), "stone.md", options(loudness="acx"))
    assert [c["title"] for c in out["book"]["chapters"]] == ["Stone", "River"]
    batch = wait_batch(env, out["batch"]["id"])
    assert batch["status"] == "succeeded", batch
    book, manifest = check_book(batch, tmp_path, "md")
    loud = manifest["loudness"]
    assert loud["within_target"] is True, loud
    assert batch["outputs"]["assembly"]["loudness"]["within_target"] is True
    measured = measure_loudness(book)  # our own measurement of the file as downloaded
    assert -23.0 <= measured.rms_db <= -18.0
    assert measured.peak_db <= -3.0
    assert measured.noise_floor_db <= -60.0


def test_a_retried_chapter_replaces_only_that_chapter(env: Env, tmp_path: Path) -> None:
    out = submit(env, epub(CHAPTERS), "retry.epub", options())
    before = wait_batch(env, out["batch"]["id"])
    assert before["status"] == "succeeded", before
    old_book, old_manifest = check_book(before, tmp_path, "before")
    with env.client() as http:
        answer = http.post(
            f"/v1/batches/{before['id']}/items/1/retry", json={"prosody": {"speed": 1.25}}
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "running"
    after = wait_batch(env, before["id"], generation=2)
    assert after["status"] == "succeeded", after
    new_book, new_manifest = check_book(after, tmp_path, "after")

    old_items, new_items = before["items"], after["items"]
    assert new_items[1]["job_id"] != old_items[1]["job_id"]
    assert new_items[1]["replaced_jobs"] == [old_items[1]["job_id"]]
    for i in (0, 2):  # the other chapters: the same jobs, the very same files
        assert new_items[i]["job_id"] == old_items[i]["job_id"]
        assert new_items[i]["output"]["sha256"] == old_items[i]["output"]["sha256"]
        assert (
            new_manifest["chapters"][i]["duration_s"] == old_manifest["chapters"][i]["duration_s"]
        )
    # Faster speech: chapter 2 is shorter, and so is the book, by the same amount (its
    # section's padding to whole AAC frames apart).
    shrink = old_manifest["chapters"][1]["duration_s"] - new_manifest["chapters"][1]["duration_s"]
    assert shrink > 0.5
    assert old_manifest["duration_s"] - new_manifest["duration_s"] == pytest.approx(
        shrink, abs=FRAME / RATE
    )
    # In the book, chapters 1 and 3 are the very frames of the first build: only chapter 2
    # was encoded again.  Decoded, they sound the same (the decoder's noise substitution
    # apart), chapter 3 only moved.
    old_frames, new_frames = frames_of(old_book), frames_of(new_book)
    head, tail = old_frames[: len(old_frames) // 4], old_frames[-len(old_frames) // 4 :]
    assert new_frames[: len(head)] == head and new_frames[-len(tail) :] == tail
    old, new = decode(old_book), decode(new_book)
    s3_old = round(old_manifest["chapters"][2]["audio_start_s"] * RATE)
    s3_new = round(new_manifest["chapters"][2]["audio_start_s"] * RATE)
    n = round(new_manifest["chapters"][2]["duration_s"] * RATE)
    a = old[s3_old : s3_old + n].astype(np.float64)
    b = new[s3_new : s3_new + n].astype(np.float64)
    snr = 10 * np.log10(np.mean(a**2) / np.mean((a - b) ** 2))
    assert snr > 50, f"chapter 3 changed: {snr:.1f} dB"
    # The previous generation's book is gone; the new one is what GET shows.
    assert after["outputs"]["combined"]["key"] != before["outputs"]["combined"]["key"]
    assert not env.stack.storage.exists(before["outputs"]["combined"]["key"])


def test_killing_a_worker_mid_book_still_ends_in_a_complete_book(env: Env, tmp_path: Path) -> None:
    chapters = [(f"Part {n}", prose(f"part{n}", 6)) for n in range(1, 9)]
    slow = env.tts
    slow.reset()
    out = submit(env, epub(chapters), "long.epub", options())
    batch_id = out["batch"]["id"]
    # Wait until the book is under way: some chapters done, others running.
    deadline = time.monotonic() + 60
    with env.client() as http:
        while True:
            batch = http.get(f"/v1/batches/{batch_id}").json()
            if batch["counts"]["succeeded"] >= 1 and batch["counts"]["running"] >= 1:
                break
            assert time.monotonic() < deadline, batch
            time.sleep(0.05)
    victim = env.stack.workers[0]
    victim.kill()
    env.stack.workers.remove(victim)
    env.start_worker()
    batch = wait_batch(env, batch_id, timeout=120)
    assert batch["status"] == "succeeded", batch
    assert batch["items_done"] == 8
    _, manifest = check_book(batch, tmp_path, "killed")
    assert [c["title"] for c in manifest["chapters"]] == [t for t, _ in chapters]


def test_a_truncated_chapter_is_retried_then_reported(env: Env, tmp_path: Path) -> None:
    # The first session after the plan loses its audio, quietly: retried, and the book is whole.
    env.tts.set_faults({"rules": [{"action": "truncate", "session": 1, "after_audio": 1}]})
    try:
        out = submit(env, epub(CHAPTERS[:1]), "cut-once.epub", options())
        batch = wait_batch(env, out["batch"]["id"])
    finally:
        env.tts.clear_faults()
    assert batch["status"] == "succeeded", batch
    check_book(batch, tmp_path, "cut-once")
    cut = [s for s in env.tts.stats()["sessions"] if s["audio_dropped"]]
    assert cut, "the fault did not fire"

    # Every session loses its audio: the chapter fails, saying why; no book is shipped.
    env.tts.set_faults({"rules": [{"action": "truncate", "after_audio": 1}]})
    try:
        out = submit(env, epub(CHAPTERS[:2]), "cut-always.epub", options())
        batch = wait_batch(env, out["batch"]["id"], timeout=120)
    finally:
        env.tts.clear_faults()
    assert batch["status"] == "failed", batch
    assert batch["outputs"]["combined"] is None
    errors = [item["error"] for item in batch["items"]]
    assert all(e is not None and "cut short" in e["message"] for e in errors), errors
    assert all(item["output"] is None for item in batch["items"])


def test_cli_book_shows_chapters_and_downloads_the_m4b(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "stone.md"
    source.write_text(MARKDOWN)
    target = tmp_path / "stone.m4b"
    monkeypatch.setenv("SHOAL_API_URL", env.api.url)
    monkeypatch.setenv("SHOAL_API_KEY", KEY)
    code = cli.main(
        [
            "book",
            str(source),
            "-o",
            str(target),
            "--sample-rate",
            str(RATE),
            "--manifest",
            str(tmp_path / "stone.json"),
            "--poll-interval",
            "0.2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Stone" in err and "River" in err
    assert err.count("succeeded") >= 2  # a line per chapter as it finished
    assert [t for t, _ in chapters_of(target)] == ["Stone", "River"]
    manifest = json.loads((tmp_path / "stone.json").read_text())
    assert [c["title"] for c in manifest["chapters"]] == ["Stone", "River"]
    assert f"wrote {target}" in err
