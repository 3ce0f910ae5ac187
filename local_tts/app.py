"""The ASGI application of ``local_tts``: routes, handshake checks, admin.

Routes:
    GET  /v1/tts/live       the live WebSocket (local_tts.live)
    POST /v1/tts            whole-text synthesis; JSON or MessagePack body, audio back
    POST /v1/tts/stream/with-timestamp
                            the same as SSE, with word positions (local_tts.timestamps)
    /model, /model/{id}     voice models: list, create, get, update, delete (model_routes)
    GET  /wallet/self/...   api-credit and package, constant (model_routes)
    GET  /healthz           alive
    GET  /_admin/stats      counters (local_tts.stats)
    POST /_admin/reset      zero the counters, forget created models
    POST /_admin/faults     install a fault plan (local_tts.faults)
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import ormsgpack
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from local_tts.encoders import StreamEncoder, content_type
from local_tts.engines import Engine, make_engine
from local_tts.faults import Fault, FaultAction, FaultPlan, FaultPlanError
from local_tts.live import LiveConnection, LiveLimits
from local_tts.model_routes import ModelRoutes, model_error_response
from local_tts.models import ModelError, ModelStore, Unauthorized
from local_tts.stats import SessionRecord, Stats
from local_tts.timestamps import EVENT_STREAM, TimestampStream
from local_tts.voices import Voice, pick_voice
from worker.fish import (
    InvalidRequest,
    ServerSession,
    Start,
    Stop,
    Synthesize,
    TTSRequest,
    parse_request,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL = "s2.1-pro"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the command line sets."""

    engine: str = "espeak"
    api_keys: frozenset[str] = frozenset()  # empty: any key (or none) is accepted
    max_concurrency: int = 0  # 0: unlimited
    rtf: float = 0.05
    ttfb_ms: float = 50.0
    piece_ms: float = 500.0
    processes: int | None = None
    max_message_bytes: int = 8 << 20
    idle_timeout: float = 60.0
    faults: str | None = None
    model_training_seconds: float = 0.0  # a created model trains this long before it speaks
    model_training_fails: bool = False  # created models end up failed, not trained
    extra: dict[str, Any] = field(default_factory=dict)


class LocalTTS:
    """Server state shared by every connection."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.faults = FaultPlan.parse(config.faults)
        self.limits = LiveLimits(config.max_message_bytes, config.idle_timeout)
        self._engine: Engine | None = None
        self.models = ModelStore(config.model_training_seconds, config.model_training_fails)
        self.model_routes = ModelRoutes(self.models, self.authorize)

    @property
    def engine(self) -> Engine:
        if self._engine is None:  # pragma: no cover - set by the lifespan
            raise RuntimeError("engine not started")
        return self._engine

    async def start(self) -> None:
        self._engine = make_engine(
            self.config.engine,
            processes=self.config.processes,
            rtf=self.config.rtf,
            ttfb_ms=self.config.ttfb_ms,
            piece_ms=self.config.piece_ms,
        )
        # Warm the engine so the first session does not pay its start-up.
        async for _ in self._engine.synthesize("ready", pick_voice(TTSRequest()), 1.0):
            pass

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.aclose()

    # -- handshake checks ------------------------------------------------------

    def refuse(self, headers: Headers) -> tuple[int, str] | None:
        """Why a request must be refused before any work (status, message), or None."""
        if (why := self._bad_key(headers)) is not None:
            return 401, why
        limit = self.config.max_concurrency
        if limit and self.stats.sessions_active >= limit:
            return 429, f"concurrency limit of {limit} sessions reached"
        return None

    def _bad_key(self, headers: Headers) -> str | None:
        if self.config.api_keys:
            auth = headers.get("authorization", "")
            scheme, _, key = auth.partition(" ")
            if not auth:
                return "missing Authorization header (expected 'Bearer <api key>')"
            if scheme.lower() != "bearer" or key.strip() not in self.config.api_keys:
                return "invalid api key"
        return None

    def authorize(self, request: Request) -> str:
        """The caller's key (``""`` for none, where any is accepted); raises Unauthorized."""
        if (why := self._bad_key(request.headers)) is not None:
            raise Unauthorized(why)
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        return key.strip() if scheme.lower() == "bearer" else ""

    def model(self, headers: Headers) -> str:
        return headers.get("model") or DEFAULT_MODEL

    # -- routes ----------------------------------------------------------------

    def refuse_with(self, headers: Headers, faults: list[Fault]) -> tuple[int, str] | None:
        """:meth:`refuse`, or the refusal a ``reject`` fault injects."""
        refusal = self.refuse(headers)
        reject = next((f for f in faults if f.action is FaultAction.REJECT), None)
        if refusal is None and reject is not None:
            refusal = (reject.status, "injected fault")
        return refusal

    async def live(self, ws: WebSocket) -> None:
        faults = self.faults.next_session()
        refusal = self.refuse_with(ws.headers, faults)
        if refusal is not None:
            status, message = refusal
            self.stats.reject(status)
            await ws.send_denial_response(_error(status, message))
            return
        record = self.stats.open(self.model(ws.headers))  # before any await: the limit holds
        try:
            await ws.accept()
            voices = functools.partial(self.models.voice_for, record=record)
            await LiveConnection(ws, self.engine, record, faults, self.limits, voices).serve()
        finally:
            self.stats.close(record)

    async def rest(self, request: Request) -> Response:
        opened = await self._http_session(request, "rest", [])
        if isinstance(opened, Response):
            return opened
        tts, voice, record = opened
        return StreamingResponse(
            self._rest_audio(tts, voice, record), media_type=content_type(tts.format)
        )

    async def with_timestamp(self, request: Request) -> Response:
        faults = self.faults.next_session()
        opened = await self._http_session(request, "timestamps", faults)
        if isinstance(opened, Response):
            return opened
        tts, voice, record = opened
        stream = TimestampStream(self.engine, tts, voice, record, faults, self.stats.close)
        return StreamingResponse(
            stream.events(), media_type=EVENT_STREAM, headers={"Cache-Control": "no-cache"}
        )

    async def _http_session(
        self, request: Request, kind: str, faults: list[Fault]
    ) -> tuple[TTSRequest, Voice, SessionRecord] | Response:
        """An HTTP synthesis request read and its session opened; or the error answer
        (refused, a bad body, no text, a model that cannot speak)."""
        refusal = self.refuse_with(request.headers, faults)
        if refusal is not None:
            self.stats.reject(refusal[0])
            return _error(*refusal)
        try:
            tts = parse_request(_decode_body(await request.body(), request.headers))
        except (InvalidRequest, ValueError) as exc:
            return _error(400, str(exc))
        if not tts.text.strip():
            return _error(400, "request.text: must not be empty")
        record = self.stats.open(self.model(request.headers), kind=kind)
        record.format = tts.format.value
        record.text = tts.text
        try:
            voice = self.models.voice_for(tts, record)
        except ModelError as exc:  # a deleted or untrained model: refused before any audio
            record.end, record.error = "error", exc.message
            self.stats.close(record)
            return _error(exc.status, exc.message)
        return tts, voice, record

    async def _rest_audio(
        self, tts: TTSRequest, voice: Voice, record: SessionRecord
    ) -> AsyncIterator[bytes]:
        try:
            session = ServerSession()
            commands = session.receive_event(Start(tts)) + session.receive_event(Stop())
            encoder = StreamEncoder(
                tts.format,
                tts.effective_sample_rate,
                native_rate=self.engine.native_rate,
                volume_db=tts.volume_db,
                mp3_bitrate_kbps=tts.mp3_bitrate,
                opus_bitrate_kbps=tts.opus_bitrate,
            )
            for command in commands:
                if isinstance(command, Synthesize):
                    async for piece in self.engine.synthesize(command.text, voice, tts.speed):
                        if data := encoder.feed(piece):
                            record.audio_bytes += len(data)
                            yield data
                elif tail := encoder.close():  # EndSession: the last audio
                    record.audio_bytes += len(tail)
                    yield tail
            record.end = "stop"
        finally:
            self.stats.close(record)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "engine": self.config.engine})

    async def admin_stats(self, request: Request) -> Response:
        return JSONResponse(self.stats.to_json())

    async def admin_reset(self, request: Request) -> Response:
        self.stats.reset()
        self.models.reset()
        return JSONResponse({"status": "ok"})

    async def admin_faults(self, request: Request) -> Response:
        try:
            self.faults = FaultPlan.parse(await request.body())
        except FaultPlanError as exc:
            return _error(400, str(exc))
        return JSONResponse({"status": "ok"})


def create_app(config: ServerConfig) -> Starlette:
    """Build the application; the engine starts and stops with the app's lifespan."""
    server = LocalTTS(config)
    models = server.model_routes

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = Starlette(
        routes=[
            WebSocketRoute("/v1/tts/live", server.live),
            Route("/v1/tts", server.rest, methods=["POST"]),
            Route("/v1/tts/stream/with-timestamp", server.with_timestamp, methods=["POST"]),
            Route("/model", models.list, methods=["GET"]),
            Route("/model", models.create, methods=["POST"]),
            Route("/model/{model_id}", models.get, methods=["GET"]),
            Route("/model/{model_id}", models.update, methods=["PATCH"]),
            Route("/model/{model_id}", models.delete, methods=["DELETE"]),
            Route("/wallet/self/api-credit", models.api_credit, methods=["GET"]),
            Route("/wallet/self/package", models.package, methods=["GET"]),
            Route("/healthz", server.healthz),
            Route("/_admin/stats", server.admin_stats),
            Route("/_admin/reset", server.admin_reset, methods=["POST"]),
            Route("/_admin/faults", server.admin_faults, methods=["POST"]),
        ],
        lifespan=lifespan,
        exception_handlers={ModelError: model_error_response},
    )
    app.state.local_tts = server
    return app


def _decode_body(body: bytes, headers: Headers) -> Any:
    kind = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind in ("application/msgpack", "application/x-msgpack"):
        try:
            return ormsgpack.unpackb(body)
        except (ormsgpack.MsgpackDecodeError, ValueError) as exc:
            raise ValueError(f"body is not valid MessagePack: {exc}") from exc
    try:
        return json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from exc


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status)
