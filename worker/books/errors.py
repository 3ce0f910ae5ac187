"""Errors of the books package: every refused upload is a :class:`BookError`.

BookError                 anything that stops a book from being read; never retryable
├── NotABook              unreadable bytes, an unknown kind, a broken EPUB or malformed XML,
│   │                     a file whose name or type claims a kind its bytes are not
│   ├── NoTextLayer       a PDF of scanned pages: no text to read without OCR
│   └── ProtectedBook     a password-protected (encrypted) PDF or Word document
├── EmptyBook             a readable book with no narratable text once front matter is skipped
├── BookTooLarge          the upload is over ``max_bytes``
└── UnsafeArchive         an EPUB or DOCX whose zip could exhaust the machine or escape its folder:
                          too large unpacked, too compressed, too many members, path traversal,
                          encrypted members, XML entity declarations; a PDF whose
                          streams expand past the limit

Every error is permanent: the same bytes fail the same way, so the API answers
with a 4xx and enqueues nothing.  ``code`` is a stable machine-readable name,
``http_status`` the status an HTTP API should answer with, and ``message`` the
text for the user (it names the member, the limit or the kind that was wrong).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BookError",
    "BookTooLarge",
    "EmptyBook",
    "NoTextLayer",
    "NotABook",
    "ProtectedBook",
    "UnsafeArchive",
]


class BookError(Exception):
    """Root of the books package's errors: the upload cannot become a book."""

    code: ClassVar[str] = "invalid_book"
    http_status: ClassVar[int] = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotABook(BookError):
    """Not a book this package can read: wrong kind, unreadable bytes, broken EPUB or XML."""

    code = "not_a_book"


class NoTextLayer(NotABook):
    """A PDF whose pages are pictures of text (a scan): it needs OCR before it can be read."""

    code = "no_text_layer"


class ProtectedBook(NotABook):
    """A PDF or Word document locked with a password: its text cannot be read."""

    code = "protected_book"


class EmptyBook(BookError):
    """The book parsed but has nothing to narrate once front matter and empty parts are gone."""

    code = "empty_book"


class BookTooLarge(BookError):
    """The upload is larger than the configured ``max_bytes``."""

    code = "book_too_large"
    http_status = 413


class UnsafeArchive(BookError):
    """A zip (EPUB, DOCX) or PDF built to exhaust memory or disk, or to write outside its folder."""

    code = "unsafe_archive"
