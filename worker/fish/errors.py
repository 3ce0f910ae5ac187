"""Errors of the Fish live protocol core.

    FishError
    ├── ProtocolError          a peer broke the protocol (bad frame, out-of-order event)
    │   ├── MalformedFrame     bytes that are not a msgpack map with a string ``event``
    │   └── UnexpectedEvent    a well-formed event at a moment the session does not allow
    └── InvalidRequest         a TTSRequest value outside the documented ranges

All are raised by the sans-I/O core; the I/O layers decide whether an error is
permanent or transient for their callers.
"""

from __future__ import annotations


class FishError(Exception):
    """Root of the protocol core's errors."""


class ProtocolError(FishError):
    """The peer sent something the protocol does not allow."""


class MalformedFrame(ProtocolError):
    """A frame that cannot be decoded into an event."""


class UnexpectedEvent(ProtocolError):
    """A valid event that the session's current state does not accept."""


class InvalidRequest(FishError):
    """A TTSRequest that fails validation; ``field`` names the offending key."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
