"""`triolb config diff | commit | confirm | rollback | history`: the configuration datastores
of a running node, through its API (`web/routes_config.py`); commit, confirm and rollback
send the bearer token of `web.token_file`. `validate` and `show` (in `cli`) work on files."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .cli_remote import ApiError, add_node_options, api_get, api_post, guard, read_token

__all__ = ["add_config_commands"]

EXIT_INVALID = 2


def _candidate(path: str) -> dict[str, Any]:
    """The body naming a candidate file: its text, and its directory for relative paths."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ApiError(f"{path}: {reason}") from None
    return {"config": text, "base_dir": str(file.resolve().parent)}


def config_diff(args: argparse.Namespace) -> int:
    answer = api_post(args.node, "/api/v1/config/check", None, _candidate(args.file))
    if not answer["valid"]:
        print(f"{args.file}: {len(answer['errors'])} error(s)")
        for error in answer["errors"]:
            print(f"  {error}")
        return EXIT_INVALID
    print(answer["diff"] or "no changes", end="" if answer["diff"] else "\n")
    return 0


def config_commit(args: argparse.Namespace) -> int:
    body = _candidate(args.file)
    if args.comment:
        body["comment"] = args.comment
    if args.confirmed is not None:
        body["confirmed"] = args.confirmed
    answer = api_post(args.node, "/api/v1/config/commit", read_token(args.token_file), body)
    if _print_change(answer, "committed") and answer.get("confirm_within_s") is not None:
        print(
            f"confirm within {answer['confirm_within_s']:g} s (`triolb config confirm`), "
            "or the previous configuration comes back"
        )
    return 0


def config_confirm(args: argparse.Namespace) -> int:
    answer = api_post(args.node, "/api/v1/config/confirm", read_token(args.token_file), {})
    print(f"confirmed: commit {answer['commit_id']}")
    return 0


def config_rollback(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"back": args.back}
    if args.comment:
        body["comment"] = args.comment
    answer = api_post(args.node, "/api/v1/config/rollback", read_token(args.token_file), body)
    _print_change(answer, "rolled back")
    return 0


def _print_change(answer: dict[str, Any], done: str) -> bool:
    """Print a commit's outcome (its diff and numbers); whether it changed anything."""
    if not answer["changed"]:
        print(f"no changes (generation {answer['generation']})")
        return False
    print(answer["diff"], end="")
    print(f"{done}: commit {answer['commit_id']}, generation {answer['generation']}")
    return True


def config_history(args: argparse.Namespace) -> int:
    answer = api_get(args.node, "/api/v1/config/history")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"{'#':>3} {'id':>5}  {'time (UTC)':19}  {'origin':15} {'outcome':15} comment")
    running = 0
    for record in answer["commits"]:
        back = "" if record["outcome"] == "failed" else str(running)
        running += record["outcome"] != "failed"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record["time"]))
        print(
            f"{back:>3} {record['id']:>5}  {when}  {record['origin']:15} "
            f"{record['outcome']:15} {record['comment'] or ''}"
        )
        if args.diff and record["diff"]:
            sys.stdout.write("".join(f"      {line}\n" for line in record["diff"].splitlines()))
    return 0


def add_config_commands(config: Any) -> None:
    """The remote `config` subcommands, added to the `config` subparsers of `cli`."""

    def remote(name: str, help: str, *, changes: bool) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = config.add_parser(name, help=help)
        add_node_options(parser, token=changes)
        return parser

    diff = remote("diff", "candidate FILE against the node's running configuration", changes=False)
    diff.add_argument("file")
    diff.set_defaults(func=guard(config_diff))
    commit = remote("commit", "make FILE the node's running configuration", changes=True)
    commit.add_argument("file")
    commit.add_argument("--comment", help="recorded in the history")
    commit.add_argument(
        "--confirmed",
        type=float,
        metavar="SECONDS",
        help="undo it unless `config confirm` comes within SECONDS",
    )
    commit.set_defaults(func=guard(config_commit))
    confirm = remote("confirm", "keep the confirmed commit waiting for it", changes=True)
    confirm.set_defaults(func=guard(config_confirm))
    rollback = remote(
        "rollback", "make running again the configuration of N changes ago", changes=True
    )
    rollback.add_argument("back", nargs="?", type=int, default=1, metavar="N")
    rollback.add_argument("--comment", help="recorded in the history")
    rollback.set_defaults(func=guard(config_rollback))
    history = remote("history", "the last 50 commits, newest first (# = rollback N)", changes=False)
    history.add_argument("--json", action="store_true")
    history.add_argument("--diff", action="store_true", help="with each commit's diff")
    history.set_defaults(func=guard(config_history))
