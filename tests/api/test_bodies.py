"""Bodies the API cannot read, over HTTP: each is refused saying why, and nothing is made.

Every route that takes a body (``POST /v1/jobs``, ``/v1/estimate``,
``/v1/batches``, a batch item's retry, and the JSON ``options`` of
``/v1/books``) gets the same answers: a body that is not UTF-8, nests too deep,
is not JSON, is not sent as JSON or is too large is a 4xx with a stable code
naming the body (or the member at fault), before anything is stored or
enqueued — where FastAPI alone answers a bare ``400 bad_request``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.app import body_limit
from api.bodies import MAX_JSON_DEPTH, nests_deeper_than
from tests.api.conftest import ApiEnv
from tests.api.server import queued_messages

TEXT = {"text": "Hello there."}
BATCH = {"items": [{"title": "One", "text": "Hello there."}]}
BOOK = b"Chapter 1\n\nThe river ran on past the mill.\n"


def nested(depth: int) -> str:
    """JSON text of objects and arrays nested ``2 * depth`` levels deep."""
    return '{"a":[' * depth + "1" + "]}" * depth


def with_member(fields: dict[str, Any], name: str, raw: str) -> bytes:
    """``fields`` as a JSON object, with member ``name`` holding the JSON text ``raw``."""
    return json.dumps(fields)[:-1].encode() + f', "{name}": {raw}}}'.encode()


@pytest.fixture(scope="module")
def item_retry(idle: ApiEnv) -> str:
    """The retry route of item 0 of a real batch (queued: no worker runs it)."""
    with idle.client() as http:
        response = http.post("/v1/batches", json=BATCH)
    assert response.status_code == 202, response.text
    return f"/v1/batches/{response.json()['id']}/items/0/retry"


@pytest.fixture(params=["/v1/jobs", "/v1/estimate", "/v1/batches", "retry"])
def route(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Each JSON route, and a body it would accept."""
    path: str = request.param
    if path == "retry":
        return request.getfixturevalue("item_retry"), {"text": "Hello again."}
    return path, BATCH if path == "/v1/batches" else TEXT


def footprint(env: ApiEnv) -> tuple[int, int, int]:
    """Messages queued, and job and batch records, under the stack's prefix."""
    prefix = env.stack.keys.prefix
    return (
        queued_messages(env.stack),
        len(list(env.stack.redis.scan_iter(f"{prefix}:job:*"))),
        len(list(env.stack.redis.scan_iter(f"{prefix}:batch:*"))),
    )


def post(
    env: ApiEnv, path: str, body: Any, content_type: str | None = "application/json"
) -> httpx.Response:
    """POST ``body`` as it is (bytes, or a stream of them); nothing may be made by it."""
    before = footprint(env)
    headers = {"Content-Type": content_type} if content_type else {}
    with env.client() as http:
        response = http.post(path, content=body, headers=headers)
    assert footprint(env) == before, "a refused body left a job, a batch or a message"
    return response


def refusal(response: httpx.Response, status: int, code: str, field: str) -> str:
    """The message of an error answer, after checking its status, code and field."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["field"] == field, body
    return str(body["error"]["message"])


def test_a_body_that_is_not_utf8_is_refused_naming_the_encoding(
    idle: ApiEnv, route: tuple[str, dict[str, Any]]
) -> None:
    path, good = route
    raw = json.dumps(good).encode().replace(b"Hello", b"H\xe9llo")  # é in Latin-1
    message = refusal(post(idle, path, raw), 422, "invalid_encoding", "body")
    assert "UTF-8" in message and "0xe9" in message and f"offset {raw.index(0xE9)}" in message


def test_a_body_nested_5000_deep_is_refused_naming_the_member(
    idle: ApiEnv, route: tuple[str, dict[str, Any]]
) -> None:
    path, good = route
    raw = with_member(good, "prosody", nested(2500))
    message = refusal(post(idle, path, raw), 422, "too_deeply_nested", "prosody")
    assert f"more than {MAX_JSON_DEPTH} levels" in message


def test_metadata_nested_100000_deep_is_answered_at_once(
    idle: ApiEnv, route: tuple[str, dict[str, Any]]
) -> None:
    path, good = route
    raw = with_member(good, "metadata", nested(50_000))
    started = time.monotonic()
    message = refusal(post(idle, path, raw), 422, "too_deeply_nested", "metadata")
    assert time.monotonic() - started < 2.0
    assert message.startswith("metadata: nests")
    with idle.client() as http:  # and the server still answers
        assert http.get("/v1/jobs").status_code == 200


def test_an_array_nested_100000_deep_names_the_body(idle: ApiEnv) -> None:
    raw = "[" * 100_000 + "]" * 100_000
    refusal(post(idle, "/v1/jobs", raw.encode()), 422, "too_deeply_nested", "body")
    refusal(post(idle, "/v1/jobs", b"[" * 100_000), 422, "too_deeply_nested", "body")


def test_metadata_as_deep_as_the_schema_allows_is_read(idle: ApiEnv) -> None:
    """The depth limit leaves room for all the schemas allow (metadata: 16 levels)."""
    with idle.client() as http:
        deepest = http.post("/v1/jobs", json={**TEXT, "metadata": json.loads(nested(8))})
        deeper = http.post("/v1/jobs", json={**TEXT, "metadata": {"b": json.loads(nested(8))}})
    assert deepest.status_code == 202, deepest.text
    assert "16 levels" in refusal(deeper, 422, "invalid_request", "metadata")  # the schema's


def test_a_body_that_is_not_json_is_refused_saying_where(
    idle: ApiEnv, route: tuple[str, dict[str, Any]]
) -> None:
    path, good = route
    raw = json.dumps(good)[:-3].encode()
    message = refusal(post(idle, path, raw), 422, "invalid_json", "body")
    assert "not valid JSON" in message and "line 1 column" in message


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_not_sent_as_json_is_415(
    idle: ApiEnv, route: tuple[str, dict[str, Any]], content_type: str | None
) -> None:
    path, good = route
    response = post(idle, path, json.dumps(good).encode(), content_type)
    message = refusal(response, 415, "unsupported_media_type", "Content-Type")
    assert "application/json" in message
    assert (content_type or "no Content-Type") in message


def test_a_body_over_the_limit_is_413_by_its_length(idle: ApiEnv) -> None:
    limit = body_limit(idle.api.settings)
    raw = b" " * (limit + 1)
    message = refusal(post(idle, "/v1/jobs", raw), 413, "body_too_large", "body")
    assert f"{limit + 1} bytes is over the limit of {limit} bytes" in message


def stream(head: bytes, size: int) -> Iterator[bytes]:
    """``head``, then spaces to ``size`` bytes in all, in chunks (sent without a length)."""
    yield head
    sent, chunk = len(head), b" " * (1 << 20)
    while sent < size:
        yield chunk
        sent += len(chunk)


def test_a_streamed_body_over_the_limit_is_413(idle: ApiEnv) -> None:
    limit = body_limit(idle.api.settings)
    response = post(idle, "/v1/jobs", stream(b'{"text": "', limit + 1))
    assert f"over the limit of {limit} bytes" in refusal(response, 413, "body_too_large", "body")


def book_form(boundary: str, options: bytes) -> bytes:
    """A multipart form holding a small text book and the ``options`` field."""
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="book.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n".encode()
        + BOOK
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="options"\r\n\r\n'.encode()
        + options
        + f"\r\n--{boundary}--\r\n".encode()
    )


@pytest.mark.parametrize(
    ("options", "code", "field", "says"),
    [
        (b'{"metadata": {"a": 1', "invalid_json", "options", "not valid JSON"),
        (b"{'metadata': {}}", "invalid_json", "options", "line 1 column 2"),
        (with_member({}, "metadata", nested(50_000)), "too_deeply_nested", "options.metadata", ""),
        (nested(50_000).encode(), "too_deeply_nested", "options.a", "more than 32 levels"),
    ],
)
def test_book_options_that_cannot_be_read_are_refused(
    idle: ApiEnv, options: bytes, code: str, field: str, says: str
) -> None:
    boundary = "shoalboundary"
    content_type = f"multipart/form-data; boundary={boundary}"
    response = post(idle, "/v1/books", book_form(boundary, options), content_type)
    assert says in refusal(response, 422, code, field)


@pytest.mark.parametrize(
    ("content_type", "says"),
    [
        ("multipart/form-data", "Missing boundary"),
        ("multipart/form-data; boundary=other", "Invalid multipart data"),
    ],
)
def test_a_book_form_that_cannot_be_parsed_is_refused(
    idle: ApiEnv, content_type: str, says: str
) -> None:
    response = post(idle, "/v1/books", book_form("shoalboundary", b"{}"), content_type)
    assert says in refusal(response, 422, "invalid_form", "body")


def test_a_streamed_book_over_the_limit_is_413(idle: ApiEnv) -> None:
    limit = body_limit(idle.api.settings)
    head = book_form("b", b"{}").split(BOOK)[0]  # the file part begins; spaces follow
    response = post(idle, "/v1/books", stream(head, limit + 1), "multipart/form-data; boundary=b")
    refusal(response, 413, "body_too_large", "body")


@pytest.mark.parametrize(
    ("text", "deeper"),
    [
        ("[" * 32 + "]" * 32, False),
        ("[" * 33 + "]" * 33, True),
        ("[" * 33, True),  # never closed: a parser still recurses that deep
        ('["' + "[" * 100 + '"]', False),  # brackets in a string are text
        ('["\\"' + "[" * 100 + '"]', False),  # an escaped quote does not end the string
        ('["\\\\"' + ",[" * 40 + "]" * 40 + "]", True),  # an escaped backslash does not escape
        ('{"k[[[[": ' * 32 + "1" + "}" * 32, False),
        ('{"k": ' * 33 + "1" + "}" * 33, True),
        ("[]" * 1000 + "[" * 20 + "[]" * 5 + "[" * 13, True),  # depth builds up, step by step
        ('"é[' + "[" * 40 + '"', False),
    ],
)
def test_depth_is_measured_outside_strings(text: str, deeper: bool) -> None:
    assert nests_deeper_than(text.encode(), MAX_JSON_DEPTH) is deeper
