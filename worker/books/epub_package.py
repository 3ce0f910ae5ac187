"""An EPUB's package: container, OPF metadata, manifest, spine, navigation, landmarks, cover.

Paths are resolved to archive member names (relative hrefs joined with the
folder of the file that holds them, percent-escapes undone); an href that
points outside the archive or to another site is ignored.  Elements are found
by local name, so packages that get namespaces slightly wrong still read.

Navigation comes from the EPUB 3 navigation document (``<nav epub:type="toc">``)
or, failing that, the EPUB 2 NCX; entries keep their nesting depth, which
:mod:`worker.books.epub` uses to tell chapters from their subsections.
Landmarks (EPUB 3) and the guide (EPUB 2) mark whole files as cover, title
page, table of contents, copyright page and the like, and say where the body
starts (``bodymatter``, the guide's ``text``); the nav's landmarks win.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from worker.books.archive import SafeArchive
from worker.books.clean import clean_title
from worker.books.detect import EPUB_TYPE
from worker.books.errors import NotABook
from worker.books.xhtml import local_name, parse_xml, semantic_types

__all__ = ["Item", "NavEntry", "Package", "SpineRef", "read_package", "resolve"]

OPF_NS = "http://www.idpf.org/2007/opf"
CONTAINER = "META-INF/container.xml"
XHTML_TYPES = frozenset({"application/xhtml+xml", "text/html", "application/xml", "text/xml"})
NCX_TYPE = "application/x-dtbncx+xml"
# EPUB 2 guide types, as the EPUB 3 structural types the front-matter rules know.
_GUIDE_KINDS = {
    "text": "bodymatter",  # where the body starts
    "cover": "cover",
    "title-page": "titlepage",
    "toc": "toc",
    "copyright-page": "copyright-page",
    "dedication": "dedication",
    "colophon": "colophon",
    "index": "index",
    "loi": "loi",
    "lot": "lot",
    "notes": "endnotes",
    "acknowledgements": "acknowledgments",
    "bibliography": "bibliography",
    "glossary": "glossary",
    "foreword": "foreword",
    "preface": "preface",
}
_LANDMARK_KINDS = frozenset(_GUIDE_KINDS.values()) | {
    "halftitlepage",
    "landmarks",
    "frontmatter",
    "backmatter",
    "imprint",
    "endnotes",
    "footnotes",
    "titlepage",
    "copyright-page",
}


@dataclass(frozen=True, slots=True)
class Item:
    """A manifest item: an archive member with its media type and properties."""

    id: str
    path: str  # archive member name
    media_type: str
    properties: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SpineRef:
    """One entry of the reading order."""

    idref: str
    item: Item | None  # None when the manifest has no such id
    linear: bool  # linear="no": auxiliary content outside the reading order


@dataclass(frozen=True, slots=True)
class NavEntry:
    """One table-of-contents entry: where it points and what it is called."""

    path: str
    fragment: str | None
    title: str
    depth: int  # 0 for top-level entries


@dataclass(frozen=True, slots=True)
class Package:
    """What the OPF and navigation say about the book."""

    opf_path: str
    title: str | None
    author: str | None
    language: str | None
    spine: tuple[SpineRef, ...]
    nav: tuple[NavEntry, ...]
    nav_path: str | None  # the EPUB 3 navigation document, if any
    landmarks: dict[str, frozenset[str]] = field(default_factory=dict)  # path → kinds
    cover: Item | None = None
    body_start: tuple[str, str | None] | None = None  # (path, fragment) the body starts at


def resolve(base: str, href: str) -> tuple[str, str | None] | None:
    """(member path, fragment) for ``href`` found in member ``base``; None if external."""
    parts = urlsplit(href.strip())
    if parts.scheme or parts.netloc:
        return None
    fragment = unquote(parts.fragment) or None
    if not parts.path:
        return base, fragment
    path = posixpath.normpath(posixpath.join(posixpath.dirname(base), unquote(parts.path)))
    if path == ".." or path.startswith(("../", "/")):
        return None
    return path, fragment


def _children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (child for child in element if local_name(child.tag) == name)


def _first(element: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in element.iter() if local_name(e.tag) == name), None)


def _text(element: ET.Element) -> str:
    return clean_title("".join(element.itertext()))


def _load(archive: SafeArchive, path: str) -> ET.Element:
    member = archive.find(path)
    if member is None:
        raise NotABook(f"{archive.label} has no {path!r}, which its package names")
    return parse_xml(archive.read(member), member)


def _rootfile(archive: SafeArchive) -> str:
    """The OPF's path, after checking the archive is an EPUB at all."""
    mimetype = archive.find("mimetype")
    if mimetype is not None:
        declared = archive.read(mimetype).strip().decode("ascii", "replace")
        if declared != EPUB_TYPE:
            raise NotABook(
                f"{archive.label} is a zip archive but not an EPUB: its mimetype is {declared!r}"
            )
    if archive.find(CONTAINER) is None:
        raise NotABook(f"{archive.label} is a zip archive without {CONTAINER}, so not an EPUB")
    container = _load(archive, CONTAINER)
    for rootfile in (e for e in container.iter() if local_name(e.tag) == "rootfile"):
        path = rootfile.get("full-path")
        if path and rootfile.get("media-type", "application/oebps-package+xml").endswith("xml"):
            return path
    raise NotABook(f"{CONTAINER} of {archive.label} names no package (OPF) file")


def _metadata(opf: ET.Element) -> tuple[str | None, str | None, str | None, str | None]:
    """Title, author(s), language and the EPUB 2 cover id from ``<metadata>``."""
    metadata = _first(opf, "metadata")
    if metadata is None:
        return None, None, None, None
    refines: dict[str, dict[str, str]] = {}
    cover_id = None
    for meta in metadata.iter():
        if local_name(meta.tag) != "meta":
            continue
        if meta.get("name") == "cover":
            cover_id = meta.get("content")
        target, prop = meta.get("refines", "").lstrip("#"), meta.get("property")
        if target and prop:
            refines.setdefault(target, {})[prop] = (meta.text or "").strip()
    titles, creators = [], []
    language = None
    for element in metadata.iter():
        name, text = local_name(element.tag), _text(element)
        if not text:
            continue
        props = refines.get(element.get("id", ""), {})
        if name == "title":
            titles.append((props.get("title-type") != "main", text))
        elif name == "creator":
            role = element.get(f"{{{OPF_NS}}}role") or element.get("role") or props.get("role")
            creators.append((role, text))
        elif name == "language" and language is None:
            language = text
    title = min(titles, key=lambda t: t[0])[1] if titles else None
    authors = [n for role, n in creators if role in (None, "aut")] or [n for _, n in creators]
    return title, ", ".join(dict.fromkeys(authors)) or None, language, cover_id


def _landmarks(navs: list[ET.Element], path: str) -> list[tuple[str, str | None, str]]:
    """(path, fragment, kind) of every link in the ``landmarks`` nav."""
    found: list[tuple[str, str | None, str]] = []
    for nav in navs:
        if "landmarks" in semantic_types(nav):
            for link in (e for e in nav.iter() if local_name(e.tag) == "a"):
                if target := resolve(path, link.get("href", "")):
                    kinds = sorted(semantic_types(link) & _LANDMARK_KINDS)
                    found += [(target[0], target[1], kind) for kind in kinds]
    return found


def _nav_entries(
    nav_doc: ET.Element, path: str
) -> tuple[list[NavEntry], list[tuple[str, str | None, str]]]:
    """Entries of the ``toc`` nav, and (path, fragment, kind) from the ``landmarks`` nav."""
    entries: list[NavEntry] = []
    navs = [e for e in nav_doc.iter() if local_name(e.tag) == "nav"]
    toc = next((n for n in navs if "toc" in semantic_types(n)), None)
    if toc is None:  # a nav document without types: its first nav that is not landmarks
        toc = next((n for n in navs if not semantic_types(n) & {"landmarks", "page-list"}), None)
    landmarks = _landmarks(navs, path)
    if toc is None:
        return entries, landmarks
    stack: list[tuple[ET.Element, int]] = [(toc, -1)]  # iterative: nesting may be hostile
    while stack:
        element, depth = stack.pop()
        name = local_name(element.tag)
        if name == "ol":
            depth += 1
        if name == "a" and (target := resolve(path, element.get("href", ""))):
            entries.append(NavEntry(target[0], target[1], _text(element), max(depth, 0)))
            continue
        stack.extend((child, depth) for child in reversed(list(element)))
    return entries, landmarks


def _ncx_entries(ncx: ET.Element, path: str) -> list[NavEntry]:
    entries: list[NavEntry] = []
    nav_map = _first(ncx, "navmap")
    stack: list[tuple[ET.Element, int]] = [(nav_map, -1)] if nav_map is not None else []
    while stack:
        element, depth = stack.pop()
        if local_name(element.tag) == "navpoint":
            depth += 1
            label, content = _first(element, "navlabel"), next(_children(element, "content"), None)
            target = resolve(path, content.get("src", "")) if content is not None else None
            if target:
                title = _text(label) if label is not None else ""
                entries.append(NavEntry(target[0], target[1], title, depth))
        stack.extend((child, depth) for child in reversed(list(element)))
    return entries


def _cover(items: dict[str, Item], cover_id: str | None) -> Item | None:
    """The cover image: properties="cover-image", else meta name="cover", else by name."""
    images = [i for i in items.values() if i.media_type.startswith("image/")]
    for item in images:
        if "cover-image" in item.properties:
            return item
    if cover_id:
        named = items.get(cover_id) or next((i for i in images if i.path.endswith(cover_id)), None)
        if named and named.media_type.startswith("image/"):
            return named
    return next((i for i in images if "cover" in f"{i.id} {i.path}".casefold()), None)


def read_package(archive: SafeArchive) -> Package:
    """Read container.xml, the OPF and the navigation of an EPUB archive."""
    opf_path = _rootfile(archive)
    opf = _load(archive, opf_path)
    title, author, language, cover_id = _metadata(opf)
    items: dict[str, Item] = {}
    manifest = _first(opf, "manifest")
    for element in _children(manifest, "item") if manifest is not None else ():
        target = resolve(opf_path, element.get("href", ""))
        if element.get("id") and target:
            props = frozenset(element.get("properties", "").split())
            media_type = element.get("media-type", "").strip().lower()
            items[element.get("id", "")] = Item(element.get("id", ""), target[0], media_type, props)
    spine_element = _first(opf, "spine")
    if spine_element is None:
        raise NotABook(f"the package {opf_path!r} of {archive.label} has no <spine>")
    spine = tuple(
        SpineRef(ref.get("idref", ""), items.get(ref.get("idref", "")), ref.get("linear") != "no")
        for ref in _children(spine_element, "itemref")
    )
    marks: list[tuple[str, str | None, str]] = []
    for reference in (e for e in opf.iter() if local_name(e.tag) == "reference"):
        target = resolve(opf_path, reference.get("href", ""))
        kind = _GUIDE_KINDS.get(reference.get("type", "").lower())
        if target and kind:
            marks.append((target[0], target[1], kind))
    nav: list[NavEntry] = []
    nav_item = next((i for i in items.values() if "nav" in i.properties), None)
    if nav_item is not None and archive.find(nav_item.path) is not None:
        nav, nav_marks = _nav_entries(_load(archive, nav_item.path), nav_item.path)
        marks += nav_marks
    landmarks: dict[str, set[str]] = {}
    for path, fragment, kind in marks:
        if fragment is None:  # a landmark into a file names a part of it, not all of it
            landmarks.setdefault(path, set()).add(kind)
    body_start = next(((p, f) for p, f, kind in reversed(marks) if kind == "bodymatter"), None)
    if not nav:
        ncx_item = items.get(spine_element.get("toc", "")) or next(
            (i for i in items.values() if i.media_type == NCX_TYPE), None
        )
        if ncx_item is not None and archive.find(ncx_item.path) is not None:
            nav = _ncx_entries(_load(archive, ncx_item.path), ncx_item.path)
    return Package(
        opf_path=opf_path,
        title=title,
        author=author,
        language=language,
        spine=spine,
        nav=tuple(nav),
        nav_path=nav_item.path if nav_item else None,
        landmarks={path: frozenset(kinds) for path, kinds in landmarks.items()},
        cover=_cover(items, cover_id),
        body_start=body_start,
    )
