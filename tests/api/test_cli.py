"""The ``shoal`` command line against the real API over HTTP.

The API (uvicorn in a thread, :mod:`tests.api.server`) stands on a real stack:
Redis, moto S3, ``local_tts`` and a Celery worker subprocess.  Commands run
in-process through :func:`shoal_cli.main.main` (argument parsing, output and exit
status as a user sees them), and ``python -m shoal_cli`` in a subprocess where
a real terminal matters (Ctrl-C, audio on stdout).
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shoal_cli import client, jobs, keys
from shoal_cli import main as cli
from tests.api.server import ApiServer, api_settings
from tests.s3 import MotoS3
from tests.servers import LocalTTS
from tests.stack import ROOT, Stack, Stacks
from worker.audio import probe
from worker.jobs.model import JobStatus
from worker.settings import TenantConfig

KEY = "cli-test-key"
OTHER_KEY = "cli-other-key"
TEXT = (
    "The lighthouse keeper climbed the stairs at dusk. "
    "He lit the lamp and watched the boats come home.\n\n"
    "Morning came grey and quiet over the harbour."
)


@dataclass
class Env:
    stack: Stack
    api: ApiServer


def _tenants() -> list[TenantConfig]:
    # Keys hashed by the command operators use to configure them.
    return [
        TenantConfig(id="cli", key_sha256=[keys.hash_key(KEY)]),
        TenantConfig(id="other", key_sha256=[keys.hash_key(OTHER_KEY)]),
    ]


def _env(tts: LocalTTS, redis_url: str, s3: MotoS3, workdir: Path, worker: bool) -> Iterator[Env]:
    with Stacks(redis_url, s3.endpoint_url, workdir) as make:
        stack = make(tts, workers=int(worker))
        with ApiServer(api_settings(stack, _tenants())) as api:
            yield Env(stack, api)


@pytest.fixture(scope="module")
def cli_tts() -> Iterator[LocalTTS]:
    with LocalTTS(engine="tone", rtf=0.02, ttfb_ms=20) as server:
        yield server


@pytest.fixture(scope="module")
def cli_s3() -> Iterator[MotoS3]:
    with MotoS3() as server:
        yield server


@pytest.fixture(scope="module")
def live(
    cli_tts: LocalTTS, redis_url: str, cli_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    """The API with a worker behind it: jobs run to the end."""
    yield from _env(cli_tts, redis_url, cli_s3, tmp_path_factory.mktemp("live"), worker=True)


@pytest.fixture(scope="module")
def idle(
    cli_tts: LocalTTS, redis_url: str, cli_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    """The API with no worker: jobs stay queued."""
    yield from _env(cli_tts, redis_url, cli_s3, tmp_path_factory.mktemp("idle"), worker=False)


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port that is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@dataclass
class Run:
    code: int
    out: str
    err: str


def shoal(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: Env | None,
    *argv: str,
    key: str | None = KEY,
) -> Run:
    """Run ``shoal ARGV`` in-process as a user would, with the API's URL and key."""
    if env is not None:
        monkeypatch.setenv("SHOAL_API_URL", env.api.url)
    if key is None:
        monkeypatch.delenv("SHOAL_API_KEY", raising=False)
    else:
        monkeypatch.setenv("SHOAL_API_KEY", key)
    capsys.readouterr()
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


# -- offline ---------------------------------------------------------------------------


def test_hash_key_prints_the_sha256_operators_configure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
    run = shoal(capsys, monkeypatch, None, "hash-key", "secret", key=None)
    assert (run.code, run.out, run.err) == (0, expected + "\n", "")
    monkeypatch.setattr(sys, "stdin", io.StringIO("secret\n"))
    assert shoal(capsys, monkeypatch, None, "hash-key", key=None).out == expected + "\n"


def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = shoal(capsys, monkeypatch, None, "narrate", "Hi.", key=None)
    assert run.code == 2 and "SHOAL_API_KEY is not set" in run.err
    run = shoal(capsys, monkeypatch, None, "narrate", "Hi.", "--file", str(tmp_path / "x"))
    assert run.code == 2 and "not both" in run.err
    run = shoal(capsys, monkeypatch, None, "narrate", "--file", str(tmp_path / "missing.txt"))
    assert run.code == 2 and "cannot read" in run.err
    run = shoal(capsys, monkeypatch, None, "narrate", "Hi.", "--metadata", "[1]")
    assert run.code == 2 and "JSON object" in run.err
    assert shoal(capsys, monkeypatch, None, "frobnicate").code == 2
    assert shoal(capsys, monkeypatch, None, "jobs", "--status", "lost").code == 2


def test_an_api_that_is_not_there_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, dead_port: int
) -> None:
    monkeypatch.setenv("SHOAL_API_URL", f"http://127.0.0.1:{dead_port}")
    run = shoal(capsys, monkeypatch, None, "status", "job_x")
    assert run.code == 1 and "cannot reach the API" in run.err and run.out == ""


def test_the_progress_bar_redraws_one_line_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = jobs.ProgressBar(stream, width=10)
    for done in (0, 1, 2):
        progress = {"percent": 50.0 * done, "segments_done": done, "segments_total": 2}
        bar.update({"id": "job_1", "status": "running", "progress": progress})
    bar.done()
    text = stream.getvalue()
    assert text.count("\r\x1b[2K") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "[##########] 100.0%  2/2 segments" in text


def test_the_table_lines_up() -> None:
    listed = [
        {
            "id": "job_a",
            "status": "succeeded",
            "progress": {"percent": 100.0},
            "output": {"duration_s": 3.25},
            "request": {"format": "mp3"},
            "created_at": "2024-06-10T06:13:20.5Z",
        },
        {"id": "job_bbbbbb", "status": "queued", "progress": {}, "request": {"format": "wav"}},
    ]
    lines = jobs.format_table(listed).splitlines()
    assert lines[0].split() == ["ID", "STATUS", "PROGRESS", "FORMAT", "AUDIO", "CREATED"]
    assert lines[1].split() == [
        "job_a",
        "succeeded",
        "100%",
        "mp3",
        "3.2s",
        "2024-06-10",
        "06:13:20",
    ]
    assert lines[2].split() == ["job_bbbbbb", "queued", "0%", "wav", "0.0s"]
    assert lines[1].index("succeeded") == lines[2].index("queued")


# -- against the real API ----------------------------------------------------------------


def test_narrate_submits_shows_progress_and_downloads_valid_audio(
    live: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "lighthouse.mp3"
    run = shoal(
        capsys, monkeypatch, live, "narrate", TEXT, "--voice", "keeper", "--format", "mp3",
        "--metadata", '{"book": "lighthouse"}', "-o", str(out),
    )  # fmt: skip
    assert run.code == 0, run.err
    assert run.out == ""
    job_id = run.err.split()[0]
    assert job_id.startswith("job_")
    assert "queued" in run.err or "running" in run.err
    assert "100.0%" in run.err and f"wrote {out}" in run.err
    info = probe(out)
    assert info.duration_s > 1.0
    job = live.stack.store.get(job_id)
    assert job is not None and job.status is JobStatus.SUCCEEDED and job.output is not None
    assert out.stat().st_size == job.output.bytes
    assert job.request.reference_id == "keeper" and job.metadata == {"book": "lighthouse"}
    assert not list(tmp_path.glob(".*.part"))


def test_narrate_from_a_file_with_rate_and_speed(
    live: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = tmp_path / "chapter.txt"
    source.write_text("Chapter one. It begins with a storm, as chapters do.", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = shoal(
        capsys, monkeypatch, live, "narrate", "--file", str(source), "--format", "wav",
        "--sample-rate", "16000", "--speed", "1.25", "--quiet",
    )  # fmt: skip
    assert (run.code, run.out, run.err) == (0, "", "")
    [out] = tmp_path.glob("job_*.wav")  # default name: JOB_ID.FORMAT
    info = probe(out)
    assert info.sample_rate == 16000
    job = live.stack.store.get(out.stem)
    assert job is not None and job.request.prosody is not None
    assert job.request.prosody.speed == 1.25 and job.request.sample_rate == 16000


def test_status_and_jobs_show_what_the_api_knows(
    live: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = shoal(capsys, monkeypatch, live, "narrate", "Short.", "-q", "-o", str(tmp_path / "a.mp3"))
    assert run.code == 0, run.err
    [job_id] = [j.id for j in live.stack.store.list(tenant="cli", limit=1)[0]]

    status = shoal(capsys, monkeypatch, live, "status", job_id)
    assert status.code == 0
    shown = json.loads(status.out)
    assert shown["id"] == job_id and shown["status"] == "succeeded"
    assert shown["output"]["download_url"]

    table = shoal(capsys, monkeypatch, live, "jobs", "--status", "succeeded")
    assert table.code == 0
    header, *rows = table.out.splitlines()
    assert header.split()[:2] == ["ID", "STATUS"]
    assert any(row.split()[:2] == [job_id, "succeeded"] for row in rows)
    assert shoal(capsys, monkeypatch, live, "jobs", "--status", "failed").out.count("\n") == 1

    live.stack.submit("Another.", tenant="cli")  # a second page, whatever ran before
    page = json.loads(shoal(capsys, monkeypatch, live, "jobs", "--json", "--limit", "1").out)
    assert len(page["data"]) == 1 and page["next_cursor"]

    # Another tenant sees none of it: the API's 404, in its own words.
    other = shoal(capsys, monkeypatch, live, "status", job_id, key=OTHER_KEY)
    assert other.code == 1 and "HTTP 404" in other.err and other.out == ""


def test_api_errors_are_reported_with_the_apis_message(
    live: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = shoal(capsys, monkeypatch, live, "narrate", "   ", "--voice", "v")
    assert run.code == 1 and "HTTP 422" in run.err and "[text]" in run.err
    run = shoal(capsys, monkeypatch, live, "narrate", "Hi.", "--format", "aiff")
    assert run.code == 1 and "HTTP 422" in run.err and "format" in run.err
    run = shoal(capsys, monkeypatch, live, "jobs", key="not-a-key")
    assert run.code == 1 and "HTTP 401" in run.err
    run = shoal(capsys, monkeypatch, live, "status", "job_nope")
    assert run.code == 1 and "HTTP 404" in run.err


def test_cancel_a_queued_job_and_then_again(
    idle: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted = shoal(capsys, monkeypatch, idle, "narrate", "Wait for me.", "--no-wait")
    assert submitted.code == 0, submitted.err
    job = json.loads(submitted.out)
    assert job["status"] == "queued"
    run = shoal(capsys, monkeypatch, idle, "cancel", job["id"])
    assert (run.code, run.out) == (0, f"{job['id']} canceled\n")
    stored = idle.stack.store.get(job["id"])
    assert stored is not None and stored.status is JobStatus.CANCELED
    again = shoal(capsys, monkeypatch, idle, "cancel", job["id"])
    assert again.code == 1 and "HTTP 409" in again.err


def test_a_failed_job_exits_3_with_its_error(
    live: Env,
    cli_tts: LocalTTS,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    cli_tts.set_faults({"rules": [{"action": "reject", "status": 401}]})  # a permanent error
    try:
        out = tmp_path / "never.mp3"
        run = shoal(capsys, monkeypatch, live, "narrate", "Doomed.", "-q", "-o", str(out))
    finally:
        cli_tts.clear_faults()
    assert run.code == 3
    assert "failed" in run.err and "provider_auth_rejected" in run.err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_corrupt_download_is_refused_and_removed(live: Env, tmp_path: Path) -> None:
    job = live.stack.submit("Checksums matter.", tenant="cli")
    assert live.stack.wait(job.id).status is JobStatus.SUCCEEDED
    api = client.Api(live.api.url, KEY)
    try:
        shown = jobs.get_job(api, job.id)
        shown["output"]["sha256"] = "0" * 64
        with pytest.raises(client.CliError, match="corrupt"):
            jobs.download(api, shown, str(tmp_path / "x.mp3"))
    finally:
        api.close()
    assert list(tmp_path.iterdir()) == []


def test_book_dry_run_shows_chapters_and_every_skipped_part(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, idle: Env, tmp_path: Path
) -> None:
    from tests.worker.test_books_formats import WEB_PAGE

    book = tmp_path / "sea.html"
    book.write_bytes(WEB_PAGE)
    jobs_before = len(list(idle.stack.redis.scan_iter(f"{idle.stack.keys.prefix}:job:*")))
    run = shoal(capsys, monkeypatch, idle, "book", "--dry-run", str(book))
    assert run.code == 0, run.err
    assert "Sea Stories by Ann Writer: 3 chapters" in run.err
    assert "    2. The Harbour  (" in run.err and "chars, $" in run.err
    assert "skipped 4 parts:" in run.err
    assert "  [front_matter] sea.html: table of contents" in run.err
    assert "  [code] 'The Storm' (sea.html#two): 1 code block" in run.err
    assert len(list(idle.stack.redis.scan_iter(f"{idle.stack.keys.prefix}:job:*"))) == jobs_before


def test_book_chapters_narrates_only_a_range(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, idle: Env, tmp_path: Path
) -> None:
    book = tmp_path / "three.md"
    book.write_text("# One\n\nFirst.\n\n# Two\n\nSecond.\n\n# Three\n\nThird.\n")
    run = shoal(capsys, monkeypatch, idle, "book", "--dry-run", "--chapters", "2-3", str(book))
    assert run.code == 0, run.err
    assert "three: 3 chapters, narrating 2 (2-3), " in run.err
    assert "    1. One  (6 chars, $" in run.err and "-- left out by --chapters" in run.err
    assert "    3. Three  (6 chars, $" in run.err and run.err.count("left out") == 1
    run = shoal(capsys, monkeypatch, idle, "book", "--chapters", "3,2", "--no-wait", str(book))
    assert run.code == 0, run.err
    assert [i["title"] for i in json.loads(run.out)["items"]] == ["Two", "Three"]
    run = shoal(capsys, monkeypatch, idle, "book", "--chapters", "2-5", str(book))
    assert run.code == 1 and "HTTP 422" in run.err and "options.chapters" in run.err
    assert "4-5 of 2-5 is past its end" in run.err


def test_batches_lists_the_books_newest_first(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, idle: Env, tmp_path: Path
) -> None:
    made = []
    for title in ("Early", "Later"):
        book = tmp_path / f"{title.lower()}.md"
        book.write_text(f"# {title}\n\nOne line.\n\n# Next\n\nAnother.\n")
        run = shoal(capsys, monkeypatch, idle, "book", "--no-wait", str(book))
        assert run.code == 0, run.err
        made.append(json.loads(run.out)["id"])
    table = shoal(capsys, monkeypatch, idle, "batches", "--kind", "book").out.splitlines()
    assert table[0].split() == ["ID", "STATUS", "KIND", "ITEMS", "TITLE", "CREATED"]
    rows = [line.split()[0] for line in table[1:]]
    assert rows.index(made[1]) < rows.index(made[0])  # newest first
    later = next(line for line in table if line.startswith(made[1]))
    assert " book " in later and " 0/2 " in later and " later " in later  # named by its file
    page = json.loads(shoal(capsys, monkeypatch, idle, "batches", "--json", "--limit", "1").out)
    assert len(page["data"]) == 1 and page["next_cursor"]
    run = shoal(capsys, monkeypatch, idle, "batches", "--status", "lost")
    assert run.code == 2


# -- as a process ------------------------------------------------------------------------


def _process(env: Env, *argv: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shoal_cli", *argv],
        cwd=ROOT,
        env={**os.environ, "SHOAL_API_URL": env.api.url, "SHOAL_API_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_audio_to_stdout(live: Env, tmp_path: Path) -> None:
    proc = _process(live, "narrate", "Piped out.", "--format", "flac", "-q", "-o", "-")
    audio, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    out = tmp_path / "piped.flac"
    out.write_bytes(audio)
    assert probe(out).duration_s > 0.3


def test_ctrl_c_while_waiting_cancels_the_job(idle: Env) -> None:
    proc = _process(idle, "narrate", "Never mind.")
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()  # the first progress line: the job is queued
    job_id = line.split()[0]
    assert job_id.startswith("job_"), line
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 130, rest.decode()
    assert f"canceled job {job_id}" in rest.decode()
    deadline = time.monotonic() + 10
    while (job := idle.stack.store.get(job_id)) is None or job.status is not JobStatus.CANCELED:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
