"""Properties of parse_book on hostile and random input: a Book or a BookError, nothing else."""

from __future__ import annotations

import io
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.worker.test_books_fixtures import CONTAINER_XML, Doc, EpubSpec, build_epub, xhtml
from worker.books import Book, BookError, NotesMode, ReadMode, ReadOptions, parse_book

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
                "<table><tr><td>",
                "</td></tr></table>",
                "<pre><code>",
                "</code></pre>",
                '<blockquote epub:type="z3998:poem"><p><span>',
                "</span></p></blockquote>",
                '<aside epub:type="footnote" id="n">',
                "</aside>",
                '<span class="pagenum">',
                '<span class="linenum">',
                "</span>",
                '<section class="pg-boilerplate" id="pg-footer">',
                "*** START OF THE PROJECT GUTENBERG EBOOK X ***",
                "*** END OF THE PROJECT GUTENBERG EBOOK X ***",
                '<a href="#c">',
                '<span data-type="footnote">',
                "<hgroup>",
                "</hgroup>",
            ]
        ),
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="<&"), max_size=30),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(markup, min_size=1, max_size=4), st.integers(1, 3))
def test_random_markup_in_a_valid_epub(bodies: list[str], split_level: int) -> None:
    docs = [Doc(f"d{n}", f"d{n}.xhtml", xhtml(body)) for n, body in enumerate(bodies)]
    nav = [(f"d{n}.xhtml", f"{'  ' * (n % 2)}Entry {n}") for n in range(len(bodies))]
    options = ReadOptions(split_level, NotesMode.END_OF_CHAPTER, ReadMode.READ, ReadMode.READ)
    _parse(build_epub(EpubSpec(docs=docs, nav=nav)), filename="book.epub", options=options)


# Words with the characters text rules used to eat: brackets, digits, braces, markers.
literal = st.lists(
    st.sampled_from(["href.split('#')[0]", "[1]", "x²", "{12}", "12", "[Pg", "7]", "word", "—"]),
    max_size=12,
).map(lambda words: ["Said", *words])  # a paragraph with a word to read
noise = st.sampled_from(
    [
        '<a epub:type="noteref" href="#n1">1</a>',
        '<a href="#n2"><sup>[2]</sup></a>',
        '<span epub:type="pagebreak" id="p9" title="9"/>',
        '<span role="doc-pagebreak">9</span>',
        '<span class="pagenum"><a id="Page_9">[Pg 9]</a></span>',
        '<span class="line-number">10</span>',
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(literal, noise), min_size=1, max_size=6))
def test_noise_goes_and_literal_text_stays(paragraphs: list[tuple[list[str], str]]) -> None:
    """Whatever noise elements sit between words, the narration is the words, unchanged."""
    body = "<h1>One</h1>" + "".join(
        f"<p>{' '.join(words[:1])}{mark} {' '.join(words[1:])}</p>" for words, mark in paragraphs
    )
    docs = [Doc("a", "a.xhtml", xhtml(body + '<aside epub:type="footnote" id="n1">Note.</aside>'))]
    book = _parse(build_epub(EpubSpec(docs=docs, nav=[("a.xhtml", "One")])), filename="b.epub")
    assert book is not None
    assert book.chapters[0].text.split() == [w for words, _ in paragraphs for w in words]


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
