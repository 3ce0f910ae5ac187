"""``GET /v1/batches`` over HTTP on a real stack with no worker: a tenant's batches and books.

Batches and books are made through the API (``POST /v1/batches``, ``POST
/v1/books`` with small Markdown files) and stay queued.  The listing is newest
first, pages by cursor without shifting when newer batches arrive, filters by
status and kind, never shows another tenant's batches, refuses bad parameters
naming them, and changes nothing but the index entries of records that expired.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.api.conftest import ApiEnv
from worker.batches.store import BatchStore


def plain(env: ApiEnv, tenant: str, *titles: str, title: str | None = None) -> str:
    """A batch of one short item per title; its id."""
    body: dict[str, Any] = {"items": [{"title": t, "text": f"{t}, said once."} for t in titles]}
    if title is not None:
        body["title"] = title
    with env.client(tenant) as http:
        answer = http.post("/v1/batches", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def book(env: ApiEnv, tenant: str, title: str, chapters: int = 2) -> str:
    """A Markdown book of ``chapters`` short chapters, made by ``POST /v1/books``; its id."""
    text = "\n\n".join(f"# Part {n}\n\nThe words of part {n}." for n in range(1, chapters + 1))
    files = {"file": ("book.md", text.encode(), "text/markdown")}
    with env.client(tenant) as http:
        answer = http.post("/v1/books", files=files, data={"title": title})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["batch"]["id"])


def listing(env: ApiEnv, tenant: str, **params: Any) -> Any:
    """One page of ``GET /v1/batches``, which must succeed."""
    with env.client(tenant) as http:
        answer = http.get("/v1/batches", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def walk(env: ApiEnv, tenant: str, **params: Any) -> list[str]:
    """Every id, page after page (from ``cursor`` if given)."""
    ids: list[str] = []
    cursor = params.pop("cursor", None)
    for _ in range(50):
        page = listing(env, tenant, **params, **({"cursor": cursor} if cursor else {}))
        ids += [b["id"] for b in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
        assert page["data"], "a page that promises more must not be empty"
    raise AssertionError("the listing never ended")


@pytest.fixture(scope="module")
def made(idle: ApiEnv) -> dict[str, str]:
    """t1: a titled batch, a book, an untitled batch, a book (oldest first); t2: one batch."""
    ids = {
        "letters": plain(idle, "t1", "Dear Ann", "Dear Bo", title="Letters"),
        "sea": book(idle, "t1", "Sea Stories", chapters=2),
        "untitled": plain(idle, "t1", "Opening", "Closing"),
        "hills": book(idle, "t1", "Hill Songs", chapters=3),
        "other": plain(idle, "t2", "Not yours"),
    }
    return ids


def test_newest_first_with_a_summary_of_each(idle: ApiEnv, made: dict[str, str]) -> None:
    page = listing(idle, "t1")
    assert [b["id"] for b in page["data"]] == [
        made["hills"],
        made["untitled"],
        made["sea"],
        made["letters"],
    ]
    assert page["next_cursor"] is None
    by_id = {b["id"]: b for b in page["data"]}
    hills, untitled, letters = by_id[made["hills"]], by_id[made["untitled"]], by_id[made["letters"]]
    assert (hills["kind"], hills["title"], hills["file_kind"]) == ("book", "Hill Songs", "markdown")
    assert hills["items_total"] == 3 and hills["status"] == "queued"
    assert (hills["items_done"], hills["items_failed"]) == (0, 0)
    assert hills["links"] == {
        "self": f"/v1/batches/{made['hills']}",
        "jobs": f"/v1/jobs?batch_id={made['hills']}",
    }
    assert (letters["kind"], letters["title"], letters["file_kind"]) == ("batch", "Letters", None)
    # A batch sent without a title is listed by its first item's.
    assert (untitled["kind"], untitled["title"]) == ("batch", "Opening")
    assert untitled["finished_at"] is None
    created = [b["created_at"] for b in page["data"]]
    assert created == sorted(created, reverse=True)
    # The summary agrees with the batch's own page.
    with idle.client("t1") as http:
        full = http.get(f"/v1/batches/{made['sea']}").json()
    sea = by_id[made["sea"]]
    assert (sea["status"], sea["items_total"]) == (full["status"], full["items_total"])
    assert sea["title"] == full["book"]["title"] == "Sea Stories"


def test_pages_follow_the_cursor_and_newer_batches_do_not_shift_them(idle: ApiEnv) -> None:
    ids = [plain(idle, "list", f"Item {n}") for n in range(5)]
    first = listing(idle, "list", limit=2)
    assert [b["id"] for b in first["data"]] == [ids[4], ids[3]]
    assert first["next_cursor"]
    newer = plain(idle, "list", "Late")  # made after the first page was read
    rest = walk(idle, "list", limit=2, cursor=first["next_cursor"])
    assert rest == [ids[2], ids[1], ids[0]]
    assert walk(idle, "list", limit=1) == [newer, *reversed(ids)]
    assert walk(idle, "list", limit=200) == [newer, *reversed(ids)]


def test_filters_by_kind_and_status(idle: ApiEnv, made: dict[str, str]) -> None:
    assert walk(idle, "t1", kind="book") == [made["hills"], made["sea"]]
    assert walk(idle, "t1", kind="book", limit=1) == [made["hills"], made["sea"]]
    assert walk(idle, "t1", kind="batch") == [made["untitled"], made["letters"]]
    assert walk(idle, "t1", status="queued", kind="batch", limit=1) == [
        made["untitled"],
        made["letters"],
    ]
    assert walk(idle, "t1", status="succeeded") == []

    # A canceled batch of a tenant of its own, so the other tests' statuses stay queued.
    keep, stop = plain(idle, "cancel", "Kept"), plain(idle, "cancel", "Stopped")
    with idle.client("cancel") as http:
        assert http.post(f"/v1/batches/{stop}/cancel").status_code == 200
    assert walk(idle, "cancel", status="canceled") == [stop]
    assert walk(idle, "cancel", status="queued") == [keep]
    canceled = listing(idle, "cancel", status="canceled")["data"][0]
    assert (canceled["items_failed"], canceled["items_done"]) == (1, 0)
    assert canceled["finished_at"] is not None


def test_other_tenants_batches_never_appear(idle: ApiEnv, made: dict[str, str]) -> None:
    assert walk(idle, "t2") == [made["other"]]
    assert made["other"] not in walk(idle, "t1")
    assert walk(idle, "voice") == []  # a tenant with no batch at all
    # t1's cursor walks t2's own index: it shows t2's batches (older than it), never t1's.
    cursor = listing(idle, "t1", limit=1)["next_cursor"]
    assert {b["id"] for b in listing(idle, "t2", cursor=cursor)["data"]} <= {made["other"]}
    with idle.api.client("not-a-key") as http:
        assert http.get("/v1/batches").status_code == 401


def _cursor(value: Any) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "done"}, "status"),
        ({"kind": "novel"}, "kind"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": _cursor(["x", "y"])}, "cursor"),
        ({"cursor": _cursor([1.0])}, "cursor"),
        ({"cursor": _cursor([float("nan"), "bat_x"])}, "cursor"),  # JSON to Python, no score
        ({"cursor": _cursor([1.0, ""])}, "cursor"),
        ({"cursor": "c" * 513}, "cursor"),
    ],
)
def test_bad_parameters_are_refused_naming_them(
    idle: ApiEnv, made: dict[str, str], params: dict[str, Any], field: str
) -> None:
    with idle.client("t1") as http:
        answer = http.get("/v1/batches", params=params)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and field in error["message"]


def _footprint(env: ApiEnv) -> dict[str, Any]:
    """Every key under the stack's prefix with its value (sorted sets with scores), but
    the rate limiter's counters, which every request moves."""
    redis, out = env.stack.redis, {}
    rate = env.stack.keys.rate("", 0).rsplit(":", 2)[0].encode()
    for key in sorted(redis.scan_iter(f"{env.stack.keys.prefix}:*")):
        if key.startswith(rate):
            continue
        kind = redis.type(key)
        if kind == b"zset":
            out[key] = redis.zrange(key, 0, -1, withscores=True)
        elif kind == b"string":
            out[key] = redis.get(key)
        elif kind == b"hash":
            out[key] = redis.hgetall(key)
        else:
            out[key] = kind
    return out


def test_a_listing_changes_nothing(idle: ApiEnv, made: dict[str, str]) -> None:
    before = _footprint(idle)
    walk(idle, "t1", limit=1)
    walk(idle, "t1", kind="book", status="queued")
    assert _footprint(idle) == before


def test_expired_and_deleted_batches_leave_the_listing_and_its_index(idle: ApiEnv) -> None:
    keys, redis = idle.stack.keys, idle.stack.redis
    old, gone, deleted, kept = (plain(idle, "idem", f"Item {n}") for n in range(4))
    redis.delete(keys.batch(gone))  # as when its retention TTL lapses
    BatchStore(redis, keys, 3600).delete(deleted)  # as when a submission is undone
    assert walk(idle, "idem", limit=1) == [kept, old]
    index = {m.decode() for m in redis.zrange(keys.batches_by_tenant("idem"), 0, -1)}
    assert index == {kept, old}
