"""Errors of the Fish live protocol: the sans-I/O core and the streaming client.

FishError
├── ProtocolError              a peer broke the protocol (bad frame, out-of-order event)
│   ├── MalformedFrame         bytes that are not a msgpack map with a string ``event``
│   └── UnexpectedEvent        a well-formed event the session's state does not allow
├── InvalidRequest             a TTSRequest value outside the documented ranges
└── ProviderError              the client's view of a failed session (``status`` if HTTP)
    ├── PermanentProviderError     retrying cannot help: fail the job at once
    │   ├── ProviderAuthError      401: the key was refused
    │   ├── ProviderCreditError    402: the account is out of credit
    │   └── ProviderRequestError   400/403/404/422: the request was refused
    └── TransientProviderError     retry with backoff
        ├── ProviderBusy           429: concurrency or rate limit
        ├── ProviderServerError    5xx, or another unexpected handshake status
        ├── ProviderDropped        the connection ended before ``finish``
        ├── ProviderFinishError    ``finish`` with reason ``error``
        └── ProviderTimeout        connect, first audio or silence timeout
"""

from __future__ import annotations


class FishError(Exception):
    """Root of the protocol's errors."""


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


class ProviderError(FishError):
    """A provider session failed; ``retryable`` tells the caller what to do."""

    retryable = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class PermanentProviderError(ProviderError):
    """Retrying cannot help."""


class ProviderAuthError(PermanentProviderError):
    """HTTP 401 at the handshake: the API key was refused."""


class ProviderCreditError(PermanentProviderError):
    """HTTP 402 at the handshake: no credit left."""


class ProviderRequestError(PermanentProviderError):
    """The provider (or our own validation) refused the request itself."""


class TransientProviderError(ProviderError):
    """Worth retrying after a backoff."""

    retryable = True


class ProviderBusy(TransientProviderError):
    """HTTP 429: over the account's concurrency or rate limit."""


class ProviderServerError(TransientProviderError):
    """HTTP 5xx (or another unexpected status) at the handshake."""


class ProviderDropped(TransientProviderError):
    """The connection closed or broke before ``finish``."""


class ProviderFinishError(TransientProviderError):
    """The provider ended the session with ``finish``/``error``."""


class ProviderTimeout(TransientProviderError):
    """No connection, no first audio, or silence for too long."""
