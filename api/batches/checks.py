"""Checks of a batch request that name the field at fault: its produce options, and
errors of nested checks placed under the item or option they were about."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from api.batches.schemas import ProduceIn
from api.errors import InvalidInput, PayloadTooLarge
from worker.audio import OutputFormat, UnsupportedOutput, validate_output
from worker.batches.model import CombinedFormat, Produce

__all__ = ["check_produce", "under"]

_COMBINED_CODEC = {CombinedFormat.M4B: "m4a", CombinedFormat.MP3: "mp3"}


@contextmanager
def under(prefix: str) -> Iterator[None]:
    """Re-raise a check's error with its field placed under ``prefix``."""
    try:
        yield
    except (InvalidInput, PayloadTooLarge) as exc:
        field = f"{prefix}.{exc.field}" if exc.field else prefix
        message = exc.message
        if exc.field and message.startswith(f"{exc.field}:"):
            message = f"{field}:{message[len(exc.field) + 1 :]}"
        raise type(exc)(message, field=field) from exc


def _renamed(message: str, old: str | None, new: str) -> str:
    """``message`` (which may start with "old: ") as about the field ``new``."""
    if old and message.startswith(f"{old}:"):
        return new + message[len(old) :]
    return f"{new}: {message}"


def check_produce(produce: ProduceIn) -> Produce:
    """The produce options if they fit together; :class:`InvalidInput` naming the field."""
    chapter = {"sample_rate": "chapter_sample_rate", "bitrate_kbps": "chapter_bitrate_kbps"}
    try:
        validate_output(
            produce.chapter_format.value, produce.chapter_sample_rate, produce.chapter_bitrate_kbps
        )
    except UnsupportedOutput as exc:
        field = f"produce.{chapter.get(exc.field or '', 'chapter_format')}"
        raise InvalidInput(_renamed(exc.message, exc.field, field), field=field) from exc
    if produce.combined is not None:
        codec = _COMBINED_CODEC[produce.combined]
        try:
            validate_output(codec, produce.sample_rate, produce.bitrate_kbps)
        except UnsupportedOutput as exc:
            name = exc.field if exc.field in ("sample_rate", "bitrate_kbps") else "combined"
            field = f"produce.{name}"
            raise InvalidInput(_renamed(exc.message, exc.field, field), field=field) from exc
    elif produce.loudness is not None:
        raise InvalidInput(
            "produce.loudness: normalises the combined book; set produce.combined too",
            field="produce.loudness",
        )
    if produce.read_along and produce.chapter_format not in (OutputFormat.MP3, OutputFormat.M4A):
        raise InvalidInput(
            "produce.read_along: an EPUB carries mp3 or m4a audio; "
            f"set produce.chapter_format to one of them, not {produce.chapter_format.value}",
            field="produce.read_along",
        )
    return Produce(
        chapter_format=produce.chapter_format.value,
        chapter_sample_rate=produce.chapter_sample_rate,
        chapter_bitrate_kbps=produce.chapter_bitrate_kbps,
        combined=produce.combined,
        sample_rate=produce.sample_rate,
        bitrate_kbps=produce.bitrate_kbps,
        chapter_silence_ms=produce.chapter_silence_ms,
        head_silence_ms=produce.head_silence_ms,
        tail_silence_ms=produce.tail_silence_ms,
        loudness=produce.loudness,
        read_along=produce.read_along,
    )
