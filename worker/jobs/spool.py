"""Spool folders: where one attempt of a job keeps its files on the worker's disk.

Each attempt has a folder of its own, so a stalled worker cleaning up after
losing its lease never deletes the files of the attempt that took over; the
folders of this machine's dead worker processes are removed on the way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

_HOST = socket.gethostname().replace("/", "_")


def make_spool(spool_dir: Path, job_id: str) -> Path:
    """A fresh folder for one attempt's files: ``<spool_dir>/<job>/<host>-<pid>-<random>``.

    Each attempt has its own, so a stalled worker that cleans up after losing
    its lease never deletes the files of the attempt that took over.  Spools
    left by dead worker processes of this machine are removed on the way.
    """
    root = spool_dir / job_id
    root.mkdir(parents=True, exist_ok=True)
    _prune_dead_spools(root)
    spool = root / f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    spool.mkdir(parents=True)
    return spool


def drop_spool(spool: Path) -> None:
    """Remove an attempt's folder, and the job's once no other attempt uses it."""
    shutil.rmtree(spool, ignore_errors=True)
    with contextlib.suppress(OSError):
        spool.parent.rmdir()  # fails while another attempt's folder is still there


def _prune_dead_spools(root: Path) -> None:
    """Remove spools of this machine's worker processes that died mid-attempt (kill -9)."""
    with contextlib.suppress(OSError):
        for child in root.iterdir():
            host, _, rest = child.name.rpartition("-")[0].rpartition("-")
            pid = int(rest) if rest.isdigit() else 0
            if host == _HOST and pid and pid != os.getpid() and not _alive(pid):
                log.info("removing %s: its worker process is gone", child)
                shutil.rmtree(child, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
