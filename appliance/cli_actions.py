"""`triolb endpoint drain | undrain` (and the HA actions): operator actions on a running node
through its API, with the bearer token of `web.token_file`."""

from __future__ import annotations

import argparse
from typing import Any

from .cli_remote import add_node_options, api_post, guard, read_token

__all__ = ["add_action_parsers"]


def endpoint_drain(args: argparse.Namespace) -> int:
    path = f"/api/v1/services/{args.service}/endpoints/{args.address}/{args.port}/drain"
    drain = args.endpoint_action == "drain"
    answer = api_post(args.node, path, read_token(args.token_file), {"drain": drain})
    state = "drained" if answer["drained"] else "back in service"
    print(f"{answer['service']} {answer['endpoint']}: {state}")
    return 0


def add_action_parsers(sub: Any) -> None:
    endpoint = sub.add_parser("endpoint", help="endpoint actions on a running node")
    add_node_options(endpoint, token=True)
    actions = endpoint.add_subparsers(dest="endpoint_action", required=True)
    for verb, text in (
        ("drain", "no new connections to the endpoint; open ones continue"),
        ("undrain", "take a drained endpoint back"),
    ):
        action = actions.add_parser(verb, help=text)
        action.add_argument("service")
        action.add_argument("address")
        action.add_argument("port", type=int)
        action.set_defaults(func=guard(endpoint_drain))
