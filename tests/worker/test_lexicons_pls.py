"""W3C PLS import and export (pure): real PLS 1.0 documents, refused unsafe ones."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.lexicons.model import InvalidPls, Rule
from worker.lexicons.pls import export_pls, parse_pls

# The example of the PLS 1.0 Recommendation, section 4.6 (alias and phoneme entries).
W3C_EXAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<lexicon version="1.0"
      xmlns="http://www.w3.org/2005/01/pronunciation-lexicon"
      xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
      xsi:schemaLocation="http://www.w3.org/2005/01/pronunciation-lexicon
        http://www.w3.org/TR/2007/CR-pronunciation-lexicon-20071212/pls.xsd"
      alphabet="ipa" xml:lang="en-GB">
  <!-- a comment is ignored -->
  <lexeme>
    <grapheme>Sepulveda</grapheme>
    <phoneme>səˈpʌlvɪdə</phoneme>
  </lexeme>
  <lexeme>
    <grapheme>W3C</grapheme>
    <alias>World Wide Web Consortium</alias>
  </lexeme>
  <lexeme>
    <grapheme>read</grapheme>
    <grapheme>Read</grapheme>
    <phoneme alphabet="x-sampa">ri:d</phoneme>
    <alias>reed</alias>
    <alias prefer="true">red</alias>
  </lexeme>
</lexicon>
""".encode()


def test_reads_the_w3c_example() -> None:
    doc = parse_pls(W3C_EXAMPLE)
    assert (doc.language, doc.alphabet) == ("en-GB", "ipa")
    by = {r.grapheme: r for r in doc.rules}
    assert set(by) == {"Sepulveda", "W3C", "read", "Read"}
    assert by["Sepulveda"].alias is None and by["Sepulveda"].phoneme == "səˈpʌlvɪdə"
    assert by["W3C"].alias == "World Wide Web Consortium"
    assert by["read"].alias == "red"  # prefer="true" wins over document order
    assert by["Read"].phoneme == "ri:d" and by["Read"].alphabet == "x-sampa"
    assert all(r.case_sensitive for r in doc.rules)
    # In any case, "read" and "Read" are one grapheme: the first is kept, as PLS does.
    loose = parse_pls(W3C_EXAMPLE, case_sensitive=False).rules
    assert [r.grapheme for r in loose] == ["Sepulveda", "W3C", "read"]
    assert not any(r.case_sensitive for r in loose)


def test_export_then_import_gives_the_same_rules() -> None:
    doc = parse_pls(W3C_EXAMPLE)
    again = parse_pls(export_pls(doc.rules, language=doc.language, alphabet=doc.alphabet))
    assert again == doc


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"<lexicon", "not well-formed"),
        (b"", "not well-formed"),
        (b"<lexicon version='1.0'/>", "not a PLS"),
        (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<lexicon xmlns="http://www.w3.org/2005/01/pronunciation-lexicon">'
            b"<lexeme><grapheme>&b;</grapheme><alias>x</alias></lexeme></lexicon>",
            "DOCTYPE",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE l SYSTEM "file:///etc/passwd">'
            b'<lexicon xmlns="http://www.w3.org/2005/01/pronunciation-lexicon"/>',
            "DOCTYPE",
        ),
        (
            b'<lexicon xmlns="http://www.w3.org/2005/01/pronunciation-lexicon">'
            b"<lexeme><alias>x</alias></lexeme></lexicon>",
            "no <grapheme>",
        ),
        (
            b'<lexicon xmlns="http://www.w3.org/2005/01/pronunciation-lexicon">'
            b"<lexeme><grapheme>x</grapheme></lexeme></lexicon>",
            "needs an alias",
        ),
    ],
)
def test_unreadable_documents_are_refused_saying_why(data: bytes, why: str) -> None:
    with pytest.raises(InvalidPls, match=why):
        parse_pls(data)


text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() != "")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(text, text),
        min_size=1,
        max_size=5,
        unique_by=lambda pair: " ".join(unicodedata.normalize("NFC", pair[0]).split()),
    )
)
def test_any_alias_rules_survive_a_round_trip(pairs: list[tuple[str, str]]) -> None:
    rules = [Rule(grapheme=g, alias=a.strip(), case_sensitive=True) for g, a in pairs]
    doc = parse_pls(export_pls(rules, language="en-US", alphabet="ipa"))
    assert doc.rules == rules
