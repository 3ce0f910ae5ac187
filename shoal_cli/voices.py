"""``shoal voices``: keep the tenant's voices (reference recordings, uploaded once).

::

    shoal voices add "Narrator" take1.wav take2.wav --text "First take." --text "Second."
    shoal voices list [--tag warm] [--title narr]
    shoal voices show ID                              # the voice as JSON, sample URLs too
    shoal voices preview ID -o sample.mp3             # hear it first
    shoal voices rm ID

Jobs and books name them: ``shoal narrate --voice ID``, ``shoal book --voice ID``
(an id ``voice_…`` is a shoal voice; any other is a provider voice model id).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
from pathlib import Path
from typing import Any

from shoal_cli.client import EXIT_JOB, EXIT_OK, EXIT_USAGE, Api, CliError, note, path_part, poll

#: The prefix of shoal's voice ids; other ``--voice`` values are provider model ids.
VOICE_ID_PREFIX = "voice_"


def voice_choice(value: str) -> dict[str, str]:
    """The request fields of ``--voice VALUE``: a shoal voice, or a provider model id."""
    if value.startswith(VOICE_ID_PREFIX):
        return {"voice": value}
    return {"reference_id": value}


def _report(voice: dict[str, Any]) -> None:
    print(voice["id"])
    line = f"{voice['title']}: {voice['sample_count']} samples, {voice['seconds']:g} s"
    note(f"{line}, {voice['state']}")


def cmd_add(api: Api, args: argparse.Namespace) -> int:
    """``shoal voices add TITLE FILE...``: print the new voice's id."""
    if args.text and len(args.text) != len(args.files):
        raise CliError(
            f"{len(args.text)} --text for {len(args.files)} files: one per file, or none",
            EXIT_USAGE,
        )
    files = []
    for path in args.files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from exc
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        files.append(("files", (path.name, data, kind)))
    form: dict[str, Any] = {"title": args.title, "tags": ",".join(args.tag)}
    form |= {"texts": args.text} if args.text else {}
    form |= {"description": args.description} if args.description else {}
    form |= {"language": args.language} if args.language else {}
    _report(api.json("POST", "/v1/voices", data=form, files=files))
    return EXIT_OK


def cmd_list(api: Api, args: argparse.Namespace) -> int:
    """``shoal voices list``: one line a voice, every page (or the API's JSON)."""
    params: dict[str, Any] = {k: v for k, v in (("tag", args.tag), ("title", args.title)) if v}
    voices: list[dict[str, Any]] = []
    while True:
        page = api.json("GET", "/v1/voices", params=params)
        voices += page["data"]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    if args.json:
        print(json.dumps(voices, indent=2, ensure_ascii=False))
        return EXIT_OK
    for v in voices:
        tags = f"  [{', '.join(v['tags'])}]" if v["tags"] else ""
        print(f"{v['id']}  {v['state']:<8} {v['seconds']:>6.1f} s  {v['title']}{tags}")
    return EXIT_OK


def cmd_show(api: Api, args: argparse.Namespace) -> int:
    """``shoal voices show ID``: the voice, samples and all, as JSON."""
    path = f"/v1/voices/{path_part(args.voice_id, 'voice id')}"
    print(json.dumps(api.json("GET", path), indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_preview(api: Api, args: argparse.Namespace) -> int:
    """``shoal voices preview ID [-o FILE]``: render a short sample and download it."""
    # Imported here: shoal_cli.jobs imports this module (voice_choice).
    from shoal_cli.jobs import TERMINAL, download

    path = f"/v1/voices/{path_part(args.voice_id, 'voice id')}/preview"
    body: dict[str, Any] = {"format": args.format} | ({"text": args.text} if args.text else {})
    made = api.json("POST", path, json=body)
    what = f"preview {made['id']}"
    job = poll(
        api, made, what=what, report=lambda _: None, finished=TERMINAL, interval=0.5, timeout=300
    )
    if job["status"] != "succeeded":
        err = job.get("error") or {}
        raise CliError(f"preview {job['id']} {job['status']}: {err.get('message')}", EXIT_JOB)
    out = args.output or f"{args.voice_id}-preview.{args.format}"
    size = download(api, job, out)
    if out != "-":
        note(f"wrote {out} ({size} bytes) from job {job['id']}")
    return EXIT_OK


def cmd_rm(api: Api, args: argparse.Namespace) -> int:
    """``shoal voices rm ID``: delete it (jobs already done keep their audio)."""
    api.request("DELETE", f"/v1/voices/{path_part(args.voice_id, 'voice id')}")
    print(f"{args.voice_id} deleted")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Register ``voices`` and its subcommands on ``shoal``'s subcommands."""
    voices = sub.add_parser(
        "voices", help="voices from your recordings: add, list, show, preview, rm"
    )
    cmds = voices.add_subparsers(dest="voices_command", required=True, metavar="ACTION")
    add = cmds.add_parser("add", help="upload recordings as a voice; prints its id")
    add.add_argument("title", help="a title for people")
    add.add_argument("files", type=Path, nargs="+", help="1-20 recordings, 3-60 s each")
    add.add_argument("--text", action="append", default=[], help="each file's transcript, in order")
    add.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    add.add_argument("--description", help="for people")
    add.add_argument("--language", help="BCP 47, e.g. en or en-GB")
    add.set_defaults(run=cmd_add)
    ls = cmds.add_parser("list", help="list the voices")
    ls.add_argument("--tag", help="only voices with this tag")
    ls.add_argument("--title", help="only voices whose title contains this")
    ls.add_argument("--json", action="store_true", help="the API's answer as JSON")
    ls.set_defaults(run=cmd_list)
    show = cmds.add_parser("show", help="print a voice as JSON")
    show.add_argument("voice_id", metavar="ID")
    show.set_defaults(run=cmd_show)
    pre = cmds.add_parser("preview", help="render a short sample in a voice and download it")
    pre.add_argument("voice_id", metavar="ID")
    pre.add_argument("--text", help="what to say (default: a short standard sentence)")
    pre.add_argument("--format", default="mp3", help="mp3, wav, opus, … (default mp3)")
    pre.add_argument("-o", "--output", help="the file (default: ID-preview.FORMAT; - for stdout)")
    pre.set_defaults(run=cmd_preview)
    rm = cmds.add_parser("rm", help="delete a voice")
    rm.add_argument("voice_id", metavar="ID")
    rm.set_defaults(run=cmd_rm)
