"""Where everything sits in an audiobook: chapters, silences and chapter markers.

Timeline, in samples at the output rate (every duration is a whole number of
them, so markers and the manifest agree exactly)::

    | head | chapter 1 | gap | chapter 2 | gap | … | chapter n | tail |

* ``head``, ``gap`` and ``tail`` are ``head_silence_ms``,
  ``chapter_silence_ms`` and ``tail_silence_ms`` of digital silence.  With
  loudness normalisation, head and tail are at least the target's room tone,
  and room tone (noise at ``room_tone_db``, −70 dBFS) runs under the whole
  book, so the silences and the chapters' own pauses share one steady noise
  floor instead of the digital silence ACX rejects.
* Chapter *i*'s audio starts at ``head + Σ_{j<i} (d_j + gap)`` where ``d_j``
  is chapter *j*'s audio duration (its pieces joined as
  :func:`~worker.audio.assemble.assemble` joins them, resampled to the output
  rate): ``audio_start_s``.
* Chapter *i*'s marker starts where its audio starts (``start_s``), so a
  player's "next chapter" lands on the first word; the gap before it belongs to
  the chapter before.  The first marker starts at 0 and covers the head:
  MP4 chapter tracks cannot leave a gap before the first chapter (FFmpeg and
  Apple read it from 0 whatever is written), so the same rule holds for MP3.
  Each marker ends where the next starts, the last at the end of the file.
* The total is ``head + Σ d_i + (n − 1)·gap + tail``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.audio.book_output import Marker


@dataclass(frozen=True, slots=True)
class Layout:
    """Where everything sits, in output samples."""

    counts: tuple[int, ...]  # each chapter's audio
    starts: tuple[int, ...]  # where each chapter's audio starts
    head: int
    gap: int
    tail: int
    total: int

    @classmethod
    def of(cls, counts: Sequence[int], head: int, gap: int, tail: int) -> Layout:
        """The layout of chapters of ``counts`` samples with these silences between."""
        starts = []
        position = head
        for index, count in enumerate(counts):
            if index:
                position += gap
            starts.append(position)
            position += count
        return cls(tuple(counts), tuple(starts), head, gap, tail, position + tail)

    def marker_start(self, index: int) -> int:
        """Where chapter ``index``'s marker starts: its audio, or 0 for the first."""
        return 0 if index == 0 else self.starts[index]

    def marker_end(self, index: int) -> int:
        """Where chapter ``index``'s marker ends: the next one's start, or the end."""
        return self.starts[index + 1] if index + 1 < len(self.starts) else self.total

    def markers(self, titles: Sequence[str]) -> list[Marker]:
        """One marker per chapter, titled in order."""
        return [
            Marker(title, self.marker_start(i), self.marker_end(i))
            for i, title in enumerate(titles)
        ]
