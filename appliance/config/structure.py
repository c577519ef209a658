"""Structure of the whole document: turns the YAML node tree into a ``Draft``.

Every error is recorded in the ``Context``; nothing stops at the first one. Lists whose items are
referred to by other sections (pools, services, HA groups) keep a bad item as None, so cross-checks
still run on the rest with the original indexes.
"""

from __future__ import annotations

import contextlib
from typing import TypeVar

import attrs

from .model import (
    SYNC_PORT,
    WEB_PORT,
    Bgp,
    Config,
    Ha,
    Interfaces,
    Node,
    Service,
    Sync,
    VipPool,
    Web,
)
from .reader import MISSING, Context, Dropped, Field, Got, Invalid
from .scalars import (
    boolean,
    existing_file,
    integer,
    ipv4_address,
    items_of,
    list_of,
    node_name,
    regex,
    socket_address,
)
from .structure_bgp import bgp
from .structure_ha import HaDraft, ha
from .structure_services import service, vip_pool
from .yaml_source import YNode

TOP_KEYS = ("node", "interfaces", "vip_pools", "services", "ha", "bgp", "sync", "web")
NODE_KEYS = ("name", "id", "router_id")
INTERFACES_KEYS = ("include", "exclude", "egress_hooks")
SYNC_KEYS = ("listen", "peers", "key_file")
WEB_KEYS = ("listen", "token_file")

T = TypeVar("T")


@attrs.frozen
class Draft:
    """Each top-level section as read: a value, None when absent (optional ones), or MISSING."""

    node: Got[Node]
    interfaces: Got[Interfaces]
    vip_pools: Got[tuple[VipPool | None, ...]]
    services: Got[tuple[Service | None, ...]]
    ha: Got[HaDraft | None]
    bgp: Got[Bgp | None]
    sync: Got[Sync | None]
    web: Got[Web]

    def to_config(self) -> Config:
        """The finished config; only valid when no issue was recorded."""
        ha_draft = self.ha.get()
        ha_section = None
        if ha_draft is not None:
            ha_section = Ha(
                _complete(ha_draft.groups),
                _complete(ha_draft.sync_groups),
                ha_draft.join_timeout_ms,
            )
        return Config(
            node=self.node.get(),
            interfaces=self.interfaces.get(),
            vip_pools=_complete(self.vip_pools.get()),
            services=_complete(self.services.get()),
            ha=ha_section,
            bgp=self.bgp.get(),
            sync=self.sync.get(),
            web=self.web.get(),
        )


def _complete(items: tuple[T | None, ...]) -> tuple[T, ...]:
    result = tuple(item for item in items if item is not None)
    assert len(result) == len(items), "draft has failed items"
    return result


def node(field: Field) -> Node:
    m = field.mapping(NODE_KEYS)
    name = m.required("name", node_name)
    node_id = m.required("id", integer(1, 255))
    router_id = m.optional("router_id", ipv4_address, None)
    m.finish()
    return Node(name.get(), node_id.get(), router_id.get())


def interfaces(field: Field) -> Interfaces:
    defaults = Interfaces()
    m = field.mapping(INTERFACES_KEYS)
    include = m.optional("include", list_of(regex, min_items=1), defaults.include)
    exclude = m.optional("exclude", list_of(regex), defaults.exclude)
    egress = m.optional("egress_hooks", boolean, defaults.egress_hooks)
    m.finish()
    return Interfaces(include.get(), exclude.get(), egress.get())


def sync(field: Field) -> Sync:
    m = field.mapping(SYNC_KEYS)
    listen = m.required("listen", socket_address(SYNC_PORT))
    peers = m.optional("peers", list_of(socket_address(SYNC_PORT)), ())
    key_file = m.required("key_file", existing_file)
    m.finish()
    return Sync(listen.get(), key_file.get(), peers.get())


def web(field: Field) -> Web:
    defaults = Web()
    m = field.mapping(WEB_KEYS)
    listen = m.optional("listen", socket_address(WEB_PORT), defaults.listen)
    token_file = m.optional("token_file", existing_file, None)
    m.finish()
    return Web(listen.get(), token_file.get())


def structure(root: YNode, ctx: Context) -> Draft | None:
    """Read the document; None when it is not even a mapping (that is reported)."""
    top = Field(root, "", ctx)
    try:
        m = top.mapping(TOP_KEYS)
    except Invalid:
        ctx.report("", root.line, f"the configuration must be a mapping, not {root.type_name}")
        return None
    node_section = m.required("node", node)
    node_router_id = node_section.get().router_id if node_section.ok else MISSING
    draft = Draft(
        node=node_section,
        interfaces=m.optional("interfaces", interfaces, Interfaces()),
        vip_pools=m.optional("vip_pools", items_of(vip_pool), ()),
        services=m.optional("services", items_of(service), ()),
        ha=m.optional("ha", ha, None),
        bgp=m.optional("bgp", bgp(node_router_id), None),
        sync=m.optional("sync", sync, None),
        web=m.optional("web", web, Web()),
    )
    with contextlib.suppress(Dropped):  # the issues are recorded; the draft says what failed
        m.finish()
    return draft
