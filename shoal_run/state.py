"""The launcher's state directory (``./state`` by default).

It holds what must outlive a restart: the embedded Redis's data
(``redis/``), the embedded S3's objects (``s3/<bucket>/...``), the secrets the
launcher generated on its first run (``secrets.json``: the API key, the S3
keys, the webhook secret), the logs of every part (``logs/``), and the process
groups it started (``children.json``).  A lock file keeps two launchers off one
directory; a launcher that finds groups left by one that was killed outright
stops them before it starts anything.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from shoal_run import StateLocked
from shoal_run.procs import group_alive

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Secrets:
    """Credentials generated on the first run and kept in ``secrets.json`` (mode 0600)."""

    api_key: str  # the key of the "local" tenant, unless SHOAL_TENANTS is configured
    webhook_secret: str  # Standard Webhooks signing secret of that tenant
    s3_access_key_id: str  # the embedded S3's credentials
    s3_secret_access_key: str

    @classmethod
    def generate(cls) -> Secrets:
        whsec = base64.b64encode(secrets.token_bytes(24)).decode()
        return cls(
            api_key=f"shoal_{secrets.token_urlsafe(24)}",
            webhook_secret=f"whsec_{whsec}",
            # rclone refuses very short access keys; these are AWS-sized.
            s3_access_key_id=f"SHOAL{secrets.token_hex(8).upper()}",
            s3_secret_access_key=secrets.token_urlsafe(30),
        )

    @property
    def api_key_sha256(self) -> str:
        return hashlib.sha256(self.api_key.encode()).hexdigest()


class StateDir:
    """The state directory, locked for the life of one launcher."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock: IO[str] | None = None

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def s3_dir(self) -> Path:
        return self.root / "s3"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def spool_dir(self) -> Path:
        return self.root / "spool"

    @property
    def locked(self) -> bool:
        """True while this object holds the directory's lock."""
        return self._lock is not None

    def lock(self) -> None:
        """Take the directory, or :class:`StateLocked` if another launcher has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        f = (self.root / "launcher.lock").open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise StateLocked(
                f"another shoal launcher (pid {holder}) is using {self.root}; "
                "stop it, or give this one --state-dir of its own"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock = f

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    # -- secrets -------------------------------------------------------------------

    def secrets(self) -> Secrets:
        """The secrets of this state directory, generated on first use."""
        path = self.root / "secrets.json"
        if path.exists():
            return Secrets(**json.loads(path.read_text()))
        made = Secrets.generate()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(
                {
                    "api_key": made.api_key,
                    "webhook_secret": made.webhook_secret,
                    "s3_access_key_id": made.s3_access_key_id,
                    "s3_secret_access_key": made.s3_secret_access_key,
                },
                f,
                indent=2,
            )
        os.replace(tmp, path)
        return made

    # -- process groups ------------------------------------------------------------

    def record_children(self, groups: dict[str, int]) -> None:
        """Remember the process groups started (name → pgid), for :meth:`reap_leftovers`."""
        (self.root / "children.json").write_text(json.dumps(groups))

    def reap_leftovers(self) -> list[str]:
        """Kill process groups a previous launcher of this directory left behind.

        Only called with the lock held, so their launcher is gone.  A group is
        killed only if its leader still runs a command that names this state
        directory or this interpreter, so a recycled pid is left alone.
        """
        path = self.root / "children.json"
        if not path.exists():
            return []
        try:
            groups: dict[str, int] = json.loads(path.read_text())
        except ValueError:
            groups = {}
        killed = []
        for name, pgid in groups.items():
            if group_alive(pgid) and _looks_like_ours(pgid, self.root):
                log.warning("stopping %s (process group %d) left by an earlier run", name, pgid)
                os.killpg(pgid, signal.SIGKILL)
                killed.append(name)
        path.unlink(missing_ok=True)
        return killed


def _looks_like_ours(pid: int, root: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    marker = f"SHOALRUN_STATE={root.resolve()}".encode()
    return marker in env.split(b"\0") or str(root.resolve()) in cmdline
