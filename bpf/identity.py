"""What the maps' numbers mean: service ids and endpoint indexes as (VIP, port, protocol) and
(address, port), frozen at one moment.

Ids and indexes are this node's own (the programmer assigns them in the order services and
endpoints appear), so a connection handed to another node (conntrack sync) travels by name —
its service key and endpoint — and is renumbered there with that node's `Identity`.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from .model import EndpointKey, ServiceKey

__all__ = ["Identity"]


@attrs.frozen
class Identity:
    #: (VIP, port, protocol) -> service id
    ids: Mapping[ServiceKey, int] = attrs.field(factory=dict)
    #: service id -> (address, port) -> endpoint index
    indexes: Mapping[int, Mapping[EndpointKey, int]] = attrs.field(factory=dict)
    #: service id -> endpoint index -> (address, port)
    endpoints: Mapping[int, Mapping[int, EndpointKey]] = attrs.field(factory=dict)

    @classmethod
    def build(
        cls, ids: Mapping[ServiceKey, int], indexes: Mapping[int, Mapping[EndpointKey, int]]
    ) -> Identity:
        return cls(
            dict(ids),
            {svc_id: dict(eps) for svc_id, eps in indexes.items()},
            {svc_id: {i: ep for ep, i in eps.items()} for svc_id, eps in indexes.items()},
        )

    def endpoint(self, svc_id: int, index: int) -> EndpointKey | None:
        return self.endpoints.get(svc_id, {}).get(index)

    def index(self, svc_id: int, endpoint: EndpointKey) -> int | None:
        return self.indexes.get(svc_id, {}).get(endpoint)
