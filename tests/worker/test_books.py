"""Book ingestion end to end: EPUB, Markdown and text books in, chapters out; bad books refused.

Pure tests: every book is built in memory (see ``test_books_fixtures``) and
parsed with :func:`worker.books.parse_book`; nothing touches disk or network.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile

import pytest

from tests.worker.test_books_fixtures import (
    PNG_1X1,
    SAMPLE_MARKDOWN,
    SAMPLE_TEXT,
    Doc,
    EpubSpec,
    build_epub,
    sample_epub_spec,
    xhtml,
)
from worker.books import (
    Book,
    BookError,
    BookKind,
    BookTooLarge,
    Chapter,
    EmptyBook,
    NotABook,
    NotesMode,
    ReadOptions,
    UnsafeArchive,
    parse_book,
)

# -- EPUB ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_epub() -> bytes:
    return build_epub(sample_epub_spec())


def test_epub_chapters_in_reading_order(sample_epub: bytes) -> None:
    book = parse_book(sample_epub, filename="test.epub")

    assert book.kind is BookKind.EPUB
    assert (book.title, book.author, book.language) == ("The Test Book", "Ada Author", "en")
    # The nav titles every chapter; chapters 2 and 3 share a file, split at the nav's fragment.
    assert [c.title for c in book.chapters] == [
        "Chapter One: The Beginning",
        "Chapter 2: Rain",
        "Chapter 3: Sun",
    ]
    assert [c.index for c in book.chapters] == [0, 1, 2]
    assert book.chapters[0].source == "OEBPS/ch1.xhtml"
    assert [c.source for c in book.chapters[1:]] == ["OEBPS/ch2.xhtml", "OEBPS/ch2.xhtml#sun"]


def test_epub_text_is_cleaned(sample_epub: bytes) -> None:
    first, second, third = parse_book(sample_epub, filename="test.epub").chapters

    # Note references, page breaks, footnote bodies, alt text and headings are gone.
    assert first.text == (
        "It was a dark and stormy night; the rain fell in torrents.\n\n"
        "The wind swept up the streets.\n\n"
        "Nobody was out that night."
    )
    assert second.text == "Rain again.\n\nMore rain."
    assert third.text == "Then the sun came out."  # script and style dropped
    assert first.chars == len(first.text)
    assert first.utf8_bytes == len(first.text.encode())


def test_epub_front_matter_is_skipped_and_recorded(sample_epub: bytes) -> None:
    book = parse_book(sample_epub, filename="test.epub")

    assert book.skipped == (
        'OEBPS/notes.xhtml: outside the reading order (linear="no")',
        "'Title Page' (OEBPS/title.xhtml): title page",
        "'Contents' (OEBPS/nav.xhtml): table of contents",
        "'Chapter One: The Beginning' (OEBPS/ch1.xhtml): 1 note",
        "'Copyright' (OEBPS/copyright.xhtml): copyright page",
    )


def test_epub_notes_read_at_the_end_of_their_chapter(sample_epub: bytes) -> None:
    options = ReadOptions(notes=NotesMode.END_OF_CHAPTER)
    first = parse_book(sample_epub, filename="test.epub", options=options).chapters[0]

    # The endnote lives in a document outside the reading order; the footnote in the chapter.
    assert first.text.endswith(
        "Nobody was out that night.\n\n1. A famous opening.\n\n2. Torrents, as in Bulwer-Lytton."
    )


def test_epub_cover_is_extracted(sample_epub: bytes) -> None:
    book = parse_book(sample_epub, filename="test.epub")

    assert book.cover == PNG_1X1
    assert book.cover_type == "image/png"


def test_arguments_override_metadata_and_cover(sample_epub: bytes) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(16)
    book = parse_book(
        sample_epub, filename="test.epub", title=" My  Title ", author="Someone Else", cover=jpeg
    )

    assert (book.title, book.author) == ("My Title", "Someone Else")
    assert (book.cover, book.cover_type) == (jpeg, "image/jpeg")
    # The title page still reads as one: it names the book's own title.
    assert "'Title Page' (OEBPS/title.xhtml): title page" in book.skipped


def test_epub2_with_ncx_guide_and_meta_cover() -> None:
    spec = sample_epub_spec()
    spec.docs = [d for d in spec.docs if d.id != "nav"]
    spec.nav = [("title.xhtml", "Title"), ("ch1.xhtml", "One"), ("ch2.xhtml", "Two")]
    spec.ncx = True
    book = parse_book(build_epub(spec))

    # The NCX has one entry for ch2.xhtml: its second heading is a section inside it.
    assert [c.title for c in book.chapters] == ["One", "Two"]
    assert book.chapters[1].text == (
        "Rain again.\n\nMore rain.\n\nChapter 3: Sun\n\nThen the sun came out."
    )
    assert book.cover == PNG_1X1
    assert "'Title' (OEBPS/title.xhtml): title page" in book.skipped


def test_epub_untitled_chapter_is_numbered() -> None:
    spec = EpubSpec(
        docs=[
            Doc("a", "a.xhtml", xhtml("<h2>Arrival</h2><p>They arrived.</p>")),
            Doc("b", "b.xhtml", xhtml("<p>No heading here, just text.</p>")),
        ],
        nav=None,
        cover=None,
    )
    book = parse_book(build_epub(spec), filename="x.epub")

    assert [c.title for c in book.chapters] == ["Arrival", "Chapter 2"]
    assert book.cover is None and book.cover_type is None


# -- Markdown and plain text ---------------------------------------------------


def test_markdown_book() -> None:
    book = parse_book(SAMPLE_MARKDOWN.encode(), filename="sea.md")

    assert book.kind is BookKind.MARKDOWN
    assert (book.title, book.author, book.language) == ("Sea Stories", "Mary Writer", "en-GB")
    assert [c.title for c in book.chapters] == [
        "Sea Stories",  # the introduction before the first chapter heading
        "The Harbour",
        "The Storm",
        "The Return",
    ]
    intro, harbour, storm, ret = (c.text for c in book.chapters)
    assert intro == "A collection of tales from the coast."
    assert harbour == (
        "The boats came in at dawn, and the gulls followed them all the way home.\n\n"
        "A quiet moment\n\n"
        "Fish were sold on the quay."
    )
    assert storm == "Waves rose high higher than the mast.\n\n* * *\n\nBy morning the sea was calm."
    assert ret == "Home at last, she said.\n\nThe end."
    assert book.skipped == ("'Contents' (line 11: ## Contents): table of contents",)
    assert book.chapters[1].source == "line 17: ## The Harbour"


def test_plain_text_book() -> None:
    book = parse_book(SAMPLE_TEXT.encode(), filename="keeper.txt")

    assert book.kind is BookKind.TEXT
    assert (book.title, book.author) == ("The Lighthouse Keeper", "Tom Teller")
    assert [c.title for c in book.chapters] == [
        "Chapter 1",
        "Chapter II: The Storm",
        "Chapter Three",
    ]
    one, two, three = (c.text for c in book.chapters)
    # "eve-/ning" joined; the page number "12" gone; "well-/known" kept (seen nowhere joined,
    # "well" is a compound prefix); hard wraps unwrapped.
    assert one == (
        "The keeper climbed the stairs every evening at six, and every morning he came "
        "down again.\n\nIt was a well-known routine, and nobody questioned it."
    )
    assert two == "The storm broke over the headland at midnight."
    assert three == "The end came quietly."
    assert book.skipped == ("'The Lighthouse Keeper' (lines 1-5): title page",)
    assert book.chapters[1].source == "line 18: CHAPTER II. THE STORM"


def test_plain_text_without_chapters_is_one_chapter() -> None:
    data = b"Just a short story.\nIt wraps here.\n\nAnd ends."
    book = parse_book(data, filename="story.txt", title="A Story")

    assert book.chapters == (
        Chapter(0, "A Story", "Just a short story. It wraps here.\n\nAnd ends.", "the whole text"),
    )
    assert parse_book(data, filename="my_story.txt").title == "my story"
    assert parse_book(data).title == "Untitled"


def test_kind_is_sniffed_and_charset_honoured() -> None:
    markdown = b"# Book\n\n## One\n\nFirst.\n\n## Two\n\nSecond.\n"
    assert parse_book(markdown).kind is BookKind.MARKDOWN
    assert parse_book(markdown, content_type="text/plain; charset=utf-8").kind is BookKind.MARKDOWN
    assert parse_book(markdown, filename="book.txt").kind is BookKind.TEXT
    assert parse_book(b"Plain words only.", content_type="text/markdown").kind is BookKind.MARKDOWN

    latin1 = "Chapter 1\n\nCafé crème.".encode("latin-1")
    book = parse_book(latin1, content_type="text/plain; charset=iso-8859-1")
    assert book.chapters[0].text == "Café crème."
    utf16 = "Chapter 1\n\nÜber.".encode("utf-16")
    assert parse_book(utf16, filename="b.txt").chapters[0].text == "Über."


def test_a_lone_short_story_is_never_skipped() -> None:
    story = b"The Last Leaf\n\nShe watched the leaf.\n\n(c) 2024 Jo. All rights reserved."
    book = parse_book(story, filename="The Last Leaf.txt")
    assert book.chapters[0].text.startswith("The Last Leaf\n\nShe watched")


def test_book_values_are_frozen() -> None:
    book = parse_book(b"Some text.", title="T")
    assert isinstance(book, Book)
    with pytest.raises(dataclasses.FrozenInstanceError):
        book.title = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        book.chapters[0].text = "other"  # type: ignore[misc]


# -- bad books -----------------------------------------------------------------


def test_error_tree() -> None:
    for error in (NotABook, EmptyBook, BookTooLarge, UnsafeArchive):
        assert issubclass(error, BookError)
        assert error("x").message == "x"
    assert BookTooLarge.http_status == 413
    assert {NotABook.code, EmptyBook.code, UnsafeArchive.code} == {
        "not_a_book",
        "empty_book",
        "unsafe_archive",
    }


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (b"Chapter 1\n\nhello", {"filename": "book.epub"}, "'book.epub' is not an EPUB"),
        (b"hello", {"content_type": "application/epub+zip"}, "not a zip archive"),
        (b"%PDF-1.7 ...", {"filename": "book.pdf"}, "not a readable PDF"),
        (b"\x00\x01\x02\x03binary" * 20, {"filename": "book.txt"}, "binary data"),
        (b"   \n\n ", {"filename": "book.txt"}, "is empty"),
        (b"PK\x03\x04 truncated", {"filename": "book.epub"}, "not a readable zip"),
        (b"\x89PNG\r\n\x1a\n", {"content_type": "image/png"}, "is a PNG image"),
    ],
)
def test_not_a_book(data: bytes, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(NotABook, match=message):
        parse_book(data, filename=kwargs.get("filename"), content_type=kwargs.get("content_type"))


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_zip_that_is_not_an_epub() -> None:
    archive = _zip({"[Content_Types].xml": b"<Types/>", "notes/readme.txt": b"hello"})
    with pytest.raises(NotABook, match=r"without META-INF/container\.xml"):
        parse_book(archive, filename="book.zip")
    odt = _zip({"mimetype": b"application/vnd.oasis.opendocument.text"})
    with pytest.raises(NotABook, match=r"its mimetype is 'application/vnd\.oasis"):
        parse_book(odt)


def test_malformed_xml_names_the_member() -> None:
    spec = sample_epub_spec()
    spec.docs[2].content = "<html><body><p>unclosed</body></html>"
    with pytest.raises(NotABook, match=r"member 'OEBPS/ch1.xhtml' is not well-formed XML"):
        parse_book(build_epub(spec))


def test_epub_with_no_text() -> None:
    spec = EpubSpec(
        docs=[
            Doc("c", "cover.xhtml", xhtml('<img src="images/cover.png" alt="Cover"/>')),
            Doc("e", "empty.xhtml", xhtml("<h1>Chapter 1</h1><p> </p>")),
            Doc("x", "symbols.xhtml", xhtml("<p>* * *</p>")),
        ],
        nav=[("empty.xhtml", "Chapter 1")],
    )
    with pytest.raises(EmptyBook, match="no narratable text") as caught:
        parse_book(build_epub(spec), filename="empty.epub")
    assert "'Chapter 1' (OEBPS/empty.xhtml): only a title, no text" in caught.value.message


def test_text_with_only_front_matter_is_empty() -> None:
    with pytest.raises(EmptyBook):
        parse_book(b"Contents\n\nChapter 1\nChapter 2\n", filename="toc.txt")
    with pytest.raises(EmptyBook):
        parse_book(b"# Title\n\n## One\n\n## Two\n", filename="b.md")


def test_over_the_size_limit() -> None:
    with pytest.raises(BookTooLarge, match="is 1001 bytes; the limit is 1000"):
        parse_book(b"x" * 1001, filename="big.txt", max_bytes=1000)
    # Checked before anything else: not even a zip is opened.
    with pytest.raises(BookTooLarge):
        parse_book(build_epub(sample_epub_spec()), max_bytes=100)
