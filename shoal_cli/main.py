"""``shoal``: the command line for people, a thin client of the HTTP API.

::

    shoal narrate "Hello there." --voice REF_ID --format mp3 -o hello.mp3
    shoal narrate --file chapter1.txt --voice REF_ID --format m4a --speed 1.1 -o ch1.m4a
    shoal status JOB_ID          # the job as JSON
    shoal jobs [--status running] [--limit 20]
    shoal cancel JOB_ID
    shoal hash-key KEY           # SHA-256 hex of an API key, for SHOAL_TENANTS (offline)
    shoal book book.epub -o book.m4b   # a whole book to one audiobook
    shoal lexicons add NAMES --rule "Hermione=Her-my-oh-nee"   # then --lexicon ID

The API is at ``$SHOAL_API_URL`` (default ``http://127.0.0.1:8000``, or
``--api-url``) and every call but ``hash-key`` sends ``$SHOAL_API_KEY`` as a
Bearer token.

The commands live beside this module, which only parses and dispatches:
:mod:`shoal_cli.jobs` (narrate, status, jobs, cancel), :mod:`shoal_cli.books`
(book), :mod:`shoal_cli.lexicons` (lexicons), :mod:`shoal_cli.keys` (hash-key),
all over :mod:`shoal_cli.client`.

Exit status: 0 done; 1 the API refused a request or could not be reached; 2
bad usage; 3 the job failed or was canceled; 130 interrupted.  Errors go to
stderr as ``shoal: <message>``, with the API's own message when it sent one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from shoal_cli import books, jobs, keys, lexicons, voices
from shoal_cli.client import (
    DEFAULT_API_URL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Api,
    CliError,
    note,
)


def build_parser() -> argparse.ArgumentParser:
    """``shoal``'s arguments: each subcommand sets ``run(api, args)``, or ``offline(args)``."""
    parser = argparse.ArgumentParser(
        prog="shoal",
        description="Narrate texts with a shoal API, and look after the jobs.",
        epilog=f"Environment: SHOAL_API_URL (default {DEFAULT_API_URL}), SHOAL_API_KEY.",
    )
    parser.add_argument("--api-url", help="the API's base URL (default: $SHOAL_API_URL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    jobs.add_parsers(sub)
    books.add_parser(sub)
    lexicons.add_parser(sub)
    voices.add_parser(sub)
    keys.add_parser(sub)
    return parser


def _fail(message: str, code: int) -> NoReturn:
    note(f"shoal: {message}")
    raise SystemExit(code)


def _run(args: argparse.Namespace) -> int:
    offline = getattr(args, "offline", None)
    if offline is not None:
        return int(offline(args))
    key = os.environ.get("SHOAL_API_KEY")
    if not key:
        raise CliError("SHOAL_API_KEY is not set (your tenant's API key)", EXIT_USAGE)
    url = args.api_url or os.environ.get("SHOAL_API_URL") or DEFAULT_API_URL
    api = Api(url, key)
    try:
        return int(args.run(api, args))
    finally:
        api.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``shoal``; returns the exit status (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
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
