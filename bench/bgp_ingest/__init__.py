"""Helpers of ``bench/bgp_ingest.py``: the BIRD sender, the receivers under test, measurements.

Layout:

- :mod:`bgp_ingest.prefixes` -- the N distinct prefixes and the BIRD config that originates them
- :mod:`bgp_ingest.router` -- BIRD in the lab's router namespace (start, wait, enable/disable)
- :mod:`bgp_ingest.receivers` -- the receiver interface and its triolb / ExaBGP / GoBGP versions
- :mod:`bgp_ingest.procstat` -- RSS of a receiver's process tree from ``/proc``
- :mod:`bgp_ingest.install` -- idempotent installs (Debian packages, ExaBGP's own venv)
- :mod:`bgp_ingest.exabgp_api` -- the ExaBGP API process that counts received prefixes
  (stdlib only; run by ExaBGP with the ExaBGP venv's Python, never imported by the bench)
"""
