"""Pure tests of break and voice tags: parsing, positions, errors, segmentation and billing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.jobs.markup import (
    MAX_BREAK_MS,
    Break,
    MarkupError,
    Run,
    Switch,
    escape_tags,
    job_segments,
    parse_markup,
    passage_voices,
    segment_with_breaks,
    spoken_text,
)
from worker.jobs.model import estimate_billing
from worker.jobs.text import segment_text

TAG = '<break time="1.5s"/>'


def test_runs_and_breaks_with_their_positions() -> None:
    text = f"One. {TAG}Two.<break time='500ms'/><break  time = \"0s\" />Three."
    assert parse_markup(text) == [
        Run("One. ", 0),
        Break(1500, 5, len(TAG)),
        Run("Two.", 25),
        Break(500, 29, 21),
        Break(0, 50, 22),
        Run("Three.", 72),
    ]
    for part in parse_markup(text):
        if isinstance(part, Run):
            assert text[part.start : part.start + len(part.text)] == part.text
        else:
            assert text[part.start : part.start + part.length].startswith("<break")
            assert text[part.start + part.length - 2 : part.start + part.length] == "/>"
    assert spoken_text(text) == "One. Two.Three."


@pytest.mark.parametrize(
    ("text", "position", "says"),
    [
        ("Hello <break/> world", 6, "has no time"),
        ("Hello <break> world", 6, "has no time"),
        ('ab<break time="1.5"/>', 2, "not a number"),
        ('ab<break time="2h"/>', 2, "not a number"),
        ('<break time="-1s"/>', 0, "negative"),
        ('x <break time="10.001s"/>', 2, "over the limit of 10s"),
        ('x <break time="10001ms"/>', 2, "over the limit of 10s"),
        ('x <break time="1.0005s"/>', 2, "whole number of milliseconds"),
        ('x <break time="1s">', 2, "close itself"),
        ('x <break time="1s"', 2, "not closed"),
        ("x <break time=1s/>", 2, "is not <break"),
        ('x <BREAK time="1s"/>', 2, "is not <break"),
        ('fine <break time="1s"/> then <break time="1s" strength="x"/>', 29, "is not <break"),
    ],
)
def test_a_malformed_tag_is_an_error_naming_its_position(
    text: str, position: int, says: str
) -> None:
    with pytest.raises(MarkupError) as caught:
        parse_markup(text)
    assert caught.value.position == position
    assert f"at character {position}" in str(caught.value)
    assert says in str(caught.value)
    assert text[position] == "<"


def test_the_limits_are_inclusive() -> None:
    assert parse_markup('<break time="10s"/>') == [Break(MAX_BREAK_MS, 0, 19)]
    assert parse_markup('<break time="10000ms"/>') == [Break(10_000, 0, 23)]
    assert parse_markup('<break time="0.001s"/>') == [Break(1, 0, 22)]


def test_other_angle_brackets_are_text() -> None:
    text = "a < b, <3, <breakfast> and <break-even> <b>bold</b>"
    assert parse_markup(text) == [Run(text, 0)]
    assert spoken_text(text) == text


@given(st.text().filter(lambda t: "<break" not in t.lower()))
def test_text_without_tags_round_trips_unchanged(text: str) -> None:
    parts = parse_markup(text)
    assert parts == ([Run(text, 0)] if text else [])
    assert spoken_text(text) == text
    assert segment_with_breaks(text, 40) == segment_text(text, 40)


@given(
    st.lists(
        st.one_of(
            st.text(alphabet="ab .,\n", max_size=30),
            st.integers(0, MAX_BREAK_MS).map(lambda ms: f'<break time="{ms}ms"/>'),
        ),
        max_size=12,
    ),
    st.integers(1, 50),
)
def test_segments_cut_at_every_break_and_keep_every_millisecond(
    pieces: list[str], max_chars: int
) -> None:
    text = "".join(pieces)
    segments = segment_with_breaks(text, max_chars)
    wanted = sum(p.ms for p in parse_markup(text) if isinstance(p, Break))
    assert sum(s.break_ms for s in segments) == wanted
    assert "".join(s.text for s in segments) == spoken_text(text)
    assert [s.index for s in segments] == list(range(len(segments)))
    for seg in segments:
        assert "<break" not in seg.text
        assert text[seg.start : seg.end] == seg.text  # still an exact slice of the text
        assert len(seg.text) <= max_chars


def test_a_break_falls_between_segments() -> None:
    text = f"Hello there. {TAG}General Kenobi."
    segments = segment_with_breaks(text, 200)
    assert [(s.text, s.break_ms, s.paragraph_end) for s in segments] == [
        ("Hello there. ", 1500, False),
        ("General Kenobi.", 0, True),
    ]
    assert segments[1].start == text.index("General")


def test_breaks_before_any_text_and_in_a_row() -> None:
    text = '<break time="2s"/>Hi.<break time="1s"/> <break time="250ms"/>'
    segments = segment_with_breaks(text, 100)
    assert [(s.text, s.break_ms) for s in segments] == [("", 2000), ("Hi.", 1000), (" ", 250)]


def test_a_paragraph_around_a_tag_still_ends_a_paragraph() -> None:
    text = f"One.\n\n{TAG}\n\nTwo. {TAG}Three.\n{TAG}Four."
    ends = [(s.text.strip(), s.paragraph_end) for s in segment_with_breaks(text, 200)]
    assert ends == [("One.", True), ("Two.", False), ("Three.", False), ("Four.", True)]


def test_an_old_record_with_a_malformed_tag_is_spoken_as_before() -> None:
    text = "Use <break> to pause."
    assert job_segments(text, 100) == segment_text(text, 100)
    assert spoken_text(text) == text


def test_billing_counts_the_text_without_tags() -> None:
    tagged = estimate_billing(f"Hello. {TAG}Bye.", 1_000_000)
    assert tagged.utf8_bytes == len(b"Hello. Bye.")
    assert estimate_billing("Hello. Bye.", 1_000_000) == tagged


# -- voice passages --------------------------------------------------------------


def test_voice_passages_are_runs_in_their_voice() -> None:
    text = 'Said the narrator. <voice name="voice_ab12">I am Ann.</voice> Then silence.'
    assert parse_markup(text) == [
        Run("Said the narrator. ", 0),
        Switch("voice_ab12", 19, 25),
        Run("I am Ann.", 44, "voice_ab12"),
        Switch(None, 53, 8),
        Run(" Then silence.", 61),
    ]
    assert spoken_text(text) == "Said the narrator. I am Ann. Then silence."
    assert passage_voices(text) == {"voice_ab12": 19}


def test_a_voice_switch_ends_a_segment_and_segments_carry_their_voice() -> None:
    text = (
        "Narrator one. <voice name='v1'>Ann speaks here. "
        '<break time="500ms"/>Still Ann.</voice> Narrator again.\n\n'
        '<voice name="v2">Bob.</voice>'
    )
    segments = segment_with_breaks(text, 200)
    assert [(s.text, s.voice, s.break_ms) for s in segments] == [
        ("Narrator one. ", None, 0),
        ("Ann speaks here. ", "v1", 500),
        ("Still Ann.", "v1", 0),
        (" Narrator again.\n\n", None, 0),
        ("Bob.", "v2", 0),
    ]
    for seg in segments:
        assert text[seg.start : seg.end] == seg.text
    assert [s.paragraph_end for s in segments] == [False, False, False, True, True]
    assert passage_voices(text) == {"v1": 14, "v2": text.index('<voice name="v2">')}


@pytest.mark.parametrize(
    ("text", "position", "says"),
    [
        ('a <voice name="v1">never closed', 2, "never closed"),
        ('a <voice name="v1">b <voice name="v2">c</voice></voice>', 21, "do not nest"),
        ("a </voice> b", 2, "closes no voice"),
        ("a <voice>b</voice>", 2, 'is not <voice name="'),
        ('a <voice id="v1">b</voice>', 2, 'is not <voice name="'),
        ('a <voice name="v1"/>b', 2, 'is not <voice name="'),
        ('a <voice name="">b</voice>', 2, "is not a voice id"),
        ('a <voice name="v1">b</voice x>', 20, "is not </voice>"),
    ],
)
def test_a_malformed_voice_tag_names_its_position(text: str, position: int, says: str) -> None:
    with pytest.raises(MarkupError) as caught:
        parse_markup(text)
    assert caught.value.position == position
    assert f"malformed voice tag at character {position}" in str(caught.value)
    assert says in str(caught.value)


def test_escaped_tags_are_plain_text() -> None:
    text = 'Type <break time="1s"/> or <voice name="x"> and </VOICE> in the editor; 1 < 2.'
    escaped = escape_tags(text)
    assert parse_markup(escaped) == [Run(escaped, 0)]
    assert escaped.replace("\u2039", "<") == text
