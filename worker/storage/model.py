"""The pure parts of :mod:`worker.storage.client`: keys, templates, metadata, and its values.

No I/O here. Keys are refused when they could land somewhere other
than where they read: a leading ``/``, ``.``/``..`` or empty segments (servers
backed by a directory, like ``rclone serve s3``, resolve them as paths),
backslashes, control characters, or more than S3's 1024 bytes.
"""

from __future__ import annotations

import hashlib
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from worker.storage.errors import InvalidKey

DEFAULT_KEY_TEMPLATE = "{tenant}/{job_id}.{ext}"
#: The names a key template may use; ``job_id`` is required so jobs never share a key.
TEMPLATE_FIELDS = frozenset({"tenant", "job_id", "ext", "date"})
MAX_KEY_BYTES = 1024
_SAMPLE = {"tenant": "tenant", "job_id": "job", "ext": "wav", "date": "2000-01-01"}


def validate_key(key: str) -> str:
    """``key`` if it is a safe object key, else :class:`InvalidKey`."""
    _check_path(key, "key")
    if key.endswith("/"):
        raise InvalidKey(f"key {key!r} ends with '/': that names a folder, not an object")
    return key


def validate_prefix(prefix: str) -> str:
    """``prefix`` if it is a safe, non-empty key prefix (trailing ``/`` allowed)."""
    _check_path(prefix.removesuffix("/"), "prefix")
    return prefix


def validate_segment(name: str, value: str) -> str:
    """``value`` if it fits in one path segment of a key (no ``/``, not ``.``/``..``)."""
    if not isinstance(value, str) or not value:
        raise InvalidKey(f"{name} must be a non-empty string")
    if "/" in value or value in (".", "..") or _bad_chars(value):
        raise InvalidKey(f"{name} {value!r} cannot be part of a key")
    return value


def _check_path(key: str, what: str) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"empty {what}")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"{what} longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise InvalidKey(f"{what} {key!r} starts with '/'")
    if _bad_chars(key):
        raise InvalidKey(f"{what} {key!r} contains a backslash or control character")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(f"{what} {key!r} has an empty, '.' or '..' segment")


def _bad_chars(text: str) -> bool:
    return "\\" in text or any(ord(c) < 32 or ord(c) == 127 for c in text)


def check_template(template: str) -> str:
    """``template`` if it renders safe keys, else :class:`InvalidKey`.

    Only the plain fields {tenant}, {job_id}, {ext} and {date} are allowed (no
    attribute access, indexing, conversions or format specs), and {job_id} must
    appear so that two jobs never write the same key.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidKey(f"key template {template!r}: {exc}") from exc
    names = set()
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS or spec or conversion:
            raise InvalidKey(
                f"key template {template!r}: {{{field}}} is not one of "
                + ", ".join(f"{{{n}}}" for n in sorted(TEMPLATE_FIELDS))
            )
        names.add(field)
    if "job_id" not in names:
        raise InvalidKey(f"key template {template!r} lacks {{job_id}}")
    try:
        validate_key(template.format_map(_SAMPLE))
    except InvalidKey as exc:
        raise InvalidKey(f"key template {template!r}: {exc}") from exc
    return template


def render_key(template: str, template_vars: Mapping[str, str]) -> str:
    """Render a checked template; ``date`` defaults to today's UTC date (``YYYY-MM-DD``)."""
    values = {"date": datetime.now(UTC).date().isoformat(), **template_vars}
    used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    for name in sorted(used):
        if name not in values:
            raise InvalidKey(f"key template needs {{{name}}}")
        validate_segment(name, values[name])
    return validate_key(template.format_map({name: values[name] for name in used}))


def cache_key(prefix: str, tenant: str, address: str) -> str:
    """Key of a cached segment: ``<prefix>/<tenant>/<aa>/<address>.pcm``.

    Under its tenant, so no key of one tenant's cache is ever another's; the two
    hex digits after it spread a large cache over many listing prefixes.
    """
    tenant = validate_segment("tenant", tenant)
    address = validate_segment("address", address)
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return validate_key(f"{head}{tenant}/{address[:2]}/{address}.pcm")


# -- metadata -------------------------------------------------------------------


def encode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """``x-amz-meta-*`` values as S3 can carry them.

    They travel as HTTP headers, so values with non-ASCII, control characters
    or ``%`` are percent-encoded; :func:`decode_metadata` undoes it. Names are
    lower-cased (S3 does so anyway) and must be header tokens.
    """
    out: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(value, str):
            raise TypeError(f"metadata {name!r} must be a string, not {type(value).__name__}")
        lname = name.lower()
        if not lname or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in lname):
            raise ValueError(f"metadata name {name!r} must be ASCII letters, digits, '-', '_', '.'")
        needs = "%" in value or any(not (" " <= c <= "~") for c in value)
        out[lname] = quote(value, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~") if needs else value
    return out


def decode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Metadata as :func:`encode_metadata` was given it."""
    return {name: unquote(value) for name, value in metadata.items()}


def content_disposition(filename: str) -> str:
    """``attachment`` with ``filename`` (RFC 6266: ASCII fallback plus UTF-8 ``filename*``)."""
    # "Été.mp3" falls back to "Ete.mp3": strip accents, then replace what is left.
    plain = unicodedata.normalize("NFKD", filename)
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in plain)
    fallback = fallback.strip() or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# -- values ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadResult:
    """A finished upload: where it is, how big, and what the store says of it."""

    bucket: str
    key: str
    bytes: int
    etag: str
    sha256: str  # hex digest of the bytes sent
    retries: int = 0  # requests sent again after a transient failure (parts, completion...)


@dataclass(frozen=True, slots=True)
class IncompleteUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime | None


def multipart_etag(part_etags: list[str]) -> str:
    """The ETag S3 gives a multipart object: MD5 of the parts' MD5s, dash, part count."""
    joined = b"".join(bytes.fromhex(etag.strip('"')) for etag in part_etags)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(part_etags)}"'
