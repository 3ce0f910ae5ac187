"""Real servers for tests, each a subprocess on a free port.

:class:`LocalTTS` runs ``python -m local_tts`` (the offline Fish-compatible
provider) and talks to its admin routes::

    with LocalTTS(engine="tone", rtf=0.01) as tts:
        tts.ws_url          # ws://127.0.0.1:PORT/v1/tts/live
        tts.url             # http://127.0.0.1:PORT
        tts.stats()         # GET /_admin/stats
        tts.set_faults({"rules": [{"action": "drop", "session": 1, "after_audio": 1}]})

Every tier (local_tts conformance, worker integration, fault tests) shares it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_PREFIX = "local_tts listening on "


class ServerStartError(RuntimeError):
    """The server exited or did not announce its address in time."""


class LocalTTS:
    """``python -m local_tts`` in a subprocess on ``127.0.0.1:0``.

    Keyword arguments map to command-line flags (``None`` leaves the server's
    default); ``extra_args`` are appended verbatim.  ``faults`` may be a plan
    (dict) or a JSON string.  Use it as a context manager, or call
    :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        engine: str = "tone",
        api_keys: Iterable[str] = (),
        max_concurrency: int | None = None,
        rtf: float | None = None,
        ttfb_ms: float | None = None,
        faults: Mapping[str, Any] | str | None = None,
        max_message_bytes: int | None = None,
        extra_args: Iterable[str] = (),
        host: str = "127.0.0.1",
        startup_timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.startup_timeout = startup_timeout
        self.args = ["--host", host, "--port", "0", "--engine", engine]
        for key in api_keys:
            self.args += ["--api-key", key]
        options = {
            "--max-concurrency": max_concurrency,
            "--rtf": rtf,
            "--ttfb-ms": ttfb_ms,
            "--max-message-bytes": max_message_bytes,
        }
        for flag, value in options.items():
            if value is not None:
                self.args += [flag, str(value)]
        if faults is not None:
            plan = faults if isinstance(faults, str) else json.dumps(faults)
            self.args += ["--faults", plan]
        self.args += list(extra_args)
        self.env = dict(env) if env is not None else None
        self.proc: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self._stderr: Any = None
        self._stdout_tail: deque[str] = deque(maxlen=200)
        self._http: httpx.Client | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> LocalTTS:
        """Start the server and wait until it prints its address."""
        if self.proc is not None:
            raise RuntimeError("already started")
        env = dict(os.environ if self.env is None else self.env)
        # Importable from a checkout even without an editable install.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        # stderr goes to a file: a pipe nobody reads would block a chatty server.
        # Closed in stop(); it has to outlive this method.
        self._stderr = tempfile.TemporaryFile(  # noqa: SIM115
            mode="w+", encoding="utf-8", errors="replace"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local_tts", *self.args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            cwd=REPO_ROOT,
            env=env,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump_stdout, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(f"did not print its address within {self.startup_timeout:.0f} s")
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self._fail(f"exited with code {self.proc.wait()} before it was ready")
            if line.startswith(READY_PREFIX):
                url = line[len(READY_PREFIX) :].strip()
                self.port = int(url.rsplit(":", 1)[1])
                break
        self._http = httpx.Client(base_url=self.url, timeout=30.0)
        return self

    def _pump_stdout(self, lines: queue.Queue[str | None]) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:  # keep draining so the server never blocks on stdout
            self._stdout_tail.append(line)
            lines.put(line)
        lines.put(None)

    def _fail(self, why: str) -> NoReturn:
        output = self.output()
        self.stop()
        raise ServerStartError(f"local_tts {' '.join(self.args)} {why}\n{output}")

    def output(self) -> str:
        """What the server wrote to stderr (and stdout) so far, for error messages."""
        err = ""
        if self._stderr is not None and not self._stderr.closed:
            self._stderr.flush()
            self._stderr.seek(0)
            err = self._stderr.read()
        out = "".join(self._stdout_tail)
        return f"--- stdout ---\n{out}--- stderr ---\n{err}"

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate (SIGTERM), wait, kill if it will not go; returns the exit code."""
        if self._http is not None:
            self._http.close()
            self._http = None
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout)
            code = self.proc.returncode
            if self.proc.stdout is not None:
                with contextlib.suppress(OSError, ValueError):
                    self.proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> LocalTTS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port``: the base URL the SDKs and ``POST /v1/tts`` use."""
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The live endpoint, ``ws://host:port/v1/tts/live``."""
        return f"ws://{self.host}:{self.port}/v1/tts/live"

    # -- admin -----------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("server not started")
        return self._http

    def stats(self) -> dict[str, Any]:
        """``GET /_admin/stats``."""
        response = self.http.get("/_admin/stats")
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """``POST /_admin/reset``: zero the counters."""
        self.http.post("/_admin/reset").raise_for_status()

    def set_faults(self, plan: Mapping[str, Any] | None) -> None:
        """``POST /_admin/faults``: replace the fault plan (``None`` clears it)."""
        self.http.post("/_admin/faults", json=dict(plan or {})).raise_for_status()

    def clear_faults(self) -> None:
        self.set_faults({"rules": []})

    def wait_idle(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until no session is active (the server has seen every close); returns stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["sessions_active"] == 0:
                return stats
            if time.monotonic() > deadline:
                raise AssertionError(f"sessions still active after {timeout} s: {stats}")
            time.sleep(0.02)
