"""The OpenAPI 3.1 document of the node's HTTP API, served at ``GET /api/v1/openapi.json``.

Written as Python data next to the routes it describes (no file to package, no YAML to load).
Every JSON body whose shape is fixed is a closed schema (``additionalProperties: false`` and
every field ``required``), so a field added to or removed from a route without the document
following makes ``tests/unit/test_openapi.py`` fail. Maps keyed by data (counters by reason,
supervisor services by name) are open only in their keys.

Reads are open on the listen address; operations that change the node carry the ``bearer``
security requirement and document its 401 (no token) and 403 (wrong token, or no token file)
answers (`web.auth`).
"""

from __future__ import annotations

import copy
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .dashboard import ASSETS

__all__ = ["OPENAPI_PATH", "SCHEMAS", "document", "openapi_routes"]

OPENAPI_PATH = "/api/v1/openapi.json"
Schema = dict[str, Any]

# -- schema helpers ---------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or JSON null."""
    if set(schema) <= {"type", "description"} and isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def closed(
    properties: dict[str, Schema], description: str = "", optional: tuple[str, ...] = ()
) -> Schema:
    """An object with exactly ``properties``, all required except ``optional``."""
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def counters(description: str) -> Schema:
    """A map of counters keyed by a reason or name."""
    return {
        "type": "object",
        "additionalProperties": {"type": "integer", "minimum": 0},
        "description": description,
    }


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
COUNT: Schema = {"type": "integer", "minimum": 0}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
PORT: Schema = {"type": "integer", "minimum": 0, "maximum": 65535}
ADDRESS: Schema = {"type": "string", "description": "an IPv4 or IPv6 address"}
TIME: Schema = {"type": "number", "description": "wall clock, seconds since the Unix epoch"}
STR_LIST: Schema = {"type": "array", "items": STR}

# -- component schemas ------------------------------------------------------------------------

_ROUTE_ATTRIBUTES: dict[str, Schema] = {
    "origin": nullable({"enum": ["igp", "egp", "incomplete"]}),
    "as_path": {"type": "string", "description": "AS numbers separated by spaces ('' if none)"},
    "med": nullable(INT),
    "local_pref": nullable(INT),
    "communities": STR_LIST,
    "large_communities": STR_LIST,
}

_PROBE = {
    "health": {"enum": ["unknown", "up", "down"]},
    "probe": nullable(
        {"enum": ["none", "icmp", "tcp", "udp", "http", "https"], "description": "probe type"}
    ),
    "latency_ms": nullable(NUM),
    "last_error": nullable(STR),
    "checked_at": nullable(TIME),
}

_COMMIT_RESULT: dict[str, Schema] = {
    "ok": BOOL,
    "generation": COUNT,
    "changed": {"type": "boolean", "description": "false: the candidate equals the running one"},
    "diff": {"type": "string", "description": "unified diff of the normalised configurations"},
    "errors": STR_LIST,
    "commit_id": nullable(INT),
    "confirm_within_s": nullable(
        {"type": "number", "description": "a confirmed commit: seconds left to confirm it"}
    ),
}

SCHEMAS: dict[str, Schema] = {
    "Error": closed({"error": STR}, "What went wrong, in words."),
    # node
    "SupervisedService": closed(
        {
            "state": {"enum": ["starting", "running", "backoff", "stopped", "failed"]},
            "restarts": COUNT,
            "last_error": nullable(STR),
            "since": {"type": "number", "description": "trio clock of the last state change"},
        },
        "One of the daemon's supervised services.",
    ),
    "Node": closed(
        {
            "name": STR,
            "id": {"type": "integer", "minimum": 1, "maximum": 255},
            "router_id": nullable({"type": "string", "description": "IPv4 address"}),
            "config_generation": nullable(INT),
            "services": {
                "type": "object",
                "additionalProperties": ref("SupervisedService"),
                "description": "by supervisor name",
            },
        },
        "The node and its daemon's services.",
    ),
    # BGP
    "Neighbor": closed(
        {
            "address": ADDRESS,
            "asn": COUNT,
            "description": nullable(STR),
            "state": {
                "enum": ["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"]
            },
            "established_at": nullable(TIME),
            "established_count": COUNT,
            "prefixes_received": COUNT,
            "prefixes_accepted": COUNT,
            "prefixes_advertised": COUNT,
            "updates_received": COUNT,
            "updates_sent": COUNT,
            "last_error": nullable(STR),
            "local_address": nullable(ADDRESS),
            "peer_router_id": nullable(STR),
            "hold_time": nullable(COUNT),
            "four_octet_as": nullable(BOOL),
            "graceful_restart": nullable(BOOL),
            "keepalive_gap_max_s": nullable(NUM),
            "uptime_s": nullable({"type": "number", "description": "seconds Established"}),
        },
        "A configured BGP neighbour and its session.",
    ),
    "Neighbors": closed({"neighbors": {"type": "array", "items": ref("Neighbor")}}),
    "RibRoute": closed(
        {
            "prefix": STR,
            "peer": ADDRESS,
            "next_hop": nullable(ADDRESS),
            "stale": BOOL,
            **_ROUTE_ATTRIBUTES,
        },
        "A received route (views best and received).",
    ),
    "AdvertisedRoute": closed(
        {"prefix": STR, "peer": ADDRESS, **_ROUTE_ATTRIBUTES},
        "A route sent to a neighbour (view advertised).",
    ),
    "Routes": closed(
        {
            "view": {"enum": ["best", "received", "advertised"]},
            "offset": COUNT,
            "routes": {
                "type": "array",
                "items": {"oneOf": [ref("RibRoute"), ref("AdvertisedRoute")]},
            },
        }
    ),
    "BgpActionRequest": closed(
        {
            "communication": {
                "type": "string",
                "description": "shutdown only: RFC 9003 text, at most 255 octets (UTF-8)",
            }
        },
        optional=("communication",),
    ),
    "BgpActionResult": closed(
        {
            "ok": {"const": True},
            "neighbor": ADDRESS,
            "action": {"enum": ["shutdown", "enable", "refresh"]},
        }
    ),
    # HA
    "HaGroup": closed(
        {
            "id": {"type": "integer", "minimum": 1, "maximum": 255},
            "interface": STR,
            "state": {"enum": ["init", "backup", "master", "fault"]},
            "role": {"enum": ["init", "backup", "active", "fault"]},
            "priority": {"type": "integer", "minimum": 0, "maximum": 255},
            "configured_priority": {"type": "integer", "minimum": 1, "maximum": 255},
            "master_address": nullable(ADDRESS),
            "vips": {"type": "array", "items": ADDRESS},
            "transitions": COUNT,
            "last_reason": nullable(STR),
            "rejected": counters("adverts discarded, by reason"),
            "received": COUNT,
            "sent": COUNT,
            "priority_override": nullable({"type": "integer", "minimum": 1, "maximum": 254}),
            "advert_gap_max_s": {
                "type": "number",
                "minimum": 0,
                "description": "longest wait between two adverts sent as master",
            },
        },
        "An HA group on this node.",
    ),
    "HaGroups": closed({"groups": {"type": "array", "items": ref("HaGroup")}}),
    "HaPriorityRequest": closed(
        {
            "priority": nullable(
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 254,
                    "description": "null: back to the configured priority",
                }
            )
        },
        optional=("priority",),
    ),
    "HandoffRequest": closed({}, "No fields."),
    "HaActionResult": closed(
        {
            "ok": {"const": True},
            "group": {"type": "integer", "minimum": 0},
            "action": {"enum": ["handoff", "priority"]},
            "priority": nullable({"type": "integer", "minimum": 1, "maximum": 254}),
        }
    ),
    # conntrack sync
    "SyncPeer": closed(
        {
            "peer": {
                "type": "array",
                "prefixItems": [ADDRESS, PORT],
                "items": False,
                "minItems": 2,
                "description": "[address, port]",
            },
            "node_id": nullable(INT),
            "state": {"enum": ["connecting", "up", "down"]},
            "epoch": nullable(INT),
            "frames_sent": COUNT,
            "frames_received": COUNT,
            "ops_sent": COUNT,
            "ops_received": COUNT,
            "retransmits": COUNT,
            "queue": COUNT,
            "in_flight": COUNT,
            "lag_s": {"type": "number", "minimum": 0},
            "resyncs_sent": COUNT,
            "resyncs_received": COUNT,
            "overflows": COUNT,
            "last_heard_s": nullable(NUM),
            "rejected": counters("frames rejected, by reason"),
        }
    ),
    "Sync": closed(
        {
            "node_id": INT,
            "listen": STR,
            "resynced": BOOL,
            "peers": {"type": "array", "items": ref("SyncPeer")},
            "captured": COUNT,
            "applied": COUNT,
            "deleted": COUNT,
            "kept_local": COUNT,
            "skipped": counters("entries not taken or sent, by reason"),
            "event_losses": COUNT,
            "snapshots_sent": COUNT,
        },
        "Conntrack sync: its peers and its own counters.",
    ),
    # dataplane
    "ServiceEndpoint": closed(
        {
            "address": ADDRESS,
            "port": PORT,
            "index": COUNT,
            "weight": COUNT,
            "state": {"enum": ["active", "draining"]},
            "drained": {"type": "boolean", "description": "an operator drained it (API/CLI)"},
            **_PROBE,
            "open_connections": COUNT,
            "packets": COUNT,
            "bytes": COUNT,
            "connections": COUNT,
            "drops": COUNT,
        }
    ),
    "Service": closed(
        {
            "name": STR,
            "vip": ADDRESS,
            "port": PORT,
            "protocol": {"enum": ["tcp", "udp"]},
            "mode": nullable({"enum": ["default", "onearm", "fullnat", "dsr"]}),
            "selection": nullable(
                {"enum": ["roundrobin", "weighted", "hash", "maglev", "persist", "leastconn"]}
            ),
            "id": COUNT,
            "slot": COUNT,
            "packets": COUNT,
            "bytes": COUNT,
            "connections": COUNT,
            "drops": COUNT,
            "route": nullable({"enum": ["advertised", "withdrawn"]}),
            "withdrawn_reason": nullable(STR),
            "role": nullable({"enum": ["init", "backup", "active", "fault"]}),
            "endpoints": {"type": "array", "items": ref("ServiceEndpoint")},
        }
    ),
    "Services": closed(
        {
            "node": STR,
            "adopted": BOOL,
            "layout_reset": BOOL,
            "attached": {
                "type": "array",
                "items": closed({"interface": STR, "hooks": STR_LIST}),
            },
            "connections": COUNT,
            "events": COUNT,
            "events_dropped": COUNT,
            "skipped": STR_LIST,
            "errors": STR_LIST,
            "services": {"type": "array", "items": ref("Service")},
            "unallocated": STR_LIST,
            "pool_conflicts": STR_LIST,
        },
        "The dataplane's services with configuration, health and routing intent.",
    ),
    "Connection": closed(
        {
            "protocol": {
                "type": "string",
                "description": "icmp, tcp, udp, or the IP protocol number",
            },
            "client": ADDRESS,
            "client_port": PORT,
            "vip": ADDRESS,
            "vip_port": PORT,
            "endpoint": ADDRESS,
            "endpoint_port": PORT,
            "source": ADDRESS,
            "source_port": PORT,
            "service": nullable(STR),
            "service_id": COUNT,
            "endpoint_index": COUNT,
            "state": {
                "type": "string",
                "pattern": r"^(syn_sent|established|fin_wait|closed|udp|icmp|unknown\(\d+\))$",
            },
            "age_s": NUM,
            "idle_s": NUM,
            "packets": COUNT,
            "bytes": COUNT,
            "remote": {"type": "boolean", "description": "learnt from the sync peer"},
            "dsr": BOOL,
        }
    ),
    "ConntrackPage": closed(
        {
            "total": COUNT,
            "offset": COUNT,
            "limit": COUNT,
            "connections": {"type": "array", "items": ref("Connection")},
        }
    ),
    "ConntrackCount": closed({"count": COUNT}),
    # configuration
    "RunningConfig": closed(
        {
            "generation": COUNT,
            "config": {"type": "string", "description": "normalised YAML"},
            "pending_confirm": nullable(closed({"commit_id": INT})),
        }
    ),
    "CommitSummary": closed(
        {
            "id": INT,
            "time": TIME,
            "origin": {
                "type": "string",
                "description": "boot, cli, sighup, confirm-timeout, api:<token name>...",
            },
            "comment": nullable(STR),
            "diff": STR,
            "outcome": {
                "enum": ["committed", "pending-confirm", "confirmed", "rolled-back", "failed"]
            },
            "error": nullable(STR),
        }
    ),
    "History": closed({"commits": {"type": "array", "items": ref("CommitSummary")}}),
    "CheckRequest": closed(
        {
            "config": {"type": "string", "description": "the candidate configuration (YAML)"},
            "base_dir": {"type": "string", "description": "absolute: where relative paths start"},
        },
        optional=("base_dir",),
    ),
    "CheckResult": closed({"valid": BOOL, "errors": STR_LIST, "diff": nullable(STR)}),
    "CommitRequest": closed(
        {
            "config": {"type": "string", "description": "the candidate configuration (YAML)"},
            "base_dir": {"type": "string", "description": "absolute: where relative paths start"},
            "comment": STR,
            "confirmed": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 86400,
                "description": "seconds to confirm within, else the commit is undone",
            },
        },
        optional=("base_dir", "comment", "confirmed"),
    ),
    "ConfirmRequest": closed({"comment": STR}, optional=("comment",)),
    "RollbackRequest": closed(
        {
            "back": {
                "type": "integer",
                "minimum": 0,
                "description": "changes back (0: the current one; failed commits not counted)",
            },
            "comment": STR,
        },
        optional=("back", "comment"),
    ),
    "CommitResult": closed(_COMMIT_RESULT, "A configuration operation that succeeded."),
    "CommitFailure": closed(
        {"error": STR, **_COMMIT_RESULT}, "A configuration operation refused or failed."
    ),
    # operator actions
    "DrainRequest": closed(
        {"drain": {"type": "boolean", "default": True, "description": "false: undrain"}},
        optional=("drain",),
    ),
    "DrainResult": closed(
        {
            "ok": {"const": True},
            "service": STR,
            "endpoint": {"type": "string", "description": "ADDRESS:PORT"},
            "drained": BOOL,
        }
    ),
    # events
    "JournalEntry": closed(
        {
            "seq": {"type": "integer", "minimum": 1},
            "time": TIME,
            "level": STR,
            "component": STR,
            "event": STR,
            "fields": {"type": "object", "description": "the log event's fields, secrets masked"},
        },
        "A notable event of the node's journal.",
    ),
    "Events": closed(
        {"last_seq": COUNT, "events": {"type": "array", "items": ref("JournalEntry")}}
    ),
    "StreamState": closed(
        {"version": {"type": "integer", "description": "the state store's version"}},
        "Data of the stream's `state` event: refetch the documents shown.",
    ),
    "OpenApiDocument": {
        "type": "object",
        "required": ["openapi", "info", "paths", "components"],
        "properties": {"openapi": {"const": "3.1.0"}},
        "description": "This document.",
    },
}

# -- operations -------------------------------------------------------------------------------

_ERROR_TEXT = {
    400: "Bad request: a parameter or the body is invalid.",
    401: "No bearer token: this call changes the node.",
    403: "Wrong token, or changes disabled (no web.token_file).",
    404: "Not found, or the service it needs is not running on this node.",
    409: "Not possible in the neighbour's current state.",
    422: "The operation was refused or failed (see its errors).",
    503: "Not available yet (no running configuration, journal or table).",
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Schema]:
    answers: dict[str, Schema] = {}
    for code in codes:
        schema = ref("CommitFailure" if code == 422 else "Error")
        answers[str(code)] = _json(schema, _ERROR_TEXT[code])
        if code == 401:
            answers["401"]["headers"] = {
                "WWW-Authenticate": {"schema": {"const": 'Bearer realm="triolb"'}}
            }
    return answers


def _param(name: str, where: str, schema: Schema, description: str = "") -> Schema:
    param: Schema = {"name": name, "in": where, "schema": schema}
    if where == "path":
        param["required"] = True
    if description:
        param["description"] = description
    return param


def _get(op_id: str, summary: str, ok: Schema, *errors: int, **extra: Any) -> Schema:
    return {
        "get": {
            "operationId": op_id,
            "summary": summary,
            "tags": [extra.pop("tag", "read")],
            "responses": {"200": ok, **_errors(*errors)},
            **extra,
        }
    }


def _change(
    op_id: str, summary: str, body: str, result: Schema, *errors: int, **extra: Any
) -> Schema:
    """A POST that needs the bearer token: 401 and 403 always, ``errors`` besides."""
    return {
        "post": {
            "operationId": op_id,
            "summary": summary,
            "tags": [extra.pop("tag", "change")],
            "security": [{"bearer": []}],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": ref(body)}},
            },
            "responses": {"200": result, **_errors(401, 403, *errors)},
            **extra,
        }
    }


def _text(media_type: str, description: str) -> Schema:
    return {"description": description, "content": {media_type: {"schema": STR}}}


_LIMIT_OFFSET = [
    _param("limit", "query", {"type": "integer", "minimum": 0}, "at most this many"),
    _param("offset", "query", {"type": "integer", "minimum": 0}, "skip this many first"),
]
_PEER = _param("address", "path", ADDRESS, "the neighbour's address")
_GROUP = _param("group", "path", {"type": "integer", "minimum": 0}, "the HA group's id")
_CT_BOOL = {"type": "string", "enum": ["1", "0", "true", "false", "yes", "no"]}
_CT_STATES = ["syn_sent", "established", "fin_wait", "closed", "udp", "icmp"]

STREAM_DESCRIPTION = (
    "Server-sent events telling a dashboard when to look again; it never ends by itself. "
    "`event: journal` (with `id:` the entry's seq) carries each new journal entry as JSON "
    '(schema JournalEntry; the last 50 first); `event: state` carries {"version": N} '
    "(schema StreamState) when the state store changed, at most every 0.25 s, the first at "
    "once; a `: keepalive` comment line after 15 s of quiet."
)


def _asset_paths() -> dict[str, Schema]:
    """The dashboard page and its assets (`web.dashboard.ASSETS`)."""
    return {
        asset.path: _get(
            "getDashboard" if asset.path == "/" else f"getAsset_{asset.file.replace('.', '_')}",
            f"The dashboard's {asset.file}",
            _text(asset.media_type, asset.file),
            tag="page",
        )
        for asset in ASSETS
    }


def _paths() -> dict[str, Schema]:
    bgp_action = {
        "shutdown": "Shut the session down (administratively), with an optional communication.",
        "enable": "Enable a shut-down session again.",
        "refresh": "Ask the neighbour to resend its routes (route refresh).",
    }
    return {
        "/api/v1/node": _get("getNode", "The node", _json(ref("Node"), "The node."), 503),
        "/api/v1/bgp/neighbors": _get(
            "getBgpNeighbors", "BGP neighbours", _json(ref("Neighbors"), "Every neighbour.")
        ),
        "/api/v1/bgp/routes": _get(
            "getBgpRoutes",
            "BGP routes, paged",
            _json(ref("Routes"), "A page of routes."),
            400,
            404,
            parameters=[
                _param("view", "query", {"enum": ["best", "received", "advertised"]}),
                _param("peer", "query", ADDRESS, "only this neighbour's routes"),
                _param("limit", "query", {"type": "integer", "minimum": 0, "maximum": 10000}),
                _param("offset", "query", {"type": "integer", "minimum": 0}),
            ],
        ),
        **{
            f"/api/v1/bgp/neighbors/{{address}}/{verb}": _change(
                f"bgp{verb.capitalize()}",
                summary,
                "BgpActionRequest",
                _json(ref("BgpActionResult"), "Done."),
                400,
                404,
                409,
                parameters=[_PEER],
            )
            for verb, summary in bgp_action.items()
        },
        "/api/v1/ha": _get("getHa", "HA groups", _json(ref("HaGroups"), "Every group.")),
        "/api/v1/ha/{group}/handoff": _change(
            "haHandoff",
            "Graceful handoff: this node's priority becomes 1 and a master resigns",
            "HandoffRequest",
            _json(ref("HaActionResult"), "Done."),
            400,
            404,
            parameters=[_GROUP],
        ),
        "/api/v1/ha/{group}/priority": _change(
            "haPriority",
            "Set a runtime priority, or clear it (null)",
            "HaPriorityRequest",
            _json(ref("HaActionResult"), "Done."),
            400,
            404,
            parameters=[_GROUP],
        ),
        "/api/v1/sync": _get("getSync", "Conntrack sync", _json(ref("Sync"), "Sync status."), 404),
        "/api/v1/services": _get(
            "getServices", "Services", _json(ref("Services"), "The services."), 404
        ),
        "/api/v1/services/{service}/endpoints/{address}/{port}/drain": _change(
            "drainEndpoint",
            "Drain an endpoint (no new connections) or take it back",
            "DrainRequest",
            _json(ref("DrainResult"), "Done."),
            400,
            404,
            parameters=[
                _param("service", "path", STR),
                _param("address", "path", ADDRESS),
                _param("port", "path", PORT),
            ],
        ),
        "/api/v1/conntrack": _get(
            "getConntrack",
            "Connections of the dataplane, filtered and paged (or counted)",
            _json(
                {"oneOf": [ref("ConntrackPage"), ref("ConntrackCount")]},
                "A page of connections, or their count with count=true.",
            ),
            400,
            404,
            503,
            parameters=[
                _param("count", "query", _CT_BOOL, "only count the matches"),
                _param("limit", "query", {"type": "integer", "minimum": 0, "maximum": 1000}),
                _param("offset", "query", {"type": "integer", "minimum": 0, "maximum": 262144}),
                _param("service", "query", STR, "a programmed service's name"),
                _param("client", "query", ADDRESS, "IPv4"),
                _param("vip", "query", ADDRESS, "IPv4"),
                _param("endpoint", "query", ADDRESS, "IPv4"),
                _param("state", "query", {"enum": _CT_STATES}, "- may stand for _"),
                _param("remote", "query", _CT_BOOL, "learnt from the sync peer, or local"),
            ],
        ),
        "/api/v1/config": _get(
            "getConfig",
            "The running configuration",
            _json(ref("RunningConfig"), "Running configuration."),
            503,
            tag="config",
        ),
        "/api/v1/config/history": _get(
            "getConfigHistory",
            "The configuration's changes, newest first",
            _json(ref("History"), "History."),
            503,
            tag="config",
        ),
        "/api/v1/config/check": {
            "post": {
                "operationId": "checkConfig",
                "summary": "Validate a candidate and diff it against the running configuration",
                "tags": ["config"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("CheckRequest")}},
                },
                "responses": {
                    "200": _json(ref("CheckResult"), "Valid or not, with errors or diff."),
                    **_errors(400, 503),
                },
            }
        },
        "/api/v1/config/commit": _change(
            "commitConfig",
            "Make a candidate the running configuration (optionally confirmed)",
            "CommitRequest",
            _json(ref("CommitResult"), "Committed (or unchanged)."),
            400,
            503,
            422,
            tag="config",
        ),
        "/api/v1/config/confirm": _change(
            "confirmConfig",
            "Confirm the confirmed commit waiting",
            "ConfirmRequest",
            _json(ref("CommitResult"), "Confirmed."),
            400,
            503,
            422,
            tag="config",
        ),
        "/api/v1/config/rollback": _change(
            "rollbackConfig",
            "Make an earlier configuration running again",
            "RollbackRequest",
            _json(ref("CommitResult"), "Rolled back."),
            400,
            503,
            422,
            tag="config",
        ),
        "/api/v1/events": _get(
            "getEvents",
            "Recent notable events",
            _json(ref("Events"), "Events after since, oldest first."),
            400,
            503,
            parameters=[
                _param("since", "query", {"type": "integer", "minimum": 0}, "after this seq"),
                _param("limit", "query", {"type": "integer", "minimum": 0}, "at most 500"),
            ],
        ),
        "/api/v1/stream": _get(
            "getStream",
            "Server-sent events: journal entries and state changes",
            {
                "description": STREAM_DESCRIPTION,
                "content": {"text/event-stream": {"schema": STR}},
                "x-sse-events": {"journal": ref("JournalEntry"), "state": ref("StreamState")},
            },
        ),
        OPENAPI_PATH: _get(
            "getOpenApi", "This document", _json(ref("OpenApiDocument"), "OpenAPI 3.1.")
        ),
        "/metrics": _get(
            "getMetrics",
            "Prometheus metrics",
            _text(CONTENT_TYPE_LATEST, "Prometheus text format."),
            tag="page",
        ),
        **_asset_paths(),
    }


def document() -> dict[str, Any]:
    """A fresh copy of the whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "triolb node API",
            "version": "1",
            "description": (
                "One triolb node's HTTP API. Reads are open on the listen address; calls "
                "that change the node need `Authorization: Bearer <token>` with a token of "
                "web.token_file (401 without one, 403 with a wrong one). Changes are "
                "recorded with the token's name (api:<name>), never the token."
            ),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "tags": [
            {"name": "read", "description": "Open reads of the node's state."},
            {"name": "change", "description": "Operator actions (bearer token)."},
            {"name": "config", "description": "The configuration datastores."},
            {"name": "page", "description": "Not JSON: pages, assets, metrics."},
        ],
        "paths": _paths(),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token of the node's web.token_file.",
                }
            },
        },
    }


_DOCUMENT = document()


def openapi_routes() -> list[Route]:
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(_DOCUMENT)

    return [Route(OPENAPI_PATH, openapi)]
