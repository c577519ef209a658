"""HA election: sans-IO VRRPv3 (RFC 5798 with the RFC 9568 corrections) for triolb.

Pure cores only: `wire` (advertisement codec and the optional HMAC trailer), `instance` (one
group's state machine), `sync_group` (groups that change state together) and `tracking`
(tracked objects to a priority delta and a fault). The Trio shell owns sockets and the clock.
"""
