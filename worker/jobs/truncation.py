"""Nothing silently missing: audio far shorter than its text should take is refused.

A provider can end a session normally (``finish``/``stop``) yet have sent only
part of the audio.  Speech runs at roughly 15 characters a second at speed
1.0, however the voice — :data:`SPOKEN_PER_SECOND` letters and digits, which
is what is counted, so a line of asterisks or a rule of dashes (which a
voice may rightly skip) expects nothing; a result below :data:`FLOOR` of that
is not a fast voice but missing audio.  Scripts spoken more slowly per
character (Chinese, Japanese) only make the check more lenient.  :func:`check_duration` raises
:class:`AudioTruncated`, a *transient* provider error: the segment is
synthesised again, and if it keeps coming back short the job fails with the
message saying so — it is never shipped as done.

Texts shorter than :data:`MIN_EXPECTED_SECONDS` of speech are not judged: for
a few words the spread between voices (and what normalisation does with
numbers and symbols) is larger than any useful threshold.
"""

from __future__ import annotations

from worker.fish.errors import TransientProviderError

#: Letters and digits per second of speech at speed 1.0 (about 15 characters with spaces).
SPOKEN_PER_SECOND = 12.5
#: The least share of the expected duration a result may have.
FLOOR = 0.35
#: Texts expected to take less than this are not checked.
MIN_EXPECTED_SECONDS = 2.0


class AudioTruncated(TransientProviderError):
    """The provider ended normally but sent far less audio than the text needs."""


def spoken_chars(text: str) -> int:
    """The letters and digits of ``text``: what a voice has to say."""
    return sum(c.isalnum() for c in text)


def expected_seconds(text: str, speed: float = 1.0) -> float:
    """Roughly how long ``text`` takes to say at ``speed``."""
    if speed <= 0:
        raise ValueError(f"speed must be positive, not {speed}")
    return spoken_chars(text) / SPOKEN_PER_SECOND / speed


def check_duration(
    duration_s: float,
    text: str,
    speed: float = 1.0,
    *,
    what: str = "the audio",
    floor: float = FLOOR,
) -> None:
    """Raise :class:`AudioTruncated` if ``duration_s`` is far below what ``text`` needs.

    ``what`` names the audio in the message (e.g. ``"segment 3"``).
    """
    expected = expected_seconds(text, speed)
    if expected < MIN_EXPECTED_SECONDS:
        return
    if duration_s < floor * expected:
        raise AudioTruncated(
            f"{what} is {duration_s:.2f} s long for {len(text)} characters "
            f"(at least {floor * expected:.2f} s expected, about {expected:.1f} s); "
            "the provider's audio was cut short"
        )
