"""New TCP connections per second: nginx in each endpoint, wrk in the client.

Each endpoint runs its own nginx (one worker, config, pid and logs in the bench's temp
directory; the system's nginx is never touched) answering every request with a few bytes and
closing the connection (``keepalive_timeout 0``). wrk sends ``Connection: close`` requests over
``connections`` concurrent sockets for ``seconds``: every request is a new TCP connection
(SYN, request, response, FIN both ways), so requests/s is connections/s. A Lua ``done`` hook
prints wrk's summary as one JSON line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import attrs

from appliance.lab.api import LabHandle

from .cpu import MachineSample, children_cpu_s, machine_share, namespace_cpu_ticks, ticks_spent
from .paths import CLIENT, ENDPOINTS, HTTP_PORT, LB_NODE, wait_listening

NGINX_READY_S = 10.0
WRK_GRACE_S = 20.0
WRK_MARK = "WRK_JSON "

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx-{host}.pid;
error_log {dir}/nginx-{host}-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_timeout 0;
    client_body_temp_path {dir}/body-{host};
    proxy_temp_path {dir}/proxy-{host};
    fastcgi_temp_path {dir}/fastcgi-{host};
    uwsgi_temp_path {dir}/uwsgi-{host};
    scgi_temp_path {dir}/scgi-{host};
    server {{
        listen {address}:{port} backlog=4096;
        location / {{ return 200 "{host}\\n"; }}
    }}
}}
"""

WRK_SCRIPT = """\
wrk.headers["Connection"] = "close"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"latency_us":{"mean":%.1f,"p50":%d,"p99":%d,"max":%d}}\\n',
    "{mark}", summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@attrs.frozen
class CpsSpec:
    seconds: int
    threads: int
    connections: int


class NginxEndpoints:
    """nginx in every endpoint namespace, started once for the whole benchmark."""

    def __init__(self, lab: LabHandle, workdir: Path) -> None:
        self.lab = lab
        self.workdir = workdir
        self.names: list[str] = []

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for host, address in ENDPOINTS.items():
            conf = self.workdir / f"nginx-{host}.conf"
            conf.write_text(
                NGINX_CONF.format(dir=self.workdir, host=host, address=address, port=HTTP_PORT)
            )
            argv = ["nginx", "-p", str(self.workdir), "-c", str(conf), "-e", "stderr"]
            name = f"nginx-{host}"
            self.lab.spawn(host, name, argv)
            self.names.append(name)
        for host in ENDPOINTS:
            wait_listening(self.lab, host, HTTP_PORT, f"nginx-{host}", NGINX_READY_S)

    def stop(self) -> None:
        for name in self.names:
            self.lab.stop(name)
        self.names.clear()


def write_wrk_script(workdir: Path) -> Path:
    path = workdir / "wrk-summary.lua"
    path.write_text(WRK_SCRIPT.replace("{mark}", WRK_MARK))
    return path


def run_cps(lab: LabHandle, target: str, spec: CpsSpec, script: Path, label: str) -> dict[str, Any]:
    """One wrk run to ``http://target/``; returns ``cps`` and details, or raises RuntimeError."""
    argv = [
        "wrk",
        "-t",
        str(spec.threads),
        "-c",
        str(spec.connections),
        "-d",
        f"{spec.seconds}s",
        "--timeout",
        "2s",
        "-s",
        str(script),
        f"http://{target}:{HTTP_PORT}/",
    ]
    server_namespaces = [lab.ns(host) for host in ENDPOINTS]
    servers_before = namespace_cpu_ticks(server_namespaces)
    node_before = namespace_cpu_ticks([lab.ns(LB_NODE)])
    tool_before = children_cpu_s()
    machine_before = MachineSample.now()
    started = time.monotonic()
    result = lab.exec(CLIENT, argv, timeout=spec.seconds + WRK_GRACE_S)
    wall = time.monotonic() - started
    machine = machine_share(machine_before, MachineSample.now())
    tool_cpu = children_cpu_s() - tool_before
    servers_cpu = ticks_spent(servers_before, namespace_cpu_ticks(server_namespaces))
    node_cpu = ticks_spent(node_before, namespace_cpu_ticks([lab.ns(LB_NODE)]))
    lines = [line for line in result.stdout.splitlines() if line.startswith(WRK_MARK)]
    if result.returncode != 0 or not lines:
        detail = (result.stderr or result.stdout).strip()[:300]
        raise RuntimeError(f"wrk failed ({label}, exit {result.returncode}): {detail}")
    summary: dict[str, Any] = json.loads(lines[-1][len(WRK_MARK) :])
    seconds = summary["duration_us"] / 1e6
    errors = summary["errors"]
    return {
        "cps": round(summary["requests"] / seconds, 1),
        "requests": summary["requests"],
        "seconds": round(seconds, 2),
        "errors": errors,
        "errors_total": sum(errors.values()),
        "latency_us": summary["latency_us"],
        "cpu": {
            "machine_pct": machine,
            "wrk_cores": round(tool_cpu / wall, 2),
            "nginx_cores": round(servers_cpu / wall, 2),
            "node1_processes_cores": round(node_cpu / wall, 2),
        },
        "wall_s": round(wall, 2),
    }
