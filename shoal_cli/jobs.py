"""``shoal narrate``, ``status``, ``jobs`` and ``cancel``: one text to one audio file.

``narrate`` submits the text (``POST /v1/jobs``), draws a progress bar on
stderr while the job runs (polling ``GET /v1/jobs/{id}``), then downloads the
audio through ``GET /v1/jobs/{id}/audio`` and checks its size and SHA-256.
Ctrl-C while it waits cancels the job.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import uuid
from collections.abc import Callable, Sequence
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
    path_part,
    poll,
)
from shoal_cli.play import fetch_and_play, require_player
from shoal_cli.voices import voice_choice

# The API decides what it accepts; these are for help texts and argument checks.
FORMATS = ("mp3", "wav", "opus", "flac", "m4a", "pcm")
STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
TERMINAL = frozenset({"succeeded", "failed", "canceled"})


# -- the API's job calls ---------------------------------------------------------------


def submit(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/jobs``; one Idempotency-Key per submission, so a retry never makes two."""
    headers = {"Idempotency-Key": f"cli-{uuid.uuid4().hex}"}
    return api.json("POST", "/v1/jobs", json=body, headers=headers)


def get_job(api: Api, job_id: str) -> dict[str, Any]:
    """``GET /v1/jobs/{id}``."""
    return api.json("GET", f"/v1/jobs/{path_part(job_id, 'job id')}")


def audio_url(api: Api, job: dict[str, Any]) -> str:
    """Where the audio can be fetched: the API's redirect, else ``download_url``."""
    job_id = path_part(job["id"], "job id")
    response = api.request("GET", f"/v1/jobs/{job_id}/audio", follow_redirects=False)
    location = response.headers.get("location")
    if response.is_redirect and location:
        return str(response.url.join(location))
    url = (job.get("output") or {}).get("download_url")
    if not url:
        raise CliError(f"job {job['id']}: the API gave no download location")
    return str(url)


def download(api: Api, job: dict[str, Any], out: str) -> int:
    """Fetch the job's audio into ``out`` (``-``: stdout), checking size and SHA-256."""
    expected = job.get("output") or {}
    return fetch(
        audio_url(api, job), out, expected.get("bytes"), expected.get("sha256"), f"job {job['id']}"
    )


# -- narrate ---------------------------------------------------------------------------


def request_body(args: argparse.Namespace, text: str) -> dict[str, Any]:
    """The ``POST /v1/jobs`` body for ``narrate``'s options."""
    body: dict[str, Any] = {"text": text, "format": args.format}
    optional = {
        "model": args.model,
        "sample_rate": args.sample_rate,
        "bitrate_kbps": args.bitrate,
        "callback_url": args.callback_url,
        "priority": args.priority,
    }
    body |= {k: v for k, v in optional.items() if v is not None}
    body |= voice_choice(args.voice) if args.voice is not None else {}
    if args.speed is not None or args.volume is not None:
        body["prosody"] = {
            "speed": 1.0 if args.speed is None else args.speed,
            "volume": 0.0 if args.volume is None else args.volume,
        }
    if args.reference is not None:
        try:
            clip = args.reference.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {args.reference}: {exc.strerror}", EXIT_USAGE) from exc
        body["references"] = [
            {"audio": base64.b64encode(clip).decode(), "text": args.reference_text or ""}
        ]
    if args.metadata is not None:
        body["metadata"] = args.metadata
    if args.lexicon:
        body["lexicons"] = args.lexicon
    if args.timestamps is not None or args.captions is not None:
        body["timestamps"] = args.timestamps or "sentence"
    return body


#: Caption formats by file extension, for ``--captions``.
CAPTION_FORMATS = {".vtt": "vtt", ".srt": "srt", ".json": "json"}


def caption_format(path: str) -> str:
    """The caption format ``--captions PATH`` asks for, by its extension."""
    fmt = CAPTION_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise CliError(f"--captions {path}: name a .vtt, .srt or .json file", EXIT_USAGE)
    return fmt


def download_captions(api: Api, job: dict[str, Any], path: str) -> int:
    """Fetch the job's captions in the format ``path``'s extension names, verified."""
    fmt = caption_format(path)
    job_id = path_part(job["id"], "job id")
    response = api.request(
        "GET", f"/v1/jobs/{job_id}/captions", params={"format": fmt}, follow_redirects=False
    )
    location = response.headers.get("location")
    if not (response.is_redirect and location):
        raise CliError(f"job {job['id']}: the API gave no captions location")
    listed: dict[str, Any] = next(
        (c for c in job.get("captions") or [] if c.get("format") == fmt), {}
    )
    url = str(response.url.join(location))
    return fetch(url, path, listed.get("bytes"), listed.get("sha256"), f"job {job['id']}")


def read_text(args: argparse.Namespace) -> str:
    """The text to narrate: the argument, or the ``--file`` (``-``: stdin)."""
    if (args.text is None) == (args.file is None):
        raise CliError("give the text, or --file F (- for stdin), but not both", EXIT_USAGE)
    if args.text is not None:
        return str(args.text)
    try:
        if args.file == "-":
            return sys.stdin.read()
        return Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {args.file}: {exc}", EXIT_USAGE) from exc


class ProgressBar:
    """A one-line bar on a terminal; a line per status change and 10% step otherwise."""

    def __init__(self, stream: IO[str], enabled: bool = True, width: int = 28) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self.width = width
        self.last: tuple[str, int] | None = None
        self.drawn = False

    def update(self, job: dict[str, Any]) -> None:
        """Show ``job``'s status and progress."""
        if not self.enabled:
            return
        status = str(job.get("status"))
        progress = job.get("progress") or {}
        percent = float(progress.get("percent") or 0.0)
        line = f"{job['id']}  {status:<9} " + _bar(percent, self.width) + f" {percent:5.1f}%"
        if progress.get("segments_total"):
            line += f"  {progress['segments_done']}/{progress['segments_total']} segments"
        if progress.get("audio_seconds"):
            line += f"  {progress['audio_seconds']:.1f}s audio"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self.drawn = True
        else:
            step = (status, int(percent // 10))
            if step != self.last:
                self.stream.write(line + "\n")
            self.last = step
        self.stream.flush()

    def done(self) -> None:
        """End the bar's line (on a terminal)."""
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _bar(percent: float, width: int) -> str:
    filled = round(width * max(0.0, min(percent, 100.0)) / 100)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def wait_for(
    api: Api, job: dict[str, Any], bar: ProgressBar, interval: float, timeout: float | None
) -> dict[str, Any]:
    """Poll the job until it finishes, drawing progress; rides out short API outages."""
    job_id = job["id"]
    return poll(
        api,
        job,
        what=f"job {job_id}",
        report=bar.update,
        finished=TERMINAL,
        interval=interval,
        timeout=timeout,
        later=f"; it carries on: shoal status {job_id}",
    )


def cmd_narrate(api: Api, args: argparse.Namespace) -> int:
    """``shoal narrate``: submit, wait with a progress bar, download and verify."""
    text = read_text(args)
    if args.play and args.no_wait:
        raise CliError("--play waits for the audio: leave out --no-wait", EXIT_USAGE)
    player = require_player() if args.play else None  # before anything is spent
    if args.captions is not None:
        caption_format(args.captions)  # a bad name is refused before anything is spent
    job = submit(api, request_body(args, text))
    if args.no_wait:
        print(json.dumps(job, indent=2))
        return EXIT_OK
    bar = ProgressBar(sys.stderr, enabled=not args.quiet)
    try:
        job = wait_for(api, job, bar, args.poll_interval, args.timeout)
    except KeyboardInterrupt:
        bar.done()
        return cancel_interrupted(api, job, f"job {job['id']}")
    finally:
        bar.done()
    if job["status"] != "succeeded":
        err = job.get("error") or {}
        reason = f": {err.get('code')}: {err.get('message')}" if err else ""
        raise CliError(f"job {job['id']} {job['status']}{reason}", EXIT_JOB)
    out = args.output or f"{job['id']}.{args.format}"
    if player is None:
        size = download(api, job, out)
    else:
        expected = job.get("output") or {}
        size = fetch_and_play(
            audio_url(api, job),
            out,
            expected.get("bytes"),
            expected.get("sha256"),
            f"job {job['id']}",
            player,
        )
    if out != "-" and not args.quiet:
        seconds = (job.get("output") or {}).get("duration_s", 0.0)
        note(f"wrote {out} ({size} bytes, {seconds:.1f}s of {args.format}) from job {job['id']}")
    if args.captions is not None:
        size = download_captions(api, job, args.captions)
        if not args.quiet:
            note(f"wrote {args.captions} ({size} bytes of captions) from job {job['id']}")
    return EXIT_OK


# -- status, jobs, cancel ----------------------------------------------------------------


def cmd_status(api: Api, args: argparse.Namespace) -> int:
    """``shoal status ID``: the job as JSON."""
    print(json.dumps(get_job(api, args.job_id), indent=2))
    return EXIT_OK


def cmd_jobs(api: Api, args: argparse.Namespace) -> int:
    """``shoal jobs``: a page of jobs as a table (or JSON), newest first."""
    query = {"status": args.status, "batch_id": args.batch}
    return show_page(api, "jobs", query, args, format_table)


def show_page(
    api: Api,
    listing: str,
    query: dict[str, Any],
    args: argparse.Namespace,
    table: Callable[[Sequence[dict[str, Any]]], str],
) -> int:
    """One page of ``GET /v1/<listing>`` (``args``: ``limit``, ``cursor``, ``json``), printed
    as JSON or as ``table`` makes it, with the command for the next page if there is one."""
    query = {**query, "limit": args.limit, "cursor": args.cursor}
    params = {k: v for k, v in query.items() if v is not None}
    page = api.json("GET", f"/v1/{listing}", params=params)
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    print(table(page.get("data", [])))
    if page.get("next_cursor"):
        note(f"more: shoal {listing} --cursor {page['next_cursor']}")
    return EXIT_OK


def format_table(jobs: Sequence[dict[str, Any]]) -> str:
    """Jobs as an aligned text table, one row each."""
    header = ("ID", "STATUS", "PROGRESS", "FORMAT", "AUDIO", "CREATED")
    rows = [header]
    for job in jobs:
        progress = job.get("progress") or {}
        output = job.get("output") or {}
        seconds = output.get("duration_s", progress.get("audio_seconds", 0.0)) or 0.0
        rows.append(
            (
                str(job.get("id", "")),
                str(job.get("status", "")),
                f"{float(progress.get('percent') or 0):.0f}%",
                str((job.get("request") or {}).get("format", "")),
                f"{float(seconds):.1f}s",
                str(job.get("created_at", ""))[:19].replace("T", " "),
            )
        )
    return align(rows)


def align(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells (the first the header) as text columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def cmd_cancel(api: Api, args: argparse.Namespace) -> int:
    """``shoal cancel ID``: cancel a queued or running job."""
    job = api.json("POST", f"/v1/jobs/{path_part(args.job_id, 'job id')}/cancel")
    print(f"{job['id']} {job['status']}")
    return EXIT_OK


# -- the parser ----------------------------------------------------------------------------


def _json_object(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return parsed


def add_parsers(sub: Any) -> None:
    """Register ``narrate``, ``status``, ``jobs`` and ``cancel`` on ``shoal``'s subcommands."""
    n = sub.add_parser("narrate", help="turn a text into an audio file")
    n.add_argument("text", nargs="?", help="the text (or use --file)")
    n.add_argument("-f", "--file", help="read the text from this file (- for stdin)")
    n.add_argument(
        "--voice",
        help="the voice: a shoal voice (voice_…, see `shoal voices`) or a provider "
        "voice model id (reference_id)",
    )
    n.add_argument("--reference", type=Path, help="clone the voice of this audio clip instead")
    n.add_argument("--reference-text", help="what is said in the --reference clip")
    n.add_argument("--format", default="mp3", help=f"output format: {', '.join(FORMATS)} (mp3)")
    n.add_argument("--sample-rate", type=int, help="Hz; default: the format's")
    n.add_argument("--bitrate", type=int, help="kbps, lossy formats")
    n.add_argument("--speed", type=float, help="speaking rate, 0.5–2.0 (1.0)")
    n.add_argument("--volume", type=float, help="gain in dB, -20–20 (0)")
    n.add_argument("--model", help="provider model")
    n.add_argument("--metadata", type=_json_object, help="a JSON object echoed back on the job")
    n.add_argument("--callback-url", help="URL to receive signed job events")
    n.add_argument("--priority", type=int, help="0–9, higher first")
    n.add_argument(
        "--lexicon",
        action="append",
        default=[],
        metavar="ID",
        help="apply this pronunciation lexicon (repeatable, up to 5, first wins)",
    )
    n.add_argument(
        "-o", "--output", help="where to write the audio (- for stdout); default: JOB_ID.FORMAT"
    )
    n.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    n.add_argument(
        "--play", action="store_true", help="play the audio as it downloads (mpv or ffplay)"
    )
    n.add_argument(
        "--timestamps", choices=("sentence", "word"), help="timings to make (with --captions)"
    )
    n.add_argument(
        "--captions", metavar="PATH", help="also write captions: a .vtt, .srt or .json file"
    )
    n.add_argument("--no-wait", action="store_true", help="submit, print the job, and exit")
    n.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    n.add_argument("--poll-interval", type=float, default=0.5, help=argparse.SUPPRESS)
    n.set_defaults(run=cmd_narrate)

    s = sub.add_parser("status", help="print a job as JSON")
    s.add_argument("job_id", metavar="ID")
    s.set_defaults(run=cmd_status)

    j = sub.add_parser("jobs", help="list jobs, newest first")
    j.add_argument("--status", choices=STATUSES)
    j.add_argument("--batch", help="only this batch's jobs")
    j.add_argument("--limit", type=int, default=20)
    j.add_argument("--cursor", help="continue a listing (printed after a full page)")
    j.add_argument("--json", action="store_true", help="the API's page as JSON")
    j.set_defaults(run=cmd_jobs)

    c = sub.add_parser("cancel", help="cancel a queued or running job")
    c.add_argument("job_id", metavar="ID")
    c.set_defaults(run=cmd_cancel)
