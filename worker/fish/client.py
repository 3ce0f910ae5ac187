"""The streaming client: asyncio ``websockets`` moving the bytes of a
:class:`~worker.fish.session.ClientSession`.

One call of :func:`stream_tts` is one provider session: connect (Bearer key,
``model`` header, optional ``traceparent``; compression off), send ``start``,
the text and ``stop``, hand every ``audio`` payload to a callback as it
arrives, and return once ``finish``/``stop`` came.  Every failure is raised as
a :class:`~worker.fish.errors.ProviderError` that says whether retrying helps.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from worker.fish.errors import (
    ProtocolError,
    ProviderAuthError,
    ProviderBusy,
    ProviderCreditError,
    ProviderDropped,
    ProviderError,
    ProviderFinishError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeout,
)
from worker.fish.events import Audio, Finish, FinishReason
from worker.fish.request import TTSRequest
from worker.fish.session import ClientSession

T = TypeVar("T")

log = logging.getLogger(__name__)

USER_AGENT = "shoal/0.1 (+fish-live)"

AudioCallback = Callable[[bytes], Awaitable[None] | None]


class StreamCanceled(Exception):
    """The caller's cancel event was set; the session was abandoned."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """Where and how to reach the provider."""

    ws_url: str
    api_key: str | None = None
    model: str | None = None
    connect_timeout: float = 10.0
    first_audio_timeout: float = 60.0
    silence_timeout: float = 30.0
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    traceparent: str | None = None

    def headers(self) -> dict[str, str]:
        out = {}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        if self.model:
            out["model"] = self.model
        if self.traceparent:
            out["traceparent"] = self.traceparent
        return out


@dataclass(frozen=True, slots=True)
class StreamResult:
    """What one session produced."""

    audio_bytes: int
    audio_events: int
    text_bytes: int  # UTF-8 bytes sent: what the provider bills
    first_audio_s: float | None  # from connect to the first audio event
    elapsed_s: float


async def stream_tts(
    config: ProviderConfig,
    request: TTSRequest,
    text: str | Iterable[str],
    on_audio: AudioCallback,
    *,
    cancel: asyncio.Event | None = None,
) -> StreamResult:
    """Run one provider session for ``text``; raise a ProviderError on failure,
    :class:`StreamCanceled` when ``cancel`` is set."""
    started = time.monotonic()
    session = ClientSession()
    ws = await _connect(config)
    try:
        await _send_all(ws, session, request, [text] if isinstance(text, str) else text)
        first = await _receive_all(ws, session, config, on_audio, cancel, started)
    finally:
        with contextlib.suppress(Exception):
            await ws.close()
    return StreamResult(
        audio_bytes=session.audio_bytes,
        audio_events=session.audio_events,
        text_bytes=session.text_bytes,
        first_audio_s=first,
        elapsed_s=time.monotonic() - started,
    )


async def _connect(config: ProviderConfig) -> ClientConnection:
    try:
        return await connect(
            config.ws_url,
            additional_headers=config.headers(),
            user_agent_header=USER_AGENT,
            # permessage-deflate costs ~18x throughput on audio, which does not compress.
            compression=None,
            max_size=None,
            open_timeout=config.connect_timeout,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            close_timeout=5,
        )
    except InvalidStatus as exc:
        raise _status_error(exc.response.status_code, exc.response.body) from exc
    except TimeoutError as exc:
        raise ProviderTimeout(
            f"no connection to the provider within {config.connect_timeout:g}s"
        ) from exc
    except (OSError, InvalidHandshake) as exc:
        raise ProviderDropped(f"cannot connect to the provider: {exc}") from exc


def _status_error(status: int, body: bytes | bytearray | None) -> ProviderError:
    detail = bytes(body or b"").decode(errors="replace").strip()[:300]
    suffix = f": {detail}" if detail else ""
    if status == 401:
        return ProviderAuthError(f"the provider refused the API key (HTTP 401){suffix}", status)
    if status == 402:
        return ProviderCreditError(f"the provider account has no credit (HTTP 402){suffix}", status)
    if status == 429:
        return ProviderBusy(f"provider concurrency or rate limit (HTTP 429){suffix}", status)
    if status in (400, 403, 404, 422):
        return ProviderRequestError(
            f"the provider refused the request (HTTP {status}){suffix}", status
        )
    return ProviderServerError(f"provider handshake failed with HTTP {status}{suffix}", status)


async def _send_all(
    ws: ClientConnection, session: ClientSession, request: TTSRequest, pieces: Iterable[str]
) -> None:
    try:
        await ws.send(session.start(request))
        for piece in pieces:
            if piece:
                await ws.send(session.text(piece))
        await ws.send(session.stop())
    except ConnectionClosed as exc:
        raise ProviderDropped(f"the provider closed the connection while we sent: {exc}") from exc


async def _receive_all(
    ws: ClientConnection,
    session: ClientSession,
    config: ProviderConfig,
    on_audio: AudioCallback,
    cancel: asyncio.Event | None,
    started: float,
) -> float | None:
    first: float | None = None
    while True:
        timeout = config.first_audio_timeout if first is None else config.silence_timeout
        data = await _recv(ws, timeout, cancel, waiting_first=first is None)
        if isinstance(data, str):
            raise ProviderDropped("the provider sent a text frame; the protocol allows binary only")
        try:
            event = session.receive(data)
        except ProtocolError as exc:
            raise ProviderDropped(f"the provider broke the protocol: {exc}") from exc
        if isinstance(event, Audio):
            if first is None:
                first = time.monotonic() - started
            if event.audio:
                result = on_audio(event.audio)
                if inspect.isawaitable(result):
                    await result
        elif isinstance(event, Finish):
            if event.reason is FinishReason.ERROR:
                why = event.message or "no message"
                raise ProviderFinishError(f"the provider ended the session with an error: {why}")
            return first


async def _recv(
    ws: ClientConnection, timeout: float, cancel: asyncio.Event | None, *, waiting_first: bool
) -> str | bytes:
    try:
        return await next_or_timeout(ws.recv(), timeout, cancel, waiting_first=waiting_first)
    except ConnectionClosed as exc:
        raise ProviderDropped(
            f"the provider closed the connection before finish (code {_code(exc)})"
        ) from exc


async def next_or_timeout(
    what: Awaitable[T], timeout: float, cancel: asyncio.Event | None, *, waiting_first: bool
) -> T:
    """The result of ``what`` (the provider's next message or bytes), unless ``cancel``
    is set first (:class:`StreamCanceled`) or ``timeout`` passes without it
    (:class:`ProviderTimeout`: no first audio, or no more audio, in time)."""
    pending = asyncio.ensure_future(what)
    waiters: set[asyncio.Future[Any]] = {pending}
    canceled = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    if canceled is not None:
        waiters.add(canceled)
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        for fut in waiters:
            if not fut.done():
                fut.cancel()
    if pending in done:
        return pending.result()
    if canceled is not None and canceled in done:
        raise StreamCanceled("canceled")
    which = "first audio" if waiting_first else "more audio"
    raise ProviderTimeout(f"no {which} from the provider within {timeout:g}s")


def _code(exc: ConnectionClosed) -> str:
    rcvd = exc.rcvd
    return str(rcvd.code) if rcvd is not None else "none: connection lost"


__all__ = [
    "ProviderConfig",
    "StreamCanceled",
    "StreamResult",
    "stream_tts",
]
