"""Standard Webhooks signatures, pure: sign a callback, verify one, name an event.

A receiver gets, on every attempt of one event::

    webhook-id: msg_...            the same on every attempt of one event: de-duplicate on it
    webhook-timestamp: 1718000000  unix seconds of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">

The key is the tenant's ``webhook_secret``, ``whsec_`` followed by base64.
:func:`verify` is what a receiver (or a test) runs on what it got.

Errors of the callbacks package::

    CallbackError
    ├── InvalidSecret             a secret that is not ``whsec_<base64>`` (also a ValueError)
    └── WebhookVerificationError  verify(): headers missing, timestamp stale, no signature matches
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

#: Default age, in seconds, beyond which :func:`verify` refuses a message.
TOLERANCE = 300


class CallbackError(Exception):
    """Root of the callbacks package's errors."""


class InvalidSecret(CallbackError, ValueError):
    """A webhook secret that is not ``whsec_`` followed by non-empty base64."""


class WebhookVerificationError(CallbackError):
    """A webhook that does not verify: headers missing, timestamp stale, or no signature matches."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after ``whsec_``."""
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret("webhook secret is not whsec_<base64>") from exc
    if not key:
        raise InvalidSecret("webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: str | bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    raw = body if isinstance(body, bytes) else body.encode()
    signed = f"{msg_id}.{int(timestamp)}.".encode() + raw
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: str | bytes,
    tolerance: float = TOLERANCE,
    *,
    now: float | None = None,
) -> None:
    """Check a received webhook; raises :class:`WebhookVerificationError` unless one
    of its ``v1`` signatures matches and its timestamp is within ``tolerance`` seconds
    of ``now``.  ``headers`` may use any case; ``body`` must be the raw bytes received."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError(f"webhook-timestamp is not an integer: {stamp!r}") from exc
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("message timestamp too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("message timestamp too new")
    expected = sign(secret, msg_id, timestamp, body).encode()
    for candidate in signatures.split():
        version, _, _ = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(candidate.encode(), expected):
            return
    raise WebhookVerificationError("no matching signature")


def event_id(subject: str, event_type: str, sequence: int = 0) -> str:
    """The stable ``webhook-id`` of one event of ``subject`` (a job or batch id): the
    same for every delivery attempt, and for every emission of the same event (a
    progress event is numbered by segments done, a batch's end by its generation)."""
    digest = hashlib.sha256(f"{subject}\n{event_type}\n{sequence}".encode()).digest()
    return "msg_" + base64.b32encode(digest[:15]).decode().lower()
