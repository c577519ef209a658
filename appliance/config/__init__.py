"""triolb configuration: schema (attrs classes), YAML loading with line-accurate errors, dumping.

cfg = load_config(Path("node1.yaml"))      # raises ConfigError listing every problem
text = dump_config(cfg)                    # normalised YAML; parse_config(text) == cfg
"""

from .dump import dump_config
from .errors import ConfigError, ConfigIssue
from .loader import load_config, parse_config
from .model import (
    AdvertAttrs,
    Advertise,
    Bgp,
    BgpPeer,
    Config,
    Endpoint,
    Ha,
    HaGroup,
    Interfaces,
    NatMode,
    Node,
    Probe,
    ProbeType,
    Protocol,
    Selection,
    Service,
    Sync,
    SyncGroup,
    Track,
    TrackType,
    VipPool,
    Web,
)
from .values import Community, IPAddress, IPNetwork, LargeCommunity, PrefixFilter, SocketAddress

__all__ = [
    "AdvertAttrs",
    "Advertise",
    "Bgp",
    "BgpPeer",
    "Community",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "Endpoint",
    "Ha",
    "HaGroup",
    "IPAddress",
    "IPNetwork",
    "Interfaces",
    "LargeCommunity",
    "NatMode",
    "Node",
    "PrefixFilter",
    "Probe",
    "ProbeType",
    "Protocol",
    "Selection",
    "Service",
    "SocketAddress",
    "Sync",
    "SyncGroup",
    "Track",
    "TrackType",
    "VipPool",
    "Web",
    "dump_config",
    "load_config",
    "parse_config",
]
