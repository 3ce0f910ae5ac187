"""A pronunciation lexicon as small typed values.

A :class:`Lexicon` is a tenant's named, versioned list of :class:`Rule`: each
maps a *grapheme* (a word or a few words as written) to an *alias* (how to
write it so it is said right).  A rule may also carry a *phoneme* string from
a PLS file; no provider shoal speaks to takes phonemes, so such a rule is kept
(and exported again) but only its alias is applied.

Errors::

    LexiconError            the root
    ├── InvalidRule         a rule or a set of rules that cannot be used
    └── InvalidPls          a PLS document that cannot be read
"""

from __future__ import annotations

import re
import time
import unicodedata
import uuid

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Most lexicons a job, batch or book may name (as Amazon Polly allows).
MAX_LEXICONS_PER_JOB = 5
#: Most rules in one lexicon.
MAX_RULES = 5000
#: Longest grapheme, alias or phoneme, in characters.
MAX_GRAPHEME_CHARS = 200
MAX_ALIAS_CHARS = 500
#: Pattern of a lexicon id (``lex_`` and hex); the API checks ids against it.
LEXICON_ID_PATTERN = r"^lex_[0-9a-f]{12,40}$"
#: Pattern of a phonetic alphabet's name (``ipa``, ``x-sampa``, ``x-microsoft-ups``).
ALPHABET_PATTERN = r"^[A-Za-z0-9_.:+-]{1,32}$"
#: Characters XML 1.0 cannot hold (so a PLS file could not either).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    """``value`` if XML can hold it: no control characters but tab and line ends."""
    if _NOT_XML.search(value):
        raise ValueError("must not contain control characters")
    return value


class LexiconError(Exception):
    """Root of the lexicon errors."""


class InvalidRule(LexiconError):
    """A rule (or rules) that cannot be used; ``field`` names it when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidPls(LexiconError):
    """A PLS document that is not well-formed, not PLS, or unsafe to read."""


class Rule(BaseModel):
    """One grapheme → alias mapping, matched as a whole word."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    grapheme: str = Field(min_length=1, max_length=MAX_GRAPHEME_CHARS)
    alias: str | None = Field(None, max_length=MAX_ALIAS_CHARS)
    case_sensitive: bool = False
    phoneme: str | None = Field(None, max_length=MAX_ALIAS_CHARS)  # kept from PLS, not applied
    alphabet: str | None = Field(None, pattern=ALPHABET_PATTERN)  # if not the lexicon's

    @field_validator("alias", "phoneme")
    @classmethod
    def _xml(cls, value: str | None) -> str | None:
        return None if value is None else xml_text(value)

    @field_validator("grapheme")
    @classmethod
    def _grapheme(cls, value: str) -> str:
        xml_text(value)
        # NFC so a grapheme typed precomposed matches a text in NFC (nearly every text).
        value = " ".join(unicodedata.normalize("NFC", value).split())
        if not value:
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _says_something(self) -> Rule:
        if self.alias is None and self.phoneme is None:
            raise ValueError("a rule needs an alias (or, from PLS, a phoneme)")
        return self

    @property
    def applied(self) -> bool:
        """Whether the rule changes a text: only aliases are applied."""
        return self.alias is not None


class Lexicon(BaseModel):
    """A tenant's lexicon as stored; ``version`` goes up by one on every replace."""

    model_config = ConfigDict(frozen=True)

    id: str
    tenant: str
    name: str
    version: int = 1
    language: str = "en-US"  # PLS xml:lang
    alphabet: str = Field("ipa", pattern=ALPHABET_PATTERN)  # PLS alphabet of the phonemes
    rules: list[Rule] = Field(default_factory=list)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    @property
    def not_applied(self) -> list[str]:
        """Graphemes of the rules that have only a phoneme, so change nothing."""
        return [r.grapheme for r in self.rules if not r.applied]


class AppliedLexicon(BaseModel):
    """A lexicon as applied to one text: which version, and how many words it changed."""

    model_config = ConfigDict(frozen=True)

    id: str
    version: int
    replacements: int = 0


def new_lexicon_id() -> str:
    """A lexicon id: unguessable, and matching :data:`LEXICON_ID_PATTERN`."""
    return f"lex_{uuid.uuid4().hex[:20]}"


def _match_key(rule: Rule) -> tuple[str, bool]:
    """What two rules share when they would match the same words the same way."""
    text = rule.grapheme if rule.case_sensitive else rule.grapheme.casefold()
    return (text, rule.case_sensitive)


def first_rules(rules: list[Rule]) -> list[Rule]:
    """``rules`` less any whose grapheme an earlier one already has (PLS's way: where a
    document gives a grapheme twice, a processor takes the first)."""
    seen: set[tuple[str, bool]] = set()
    kept = []
    for rule in rules:
        if _match_key(rule) not in seen:
            seen.add(_match_key(rule))
            kept.append(rule)
    return kept


def check_rules(rules: list[Rule]) -> list[Rule]:
    """``rules`` if usable together: at most :data:`MAX_RULES`, no grapheme twice.

    Two rules for one grapheme (compared as they would match) would make the
    result depend on their order; the second is refused, naming it.
    """
    if len(rules) > MAX_RULES:
        raise InvalidRule(f"rules: {len(rules)} is over the limit of {MAX_RULES}", "rules")
    seen: dict[tuple[str, bool], int] = {}
    for i, rule in enumerate(rules):
        key = _match_key(rule)
        if key in seen:
            raise InvalidRule(
                f"rules.{i}: grapheme {rule.grapheme!r} is already rule {seen[key]}",
                f"rules.{i}.grapheme",
            )
        seen[key] = i
    return rules
