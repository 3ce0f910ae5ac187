"""``--play``: which player is chosen, what is said when there is none, and the tee.

The choice is pure: PATH points at a folder of this test holding (or not)
executables named ``mpv`` and ``ffplay``, which ``shutil.which`` finds without
running them.  The tee is an integration test: a stand-in ``mpv`` (a shell
script that keeps what it reads, because no real player can be heard in a
test) is fed by a real download from a local HTTP server.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal_cli import main as cli
from shoal_cli.client import EXIT_USAGE, CliError
from shoal_cli.play import NO_PLAYER, PLAYERS, choose_player, fetch_and_play, require_player

AUDIO = bytes(range(256)) * 2048  # 512 KiB: several chunks


def _programs(folder: Path, *names: str, script: str = "#!/bin/sh\nexit 0\n") -> Path:
    folder.mkdir(exist_ok=True)
    for name in names:
        path = folder / name
        path.write_text(script)
        path.chmod(0o755)
    return folder


def test_mpv_is_chosen_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(_programs(tmp_path / "bin", "mpv", "ffplay")))
    player = choose_player()
    assert player is not None and player.name == "mpv"
    assert player.argv[0] == str(tmp_path / "bin" / "mpv") and player.argv[-1] == "-"


def test_ffplay_when_there_is_no_mpv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(_programs(tmp_path / "bin", "ffplay")))
    player = choose_player()
    assert player is not None and player.name == "ffplay"
    assert "-nodisp" in player.argv and "-autoexit" in player.argv


def test_neither_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(_programs(tmp_path / "bin")))
    assert choose_player() is None
    with pytest.raises(CliError) as caught:
        require_player()
    assert caught.value.code == EXIT_USAGE
    assert "mpv" in caught.value.message and "ffplay" in caught.value.message
    assert "install" in caught.value.message.lower()
    assert [p.name for p in PLAYERS] == ["mpv", "ffplay"]


@pytest.mark.parametrize(
    "argv",
    [
        ["narrate", "Hello.", "--play"],
        ["book", "missing.epub", "--play"],
    ],
)
def test_no_player_stops_the_command_before_anything_is_sent(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Pure: a request to the API would be a TCP connection, which this tier refuses.
    monkeypatch.setenv("PATH", str(_programs(tmp_path / "bin")))
    monkeypatch.setenv("SHOAL_API_KEY", "k")
    monkeypatch.setenv("SHOAL_API_URL", "http://127.0.0.1:9")
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == EXIT_USAGE
    assert NO_PLAYER in capsys.readouterr().err


def test_play_refuses_stdout_as_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(_programs(tmp_path / "bin", "mpv")))
    player = require_player()
    with pytest.raises(CliError, match="-o FILE"):
        fetch_and_play("http://127.0.0.1:9/x", "-", None, None, "the audio", player)


class _Audio(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Content-Length", str(len(AUDIO)))
        self.end_headers()
        self.wfile.write(AUDIO)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def audio_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Audio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/audio.mp3"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.integration
def test_the_player_hears_every_byte_the_file_gets(
    audio_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard = tmp_path / "heard.bin"
    cat = shutil.which("cat")  # found now: PATH is the test's own folder below
    stand_in = f'#!/bin/sh\nexec {cat} > "{heard}"\n'  # reads stdin to the end, as a player does
    monkeypatch.setenv("PATH", f"{_programs(tmp_path / 'bin', 'mpv', script=stand_in)}")
    out = tmp_path / "book.mp3"
    size = fetch_and_play(
        audio_url, str(out), len(AUDIO), hashlib.sha256(AUDIO).hexdigest(), "x", require_player()
    )
    assert size == len(AUDIO)
    assert out.read_bytes() == AUDIO and heard.read_bytes() == AUDIO
    assert sorted(os.listdir(tmp_path)) == ["bin", "book.mp3", "heard.bin"]  # no .part left


@pytest.mark.integration
def test_a_corrupt_download_leaves_no_file(
    audio_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in = f"#!/bin/sh\nexec {shutil.which('cat')} >/dev/null\n"
    monkeypatch.setenv("PATH", str(_programs(tmp_path / "bin", "mpv", script=stand_in)))
    out = tmp_path / "x.mp3"
    with pytest.raises(CliError, match="corrupt"):
        fetch_and_play(audio_url, str(out), len(AUDIO), "0" * 64, "x", require_player())
    assert not out.exists() and not (tmp_path / ".x.mp3.part").exists()
