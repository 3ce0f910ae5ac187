"""Talking to the shoal API over HTTP: the client, its errors, polling, verified downloads.

The CLI is a plain HTTP client: it imports nothing of the server's code, only
the JSON shapes the API documents.  Errors end a command with a message on
stderr and an exit status::

    CliError          ``message`` and the exit ``code``
    ├── Unreachable   no answer from the API (connection refused, timeout)
    └── Refused       the API answered 4xx/5xx; ``status``, ``retry_after``

(The module is not called ``http``: run as a script, it would shadow the
standard library's ``http`` for httpx.)
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_JOB, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: How long a command keeps polling through connection errors before it gives up.
UNREACHABLE_GRACE = 60.0
#: Longest wait after a 429 while polling, whatever Retry-After says.
MAX_BACKOFF = 30.0


class CliError(Exception):
    """Ends the command with ``message`` on stderr and exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_API) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Unreachable(CliError):
    """The API did not answer."""


class Refused(CliError):
    """The API answered with an error status."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(describe_error(response))
        self.status = response.status_code
        self.retry_after: float | None
        try:
            self.retry_after = float(response.headers.get("retry-after", ""))
        except ValueError:
            self.retry_after = None


def describe_error(response: httpx.Response) -> str:
    """What went wrong, in the API's own words: ``{"error": {code, message, field}}``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        message = str(err.get("message") or err.get("code") or "error")
        field = f" [{err['field']}]" if err.get("field") else ""
        code = f" {err['code']}" if err.get("code") else ""
        return f"HTTP {response.status_code}{code}{field}: {message}"
    if isinstance(body, dict) and "detail" in body:
        return f"HTTP {response.status_code}: {body['detail']}"
    text = response.text.strip()[:300] or response.reason_phrase
    return f"HTTP {response.status_code}: {text}"


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr."""
    print(message, file=sys.stderr, flush=True)


class Api:
    """The API at ``url`` with a tenant's key; errors become :class:`CliError`."""

    def __init__(self, url: str, key: str | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        headers = {"user-agent": "shoal-cli/1", "accept": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        # Connection attempts are retried by the transport; requests are not.
        transport = httpx.HTTPTransport(retries=2)
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call; :class:`Unreachable` without an answer, :class:`Refused` on 4xx/5xx."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise Unreachable(f"the API at {self.url} did not answer in time ({exc})") from exc
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach the API at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise Refused(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One call whose answer is a JSON object."""
        return dict(self.request(method, path, **kwargs).json())


def path_part(value: str, what: str) -> str:
    """``value`` if it can stand as one segment of a URL path (an id the user typed)."""
    if not value or "/" in value or value in (".", ".."):
        raise CliError(f"not a {what}: {value!r}", EXIT_USAGE)
    return value


def poll(
    api: Api,
    current: dict[str, Any],
    *,
    what: str,
    report: Callable[[dict[str, Any]], None],
    finished: frozenset[str],
    interval: float,
    timeout: float | None,
    later: str = "",
) -> dict[str, Any]:
    """Show ``current`` (a job or batch) again until its status is in ``finished``.

    ``what`` names it in messages ("job ID"); ``later`` is added to the timeout's
    message.  Rides out short outages of the API and backs off when rate limited.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    unreachable_since: float | None = None
    path = current["links"]["self"]
    while True:
        report(current)
        if current.get("status") in finished:
            return current
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"{what} still {current.get('status')} after {timeout:g}s{later}")
        time.sleep(interval)
        try:
            current = api.json("GET", path)
            unreachable_since = None
        except Refused as exc:
            if exc.status != 429:
                raise
            time.sleep(min(exc.retry_after or 1.0, MAX_BACKOFF))  # polling too fast
        except Unreachable as exc:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > UNREACHABLE_GRACE:
                raise CliError(f"{exc.message}; {what} carries on") from exc


def cancel_interrupted(api: Api, current: dict[str, Any], what: str) -> int:
    """After Ctrl-C: cancel the job or batch being waited for, and say so."""
    try:
        api.request("POST", current["links"]["cancel"])
        note(f"interrupted: canceled {what}")
    except CliError as exc:
        note(f"interrupted; {what} was not canceled: {exc.message}")
    return EXIT_INTERRUPTED


def fetch(url: str, out: str, size: int | None, sha256: str | None, what: str) -> int:
    """Download ``url`` to ``out`` (``-``: stdout), checking size and SHA-256.

    A fresh client, not the API's: a presigned URL must not get the API key.
    The file appears only once complete and verified (written beside it first).
    """
    digest = hashlib.sha256()
    got = 0
    target = None if out == "-" else Path(out)
    part = None if target is None else target.with_name(f".{target.name}.part")
    try:
        with httpx.stream("GET", url, timeout=60.0, follow_redirects=True) as response:
            if response.status_code >= 400:
                raise CliError(f"download of {what} failed: {describe_error(response)}")
            with _sink(part) as sink:
                for chunk in response.iter_bytes(1 << 16):
                    sink.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
    except httpx.HTTPError as exc:
        _unlink(part)
        raise CliError(f"download of {what} failed: {exc}") from exc
    except BaseException:
        _unlink(part)
        raise
    if (size is not None and got != size) or (sha256 and digest.hexdigest() != sha256):
        _unlink(part)
        raise CliError(f"download of {what} is corrupt (got {got} bytes)")
    if part is not None and target is not None:
        part.replace(target)
    return got


@contextlib.contextmanager
def _sink(part: Path | None) -> Iterator[IO[bytes]]:
    if part is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        with part.open("wb") as fh:
            yield fh
    except OSError as exc:
        raise CliError(f"cannot write {part}: {exc.strerror}", EXIT_USAGE) from exc


def _unlink(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)
