"""``shoal book``: a whole book to one audiobook file, through ``POST /v1/books``.

::

    shoal book book.epub -o book.m4b
    shoal book novel.md --format mp3 --loudness acx --voice REF_ID -o novel.mp3
    shoal book report.pdf --dry-run         # only show the chapters, and what is skipped and why
    shoal book book.epub --chapters 3-5     # only chapters 3 to 5, numbered as --dry-run lists them

Takes EPUB, DOCX, PDF (with a text layer), HTML, Markdown and plain text.
Uploads the book, prints the chapters the API found (and every part it
skipped, with the reason),
then a line per chapter as it starts and finishes (polling
``GET /v1/batches/{id}``), and downloads the combined audiobook, checking its
size and SHA-256 (``--manifest`` also saves the manifest).  Ctrl-C while it
waits cancels the batch.  Exit status as for ``narrate``: 3 if chapters
failed or the book could not be built.

``shoal batches`` lists the tenant's batches and books, newest first
(``GET /v1/batches``), as a table or ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from shoal_cli.client import (
    EXIT_JOB,
    EXIT_OK,
    EXIT_USAGE,
    Api,
    CliError,
    cancel_interrupted,
    fetch,
    note,
    poll,
)
from shoal_cli.jobs import align, show_page
from shoal_cli.play import fetch_and_play, require_player
from shoal_cli.voices import voice_choice

TERMINAL = frozenset({"succeeded", "partially_failed", "failed", "canceled"})
ITEM_DONE = frozenset({"succeeded", "failed", "canceled"})


BATCH_STATUSES = ("queued", "running", "succeeded", "partially_failed", "failed", "canceled")


def cmd_batches(api: Api, args: argparse.Namespace) -> int:
    """``shoal batches``: a page of batches and books as a table (or JSON), newest first."""
    return show_page(
        api, "batches", {"status": args.status, "kind": args.kind}, args, format_batches
    )


def format_batches(batches: Sequence[dict[str, Any]]) -> str:
    """Batches as an aligned text table, one row each."""
    rows = [("ID", "STATUS", "KIND", "ITEMS", "TITLE", "CREATED")]
    for batch in batches:
        done, total = batch.get("items_done", 0), batch.get("items_total", 0)
        failed = batch.get("items_failed", 0)
        rows.append(
            (
                str(batch.get("id", "")),
                str(batch.get("status", "")),
                str(batch.get("kind", "")),
                f"{done}/{total}" + (f" ({failed} failed)" if failed else ""),
                str(batch.get("title", "")),
                str(batch.get("created_at", ""))[:19].replace("T", " "),
            )
        )
    return align(rows)


def add_parser(sub: Any) -> None:
    """Register ``book`` and ``batches`` on the ``shoal`` parser's subcommands."""
    b = sub.add_parser("book", help="turn a book (EPUB, DOCX, PDF, HTML, text) into an audiobook")
    b.add_argument("file", type=Path, help="the book: EPUB, DOCX, PDF, HTML, Markdown or text")
    b.add_argument("-o", "--output", help="where to write the audiobook; default: TITLE.FORMAT")
    b.add_argument("--format", choices=("m4b", "mp3"), default="m4b", help="audiobook format")
    b.add_argument("--title", help="the book's title (default: what the book says)")
    b.add_argument("--author", help="the book's author (default: what the book says)")
    b.add_argument("--cover", type=Path, help="a JPEG, PNG or SVG cover image")
    b.add_argument("--voice", help="a shoal voice (voice_…) or a provider voice model id")
    b.add_argument("--speed", type=float, help="speaking rate, 0.5–2.0 (1.0)")
    b.add_argument("--model", help="provider model")
    b.add_argument(
        "--lexicon", action="append", default=[], metavar="ID", help="a pronunciation lexicon"
    )
    b.add_argument("--loudness", choices=("acx",), help="normalise to ACX's loudness rules")
    b.add_argument("--sample-rate", type=int, help="Hz, of the audiobook and its chapters")
    b.add_argument("--bitrate", type=int, help="kbps, of the audiobook")
    b.add_argument("--chapter-format", default="mp3", help="each chapter's own file (mp3)")
    b.add_argument("--chapter-silence-ms", type=int, help="silence between chapters (1000)")
    b.add_argument("--head-silence-ms", type=int, help="silence at the start (500)")
    b.add_argument("--tail-silence-ms", type=int, help="silence at the end (1000)")
    b.add_argument(
        "--paragraph-silence-ms", type=int, help="silence between paragraphs (the server's)"
    )
    b.add_argument(
        "--chapter-voice",
        action="append",
        default=[],
        metavar="N=VOICE",
        help="read chapter N in a voice of its own (repeatable): --chapter-voice 3=voice_ab12",
    )
    b.add_argument(
        "--scene-break-ms", type=int, help="more silence at a scene break, * * * or <hr/> (2000)"
    )
    b.add_argument(
        "--chapters",
        metavar="RANGE",
        help='narrate only these chapters, numbered as --dry-run lists them: "3-5", "1,4,7-9"',
    )
    b.add_argument("--no-titles", action="store_true", help="do not read chapter titles aloud")
    b.add_argument(
        "--titles",
        choices=("spoken", "as_written"),
        help='read "Chapter IV" as "Chapter Four" (spoken, the default) or as written',
    )
    b.add_argument("--callback-url", help="URL to receive signed batch events")
    b.add_argument("--manifest", help="also save the manifest (JSON) here")
    b.add_argument(
        "--read-along",
        metavar="FILE.epub",
        help="also make a read-along EPUB (text highlighted as it is read) and save it here",
    )
    b.add_argument("--dry-run", action="store_true", help="show the chapters; narrate nothing")
    b.add_argument("--no-wait", action="store_true", help="submit, print the batch, and exit")
    b.add_argument(
        "--play", action="store_true", help="play the audiobook as it downloads (mpv or ffplay)"
    )
    b.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    b.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    b.add_argument("--poll-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    b.set_defaults(run=cmd_book)

    ls = sub.add_parser("batches", help="list batches and books, newest first")
    ls.add_argument("--status", choices=BATCH_STATUSES)
    ls.add_argument("--kind", choices=("book", "batch"), help="book: made by `shoal book`")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--cursor", help="continue a listing (printed after a full page)")
    ls.add_argument("--json", action="store_true", help="the API's page as JSON")
    ls.set_defaults(run=cmd_batches)


def book_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``options`` form field for ``book``'s flags."""
    produce: dict[str, Any] = {"combined": args.format, "chapter_format": args.chapter_format}
    optional = {
        "loudness": args.loudness,
        "sample_rate": args.sample_rate,
        "chapter_sample_rate": args.sample_rate,
        "bitrate_kbps": args.bitrate,
        "chapter_silence_ms": args.chapter_silence_ms,
        "head_silence_ms": args.head_silence_ms,
        "tail_silence_ms": args.tail_silence_ms,
    }
    produce |= {k: v for k, v in optional.items() if v is not None}
    defaults: dict[str, Any] = {}
    if args.voice is not None:
        defaults |= voice_choice(args.voice)
    if args.model is not None:
        defaults["model"] = args.model
    if args.speed is not None:
        defaults["prosody"] = {"speed": args.speed}
    if args.lexicon:
        defaults["lexicons"] = args.lexicon
    if args.paragraph_silence_ms is not None:
        defaults["paragraph_silence_ms"] = args.paragraph_silence_ms
    out: dict[str, Any] = {"produce": produce, "defaults": defaults}
    if args.scene_break_ms is not None:
        out["scene_break_ms"] = args.scene_break_ms
    if args.read_along is not None:
        produce["read_along"] = True
    if args.chapter_voice:
        out["chapter_voices"] = dict(_chapter_voice(v) for v in args.chapter_voice)
    if args.no_titles:
        out["speak_titles"] = False
    if args.titles is not None:
        out["titles"] = args.titles
    if args.chapters is not None:
        out["chapters"] = args.chapters
    if args.callback_url is not None:
        out["callback_url"] = args.callback_url
    return out


def _chapter_voice(value: str) -> tuple[str, str]:
    """``"3=voice_ab12"`` as ("3", "voice_ab12"); :class:`CliError` if it is not that."""
    number, _, voice = value.partition("=")
    if not number.strip().isdigit() or not voice.strip():
        raise CliError(f"--chapter-voice {value!r}: write N=VOICE, e.g. 3=voice_ab12", EXIT_USAGE)
    return number.strip(), voice.strip()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from exc


def upload(api: Api, args: argparse.Namespace) -> dict[str, Any]:
    """``POST /v1/books`` with the book, its cover and the options; the API's answer."""
    files: dict[str, Any] = {"file": (args.file.name, _read(args.file))}
    if args.cover is not None:
        files["cover"] = (args.cover.name, _read(args.cover))
    form = {"options": json.dumps(book_options(args))}
    if args.title is not None:
        form["title"] = args.title
    if args.author is not None:
        form["author"] = args.author
    # One key per upload: a retried POST can never make a second batch.
    headers = {"Idempotency-Key": f"cli-book-{uuid.uuid4().hex}"}
    params = {"dry_run": "true"} if args.dry_run else None
    response = api.request(
        "POST", "/v1/books", files=files, data=form, headers=headers, params=params
    )
    return dict(response.json())


def describe_book(book: dict[str, Any], stream: IO[str]) -> None:
    """The chapter list the API found, and every part it skipped with the reason."""
    by = f" by {book['author']}" if book.get("author") else ""
    chapters = book.get("chapters", [])
    narrated = [c for c in chapters if c.get("narrated", True)]
    only = ""
    if book.get("chapter_range"):  # the totals and the estimate count only these
        only = f", narrating {len(narrated)} ({book['chapter_range']})"
    stream.write(
        f"{book['title']}{by}: {len(chapters)} chapters{only}, {book['chars']} characters "
        f"(about ${book['estimated_cost_usd']:.2f})\n"
    )
    for chapter in chapters:
        cost = chapter.get("estimated_cost_usd")
        price = f", ${cost:.4f}" if cost is not None else ""
        left_out = "" if chapter.get("narrated", True) else "  -- left out by --chapters"
        stream.write(
            f"  {chapter['index'] + 1:3d}. {chapter['title']}  "
            f"({chapter['chars']} chars{price}){left_out}\n"
        )
    parts = book.get("skipped_parts")
    if parts:
        stream.write(f"skipped {len(parts)} part{'s' if len(parts) > 1 else ''}:\n")
        for part in parts:
            where = f"{part['title']!r} ({part['source']})" if part.get("title") else part["source"]
            stream.write(f"  [{part['category']}] {where}: {part['reason']}\n")
    else:  # an API from before skipped_parts
        for skipped in book.get("skipped", []):
            stream.write(f"  skipped: {skipped}\n")
    stream.flush()


class ChapterProgress:
    """A line per chapter as it starts and as it ends, and one when the book is being built."""

    def __init__(self, stream: IO[str], enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.seen: dict[str, str] = {}
        self.building = False

    def update(self, batch: dict[str, Any]) -> None:
        """Report what changed in ``batch`` since the last call."""
        if not self.enabled:
            return
        items = batch.get("items", [])
        total = len(items)
        for item in items:
            status = item["status"]
            if self.seen.get(item["job_id"]) == status or status == "queued":
                continue
            self.seen[item["job_id"]] = status
            line = f"[{item['index'] + 1:>{len(str(total))}}/{total}] {item['title']}  {status}"
            if status == "succeeded" and item.get("output"):
                line += f"  {item['output']['duration_s']:.1f}s"
            elif item.get("error"):
                line += f"  {item['error']['code']}: {item['error']['message']}"
            self.stream.write(line + "\n")
        state = batch.get("outputs", {}).get("assembly", {}).get("state")
        if state in ("pending", "building") and not self.building:
            self.building = True
            self.stream.write("building the audiobook…\n")
        self.stream.flush()


def wait_for_batch(
    api: Api,
    batch: dict[str, Any],
    progress: ChapterProgress,
    interval: float,
    timeout: float | None,
) -> dict[str, Any]:
    """Poll the batch until it finishes, reporting chapters; rides out short API outages."""
    return poll(
        api,
        batch,
        what=f"batch {batch['id']}",
        report=progress.update,
        finished=TERMINAL,
        interval=interval,
        timeout=timeout,
    )


def cmd_book(api: Api, args: argparse.Namespace) -> int:
    """``shoal book``: upload, follow the chapters, download and verify the audiobook."""
    if args.play and (args.no_wait or args.dry_run):
        raise CliError("--play waits for the audiobook: leave out --no-wait, --dry-run", EXIT_USAGE)
    player = require_player() if args.play else None  # before anything is spent
    answer = upload(api, args)
    if not args.quiet:
        describe_book(answer["book"], sys.stderr)
    batch = answer.get("batch")
    if batch is None:  # a dry run
        return EXIT_OK
    if args.no_wait:
        print(json.dumps(batch, indent=2))
        return EXIT_OK
    progress = ChapterProgress(sys.stderr, enabled=not args.quiet)
    try:
        batch = wait_for_batch(api, batch, progress, args.poll_interval, args.timeout)
    except KeyboardInterrupt:
        return cancel_interrupted(api, batch, f"batch {batch['id']}")
    combined = batch["outputs"]["combined"]
    if batch["status"] != "succeeded" or combined is None:
        reason = batch.get("error") or batch["outputs"]["assembly"].get("error") or ""
        raise CliError(f"batch {batch['id']} {batch['status']}: {reason}".rstrip(": "), EXIT_JOB)
    out = args.output or f"{batch['book']['title']}.{combined['format']}"
    got = (combined["download_url"], out, combined["bytes"], combined["sha256"], "the audiobook")
    size = fetch(*got) if player is None else fetch_and_play(*got, player)
    manifest = batch["outputs"]["manifest"]
    if args.manifest and manifest is not None:
        fetch(
            manifest["download_url"],
            args.manifest,
            manifest["bytes"],
            manifest["sha256"],
            "the manifest",
        )
    epub = batch["outputs"].get("read_along")
    if args.read_along and epub is not None:
        fetch(epub["download_url"], args.read_along, epub["bytes"], epub["sha256"], "the EPUB")
    if out != "-" and not args.quiet:
        note(
            f"wrote {out} ({size} bytes, {combined['duration_s']:.1f}s, "
            f"{len(batch['items'])} chapters) from batch {batch['id']}"
        )
    return EXIT_OK
