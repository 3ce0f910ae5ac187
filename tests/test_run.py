"""``make run`` and ``make demo`` end to end: ``python -m shoal_run`` against the real
stack it starts — Redis (the session's, or one it starts), rclone's S3, local_tts
with espeak, the API under uvicorn and a Celery worker — and nothing left behind.

Each test gets its own state directory, free ports and key prefix, so they run
in parallel with each other and with the rest of the suite on one Redis.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
import redis

from tests.conftest import delete_prefix
from worker.audio import probe

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0

pytestmark = pytest.mark.slow


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launcher_env(redis_url: str, prefix: str) -> dict[str, str]:
    """This environment without any shoal, Fish or AWS configuration, plus ``redis_url``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SHOAL_", "AWS_")) and k != "FISH_API_KEY"
    }
    env.update(SHOAL_REDIS_URL=redis_url, SHOAL_KEY_PREFIX=prefix, PYTHONUNBUFFERED="1")
    return env


def launcher_argv(command: str, tmp: Path) -> list[str]:
    # fmt: off
    return [
        sys.executable, "-m", "shoal_run", command,
        "--state-dir", str(tmp / "state"), "--out", str(tmp / "out"),
        "--api-port", "0", "--s3-port", "0", "--tts-port", "0",
    ]
    # fmt: on


def processes_of(state_dir: Path) -> list[str]:
    """Every live process started for ``state_dir`` (the launcher marks their environment)."""
    marker = f"SHOALRUN_STATE={state_dir.resolve()}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            if marker in environ:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{proc.name}: {cmd}")
        except OSError:
            continue
    return found


def assert_nothing_left(state_dir: Path) -> None:
    deadline = time.monotonic() + 5
    while (left := processes_of(state_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left behind: {left}"


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    delete_prefix(client, name)
    client.close()


def run_demo(tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        launcher_argv("demo", tmp),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT + STOP_TIMEOUT,
    )
    logs = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted((tmp / "state" / "logs").glob("*.log"))
    )
    assert done.returncode == 0, f"demo failed:\n{done.stdout}\n{done.stderr}\n{logs}"
    return done


def check_demo_output(tmp: Path, done: subprocess.CompletedProcess[str]) -> None:
    audio = tmp / "out" / "sample.mp3"
    info = probe(audio)
    assert info.codec == "mp3" and info.duration_s > 5
    assert "demo passed" in done.stdout
    assert '"status": "succeeded"' in done.stdout  # the job record is printed
    # The embedded S3 keeps the same bytes as files under the state directory.
    stored = list((tmp / "state" / "s3" / "shoal" / "local").glob("*.mp3"))
    assert [p.read_bytes() for p in stored] == [audio.read_bytes()]
    # The two-chapter sample book: an M4B whose chapters are those of the manifest.
    book = tmp / "out" / "book.m4b"
    manifest = json.loads((tmp / "out" / "book.json").read_text())
    titles = [c["title"] for c in manifest["chapters"]]
    assert titles == ["Chapter 1: Morning", "Chapter 2: Evening"]
    with av.open(str(book)) as container:
        chapters = container.chapters()
    assert len(chapters) == 2
    assert probe(book).duration_s == pytest.approx(manifest["duration_s"], abs=0.1)


def test_demo_with_the_configured_redis(tmp_path: Path, redis_url: str, prefix: str) -> None:
    """Redis answers at SHOAL_REDIS_URL (CI's on 6379, or the session's): it is used."""
    done = run_demo(tmp_path, launcher_env(redis_url, prefix))
    check_demo_output(tmp_path, done)
    assert "(configured)" in done.stderr
    assert not (tmp_path / "state" / "redis").exists()
    assert_nothing_left(tmp_path / "state")
    client = redis.Redis.from_url(redis_url)
    assert client.exists(*(k for k in client.scan_iter(f"{prefix}:job:*")))  # jobs went there
    client.close()


def test_demo_starts_its_own_redis(tmp_path: Path, prefix: str) -> None:
    """Nothing answers at SHOAL_REDIS_URL: the launcher starts redis-server with AOF on."""
    url = f"redis://127.0.0.1:{_free_port()}/0"
    done = run_demo(tmp_path, launcher_env(url, prefix))
    check_demo_output(tmp_path, done)
    assert "started here" in done.stderr
    assert (tmp_path / "state" / "redis" / "appendonlydir").is_dir()
    assert_nothing_left(tmp_path / "state")


class Running:
    """``python -m shoal_run run`` in the background, read until its banner."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.out_path = tmp / "run.out"
        self._out = self.out_path.open("wb")
        self.proc = subprocess.Popen(
            launcher_argv("run", tmp),
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while "Ctrl-C stops everything" not in self.output():
            assert self.proc.poll() is None, f"launcher exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"not ready:\n{self.output()}"
            time.sleep(0.2)
        text = self.output()
        found = re.search(r"SHOAL_API_URL=(\S+) SHOAL_API_KEY=(\S+) (\S+) narrate", text)
        assert found, text
        self.api_url, self.api_key, self.shoal = found.groups()
        self.http = httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
            follow_redirects=True,
        )

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_job(self, job_id: str, timeout: float = 120.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, object] = self.http.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "canceled"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish:\n{self.output()[-5000:]}")

    def stop(self, sig: signal.Signals) -> int:
        self.http.close()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._out.close()
        return code


def test_run_serves_stops_on_ctrl_c_and_keeps_jobs_across_restarts(
    tmp_path: Path, prefix: str
) -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    env = launcher_env(url, prefix)
    state = tmp_path / "state"

    first = Running(tmp_path, env)
    try:
        banner = first.output()
        assert f"{first.api_url}/docs" in banner
        assert first.http.get("/docs").status_code == 200
        created = first.http.post("/v1/jobs", json={"text": "Hello from shoal.", "format": "wav"})
        assert created.status_code == 202, created.text
        job = first.wait_job(created.json()["id"])
        assert job["status"] == "succeeded", job
        shoal = Path(first.shoal)
        if (ROOT / shoal).exists():  # the CLI the banner tells people to use
            cli_env = {**env, "SHOAL_API_URL": first.api_url, "SHOAL_API_KEY": first.api_key}
            out = tmp_path / "hello.mp3"
            narrated = subprocess.run(
                [str(ROOT / shoal), "narrate", "Hello", "--format", "mp3", "-o", str(out)],
                env=cli_env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert narrated.returncode == 0, narrated.stdout + narrated.stderr
            assert probe(out).codec == "mp3"
    finally:
        code = first.stop(signal.SIGINT)
    assert code == 0, first.output()[-5000:]
    assert_nothing_left(state)

    # A second run on the same state: the same key, the job (Redis AOF) and its file (S3 dir).
    second = Running(tmp_path, env)
    try:
        assert second.api_key == first.api_key
        again = second.http.get(f"/v1/jobs/{job['id']}")
        assert again.status_code == 200 and again.json()["status"] == "succeeded"
        audio = second.http.get(f"/v1/jobs/{job['id']}/audio")
        assert audio.status_code == 200
        assert len(audio.content) == json.loads(again.text)["output"]["bytes"]
    finally:
        code = second.stop(signal.SIGTERM)
    assert code == 0, second.output()[-5000:]
    assert_nothing_left(state)


def test_a_signal_while_starting_stops_what_was_started(tmp_path: Path, prefix: str) -> None:
    env = launcher_env(f"redis://127.0.0.1:{_free_port()}/0", prefix)
    state = tmp_path / "state"
    out = (tmp_path / "run.out").open("wb")
    proc = subprocess.Popen(
        launcher_argv("run", tmp_path), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
    )
    try:
        record = state / "children.json"
        deadline = time.monotonic() + 60
        # Wait until the API and the worker are being started, then interrupt.
        while not (record.exists() and "worker" in record.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_TIMEOUT) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    assert "shoal is ready" not in (tmp_path / "run.out").read_text()
    assert_nothing_left(state)
