"""Covers the audiobook can carry: an SVG cover is rasterised to PNG.

An M4B or MP3 embeds a JPEG or PNG picture; Standard Ebooks and other
careful producers ship their cover only as SVG.  :func:`usable_cover` hands
JPEG and PNG through untouched and renders an SVG with resvg (the
``resvg-py`` wheel carries the renderer: no system library is needed).

An SVG is untrusted markup, so before it is rendered:

* entity declarations are refused (the "billion laughs" family), as in EPUB
  members;
* every link to another file (``href`` / ``xlink:href`` that is not a
  ``data:`` URI or a ``#fragment``) is removed: resvg would otherwise read any
  image on the server's disk that an absolute path names;
* the picture is rendered at a bounded size (its longer side
  :data:`COVER_SIDE` pixels, whatever size the SVG claims).

Anything that still does not render is a :class:`CoverError` saying why; the
caller leaves the cover out and lists the reason.
"""

from __future__ import annotations

import logging
import re
import struct
import xml.etree.ElementTree as ET

import resvg_py

__all__ = ["COVER_SIDE", "CoverError", "rasterise_svg", "sniff_svg", "usable_cover"]

logger = logging.getLogger(__name__)

COVER_SIDE = 1400  # pixels on the longer side: what audiobook stores ask for, or near it
MAX_SVG_BYTES = 20 << 20
SVG_TYPE = "image/svg+xml"
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_SVG_NS = "http://www.w3.org/2000/svg"
_HREFS = ("href", "{http://www.w3.org/1999/xlink}href")
_LENGTH = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(px|pt|pc|mm|cm|in)?\s*")
_UNITS = {None: 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54}
_UNITS["in"] = 96.0
# Past this, an aspect ratio is not a cover but a way to ask for a huge bitmap.
_MAX_ASPECT = 8.0


class CoverError(ValueError):
    """The cover cannot be used; ``str()`` says why, for the list of skipped parts."""


def sniff_svg(data: bytes) -> bool:
    """Whether ``data`` looks like an SVG document (its root element is ``<svg>``)."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        return False
    return re.search(rb"<(?:[A-Za-z_][\w.-]*:)?svg[\s>/]", head) is not None


def usable_cover(data: bytes, declared_type: str | None) -> tuple[bytes, str]:
    """The cover as JPEG or PNG bytes and their media type; an SVG is rasterised.

    Other images are handed back as they are, with their sniffed type (the
    audiobook's own checks refuse what they cannot embed).
    """
    if data.startswith(_JPEG):
        return data, "image/jpeg"
    if data.startswith(_PNG):
        return data, "image/png"
    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared == SVG_TYPE or sniff_svg(data):
        return rasterise_svg(data), "image/png"
    return data, declared or "application/octet-stream"


def _clean(data: bytes) -> tuple[str, float | None, float | None]:
    """The SVG without links to other files, and its size in pixels if it says."""
    if len(data) > MAX_SVG_BYTES:
        raise CoverError(f"the SVG cover is {len(data)} bytes; the limit is {MAX_SVG_BYTES}")
    if b"<!ENTITY" in data:
        raise CoverError("the SVG cover declares XML entities; refused as unsafe")
    try:
        root = ET.fromstring(data)
    except (ET.ParseError, ValueError, LookupError) as exc:
        raise CoverError(f"the SVG cover is not well-formed XML: {exc}") from exc
    if root.tag not in (f"{{{_SVG_NS}}}svg", "svg"):
        raise CoverError("the cover is not an SVG image")
    if root.tag == "svg":  # no namespace: resvg needs it to see an SVG at all
        root.set("xmlns", _SVG_NS)
    dropped = 0
    for element in root.iter():
        for name in _HREFS:
            href = element.get(name)
            if href is not None and not href.strip().startswith(("data:", "#")):
                del element.attrib[name]
                dropped += 1
    if dropped:
        logger.info("dropped %d link(s) to other files from an SVG cover", dropped)
    width, height = _size(root)
    return ET.tostring(root, encoding="unicode"), width, height


def _length(value: str | None) -> float | None:
    found = _LENGTH.fullmatch(value or "")
    if not found:
        return None  # absent, or a percentage: the viewBox says
    number = float(found.group(1)) * _UNITS[found.group(2)]
    return number if number > 0 else None


def _size(root: ET.Element) -> tuple[float | None, float | None]:
    """The SVG's intrinsic size: width and height, else the viewBox's."""
    width, height = _length(root.get("width")), _length(root.get("height"))
    box = (root.get("viewBox") or "").replace(",", " ").split()
    if len(box) == 4:
        try:
            box_w, box_h = float(box[2]), float(box[3])
        except ValueError:
            box_w = box_h = 0.0
        if box_w > 0 and box_h > 0:
            if width is None and height is None:
                return box_w, box_h
            if width is None and height is not None:
                return height * box_w / box_h, height
            if height is None and width is not None:
                return width, width * box_h / box_w
    return width, height


def _target(width: float | None, height: float | None) -> tuple[int, int]:
    """The rendered size: the longer side :data:`COVER_SIDE`, the aspect ratio kept."""
    if not width or not height:
        return COVER_SIDE, COVER_SIDE
    if max(width, height) / min(width, height) > _MAX_ASPECT:
        raise CoverError(f"the SVG cover is {width:g}×{height:g}: too narrow to be a cover")
    scale = COVER_SIDE / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def rasterise_svg(data: bytes) -> bytes:
    """An SVG image rendered to PNG, its longer side :data:`COVER_SIDE` pixels.

    Raises :class:`CoverError` for anything that is not an SVG resvg can render.
    """
    svg, width, height = _clean(data)
    target_w, target_h = _target(width, height)
    try:
        # White behind transparent parts: players show transparency as black.
        png = bytes(
            resvg_py.svg_to_bytes(
                svg_string=svg, width=target_w, height=target_h, background="white"
            )
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise CoverError(f"the SVG cover does not render: {exc}") from exc
    if not png.startswith(_PNG) or len(png) < 24:
        raise CoverError("the SVG cover rendered to no image")
    rendered = struct.unpack(">II", png[16:24])
    logger.info("rasterised an SVG cover to a %dx%d PNG", *rendered)
    return png
