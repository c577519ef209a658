"""Pure parts of the probe executors: ICMP encoding, error reasons, URLs."""

from __future__ import annotations

import errno
import ipaddress
import ssl
import struct

import httpx

from appliance.config.model import Probe, ProbeType
from appliance.health.probes import (
    ProbeFailed,
    describe_error,
    echo_request,
    icmp_checksum,
    parse_echo_reply,
    probe_url,
    run_probe,
)
from appliance.health.status import probed_port, same_check


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3 example words: 0001 f203 f4f5 f6f7 -> sum ddf2, checksum 220d
    assert icmp_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert icmp_checksum(b"\x01") == ~0x0100 & 0xFFFF


def test_echo_request_v4_checksums_to_zero() -> None:
    packet = echo_request(4, 0x1234, 7, b"abc")
    assert packet[:2] == b"\x08\x00" and packet[4:8] == struct.pack("!HH", 0x1234, 7)
    assert icmp_checksum(packet) == 0


def test_echo_request_v6_leaves_checksum_to_kernel() -> None:
    assert echo_request(6, 1, 2, b"x") == bytes([128, 0, 0, 0, 0, 1, 0, 2]) + b"x"


def test_parse_echo_reply_with_and_without_ip_header() -> None:
    icmp = struct.pack("!BBHHH", 0, 0, 0, 0xBEEF, 9) + b"data"
    ip_header = bytes([0x45]) + bytes(19)
    assert parse_echo_reply(4, ip_header + icmp, has_ip_header=True) == (0xBEEF, 9, b"data")
    assert parse_echo_reply(4, icmp, has_ip_header=False) == (0xBEEF, 9, b"data")
    request = echo_request(4, 0xBEEF, 9, b"data")
    assert parse_echo_reply(4, request, has_ip_header=False) is None
    assert parse_echo_reply(4, b"\x45", has_ip_header=True) is None
    v6 = struct.pack("!BBHHH", 129, 0, 0, 5, 6)
    assert parse_echo_reply(6, v6, has_ip_header=False) == (5, 6, b"")
    assert parse_echo_reply(6, icmp, has_ip_header=False) is None


def test_describe_error_short_reasons() -> None:
    assert describe_error(ConnectionRefusedError(errno.ECONNREFUSED, "x")) == "refused"
    assert describe_error(OSError(errno.EHOSTUNREACH, "x")) == "host unreachable"
    assert describe_error(OSError(errno.EPIPE, "x")) == "epipe"
    assert describe_error(ProbeFailed("status 503")) == "status 503"
    assert describe_error(ssl.SSLError(1, "bad")) == "tls error"
    wrapped = httpx.ConnectError("boom")
    wrapped.__cause__ = OSError(errno.ENETUNREACH, "x")
    assert describe_error(wrapped) == "network unreachable"
    assert describe_error(httpx.ReadTimeout("slow")) == "timeout"
    attempts = OSError("all attempts to connect failed")
    attempts.__cause__ = ExceptionGroup("all", [ConnectionRefusedError(errno.ECONNREFUSED, "x")])
    assert describe_error(httpx.ConnectError("x", request=None)) == "ConnectError"
    outer = httpx.ConnectError("all attempts")
    outer.__cause__ = attempts
    assert describe_error(outer) == "refused"
    assert describe_error(httpx.RemoteProtocolError("junk")) == "protocol error"
    assert describe_error(RuntimeError("x")) == "RuntimeError"


def test_probe_url_and_ports() -> None:
    v4, v6 = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("2001:db8::1")
    assert probe_url(ProbeType.HTTP, v4, 8080, "/h?x=1") == "http://10.0.0.1:8080/h?x=1"
    assert probe_url(ProbeType.HTTPS, v6, 443, "/") == "https://[2001:db8::1]:443/"
    assert probed_port(Probe(ProbeType.ICMP), 80) is None
    assert probed_port(Probe(ProbeType.TCP), 80) == 80
    assert probed_port(Probe(ProbeType.TCP, port=22), 80) == 22


def test_same_check_ignores_timing_only() -> None:
    base = Probe(ProbeType.HTTP, path="/a")
    assert same_check(base, Probe(ProbeType.HTTP, path="/a", interval_ms=500, timeout_ms=100))
    assert same_check(base, Probe(ProbeType.HTTP, path="/a", rise=9, fall=9))
    assert not same_check(base, Probe(ProbeType.HTTP, path="/b"))
    assert not same_check(base, Probe(ProbeType.HTTPS, path="/a"))
    assert not same_check(Probe(ProbeType.UDP), Probe(ProbeType.UDP, expect="x"))


async def test_type_none_is_up_without_io() -> None:
    result = await run_probe(ipaddress.ip_address("10.0.0.1"), 80, Probe(ProbeType.NONE))
    assert result.ok and result.error is None
