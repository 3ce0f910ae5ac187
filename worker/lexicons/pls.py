"""W3C Pronunciation Lexicon Specification (PLS 1.0) in and out: pure, bytes ↔ rules.

Reading: each ``<lexeme>`` gives one :class:`~worker.lexicons.model.Rule` per
``<grapheme>``, with the lexeme's first ``<alias>`` (or the one marked
``prefer="true"``) and its first ``<phoneme>``; a grapheme given again later
is left out, as PLS processors take the first.  Aliases are applied;
phonemes are kept and written out again, but no provider shoal speaks to
takes them, so a lexeme with only phonemes changes nothing (the API reports
it).  PLS has no case flag: the caller says whether imported rules are case
sensitive (Polly and Azure match PLS graphemes case-sensitively).

The document is parsed with no DTD, no entity expansion and no network: a
``<!DOCTYPE>`` is refused outright, so entity bombs and external entities
never reach the parser's expansion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.etree as etree
from pydantic import ValidationError

from worker.lexicons.model import ALPHABET_PATTERN, InvalidPls, Rule, first_rules

NS = "http://www.w3.org/2005/01/pronunciation-lexicon"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: Largest PLS document read, in bytes.
MAX_PLS_BYTES = 2 << 20


@dataclass(frozen=True, slots=True)
class PlsDocument:
    """What a PLS file says: its language, phonetic alphabet and rules."""

    language: str
    alphabet: str
    rules: list[Rule]


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _text(el: etree._Element) -> str:
    return "".join(el.itertext()).strip()


def _tag(name: str) -> str:
    return f"{{{NS}}}{name}"


def _pick_alias(lexeme: etree._Element) -> str | None:
    aliases = lexeme.findall(_tag("alias"))
    preferred = [a for a in aliases if a.get("prefer") == "true"]
    chosen = (preferred or aliases)[:1]
    return _text(chosen[0]) if chosen else None


def parse_pls(data: bytes, *, case_sensitive: bool = True) -> PlsDocument:
    """The rules of a PLS document; :class:`InvalidPls` saying why one cannot be read."""
    if len(data) > MAX_PLS_BYTES:
        raise InvalidPls(f"{len(data)} bytes is over the limit of {MAX_PLS_BYTES}")
    try:
        root = etree.fromstring(data, _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise InvalidPls(f"not well-formed XML ({exc})") from exc
    if root.getroottree().docinfo.doctype:
        raise InvalidPls("a DOCTYPE is not allowed in a PLS document")
    if root.tag != _tag("lexicon"):
        raise InvalidPls(f"the root element is {root.tag!r}, not a PLS <lexicon> in {NS}")
    alphabet = root.get("alphabet") or "ipa"
    if not re.fullmatch(ALPHABET_PATTERN, alphabet):
        raise InvalidPls(f"alphabet {alphabet[:40]!r} is not an alphabet's name")
    rules: list[Rule] = []
    for n, lexeme in enumerate(root.iter(_tag("lexeme")), start=1):
        graphemes = [_text(g) for g in lexeme.findall(_tag("grapheme"))]
        if not graphemes:
            raise InvalidPls(f"lexeme {n}: has no <grapheme>")
        phonemes = lexeme.findall(_tag("phoneme"))
        phoneme = _text(phonemes[0]) if phonemes else None
        own_alphabet = phonemes[0].get("alphabet") if phonemes else None
        alias = _pick_alias(lexeme)
        for grapheme in graphemes:
            try:
                rules.append(
                    Rule(
                        grapheme=grapheme,
                        alias=alias or None,
                        phoneme=phoneme or None,
                        alphabet=own_alphabet if own_alphabet != alphabet else None,
                        case_sensitive=case_sensitive,
                    )
                )
            except ValidationError as exc:
                problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
                raise InvalidPls(f"lexeme {n} ({grapheme!r}): {problem}") from exc
    language = root.get(XML_LANG) or "en-US"
    return PlsDocument(language=language, alphabet=alphabet, rules=first_rules(rules))


def export_pls(rules: list[Rule], *, language: str, alphabet: str) -> bytes:
    """``rules`` as a PLS 1.0 document (UTF-8), one lexeme per rule.

    The case flag has no place in PLS and is not written.
    """
    root = etree.Element(
        _tag("lexicon"), nsmap={None: NS}, attrib={"version": "1.0", "alphabet": alphabet}
    )
    root.set(XML_LANG, language)
    for rule in rules:
        lexeme = etree.SubElement(root, _tag("lexeme"))
        etree.SubElement(lexeme, _tag("grapheme")).text = rule.grapheme
        if rule.phoneme is not None:
            phoneme = etree.SubElement(lexeme, _tag("phoneme"))
            phoneme.text = rule.phoneme
            if rule.alphabet:
                phoneme.set("alphabet", rule.alphabet)
        if rule.alias is not None:
            etree.SubElement(lexeme, _tag("alias")).text = rule.alias
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return body
