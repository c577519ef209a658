"""The IPv6 building blocks of HA between two namespaces joined by a veth pair: the VRRP socket
(multicast to ff02::12 and unicast, from the link-local address, hop limit 255), unsolicited
Neighbour Advertisements, and VIPs added without duplicate address detection.

The two namespaces (``tlbv6-<pid>-a`` / ``-b``, not lab names: the lab tooling ignores them) are
this module's own and are deleted afterwards whatever happened. Nothing is created in the root
namespace (the veth is created inside A with its peer moved to B) and nothing is sent anywhere
else. The code under test runs in a Python subprocess started with ``ip netns exec``; this
process stays in the root namespace. A keeps duplicate address detection on (so that "not
tentative" means something; the fixture waits for its link-local address to pass DAD), B has it
off.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from appliance.ha import wire
from tests.lab.support.ha import wait_until

pytestmark = pytest.mark.lab

ROOT = Path(__file__).parents[2]
WAIT_S = 10.0
MAC_A = "02:76:36:00:00:0a"
MAC_B = "02:76:36:00:00:0b"
IF_A = "va"
IF_B = "vb"

# argv: ifname, destination (or "group"), VIP, count. Sends `count` adverts, 0.1 s apart.
SEND = """
import ipaddress, json, sys, time
from appliance.ha import vips, wire
from appliance.ha.transport import VrrpSocket
ifname, dst_arg, vip, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
local = vips.link_local_address(ifname)
sock = VrrpSocket.open(ifname, local)
dst = sock.group if dst_arg == "group" else ipaddress.IPv6Address(dst_arg)
payload = wire.encode(wire.Advert(1, 100, 2, (ipaddress.IPv6Address(vip),)), local, dst)
sent = []
for i in range(count):
    if i:
        time.sleep(0.1)
    sent.append(sock.send(payload, dst))
sock.close()
print(json.dumps({"local": str(local), "family": int(sock.family), "sent": sent}))
"""

# argv: ifname. Prints "ready" once joined, then the first datagram as JSON.
RECEIVE = """
import json, sys, trio
from appliance.ha import vips
from appliance.ha.transport import VrrpSocket
async def main():
    sock = VrrpSocket.open(sys.argv[1], vips.link_local_address(sys.argv[1]))
    print("ready", flush=True)
    with trio.fail_after(float(sys.argv[2])):
        d = await sock.receive()
    print(json.dumps({"src": str(d.src), "dst": str(d.dst), "ttl": d.ttl,
                      "payload": d.payload.hex()}), flush=True)
trio.run(main)
"""

GARP = """
import ipaddress, sys, trio
from appliance.ha.garp import send_garps
trio.run(send_garps, sys.argv[1], [ipaddress.ip_address(a) for a in sys.argv[2:]], 2, 0.05)
"""

ADD_VIPS = """
import ipaddress, json, sys
from appliance.ha.vips import add_vips
print(json.dumps([str(a) for a in add_vips(sys.argv[1], map(ipaddress.ip_address, sys.argv[2:]))]))
"""

REMOVE_VIPS = """
import ipaddress, json, sys
from appliance.ha.vips import remove_vips
addresses = map(ipaddress.ip_address, sys.argv[2:])
print(json.dumps([str(a) for a in remove_vips(sys.argv[1], addresses)]))
"""

LINK_LOCAL = """
import sys
from appliance.ha.vips import link_local_address
print(link_local_address(sys.argv[1]))
"""


def _run(argv: list[str], timeout: float = WAIT_S) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise AssertionError(f"{argv} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@attrs.frozen
class Pair:
    a: str
    b: str

    def ip(self, ns: str, *args: str) -> str:
        return _run(["ip", "-n", ns, *args])

    def sysctl(self, ns: str, key: str, value: str) -> None:
        _run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"])

    def py_argv(self, ns: str, code: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", ns, sys.executable, "-c", code, *args]

    def py(self, ns: str, code: str, *args: str) -> str:
        done = subprocess.run(
            self.py_argv(ns, code, *args),
            capture_output=True,
            text=True,
            timeout=WAIT_S + 5,
            cwd=ROOT,
            env=_env(),
        )
        if done.returncode:
            raise AssertionError(f"python in {ns} failed: {done.stderr.strip()}")
        return done.stdout

    def link_local(self, ns: str, ifname: str) -> ipaddress.IPv6Address:
        text = self.py(ns, LINK_LOCAL, ifname).strip()
        assert text != "None", f"no link-local address on {ns}/{ifname}"
        return ipaddress.IPv6Address(text)

    def addr_line(self, ns: str, ifname: str, address: str) -> str | None:
        """The ``ip -o -6 addr`` line of ``address`` on the interface, if present."""
        for line in self.ip(ns, "-o", "-6", "addr", "show", "dev", ifname).splitlines():
            if f" {address}/" in line:
                return line
        return None


def _delete_namespace(ns: str) -> None:
    # every process started in it was waited for (or killed, by `_receive` / on timeout)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    tag = f"tlbv6-{os.getpid()}"
    a, b = f"{tag}-a", f"{tag}-b"
    made: list[str] = []
    try:
        for ns in (a, b):
            _run(["ip", "netns", "add", ns])
            made.append(ns)
        p = Pair(a, b)
        p.ip(a, "link", "add", IF_A, "address", MAC_A, "type", "veth", "peer", "name", IF_B)
        p.ip(a, "link", "set", IF_B, "netns", b)
        p.ip(b, "link", "set", IF_B, "address", MAC_B)
        p.sysctl(b, f"net.ipv6.conf.{IF_B}.accept_dad", "0")
        for ns, ifname in ((a, IF_A), (b, IF_B)):
            p.ip(ns, "link", "set", "lo", "up")
            p.ip(ns, "link", "set", ifname, "up")

        def a_ready() -> bool:
            out = p.ip(a, "-o", "-6", "addr", "show", "dev", IF_A, "scope", "link")
            return "fe80::" in out and "tentative" not in out

        wait_until("A's link-local address to pass DAD", a_ready)
        yield p
    finally:
        for ns in made:
            _delete_namespace(ns)


def _receive(pair: Pair, send_to: str) -> tuple[dict[str, object], dict[str, object]]:
    receiver = subprocess.Popen(
        pair.py_argv(pair.b, RECEIVE, IF_B, str(WAIT_S)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(),
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        sent = json.loads(pair.py(pair.a, SEND, IF_A, send_to, "fd80::100", "3"))
        out, err = receiver.communicate(timeout=WAIT_S + 5)
        assert receiver.returncode == 0, err
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    return sent, json.loads(out)


def _check_advert(received: dict[str, object], src: ipaddress.IPv6Address, dst: str) -> None:
    assert received["src"] == str(src)
    assert received["dst"] == dst
    assert received["ttl"] == 255
    wire.check_ttl(int(str(received["ttl"])))
    advert = wire.decode(
        bytes.fromhex(str(received["payload"])), src, ipaddress.IPv6Address(dst)
    )  # verifies the checksum under the link-local pseudo-header
    assert advert == wire.Advert(1, 100, 2, (ipaddress.IPv6Address("fd80::100"),))


def test_multicast_advert_from_link_local(pair: Pair) -> None:
    ll_a = pair.link_local(pair.a, IF_A)
    assert ll_a.is_link_local
    sent, received = _receive(pair, "group")
    assert sent["local"] == str(ll_a)
    assert sent["family"] == 10  # AF_INET6
    assert all(sent["sent"])  # type: ignore[arg-type]
    _check_advert(received, ll_a, "ff02::12")


def test_unicast_advert_to_link_local(pair: Pair) -> None:
    ll_a = pair.link_local(pair.a, IF_A)
    ll_b = pair.link_local(pair.b, IF_B)
    sent, received = _receive(pair, str(ll_b))
    assert all(sent["sent"])  # type: ignore[arg-type]
    _check_advert(received, ll_a, str(ll_b))


def _neighbour_mac(pair: Pair, address: str) -> str | None:
    out = pair.ip(pair.b, "-6", "neigh", "show", address, "dev", IF_B)
    words = out.split()
    return words[words.index("lladdr") + 1] if "lladdr" in words else None


def test_unsolicited_na_overrides_an_existing_entry(pair: Pair) -> None:
    """The failover case: B still maps the VIP to the old owner's MAC; A's NA (Override)
    moves it to A."""
    vip = "fd80::110"
    old = "02:76:36:00:00:99"
    pair.ip(pair.b, "-6", "neigh", "replace", vip, "lladdr", old, "dev", IF_B, "nud", "stale")
    assert _neighbour_mac(pair, vip) == old
    pair.py(pair.a, GARP, IF_A, vip, "192.168.80.210")  # a mixed list: ARP and NA
    wait_until(f"B to map {vip} to A's MAC", lambda: _neighbour_mac(pair, vip) == MAC_A)


def test_unsolicited_na_creates_an_entry_when_accepted(pair: Pair) -> None:
    """Without an entry Linux ignores an unsolicited NA, unless (RFC 9131, kernel 5.18+) the
    receiver forwards IPv6 on that interface and has accept_untracked_na = 1 (default 0): set
    both in B for this case (e.g. B is a router in front of the VIPs)."""
    vip = "fd80::111"
    conf = f"net.ipv6.conf.{IF_B}"
    assert _neighbour_mac(pair, vip) is None
    pair.sysctl(pair.b, f"{conf}.forwarding", "1")
    pair.sysctl(pair.b, f"{conf}.accept_untracked_na", "1")
    try:
        pair.py(pair.a, GARP, IF_A, vip)
        wait_until(f"B to learn {vip} at A's MAC", lambda: _neighbour_mac(pair, vip) == MAC_A)
    finally:
        pair.sysctl(pair.b, f"{conf}.accept_untracked_na", "0")
        pair.sysctl(pair.b, f"{conf}.forwarding", "0")


def test_ipv6_vip_is_added_without_dad(pair: Pair) -> None:
    vip = "fd80::120"
    # control: an address added the ordinary way on A's interface is tentative (DAD is on there)
    pair.ip(pair.a, "-6", "addr", "add", "fd80::121/128", "dev", IF_A)
    control = pair.addr_line(pair.a, IF_A, "fd80::121")
    assert control is not None and "tentative" in control
    assert json.loads(pair.py(pair.a, ADD_VIPS, IF_A, vip)) == [vip]
    line = pair.addr_line(pair.a, IF_A, vip)
    assert line is not None, "VIP not on the interface"
    assert "tentative" not in line
    assert f" {vip}/128 " in line
    assert json.loads(pair.py(pair.a, ADD_VIPS, IF_A, vip)) == []  # already there: a no-op
    assert json.loads(pair.py(pair.a, REMOVE_VIPS, IF_A, vip)) == [vip]
    assert pair.addr_line(pair.a, IF_A, vip) is None
    assert json.loads(pair.py(pair.a, REMOVE_VIPS, IF_A, vip)) == []


def test_link_local_address_matches_the_kernel(pair: Pair) -> None:
    out = pair.ip(pair.a, "-o", "-6", "addr", "show", "dev", IF_A, "scope", "link")
    expected = ipaddress.IPv6Address(out.split(" inet6 ")[1].split("/")[0])
    assert pair.link_local(pair.a, IF_A) == expected
    assert pair.py(pair.a, LINK_LOCAL, "nosuchif").strip() == "None"
