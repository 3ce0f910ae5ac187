"""``/v1/books``: upload a book (EPUB, DOCX, PDF, HTML, Markdown, text), narrate it as a batch.

The answer shows the chapter list the batch was made from, and every part
that was skipped with the reason; ``?dry_run=true`` shows it without making a
batch.  Reading the book
and submitting it is :mod:`api.books.service`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from api.batches.views import batch_out, current_view
from api.bodies import BodyRoute, check_json_field
from api.books.schemas import BookOut
from api.books.service import BookUpload, submit_book
from api.deps import Ctx, Tenant
from api.idempotency import IdempotencyKey, answer_created
from api.schemas import CREATE_ERRORS, V1_ERRORS, error_responses

router = APIRouter(
    prefix="/books",
    tags=["books"],
    route_class=BodyRoute,
    responses={
        **V1_ERRORS,
        **error_responses(
            {
                422: "not a book (or not the kind its name says), a book without text, a PDF "
                "without a text layer, a password-protected file, an unsafe archive, "
                "or bad options"
            }
        ),
    },
)


@router.post(
    "",
    status_code=202,
    response_model=BookOut,
    summary="Narrate a book",
    responses={
        200: {"model": BookOut, "description": "a dry run, or an Idempotency-Key replay"},
        **CREATE_ERRORS,
        **error_responses(
            {
                409: "Idempotency-Key used with another upload",
                413: "the upload (or a chapter) is over the limit",
            }
        ),
    },
)
def create_book(
    tenant: Tenant,
    ctx: Ctx,
    response: Response,
    file: Annotated[
        UploadFile, File(description="the book: EPUB, DOCX, PDF (with text), HTML, Markdown, text")
    ],
    title: Annotated[str | None, Form(max_length=300, description="overrides the book's")] = None,
    author: Annotated[str | None, Form(max_length=300, description="overrides the book's")] = None,
    cover: Annotated[UploadFile | None, File(description="JPEG, PNG or SVG cover image")] = None,
    options: Annotated[
        str | None,
        Form(
            description='JSON: {"defaults", "produce", "callback_url", "metadata"} as for '
            'batches, and {"speak_titles", "titles", "split_level", "notes", "code", "tables", '
            '"chapters"}'
        ),
    ] = None,
    dry_run: Annotated[
        bool, Query(description="only read the book and show its chapters and skipped parts")
    ] = False,
    idempotency_key: IdempotencyKey = None,
) -> BookOut:
    """Read the book into chapters and queue one batch item per chapter."""
    if options is not None and options.strip():
        check_json_field(options, "options")  # as a JSON body is; BookOptions checks the rest
    upload = BookUpload(file=file, title=title, author=author, cover=cover, options=options)
    submission = submit_book(ctx, tenant, upload, dry_run=dry_run, idempotency_key=idempotency_key)
    if submission.batch is None:
        response.status_code = 200
        return BookOut(book=submission.book, batch=None)
    batch = submission.batch.value
    answer_created(response, f"/v1/batches/{batch.id}", submission.batch.created)
    return BookOut(book=submission.book, batch=batch_out(current_view(ctx, batch), ctx.storage))
