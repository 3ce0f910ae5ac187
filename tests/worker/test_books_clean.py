"""Pure tests of narration-text cleaning: examples of each rule, then properties."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.books.clean import (
    SCENE_BREAK,
    Vocabulary,
    clean_text,
    clean_title,
    has_words,
    normalize,
)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        # hyphenation at line ends
        ("an exam-\nple of it", "an example of it"),
        ("a well-known fact; it was well-\nknown", "a well-known fact; it was well-known"),
        ("the example; an exam-\nple", "the example; an example"),
        ("a self-\nmade man", "a self-made man"),  # compound prefix, no other evidence
        ("Jean-\nPaul and 1914-\n1918", "Jean-Paul and 1914-1918"),  # not lowercase: keep
        ("he said—\nand left", "he said—and left"),
        ("a dash –\nthen more", "a dash – then more"),
        # unwrapping and paragraphs
        ("one\ntwo\n\n\n\nthree\r\nfour", "one two\n\nthree four"),
        ("  indented\n\tline  ", "indented line"),
        ("\n \n\nalone\n \n", "alone"),
        # page numbers alone on a line
        ("before\n12\nafter", "before after"),
        ("before\n\n- 13 -\n\nafter", "before\n\nafter"),
        ("before\nPage 14\nafter\n[15]\nend", "before after end"),
        # footnote and page markers inline
        ("a claim [1] and another[12].", "a claim and another."),
        ("starred[*] text", "starred text"),
        ("keep href.split('#')[0] as is", "keep href.split('#')[0] as is"),
        ("noted.¹ Next", "noted. Next"),
        ("area of 5 km² here", "area of 5 km² here"),
        ("text [Pg 7] more", "text more"),
        ("[Illustration: A dog\nbarking] The dog.", "The dog."),
        # scene breaks
        ("end of scene\n* * *\nnew scene", "end of scene\n\n* * *\n\nnew scene"),
        ("a\n\n~~~\n\nb\n———\nc", "a\n\n* * *\n\nb\n\n* * *\n\nc"),
        ("* * *\nopens\n\n⁂\n\n***\n\ncloses\n* * *", "opens\n\n* * *\n\ncloses"),
        # Unicode
        ("cafe\u0301", "café"),
        ("soft\u00adhyphen zero\u200bwidth", "softhyphen zerowidth"),
        ("no\u00a0break\u2009thin", "no break thin"),
        ("bell\x07 here", "bell here"),
        ("ZWJ stays: क्\u200dष", "ZWJ stays: क्\u200dष"),
    ],
)
def test_clean_examples(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_book_wide_vocabulary_decides_hyphens() -> None:
    vocabulary = Vocabulary.of("the co-operation of all")
    assert clean_text("more co-\noperation", vocabulary) == "more co-operation"
    assert clean_text("more co-\noperation") == "more cooperation"


def test_titles_and_words() -> None:
    assert clean_title("  Chapter\n 1[2]:  The   End ") == "Chapter 1: The End"
    assert has_words("— 1 —") and has_words("É") and not has_words("* * * — …")
    assert normalize("a\r\nb\rc\u2028d") == "a\nb\nc\nd"


# -- properties ----------------------------------------------------------------

letters = st.characters(categories=["Lu", "Ll"])
words = st.lists(st.text(letters, min_size=1, max_size=12), min_size=1, max_size=80)
separators = st.sampled_from([" ", "  ", "\n", "\n\n", "\n\n\n", " \n ", "\t", "\r\n", "\u00a0"])


@settings(max_examples=300, deadline=None)
@given(words, st.data())
def test_cleaning_never_loses_words(items: list[str], data: st.DataObject) -> None:
    gaps = data.draw(st.lists(separators, min_size=len(items), max_size=len(items)))
    raw = "".join(w + g for w, g in zip(items, gaps, strict=True))
    assert clean_text(raw).split() == [unicodedata.normalize("NFC", w) for w in items]


WORDS = ["the", "cat", "sat.", "Hello,", "world!", "“quoted”", "naïve", "well-known", "x" * 30]
WORDS += ["exam-", "ple", "12", "[3]", "* * *", "Chapter", "I", "東京", "👍🏽", "e\u0301"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(WORDS), separators), max_size=60))
def test_cleaning_shape(pairs: list[tuple[str, str]]) -> None:
    cleaned = clean_text("".join(w + g for w, g in pairs))
    assert clean_text(cleaned) == cleaned  # idempotent
    assert cleaned == cleaned.strip()
    for paragraph in cleaned.split("\n\n") if cleaned else []:
        assert paragraph and "\n" not in paragraph and "  " not in paragraph
        assert paragraph == paragraph.strip()
        assert has_words(paragraph) or paragraph == SCENE_BREAK
    assert unicodedata.is_normalized("NFC", cleaned)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_cleaning_arbitrary_text(raw: str) -> None:
    cleaned = clean_text(raw)
    assert "\r" not in cleaned and "\n\n\n" not in cleaned
    assert unicodedata.is_normalized("NFC", cleaned)
