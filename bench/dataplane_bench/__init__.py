"""Helpers of ``bench/dataplane.py``: lab plumbing, the three paths under test, the load tools.

Layout:

- :mod:`dataplane_bench.paths` -- addresses and ports, the static routes and sysctls that put
  node1 on the path (VIP at the router, replies from the endpoints), progress output
- :mod:`dataplane_bench.variants` -- ``direct``, ``nftables`` and ``triolb``: set up, tear down,
  what the client connects to
- :mod:`dataplane_bench.triolb` -- the daemon's config, start and the wait for its dataplane
- :mod:`dataplane_bench.throughput` -- one iperf3 run (server in ep1, client in the client)
- :mod:`dataplane_bench.cps` -- nginx in the endpoints and one wrk run of short connections
- :mod:`dataplane_bench.cpu` -- where the CPU went during a run (``/proc/stat``, rusage)
"""
