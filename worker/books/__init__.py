"""Book ingestion: an uploaded EPUB, DOCX, PDF, HTML, Markdown or text file to chapters.

:func:`parse_book` is the whole interface; it is pure (bytes in, a frozen
:class:`Book` out, no I/O), so the API can call it inside a request and refuse
a bad upload before anything is enqueued.

* :mod:`~worker.books.detect` – which kind of file an upload is; decoding text;
* :mod:`~worker.books.archive` – reading an untrusted zip within limits;
* :mod:`~worker.books.epub_package`, :mod:`~worker.books.epub`,
  :mod:`~worker.books.xhtml` – EPUB package, spine, navigation and XHTML text;
* :mod:`~worker.books.nav` – chapters as the book's navigation has them;
* :mod:`~worker.books.semantics`, :mod:`~worker.books.matter` – what markup
  means (notes, page breaks, verse, code) and boilerplate never narrated
  (Project Gutenberg's header and licence, transcriber's notes, adverts);
* :mod:`~worker.books.html`, :mod:`~worker.books.docx`, :mod:`~worker.books.pdf` –
  web pages, Word documents (through mammoth) and PDFs with a text layer;
* :mod:`~worker.books.cover` – covers an audiobook can carry (SVG rasterised);
* :mod:`~worker.books.titles` – chapter titles as a narrator says them;
* :mod:`~worker.books.markdown`, :mod:`~worker.books.plaintext`,
  :mod:`~worker.books.headings` – chapters from headings and "Chapter N" lines;
* :mod:`~worker.books.clean` – narration text: markers, page numbers,
  hyphenation, unwrapping, Unicode;
* :mod:`~worker.books.frontmatter` – what to skip (contents, copyright, title
  pages, dedications, index, empty sections) and the final :class:`Book`.

Errors, all under one root (see :mod:`~worker.books.errors`)::

    BookError                 anything that stops a book from being read; never retryable
    ├── NotABook              unreadable bytes, an unknown kind, a broken EPUB or malformed XML
    │   ├── NoTextLayer       a PDF of scanned pages: run OCR first
    │   └── ProtectedBook     a password-protected PDF or Word document
    ├── EmptyBook             a readable book with no narratable text once front matter is skipped
    ├── BookTooLarge          the upload is over ``max_bytes``
    └── UnsafeArchive         a zip (EPUB, DOCX) or PDF that could exhaust the machine
"""

from worker.books.cover import CoverError, usable_cover
from worker.books.errors import (
    BookError,
    BookTooLarge,
    EmptyBook,
    NotABook,
    NoTextLayer,
    ProtectedBook,
    UnsafeArchive,
)
from worker.books.model import (
    Book,
    BookKind,
    Chapter,
    NotesMode,
    ReadMode,
    ReadOptions,
    Skip,
    SkipCategory,
)
from worker.books.parse import DEFAULT_MAX_BYTES, DEFAULT_MAX_UNPACKED_BYTES, parse_book
from worker.books.titles import TitleStyle, speakable, spoken_title

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_UNPACKED_BYTES",
    "Book",
    "BookError",
    "BookKind",
    "BookTooLarge",
    "Chapter",
    "CoverError",
    "EmptyBook",
    "NoTextLayer",
    "NotABook",
    "NotesMode",
    "ProtectedBook",
    "ReadMode",
    "ReadOptions",
    "Skip",
    "SkipCategory",
    "TitleStyle",
    "UnsafeArchive",
    "parse_book",
    "speakable",
    "spoken_title",
    "usable_cover",
]
