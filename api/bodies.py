"""Reading request bodies: a body the API cannot read is refused, saying why, before any
route runs.

Left to themselves, FastAPI and Starlette answer a body that is not UTF-8, or
that nests deeper than Python can recurse, with a bare ``400 "There was an
error parsing the body"``, and a body over the size limit with a plain-text
413.  Here instead every such body gets the API's error shape, a stable code
and the field at fault:

* :class:`BodyLimit` (ASGI middleware): over :func:`api.app.body_limit` bytes
  is ``413 body_too_large`` — from ``Content-Length`` before a byte is read,
  or as soon as a streamed body passes the limit;
* :class:`BodyRoute` (the ``route_class`` of every router whose routes take a
  body) reads a JSON body before FastAPI does: not declared as JSON is
  ``415 unsupported_media_type``; not UTF-8 is ``422 invalid_encoding``;
  nested deeper than :data:`MAX_JSON_DEPTH` is ``422 too_deeply_nested``
  (found by a scan that never recurses, so any depth answers at once); not
  JSON is ``422 invalid_json``.  A multipart form that cannot be parsed is
  ``422 invalid_form``;
* :func:`check_json_field` does the same for JSON held in a form field
  (``options`` of ``POST /v1/books``).

Nothing is stored or enqueued for a refused body: the route never runs.
"""

from __future__ import annotations

import email.message
import json
import re
from collections.abc import Callable, Coroutine
from itertools import accumulate
from typing import Any

from fastapi import params
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import BodyProblem, BodyTooLarge, UnreadableBody, UnsupportedMediaType
from api.schemas import JSON_BODY_ERRORS

#: Deepest nesting of objects and arrays in a JSON body or field: twice what any
#: request needs (the deepest is ``metadata``, 16 levels of its own under the body).
MAX_JSON_DEPTH = 32

#: Bytes the depth scan keeps: quotes (to drop strings) and brackets.
_DROP = bytes(b for b in range(256) if b not in b'"[]{}')
#: Opening brackets as the signed byte 1, closing ones as -1.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_UP = b"\x01"
#: The tokens that locate a member: strings, brackets and colons.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}:]', re.DOTALL)
#: How much of a body :func:`_member_too_deep` reads to name the member (it is slow).
_NAMING_BYTES = 1 << 20
#: Bodies larger than this are scanned in a worker thread, not in the event loop.
_THREAD_BYTES = 1 << 20

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def nests_deeper_than(data: bytes, limit: int) -> bool:
    """Whether the UTF-8 JSON ``data`` nests objects and arrays more than ``limit`` deep.

    It never recurses, and each step is a linear scan in C: escaped
    backslashes and quotes go, then every byte but quotes and brackets, then
    whatever lay between quotes; each opening bracket is then a step up, each
    closing one a step down, and the depth is the highest running sum.  (UTF-8
    never uses these bytes inside a character.)  Data that is not JSON is
    measured at least as far as a JSON parser would read before failing.
    """
    marks = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP)
    if b'"' in marks:
        marks = b"".join(marks.split(b'"')[::2])
    steps = marks.translate(_STEPS)
    if _UP * (limit + 1) in steps:
        return True  # the common hostile body, found without summing
    return max(accumulate(memoryview(steps).cast("b")), default=0) > limit


def _member_too_deep(text: str, limit: int) -> str | None:
    """The top-level member of the object ``text`` under which nesting passes ``limit``.

    None when ``text`` is not an object or does not pass ``limit``.
    """
    depth, key, last_string = 0, None, None
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return key
        elif token in ("]", "}"):
            depth -= 1
        elif token == ":":
            if depth == 1 and last_string is not None:  # the string before was a key
                try:
                    key = str(json.loads(last_string))
                except ValueError:
                    return None
        else:
            last_string = token
    return None


def check_depth(data: bytes, field: str) -> None:
    """:class:`UnreadableBody` (``too_deeply_nested``) if the UTF-8 JSON ``data`` nests
    deeper than :data:`MAX_JSON_DEPTH`.

    ``field`` is where the JSON came from (``body`` or a form field); the
    top-level member holding the deep part is named too when it lies within
    the first :data:`_NAMING_BYTES`.
    """
    if not nests_deeper_than(data, MAX_JSON_DEPTH):
        return
    head = data[:_NAMING_BYTES].decode("utf-8", "ignore")
    member = _member_too_deep(head, MAX_JSON_DEPTH)
    if member is not None:
        field = member if field == "body" else f"{field}.{member}"
    raise UnreadableBody(
        f"{field}: nests objects and arrays more than {MAX_JSON_DEPTH} levels deep",
        problem=BodyProblem.DEPTH,
        field=field,
    )


def check_json_field(text: str, field: str) -> Any:
    """The JSON value in the text ``field`` (a form field); :class:`UnreadableBody` if it
    nests too deep or is not JSON."""
    check_depth(text.encode(errors="surrogatepass"), field)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableBody(
            f"{field}: not valid JSON ({exc})", problem=BodyProblem.JSON, field=field
        ) from None


def _check_body(body: bytes) -> None:
    """The checks of a JSON body that need no parse: its encoding, then its depth."""
    check_depth(_as_utf8(body), "body")


def _as_utf8(body: bytes) -> bytes:
    """``body`` if it is UTF-8, else re-encoded from the UTF-16/32 a JSON parser would
    detect; :class:`UnreadableBody` (``invalid_encoding``) if it is neither."""
    encoding = json.detect_encoding(body)
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        name = "UTF-8" if encoding.startswith("utf-8") else encoding.upper()
        bad = exc.object[exc.start : exc.start + 1].hex()
        raise UnreadableBody(
            f"body: not valid {name} ({exc.reason}: byte 0x{bad} at offset {exc.start}); "
            "send JSON encoded as UTF-8",
            problem=BodyProblem.ENCODING,
            field="body",
        ) from None
    return body if encoding.startswith("utf-8") else text.encode()


def is_json(content_type: str | None) -> bool:
    """Whether ``content_type`` declares JSON (``application/json`` or ``…+json``), as
    FastAPI decides whether to parse a body."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def read_json_body(request: Request) -> None:
    """Read and check the JSON body of ``request``, leaving it parsed for FastAPI.

    The parse is cached on the request, so the route's own reading finds it
    done.  An empty body is left to the route (a missing body, or an optional one).
    """
    body = await request.body()
    if not body:
        return
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        sent = f"sent as {content_type!r}" if content_type else "sent with no Content-Type"
        raise UnsupportedMediaType(
            f"body: {sent}; send JSON with 'Content-Type: application/json'",
            field="Content-Type",
        )
    if len(body) > _THREAD_BYTES:
        await run_in_threadpool(_check_body, body)
    else:
        _check_body(body)
    try:
        await request.json()
    except json.JSONDecodeError as exc:
        raise UnreadableBody(
            f"body: not valid JSON ({exc})", problem=BodyProblem.JSON, field="body"
        ) from None


def _json_read_first(handler: Handler) -> Handler:
    async def route(request: Request) -> Response:
        await read_json_body(request)
        return await handler(request)

    return route


def _form_errors_named(handler: Handler) -> Handler:
    """FastAPI turns any failure to read a form into a bare 400; say what it was."""

    async def route(request: Request) -> Response:
        try:
            return await handler(request)
        except StarletteHTTPException as exc:
            if isinstance(exc.__cause__, BodyTooLarge):
                raise exc.__cause__ from None
            if exc.status_code != 400:
                raise
            raise UnreadableBody(
                f"body: not a multipart form that can be read ({exc.detail})",
                problem=BodyProblem.FORM,
                field="body",
            ) from exc

    return route


class BodyRoute(APIRoute):
    """A route whose body is read and checked here before FastAPI reads it (see above).

    A route that reads a JSON body documents the answers to a body it cannot
    read (413, 415) unless it documents them itself.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None and not self._reads_form():
            self.responses = {**JSON_BODY_ERRORS, **self.responses}

    def _reads_form(self) -> bool:
        return self.body_field is not None and isinstance(self.body_field.field_info, params.Form)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler
        if self._reads_form():
            return _form_errors_named(handler)
        return _json_read_first(handler)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is a 413 in the error shape."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            # Refused unread; the server closes the connection rather than read the rest.
            error = BodyTooLarge.over(self.limit, declared)
            await JSONResponse(error.body(), status_code=error.status)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge.over(self.limit)
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
