"""Book ingestion: an uploaded EPUB, Markdown or plain-text file to chapters of narration text.

:func:`parse_book` is the whole interface; it is pure (bytes in, a frozen
:class:`Book` out, no I/O), so the API can call it inside a request and refuse
a bad upload before anything is enqueued.

* :mod:`~worker.books.detect` – which kind of file an upload is; decoding text;
* :mod:`~worker.books.archive` – reading an untrusted zip within limits;
* :mod:`~worker.books.epub_package`, :mod:`~worker.books.epub`,
  :mod:`~worker.books.xhtml` – EPUB package, spine, navigation and XHTML text;
* :mod:`~worker.books.markdown`, :mod:`~worker.books.plaintext`,
  :mod:`~worker.books.headings` – chapters from headings and "Chapter N" lines;
* :mod:`~worker.books.clean` – narration text: markers, page numbers,
  hyphenation, unwrapping, Unicode;
* :mod:`~worker.books.frontmatter` – what to skip (contents, copyright, title
  pages, dedications, index, empty sections) and the final :class:`Book`.

Errors, all under one root (see :mod:`~worker.books.errors`)::

    BookError                 anything that stops a book from being read; never retryable
    ├── NotABook              unreadable bytes, an unknown kind, a broken EPUB or malformed XML
    ├── EmptyBook             a readable book with no narratable text once front matter is skipped
    ├── BookTooLarge          the upload is over ``max_bytes``
    └── UnsafeArchive         an EPUB whose zip could exhaust the machine or escape its folder
"""

from worker.books.errors import BookError, BookTooLarge, EmptyBook, NotABook, UnsafeArchive
from worker.books.model import Book, BookKind, Chapter
from worker.books.parse import DEFAULT_MAX_BYTES, DEFAULT_MAX_UNPACKED_BYTES, parse_book

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_UNPACKED_BYTES",
    "Book",
    "BookError",
    "BookKind",
    "BookTooLarge",
    "Chapter",
    "EmptyBook",
    "NotABook",
    "UnsafeArchive",
    "parse_book",
]
