"""Pauses in a job's text: ``<break time="1.5s"/>`` as SSML and ElevenLabs write it (pure).

A text is read as *runs*: stretches of text to speak, and breaks (silence of
an exact length) between them.  A break tag is never sent to the provider,
nor billed; the segmenter cuts at every break and the assembler writes the
silence there.

The one tag understood::

    <break time="1.5s"/>     seconds, up to three decimals
    <break time='500ms'/>    milliseconds, whole
    <break  time = "2s" />   spaces around the attribute and before "/>"

A break lasts from 0 up to :data:`MAX_BREAK_MS` (10 s); breaks in a row add up.
Anything else that starts with ``<break`` (any case) is a malformed tag, an
error naming its character offset in the text (0-based, in characters), so a
typo is never read aloud.  Any other ``<`` is ordinary text.

Errors::

    MarkupError   a malformed break tag; ``position`` is where its "<" is
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from worker.jobs.text import Segment, segment_text

__all__ = [
    "MAX_BREAK_MS",
    "Break",
    "MarkupError",
    "Run",
    "job_segments",
    "parse_markup",
    "segment_with_breaks",
    "spoken_text",
]

#: The longest one break tag may ask for, like ``paragraph_silence_ms``.
MAX_BREAK_MS = 10_000

# Anything that claims to be a break tag: "<break" not followed by a word character.
_OPENING = re.compile(r"<break(?![\w-])", re.IGNORECASE)
_TAG = re.compile(
    r"<break\s+time\s*=\s*(?P<q>[\"'])(?P<value>[^\"'<>]*)(?P=q)\s*/>",
)
_VALUE = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<unit>s|ms)")


class MarkupError(ValueError):
    """A malformed break tag at ``position`` (a character offset in the text)."""

    def __init__(self, position: int, reason: str) -> None:
        self.position = position
        self.reason = reason
        super().__init__(f"malformed break tag at character {position}: {reason}")


@dataclass(frozen=True, slots=True)
class Run:
    """Text to speak: ``source[start:start + len(text)] == text``."""

    text: str
    start: int  # character offset in the text as given


@dataclass(frozen=True, slots=True)
class Break:
    """Silence of ``ms`` milliseconds, from the tag at ``start`` (``length`` characters)."""

    ms: int
    start: int
    length: int


def parse_markup(text: str) -> list[Run | Break]:
    """``text`` as runs and breaks, in order; :class:`MarkupError` for a malformed tag.

    Empty runs are left out, so a text without tags is one run (or none if
    empty) and ``"".join`` of the runs gives the text without its tags.
    """
    out: list[Run | Break] = []
    pos = 0
    for opening in _OPENING.finditer(text):
        start = opening.start()
        if start < pos:  # inside a tag already read (cannot happen: "<" ends a value)
            continue
        tag = _TAG.match(text, start)
        if tag is None:
            raise MarkupError(start, _what_is_wrong(text, start))
        if start > pos:
            out.append(Run(text[pos:start], pos))
        out.append(Break(_milliseconds(tag.group("value"), start), start, tag.end() - start))
        pos = tag.end()
    if pos < len(text):
        out.append(Run(text[pos:], pos))
    return out


def spoken_text(text: str) -> str:
    """``text`` without its break tags: what is sent to the provider and billed.

    A text whose tags are malformed is returned unchanged (it is refused at
    submission, so this only happens to a record that was never checked).
    """
    try:
        runs = parse_markup(text)
    except MarkupError:
        return text
    return "".join(r.text for r in runs if isinstance(r, Run))


def segment_with_breaks(text: str, max_chars: int) -> list[Segment]:
    """:func:`~worker.jobs.text.segment_text` for each run; a break ends a segment.

    A segment followed by breaks carries their total in ``break_ms``.  Breaks
    before any text hang on a zero-text segment at index 0 (synthesised as no
    audio).  A text without tags gives exactly what ``segment_text`` gives,
    so the checkpoints of jobs recorded before breaks existed stay valid.
    Raises :class:`MarkupError` for a malformed tag.
    """
    parts = parse_markup(text)
    if all(isinstance(p, Run) for p in parts):
        return segment_text(text, max_chars)
    spans: list[tuple[str, int, bool, int]] = []  # text, start, paragraph_end, break_ms
    for n, part in enumerate(parts):
        if isinstance(part, Break):
            if not spans:
                spans.append(("", part.start, False, 0))
            body, start, pend, pause = spans[-1]
            spans[-1] = (body, start, pend, pause + part.ms)
            continue
        for seg in segment_text(part.text, max_chars):
            spans.append((seg.text, part.start + seg.start, seg.paragraph_end, 0))
        # segment_text ends its text with a paragraph; a run ends one only at a blank line.
        body, start, _, pause = spans[-1]
        spans[-1] = (body, start, _ends_paragraph(part.text, parts[n + 1 :]), pause)
    return [
        Segment(index=i, text=body, start=start, paragraph_end=pend, break_ms=pause)
        for i, (body, start, pend, pause) in enumerate(spans)
    ]


def job_segments(text: str, max_chars: int) -> list[Segment]:
    """A job's segments: :func:`segment_with_breaks`, or for a text whose tags are
    malformed, :func:`~worker.jobs.text.segment_text` of it all.

    Submission refuses malformed tags, so only a job queued before breaks were
    understood gets here with one; it is spoken as it always was.
    """
    try:
        return segment_with_breaks(text, max_chars)
    except MarkupError:
        return segment_text(text, max_chars)


_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def _ends_paragraph(run: str, rest: list[Run | Break]) -> bool:
    """Whether ``run`` ends a paragraph: it is the last text, or a blank line
    (whitespace with two line breaks, tags aside) follows its last word."""
    gap = run[len(run.rstrip()) :]
    for part in rest:
        if isinstance(part, Run):
            if part.text.strip():
                gap += part.text[: len(part.text) - len(part.text.lstrip())]
                return len(_LINE_BREAK.findall(gap)) >= 2 or "\u2029" in gap
            gap += part.text
    return True


def _milliseconds(value: str, position: int) -> int:
    """A tag's ``time`` in whole milliseconds, checked against :data:`MAX_BREAK_MS`."""
    match = _VALUE.fullmatch(value.strip())
    if match is None and value.strip().startswith("-"):
        raise MarkupError(position, f'time="{value}" is negative: a pause cannot be')
    if match is None:
        raise MarkupError(
            position, f'time="{value}" is not a number of seconds or milliseconds ("1.5s", "500ms")'
        )
    number = Decimal(match.group("number"))
    ms = number * 1000 if match.group("unit") == "s" else number
    if ms != ms.to_integral_value():
        raise MarkupError(position, f'time="{value}" is not a whole number of milliseconds')
    if ms > MAX_BREAK_MS:
        raise MarkupError(position, f'time="{value}" is over the limit of {MAX_BREAK_MS // 1000}s')
    return int(ms)


def _what_is_wrong(text: str, start: int) -> str:
    """Why the tag at ``start`` is not a break tag, as plainly as can be said."""
    end = text.find(">", start)
    snippet = text[start : end + 1] if end != -1 and end - start < 80 else text[start : start + 40]
    if end == -1:
        return f"{snippet!r} is not closed with '/>'"
    if not re.search(r"\btime\s*=", snippet):
        return f'{snippet!r} has no time (write <break time="1.5s"/>)'
    value = re.search(r"time\s*=\s*([\"'])([^\"']*)\1", snippet)
    if value is not None and _VALUE.fullmatch(value.group(2).strip()) is None:
        _milliseconds(value.group(2), start)  # raises, saying what is wrong with the value
    if not snippet.endswith("/>"):
        return f"{snippet!r} must close itself with '/>'"
    return f'{snippet!r} is not <break time="…"/> (one time attribute, quoted)'
