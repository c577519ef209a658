"""The pieces of ``bench/report.py``: a small model of a report section (:mod:`.model`), one
module per benchmark turning its JSON into a section and chart descriptions (:mod:`.bgp`,
:mod:`.dataplane`, :mod:`.failover`, :mod:`.ctsync`), and the writers (:mod:`.markdown`,
:mod:`.charts`). The benchmark modules are pure (JSON in, data out) so they can be tested
without matplotlib or a lab."""
