"""Properties of parse_book on hostile and random input: a Book or a BookError, nothing else."""

from __future__ import annotations

import io
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.worker.test_books_fixtures import CONTAINER_XML, Doc, EpubSpec, build_epub, xhtml
from worker.books import Book, BookError, parse_book

NAMES = st.sampled_from([None, "book.epub", "book.md", "book.txt", "book", "x.pdf"])
TYPES = st.sampled_from(
    [None, "application/epub+zip", "text/markdown", "text/plain; charset=utf-8", "image/png"]
)


def _parse(data: bytes, **kwargs: object) -> Book | None:
    """parse_book, turning a BookError into None; any other exception fails the test."""
    try:
        book = parse_book(data, **kwargs)  # type: ignore[arg-type]
    except BookError as exc:
        assert exc.message and str(exc) == exc.message
        return None
    assert book.chapters, "a Book always has chapters"
    for index, chapter in enumerate(book.chapters):
        assert chapter.index == index and chapter.title and chapter.text.strip()
    return book


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), NAMES, TYPES)
def test_random_bytes(data: bytes, filename: str | None, content_type: str | None) -> None:
    _parse(data, filename=filename, content_type=content_type)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=4000))
def test_damaged_epub(noise: bytes, where: int) -> None:
    """A valid EPUB with bytes overwritten somewhere: refused or read, never a crash."""
    spec = EpubSpec(docs=[Doc("a", "a.xhtml", xhtml("<h1>One</h1><p>Some text here.</p>"))])
    data = bytearray(build_epub(spec))
    where %= len(data)
    data[where : where + len(noise)] = noise
    _parse(bytes(data), filename="book.epub")


markup = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "<p>",
                "</p>",
                "<h1>",
                "</h1>",
                "<h2>",
                "</h2>",
                "<div>",
                "</div>",
                "<br/>",
                '<a epub:type="noteref" href="#n">',
                "</a>",
                "<sup>",
                "</sup>",
                "&nbsp;",
                "&amp;",
                '<section epub:type="toc">',
                "</section>",
                "<script>",
                "</script>",
                "&bogus;",
            ]
        ),
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="<&"), max_size=30),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(markup, min_size=1, max_size=4))
def test_random_markup_in_a_valid_epub(bodies: list[str]) -> None:
    docs = [Doc(f"d{n}", f"d{n}.xhtml", xhtml(body)) for n, body in enumerate(bodies)]
    nav = [(f"d{n}.xhtml", f"Entry {n}") for n in range(len(bodies))]
    _parse(build_epub(EpubSpec(docs=docs, nav=nav)), filename="book.epub")


members = st.dictionaries(
    st.sampled_from(
        [
            "mimetype",
            "META-INF/container.xml",
            "OEBPS/content.opf",
            "OEBPS/a.xhtml",
            "OEBPS/nav.xhtml",
            "../x",
            "a/b/c.txt",
        ]
    ),
    st.one_of(
        st.binary(max_size=200),
        st.sampled_from([b"application/epub+zip", CONTAINER_XML.encode(), b"<package/>"]),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(members)
def test_random_zip(contents: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in contents.items():
            zf.writestr(name, data)
    _parse(buffer.getvalue(), filename="book.epub")


text_pieces = st.sampled_from(
    [
        "# ",
        "## ",
        "Chapter 1",
        "CHAPTER IV.",
        "Part Two",
        "Contents",
        "\n",
        "\n\n",
        "* * *",
        "word",
        "exam-",
        "ple",
        "[1]",
        "[^1]",
        "[^1]: note",
        "```",
        "`",
        "*",
        "_",
        "[link](u)",
        "![i](x)",
        "<b>",
        "</b>",
        "---",
        "===",
        "> ",
        "- ",
        "1. ",
        "|",
        "©",
        "ISBN",
        "12",
        " ",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(text_pieces, max_size=80).map("".join), st.sampled_from(["b.md", "b.txt"]))
def test_random_markdown_and_text(text: str, filename: str) -> None:
    _parse(text.encode(), filename=filename)
