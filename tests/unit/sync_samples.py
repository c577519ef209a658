"""A conntrack sync status with one peer, as the sync service publishes it (shared by the
`show sync` and metrics tests)."""

from __future__ import annotations

from appliance.sync.core import PeerStatus
from appliance.sync.status import SyncStatus

PEER = PeerStatus(
    peer=("192.168.80.253", 7946),
    node_id=2,
    state="up",
    epoch=1234,
    frames_sent=10,
    frames_received=12,
    ops_sent=200,
    ops_received=3,
    retransmits=1,
    queue=4,
    in_flight=2,
    lag_s=0.0125,
    resyncs_sent=1,
    resyncs_received=1,
    overflows=0,
    last_heard_s=0.2,
    rejected={"bad-mac": 2},
)
STATUS = SyncStatus(
    node_id=1,
    listen="192.168.80.252:7946",
    resynced=True,
    peers=(PEER,),
    captured=200,
    applied=3,
    deleted=1,
    kept_local=0,
    skipped={"unknown-service": 5},
)
