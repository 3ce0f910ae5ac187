"""``--play``: hear the audio while it downloads, through ``mpv`` or ``ffplay``.

``shoal narrate --play`` and ``shoal book --play`` hand the finished file to a
player as its bytes arrive: each chunk of the download goes both to the file
(written beside it, kept only once complete and verified, as without
``--play``) and to the player's standard input, so listening starts with the
first chunk, much as Fish Audio's own example pipes its stream to ``mpv``.

Which player is a pure choice (:func:`choose_player`): ``mpv`` if it is on
PATH, else ``ffplay`` (from FFmpeg), else none, and then the command says how
to get one (:data:`NO_PLAYER`) before anything is submitted.  Closing the
player early stops only the listening; the download carries on.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from shoal_cli.client import EXIT_USAGE, CliError, describe_error, note


@dataclass(frozen=True, slots=True)
class Player:
    """A program that plays audio from its standard input."""

    name: str
    argv: tuple[str, ...]  # the command, reading from stdin ("-")


#: The players tried, in order: mpv first (it starts playing soonest), then FFmpeg's ffplay.
PLAYERS = (
    Player("mpv", ("mpv", "--no-video", "--really-quiet", "--force-window=no", "-")),
    Player("ffplay", ("ffplay", "-nodisp", "-autoexit", "-loglevel", "error", "-i", "-")),
)

NO_PLAYER = (
    "--play needs mpv or ffplay, and neither is on PATH. Install one: "
    "`apt install mpv` (Debian, Ubuntu), `brew install mpv` (macOS), "
    "or FFmpeg, which includes ffplay; or leave out --play and open the file afterwards"
)


def choose_player(which: Callable[[str], str | None] = shutil.which) -> Player | None:
    """The first of :data:`PLAYERS` that ``which`` finds, with its full path; None if none."""
    for player in PLAYERS:
        path = which(player.argv[0])
        if path:
            return Player(player.name, (path, *player.argv[1:]))
    return None


def require_player(which: Callable[[str], str | None] = shutil.which) -> Player:
    """:func:`choose_player`, or a usage error saying how to get a player."""
    player = choose_player(which)
    if player is None:
        raise CliError(NO_PLAYER, EXIT_USAGE)
    return player


class PlayerPipe:
    """A running player fed through its stdin; writes after it has gone are dropped."""

    def __init__(self, player: Player) -> None:
        self.player = player
        try:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                player.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise CliError(f"cannot start {player.name}: {exc.strerror}") from exc
        self.open = True

    def write(self, chunk: bytes) -> None:
        """Give the player ``chunk``; if it was closed (the user quit it), stop feeding it."""
        if not self.open or self.proc.stdin is None:
            return
        try:
            self.proc.stdin.write(chunk)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.open = False

    def finish(self) -> None:
        """End of the audio: close the player's input and wait for it to finish playing."""
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        self.proc.wait()

    def stop(self) -> None:
        """Stop the player now (the download failed or was interrupted)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def fetch_and_play(
    url: str, out: str, size: int | None, sha256: str | None, what: str, player: Player
) -> int:
    """Download ``url`` to ``out`` (checked like :func:`shoal_cli.client.fetch`) while
    ``player`` plays it; returns the bytes written, once the player has finished."""
    if out == "-":
        raise CliError("--play writes the audio to a file: give -o FILE, not -o -", EXIT_USAGE)
    target = Path(out)
    part = target.with_name(f".{target.name}.part")
    pipe = PlayerPipe(player)
    note(f"playing {what} with {player.name} as it downloads")
    try:
        got, digest = _tee(url, part, pipe, what)
    except BaseException:
        part.unlink(missing_ok=True)
        pipe.stop()
        raise
    if (size is not None and got != size) or (sha256 and digest != sha256):
        part.unlink(missing_ok=True)
        pipe.stop()
        raise CliError(f"download of {what} is corrupt (got {got} bytes)")
    part.replace(target)
    pipe.finish()
    return got


def _tee(url: str, part: Path, pipe: PlayerPipe, what: str) -> tuple[int, str]:
    """Stream ``url`` into ``part`` and the player; (bytes, SHA-256 hex)."""
    digest = hashlib.sha256()
    got = 0
    try:
        with (
            httpx.stream("GET", url, timeout=60.0, follow_redirects=True) as response,
            _open(part) as sink,
        ):
            if response.status_code >= 400:
                raise CliError(f"download of {what} failed: {describe_error(response)}")
            for chunk in response.iter_bytes(1 << 16):
                sink.write(chunk)
                pipe.write(chunk)
                digest.update(chunk)
                got += len(chunk)
    except httpx.HTTPError as exc:
        raise CliError(f"download of {what} failed: {exc}") from exc
    return got, digest.hexdigest()


@contextlib.contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    try:
        with path.open("wb") as fh:
            yield fh
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}", EXIT_USAGE) from exc
