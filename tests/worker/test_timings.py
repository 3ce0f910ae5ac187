"""Timings (worker/timings/): marks located, mapped, placed, tidied and written. Pure.

Exact expected output throughout, and the encoder delay of every output
format as shoal's sinks write it, measured: a burst at a known sample, found
again after decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from worker.audio.decode import first_audio_stream, mono_blocks, open_audio
from worker.audio.formats import OutputFormat
from worker.audio.sinks import open_sink
from worker.timings import (
    Cue,
    Edit,
    InvalidMarks,
    Mark,
    MarkKind,
    OffsetMap,
    Timeline,
    TimelineBuilder,
    cues,
    locate,
    marks_from_json,
    sentence_spans,
    sentences,
    tidy,
    to_json,
    to_srt,
    to_vtt,
)

W, S = MarkKind.WORD, MarkKind.SENTENCE


@dataclass(frozen=True)
class Piece:
    text: str
    start: float
    end: float


def word(start: int, end: int, text: str, cs: int) -> Mark:
    return Mark(W, start, end, text, cs, cs + len(text))


# -- locate --------------------------------------------------------------------


def test_locate_finds_words_in_order_with_their_characters() -> None:
    text = "Hello, world! The NASA team said 42 things."
    pieces = [
        Piece("Hello,", 0.0, 0.3),
        Piece("WORLD", 0.3, 0.7),  # another case
        Piece("“The", 1.0, 1.1),  # punctuation the text does not have
        Piece("NASA", 1.1, 1.5),
        Piece("team", 1.5, 1.7),
        Piece("said", 1.7, 1.9),
        Piece("forty-two", 1.9, 2.3),  # spelt out: gets the text between its neighbours
        Piece(".", 2.3, 2.3),  # no letters: dropped
        Piece("things.", 2.3, 2.8004),
    ]
    assert locate(text, pieces) == [
        word(0, 300, "Hello,", 0),
        word(300, 700, "world", 7),
        word(1000, 1100, "The", 14),
        word(1100, 1500, "NASA", 18),
        word(1500, 1700, "team", 23),
        word(1700, 1900, "said", 28),
        word(1900, 2300, "42", 33),
        word(2300, 2800, "things.", 36),
    ]


def test_locate_repeated_words_take_the_next_occurrence() -> None:
    text = "the cat and the dog"
    got = locate(text, [Piece(t, i / 10, (i + 1) / 10) for i, t in enumerate(text.split())])
    assert [m.char_start for m in got] == [0, 4, 8, 12, 16]


def test_sentence_spans() -> None:
    text = '  One. Two!  "Three?" Dr. Who\nA heading\n\n4. 中文。第二句！ end'
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "One.",
        "Two!",
        '"Three?"',
        "Dr.",  # an abbreviation ends a sentence: rare enough, and never wrong in time
        "Who",
        "A heading",
        "4.",
        "中文。",
        "第二句！",
        "end",
    ]


def test_sentences_from_words() -> None:
    text = "Hi there. Bye now"
    words = [
        word(0, 200, "Hi", 0),
        word(250, 600, "there.", 3),
        word(900, 1100, "Bye", 10),
        word(1100, 1400, "now", 14),
    ]
    assert sentences(text, words) == [
        Mark(S, 0, 600, "Hi there.", 0, 9),
        Mark(S, 900, 1400, "Bye now", 10, 17),
    ]


def test_tidy_orders_clamps_and_removes_overlaps() -> None:
    marks = [
        word(900, 1300, "c", 4),
        word(0, 500, "a", 0),
        word(400, 950, "b", 2),  # overlaps both neighbours
        Mark(S, 1000, 2500, "two", 4, 5),  # runs past the audio
        Mark(S, 0, 1100, "one", 0, 3),
        word(2600, 2700, "d", 6),  # starts past the audio
    ]
    assert tidy(marks, 2000) == [
        Mark(S, 0, 1000, "one", 0, 3),
        Mark(S, 1000, 2000, "two", 4, 5),
        word(0, 400, "a", 0),
        word(400, 900, "b", 2),
        word(900, 1300, "c", 4),
        word(2000, 2000, "d", 6),
    ]


def test_mark_checks_and_json_round_trip() -> None:
    mark = Mark(S, 10, 20, "Hi.", 3, 6)
    assert marks_from_json([mark.to_json()]) == [mark]
    assert mark.shifted(5).moved(2) == Mark(S, 15, 25, "Hi.", 5, 8)
    with pytest.raises(InvalidMarks):
        Mark(W, 20, 10, "x", 0, 1)
    with pytest.raises(InvalidMarks):
        Mark(W, 0, 10, "x", 3, 1)
    with pytest.raises(InvalidMarks):
        Mark.from_json({"type": "line", "start_ms": 0})


# -- offsets -------------------------------------------------------------------


def test_offset_map_from_replacements() -> None:
    source = "Ask NASA about the colour."
    omap, sent = OffsetMap.from_replacements(source, [(4, 8, "N A S A"), (19, 25, "color")])
    assert sent == "Ask N A S A about the color."
    assert omap.edits == (Edit(4, 11, 4, 8), Edit(22, 27, 19, 25))
    assert omap.source_span(0, 3) == (0, 3)  # before any edit
    assert omap.source_span(4, 5) == (4, 8)  # a piece of an alias: the whole original
    assert omap.source_span(12, 17) == (9, 14)  # between edits: shifted
    assert omap.source_span(22, 28) == (19, 26)  # the alias and the full stop after it
    assert OffsetMap.from_json(omap.to_json()) == omap


def test_offset_map_between_texts_equals_the_exact_one() -> None:
    source = "Ask NASA about the colour, then NASA again. " * 50
    replacements = []
    for i in range(50):
        base = i * 44
        replacements += [(base + 4, base + 8, "N A S A"), (base + 19, base + 25, "color")]
        replacements += [(base + 32, base + 36, "N A S A")]
    exact, sent = OffsetMap.from_replacements(source, replacements)
    assert OffsetMap.between(source, sent) == exact
    assert OffsetMap.between(source, source) == OffsetMap()


def test_to_source_merges_the_words_of_one_alias() -> None:
    source = "Ask NASA now."
    omap, sent = OffsetMap.from_replacements(source, [(4, 8, "N A S A")])
    words = locate(sent, [Piece(t, i / 10, (i + 1) / 10) for i, t in enumerate(sent.split())])
    assert omap.to_source(words, source) == [
        word(0, 100, "Ask", 0),
        word(100, 500, "NASA", 4),
        word(500, 600, "now.", 9),
    ]


def test_offset_map_refuses_overlapping_edits() -> None:
    with pytest.raises(InvalidMarks):
        OffsetMap((Edit(5, 9, 5, 6), Edit(8, 10, 7, 8)))


# -- timeline ------------------------------------------------------------------


def test_timeline_places_segment_marks_in_the_file() -> None:
    builder = TimelineBuilder(24000)
    builder.segment(1, 36000, 24000)  # after segment 0 and 0.5 s of paragraph silence
    builder.segment(0, 0, 24000)
    timeline = builder.build(total_samples=72000)
    assert timeline == Timeline(24000, (0, 36000), (24000, 24000), 72000)
    marks = {0: [word(100, 400, "a", 0)], 1: [word(0, 250, "b", 2), word(900, 1200, "c", 4)]}
    assert timeline.place_all(marks) == [
        word(100, 400, "a", 0),
        word(1500, 1750, "b", 2),
        word(2400, 2500, "c", 4),  # held within its segment's second of audio
    ]
    assert timeline.duration_ms == 3000
    assert Timeline.from_json(timeline.to_json()) == timeline


def test_timeline_encoder_delay_moves_everything() -> None:
    timeline = Timeline(44100, (0, 44100), (44100, 44100), 88200, encoder_delay=1105)
    assert timeline.place(1, [word(0, 10, "x", 0)]) == [word(1025, 1035, "x", 0)]
    assert timeline.duration_ms == 2025


def test_timeline_checks() -> None:
    with pytest.raises(InvalidMarks):
        Timeline(24000, (0,), (30000,), 24000)  # past the end
    builder = TimelineBuilder(24000)
    builder.segment(1, 0, 10)
    with pytest.raises(InvalidMarks, match=r"\[0\]"):
        builder.build(100)
    with pytest.raises(InvalidMarks):
        builder.segment(1, 0, 10)


# -- captions ------------------------------------------------------------------

MARKS = [
    Mark(S, 0, 1500, "Hi <you> & me.", 0, 14),
    Mark(S, 61_000, 3_725_250, "A sentence\nover two lines.", 15, 41),
]


def test_vtt() -> None:
    assert to_vtt(cues(MARKS)) == (
        "WEBVTT\n"
        "\n00:00:00.000 --> 00:00:01.500\nHi &lt;you&gt; &amp; me.\n"
        "\n00:01:01.000 --> 01:02:05.250\nA sentence over two lines.\n"
    )


def test_srt() -> None:
    assert to_srt(cues(MARKS)) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHi <you> & me.\n"
        "\n2\n00:01:01,000 --> 01:02:05,250\nA sentence over two lines.\n"
    )


def test_json_list() -> None:
    marks = [word(0, 300, "Hi", 0), Mark(S, 0, 300, "Hi.", 0, 3)]
    assert to_json(marks) == (
        '[{"type": "sentence", "start_ms": 0, "end_ms": 300, "text": "Hi.", '
        '"char_start": 0, "char_end": 3}, '
        '{"type": "word", "start_ms": 0, "end_ms": 300, "text": "Hi", '
        '"char_start": 0, "char_end": 2}]'
    )


def test_long_sentences_are_cut_at_words() -> None:
    text = "one two three four five six"
    words = [word(i * 100, i * 100 + 80, t, text.index(t)) for i, t in enumerate(text.split())]
    sentence = Mark(S, 0, 600, text, 0, len(text))
    assert cues([sentence, *words], max_chars=10) == [
        Cue(0, 200, "one two"),
        Cue(200, 400, "three four"),
        Cue(400, 600, "five six"),
    ]
    assert cues(words, max_chars=10) == [  # no sentences: words grouped
        Cue(0, 180, "one two"),
        Cue(200, 380, "three four"),
        Cue(400, 580, "five six"),
    ]


# -- encoder delay of shoal's outputs ------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "rate", "bitrate"),
    [
        ("mp3", 44100, 128),
        ("mp3", 24000, 64),
        ("m4a", 44100, 128),
        ("m4a", 24000, 64),
        ("opus", 48000, 32),
        ("opus", 24000, 32),
        ("flac", 44100, None),
        ("wav", 44100, None),
    ],
)
def test_outputs_have_no_audible_encoder_delay(
    tmp_path: Path, fmt: str, rate: int, bitrate: int | None
) -> None:
    """A burst written at 1.000 s decodes at 1.000 s (±1 sample): the mp3's LAME tag,
    the m4a's edit list and the Opus pre-skip declare the priming and FFmpeg drops it,
    so :attr:`Timeline.encoder_delay` is 0 for every format shoal writes."""
    burst = int(rate * 0.005)
    audio = np.zeros(rate * 3, np.float32)
    audio[rate : rate + burst] = 0.8 * np.sin(2 * np.pi * 1000 * np.arange(burst) / rate)
    path = tmp_path / f"burst.{fmt}"
    sink = open_sink(OutputFormat(fmt), path, rate, bitrate)
    for i in range(0, len(audio), 4096):
        sink.write(audio[i : i + 4096])
    sink.close()
    with open_audio(path) as container:
        stream = first_audio_stream(container, path.name)
        decoded_rate = stream.codec_context.sample_rate
        decoded = np.concatenate(list(mono_blocks(container, stream)))
    assert len(decoded) * rate == len(audio) * decoded_rate  # no padding either
    ref = np.interp(
        np.arange(round((burst + 400) * decoded_rate / rate)) * rate / decoded_rate,
        np.arange(burst + 400),
        audio[rate - 200 : rate + burst + 200],
    )
    at = decoded_rate  # where the burst's window starts if nothing moved
    window = decoded[at - 2000 : at + 2000]
    found = int(np.argmax(np.correlate(window, ref, mode="valid"))) + at - 2000
    expected = at - round(200 * decoded_rate / rate)
    assert abs(found - expected) <= 1, f"{fmt}: burst moved by {found - expected} samples"
