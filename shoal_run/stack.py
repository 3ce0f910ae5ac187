"""The whole stack on one machine: resolve each part, start what is missing, stop it all.

::

    with Stack(Options(state_dir=Path("state"))) as stack:
        ready = stack.start()       # Ready: API URL, key, where outputs land, ...
        stack.watch()               # until Ctrl-C, SIGTERM or a part exits

Redis, S3 and the provider start at once, and the API and the worker as soon
as Redis answers; they stop in the reverse order of their use: the API
first (no new jobs), then the worker (it finishes what it can within the stop
timeout), then the provider, S3 and Redis.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from pydantic import SecretStr, ValidationError

from shoal_run import Interrupted, LaunchError, PartFailed, PartUnavailable
from shoal_run import parts as p
from shoal_run.procs import Child
from shoal_run.state import Secrets, StateDir
from worker.settings import Settings
from worker.storage.client import Storage, StorageError

log = logging.getLogger(__name__)

LOCAL_TENANT = "local"
STORAGE_READY_TIMEOUT = 30.0
API_READY_TIMEOUT = 90.0


@dataclass(frozen=True, slots=True)
class Options:
    """How the launcher runs; the parts themselves are configured by ``SHOAL_*`` settings."""

    state_dir: Path = Path("state")
    host: str = "127.0.0.1"
    api_port: int = 8000  # 0: any free port
    tts_port: int = 8765  # preferred; another free one if it is taken
    s3_port: int = 9000  # preferred; another free one if it is taken
    echo: IO[str] | None = None  # where the parts' output is copied, prefixed with their names
    start_timeout: float = 120.0
    stop_timeout: float = 20.0  # how long the worker may take to finish its jobs on stop


@dataclass(slots=True)
class Ready:
    """What the stack is, once it is up: the banner and the demo read it."""

    api_url: str
    api_key: str | None  # None when the operator's SHOAL_TENANTS hold the keys
    tenant: str | None
    redis: str
    provider: str
    storage: str
    outputs: str  # a directory (embedded S3) or an s3:// prefix
    outputs_dir: Path | None
    logs_dir: Path
    shoal: Path = Path("shoal")  # the CLI, beside this interpreter
    pids: dict[str, int] = field(default_factory=dict)

    def narrate_command(self, text: str = "Hello from shoal.", out: str = "hello.mp3") -> str:
        key = self.api_key or "<one of your API keys>"
        return (
            f"SHOAL_API_URL={self.api_url} SHOAL_API_KEY={key} "
            f'{self.shoal} narrate "{text}" --format mp3 -o {out}'
        )

    def rows(self) -> list[tuple[str, str]]:
        """Where each part is, as (name, description)."""
        key = self.api_key or "one of the keys in your SHOAL_TENANTS"
        return [
            ("web app", f"{self.api_url}/app/   (sign in with the API key below)"),
            ("API", f"{self.api_url}   (interactive docs: {self.api_url}/docs)"),
            ("API key", key + (f"   (tenant {self.tenant!r})" if self.api_key else "")),
            ("outputs", self.outputs),
            ("provider", self.provider),
            ("Redis", self.redis),
            ("storage", self.storage),
            ("logs", f"{self.logs_dir}/"),
        ]

    def banner(self) -> str:
        """What ``make run`` prints once everything is ready."""
        lines = ["", "shoal is ready.", ""]
        lines += [f"  {name:<9} {value}" for name, value in self.rows()]
        lines += [
            "",
            "Narrate something:",
            f"  {self.narrate_command()}",
            "",
            "Ctrl-C stops everything.",
            "",
        ]
        return "\n".join(lines)


class Stack:
    """The processes of one stack, started from one state directory."""

    def __init__(self, options: Options, environ: Mapping[str, str] | None = None) -> None:
        self.options = options
        self.environ = dict(os.environ if environ is None else environ)
        # Every child carries the state directory, so a later launcher can tell its
        # leftovers (after this one was killed outright) from unrelated processes.
        self.environ["SHOALRUN_STATE"] = str(options.state_dir.resolve())
        self.environ["PYTHONUNBUFFERED"] = "1"
        self.state = StateDir(options.state_dir)
        self.children: list[Child] = []
        self.stopping = threading.Event()  # set by Ctrl-C or SIGTERM
        self.hurry = threading.Event()  # set by a second one: stop without waiting
        self.spawning = False  # a signal now must not interrupt Popen (see _spawn)
        self.ready: Ready | None = None

    # -- start -------------------------------------------------------------------------

    def start(self) -> Ready:
        """Start every part that is not configured; return once all of them answer."""
        self.state.lock()
        self.state.reap_leftovers()
        secrets = self.state.secrets()
        try:
            settings = Settings()
        except ValidationError as exc:
            raise LaunchError(f"invalid SHOAL_* settings:\n{exc}") from exc
        host = self.options.host
        api_port = self._api_port(host)
        overrides: dict[str, Any] = {}
        env = dict(self.environ)

        # Redis, S3 and the provider start together; the API and the worker as soon as
        # Redis answers (their addresses of S3 and the provider are known already).
        redis_desc, redis_child = self._redis(settings, overrides)
        storage_desc, outputs, outputs_dir, s3_child = self._s3(settings, secrets, overrides)
        provider_desc, tts_child = self._provider(settings, overrides)
        self._record()
        if redis_child is not None:
            redis_child.wait_until(
                lambda: p.redis_answers(overrides["redis_url"]),
                self.options.start_timeout,
                "did not answer PING",
            )
            redis_child.ready()
        final = settings.model_copy(update=overrides)
        tenant, api_key = self._tenant(settings, secrets, env)
        env.update(_as_env(overrides))
        env.setdefault("SHOAL_SPOOL_DIR", str(self.state.spool_dir.resolve()))
        api_url = f"http://{host}:{api_port}"
        worker = self._spawn("worker", p.worker_argv(f"shoal-run-{os.getpid()}@%h"), env)
        api = self._spawn("api", p.api_argv(host, api_port), env)
        self._record()
        self._await_parts(final, tts_child, s3_child, worker)
        self._wait_api(api, api_url)
        api.ready()
        self.ready = Ready(
            api_url=api_url,
            api_key=api_key,
            tenant=tenant,
            redis=redis_desc,
            provider=provider_desc,
            storage=storage_desc,
            outputs=outputs,
            outputs_dir=outputs_dir,
            logs_dir=_display(self.state.logs_dir),
            shoal=_display(Path(sys.executable).parent / "shoal"),
            pids={c.name: c.pid for c in self.children},
        )
        return self.ready

    def _api_port(self, host: str) -> int:
        port = self.options.api_port or p.free_port(host)
        if not p.port_free(host, port):
            raise PartUnavailable(
                f"port {port} on {host} is in use, so the API cannot listen there; "
                "stop what uses it, or pass --api-port"
            )
        return port

    def _await_parts(
        self, settings: Settings, tts: Child | None, s3: Child | None, worker: Child
    ) -> None:
        """Wait for the provider, the store (and its bucket) and the worker, in that order."""
        if tts is not None:
            tts.wait_for_line(r"local_tts listening on ", self.options.start_timeout)
            tts.ready()
        if s3 is not None:
            s3.wait_for_line(r"Starting s3 server on", self.options.start_timeout)
        self._ensure_bucket(settings, s3)
        if s3 is not None:
            s3.ready()
        worker.wait_for_line(r"\bready\.", self.options.start_timeout)
        worker.ready()

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> Child:
        child = Child(
            name,
            argv,
            env=env,
            log_path=self.state.logs_dir / f"{name}.log",
            echo=self.options.echo,
        )
        self.children.append(child)
        # A signal handler that raised inside Popen could lose the new process (started,
        # but never recorded); while spawning it only sets `stopping`, checked here after.
        self.spawning = True
        try:
            child.start()
        finally:
            self.spawning = False
        if self.stopping.is_set():
            raise Interrupted
        return child

    def _record(self) -> None:
        self.state.record_children({c.name: c.pid for c in self.children if c.proc})

    def _redis(self, settings: Settings, overrides: dict[str, Any]) -> tuple[str, Child | None]:
        url = settings.redis_url
        if p.redis_answers(url):
            how = "configured" if "SHOAL_REDIS_URL" in self.environ else "already running"
            return f"{_display_url(url)} ({how})", None
        address = p.redis_address(url)
        if not p.port_free(address.host, address.port):
            # Something listens there but does not answer PING: a Redis that wants a
            # password, is still loading its data, or is not a Redis at all.
            raise PartUnavailable(
                f"{address.host}:{address.port} is in use but no Redis answers PING at "
                f"{_display_url(url)} (SHOAL_REDIS_URL): {p.redis_error(url)}"
            )
        binary = p.redis_server_binary()
        data = self.state.redis_dir
        data.mkdir(parents=True, exist_ok=True)
        child = self._spawn("redis", p.redis_argv(binary, address, data.resolve()), self.environ)
        overrides["redis_url"] = url
        return f"{_display_url(url)} (started here, data in {_display(data)})", child

    def _s3(
        self, settings: Settings, secrets: Secrets, overrides: dict[str, Any]
    ) -> tuple[str, str, Path | None, Child | None]:
        if p.s3_configured(settings, self.environ):
            where = settings.s3_endpoint_url or "AWS S3"
            prefix = f"s3://{settings.s3_bucket}/"
            return f"bucket {settings.s3_bucket!r} at {where} (configured)", prefix, None, None
        host = self.options.host
        port = p.pick_port(host, self.options.s3_port)
        root = self.state.s3_dir
        bucket_dir = root / settings.s3_bucket
        bucket_dir.mkdir(parents=True, exist_ok=True)  # a folder at the root is a bucket
        config = self.state.root / "rclone.conf"
        config.touch()  # an empty config of its own: never the user's remotes
        argv = p.rclone_argv(p.rclone_binary(), host, port, root.resolve(), config.resolve())
        env = {
            **self.environ,
            **p.rclone_env(secrets.s3_access_key_id, secrets.s3_secret_access_key),
        }
        child = self._spawn("s3", argv, env)
        endpoint = f"http://{host}:{port}"
        overrides.update(
            s3_endpoint_url=endpoint,
            s3_access_key_id=secrets.s3_access_key_id,
            s3_secret_access_key=SecretStr(secrets.s3_secret_access_key),
            s3_region="us-east-1",
            s3_path_style=True,
            # rclone rejects the checksums boto3 sends by default.
            s3_checksum_when_required=True,
        )
        desc = f"bucket {settings.s3_bucket!r} at {endpoint} (rclone serve s3, started here)"
        return desc, f"{_display(bucket_dir)}/", bucket_dir, child

    def _provider(self, settings: Settings, overrides: dict[str, Any]) -> tuple[str, Child | None]:
        if p.provider_configured(settings):
            kind = "Fish Audio" if settings.fish_api_key else "provider"
            return f"{kind} at {settings.provider_url} (configured)", None
        host = self.options.host
        port = p.pick_port(host, self.options.tts_port)
        child = self._spawn("local_tts", p.local_tts_argv(host, port), self.environ)
        overrides["fish_base_url"] = f"http://{host}:{port}"
        return f"local_tts ({p.local_tts_engine()}) at http://{host}:{port} (started here)", child

    def _ensure_bucket(self, settings: Settings, s3_child: Child | None) -> None:
        """Create the bucket unless it exists; an embedded store gets time to come up."""
        storage = Storage.from_settings(settings, request_attempts=1, connect_timeout=2.0)
        deadline = time.monotonic() + STORAGE_READY_TIMEOUT
        try:
            while True:
                try:
                    storage.ensure_bucket()
                    return
                except StorageError as exc:
                    if s3_child is None:
                        raise PartUnavailable(
                            f"S3 bucket {settings.s3_bucket!r} at "
                            f"{settings.s3_endpoint_url or 'AWS'}: {exc}"
                        ) from exc
                    if not exc.retryable or time.monotonic() > deadline:
                        raise s3_child.failure(f"did not serve the bucket: {exc}") from exc
                    if not s3_child.running():
                        raise s3_child.failure("exited before it was ready") from exc
                    time.sleep(0.2)
        finally:
            storage.close()

    def _tenant(
        self, settings: Settings, secrets: Secrets, env: dict[str, str]
    ) -> tuple[str | None, str | None]:
        """The tenant whose key the banner shows: the launcher's own, unless configured."""
        if p.tenants_configured(settings):
            return None, self.environ.get("SHOAL_API_KEY") or None
        env["SHOAL_TENANTS"] = json.dumps(
            [
                {
                    "id": LOCAL_TENANT,
                    "key_sha256": [secrets.api_key_sha256],
                    "webhook_secret": secrets.webhook_secret,
                }
            ]
        )
        return LOCAL_TENANT, secrets.api_key

    def _wait_api(self, api: Child, url: str) -> None:
        last = "no answer"

        def ready() -> bool:
            nonlocal last
            try:
                got = httpx.get(f"{url}/readyz", timeout=5.0)
            except httpx.HTTPError as exc:
                last = str(exc) or type(exc).__name__
                return False
            last = f"/readyz answered {got.status_code}: {got.text[:500]}"
            return got.status_code == 200

        try:
            api.wait_until(ready, API_READY_TIMEOUT, "was not ready")
        except PartFailed as exc:
            raise PartFailed(f"{exc}\n(last readiness check: {last})") from exc

    # -- run and stop --------------------------------------------------------------------

    def watch(self) -> None:
        """Return once :attr:`stopping` is set; :class:`PartFailed` if a part exits first."""
        while not self.stopping.wait(0.5):
            for child in self.children:
                if not child.running():
                    raise child.failure("exited unexpectedly")

    def stop(self) -> None:
        """Stop every process started, API first and Redis last; none is left behind."""
        order = ["api", "worker", "local_tts", "s3", "redis"]
        ranked = sorted(self.children, key=lambda c: order.index(c.name))
        for child in ranked:
            if child.proc is None:
                continue
            if child.name == "worker" and child.running():
                log.info("waiting up to %.0f s for the worker to finish", self.options.stop_timeout)
            timeout = self.options.stop_timeout if child.name == "worker" else 10.0
            child.stop(timeout, self.hurry)
        self.children.clear()
        if self.state.locked:  # not when another launcher holds the directory
            self.state.record_children({})
            self.state.unlock()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _as_env(overrides: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in overrides.items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out[f"SHOAL_{name.upper()}"] = text
    return out


def _display(path: Path) -> Path:
    """``path`` relative to the working directory when it is below it (shorter to read)."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path.resolve()


def _display_url(url: str) -> str:
    return p.redacted(url)
