"""The `triolb` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli_actions import add_action_parsers
from .cli_config import add_config_commands
from .cli_dataplane import add_dataplane_parser
from .cli_remote import add_bgp_parser, add_show_parser
from .structlog import configure_logging

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID = 2

REPO_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .daemon import DaemonOptions, run_daemon

    configure_logging(args.log_format, args.log_level)
    try:
        return run_daemon(DaemonOptions(Path(args.config), boot=not args.no_boot))
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"{args.config}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config

    status = EXIT_OK
    for name in args.files:
        try:
            load_config(Path(name))
        except ConfigError as exc:
            print(f"{name}: {len(exc.errors)} error(s)")
            for issue in exc.errors:
                print(f"  {issue}")
            status = EXIT_INVALID
        except OSError as exc:
            print(f"{name}: {exc.strerror or exc}")
            status = EXIT_INVALID
        else:
            print(f"{name}: valid")
    return status


def _cmd_config_show(args: argparse.Namespace) -> int:
    from .config import ConfigError, dump_config, load_config

    try:
        cfg = load_config(Path(args.file))
    except ConfigError as exc:
        print(f"{args.file}: invalid configuration\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"{args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
    sys.stdout.write(dump_config(cfg))
    return EXIT_OK


def _cmd_lab_up(args: argparse.Namespace) -> int:
    from .lab.api import lab_up

    handle = lab_up(args.scenario, persistent=True)
    print(f"lab {handle.prefix} up ({args.scenario}); `triolb lab status`, `triolb lab down`")
    return EXIT_OK


def _cmd_lab_status(args: argparse.Namespace) -> int:
    from .lab.api import lab_status

    labs = lab_status()
    if args.json:
        print(json.dumps(labs, indent=2, default=str))
        return EXIT_OK
    if not labs:
        print("no lab running")
    for lab in labs:
        print(f"{lab['prefix']}  scenario={lab['scenario']}")
        for ns in lab.get("namespaces", []):
            print(f"  netns {ns}")
        for proc in lab.get("processes", []):
            state = "alive" if proc.get("alive") else "dead"
            print(f"  proc  {proc.get('name')} pid={proc.get('pid')} {state} in {proc.get('ns')}")
    return EXIT_OK


def _cmd_lab_down(args: argparse.Namespace) -> int:
    from .lab.api import lab_down

    removed = lab_down(args.prefix)
    for item in removed:
        print(f"removed {item}")
    if not removed:
        print("nothing to remove")
    return EXIT_OK


def _cmd_lab_demo(args: argparse.Namespace) -> int:
    from .lab.demo import run_demo

    return run_demo(
        Path(args.config_dir), max_seconds=args.max_seconds, dashboard_port=args.dashboard_port
    )


def _cmd_lab_failover(args: argparse.Namespace) -> int:
    from .lab.failover import run_failover

    try:
        return run_failover(args.restore_after, prefix=args.prefix)
    except LookupError as exc:
        print(f"{exc}; start one with `triolb lab demo`", file=sys.stderr)
        return EXIT_FAILURE
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID


def _cmd_version(args: argparse.Namespace) -> int:
    from importlib.metadata import version

    print(f"triolb {version('triolb')}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triolb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the appliance daemon")
    run.add_argument("--config", required=True, help="YAML configuration file")
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    run.add_argument(
        "--no-boot", action="store_true", help="skip boot duties (sysctls, bpffs, interface wait)"
    )
    run.set_defaults(func=_cmd_run)

    config = sub.add_parser("config", help="configuration files and datastores").add_subparsers(
        dest="config_command", required=True
    )
    validate = config.add_parser("validate", help="check files; exit 2 listing every error")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=_cmd_config_validate)
    show = config.add_parser("show", help="print the normalised configuration")
    show.add_argument("file")
    show.set_defaults(func=_cmd_config_show)
    add_config_commands(config)

    lab = sub.add_parser("lab", help="network-namespace lab").add_subparsers(
        dest="lab_command", required=True
    )
    up = lab.add_parser("up", help="build a scenario's lab (kept until `lab down`)")
    up.add_argument("scenario", help="scenario1 … scenario4")
    up.set_defaults(func=_cmd_lab_up)
    status = lab.add_parser("status", help="list running labs")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_cmd_lab_status)
    down = lab.add_parser("down", help="remove a lab (all labs without PREFIX)")
    down.add_argument("prefix", nargs="?")
    down.set_defaults(func=_cmd_lab_down)
    demo = lab.add_parser(
        "demo", help="scenario 4 with traffic and dashboards on 127.0.0.1, until Ctrl-C"
    )
    demo.add_argument("--config-dir", default=str(REPO_EXAMPLES), help="scenario4-ctsync-*.yaml")
    demo.add_argument("--max-seconds", type=float, default=None, help="stop after N seconds")
    demo.add_argument(
        "--dashboard-port", type=int, default=8081, help="node1's dashboard; node2 on the next"
    )
    demo.set_defaults(func=_cmd_lab_demo)
    failover = lab.add_parser(
        "failover", help="isolate the running demo's active node, restore it after S seconds"
    )
    failover.add_argument("--restore-after", type=float, default=20.0, metavar="S")
    failover.add_argument("--prefix", default=None, help="the demo lab (when several run)")
    failover.set_defaults(func=_cmd_lab_failover)

    add_show_parser(sub)
    add_bgp_parser(sub)
    add_action_parsers(sub)
    add_dataplane_parser(sub)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
