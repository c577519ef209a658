"""``Config`` to normalised YAML: every default written out, keys in schema order.

Keys that do not apply (``path`` of a tcp probe, ``persist_timeout_s`` without persist, ...) and
optional values that are unset are left out, so the output parses back to an equal ``Config``.
"""

from __future__ import annotations

from typing import Any

import yaml

from .model import (
    AdvertAttrs,
    Bgp,
    BgpPeer,
    Config,
    Endpoint,
    Ha,
    HaGroup,
    NatMode,
    Probe,
    Selection,
    Service,
    Sync,
    Track,
    TrackType,
)
from .values import PrefixFilter

Tree = dict[str, Any]


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key (``key:\n  - item``), as the examples are written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


#: characters PyYAML writes raw inside single quotes although YAML folds them as line breaks
_YAML_BREAKS = frozenset("\x85\u2028\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if _YAML_BREAKS.intersection(value):  # double quotes escape them (\N, \L, \P)
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_IndentedDumper.add_representer(str, _represent_str)


def dump_config(cfg: Config) -> str:
    return yaml.dump(
        config_tree(cfg),
        Dumper=_IndentedDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def config_tree(cfg: Config) -> Tree:
    """The config as plain dicts, lists, strings, ints and bools."""
    node: Tree = {"name": cfg.node.name, "id": cfg.node.id}
    _put(node, "router_id", cfg.node.router_id)
    tree: Tree = {
        "node": node,
        "interfaces": {
            "include": list(cfg.interfaces.include),
            "exclude": list(cfg.interfaces.exclude),
            "egress_hooks": cfg.interfaces.egress_hooks,
        },
        "vip_pools": [{"name": p.name, "cidr": str(p.cidr)} for p in cfg.vip_pools],
        "services": [_service(s) for s in cfg.services],
    }
    if cfg.ha is not None:
        tree["ha"] = _ha(cfg.ha)
    if cfg.bgp is not None:
        tree["bgp"] = _bgp(cfg.bgp)
    if cfg.sync is not None:
        tree["sync"] = _sync(cfg.sync)
    web: Tree = {"listen": str(cfg.web.listen)}
    _put(web, "token_file", cfg.web.token_file)
    tree["web"] = web
    return tree


def _put(tree: Tree, key: str, value: object) -> None:
    """Set ``key`` unless ``value`` is None; integers stay integers, the rest is written as text."""
    if value is not None:
        tree[key] = value if isinstance(value, int) else str(value)


def _probe(probe: Probe) -> Tree:
    tree: Tree = {"type": probe.type.value}
    if probe.type.uses_port:
        _put(tree, "port", probe.port)
    if probe.type.is_http:
        tree["path"] = probe.path
        tree["expect_status"] = probe.expect_status
        _put(tree, "expect_body", probe.expect_body)
    if probe.type.is_udp:
        _put(tree, "send", probe.send)
        _put(tree, "expect", probe.expect)
    tree.update(
        interval_ms=probe.interval_ms,
        timeout_ms=probe.timeout_ms,
        rise=probe.rise,
        fall=probe.fall,
    )
    return tree


def _endpoint(ep: Endpoint) -> Tree:
    tree: Tree = {"address": str(ep.address), "port": ep.port, "weight": ep.weight}
    if ep.probe is not None:
        tree["probe"] = _probe(ep.probe)
    return tree


def _service(svc: Service) -> Tree:
    tree: Tree = {"name": svc.name}
    _put(tree, "vip", svc.vip)
    _put(tree, "pool", svc.pool)
    tree.update(
        port=svc.port,
        protocol=svc.protocol.value,
        mode=svc.mode.value,
        selection=svc.selection.value,
    )
    if svc.selection is Selection.PERSIST:
        tree["persist_timeout_s"] = svc.persist_timeout_s
    if svc.mode is NatMode.FULLNAT:
        _put(tree, "source", svc.source)
    tree["endpoints"] = [_endpoint(ep) for ep in svc.endpoints]
    if svc.probe is not None:
        tree["probe"] = _probe(svc.probe)
    if svc.communities:
        tree["communities"] = [str(c) for c in svc.communities]
    if svc.large_communities:
        tree["large_communities"] = [str(c) for c in svc.large_communities]
    return tree


def _track(track: Track) -> Tree:
    tree: Tree = {"type": track.type.value, "name": track.name}
    _put(tree, "weight", track.weight)
    if track.type is TrackType.COMMAND:
        tree["interval_ms"] = track.interval_ms
    return tree


def _group(group: HaGroup) -> Tree:
    tree: Tree = {
        "id": group.id,
        "interface": group.interface,
        "priority": group.priority,
        "preempt": group.preempt,
        "preempt_delay_ms": group.preempt_delay_ms,
        "advert_interval_ms": group.advert_interval_ms,
        "vips": [str(v) for v in group.vips],
        "pools": list(group.pools),
        "unicast_peers": [str(p) for p in group.unicast_peers],
    }
    _put(tree, "auth_key_file", group.auth_key_file)
    tree["track"] = [_track(t) for t in group.track]
    _put(tree, "notify", group.notify)
    return tree


def _ha(ha: Ha) -> Tree:
    return {
        "groups": [_group(g) for g in ha.groups],
        "sync_groups": [{"name": s.name, "groups": list(s.groups)} for s in ha.sync_groups],
        "join_timeout_ms": ha.join_timeout_ms,
    }


def _peer(peer: BgpPeer) -> Tree:
    tree: Tree = {"address": str(peer.address), "asn": peer.asn, "port": peer.port}
    _put(tree, "password_file", peer.password_file)
    tree.update(hold_time=peer.hold_time, passive=peer.passive, ttl_security=peer.ttl_security)
    _put(tree, "multihop_ttl", peer.multihop_ttl)
    _put(tree, "max_prefixes", peer.max_prefixes)
    _put(tree, "description", peer.description)
    return tree


def _attrs(attrs: AdvertAttrs) -> Tree:
    return {
        "med": attrs.med,
        "prepend": attrs.prepend,
        "communities": [str(c) for c in attrs.communities],
        "large_communities": [str(c) for c in attrs.large_communities],
    }


def _prefix_filter(item: PrefixFilter) -> str | Tree:
    if item.is_exact:
        return str(item.prefix)
    return {"prefix": str(item.prefix), "ge": item.ge, "le": item.le}


def _bgp(bgp: Bgp) -> Tree:
    return {
        "asn": bgp.asn,
        "router_id": str(bgp.router_id),
        "listen_port": bgp.listen_port,
        "install_routes": bgp.install_routes,
        "peers": [_peer(p) for p in bgp.peers],
        "advertise": {
            "active": _attrs(bgp.advertise.active),
            "backup": _attrs(bgp.advertise.backup),
        },
        "import": [_prefix_filter(f) for f in bgp.imports],
        "graceful_restart": {
            "enabled": bgp.graceful_restart.enabled,
            "restart_time": bgp.graceful_restart.restart_time,
        },
    }


def _sync(sync: Sync) -> Tree:
    return {
        "listen": str(sync.listen),
        "peers": [str(p) for p in sync.peers],
        "key_file": str(sync.key_file),
    }
