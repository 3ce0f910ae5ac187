"""``shoal hash-key``: the SHA-256 of an API key, as ``SHOAL_TENANTS`` lists it (offline)."""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import Any

from shoal_cli.client import EXIT_OK, EXIT_USAGE, CliError


def hash_key(key: str) -> str:
    """The SHA-256 hex of an API key, as ``SHOAL_TENANTS``' ``key_sha256`` lists it."""
    return hashlib.sha256(key.encode()).hexdigest()


def cmd_hash_key(args: argparse.Namespace) -> int:
    """Print the hash of the key given, or of the first line of stdin."""
    key = sys.stdin.readline().rstrip("\r\n") if args.key in (None, "-") else args.key
    if not key:
        raise CliError("no key given", EXIT_USAGE)
    print(hash_key(key))
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Register ``hash-key`` on ``shoal``'s subcommands; it needs no API."""
    h = sub.add_parser("hash-key", help="print the SHA-256 of an API key, for SHOAL_TENANTS")
    h.add_argument("key", nargs="?", metavar="KEY", help="the key (- or nothing: read stdin)")
    h.set_defaults(offline=cmd_hash_key)
