"""Traffic tools run inside lab namespaces (``python -m appliance.lab.traffic.<tool>``).

- :mod:`~appliance.lab.traffic.endpoint_server`: HTTP server naming the endpoint + TCP echo.
- :mod:`~appliance.lab.traffic.stream_client`: long-lived echo streams, gaps/stalls/resets.
- :mod:`~appliance.lab.traffic.http_loop`: repeated GETs, per-endpoint counts, error windows.

All are bounded in time and count; results are JSON on stdout.
"""
