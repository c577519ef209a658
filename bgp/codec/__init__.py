"""Pure (sans-IO) BGP-4 message codec.

``encode(message, negotiated) -> bytes`` and ``decode(data, negotiated) -> Message`` handle whole
messages; ``split_messages`` frames a TCP byte stream. Everything raises only `bgp.errors.BgpError`
on bad input. See `bgp.codec.update` for how RFC 7606 outcomes surface.
"""

from bgp.codec.attr_basic import Aggregator, AsPath, AsPathSegment, Origin, SegmentType
from bgp.codec.attr_community import (
    LargeCommunity,
    WellKnownCommunity,
    community,
    format_community,
    parse_community,
)
from bgp.codec.attr_mp import MpReachNlri, MpUnreachNlri
from bgp.codec.attributes import AttrType, PathAttributes, UnknownAttribute
from bgp.codec.capabilities import (
    Capability,
    CapabilityCode,
    EnhancedRouteRefreshCapability,
    ExtendedMessageCapability,
    FourOctetAsCapability,
    GracefulRestartCapability,
    GracefulRestartFamily,
    MultiprotocolCapability,
    RouteRefreshCapability,
    UnknownCapability,
)
from bgp.codec.header import MessageType
from bgp.codec.messages import Keepalive, Message, decode, encode, split_messages
from bgp.codec.notification import Notification
from bgp.codec.open import Open, OptionalParameter, negotiate, validate_open
from bgp.codec.route_refresh import RouteRefresh, RouteRefreshSubtype
from bgp.codec.update import Update, end_of_rib, end_of_rib_family, is_end_of_rib

__all__ = [
    "Aggregator",
    "AsPath",
    "AsPathSegment",
    "AttrType",
    "Capability",
    "CapabilityCode",
    "EnhancedRouteRefreshCapability",
    "ExtendedMessageCapability",
    "FourOctetAsCapability",
    "GracefulRestartCapability",
    "GracefulRestartFamily",
    "Keepalive",
    "LargeCommunity",
    "Message",
    "MessageType",
    "MpReachNlri",
    "MpUnreachNlri",
    "MultiprotocolCapability",
    "Notification",
    "Open",
    "OptionalParameter",
    "Origin",
    "PathAttributes",
    "RouteRefresh",
    "RouteRefreshCapability",
    "RouteRefreshSubtype",
    "SegmentType",
    "UnknownAttribute",
    "UnknownCapability",
    "Update",
    "WellKnownCommunity",
    "community",
    "decode",
    "encode",
    "end_of_rib",
    "end_of_rib_family",
    "format_community",
    "is_end_of_rib",
    "negotiate",
    "parse_community",
    "split_messages",
    "validate_open",
]
