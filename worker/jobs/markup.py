"""Markup in a job's text: pauses and voices, as SSML writes them (pure).

A text is read as *runs*: stretches of text to speak, each in a voice, with
breaks (silence of an exact length) and voice switches between them.  Tags are
never sent to the provider, nor billed; the segmenter cuts at every tag and
the assembler writes the silence of a break there.

The tags understood::

    <break time="1.5s"/>     seconds, up to three decimals
    <break time='500ms'/>    milliseconds, whole
    <break  time = "2s" />   spaces around the attribute and before "/>"
    <voice name="voice_ab12">…</voice>
                             the passage inside is spoken in the tenant's voice
                             ``voice_ab12`` (``/v1/voices``); outside, in the job's

A break lasts from 0 up to :data:`MAX_BREAK_MS` (10 s); breaks in a row add up.
Voice passages hold text and breaks, not other voice passages, and are closed.
Anything else that starts with ``<break``, ``<voice`` or ``</voice`` (any case)
is a malformed tag, an error naming its character offset in the text (0-based,
in characters), so a typo is never read aloud.  Any other ``<`` is ordinary text.

Errors::

    MarkupError   a malformed tag; ``position`` is where its "<" is
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
    "Switch",
    "escape_tags",
    "job_segments",
    "parse_markup",
    "passage_voices",
    "segment_with_breaks",
    "spoken_text",
]

#: The longest one break tag may ask for, like ``paragraph_silence_ms``.
MAX_BREAK_MS = 10_000

# Anything that claims to be one of our tags: the name not followed by a word character.
_OPENING = re.compile(r"<(?P<name>break|voice|/voice)(?![\w-])", re.IGNORECASE)
_TAG = re.compile(
    r"<break\s+time\s*=\s*(?P<q>[\"'])(?P<value>[^\"'<>]*)(?P=q)\s*/>",
)
_VALUE = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<unit>s|ms)")
_VOICE_OPEN = re.compile(r"<voice\s+name\s*=\s*(?P<q>[\"'])(?P<name>[^\"'<>]*)(?P=q)\s*>")
_VOICE_CLOSE = re.compile(r"</voice\s*>")
#: What a voice id may look like (ids of ``/v1/voices`` are far shorter).
_VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


class MarkupError(ValueError):
    """A malformed tag at ``position`` (a character offset in the text)."""

    def __init__(self, position: int, reason: str, kind: str = "break") -> None:
        self.position = position
        self.reason = reason
        super().__init__(f"malformed {kind} tag at character {position}: {reason}")


@dataclass(frozen=True, slots=True)
class Run:
    """Text to speak: ``source[start:start + len(text)] == text``, in ``voice``
    (None: the job's own voice)."""

    text: str
    start: int  # character offset in the text as given
    voice: str | None = None


@dataclass(frozen=True, slots=True)
class Break:
    """Silence of ``ms`` milliseconds, from the tag at ``start`` (``length`` characters)."""

    ms: int
    start: int
    length: int


@dataclass(frozen=True, slots=True)
class Switch:
    """A voice tag at ``start`` (``length`` characters): the runs after it are in
    ``voice`` (an opening tag), or in the job's own voice again (None, a closing tag)."""

    voice: str | None
    start: int
    length: int


def parse_markup(text: str) -> list[Run | Break | Switch]:
    """``text`` as runs, breaks and voice switches, in order; :class:`MarkupError`
    for a malformed tag.

    Empty runs are left out, so a text without tags is one run (or none if
    empty) and ``"".join`` of the runs gives the text without its tags.
    """
    out: list[Run | Break | Switch] = []
    pos = 0
    voice: Switch | None = None  # the open voice passage
    for opening in _OPENING.finditer(text):
        start = opening.start()
        if start < pos:  # inside a tag already read (cannot happen: "<" ends a value)
            continue
        if start > pos:
            out.append(Run(text[pos:start], pos, voice.voice if voice else None))
        tag = _read_tag(text, start, opening.group("name").lower(), voice)
        if isinstance(tag, Switch):
            voice = tag if tag.voice is not None else None
        out.append(tag)
        pos = start + tag.length
    if voice is not None:
        raise MarkupError(voice.start, "the passage is never closed with </voice>", "voice")
    if pos < len(text):
        out.append(Run(text[pos:], pos))
    return out


def _read_tag(text: str, start: int, name: str, voice: Switch | None) -> Break | Switch:
    """The tag at ``start``, named ``name``, read inside the passage ``voice``."""
    if name == "break":
        tag = _TAG.match(text, start)
        if tag is None:
            raise MarkupError(start, _what_is_wrong(text, start))
        return Break(_milliseconds(tag.group("value"), start), start, tag.end() - start)
    if name == "/voice":
        close = _VOICE_CLOSE.match(text, start)
        if close is None:
            raise MarkupError(start, f"{_snippet(text, start)!r} is not </voice>", "voice")
        if voice is None:
            raise MarkupError(start, "</voice> closes no voice passage", "voice")
        return Switch(None, start, close.end() - start)
    opened = _VOICE_OPEN.match(text, start)
    if opened is None:
        why = f'{_snippet(text, start)!r} is not <voice name="…"> (one name attribute, quoted)'
        raise MarkupError(start, why, "voice")
    if voice is not None:
        why = f"voice passages do not nest: close the one at character {voice.start} first"
        raise MarkupError(start, why, "voice")
    if _VOICE_NAME.fullmatch(opened.group("name")) is None:
        why = f'name="{opened.group("name")}" is not a voice id (letters, digits, "_.:-")'
        raise MarkupError(start, why, "voice")
    return Switch(opened.group("name"), start, opened.end() - start)


def escape_tags(text: str) -> str:
    """``text`` with anything that would read as one of our tags made plain text
    (its "<" becomes "‹"): for text that is not the user's markup, a book's."""
    return _OPENING.sub(lambda m: "\u2039" + m.group(0)[1:], text)


def passage_voices(text: str) -> dict[str, int]:
    """The voices ``text``'s ``<voice>`` tags name, in order of first use, each with
    the character offset of the first tag that names it.

    Raises :class:`MarkupError` for a malformed tag.
    """
    named: dict[str, int] = {}
    for part in parse_markup(text):
        if isinstance(part, Switch) and part.voice is not None:
            named.setdefault(part.voice, part.start)
    return named


def spoken_text(text: str) -> str:
    """``text`` without its tags: what is sent to the provider and billed.

    A text whose tags are malformed is returned unchanged (it is refused at
    submission, so this only happens to a record that was never checked).
    """
    try:
        runs = parse_markup(text)
    except MarkupError:
        return text
    return "".join(r.text for r in runs if isinstance(r, Run))


def segment_with_breaks(text: str, max_chars: int) -> list[Segment]:
    """:func:`~worker.jobs.text.segment_text` for each run; every tag ends a segment.

    A segment followed by breaks carries their total in ``break_ms``, and each
    segment the voice of its run.  Breaks before any text hang on a zero-text
    segment at index 0 (synthesised as no audio).  A text without tags gives
    exactly what ``segment_text`` gives, so the checkpoints of jobs recorded
    before tags existed stay valid.  Raises :class:`MarkupError` for a malformed tag.
    """
    parts = parse_markup(text)
    if all(isinstance(p, Run) and p.voice is None for p in parts):
        return segment_text(text, max_chars)
    spans: list[Segment] = []
    for n, part in enumerate(parts):
        if isinstance(part, Switch):
            continue
        if isinstance(part, Break):
            if not spans:
                spans.append(Segment(0, "", part.start, False))
            last = spans[-1]
            spans[-1] = _replace(last, break_ms=last.break_ms + part.ms)
            continue
        for seg in segment_text(part.text, max_chars):
            spans.append(
                Segment(0, seg.text, part.start + seg.start, seg.paragraph_end, 0, part.voice)
            )
        # segment_text ends its text with a paragraph; a run ends one only at a blank line.
        spans[-1] = _replace(spans[-1], paragraph_end=_ends_paragraph(part.text, parts[n + 1 :]))
    return [_replace(seg, index=i) for i, seg in enumerate(spans)]


def _replace(seg: Segment, **changes: object) -> Segment:
    fields = {
        "index": seg.index,
        "text": seg.text,
        "start": seg.start,
        "paragraph_end": seg.paragraph_end,
        "break_ms": seg.break_ms,
        "voice": seg.voice,
    }
    return Segment(**(fields | changes))  # type: ignore[arg-type]


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


def _ends_paragraph(run: str, rest: list[Run | Break | Switch]) -> bool:
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


def _snippet(text: str, start: int) -> str:
    """The tag at ``start`` as written, up to its ">" (or 40 characters of it)."""
    end = text.find(">", start)
    return text[start : end + 1] if end != -1 and end - start < 80 else text[start : start + 40]


def _what_is_wrong(text: str, start: int) -> str:
    """Why the tag at ``start`` is not a break tag, as plainly as can be said."""
    end = text.find(">", start)
    snippet = _snippet(text, start)
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
