"""Pure tests of how chapters are found: headings, Markdown levels, EPUB splits, front matter."""

from __future__ import annotations

import pytest

from tests.worker.test_books_fixtures import Doc, EpubSpec, build_epub, xhtml
from worker.books import parse_book
from worker.books.epub_package import NavEntry, resolve
from worker.books.frontmatter import skip_reason
from worker.books.headings import match_heading
from worker.books.model import Section
from worker.books.nav import plan_chapters
from worker.books.xhtml import Document, extract, parse_xml

# -- plain-text heading lines --------------------------------------------------


@pytest.mark.parametrize(
    ("line", "title"),
    [
        ("Chapter 1", "Chapter 1"),
        ("CHAPTER IV.", "Chapter IV"),
        ("chapter iv", "Chapter IV"),
        ("Chapter One", "Chapter One"),
        ("CHAPTER TWENTY-ONE", "Chapter Twenty-One"),
        ("Chapter the First", "Chapter the First"),
        ("Part 2", "Part 2"),
        ("BOOK III: THE RETURN OF THE KING", "Book III: The Return of the King"),
        ("Chapter 7. A Quiet Day", "Chapter 7: A Quiet Day"),
        ("Chapter 7 — A Quiet Day", "Chapter 7: A Quiet Day"),
        ("Chapter 1 The Beginning", "Chapter 1: The Beginning"),
        ("Chapter 3 “Hello”", "Chapter 3: “Hello”"),
        ("PROLOGUE", "Prologue"),
        ("Epilogue: Years Later", "Epilogue: Years Later"),
        ("CONTENTS", "Contents"),
        ("Part one of the plan was simple", None),  # wrapped prose
        ("chapter 5 was when it happened", None),
        ("Chapters 1 and 2", None),
        ("Chapter Mix", None),  # a word, not roman numerals
        ("Chapter 1-2", None),
        ("The chapter 1 line", None),
        ("Introduction to the theory", None),
        ("Chapter " + "x" * 200, None),
    ],
)
def test_heading_lines(line: str, title: str | None) -> None:
    heading = match_heading(line)
    assert (heading.title if heading else None) == title


def test_text_headings_must_stand_apart() -> None:
    text = (
        "Chapter 1\n\nShe read the\nPart Two\nof the letter twice.\n\n"
        "CHAPTER 2\nShe slept.\nAnd woke.\n"
    )
    book = parse_book(text.encode(), filename="b.txt")
    assert [c.title for c in book.chapters] == ["Chapter 1", "Chapter 2"]
    assert book.chapters[0].text == "She read the Part Two of the letter twice."
    assert book.chapters[1].text == "She slept. And woke."


def test_text_subtitle_on_the_next_line() -> None:
    text = (
        "CHAPTER I.\nDown the Rabbit-Hole\n\nAlice was tired.\n\nCHAPTER II.\n\nThe Pool\n\nTears."
    )
    book = parse_book(text.encode(), filename="alice.txt")
    assert [c.title for c in book.chapters] == [
        "Chapter I: Down the Rabbit-Hole",
        "Chapter II: The Pool",
    ]
    assert book.chapters[1].text == "Tears."


GUTENBERG = """\
The Project Gutenberg eBook of A Tiny Tale

Title: A Tiny Tale
Author: Anne Onymous
Language: English

*** START OF THE PROJECT GUTENBERG EBOOK A TINY TALE ***

A TINY TALE

Contents

 CHAPTER I.     The Start
 CHAPTER II.    The Middle
 CHAPTER III.   The Finish


CHAPTER I.
The Start

Once upon a time.


CHAPTER II.
The Middle

Time passed.


CHAPTER III.
The Finish

The end.

*** END OF THE PROJECT GUTENBERG EBOOK A TINY TALE ***

Licence text that must never be read aloud.
"""


def test_gutenberg_text() -> None:
    book = parse_book(GUTENBERG.encode(), filename="pg1.txt")
    assert (book.title, book.author, book.language) == ("A Tiny Tale", "Anne Onymous", "en")
    assert [(c.title, c.text) for c in book.chapters] == [
        ("Chapter I: The Start", "Once upon a time."),
        ("Chapter II: The Middle", "Time passed."),
        ("Chapter III: The Finish", "The end."),
    ]
    assert book.skipped == (
        "'A Tiny Tale' (lines 7-10): title page",
        "'Contents' (line 11: Contents): table of contents",
    )


def test_text_table_of_contents_with_spaced_entries() -> None:
    toc = "".join(f"Chapter {n}\n\n" for n in range(1, 6))
    body = "".join(f"Chapter {n}\n\nText {n}.\n\n" for n in range(1, 6))
    book = parse_book((toc + body).encode(), filename="b.txt")
    assert [c.text for c in book.chapters] == [f"Text {n}." for n in range(1, 6)]
    assert book.skipped == (
        "5 headings from 'Chapter 1' (line 1: Chapter 1) to 'Chapter 5' (line 9: Chapter 5): "
        "only a title, no text (a table of contents?)",
    )


# -- Markdown levels -----------------------------------------------------------


def _md_titles(text: str) -> list[str]:
    return [c.title for c in parse_book(text.encode(), filename="b.md").chapters]


def test_markdown_single_top_heading_is_the_title() -> None:
    book = parse_book(b"# My Book\n\n## One\n\nA.\n\n## Two\n\nB.\n", filename="b.md")
    assert book.title == "My Book"
    assert [c.title for c in book.chapters] == ["One", "Two"]


def test_markdown_repeated_top_level_makes_chapters() -> None:
    text = "# One\n\nA.\n\n## Scene\n\nB.\n\n## Scene\n\nC.\n\n# Two\n\nD.\n"
    book = parse_book(text.encode(), filename="b.md")
    assert [c.title for c in book.chapters] == ["One", "Two"]
    assert book.chapters[0].text == "A.\n\nScene\n\nB.\n\nScene\n\nC."


def test_markdown_part_dividers_give_way_to_chapters() -> None:
    text = (
        "# Part One\n\n## Chapter 1\n\nA.\n\n## Chapter 2\n\nB.\n\n"
        "# Part Two\n\n## Chapter 3\n\nC.\n"
    )
    book = parse_book(text.encode(), filename="b.md")
    assert [c.title for c in book.chapters] == ["Chapter 1", "Chapter 2", "Chapter 3"]
    assert book.skipped == (
        "'Part One' (line 1: # Part One): only a title, no text",
        "'Part Two' (line 11: # Part Two): only a title, no text",
    )


def test_markdown_setext_headings_and_no_headings() -> None:
    assert _md_titles("Book\n====\n\nOne\n---\n\nA.\n\nTwo\n---\n\nB.\n") == ["One", "Two"]
    assert _md_titles("Just *some* text.\n") == ["b"]


def test_markdown_syntax_is_stripped() -> None:
    text = (
        "## A\n\nSee [the docs][ref] and <https://x.example> and `code` and \\*stars\\*.\n"
        "Some<br>html &amp; snake_case_name and __strong__ text.[^n]\n\n"
        "1. first item\n2. second item\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "~~~\nfenced\n~~~\n\n"
        "[ref]: https://example.com\n"
        "[^n]: note\n\n"
        "## B\n\nEnd.\n"
    )
    chapter = parse_book(text.encode(), filename="b.md").chapters[0]
    assert chapter.text == (
        "See the docs and and code and *stars*. Somehtml & snake_case_name and strong text."
        "\n\nfirst item\n\nsecond item\n\na, b\n\n1, 2"
    )


# -- EPUB splitting ------------------------------------------------------------


def _doc(body: str) -> Document:
    return extract(parse_xml(xhtml(body).encode(), "x.xhtml"))


def _plan(
    doc: Document, entries: list[NavEntry], split_level: int = 1
) -> list[tuple[int, int, str | None]]:
    """(start, stop, nav title) of each chapter planned in one document."""
    plans = plan_chapters([doc], ["x.xhtml"], entries, split_level)
    return [(p.spans[0].start, p.spans[-1].stop, p.title) for p in plans]


def test_nav_fragments_split_a_file() -> None:
    doc = _doc(
        '<h1 id="a">First</h1><p>One.</p><h1 id="b">Second</h1><p>Two.</p>'
        '<h2 id="c">Sub</h2><p>Three.</p>'
    )
    entries = [
        NavEntry("x.xhtml", "a", "Nav First", 0),
        NavEntry("x.xhtml", "b", "Nav Second", 0),
        NavEntry("x.xhtml", "c", "Nav Sub", 1),  # a section: no split
    ]
    assert _plan(doc, entries) == [(0, 2, "Nav First"), (2, 6, "Nav Second")]
    # split_level=2 narrates the section as a chapter of its own.
    assert _plan(doc, entries, 2) == [(0, 2, "Nav First"), (2, 4, "Nav Second"), (4, 6, "Nav Sub")]


def test_subsection_entries_do_not_split_a_chapter() -> None:
    doc = _doc('<h1>Chapter</h1><p>Intro.</p><h2 id="s1">One</h2><p>A.</p><h2 id="s2">Two</h2>')
    entries = [
        NavEntry("x.xhtml", None, "Chapter", 0),
        NavEntry("x.xhtml", "s1", "One", 1),
        NavEntry("x.xhtml", "s2", "Two", 1),
    ]
    assert _plan(doc, entries) == [(0, 5, "Chapter")]
    # Without navigation, a single h1 with h2s is one chapter too.
    assert _plan(doc, []) == [(0, 5, None)]


def test_nested_entries_are_sections_even_under_a_divider() -> None:
    doc = _doc('<h1>Part One</h1><h2 id="c1">Ch 1</h2><p>A.</p><h2 id="c2">Ch 2</h2><p>B.</p>')
    entries = [
        NavEntry("x.xhtml", None, "Part One", 0),
        NavEntry("x.xhtml", "c1", "Ch 1", 1),
        NavEntry("x.xhtml", "c2", "Ch 2", 1),
    ]
    assert _plan(doc, entries) == [(0, 5, "Part One")]
    # One level deeper: the part's heading alone, then its chapters.
    assert _plan(doc, entries, 2) == [(0, 1, "Part One"), (1, 3, "Ch 1"), (3, 5, "Ch 2")]


def test_a_fragment_naming_the_chapter_heading_takes_the_whole_file() -> None:
    doc = _doc('<div class="chapter"><h2>CHAPTER I</h2><h3 id="t">The Start</h3><p>Text.</p></div>')
    entries = [NavEntry("x.xhtml", "t", "I. The Start", 0)]
    assert _plan(doc, entries) == [(0, 3, "I. The Start")]


def test_epub_split_by_nav_fragments_end_to_end() -> None:
    body = (
        "<p>An epigraph before everything.</p>"
        '<section id="c1"><h2>I</h2><p>First.</p></section>'
        '<section id="c2"><h2>II</h2><p>Second.</p></section>'
    )
    spec = EpubSpec(
        docs=[Doc("all", "text/all.xhtml", xhtml(body))],
        nav=[
            ("text/all.xhtml", "The Book"),
            ("text/all.xhtml#c1", "One"),
            ("text/all.xhtml#c2", "Two"),
        ],
        cover=None,
    )
    book = parse_book(build_epub(spec))
    assert [(c.title, c.text, c.source) for c in book.chapters] == [
        ("The Book", "An epigraph before everything.", "OEBPS/text/all.xhtml"),
        ("One", "First.", "OEBPS/text/all.xhtml#c1"),
        ("Two", "Second.", "OEBPS/text/all.xhtml#c2"),
    ]


def test_epub_title_from_first_heading_and_special_blocks() -> None:
    body = (
        "<p>*</p><h3>Late Title</h3><p>Text with<br/>a break and H<sub>2</sub>O, "
        "5<sup>th</sup> place, x<sup>[4]</sup>.</p><ul><li>one</li><li>two</li></ul>"
        '<p hidden="">secret</p><p class="pagenum">12</p><p><ruby>漢<rt>kan</rt></ruby>字</p>'
    )
    spec = EpubSpec(docs=[Doc("a", "a.xhtml", xhtml(body))], nav=None, cover=None)
    chapter = parse_book(build_epub(spec)).chapters[0]
    assert chapter.title == "Late Title"
    assert chapter.text == (
        # A <br/> keeps its line break; a bracket that is no note reference by its
        # markup is literal text.
        "Late Title\n\nText with\na break and H2O, 5th place, x[4].\n\none\n\ntwo\n\n漢字"
    )


def test_resolve_hrefs() -> None:
    assert resolve("OEBPS/content.opf", "text/ch%201.xhtml#p2") == ("OEBPS/text/ch 1.xhtml", "p2")
    assert resolve("OEBPS/text/nav.xhtml", "../ch.xhtml") == ("OEBPS/ch.xhtml", None)
    assert resolve("OEBPS/nav.xhtml", "#top") == ("OEBPS/nav.xhtml", "top")
    assert resolve("content.opf", "../../etc/passwd") is None
    assert resolve("content.opf", "https://example.com/x") is None


# -- front matter ----------------------------------------------------------------


def _reason(
    title: str | None, text: str, *, front: bool = True, kinds: tuple[str, ...] = ()
) -> str | None:
    section = Section(title, text, "s", frozenset(kinds))
    return skip_reason(section, book_title="The Book", author="Ann Author", front=front)


@pytest.mark.parametrize(
    ("title", "text", "front", "reason"),
    [
        ("Dedication", "For my mother.", True, "dedication"),
        ("Dedication", "A long dedication. " * 50, True, None),  # too long: a real chapter
        (None, "For Sam, who never doubted.", True, "dedication"),
        (None, "For Sam, who never doubted.", False, None),  # only as front matter
        ("Table of Contents", "One\n\nTwo", True, "table of contents"),
        ("INDEX", "apples, 4", False, "index"),
        ("Also by Ann Author", "Book One\n\nBook Two", True, "list of the author's other books"),
        (
            None,
            "Prologue\n\nChapter 1\n\nChapter 2 . . . 17\n\nEpilogue",
            True,
            "table of contents",
        ),
        (None, "Text © 2021 Someone. All rights reserved.", True, "copyright page"),
        (None, "Text © 2021 Someone. All rights reserved.", False, None),  # in the body
        ("Preface", "Copyright 2012 Ann. All rights reserved. I wrote it.", True, None),
        (None, "The Book\n\nby Ann Author\n\nMeadow Press", True, "title page"),
        (None, "The Book was on the table, and she read it.", True, None),
        (None, "I said no.\n\nI said yes.\n\nI said maybe.", True, None),
        ("Chapter 9", "— * —", False, "only a title, no text"),
        (None, "", False, "no narratable text"),
        ("Chapter 1", "It began.", True, None),
    ],
)
def test_skip_reasons(title: str | None, text: str, front: bool, reason: str | None) -> None:
    assert _reason(title, text, front=front) == reason


def test_structural_types_win() -> None:
    assert _reason("Chapter 1", "Lots of text.", kinds=("copyright-page",)) == "copyright page"
    assert _reason(None, "Text.", kinds=("titlepage",)) == "title page"
    assert _reason(None, "Text.", kinds=("toc",)) == "table of contents"
    assert _reason(None, "Text.", kinds=("bodymatter", "chapter")) is None
