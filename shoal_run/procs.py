"""Child processes of the launcher: one process group each, logged, stopped for sure.

A :class:`Child` starts its command in a new session (so a Ctrl-C at the
terminal reaches only the launcher, which then stops the children in order),
copies every line it prints to a log file (and, if asked, to the console with
the part's name in front), and lets the launcher wait for a line that says
the part is ready.  :meth:`Child.stop` sends SIGTERM to the whole group, waits,
and sends SIGKILL to whatever is left, so grandchildren (local_tts's espeak
processes, say) go too.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from shoal_run import PartFailed

log = logging.getLogger(__name__)

#: How many of a child's last lines an error message shows.
TAIL_LINES = 40


class Child:
    """One started program, its log, and the lines it printed."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
        echo: IO[str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.echo = echo
        self.proc: subprocess.Popen[bytes] | None = None
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._lines: list[str] = []  # every line until the part is ready; then no more
        self._keep_lines = True
        self._cond = threading.Condition()
        self._pump: threading.Thread | None = None
        self._closed = False
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.proc.pid

    def start(self) -> Child:
        """Start the program in a session of its own; its output goes to the log."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log.debug("starting %s: %s", self.name, " ".join(self.argv))
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: Ctrl-C is the launcher's
            )
        except OSError as exc:
            raise PartFailed(f"{self.name}: cannot start {self.argv[0]}: {exc}") from exc
        self.started_at = time.monotonic()
        self._pump = threading.Thread(target=self._read, name=f"pump-{self.name}", daemon=True)
        self._pump.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log_path.open("ab") as out:
            for raw in self.proc.stdout:
                out.write(raw)
                out.flush()
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if self.echo is not None:
                    with contextlib.suppress(OSError, ValueError):
                        self.echo.write(f"{self.name:<9}| {line}\n")
                        self.echo.flush()
                with self._cond:
                    self._tail.append(line)
                    if self._keep_lines:
                        self._lines.append(line)
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first printed line that matches ``pattern`` (a regex, searched).

        Raises :class:`PartFailed` if the program exits first or ``timeout``
        seconds pass.
        """
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    found = rx.search(line)
                    if found:
                        return found
                seen = len(self._lines)
                if self._closed:
                    raise self.failure("exited before it was ready")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self.failure(f"was not ready within {timeout:.0f} s")
                self._cond.wait(min(remaining, 0.5))

    def ready(self) -> None:
        """The part is up: stop keeping every line (the tail is enough from now on)."""
        log.info("%s ready in %.1f s", self.name, time.monotonic() - self.started_at)
        with self._cond:
            self._keep_lines = False
            self._lines.clear()

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until it is true; :class:`PartFailed` if the program exits first."""
        deadline = time.monotonic() + timeout
        while not check():
            if not self.running():
                raise self.failure("exited before it was ready")
            if time.monotonic() > deadline:
                raise self.failure(f"{what} within {timeout:.0f} s")
            time.sleep(0.1)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self) -> str:
        with self._cond:
            return "\n".join(self._tail)

    def failure(self, what: str) -> PartFailed:
        code = None
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(0.5 if self._closed else 0)
        status = f" (exit code {code})" if code is not None else ""
        return PartFailed(
            f"{self.name} {what}{status}; its log is {self.log_path}. Last lines:\n{self.tail()}"
        )

    def stop(self, timeout: float, hurry: threading.Event | None = None) -> None:
        """SIGTERM to the group, wait up to ``timeout`` s (less once ``hurry`` is set),
        then SIGKILL to whatever is left of the group."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # the leader of a new session: its pid is the group id
        if self.proc.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                if hurry is not None and hurry.is_set():
                    break
                time.sleep(0.05)
            if self.proc.poll() is None:
                log.warning("%s did not stop within %g s; killing it", self.name, timeout)
        # The leader may be gone and its children not: the group goes in any case.
        _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        deadline = time.monotonic() + 5
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._pump is not None:
            self._pump.join(5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:  # no such group: already gone
            raise


def group_alive(pgid: int) -> bool:
    """True while any process of group ``pgid`` lives (zombies waiting to be reaped do not)."""
    try:
        os.killpg(pgid, 0)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True  # no way to tell zombies apart here
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
