"""The API's errors, and the handlers that turn every failure into one JSON shape.

Every answer other than 2xx/3xx has the body::

    {"error": {"code": "invalid_request", "message": "speed: ...", "field": "prosody.speed"}}

``code`` is a stable string clients may switch on; ``field`` names the
offending input (a dotted path into the body, a query parameter or a header)
or is null.  Errors::

    ApiError                  an answer other than success; ``status``, ``code``, ``field``
    ├── Unauthorized          401: no key, or a key no tenant owns
    ├── NotFound              404: no such job for this tenant (also another tenant's)
    ├── Conflict              409: the job's state or an Idempotency-Key forbids it
    ├── PayloadTooLarge       413: text over the configured limit (in UTF-8 bytes)
    │   └── BodyTooLarge      413: a request body over the size limit
    ├── UnsupportedMediaType  415: a body sent as something other than JSON
    ├── InvalidInput          422: a value that cannot be accepted; ``field`` names it
    │   └── UnreadableBody    422: a body that cannot be read; ``code`` is a :class:`BodyProblem`
    ├── RateLimited           429: too many requests or jobs in flight; ``retry_after``
    └── Unavailable           503: Redis, the broker or storage cannot be reached

Bodies that cannot be read at all (not UTF-8, not JSON, nested too deep, too
large, not JSON by their content type) are refused by :mod:`api.bodies` before
any route runs.  Validation errors from FastAPI (wrong types, out-of-range
values) become ``InvalidInput``-shaped 422s naming the field; HTTP errors raised
by Starlette (unknown route, wrong method) keep their status; a Redis or broker
outage is a 503; anything else is a logged 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

#: Codes for the HTTP errors Starlette raises on its own.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """Root of the API's errors: an HTTP status, a stable code, a message, a field."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        return error_body(self.code, self.message, self.field)


class Unauthorized(ApiError):
    """No ``Authorization: Bearer`` key, or one no tenant owns."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str = "a valid 'Authorization: Bearer <key>' is required") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFound(ApiError):
    """Nothing by that id for this tenant (ids of other tenants' jobs do not leak)."""

    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The request contradicts the job's state or an earlier use of an Idempotency-Key."""

    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    """The text is longer than ``Settings.max_text_bytes``."""

    status = 413
    code = "text_too_large"


class BodyTooLarge(PayloadTooLarge):
    """The request body is over the API's size limit (:func:`api.app.body_limit`)."""

    code = "body_too_large"

    @classmethod
    def over(cls, limit: int, size: int | None = None) -> BodyTooLarge:
        """The error for a body of ``size`` bytes (None: streamed, stopped at the limit)."""
        sent = f"{size} bytes is" if size is not None else "the body streamed past"
        return cls(f"body: {sent} over the limit of {limit} bytes", field="body")


class UnsupportedMediaType(ApiError):
    """A body the route cannot read by its ``Content-Type`` (the JSON routes want JSON)."""

    status = 415
    code = "unsupported_media_type"


class InvalidInput(ApiError):
    """A value the API cannot accept; ``field`` names it."""

    status = 422
    code = "invalid_request"


class BodyProblem(StrEnum):
    """Why a body, or JSON in a form field, could not be read: the code of the error."""

    ENCODING = "invalid_encoding"  # bytes that are not UTF-8 (nor UTF-16/32 JSON)
    JSON = "invalid_json"  # text that is not JSON
    DEPTH = "too_deeply_nested"  # objects and arrays nested deeper than the API reads
    FORM = "invalid_form"  # a multipart form that cannot be parsed


class UnreadableBody(InvalidInput):
    """A body that cannot be read as its route needs; the code is a :class:`BodyProblem`."""

    def __init__(self, message: str, *, problem: BodyProblem, field: str = "body") -> None:
        super().__init__(message, field=field, code=problem.value)


class RateLimited(ApiError):
    """Over the tenant's request rate or jobs in flight; retry after ``retry_after`` s."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(message, code=code, headers={"Retry-After": str(self.retry_after)})


class Unavailable(ApiError):
    """A part the API needs (Redis, the broker, storage) cannot be reached."""

    status = 503
    code = "unavailable"


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """``{"error": {"code", "message", "field"}}``."""
    return {"error": {"code": code, "message": message, "field": field}}


def validation_field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """A dotted field name from a FastAPI error location (``("body", "prosody", "speed")``)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        where, parts = parts[0], parts[1:]
        if not parts:
            return "body" if where == "body" else None
    return ".".join(parts) or None


def _validation_message(err: dict[str, Any], field: str | None) -> str:
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if err.get("type") == "json_invalid":
        return f"body: not valid JSON ({err.get('ctx', {}).get('error', msg)})"
    if err.get("type") == "missing":
        return f"{field}: is required" if field else "a required value is missing"
    return f"{field}: {msg}" if field else msg


def _answer(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    """An :class:`ApiError`, or an HTTP error Starlette raised on its own, in the one shape."""
    if isinstance(exc, StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        exc = ApiError(message, code=code, status=exc.status_code, headers=exc.headers)
    assert isinstance(exc, ApiError)
    return _answer(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    err = errors[0] if errors else {}
    field = validation_field(err.get("loc", ()))
    code = None
    if err.get("type") == "json_invalid":  # only a route without api.bodies.BodyRoute
        field, code = "body", BodyProblem.JSON.value
    message = _validation_message(err, field)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return _answer(InvalidInput(message, field=field, code=code))


async def _backend_down(request: Request, exc: Exception) -> JSONResponse:
    what = "redis" if isinstance(exc, redis.RedisError) else "broker"
    log.warning("%s %s: %s unreachable: %s", request.method, request.url.path, what, exc)
    message = f"{what} is unreachable; try again shortly"
    return _answer(Unavailable(message, headers={"Retry-After": "5"}))


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _answer(ApiError("internal error", code="internal_error", status=500))


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the JSON shape above."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(redis.ConnectionError, _backend_down)
    app.add_exception_handler(redis.TimeoutError, _backend_down)
    app.add_exception_handler(OperationalError, _backend_down)
    app.add_exception_handler(Exception, _internal_error)
