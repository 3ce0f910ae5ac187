"""``shoal lexicons``: keep the tenant's pronunciation lexicons.

::

    shoal lexicons add NAMES --rule "Hermione=Her-my-oh-nee" --rule "SQL=sequel"
    shoal lexicons add FANTASY --pls fantasy.pls      # a W3C PLS file
    shoal lexicons add NAMES --rules rules.json       # [{"grapheme": ..., "alias": ...}]
    shoal lexicons list
    shoal lexicons show ID                            # the lexicon as JSON
    shoal lexicons replace ID NAMES --rule "Hermione=Hermy"   # its next version
    shoal lexicons export ID -o names.pls             # as PLS
    shoal lexicons rm ID

Jobs and books name them: ``shoal narrate --lexicon ID``, ``shoal book --lexicon ID``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shoal_cli.client import EXIT_OK, EXIT_USAGE, Api, CliError, note, path_part


def _rule(value: str) -> dict[str, Any]:
    grapheme, sep, alias = value.partition("=")
    if not sep or not grapheme.strip() or not alias.strip():
        raise argparse.ArgumentTypeError(f"not GRAPHEME=ALIAS: {value!r}")
    return {"grapheme": grapheme.strip(), "alias": alias.strip()}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}", EXIT_USAGE) from exc


def lexicon_body(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST``/``PUT /v1/lexicons`` body for ``add`` and ``replace``."""
    sources = [args.pls is not None, args.rules is not None, bool(args.rule)]
    if sum(sources) != 1:
        raise CliError(
            "give one of --pls FILE, --rules FILE or --rule G=A (repeatable)", EXIT_USAGE
        )
    body: dict[str, Any] = {"name": args.name}
    if args.pls is not None:
        body |= {"pls": _read(args.pls), "case_sensitive": not args.ignore_case}
        return body
    if args.rules is not None:
        try:
            rules = json.loads(_read(args.rules))
        except ValueError as exc:
            raise CliError(f"{args.rules}: not JSON ({exc})", EXIT_USAGE) from exc
        body["rules"] = rules.get("rules") if isinstance(rules, dict) else rules
    else:
        body["rules"] = args.rule
    if args.case_sensitive:
        body["rules"] = [r | {"case_sensitive": True} for r in body["rules"]]
    return body


def _report(lexicon: dict[str, Any]) -> None:
    print(lexicon["id"])
    note(f"{lexicon['name']}: version {lexicon['version']}, {lexicon['rule_count']} rules")
    if lexicon["not_applied"]:
        shown = ", ".join(lexicon["not_applied"][:5])
        note(f"not applied (phonemes only; no provider here takes them): {shown}")


def cmd_add(api: Api, args: argparse.Namespace) -> int:
    """``shoal lexicons add NAME ...``: print the new lexicon's id."""
    _report(api.json("POST", "/v1/lexicons", json=lexicon_body(args)))
    return EXIT_OK


def cmd_replace(api: Api, args: argparse.Namespace) -> int:
    """``shoal lexicons replace ID NAME ...``: the lexicon's next version."""
    path = f"/v1/lexicons/{path_part(args.lexicon_id, 'lexicon id')}"
    _report(api.json("PUT", path, json=lexicon_body(args)))
    return EXIT_OK


def cmd_list(api: Api, args: argparse.Namespace) -> int:
    """``shoal lexicons list``: one line a lexicon (or the API's JSON)."""
    page = api.json("GET", "/v1/lexicons")
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    for lex in page["data"]:
        print(f"{lex['id']}  v{lex['version']:<3} {lex['rule_count']:>5} rules  {lex['name']}")
    return EXIT_OK


def cmd_show(api: Api, args: argparse.Namespace) -> int:
    """``shoal lexicons show ID``: the lexicon, rules and all, as JSON."""
    path = f"/v1/lexicons/{path_part(args.lexicon_id, 'lexicon id')}"
    print(json.dumps(api.json("GET", path), indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_export(api: Api, args: argparse.Namespace) -> int:
    """``shoal lexicons export ID [-o FILE]``: the lexicon as a PLS document."""
    path = f"/v1/lexicons/{path_part(args.lexicon_id, 'lexicon id')}/export"
    document = api.request("GET", path).content
    if args.output in (None, "-"):
        sys.stdout.buffer.write(document)
        sys.stdout.flush()
    else:
        try:
            Path(args.output).write_bytes(document)
        except OSError as exc:
            raise CliError(f"cannot write {args.output}: {exc.strerror}", EXIT_USAGE) from exc
    return EXIT_OK


def cmd_rm(api: Api, args: argparse.Namespace) -> int:
    """``shoal lexicons rm ID``: delete it (jobs that used it keep their text)."""
    api.request("DELETE", f"/v1/lexicons/{path_part(args.lexicon_id, 'lexicon id')}")
    print(f"{args.lexicon_id} deleted")
    return EXIT_OK


def _contents(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="a name for people")
    p.add_argument("--pls", type=Path, help="a W3C PLS file")
    p.add_argument("--rules", type=Path, help="a JSON file: a list of rules")
    p.add_argument(
        "--rule", type=_rule, action="append", default=[], help="GRAPHEME=ALIAS (repeatable)"
    )
    p.add_argument(
        "--case-sensitive", action="store_true", help="--rule/--rules match their case only"
    )
    p.add_argument("--ignore-case", action="store_true", help="--pls graphemes match in any case")


def add_parser(sub: Any) -> None:
    """Register ``lexicons`` and its subcommands on ``shoal``'s subcommands."""
    lex = sub.add_parser("lexicons", help="pronunciation lexicons: add, list, show, export, rm")
    cmds = lex.add_subparsers(dest="lexicons_command", required=True, metavar="ACTION")
    add = cmds.add_parser("add", help="create a lexicon; prints its id")
    _contents(add)
    add.set_defaults(run=cmd_add)
    rep = cmds.add_parser("replace", help="replace a lexicon's rules (its next version)")
    rep.add_argument("lexicon_id", metavar="ID")
    _contents(rep)
    rep.set_defaults(run=cmd_replace)
    ls = cmds.add_parser("list", help="list the lexicons")
    ls.add_argument("--json", action="store_true", help="the API's answer as JSON")
    ls.set_defaults(run=cmd_list)
    show = cmds.add_parser("show", help="print a lexicon as JSON")
    show.add_argument("lexicon_id", metavar="ID")
    show.set_defaults(run=cmd_show)
    export = cmds.add_parser("export", help="write a lexicon as a PLS file")
    export.add_argument("lexicon_id", metavar="ID")
    export.add_argument("-o", "--output", help="the file (default: stdout)")
    export.set_defaults(run=cmd_export)
    rm = cmds.add_parser("rm", help="delete a lexicon")
    rm.add_argument("lexicon_id", metavar="ID")
    rm.set_defaults(run=cmd_rm)
