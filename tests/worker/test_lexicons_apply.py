"""Applying lexicons to a text: whole words, longest first, no re-substitution (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.lexicons.apply import apply_lexicons
from worker.lexicons.model import InvalidRule, Lexicon, Rule, check_rules


def lex(*rules: Rule, id: str = "lex_a", version: int = 1) -> Lexicon:
    return Lexicon(id=id, tenant="t", name=id, version=version, rules=list(rules))


def test_whole_words_only() -> None:
    out = apply_lexicons(
        "Tom ate a tomato with Tom's atom.", [lex(Rule(grapheme="Tom", alias="Thom"))]
    )
    assert out.text == "Thom ate a tomato with Thom's atom."
    assert out.applied[0].replacements == 2


def test_case_insensitive_by_default_and_sensitive_when_asked() -> None:
    rules = lex(
        Rule(grapheme="sql", alias="sequel"),
        Rule(grapheme="US", alias="United States", case_sensitive=True),
    )
    out = apply_lexicons("SQL and sql; US and us", [rules])
    assert out.text == "sequel and sequel; United States and us"


def test_longest_match_first_and_fallback_to_shorter() -> None:
    rules = lex(Rule(grapheme="New", alias="Nu"), Rule(grapheme="New York", alias="Noo Yawk"))
    out = apply_lexicons("New York, New Yorker, New\nYork.", [rules])
    assert out.text == "Noo Yawk, Nu Yorker, Noo Yawk."


def test_no_substitution_inside_an_alias() -> None:
    rules = lex(
        Rule(grapheme="NASA", alias="NASA, the agency"),
        Rule(grapheme="agency", alias="AGENCY"),
    )
    out = apply_lexicons("NASA's agency", [rules])
    assert out.text == "NASA, the agency's AGENCY"
    assert out.replacements == 2


def test_earlier_lexicon_wins_and_each_counts_its_own() -> None:
    first = lex(Rule(grapheme="Hermione", alias="Her-my-oh-nee"), id="lex_1", version=3)
    second = lex(
        Rule(grapheme="Hermione", alias="wrong"),
        Rule(grapheme="Voldemort", alias="Vol-de-mor"),
        id="lex_2",
    )
    out = apply_lexicons("Hermione fought Voldemort.", [first, second])
    assert out.text == "Her-my-oh-nee fought Vol-de-mor."
    assert [(a.id, a.version, a.replacements) for a in out.applied] == [
        ("lex_1", 3, 1),
        ("lex_2", 1, 1),
    ]


def test_unicode_word_boundaries() -> None:
    rules = lex(Rule(grapheme="Zoë", alias="Zo-ee"), Rule(grapheme="Москва", alias="Moskva"))
    # A letter of another script, or a combining mark, continues the word.
    out = apply_lexicons("Zoë, Zoëlle, Москва, Москвам, Zoë\u0301", [rules])
    assert out.text == "Zo-ee, Zoëlle, Moskva, Москвам, Zoë\u0301"


def test_graphemes_with_punctuation() -> None:
    rules = lex(Rule(grapheme="Dr.", alias="Doctor"), Rule(grapheme="C++", alias="C plus plus"))
    assert apply_lexicons("Dr. Who writes C++.", [rules]).text == "Doctor Who writes C plus plus."


def test_phoneme_only_rules_change_nothing() -> None:
    rules = lex(Rule(grapheme="tomato", phoneme="təˈmeɪtoʊ"))
    assert rules.not_applied == ["tomato"]
    out = apply_lexicons("a tomato", [rules])
    assert out.text == "a tomato" and out.replacements == 0


def test_duplicate_graphemes_are_refused() -> None:
    with pytest.raises(InvalidRule) as err:
        check_rules([Rule(grapheme="Tom", alias="a"), Rule(grapheme="tom", alias="b")])
    assert err.value.field == "rules.1.grapheme"
    # One case-sensitive and one not may stand together: the sensitive one wins its case.
    both = [Rule(grapheme="Tom", alias="a", case_sensitive=True), Rule(grapheme="tom", alias="b")]
    assert apply_lexicons("Tom tom TOM", [lex(*check_rules(both))]).text == "a b b"


def test_blank_grapheme_or_empty_rule_is_refused() -> None:
    with pytest.raises(ValueError):
        Rule(grapheme="  ", alias="x")
    with pytest.raises(ValueError):
        Rule(grapheme="x")


words = st.text(alphabet="abcdéЖ", min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(words, st.sampled_from([" ", ", ", "\n", ". "])), max_size=30))
def test_no_rules_is_identity_and_absent_words_are_untouched(parts: list[str]) -> None:
    text = "".join(parts)
    assert apply_lexicons(text, []).text == text
    rules = lex(Rule(grapheme="qqq", alias="zzz"))
    assert apply_lexicons(text, [rules]).text == text


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(words, st.just("xylo")), max_size=20))
def test_every_whole_word_is_replaced_once(tokens: list[str]) -> None:
    text = " ".join(tokens)
    out = apply_lexicons(text, [lex(Rule(grapheme="xylo", alias="xylo xylo"))])
    assert out.text == " ".join("xylo xylo" if t == "xylo" else t for t in tokens)
    assert out.replacements == tokens.count("xylo")
