"""The OpenAPI document, with links: from what a request made to what can be done with it.

FastAPI documents each operation on its own, so nothing in the document says
that the ``id`` in the answer of ``POST /v1/jobs`` is the ``job_id`` of
``GET /v1/jobs/{job_id}``.  A client generator, or a fuzzer chaining calls,
needs that.  :func:`add_links` writes it down as OpenAPI links on the answers
of every operation that returns a job, a batch or a book::

    POST /v1/jobs, GET /v1/jobs/{job_id}, POST …/cancel
        → show, cancel, audio, events of that job
    GET /v1/jobs                       → show, cancel its first job
    POST /v1/batches, GET /v1/batches/{batch_id}, POST …/cancel, …/items/{n}/retry
        → show, cancel, retry item 0 of that batch; its jobs; its first item's job
    POST /v1/books                     → the same, for the batch narrating the book
    POST /v1/lexicons, GET/PUT /v1/lexicons/{lexicon_id}
        → show, export, replace, delete that lexicon

Links name their target by ``operationId``, which is looked up in the
document, so the ids FastAPI generates stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI


@dataclass(frozen=True, slots=True)
class Link:
    """One link: its name, the operation it leads to, and where its parameters come from."""

    name: str
    method: str
    path: str
    #: Parameter name → a runtime expression (``$response.body#/id``) or a constant.
    parameters: tuple[tuple[str, Any], ...]
    description: str


def _job_links(job_id: str) -> tuple[Link, ...]:
    """Links to what can be done with the job whose id is at ``job_id`` (an expression)."""
    p = (("job_id", job_id),)
    return (
        Link("GetJob", "get", "/v1/jobs/{job_id}", p, "the job"),
        Link("CancelJob", "post", "/v1/jobs/{job_id}/cancel", p, "cancel the job"),
        Link("GetJobAudio", "get", "/v1/jobs/{job_id}/audio", p, "the job's audio"),
        Link("FollowJob", "get", "/v1/jobs/{job_id}/events", p, "the job's events"),
    )


def _batch_links(batch: str) -> tuple[Link, ...]:
    """Links to what can be done with the batch at the JSON pointer ``batch`` of the body."""
    batch_id = (("batch_id", f"$response.body#{batch}/id"),)
    return (
        Link("GetBatch", "get", "/v1/batches/{batch_id}", batch_id, "the batch"),
        Link("CancelBatch", "post", "/v1/batches/{batch_id}/cancel", batch_id, "cancel it"),
        Link(
            "RetryFirstItem",
            "post",
            "/v1/batches/{batch_id}/items/{n}/retry",
            (*batch_id, ("n", 0)),
            "render its first item again",
        ),
        Link("ListBatchJobs", "get", "/v1/jobs", batch_id, "the batch's jobs"),
        Link(
            "GetFirstItemJob",
            "get",
            "/v1/jobs/{job_id}",
            (("job_id", f"$response.body#{batch}/items/0/job_id"),),
            "the job of its first item",
        ),
    )


def _lexicon_links() -> tuple[Link, ...]:
    """Links to what can be done with the lexicon in the answer."""
    p = (("lexicon_id", "$response.body#/id"),)
    return (
        Link("GetLexicon", "get", "/v1/lexicons/{lexicon_id}", p, "the lexicon"),
        Link("ExportLexicon", "get", "/v1/lexicons/{lexicon_id}/export", p, "as PLS"),
        Link("ReplaceLexicon", "put", "/v1/lexicons/{lexicon_id}", p, "its next version"),
        Link("DeleteLexicon", "delete", "/v1/lexicons/{lexicon_id}", p, "delete it"),
    )


_JOB = _job_links("$response.body#/id")
_BATCH = _batch_links("")

#: (method, path) of an operation → the status codes whose answers carry links, and the links.
LINKS: dict[tuple[str, str], tuple[tuple[str, ...], tuple[Link, ...]]] = {
    ("post", "/v1/jobs"): (("200", "202"), _JOB),
    ("get", "/v1/jobs"): (("200",), _job_links("$response.body#/data/0/id")[:2]),
    ("get", "/v1/jobs/{job_id}"): (("200",), _JOB),
    ("post", "/v1/jobs/{job_id}/cancel"): (("200",), _JOB),
    ("post", "/v1/batches"): (("200", "202"), _BATCH),
    ("get", "/v1/batches/{batch_id}"): (("200",), _BATCH),
    ("post", "/v1/batches/{batch_id}/cancel"): (("200",), _BATCH),
    ("post", "/v1/batches/{batch_id}/items/{n}/retry"): (("202",), _BATCH),
    ("post", "/v1/books"): (("200", "202"), _batch_links("/batch")),
    ("post", "/v1/lexicons"): (("201",), _lexicon_links()),
    ("get", "/v1/lexicons/{lexicon_id}"): (("200",), _lexicon_links()),
    ("put", "/v1/lexicons/{lexicon_id}"): (("200",), _lexicon_links()),
}


def add_links(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (an OpenAPI document) with :data:`LINKS` on its answers; changed in place.

    Raises ``KeyError`` if an operation or answer named in :data:`LINKS` is
    missing, so a renamed route cannot silently lose its links.
    """
    paths = spec["paths"]
    for (method, path), (statuses, links) in LINKS.items():
        responses = paths[path][method]["responses"]
        for status in statuses:
            responses[status]["links"] = {
                link.name: {
                    "operationId": paths[link.path][link.method]["operationId"],
                    "parameters": dict(link.parameters),
                    "description": link.description,
                }
                for link in links
            }
    return spec


def install_links(app: FastAPI) -> None:
    """Make ``app`` serve its OpenAPI document with :data:`LINKS` added."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way
