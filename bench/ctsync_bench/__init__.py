"""Helpers of ``bench/ctsync.py``: conntrack sync replication lag, bulk resync and throughput.

Layout:

- :mod:`ctsync_bench.nodes` -- the scenario-4 daemons: derived configs, start/stop, their JSON
  log events, their pinned maps (read from the bench process), progress output
- :mod:`ctsync_bench.opener` -- run in the client namespace: opens TCP connections to the VIP
  at a steady rate, holds each, and writes ``<client port> <connect() return time>`` per line
- :mod:`ctsync_bench.lag` -- the replication-lag measurement: the opener plus a ~1 ms probe of
  node2's conntrack map for the pending keys
- :mod:`ctsync_bench.fill` -- synthetic local connections written into node1's pinned map
- :mod:`ctsync_bench.resync` -- the bulk resync of node1's table to a (re)starting node2
- :mod:`ctsync_bench.conntrackd` -- the peer: kernel conntrack (nftables DNAT/SNAT) replicated
  by conntrackd (FTFW) between the node namespaces, the same lag measurement
"""
