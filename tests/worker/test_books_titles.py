"""Chapter titles as a narrator says them (:mod:`worker.books.titles`): pure functions."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.books.titles import (
    TitleStyle,
    int_to_roman,
    int_to_words,
    roman_to_int,
    speakable,
    spoken_title,
)

_VALUES = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}


def words_to_int(words: str) -> int:
    """An independent reading of English number words, to check int_to_words against."""
    total = current = 0
    for word in re.split(r"[ -]", words.lower()):
        if word == "thousand":
            total, current = total + current * 1000, 0
        elif word == "hundred":
            current *= 100
        else:
            current += _VALUES[word]
    return total + current


@pytest.mark.parametrize(
    ("title", "spoken"),
    [
        ("I", "Chapter One"),
        ("i", "Chapter One"),
        ("XIV", "Chapter Fourteen"),
        ("IV. The Sea", "Chapter Four. The Sea"),
        ("IV: The Sea", "Chapter Four: The Sea"),
        ("IV — The End", "Chapter Four — The End"),
        ("12", "Chapter Twelve"),
        ("Chapter IV", "Chapter Four"),
        ("Chapter 1.", "Chapter One."),
        ("CHAPTER I", "Chapter One"),
        ("CHAPTER THE FIRST", "Chapter the First"),
        ("CHAPTER IV. THE SEA", "Chapter Four. The Sea"),
        ("Part II", "Part Two"),
        ("Book the Second", "Book the Second"),
        ("Book 2, Chap. 12", "Book Two, Chapter Twelve"),
        ("Vol. III", "Volume Three"),
        ("Stave I: Marley's Ghost", "Stave One: Marley's Ghost"),
        ("Letter IV", "Letter Four"),
        ("Chapter 1. Mr. Sherlock Holmes", "Chapter One. Mr. Sherlock Holmes"),
        ("THE STORM", "The Storm"),
        ("A TALE OF THE SEA: THE END", "A Tale of the Sea: The End"),
        ("HENRY VIII", "Henry VIII"),
    ],
)
def test_numerals_are_spoken_as_words(title: str, spoken: str) -> None:
    assert spoken_title(title) == spoken


@pytest.mark.parametrize(
    "title",
    [
        "I, Robot",  # the pronoun, with a comma: a title, not a number
        "V for Vendetta",
        "MIX",  # a valid numeral (1009) but a word: bare numerals stop at CCCXCIX
        "CD",
        "DC",
        "Mix",  # title case: a word
        "Chapter mIx",
        "1914",  # four bare digits: a year
        "The Cat",
        "Prologue",
        "Chapter the First",
        "",
    ],
)
def test_words_and_years_stay_as_written(title: str) -> None:
    assert spoken_title(title) == title


def test_the_style_option_keeps_titles_as_written() -> None:
    assert speakable("Chapter IV", TitleStyle.AS_WRITTEN) == "Chapter IV"
    assert speakable("Chapter IV", TitleStyle.SPOKEN) == "Chapter Four"
    assert TitleStyle("as_written") is TitleStyle.AS_WRITTEN


@given(st.integers(min_value=1, max_value=3999))
def test_roman_numerals_round_trip(number: int) -> None:
    numeral = int_to_roman(number)
    assert roman_to_int(numeral) == number
    assert roman_to_int(numeral.lower()) == number
    assert words_to_int(int_to_words(number)) == number
    assert spoken_title(f"Chapter {numeral}") == f"Chapter {int_to_words(number)}"
    assert spoken_title(f"Part {number}") == f"Part {int_to_words(number)}"


@given(st.integers(min_value=1, max_value=399))
def test_bare_numerals_up_to_399_are_chapter_numbers(number: int) -> None:
    assert spoken_title(int_to_roman(number)) == f"Chapter {int_to_words(number)}"


@given(st.text(alphabet="IVXLCDM", min_size=1, max_size=8))
def test_only_canonical_numerals_have_a_value(letters: str) -> None:
    value = roman_to_int(letters)
    assert value is None or int_to_roman(value) == letters


@given(st.text(max_size=60))
def test_any_title_comes_back_non_empty_and_idempotent(title: str) -> None:
    spoken = spoken_title(title)
    assert bool(spoken.strip()) == bool(title.strip())
    assert spoken_title(spoken) == spoken


def test_out_of_range_numbers_are_refused() -> None:
    for bad in (0, 4000):
        with pytest.raises(ValueError):
            int_to_roman(bad)
    with pytest.raises(ValueError):
        int_to_words(0)
    assert roman_to_int("IIII") is None and roman_to_int("") is None
