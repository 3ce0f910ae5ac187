"""Checks of a job request that need settings or I/O, each failing with the field named.

They run before anything is stored or enqueued: a request that fails one
leaves no trace.  Schema-level checks (types, ranges, blank text) are in
:mod:`api.schemas` and :mod:`api.jobs.schemas`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence

from api.errors import InvalidInput, PayloadTooLarge
from api.jobs.schemas import JobCreate
from api.schemas import ReferenceIn
from worker.audio import CorruptAudio, UnsupportedOutput, check_reference_audio, validate_output
from worker.callbacks.urls import callback_url_problem
from worker.jobs.markup import MarkupError, Run, parse_markup
from worker.jobs.model import JobRequest, ReferenceClip, TimestampLevel
from worker.lexicons.apply import Matcher, Substituted, apply_lexicons
from worker.lexicons.model import AppliedLexicon, Lexicon
from worker.settings import Settings
from worker.storage.errors import InvalidKey
from worker.storage.model import validate_key

log = logging.getLogger(__name__)

#: Largest reference clip accepted, decoded (five minutes of 16-bit 16 kHz WAV is ~10 MB).
MAX_REFERENCE_BYTES = 10 << 20


def check_text_size(text: str, settings: Settings, field: str = "text") -> int:
    """The text's size in UTF-8 bytes; :class:`PayloadTooLarge` if over the limit."""
    size = len(text.encode())
    if size > settings.max_text_bytes:
        raise PayloadTooLarge(
            f"{field}: {size} bytes of UTF-8 is over the limit of "
            f"{settings.max_text_bytes} bytes; split it into several jobs",
            field=field,
        )
    return size


def check_output(fmt: str, sample_rate: int | None, bitrate_kbps: int | None) -> None:
    """The format, rate and bitrate fit together; else :class:`InvalidInput` naming which."""
    try:
        validate_output(fmt, sample_rate, bitrate_kbps)
    except UnsupportedOutput as exc:
        raise InvalidInput(exc.message, field=exc.field or "format") from exc


def decode_references(refs: list[ReferenceIn]) -> list[ReferenceClip]:
    """Decode and check each reference clip; :class:`InvalidInput` naming the bad one."""
    clips = []
    for i, ref in enumerate(refs):
        field = f"references.{i}.audio"
        try:
            audio = base64.b64decode(ref.audio, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"{field}: not valid base64 ({exc})", field=field) from exc
        if len(audio) > MAX_REFERENCE_BYTES:
            raise InvalidInput(
                f"{field}: {len(audio)} bytes is over the limit of {MAX_REFERENCE_BYTES}",
                field=field,
            )
        try:
            check_reference_audio(audio)
        except CorruptAudio as exc:
            raise InvalidInput(f"{field}: {exc}", field=field) from exc
        clips.append(ReferenceClip(audio=audio, text=ref.text))
    return clips


def check_callback_url(url: str | None, settings: Settings) -> str | None:
    """``url`` if it may receive callbacks (see
    :func:`worker.callbacks.urls.callback_url_problem`)."""
    if url is None:
        return None
    problem = callback_url_problem(url, allow_private=settings.allow_private_callbacks)
    if problem is not None:
        raise InvalidInput(problem, field="callback_url")
    return url


def scoped_output_key(tenant: str, key: str) -> str:
    """The object key for a user's ``output_key``: always under the tenant's own prefix."""
    try:
        return validate_key(f"{tenant}/{validate_key(key)}")
    except InvalidKey as exc:
        raise InvalidInput(f"output_key: {exc}", field="output_key") from exc


def respell(text: str, lexicons: Sequence[Lexicon]) -> Substituted:
    """``text`` after ``lexicons`` (the tenant's, resolved from the request's ids).

    Applied at submission, so the job's record holds the text that will be
    sent, the billing and the size check count it, and the versions used are
    recorded with the job.  Tags are left alone: only the text between them is
    respelled (a rule for "time" must not rewrite ``time="1s"``).
    """
    try:
        parts = parse_markup(text)
    except MarkupError:
        return apply_lexicons(text, lexicons)  # refused by check_markup before it is used
    if all(isinstance(p, Run) for p in parts):
        return apply_lexicons(text, lexicons)
    matcher = Matcher(lexicons)
    pieces: list[str] = []
    counts = [0] * len(lexicons)
    for part in parts:
        if not isinstance(part, Run):
            pieces.append(text[part.start : part.start + part.length])
            continue
        out = matcher.apply(part.text)
        pieces.append(out.text)
        counts = [n + a.replacements for n, a in zip(counts, out.applied, strict=True)]
    applied = [
        AppliedLexicon(id=lex.id, version=lex.version, replacements=n)
        for lex, n in zip(lexicons, counts, strict=True)
    ]
    return Substituted("".join(pieces), applied)


def check_markup(text: str, field: str = "text") -> None:
    """Every break tag in ``text`` is well formed; else :class:`InvalidInput` naming
    ``field`` and the tag's character position (:mod:`worker.jobs.markup`)."""
    try:
        parse_markup(text)
    except MarkupError as exc:
        raise InvalidInput(f"{field}: {exc}", field=field) from exc


def lexicon_fields(
    text: str, lexicons: Sequence[Lexicon], field: str = "text"
) -> dict[str, object]:
    """Keyword arguments of :class:`JobRequest` for ``text`` after ``lexicons``:
    the text to send, the versions applied, and the text as given if they changed it.

    Every path from a request to a job's text passes here, so its break tags
    are checked here too (:func:`check_markup`); errors name ``field``.
    """
    check_markup(text, field)
    if not lexicons:
        return {"text": text}
    out = respell(text, lexicons)
    if out.text != text:
        try:  # an alias may hold a break tag: it must be well formed too
            parse_markup(out.text)
        except MarkupError as exc:
            message = f"{field}: after the lexicons, {exc}"
            raise InvalidInput(message, field=field) from exc
    return {
        "text": out.text,
        "lexicons": out.applied,
        "source_text": text if out.text != text else None,
    }


def check_timestamps(
    timestamps: TimestampLevel | None, settings: Settings, field: str = "timestamps"
) -> None:
    """:class:`InvalidInput` naming ``field`` if timings are asked of a provider that
    cannot give them: never captions that come back empty."""
    if timestamps is not None and not settings.provider_timestamps:
        raise InvalidInput(
            f"{field}: the provider here gives no timings (SHOAL_PROVIDER_TIMESTAMPS is off); "
            "leave timestamps out",
            field=field,
        )


def build_request(
    body: JobCreate, tenant: str, settings: Settings, lexicons: Sequence[Lexicon] = ()
) -> JobRequest:
    """Check everything about ``body`` and return the worker's :class:`JobRequest`.

    ``lexicons`` are applied to the text first; the size limit counts the text
    as it will be sent.  Raises :class:`PayloadTooLarge` or :class:`InvalidInput`;
    has no side effects.
    """
    respelled = lexicon_fields(body.text, lexicons)
    check_text_size(str(respelled["text"]), settings)
    if body.reference_id is not None and body.references:
        raise InvalidInput(
            "references: give reference_id or references, not both", field="references"
        )
    check_output(body.format.value, body.sample_rate, body.bitrate_kbps)
    check_timestamps(body.timestamps, settings)
    callback = check_callback_url(body.callback_url, settings)
    output_key = scoped_output_key(tenant, body.output_key) if body.output_key else None
    settings_fields = body.model_dump(
        exclude={
            "text",
            "references",
            "format",
            "output_key",
            "callback_url",
            "metadata",
            "lexicons",
        }
    )
    return JobRequest(
        **settings_fields,
        **respelled,
        references=decode_references(body.references),
        format=body.format.value,
        output_key=output_key,
        callback_url=callback,
    )
