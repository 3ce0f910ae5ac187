"""``shoal``: the command line for people, a thin client of the HTTP API.

::

    shoal narrate "Hello there." --voice REF_ID --format mp3 -o hello.mp3
    shoal narrate --file chapter1.txt --voice REF_ID --format m4a --speed 1.1 -o ch1.m4a
    shoal status JOB_ID          # the job as JSON
    shoal jobs [--status running] [--limit 20]
    shoal cancel JOB_ID
    shoal hash-key KEY           # SHA-256 hex of an API key, for SHOAL_TENANTS (offline)
    shoal book book.epub -o book.m4b   # a whole book to one audiobook (shoal_cli.books)

The API is at ``$SHOAL_API_URL`` (default ``http://127.0.0.1:8000``, or
``--api-url``) and every call but ``hash-key`` sends ``$SHOAL_API_KEY`` as a
Bearer token.  ``narrate`` submits the text, draws a progress bar on stderr
while the job runs (polling ``GET /v1/jobs/{id}``), then downloads the audio
through ``GET /v1/jobs/{id}/audio`` and checks its size and SHA-256.  Ctrl-C
while it waits cancels the job.

Exit status: 0 done; 1 the API refused a request or could not be reached; 2
bad usage; 3 the job failed or was canceled; 130 interrupted.  Errors go to
stderr as ``shoal: <message>``, with the API's own message when it sent one.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"
FORMATS = ("mp3", "wav", "opus", "flac", "m4a", "pcm")  # for help; the API decides
STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
TERMINAL = frozenset({"succeeded", "failed", "canceled"})

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_JOB, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: How long ``narrate`` keeps polling through connection errors before it gives up.
UNREACHABLE_GRACE = 60.0


class CliError(Exception):
    """Ends the command with ``message`` on stderr and exit status ``code``.

    ::

        CliError
        ├── Unreachable   no answer from the API (connection refused, timeout)
        └── Refused       the API answered 4xx/5xx; ``status``, ``retry_after``
    """

    def __init__(self, message: str, code: int = EXIT_API) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Unreachable(CliError):
    """The API did not answer."""


class Refused(CliError):
    """The API answered with an error status."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(describe_error(response))
        self.status = response.status_code
        self.retry_after: float | None
        try:
            self.retry_after = float(response.headers.get("retry-after", ""))
        except ValueError:
            self.retry_after = None


# -- talking to the API --------------------------------------------------------------


def describe_error(response: httpx.Response) -> str:
    """What went wrong, in the API's own words: ``{"error": {code, message, field}}``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        message = str(err.get("message") or err.get("code") or "error")
        field = f" [{err['field']}]" if err.get("field") else ""
        code = f" {err['code']}" if err.get("code") else ""
        return f"HTTP {response.status_code}{code}{field}: {message}"
    if isinstance(body, dict) and "detail" in body:
        return f"HTTP {response.status_code}: {body['detail']}"
    text = response.text.strip()[:300] or response.reason_phrase
    return f"HTTP {response.status_code}: {text}"


class Api:
    """The few calls the CLI makes, with errors turned into :class:`CliError`."""

    def __init__(self, url: str, key: str | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        headers = {"user-agent": "shoal-cli/1", "accept": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        # Connection attempts are retried by the transport; requests are not.
        transport = httpx.HTTPTransport(retries=2)
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise Unreachable(f"the API at {self.url} did not answer in time ({exc})") from exc
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach the API at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise Refused(response)
        return response

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        # One key per submission: a retried POST can never make a second job.
        headers = {"Idempotency-Key": f"cli-{uuid.uuid4().hex}"}
        return dict(self.request("POST", "/v1/jobs", json=body, headers=headers).json())

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/jobs/{_path_part(job_id)}").json())

    def jobs(self, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        return dict(self.request("GET", "/v1/jobs", params=query).json())

    def cancel(self, job_id: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/jobs/{_path_part(job_id)}/cancel").json())

    def audio_url(self, job: dict[str, Any]) -> str:
        """Where the audio can be fetched: the API's redirect, else ``download_url``."""
        response = self.request(
            "GET", f"/v1/jobs/{_path_part(job['id'])}/audio", follow_redirects=False
        )
        location = response.headers.get("location")
        if response.is_redirect and location:
            return str(response.url.join(location))
        url = (job.get("output") or {}).get("download_url")
        if not url:
            raise CliError(f"job {job['id']}: the API gave no download location")
        return str(url)


def _path_part(job_id: str) -> str:
    if not job_id or "/" in job_id or job_id in (".", ".."):
        raise CliError(f"not a job id: {job_id!r}", EXIT_USAGE)
    return job_id


# -- narrate -------------------------------------------------------------------------


def request_body(args: argparse.Namespace, text: str) -> dict[str, Any]:
    """The ``POST /v1/jobs`` body for ``narrate``'s options."""
    body: dict[str, Any] = {"text": text, "format": args.format}
    optional = {
        "reference_id": args.voice,
        "model": args.model,
        "sample_rate": args.sample_rate,
        "bitrate_kbps": args.bitrate,
        "callback_url": args.callback_url,
        "priority": args.priority,
    }
    body |= {k: v for k, v in optional.items() if v is not None}
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
    return body


def read_text(args: argparse.Namespace) -> str:
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
    deadline = None if timeout is None else time.monotonic() + timeout
    unreachable_since: float | None = None
    while True:
        bar.update(job)
        if job.get("status") in TERMINAL:
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(
                f"job {job['id']} still {job.get('status')} after {timeout:g}s; "
                f"it carries on: shoal status {job['id']}"
            )
        time.sleep(interval)
        try:
            job = api.job(job["id"])
            unreachable_since = None
        except Refused as exc:
            if exc.status != 429:
                raise
            time.sleep(min(exc.retry_after or 1.0, 30.0))  # polling too fast for the tenant
        except Unreachable as exc:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > UNREACHABLE_GRACE:
                raise CliError(f"{exc.message}; job {job['id']} carries on") from exc


def download(api: Api, job: dict[str, Any], out: str) -> int:
    """Fetch the job's audio into ``out`` (``-``: stdout), checking size and SHA-256."""
    expected = job.get("output") or {}
    return fetch(
        api.audio_url(job), out, expected.get("bytes"), expected.get("sha256"), f"job {job['id']}"
    )


def fetch(url: str, out: str, size: int | None, sha256: str | None, what: str) -> int:
    """Download ``url`` to ``out`` (``-``: stdout), checking size and SHA-256.

    A fresh client, not the API's: a presigned URL must not get the API key."""
    digest = hashlib.sha256()
    got = 0
    target = None if out == "-" else Path(out)
    part = None if target is None else target.with_name(f".{target.name}.part")
    try:
        with httpx.stream("GET", url, timeout=60.0, follow_redirects=True) as response:
            if response.status_code >= 400:
                raise CliError(f"download of {what} failed: {describe_error(response)}")
            with _sink(part) as sink:
                for chunk in response.iter_bytes(1 << 16):
                    sink.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
    except httpx.HTTPError as exc:
        _unlink(part)
        raise CliError(f"download of {what} failed: {exc}") from exc
    except BaseException:
        _unlink(part)
        raise
    if (size is not None and got != size) or (sha256 and digest.hexdigest() != sha256):
        _unlink(part)
        raise CliError(f"download of {what} is corrupt (got {got} bytes)")
    if part is not None and target is not None:
        part.replace(target)
    return got


@contextlib.contextmanager
def _sink(part: Path | None) -> Iterator[IO[bytes]]:
    if part is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        with part.open("wb") as fh:
            yield fh
    except OSError as exc:
        raise CliError(f"cannot write {part}: {exc.strerror}", EXIT_USAGE) from exc


def _unlink(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def cmd_narrate(api: Api, args: argparse.Namespace) -> int:
    text = read_text(args)
    job = api.submit(request_body(args, text))
    if args.no_wait:
        print(json.dumps(job, indent=2))
        return EXIT_OK
    bar = ProgressBar(sys.stderr, enabled=not args.quiet)
    try:
        job = wait_for(api, job, bar, args.poll_interval, args.timeout)
    except KeyboardInterrupt:
        bar.done()
        try:
            api.cancel(job["id"])
            _note(f"interrupted: canceled job {job['id']}")
        except CliError as exc:
            _note(f"interrupted; job {job['id']} was not canceled: {exc.message}")
        return EXIT_INTERRUPTED
    finally:
        bar.done()
    if job["status"] != "succeeded":
        err = job.get("error") or {}
        reason = f": {err.get('code')}: {err.get('message')}" if err else ""
        raise CliError(f"job {job['id']} {job['status']}{reason}", EXIT_JOB)
    out = args.output or f"{job['id']}.{args.format}"
    size = download(api, job, out)
    if out != "-" and not args.quiet:
        seconds = (job.get("output") or {}).get("duration_s", 0.0)
        _note(f"wrote {out} ({size} bytes, {seconds:.1f}s of {args.format}) from job {job['id']}")
    return EXIT_OK


# -- the other commands ----------------------------------------------------------------


def cmd_status(api: Api, args: argparse.Namespace) -> int:
    print(json.dumps(api.job(args.job_id), indent=2))
    return EXIT_OK


def cmd_jobs(api: Api, args: argparse.Namespace) -> int:
    page = api.jobs(status=args.status, batch_id=args.batch, limit=args.limit, cursor=args.cursor)
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    print(format_table(page.get("data", [])))
    if page.get("next_cursor"):
        _note(f"more: shoal jobs --cursor {page['next_cursor']}")
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
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def cmd_cancel(api: Api, args: argparse.Namespace) -> int:
    job = api.cancel(args.job_id)
    print(f"{job['id']} {job['status']}")
    return EXIT_OK


def hash_key(key: str) -> str:
    """The SHA-256 hex of an API key, as ``SHOAL_TENANTS``' ``key_sha256`` lists it."""
    return hashlib.sha256(key.encode()).hexdigest()


def cmd_hash_key(args: argparse.Namespace) -> int:
    key = sys.stdin.readline().rstrip("\r\n") if args.key in (None, "-") else args.key
    if not key:
        raise CliError("no key given", EXIT_USAGE)
    print(hash_key(key))
    return EXIT_OK


# -- entry point -----------------------------------------------------------------------


def _json_object(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal",
        description="Narrate texts with a shoal API, and look after the jobs.",
        epilog=f"Environment: SHOAL_API_URL (default {DEFAULT_API_URL}), SHOAL_API_KEY.",
    )
    parser.add_argument("--api-url", help="the API's base URL (default: $SHOAL_API_URL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    n = sub.add_parser("narrate", help="turn a text into an audio file")
    n.add_argument("text", nargs="?", help="the text (or use --file)")
    n.add_argument("-f", "--file", help="read the text from this file (- for stdin)")
    n.add_argument("--voice", help="the voice: a provider voice model id (reference_id)")
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
        "-o", "--output", help="where to write the audio (- for stdout); default: JOB_ID.FORMAT"
    )
    n.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
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

    from shoal_cli.books import add_parser as add_book_parser  # it builds on this module

    add_book_parser(sub)

    h = sub.add_parser("hash-key", help="print the SHA-256 of an API key, for SHOAL_TENANTS")
    h.add_argument("key", nargs="?", metavar="KEY", help="the key (- or nothing: read stdin)")
    h.set_defaults(run=None)
    return parser


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fail(message: str, code: int) -> NoReturn:
    _note(f"shoal: {message}")
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``shoal``; returns the exit status (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "hash-key":
            return cmd_hash_key(args)
        key = os.environ.get("SHOAL_API_KEY")
        if not key:
            raise CliError("SHOAL_API_KEY is not set (your tenant's API key)", EXIT_USAGE)
        url = args.api_url or os.environ.get("SHOAL_API_URL") or DEFAULT_API_URL
        api = Api(url, key)
        try:
            return int(args.run(api, args))
        finally:
            api.close()
    except CliError as exc:
        _fail(exc.message, exc.code)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # `shoal jobs | head`: the reader went away; nothing to report.
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
