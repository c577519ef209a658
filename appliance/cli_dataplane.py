"""``triolb dataplane``: commands acting on a node's pinned eBPF dataplane directly (no daemon).

``flush --node NAME`` removes our TC filters from every interface of the current network
namespace and the node's pins under /sys/fs/bpf/triolb/NAME: forwarding by the program stops
and the next daemon start compiles into empty maps. It also releases the VIP addresses the
node's HA added (unless ``--keep-vips``): a node that no longer forwards must not answer for
them (the peer that took over would see its connections reset through this node).
"""

from __future__ import annotations

import argparse
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1


def _cmd_flush(args: argparse.Namespace) -> int:
    from bpf.loader import flush

    try:
        result = flush(args.node, filters=not args.keep_filters)
    except (OSError, ValueError) as exc:
        print(f"dataplane flush: {exc}")
        return EXIT_FAILURE
    released = []
    if not args.keep_vips:
        from appliance.ha.vips import release_owned

        try:
            released = release_owned()
        except OSError as exc:
            print(f"dataplane flush: releasing the VIP addresses: {exc}")
            return EXIT_FAILURE
    for item in result.detached:
        print(f"detached {item}")
    for name in result.pins_removed:
        print(f"unpinned {name}")
    for ifname, address in released:
        print(f"released {address} on {ifname}")
    if not result.detached and not result.pins_removed and not released:
        print("nothing to flush")
    return EXIT_OK


def add_dataplane_parser(sub: Any) -> None:
    """Register ``triolb dataplane ...`` on the top-level subparsers."""
    dataplane = sub.add_parser("dataplane", help="the node's eBPF dataplane").add_subparsers(
        dest="dataplane_command", required=True
    )
    flush = dataplane.add_parser(
        "flush", help="remove our TC filters (this namespace) and the node's pinned maps"
    )
    flush.add_argument("--node", required=True, help="node name (the pin directory)")
    flush.add_argument(
        "--keep-filters", action="store_true", help="remove the pins only, leave TC filters"
    )
    flush.add_argument(
        "--keep-vips", action="store_true", help="leave the VIP addresses HA added in place"
    )
    flush.set_defaults(func=_cmd_flush)
