"""Deterministic English-like texts for the benchmarks.

The same seed always gives the same text, so two runs (and the bare client and
the worker within one run) synthesise exactly the same characters.  Sentences
vary in length and end in ``.``, ``?`` or ``!``; paragraphs are separated by a
blank line, as the segmenter expects.
"""

from __future__ import annotations

import random

_VOCABULARY = (
    "the river ran past the old mill where the miller kept his accounts in a ledger "
    "bound with green cloth and every evening she walked along the bank counting boats "
    "that came down from the hills carrying timber wool salt and letters for the town "
    "nobody remembered when the bridge was built but everyone agreed it had always "
    "leaned a little toward the east as though listening for something far away "
    "children threw stones from it while their parents argued about the price of bread "
    "weather harvest taxes and whether the new schoolmaster would stay another winter"
)
_WORDS = tuple(_VOCABULARY.split())


def sentence(rng: random.Random, words: tuple[int, int] = (8, 22)) -> str:
    """One sentence of ``words`` (min, max) words, capitalised and punctuated."""
    n = rng.randint(*words)
    text = " ".join(rng.choice(_WORDS) for _ in range(n))
    if n > 10:
        cut = rng.randint(4, n - 4)
        parts = text.split(" ")
        parts[cut] += ","
        text = " ".join(parts)
    return text[0].upper() + text[1:] + rng.choice(".....?!")


def paragraphs(chars: int, seed: int = 1, sentences_per_paragraph: tuple[int, int] = (3, 7)) -> str:
    """About ``chars`` characters of prose in paragraphs (never less than one sentence)."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        para = " ".join(sentence(rng) for _ in range(rng.randint(*sentences_per_paragraph)))
        out.append(para)
        size += len(para) + 2
    return "\n\n".join(out)


def short_sentences(count: int, seed: int = 2) -> list[str]:
    """``count`` distinct one-sentence texts (a short narration job each)."""
    rng = random.Random(seed)
    return [f"Item {i}: {sentence(rng, (8, 14))}" for i in range(count)]


def book(segments: int, max_chars: int, seed: int = 3) -> str:
    """A text of exactly ``segments`` paragraphs, each 80-100 % of ``max_chars`` long.

    Each paragraph and the blank line after it fit in one segment, so
    ``segment_text(text, max_chars)`` cuts it into ``segments`` segments of
    similar length.
    """
    rng = random.Random(seed)
    max_chars -= 2  # the "\n\n" after a paragraph stays with its segment
    out: list[str] = []
    while len(out) < segments:
        para = ""
        while True:
            candidate = f"{para} {sentence(rng)}".strip()
            if len(candidate) > max_chars:
                break
            para = candidate
        if len(para) >= 0.8 * max_chars:
            out.append(para)
    return "\n\n".join(out)
