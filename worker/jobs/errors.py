"""The job store's errors (:mod:`worker.jobs.store`, :mod:`worker.jobs.codec`).

Errors::

    StoreError
    ├── JobExists          create() of an id that is already stored
    ├── JobNotFound        an update of a job that is not (or no longer) stored
    ├── CorruptJobRecord   a stored hash that does not decode into a Job
    └── InvalidCursor      a listing cursor this store did not hand out (also a ValueError)
"""

from __future__ import annotations

__all__ = ["CorruptJobRecord", "InvalidCursor", "JobExists", "JobNotFound", "StoreError"]


class StoreError(Exception):
    """Root of the job store's errors."""


class JobExists(StoreError):
    """A job with this id is already stored."""


class JobNotFound(StoreError, KeyError):
    """The job is not stored (never created, deleted, or expired)."""


class CorruptJobRecord(StoreError):
    """A stored record that does not decode into a :class:`Job`."""


class InvalidCursor(StoreError, ValueError):
    """A listing cursor that this store did not produce."""
