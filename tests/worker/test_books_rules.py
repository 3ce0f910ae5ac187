"""Pure tests of the EPUB importer's rules, one small hand-made book per rule.

Chapters follow the book's navigation; front and back matter are found by
meaning first; inline noise is removed by meaning and literal text is never
changed; every skipped part says why.  Each book is built in memory (see
``test_books_fixtures``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.worker.test_books_fixtures import Doc, EpubSpec, build_epub, xhtml
from worker.books import Book, parse_book
from worker.books.model import NotesMode, ReadMode, ReadOptions, Skip, SkipCategory


def _epub(
    docs: Sequence[tuple[str, ...]], nav: list[tuple[str, str]] | None, **spec: object
) -> bytes:
    """An EPUB of (href, body[, body epub:type]) documents, in spine order."""
    built = []
    for n, (href, body, *typed) in enumerate(docs):
        built.append(Doc(f"d{n}", href, xhtml(body, body_type=typed[0] if typed else None)))
    return build_epub(EpubSpec(docs=built, nav=nav, cover=None, **spec))  # type: ignore[arg-type]


def _read(data: bytes, **options: object) -> Book:
    return parse_book(data, filename="b.epub", options=ReadOptions(**options))  # type: ignore[arg-type]


def _chapters(book: Book) -> list[tuple[str, str]]:
    return [(c.title, c.text) for c in book.chapters]


# -- chapters from the navigation ------------------------------------------------


def _technical_book() -> bytes:
    """Two chapters with nested sections: in their own files for one, fragments for the other."""
    return _epub(
        [
            ("ch1.xhtml", "<h1>Chapter 1. Start</h1><p>Intro one.</p>"),
            ("ch1s1.xhtml", '<h2 id="s1">1.1 Setup</h2><p>Setup text.</p>'),
            ("ch1s2.xhtml", "<h2>1.2 Run</h2><p>Run text.</p>"),
            (
                "ch2.xhtml",
                '<h1>Chapter 2. More</h1><p>Intro two.</p><h2 id="a">2.1 Deep</h2><p>Deep.</p>'
                '<h2 id="b">2.2 Deeper</h2><p>Deeper.</p>',
            ),
        ],
        [
            ("ch1.xhtml", "Chapter 1. Start"),
            ("ch1s1.xhtml#s1", "  1.1 Setup"),
            ("ch1s2.xhtml", "  1.2 Run"),
            ("ch2.xhtml", "Chapter 2. More"),
            ("ch2.xhtml#a", "  2.1 Deep"),
            ("ch2.xhtml#b", "  2.2 Deeper"),
        ],
    )


def test_nested_entries_are_sections_inside_their_chapter() -> None:
    book = _read(_technical_book())
    assert _chapters(book) == [
        ("Chapter 1. Start", "Intro one.\n\n1.1 Setup\n\nSetup text.\n\n1.2 Run\n\nRun text."),
        ("Chapter 2. More", "Intro two.\n\n2.1 Deep\n\nDeep.\n\n2.2 Deeper\n\nDeeper."),
    ]


def test_split_level_two_narrates_sections_as_chapters_consistently() -> None:
    book = _read(_technical_book(), split_level=2)
    # Files and fragments split alike: every second-level entry starts a chapter.
    assert [(c.title, c.source) for c in book.chapters] == [
        ("Chapter 1. Start", "OEBPS/ch1.xhtml"),
        ("1.1 Setup", "OEBPS/ch1s1.xhtml#s1"),
        ("1.2 Run", "OEBPS/ch1s2.xhtml"),
        ("Chapter 2. More", "OEBPS/ch2.xhtml"),
        ("2.1 Deep", "OEBPS/ch2.xhtml#a"),
        ("2.2 Deeper", "OEBPS/ch2.xhtml#b"),
    ]
    assert book.chapters[4].text == "Deep."


def test_epub2_ncx_nesting_is_followed() -> None:
    data = _epub(
        [
            ("a.xhtml", "<h1>One</h1><p>A.</p><h2 id='x'>Sub</h2><p>B.</p>"),
            ("b.xhtml", "<p>C.</p>"),
        ],
        [("a.xhtml", "One"), ("a.xhtml#x", "  Sub"), ("b.xhtml", "Two")],
        ncx=True,
    )
    assert _chapters(_read(data)) == [("One", "A.\n\nSub\n\nB."), ("Two", "C.")]


def test_a_root_entry_bearing_the_book_title_is_not_a_level() -> None:
    data = _epub(
        [("a.xhtml", "<h1>One</h1><p>A.</p>"), ("b.xhtml", "<h1>Two</h1><p>B.</p>")],
        [("a.xhtml", "The Test Book"), ("a.xhtml", "  One"), ("b.xhtml", "  Two")],
    )
    assert _chapters(_read(data)) == [("One", "A."), ("Two", "B.")]


def test_unlisted_spine_content_joins_the_chapter_before() -> None:
    data = _epub(
        [
            ("a.xhtml", "<h1>One</h1><p>A.</p>"),
            ("a2.xhtml", "<p>A continued.</p>"),
            ("b.xhtml", "<h1>Two</h1><p>B.</p>"),
        ],
        [("a.xhtml", "One"), ("b.xhtml", "Two")],
    )
    book = _read(data)
    assert _chapters(book) == [("One", "A.\n\nA continued."), ("Two", "B.")]
    assert book.skips == ()


def test_unlisted_matter_is_skipped_with_its_reason() -> None:
    data = _epub(
        [
            ("tn.xhtml", '<div class="transnote"><p>Obvious typos were fixed.</p></div>'),
            ("a.xhtml", "<h1>One</h1><p>A.</p>"),
            ("ads.xhtml", "<h2>Advertisements</h2><p>Buy our other books, 2s. 6d.</p>"),
            ("b.xhtml", "<h1>Two</h1><p>B.</p>"),
            ("tn2.xhtml", "<h2>Transcriber's Notes</h2><p>Spelling kept as printed.</p>"),
        ],
        [("a.xhtml", "One"), ("b.xhtml", "Two")],
    )
    book = _read(data)
    assert _chapters(book) == [("One", "A."), ("Two", "B.")]
    assert book.skips == (
        Skip(SkipCategory.EXTRA, "transcriber's note", "OEBPS/tn.xhtml"),
        Skip(SkipCategory.EXTRA, "advertisement", "OEBPS/ads.xhtml", "Advertisements"),
        Skip(SkipCategory.EXTRA, "transcriber's note", "OEBPS/tn2.xhtml", "Transcriber's Notes"),
    )


def test_a_part_title_before_a_titled_story_is_skipped() -> None:
    data = _epub(
        [
            ("part.xhtml", "<h2>I</h2>"),
            ("story.xhtml", "<h2>The Story</h2><p>Once.</p>"),
        ],
        [("part.xhtml", "I"), ("story.xhtml", "The Story")],
    )
    book = _read(data)
    assert _chapters(book) == [("The Story", "Once.")]
    assert book.skipped == ("'I' (OEBPS/part.xhtml): only a title, no text",)


def test_a_title_file_gives_its_title_to_untitled_text() -> None:
    docs = [
        ("title.xhtml", "<h1>The Story</h1>"),
        ("text.xhtml", "<h3>by Ann Author</h3><p>It began.</p>"),
    ]
    # Without navigation, and with navigation listing only the title file.
    for nav in (None, [("title.xhtml", "The Story")]):
        book = _read(_epub(docs, nav))
        assert [c.title for c in book.chapters] == ["The Story"]
        assert book.chapters[0].text.endswith("It began.")


def test_part_titles_in_a_file_do_not_replace_a_story_title() -> None:
    body = "<h1>The Story</h1><h2>I</h2><p>First.</p><h2>II</h2><p>Second.</p>"
    book = _read(_epub([("s.xhtml", body)], [("s.xhtml", "The Story")]))
    assert _chapters(book) == [("The Story", "I\n\nFirst.\n\nII\n\nSecond.")]


# -- matter by meaning -----------------------------------------------------------


def test_standard_ebooks_matter_is_skipped_by_its_types() -> None:
    data = _epub(
        [
            ("titlepage.xhtml", '<section epub:type="titlepage"><h1>The Book</h1></section>'),
            (
                "imprint.xhtml",
                '<section epub:type="imprint"><p>This ebook is the '
                "product of many hours of work by volunteers.</p></section>",
                "frontmatter",
            ),
            (
                "ch1.xhtml",
                '<section epub:type="chapter"><h2>I</h2><p>Text.</p></section>',
                "bodymatter",
            ),
            (
                "colophon.xhtml",
                '<section epub:type="colophon"><p>The Book was published in 1900.</p></section>',
                "backmatter",
            ),
            (
                "uncopyright.xhtml",
                '<section epub:type="copyright-page"><p>May you do good '
                "and not evil.</p></section>",
                "backmatter",
            ),
        ],
        [
            ("titlepage.xhtml", "Titlepage"),
            ("imprint.xhtml", "Imprint"),
            ("ch1.xhtml", "I"),
            ("colophon.xhtml", "Colophon"),
            ("uncopyright.xhtml", "Uncopyright"),
        ],
    )
    book = _read(data)
    assert _chapters(book) == [("I", "Text.")]
    assert [(s.category, s.reason) for s in book.skips] == [
        (SkipCategory.FRONT_MATTER, "title page"),
        (SkipCategory.LICENCE, "imprint"),
        (SkipCategory.BACK_MATTER, "colophon"),
        (SkipCategory.BACK_MATTER, "copyright page"),
    ]


def test_epub2_guide_types_mark_matter() -> None:
    data = _epub(
        [("t.xhtml", "<p>Some words here.</p>"), ("c.xhtml", "<h1>One</h1><p>Text.</p>")],
        [("t.xhtml", "Start"), ("c.xhtml", "One")],
        ncx=True,
        guide=[("t.xhtml", "title-page"), ("c.xhtml", "text")],
    )
    book = _read(data)
    assert _chapters(book) == [("One", "Text.")]
    assert book.skipped == ("'Start' (OEBPS/t.xhtml): title page",)


def test_copyright_text_rule_only_at_the_edges() -> None:
    data = _epub(
        [
            ("pre.xhtml", "<h1>Preface</h1><p>Copyright 2012 was a hard year to write in.</p>"),
            ("one.xhtml", "<h1>One</h1><p>Text.</p>"),
            ("mid.xhtml", "<p>All rights reserved, said the lawyer, and left.</p>"),
            ("about.xhtml", "<h1>About the Author</h1><p>Her first book, ISBN 0-00-000, sold.</p>"),
            ("legal.xhtml", "<p>Copyright © 2024 Ann. All rights reserved.</p>"),
        ],
        [
            ("pre.xhtml", "Preface"),
            ("one.xhtml", "One"),
            ("mid.xhtml", ""),
            ("about.xhtml", "About the Author"),
            ("legal.xhtml", ""),
        ],
    )
    book = _read(data)
    assert [c.title for c in book.chapters] == [
        "Preface",  # a preface that says "Copyright 2012" is a chapter
        "One",
        "Chapter 3",  # untitled, in the body: never judged by its text
        "About the Author",  # back matter with an ISBN in its text: a chapter
    ]
    assert book.skipped == ("OEBPS/legal.xhtml: copyright page",)


# -- Project Gutenberg -------------------------------------------------------------

PG_HEADER = (
    '<section class="pg-boilerplate pgheader" id="pg-header"><h2>The Project Gutenberg eBook '
    "of A Tale</h2><p>This ebook is for the use of anyone anywhere.</p>"
    '<div id="pg-start-separator">*** START OF THE PROJECT GUTENBERG EBOOK A TALE ***</div>'
    "</section>"
)
PG_FOOTER = (
    '<section class="pg-boilerplate pgheader" id="pg-footer"><div id="pg-end-separator">'
    "*** END OF THE PROJECT GUTENBERG EBOOK A TALE ***</div><h2>THE FULL PROJECT GUTENBERG "
    "LICENSE</h2><p>To protect the Project Gutenberg mission of promoting the free "
    "distribution of electronic works…</p></section>"
)


def test_gutenberg_header_and_licence_sections_are_never_narrated() -> None:
    data = _epub(
        [
            ("h.xhtml", PG_HEADER + "<h1>A TALE</h1><h2 id='c1'>CHAPTER I</h2><p>Once.</p>"),
            ("e.xhtml", "<h2 id='c2'>CHAPTER II</h2><p>Twice.</p>" + PG_FOOTER),
        ],
        [
            ("h.xhtml#pg-header", "The Project Gutenberg eBook of A Tale"),
            ("h.xhtml#c1", "CHAPTER I"),
            ("e.xhtml#c2", "CHAPTER II"),
            ("e.xhtml#pg-footer", "THE FULL PROJECT GUTENBERG LICENSE"),
        ],
    )
    book = _read(data)
    assert _chapters(book) == [("CHAPTER I", "Once."), ("CHAPTER II", "Twice.")]
    assert "Gutenberg" not in "".join(c.text for c in book.chapters)
    assert [(s.category, s.reason) for s in book.skips] == [
        (SkipCategory.LICENCE, "Project Gutenberg header"),
        (SkipCategory.EMPTY, "only a title, no text"),  # the book's title heading
        (SkipCategory.LICENCE, "Project Gutenberg licence"),
    ]
    assert book.skipped[1] == "'A TALE' (OEBPS/h.xhtml): only a title, no text"


def test_gutenberg_markers_cut_even_inside_one_block() -> None:
    text = (
        "<pre>The Project Gutenberg EBook of A Tale\nRelease Date: 2004\n\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK A TALE ***\n\nA TALE</pre>"
        "<h2>I</h2><p>Once upon a time.</p>"
        "<p>End of the Project Gutenberg EBook of A Tale</p>"
        "<p>*** END OF THIS PROJECT GUTENBERG EBOOK A TALE ***</p><p>Licence terms.</p>"
    )
    book = _read(_epub([("all.xhtml", text)], [("all.xhtml", "A Tale")]))
    assert _chapters(book) == [("A Tale", "A TALE\n\nI\n\nOnce upon a time.")]


# -- inline noise, by meaning; literal text unchanged ------------------------------


def test_noise_is_removed_by_markup_and_literal_text_is_kept() -> None:
    body = (
        "<h1>One</h1>"
        '<p>Call <code>href.split(\'#\')[0]</code> first<a epub:type="noteref" href="#n1">1</a>.'
        '<span epub:type="pagebreak" id="p7" title="7"/> A list [1] and x<sup>2</sup>.</p>'
        '<p>Page <span class="pagenum"><a id="Page_8">[Pg 8]</a></span>eight and '
        '<span role="doc-pagebreak">9</span>nine; {12} stays.</p>'
        '<aside epub:type="footnote" id="n1"><p>The note.</p></aside>'
    )
    book = _read(_epub([("a.xhtml", body)], [("a.xhtml", "One")]))
    assert book.chapters[0].text == (
        "Call href.split('#')[0] first. A list [1] and x2.\n\nPage eight and nine; {12} stays."
    )


def test_verse_keeps_its_lines_and_drops_line_numbers() -> None:
    body = (
        '<blockquote epub:type="z3998:poem"><p>'
        "<span>Came over the Starnbergersee</span><br/>"
        '<span class="i1">And went on in sunlight, into the Hofgarten,'
        ' <span class="line-number">10</span></span><br/>'
        "<span>We stopped—</span><br/><span>and talked.</span></p></blockquote>"
        '<div class="poem"><div class="stanza"><span>Without breaks one<span class="linenum">'
        "5</span></span><span>two</span></div></div>"
    )
    book = _read(_epub([("a.xhtml", body)], [("a.xhtml", "Poem")]))
    assert book.chapters[0].text == (
        "Came over the Starnbergersee\nAnd went on in sunlight, into the Hofgarten,\n"
        "We stopped—\nand talked.\n\nWithout breaks one\ntwo"
    )


def test_standard_ebooks_span_lines_without_breaks() -> None:
    body = (
        '<section epub:type="z3998:poem"><p><span>First line,—</span>'
        '<span class="i1">second line</span></p></section>'
    )
    book = _read(_epub([("a.xhtml", body)], [("a.xhtml", "Poem")]))
    assert book.chapters[0].text == "First line,—\nsecond line"


# -- notes, code, tables ---------------------------------------------------------

NOTED: list[tuple[str, ...]] = [
    (
        "ch1.xhtml",
        '<h1>One</h1><p>He left<a href="endnotes.xhtml#note-1" epub:type="noteref">1</a>.</p>'
        '<p>She stayed<a href="#fn1" role="doc-noteref"><sup>*</sup></a>.</p>'
        '<aside epub:type="footnote" id="fn1"><p>A footnote.</p></aside>',
    ),
    ("ch2.xhtml", "<h1>Two</h1><p>Nothing to note.</p>"),
    (
        "endnotes.xhtml",
        '<section epub:type="endnotes"><h2>Endnotes</h2><ol>'
        '<li id="note-1" epub:type="endnote"><p>An endnote. <a href="ch1.xhtml" '
        'epub:type="backlink">↩</a></p></li></ol></section>',
        "backmatter",
    ),
]
NOTED_NAV = [("ch1.xhtml", "One"), ("ch2.xhtml", "Two"), ("endnotes.xhtml", "Endnotes")]


def test_notes_are_skipped_by_default() -> None:
    book = _read(_epub(NOTED, NOTED_NAV))
    assert _chapters(book) == [("One", "He left.\n\nShe stayed."), ("Two", "Nothing to note.")]
    assert [(s.category, s.reason, s.source) for s in book.skips] == [
        (SkipCategory.NOTES, "1 note", "OEBPS/ch1.xhtml"),
        (SkipCategory.NOTES, "endnotes", "OEBPS/endnotes.xhtml"),
    ]


def test_notes_read_at_the_end_of_their_chapter() -> None:
    book = _read(_epub(NOTED, NOTED_NAV), notes=NotesMode.END_OF_CHAPTER)
    assert _chapters(book) == [
        ("One", "He left.\n\nShe stayed.\n\nAn endnote.\n\nA footnote."),
        ("Two", "Nothing to note."),
    ]


CODE_AND_TABLE = (
    "<h1>One</h1><p>Run this:</p>"
    '<pre class="programlisting"><code>for x in [0]:\n    print(x)  # [1]</code></pre>'
    "<table><tr><th>Name</th><th>Age</th></tr><tr><td>Ann</td><td>30</td></tr></table>"
    "<p>Done.</p>"
)


def test_code_and_tables_are_skipped_and_listed() -> None:
    book = _read(_epub([("a.xhtml", CODE_AND_TABLE)], [("a.xhtml", "One")]))
    assert book.chapters[0].text == "Run this:\n\nDone."
    assert book.skipped == (
        "'One' (OEBPS/a.xhtml): 1 code block",
        "'One' (OEBPS/a.xhtml): 1 table",
    )


def test_code_and_tables_are_read_as_written_by_option() -> None:
    book = _read(
        _epub([("a.xhtml", CODE_AND_TABLE)], [("a.xhtml", "One")]),
        code=ReadMode.READ,
        tables=ReadMode.READ,
    )
    assert book.chapters[0].text == (
        "Run this:\n\nfor x in [0]:\nprint(x) # [1]\n\nName\nAge\n\nAnn\n30\n\nDone."
    )
    assert book.skips == ()


@pytest.mark.parametrize("level", [0, 1])
def test_split_level_below_two_is_top_level_only(level: int) -> None:
    assert len(_read(_technical_book(), split_level=level).chapters) == 2


def test_links_into_the_book_are_a_contents_list_not_text() -> None:
    body = (
        "<h1>A TALE</h1><p class='toc'><a href='#c1'>CHAPTER I.</a> The Start</p>"
        "<p class='toc'><a href='#c2'>CHAPTER II.</a> The End</p>"
        "<h2 id='c1'>CHAPTER I.</h2><p>Once, see <a href='#c2'>the end</a> of it all.</p>"
        "<h2 id='c2'>CHAPTER II.</h2><p>Twice.</p>"
    )
    nav = [("a.xhtml", "A Tale"), ("a.xhtml#c1", "CHAPTER I."), ("a.xhtml#c2", "CHAPTER II.")]
    book = _read(_epub([("a.xhtml", body)], nav))
    assert _chapters(book) == [
        ("CHAPTER I.", "Once, see the end of it all."),
        ("CHAPTER II.", "Twice."),
    ]
    assert book.skipped == (
        "OEBPS/a.xhtml, after 'A TALE': table of contents",
        "'A Tale' (OEBPS/a.xhtml): only a title, no text",  # the navigation's title
    )


def test_toolchain_footnotes_by_their_markup() -> None:
    body = (
        # DocBook XSL: the reference is a link in brackets in a sup.
        '<h1>One</h1><p>Text<sup>[<a id="r1" href="#ftn.r1" class="footnote">1</a>]</sup>.</p>'
        # O'Reilly's HTMLBook: the note is written inline where it is referred to.
        '<p>More<span data-type="footnote">An inline note.</span> text.</p>'
        '<div class="footnotes"><div class="footnote" id="ftn.r1"><p><sup>[<a href="#r1">1</a>]'
        "</sup> A DocBook note.</p></div></div>"
    )
    data = _epub([("a.xhtml", body)], [("a.xhtml", "One")])
    assert _chapters(_read(data)) == [("One", "Text.\n\nMore text.")]
    assert _chapters(_read(data, notes=NotesMode.END_OF_CHAPTER)) == [
        ("One", "Text.\n\nMore text.\n\nA DocBook note.\n\nAn inline note.")
    ]


def test_toolchain_title_pages_by_their_classes() -> None:
    data = _epub(
        [
            (
                "index.xhtml",
                '<div class="titlepage"><h1 class="title">Finding</h1><h2>A Guide</h2>'
                '<p class="copyright">Copyright © 2012 Ada</p><div class="legalnotice"><p>CC0.'
                "</p></div></div>",
            ),
            ("ch1.xhtml", "<h1>One</h1><p>Text.</p>"),
        ],
        [("ch1.xhtml", "One")],
    )
    book = _read(data)
    assert _chapters(book) == [("One", "Text.")]
    assert book.skipped == ("'Finding: A Guide' (OEBPS/index.xhtml): title page",)


def test_text_rules_apply_before_the_body_the_landmarks_name() -> None:
    data = _epub(
        [
            ("fw.xhtml", "<h1>Foreword</h1><p>A kind word.</p>"),
            ("legal.xhtml", "<p>Printed 1990. All rights reserved.</p>"),
            ("ch1.xhtml", "<h1>One</h1><p>Text.</p>"),
        ],
        [("fw.xhtml", "Foreword"), ("legal.xhtml", ""), ("ch1.xhtml", "One")],
        landmarks=[("ch1.xhtml", "bodymatter")],
    )
    book = _read(data)
    assert [c.title for c in book.chapters] == ["Foreword", "One"]
    assert book.skipped == ("OEBPS/legal.xhtml: copyright page",)


def test_without_navigation_files_split_at_repeated_headings() -> None:
    data = _epub(
        [
            ("a.xhtml", "<p>An epigraph.</p><h1>One</h1><p>A.</p><h1>Two</h1><p>B.</p>"),
            ("b.xhtml", "<h1>Three</h1><p>C.</p><h2>Scene</h2><p>D.</p>"),
        ],
        None,
    )
    assert _chapters(_read(data)) == [
        ("Chapter 1", "An epigraph."),
        ("One", "A."),
        ("Two", "B."),
        ("Three", "C.\n\nScene\n\nD."),
    ]
