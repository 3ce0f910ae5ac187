"""What the lexicon routes take and answer: ``LexiconIn`` in, ``LexiconOut`` out."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator, model_validator

from api.schemas import RequestModel, not_blank, optional_utf8
from worker.lexicons.model import ALPHABET_PATTERN, MAX_ALIAS_CHARS, MAX_GRAPHEME_CHARS, MAX_RULES
from worker.lexicons.pls import MAX_PLS_BYTES

#: A BCP 47 language tag, as PLS's ``xml:lang`` takes.
LANGUAGE_PATTERN = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,4}$"

# -- requests -------------------------------------------------------------------


class RuleIn(RequestModel):
    """One rule: ``grapheme`` (a word or words as written) is spoken as ``alias``."""

    grapheme: str = Field(min_length=1, max_length=MAX_GRAPHEME_CHARS)
    alias: str | None = Field(
        None, max_length=MAX_ALIAS_CHARS, description="how to write it so it is said right"
    )
    case_sensitive: bool = Field(False, description="match only the grapheme's own case")
    phoneme: str | None = Field(
        None,
        max_length=MAX_ALIAS_CHARS,
        description="a pronunciation in `alphabet`; kept and exported, but not applied: "
        "no provider shoal speaks to takes phonemes",
    )
    alphabet: str | None = Field(None, pattern=ALPHABET_PATTERN)

    @field_validator("grapheme", "alias", "phoneme")
    @classmethod
    def _unicode(cls, value: str | None) -> str | None:
        return optional_utf8(value)


class LexiconIn(RequestModel):
    """``POST`` and ``PUT /v1/lexicons``: a lexicon as ``rules``, or as a PLS document."""

    name: str = Field(min_length=1, max_length=128)
    language: str | None = Field(
        None, pattern=LANGUAGE_PATTERN, description="default: the PLS xml:lang, else en-US"
    )
    alphabet: str | None = Field(
        None, pattern=ALPHABET_PATTERN, description="of the phonemes; default: the PLS's, else ipa"
    )
    rules: list[RuleIn] | None = Field(None, max_length=MAX_RULES)
    pls: str | None = Field(
        None,
        max_length=MAX_PLS_BYTES,
        description="a W3C PLS 1.0 document (the XML text), instead of `rules`",
    )
    case_sensitive: bool = Field(
        True, description="whether the graphemes of `pls` match case-sensitively (as in PLS)"
    )

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return not_blank(value)

    @field_validator("pls")
    @classmethod
    def _unicode(cls, value: str | None) -> str | None:
        return optional_utf8(value)

    @model_validator(mode="after")
    def _one_source(self) -> LexiconIn:
        if (self.rules is None) == (self.pls is None):
            raise ValueError("give either rules or pls")
        return self


# -- responses ------------------------------------------------------------------


class RuleOut(BaseModel):
    grapheme: str
    alias: str | None
    case_sensitive: bool
    phoneme: str | None
    alphabet: str | None


class LexiconLinks(BaseModel):
    self: str
    export: str = Field(description="the lexicon as a PLS document")


class LexiconSummaryOut(BaseModel):
    """A lexicon without its rules, as listed."""

    id: str
    name: str
    version: int = Field(description="goes up by one on every replace; jobs record it")
    language: str
    alphabet: str
    rule_count: int
    not_applied: list[str] = Field(
        description="graphemes whose rule has only a phoneme, so changes no text"
    )
    created_at: datetime
    updated_at: datetime
    links: LexiconLinks


class LexiconOut(LexiconSummaryOut):
    """A lexicon with its rules."""

    rules: list[RuleOut]


class LexiconList(BaseModel):
    """Every lexicon of the tenant, oldest first."""

    data: list[LexiconSummaryOut]


class AppliedLexiconOut(BaseModel):
    """A lexicon as applied to a job's text."""

    id: str
    version: int
    replacements: int = Field(description="words of the text it replaced")
