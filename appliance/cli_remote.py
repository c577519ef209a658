"""Commands that talk to a running node's API: `triolb show …` (reads, tables or JSON) and
`triolb bgp …` (operator actions, with the bearer token of `web.token_file`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import httpx

DEFAULT_NODE = "http://127.0.0.1:8080"
TIMEOUT_S = 5.0


class ApiError(Exception):
    pass


def _call(method: str, url: str, **kwargs: Any) -> Any:
    """One API request; the decoded JSON body of a 200, else ApiError with the API's error."""
    try:
        response = httpx.request(method, url, timeout=TIMEOUT_S, **kwargs)
    except httpx.HTTPError as exc:
        raise ApiError(f"{url}: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        raise ApiError(f"{url}: HTTP {response.status_code}, not JSON") from None
    if response.status_code != 200:
        raise ApiError(f"{url}: HTTP {response.status_code}: {body.get('error', body)}")
    return body


def api_get(node: str, path: str, params: dict[str, str] | None = None) -> Any:
    return _call("GET", node.rstrip("/") + path, params=params)


def api_post(node: str, path: str, token: str | None, body: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return _call("POST", node.rstrip("/") + path, json=body, headers=headers)


def print_body(args: argparse.Namespace, body: Any, text: Callable[[Any], str]) -> int:
    """A `show` command's output: the API's JSON with ``--json``, else ``text(body)``."""
    print(json.dumps(body, indent=2) if args.json else text(body))
    return 0


def read_token(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ApiError(f"{path}: {exc.strerror}") from None


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def neighbors_text(body: Any) -> str:
    rows = [
        (
            n["address"],
            n["asn"],
            n["state"],
            _uptime(n["uptime_s"]),
            n["prefixes_received"],
            n["prefixes_accepted"],
            n["prefixes_advertised"],
            n["last_error"] or "",
        )
        for n in body["neighbors"]
    ]
    headers = ("neighbor", "asn", "state", "up", "received", "accepted", "advertised", "last error")
    return format_table(headers, rows)


def show_bgp_neighbors(args: argparse.Namespace) -> int:
    body = api_get(args.node, "/api/v1/bgp/neighbors")
    return print_body(args, body, neighbors_text)


def routes_text(body: Any) -> str:
    rows = [
        (
            r["prefix"],
            r.get("next_hop", ""),
            r["peer"],
            r["med"],
            r["local_pref"],
            r["as_path"],
            " ".join(r["communities"] + r["large_communities"]),
        )
        for r in body["routes"]
    ]
    headers = ("prefix", "next hop", "peer", "med", "local pref", "as path", "communities")
    return format_table(headers, rows)


def show_bgp_routes(args: argparse.Namespace) -> int:
    view = "received" if args.received else "advertised" if args.advertised else "best"
    params = {"view": view, "limit": str(args.limit)}
    if args.peer:
        params["peer"] = args.peer
    body = api_get(args.node, "/api/v1/bgp/routes", params)
    return print_body(args, body, routes_text)


def ha_text(body: Any) -> str:
    rows = [
        (
            g["id"],
            g["interface"],
            g["role"],
            g["state"],
            f"{g['priority']} ({g['configured_priority']})",
            g["master_address"] or "",
            " ".join(g["vips"]),
            g["transitions"],
            g["last_reason"] or "",
            f"{g['received']}/{g['sent']}",
            " ".join(f"{k}={v}" for k, v in sorted(g["rejected"].items())),
        )
        for g in body["groups"]
    ]
    headers = (
        "group",
        "interface",
        "role",
        "state",
        "priority (configured)",
        "master",
        "vips",
        "changes",
        "last reason",
        "adverts in/out",
        "rejected",
    )
    return format_table(headers, rows)


def show_ha(args: argparse.Namespace) -> int:
    body = api_get(args.node, "/api/v1/ha")
    return print_body(args, body, ha_text)


def sync_text(body: Any) -> str:
    """``show sync``: the node line, then a row per peer."""
    skipped = " ".join(f"{k}={v}" for k, v in sorted(body["skipped"].items()))
    lines = [
        f"node {body['node_id']} on {body['listen']}: "
        f"{'resynced' if body['resynced'] else 'joining (resync pending)'}; "
        f"captured {body['captured']}, applied {body['applied']}, deleted {body['deleted']}, "
        f"kept local {body['kept_local']}"
        + (f"; skipped {skipped}" if skipped else "")
        + (f"; event losses {body['event_losses']}" if body["event_losses"] else "")
    ]
    rows = [
        (
            f"{p['peer'][0]}:{p['peer'][1]}",
            p["node_id"] if p["node_id"] is not None else "",
            p["state"],
            f"{p['lag_s'] * 1000:.1f} ms",
            p["queue"],
            p["in_flight"],
            f"{p['ops_sent']}/{p['ops_received']}",
            p["retransmits"],
            f"{p['resyncs_sent']}/{p['resyncs_received']}",
            p["overflows"],
            "" if p["last_heard_s"] is None else f"{p['last_heard_s']:.1f} s",
            " ".join(f"{k}={v}" for k, v in sorted(p["rejected"].items())),
        )
        for p in body["peers"]
    ]
    headers = (
        "peer",
        "node",
        "state",
        "lag",
        "queue",
        "in flight",
        "entries out/in",
        "retransmits",
        "resyncs out/in",
        "overflows",
        "heard",
        "rejected",
    )
    if not rows:
        return "\n".join([*lines, "no peers configured"])
    return "\n".join([*lines, "", format_table(headers, rows)])


def show_sync(args: argparse.Namespace) -> int:
    return print_body(args, api_get(args.node, "/api/v1/sync"), sync_text)


def _latency(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.1f} ms"


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else _uptime(value)


def _endpoint_text(endpoints: Sequence[dict[str, Any]]) -> str:
    rows = [
        (
            f"{e['address']}:{e['port']}",
            e["weight"],
            e["state"],
            e["health"],
            _latency(e["latency_ms"]),
            e["open_connections"],
            e["connections"],
            e["packets"],
            e["bytes"],
            e["last_error"] or "",
        )
        for e in endpoints
    ]
    headers = (
        "endpoint",
        "weight",
        "state",
        "health",
        "latency",
        "open",
        "conns",
        "packets",
        "bytes",
        "last error",
    )
    return "\n".join("  " + line for line in format_table(headers, rows).splitlines())


def services_text(body: dict[str, Any]) -> str:
    """``show services`` as text: the node line, the services table, then each service's
    endpoints. ``open``: connections open now; ``conns``: connections since the counters
    started."""
    attached = ", ".join(f"{a['interface']} ({'+'.join(a['hooks'])})" for a in body["attached"])
    notes = [
        n
        for n, on in (
            ("adopted pinned maps", body["adopted"]),
            ("layout reset", body["layout_reset"]),
        )
        if on
    ]
    lines = [
        f"node {body['node']}: {body['connections']} connections; "
        f"attached: {attached or 'nowhere'}" + "".join(f"; {n}" for n in notes)
    ]
    lines += [f"skipped (IPv4-only dataplane): {name}" for name in body["skipped"]]
    lines += [f"pool conflict: {conflict}" for conflict in body.get("pool_conflicts", ())]
    lines += [f"error: {error}" for error in body["errors"]]
    services = body["services"]
    if not services:
        return "\n".join([*lines, "no services in the dataplane"])
    rows = [
        (
            s["name"],
            f"{s['vip']}:{s['port']}/{s['protocol']}",
            s["mode"] or "",
            s["selection"] or "",
            _route_text(s),
            s["id"],
            sum(e["open_connections"] for e in s["endpoints"]),
            s["connections"],
            s["packets"],
            s["bytes"],
            s["drops"],
        )
        for s in services
    ]
    headers = (
        "service",
        "vip",
        "mode",
        "selection",
        "route",
        "id",
        "open",
        "conns",
        "packets",
        "bytes",
        "drops",
    )
    lines += ["", format_table(headers, rows)]
    for s in services:
        lines += ["", f"{s['name']} {s['vip']}:{s['port']}/{s['protocol']} (slot {s['slot']})"]
        lines.append(_endpoint_text(s["endpoints"]) if s["endpoints"] else "  no endpoints")
    return "\n".join(lines)


def _route_text(service: dict[str, Any]) -> str:
    """``advertised``, or ``withdrawn (reason)``; empty when the node does not know."""
    route = service.get("route")
    if route is None:
        return ""
    reason = service.get("withdrawn_reason")
    return f"{route} ({reason})" if reason else str(route)


def show_services(args: argparse.Namespace) -> int:
    return print_body(args, api_get(args.node, "/api/v1/services"), services_text)


def conntrack_params(args: argparse.Namespace) -> dict[str, str]:
    """The query of ``show conntrack``: only what was given (the API has the defaults)."""
    params = {
        name: str(value)
        for name in ("service", "client", "vip", "endpoint", "state", "limit", "offset")
        if (value := getattr(args, name)) is not None
    }
    if args.count:
        params["count"] = "1"
    if args.remote is not None:
        params["remote"] = "1" if args.remote else "0"
    return params


def conntrack_text(body: dict[str, Any]) -> str:
    if "count" in body:
        return str(body["count"])
    connections = body["connections"]
    total, offset = body["total"], body["offset"]
    if not connections:
        return f"no connections (total {total}, offset {offset})"
    rows = [
        (
            c["protocol"],
            f"{c['client']}:{c['client_port']}",
            f"{c['vip']}:{c['vip_port']}",
            f"{c['endpoint']}:{c['endpoint_port']}",
            f"{c['source']}:{c['source_port']}",
            c["state"],
            _seconds(c["age_s"]),
            _seconds(c["idle_s"]),
            c["packets"],
            c["bytes"],
            c["service"] or c["service_id"],
            "remote" if c["remote"] else "",
        )
        for c in connections
    ]
    headers = (
        "proto",
        "client",
        "vip",
        "endpoint",
        "nat source",
        "state",
        "age",
        "idle",
        "packets",
        "bytes",
        "service",
        "",
    )
    first = offset + 1
    footer = f"connections {first}-{offset + len(connections)} of {total}"
    return format_table(headers, rows) + "\n" + footer


def show_conntrack(args: argparse.Namespace) -> int:
    body = api_get(args.node, "/api/v1/conntrack", conntrack_params(args))
    return print_body(args, body, conntrack_text)


def add_show_parser(sub: Any) -> None:
    show = sub.add_parser("show", help="state of a running node (through its API)")
    show.add_argument("--node", default=DEFAULT_NODE, help=f"API base URL (default {DEFAULT_NODE})")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    what = show.add_subparsers(dest="show_command", required=True)
    ha = what.add_parser("ha", help="HA groups: role, state, priority, master")
    ha.set_defaults(func=guard(show_ha))
    bgp = what.add_parser("bgp", help="BGP").add_subparsers(dest="bgp_command", required=True)
    neighbors = bgp.add_parser("neighbors", help="sessions, state, prefix counts")
    neighbors.set_defaults(func=guard(show_bgp_neighbors))
    routes = bgp.add_parser("routes", help="best routes (default), received or advertised")
    kind = routes.add_mutually_exclusive_group()
    kind.add_argument("--received", action="store_true", help="Adj-RIB-In (before policy)")
    kind.add_argument("--advertised", action="store_true", help="Adj-RIB-Out")
    routes.add_argument("--peer", help="only this neighbour's routes")
    routes.add_argument("--limit", type=int, default=1000)
    routes.set_defaults(func=guard(show_bgp_routes))
    services = what.add_parser("services", help="dataplane services, endpoints, health, counters")
    services.set_defaults(func=guard(show_services))
    conntrack = what.add_parser("conntrack", help="connections in the dataplane (paged)")
    conntrack.add_argument("--count", action="store_true", help="only count (matching) ones")
    conntrack.add_argument("--service", help="only this service's connections (by name)")
    conntrack.add_argument("--client", help="only from this client address")
    conntrack.add_argument("--vip", help="only to this VIP")
    conntrack.add_argument("--endpoint", help="only to this endpoint address")
    conntrack.add_argument("--state", help="syn_sent, established, fin_wait, closed, udp, icmp")
    origin = conntrack.add_mutually_exclusive_group()
    origin.add_argument(
        "--remote", action="store_const", const=True, help="only learnt from peers (sync)"
    )
    origin.add_argument(
        "--local", dest="remote", action="store_const", const=False, help="only this node's"
    )
    conntrack.add_argument("--limit", type=int, help="at most N (API default 100, max 1000)")
    conntrack.add_argument("--offset", type=int, help="skip the first N (oldest first)")
    conntrack.set_defaults(func=guard(show_conntrack))
    sync = what.add_parser("sync", help="conntrack sync: peers, state, lag, queue, counters")
    sync.set_defaults(func=guard(show_sync))


def guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = fn(args)
        except ApiError as exc:
            print(f"triolb: {exc}", file=sys.stderr)
            return 1
        return code

    return run


def bgp_action(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if getattr(args, "message", None):
        body["communication"] = args.message
    path = f"/api/v1/bgp/neighbors/{args.address}/{args.bgp_action}"
    answer = api_post(args.node, path, read_token(args.token_file), body)
    print(f"{answer['action']} {answer['neighbor']}: done")
    return 0


def add_node_options(parser: argparse.ArgumentParser, *, token: bool) -> None:
    """``--node`` (the API's URL) and, for commands that change something, ``--token-file``."""
    parser.add_argument(
        "--node", default=DEFAULT_NODE, help=f"API base URL (default {DEFAULT_NODE})"
    )
    if token:
        parser.add_argument(
            "--token-file", help="file holding a token of the node's web.token_file"
        )


def add_bgp_parser(sub: Any) -> None:
    bgp = sub.add_parser("bgp", help="BGP operator actions on a running node")
    add_node_options(bgp, token=True)
    actions = bgp.add_subparsers(dest="bgp_action", required=True)
    shutdown = actions.add_parser("shutdown", help="administrative shutdown of a session")
    shutdown.add_argument("address")
    shutdown.add_argument("--message", help="shutdown communication (RFC 9003, <= 255 octets)")
    enable = actions.add_parser("enable", help="start a session that was shut down")
    enable.add_argument("address")
    refresh = actions.add_parser("refresh", help="ask the neighbour to resend its routes")
    refresh.add_argument("address")
    for action in (shutdown, enable, refresh):
        action.set_defaults(func=guard(bgp_action))
