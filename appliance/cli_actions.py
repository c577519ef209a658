"""`triolb endpoint drain | undrain` (and the HA actions): operator actions on a running node
through its API, with the bearer token of `web.token_file`."""

from __future__ import annotations

import argparse
from typing import Any

from .cli_remote import ApiError, add_node_options, api_post, guard, read_token

__all__ = ["add_action_parsers"]


def endpoint_drain(args: argparse.Namespace) -> int:
    path = f"/api/v1/services/{args.service}/endpoints/{args.address}/{args.port}/drain"
    drain = args.endpoint_action == "drain"
    answer = api_post(args.node, path, read_token(args.token_file), {"drain": drain})
    state = "drained" if answer["drained"] else "back in service"
    print(f"{answer['service']} {answer['endpoint']}: {state}")
    return 0


def ha_action(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    verb = "handoff" if args.ha_action == "handoff" else "priority"
    if args.ha_action == "priority":
        body["priority"] = None if args.clear else args.priority
        if args.priority is None and not args.clear:
            raise ApiError("priority: give a value (1-254) or --clear")
    path = f"/api/v1/ha/{args.group}/{verb}"
    api_post(args.node, path, read_token(args.token_file), body)
    if verb == "handoff":
        print(f"group {args.group}: handed off (priority 1 until `ha priority --clear`)")
    else:
        shown = "the configured one" if body["priority"] is None else body["priority"]
        print(f"group {args.group}: priority {shown}")
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

    ha = sub.add_parser("ha", help="HA actions on a running node")
    add_node_options(ha, token=True)
    verbs = ha.add_subparsers(dest="ha_action", required=True)
    handoff = verbs.add_parser("handoff", help="give the group's active role to a peer now")
    handoff.add_argument("group", type=int)
    priority = verbs.add_parser("priority", help="run the group with another priority")
    priority.add_argument("group", type=int)
    priority.add_argument("priority", type=int, nargs="?", help="1-254")
    priority.add_argument("--clear", action="store_true", help="back to the configured one")
    for parser in (handoff, priority):
        parser.set_defaults(func=guard(ha_action))
