"""`triolb dataplane flush` releases the VIP addresses HA added (tagged with their own
address protocol) and nothing else: a node whose daemon is gone and whose programs are removed
must not keep answering for the VIPs (it would reset connections its peer took over)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.lab

ADD = (
    "import ipaddress; from appliance.ha.vips import AddressEditor; e = AddressEditor(); "
    "e.add('v0', [ipaddress.ip_address(a) for a in ('192.168.80.200', 'fd00:80::200')]); "
    "e.close()"
)


def _ip(ns: str, *args: str) -> str:
    result = subprocess.run(
        ["ip", "-n", ns, *args], capture_output=True, text=True, timeout=10, check=True
    )
    return result.stdout


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace of this test's own with a veth pair (v0 up, 192.168.80.5/24)."""
    ns = f"tlbvip-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
    try:
        _ip(ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        for link in ("v0", "v1"):
            _ip(ns, "link", "set", link, "up")
        _ip(ns, "addr", "add", "192.168.80.5/24", "dev", "v0")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False, timeout=10)


def _in(ns: str, *argv: str) -> str:
    result = subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_flush_releases_the_vips_and_only_them(namespace: str) -> None:
    _in(namespace, sys.executable, "-c", ADD)
    before = _ip(namespace, "addr", "show", "dev", "v0")
    assert "192.168.80.200/32" in before and "fd00:80::200/128" in before
    kept = _in(namespace, sys.executable, "-m", "appliance", "dataplane", "flush", "--node",
               "no-such-node", "--keep-vips")  # fmt: skip
    assert "released" not in kept
    assert "192.168.80.200/32" in _ip(namespace, "addr", "show", "dev", "v0")
    out = _in(namespace, sys.executable, "-m", "appliance", "dataplane", "flush", "--node",
              "no-such-node")  # fmt: skip
    assert "released 192.168.80.200 on v0" in out and "released fd00:80::200 on v0" in out
    after = _ip(namespace, "addr", "show", "dev", "v0")
    assert "192.168.80.200" not in after and "fd00:80::200" not in after
    assert "192.168.80.5/24" in after  # the node's own address stays
