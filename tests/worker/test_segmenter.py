"""Pure tests of text segmentation: properties over arbitrary text, then examples."""

from __future__ import annotations

import re
import unicodedata
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from worker.jobs.text import Segment, segment_text

# -- strategies ----------------------------------------------------------------

WORDS = ["a", "I", "the", "cat", "sat.", "Hello,", "world!", "why?", "yes;", "no:", "end…"]
WORDS += ["e.g.", "Mr.", "3.14", "“quoted.”", "(aside)", "well—maybe", "x" * 30, "naïve"]
WORDS += ["你好。", "我们一起去吃饭吧，", "好不好？", "東京都は日本の首都です。", "カタカナー"]
WORDS += ["한국어", "👍🏽", "👨‍👩‍👧", "🇫🇷🇩🇪", "e\u0301", "10\u00a0km", "**bold.**", "`code`"]
GAPS = [" ", "  ", "\n", "\n\n", "\n \n", "\t", " \n\n\n ", "\r\n\r\n", "\u3000", " " * 40]

# Text built from words and gaps: realistic structure, every boundary type.
structured_text = st.lists(
    st.tuples(st.sampled_from(WORDS), st.sampled_from(GAPS)), max_size=60
).map(lambda pairs: "".join(w + g for w, g in pairs))
# Arbitrary unicode (hypothesis avoids lone surrogates) with extra whitespace and CJK.
any_text = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.sampled_from(" \n\n\t\u3000\u00a0.!?,;:—…。！？，、「」“”\"')"),
        st.characters(min_codepoint=0x4E00, max_codepoint=0x4E80),
    ),
    max_size=300,
)
texts = st.one_of(structured_text, any_text, st.text(max_size=80))
max_chars = st.integers(min_value=1, max_value=120)
# Structured text with at least one word (every entry of WORDS has a visible character).
worded_text = st.lists(
    st.tuples(st.sampled_from(WORDS), st.sampled_from(GAPS)), min_size=1, max_size=60
).map(lambda pairs: "".join(w + g for w, g in pairs))


# A word with the whitespace around it; a no-break space is part of the word ("10 km").
WORD_AND_SPACE = re.compile(r"[^\S\u00a0]*[\S\u00a0]+[^\S\u00a0]*")


@st.composite
def text_whose_words_fit(draw: st.DrawFn) -> tuple[str, int]:
    """Worded text and a limit that every word, with the whitespace around it, fits in."""
    text = draw(worded_text)
    widest = max(len(p) for p in WORD_AND_SPACE.findall(text))
    return text, draw(st.integers(min_value=widest, max_value=max(widest, 120)))


def is_wide(ch: str) -> bool:
    """CJK for the purposes of the tests: East Asian wide, full-width or half-width."""
    return unicodedata.east_asian_width(ch) in ("W", "F", "H")


def is_closer(ch: str) -> bool:
    return unicodedata.category(ch) in ("Pe", "Pf") or ch in "\"'*_`"


def non_space_run(text: str, pos: int) -> str:
    """The maximal run of non-space characters around the position ``pos``."""
    start = pos
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    end = pos
    while end < len(text) and not text[end].isspace():
        end += 1
    return text[start:end]


def word_cut_allowed(text: str, pos: int, limit: int) -> bool:
    """Whether a cut at ``pos`` keeps words whole, as the segmenter promises.

    A cut between two non-space characters is allowed only when that run of
    non-space characters is longer than ``limit`` (the forced case), when
    either neighbour is CJK, when it follows a dash or ellipsis ("well—maybe"),
    or when it follows closing quotes/brackets after CJK punctuation
    ("“好。”Then").
    """
    before, after = text[pos - 1], text[pos]
    if before.isspace() or after.isspace():
        return True
    if len(non_space_run(text, pos)) > limit:
        return True
    if is_wide(before) or is_wide(after) or before in "—―…":
        return True
    i = pos - 1
    while i >= 0 and is_closer(text[i]):
        i -= 1
    return i < pos - 1 and i >= 0 and is_wide(text[i])


def check_invariants(text: str, limit: int, segments: list[Segment]) -> None:
    assert "".join(s.text for s in segments) == text
    offset = 0
    for i, seg in enumerate(segments):
        assert seg.index == i
        assert seg.start == offset
        assert seg.end == offset + len(seg.text)
        assert text[seg.start : seg.end] == seg.text
        assert 1 <= len(seg.text) <= limit
        offset = seg.end
        if i:
            assert word_cut_allowed(text, seg.start, limit), (text, seg.start)
    if text and not text.isspace():
        assert segments[-1].paragraph_end or segments[-1].text.isspace()
        check_blank_segments(limit, segments)


def check_blank_segments(limit: int, segments: list[Segment]) -> None:
    """A whitespace-only segment appears only where neither neighbour in its paragraph
    had room for it.

    So the content segments around each run of blank segments are full (the one
    after only when it is in the same paragraph: each paragraph is cut on its
    own), and all blank segments of a run but one are full too.
    """
    blank = [s.text.isspace() for s in segments]
    i = 0
    while i < len(segments):
        if not blank[i]:
            i += 1
            continue
        j = i
        while j < len(segments) and blank[j]:
            j += 1
        assert not any(s.paragraph_end for s in segments[i:j])
        if i > 0:
            assert len(segments[i - 1].text) == limit
        ends_paragraph = i > 0 and segments[i - 1].paragraph_end
        if j < len(segments) and not ends_paragraph:
            assert len(segments[j].text) == limit
        assert sum(len(s.text) < limit for s in segments[i:j]) <= 1
        i = j


# -- properties ----------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, max_chars)
@example("a" + " " * 12 + "b", 5)
@example("   lead", 3)
@example("\n\n\n", 2)
@example("“好。”Then", 3)
def test_invariants(text: str, limit: int) -> None:
    check_invariants(text, limit, segment_text(text, limit))


@settings(max_examples=200, deadline=None)
@given(worded_text, max_chars)
def test_paragraph_breaks_always_end_a_segment(text: str, limit: int) -> None:
    segments = segment_text(text, limit)
    cuts = {s.start for s in segments[1:]} | {len(text)}
    breaks = 0
    for run in re.finditer(r"\s+", text):
        is_break = len(re.findall(r"\r\n|\n", run.group())) >= 2
        if not is_break or run.start() == 0 or run.end() == len(text):
            continue
        breaks += 1
        # Some cut falls at, inside or right after the blank line...
        assert any(run.start() <= c <= run.end() for c in cuts)
        # ...and the segment holding the paragraph's last word is marked.
        last_word = next(s for s in segments if s.start <= run.start() - 1 < s.end)
        assert last_word.paragraph_end
    assert sum(s.paragraph_end for s in segments) == breaks + 1


@settings(max_examples=200, deadline=None)
@given(text_whose_words_fit())
def test_no_blank_segments_when_whitespace_fits(case: tuple[str, int]) -> None:
    """When every word plus the whitespace around it fits, no segment is blank."""
    text, limit = case
    assert not any(s.text.isspace() for s in segment_text(text, limit))


SENTENCES = ["Tick tock. ", "Short one! ", "Why not? "]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(SENTENCES), min_size=1),
    # Every sentence fits (a sentence cut inside is the other tests' business).
    st.integers(min_value=max(map(len, SENTENCES)), max_value=120),
)
def test_sentences_are_packed_greedily(sentences: list[str], limit: int) -> None:
    """Whole sentences are packed up to the limit, not cut one per segment."""
    text = "".join(sentences)
    segments = segment_text(text, limit)
    offsets, pos = [], 0
    for sentence in sentences:
        offsets.append(pos)
        pos += len(sentence)
    # Every cut is at a sentence end, and the next sentence would not have fit.
    assert {s.start for s in segments} <= set(offsets)
    for seg, nxt in pairwise(segments):
        following = sentences[offsets.index(nxt.start)]
        assert len(seg.text) + len(following) > limit


def test_whitespace_only_text() -> None:
    assert [s.text for s in segment_text("   ", 10)] == ["   "]
    segments = segment_text(" " * 7, 3)
    assert [s.text for s in segments] == ["   ", "   ", " "]
    assert [s.paragraph_end for s in segments] == [False, False, True]


def test_empty_and_invalid() -> None:
    assert segment_text("", 10) == []
    with pytest.raises(ValueError, match="max_chars"):
        segment_text("hello", 0)
    with pytest.raises(ValueError):
        segment_text("hello", -5)


# -- examples ------------------------------------------------------------------


def texts_of(text: str, limit: int) -> list[str]:
    segments = segment_text(text, limit)
    check_invariants(text, limit, segments)
    return [s.text for s in segments]


def test_short_text_is_one_segment() -> None:
    segments = segment_text("Hello, world.", 100)
    assert segments == [Segment(index=0, text="Hello, world.", start=0, paragraph_end=True)]


def test_english_paragraphs() -> None:
    text = (
        "The quick brown fox jumps over the lazy dog. It was not amused! "
        "Who would be? Nobody, really.\n\n"
        "A second paragraph follows, short and sweet.\n\n\n"
        "Third."
    )
    assert texts_of(text, 80) == [
        "The quick brown fox jumps over the lazy dog. It was not amused! Who would be? ",
        "Nobody, really.\n\n",
        "A second paragraph follows, short and sweet.\n\n\n",
        "Third.",
    ]
    assert [s.paragraph_end for s in segment_text(text, 80)] == [False, True, True, True]
    # A paragraph that fits is kept whole, and short paragraphs are never merged.
    assert texts_of(text, 1000) == [
        "The quick brown fox jumps over the lazy dog. It was not amused! "
        "Who would be? Nobody, really.\n\n",
        "A second paragraph follows, short and sweet.\n\n\n",
        "Third.",
    ]


def test_long_sentence_falls_back_to_clauses_then_words() -> None:
    text = "When the rain came, we ran inside; the dog, however, stayed out in the yard."
    assert texts_of(text, 40) == [
        "When the rain came, we ran inside; ",
        "the dog, however, ",
        "stayed out in the yard.",
    ]
    assert texts_of("alpha beta gamma delta", 11) == ["alpha beta ", "gamma delta"]


def test_closing_quotes_stay_with_their_sentence() -> None:
    text = "She said, “Stop.” He did not. “Why?” she asked."
    assert texts_of(text, 20) == ["She said, “Stop.” ", "He did not. “Why?” ", "she asked."]


def test_abbreviations_and_initials_are_not_sentence_ends() -> None:
    text = "Mr. Smith met J. R. Tolkien at 3 p.m. in the pub. They talked."
    # The first sentence (50 chars) is too long; the best cuts are at spaces, not after "Mr.".
    assert texts_of(text, 40) == [
        "Mr. Smith met J. R. Tolkien at 3 p.m. ",
        "in the pub. They talked.",
    ]
    assert texts_of(text, 12)[:3] == ["Mr. Smith ", "met J. R. ", "Tolkien at "]
    # A period before a lower-case word ends no sentence either.
    text = "We met at 5 p.m. today and we talked for a while."
    assert texts_of(text, 30) == ["We met at 5 p.m. today and we ", "talked for a while."]


def test_chinese() -> None:
    text = "他说：“你好。”然后走了。我们一起去吃饭吧，好不好？当然好！"
    assert texts_of(text, 14) == [
        "他说：“你好。”然后走了。",
        "我们一起去吃饭吧，好不好？",
        "当然好！",
    ]
    # No sentence fits: clause marks, then plain CJK characters.
    assert texts_of("我们一起去吃饭吧，好不好", 9) == ["我们一起去吃饭吧，", "好不好"]
    assert texts_of("一二三四五六七八九十", 4) == ["一二三四", "五六七八", "九十"]


def test_japanese_respects_line_breaking_rules() -> None:
    text = "東京都は日本の首都です。人口は約千四百万人で、世界有数の大都市です。"
    assert texts_of(text, 20) == [
        "東京都は日本の首都です。",
        "人口は約千四百万人で、",
        "世界有数の大都市です。",
    ]
    # Never start a segment with a small kana, a long-vowel mark or punctuation.
    for seg in segment_text("コーヒーとチョコレートとショッピング", 3)[1:]:
        assert seg.text[0] not in "ーョッャュ、。"


def test_mixed_scripts_and_full_width_space() -> None:
    text = "Hello。世界\u3000これはテストです。Python は楽しい！"
    for limit in (1, 2, 5, 8, 13):
        assert len(texts_of(text, limit)) >= len(text) / limit
    assert texts_of(text, 100) == [text]
    # Whole sentences where they fit: the cuts fall after each 。
    assert texts_of(text, 13) == ["Hello。", "世界\u3000これはテストです。", "Python は楽しい！"]


def test_long_word_is_cut_only_when_it_must_be() -> None:
    word = "Pneumonoultramicroscopicsilicovolcanoconiosis"
    assert texts_of(f"a {word} b", 20) == ["a ", word[:20], word[20:40], word[40:] + " b"]


def test_emoji_and_combining_marks_are_not_split() -> None:
    family = "👨‍👩‍👧"
    result = texts_of(family * 3, 6)
    assert result == [family, family, family]
    assert texts_of("🇫🇷🇩🇪🇬🇧", 3) == ["🇫🇷", "🇩🇪", "🇬🇧"]
    assert texts_of("e\u0301e\u0301e\u0301", 3) == ["e\u0301", "e\u0301", "e\u0301"]


def test_no_break_space_is_a_last_resort() -> None:
    assert texts_of("run 10\u00a0km today", 9) == ["run ", "10\u00a0km ", "today"]


def test_long_whitespace_is_shed_at_the_edges() -> None:
    assert texts_of("a" + " " * 12 + "b", 5) == ["a    ", "    ", "    b"]
    assert texts_of("abc" + " " * 4 + "de", 5) == ["abc  ", "  de"]
    # Leading whitespace with no segment before it goes to the front of the first one.
    assert texts_of("  hello", 8) == ["  hello"]
    assert texts_of("\n" * 6 + "hello", 8) == ["\n" * 3, "\n" * 3 + "hello"]


def test_markdownish_text() -> None:
    text = (
        "# Chapter One\n\n"
        "Some *emphasis* and **strong.** Then a list:\n\n"
        "- first item\n- second item\n- third item\n\n"
        "```\ncode block\n```\n\n"
        "> A quote, with a clause; and more.\n"
    )
    segments = segment_text(text, 40)
    check_invariants(text, 40, segments)
    assert segments[0].text == "# Chapter One\n\n"
    assert segments[0].paragraph_end
    list_items = [s.text for s in segments if s.text.startswith("- ")]
    assert list_items == ["- first item\n- second item\n", "- third item\n\n"]
    assert "Some *emphasis* and **strong.** " in [s.text for s in segments]


def test_ten_thousand_words() -> None:
    sentence = "The worker streams each segment to the provider and checks it in. "
    paragraph = sentence * 9 + "\n\n"
    text = paragraph * (10_000 // (11 * 9) + 1)
    assert len(text.split()) >= 10_000
    segments = segment_text(text, 300)
    check_invariants(text, 300, segments)
    # Four sentences (264 chars) fit in 300, so each paragraph is three segments.
    assert all(s.text.endswith((". ", ". \n\n")) for s in segments)
    assert len(segments) == 3 * text.count("\n\n")
    assert {len(s.text) for s in segments} == {4 * len(sentence), len(sentence) + 2}
