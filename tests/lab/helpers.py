"""Small helpers shared by the lab tests (all commands run inside lab namespaces)."""

from __future__ import annotations

import json
import sys
from typing import Any

from appliance.lab.api import LabHandle

CURL = ["curl", "-sS", "--max-time", "3"]


def http_get(handle: LabHandle, host: str, url: str) -> str:
    """Body of ``GET url`` issued from ``host``'s namespace (asserts success)."""
    result = handle.exec(host, [*CURL, url], timeout=10)
    assert result.returncode == 0, f"curl {url} from {host}: {result.stderr}"
    return result.stdout


def interface_addresses(handle: LabHandle, host: str) -> dict[str, set[str]]:
    """ifname -> {"a.b.c.d/len", ...} (IPv4) inside ``host``."""
    result = handle.exec(host, ["ip", "-j", "-4", "addr", "show"], timeout=10, check=True)
    out: dict[str, set[str]] = {}
    for link in json.loads(result.stdout):
        out[link["ifname"]] = {f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])}
    return out


def route_get(handle: LabHandle, host: str, dst: str) -> dict[str, Any]:
    result = handle.exec(host, ["ip", "-j", "route", "get", dst], timeout=10, check=True)
    routes: list[dict[str, Any]] = json.loads(result.stdout)
    return routes[0]


def default_routes(handle: LabHandle, host: str) -> list[dict[str, Any]]:
    result = handle.exec(host, ["ip", "-j", "-4", "route", "show", "default"], timeout=10)
    assert result.returncode == 0, result.stderr
    routes: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return routes


def sysctl(handle: LabHandle, host: str, key: str) -> str:
    result = handle.exec(host, ["sysctl", "-n", key], timeout=10, check=True)
    return result.stdout.strip()


def forwarded_datagrams(handle: LabHandle, host: str) -> int:
    """``Ip: ForwDatagrams`` of ``host``'s namespace (/proc/net/snmp is per namespace)."""
    result = handle.exec(host, ["cat", "/proc/net/snmp"], timeout=10, check=True)
    ip_lines = [line.split() for line in result.stdout.splitlines() if line.startswith("Ip:")]
    header, values = ip_lines[0], ip_lines[1]
    return int(values[header.index("ForwDatagrams")])


def run_tool(
    handle: LabHandle, host: str, tool: str, *args: str, timeout: float = 30
) -> dict[str, Any]:
    """Run ``python -m appliance.lab.traffic.<tool>`` in ``host`` and return its JSON report."""
    argv = [sys.executable, "-m", f"appliance.lab.traffic.{tool}", *args]
    result = handle.exec(host, argv, timeout=timeout)
    assert result.returncode == 0, f"{tool} failed: {result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report
