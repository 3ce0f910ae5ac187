"""Pure property tests: segmentation is local, so one paragraph's edit re-renders only it.

The segment cache finds a segment again only if its text is the same; these
tests state that editing, adding or removing one paragraph leaves the segments
of every other paragraph exactly as they were.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.jobs.text import Segment, segment_text

WORDS = ["a", "I", "the", "cat", "sat.", "Hello,", "world!", "why?", "yes;", "no:", "end…"]
WORDS += ["e.g.", "Mr.", "3.14", "“quoted.”", "(aside)", "well—maybe", "x" * 30, "naïve"]
WORDS += [
    "你好。",
    "我们一起去吃饭吧，",
    "東京都は日本の首都です。",
    "👍🏽",
    "10\u00a0km",
    "**bold.**",
]
# Gaps inside a paragraph: never a blank line.
GAPS = [" ", "  ", "\n", "\t", "\u3000", " " * 40]
SEPARATORS = ["\n\n", "\n \n", "\r\n\r\n", "\n\n\n", "\u2029"]

paragraph = st.lists(
    st.tuples(st.sampled_from(WORDS), st.sampled_from(GAPS)), min_size=1, max_size=25
).map(lambda pairs: "".join(w + g for w, g in pairs).strip())
limits = st.integers(min_value=8, max_value=200)


def by_paragraph(paragraphs: list[str], separator: str, limit: int) -> list[list[str]]:
    """The texts of the segments that start in each paragraph (its separator after it)."""
    text = separator.join(paragraphs)
    segments = segment_text(text, limit)
    out: list[list[str]] = []
    start = 0
    for i, para in enumerate(paragraphs):
        end = start + len(para) + (len(separator) if i < len(paragraphs) - 1 else 0)
        out.append([s.text for s in segments if start <= s.start < end])
        start = end
    assert sum(map(len, out)) == len(segments)  # every segment starts in some paragraph
    return out


@settings(max_examples=400)
@given(
    st.lists(paragraph, min_size=2, max_size=8),
    st.data(),
    st.sampled_from(SEPARATORS),
    limits,
)
def test_editing_one_paragraph_changes_only_its_segments(
    paragraphs: list[str], data: st.DataObject, separator: str, limit: int
) -> None:
    k = data.draw(st.integers(0, len(paragraphs) - 1), label="edited")
    edited = [*paragraphs]
    edited[k] = data.draw(paragraph, label="new text")
    before = by_paragraph(paragraphs, separator, limit)
    after = by_paragraph(edited, separator, limit)
    for i in range(len(paragraphs)):
        if i != k:
            assert after[i] == before[i], f"paragraph {i} changed when {k} was edited"


@settings(max_examples=300)
@given(st.lists(paragraph, min_size=1, max_size=8), st.data(), limits)
def test_adding_or_removing_a_paragraph_keeps_the_others(
    paragraphs: list[str], data: st.DataObject, limit: int
) -> None:
    k = data.draw(st.integers(0, len(paragraphs)), label="at")
    added = [*paragraphs[:k], data.draw(paragraph, label="new"), *paragraphs[k:]]
    before = by_paragraph(paragraphs, "\n\n", limit)
    after = by_paragraph(added, "\n\n", limit)
    # Every paragraph keeps its segments, but the one before the new paragraph when it
    # was the last of the text: it gains the blank line, so its end may cut anew.
    kept = [*after[:k], *after[k + 1 :]]
    for i, (old, new) in enumerate(zip(before, kept, strict=True)):
        if not (i == k - 1 and k == len(paragraphs)):
            assert new == old, f"paragraph {i} changed when one was added at {k}"


@given(st.lists(paragraph, min_size=1, max_size=6), limits)
def test_a_paragraph_cuts_the_same_alone_or_in_a_text(paragraphs: list[str], limit: int) -> None:
    """The strongest form: a paragraph's segments do not depend on its neighbours."""
    text = "\n\n".join(paragraphs)
    whole = segment_text(text, limit)
    start = 0
    for i, para in enumerate(paragraphs):
        own = para + ("\n\n" if i < len(paragraphs) - 1 else "")
        alone = [s.text for s in segment_text(own, limit)]
        inside = [s.text for s in whole if start <= s.start < start + len(own)]
        assert inside == alone
        start += len(own)


def test_an_example_book_edit() -> None:
    """One typo fixed in the third of five paragraphs: the other four cut exactly as before."""
    paragraphs = [f"Paragraph {n}. " + "It was a dark and stormy night. " * 6 for n in range(5)]
    before = segment_text("\n\n".join(paragraphs), 80)
    paragraphs[2] = paragraphs[2].replace("stormy", "starry", 1)
    after = segment_text("\n\n".join(paragraphs), 80)
    changed = Counter(s.text for s in after) - Counter(s.text for s in before)
    assert sum(changed.values()) == 1
    assert all(isinstance(s, Segment) for s in after)
