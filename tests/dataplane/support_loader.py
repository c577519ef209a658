"""Shared fixtures of the loader / programmer / conntrack tests (real kernel, root).

Import the fixtures into a test module (``from tests.dataplane.support_loader import ...``).
Pins go under /sys/fs/bpf/triolb/<unique node name>/ and are removed by the finalizer; network
namespaces are the test's own, deleted in the finalizer.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import boot
from bpf.loader import Dataplane, pin_dir_for, remove_pins

#: A program with the real header (so every map exists) that passes every packet.
STUB_PROGRAM = """
#include <uapi/linux/pkt_cls.h>
int tlb_ingress(struct __sk_buff *skb) { return TC_ACT_OK; }
"""

_counter = itertools.count(1)


def unique_name(kind: str) -> str:
    return f"t{os.getpid()}-{kind}{next(_counter)}"


@pytest.fixture(scope="session")
def bpffs() -> None:
    """bpffs at /sys/fs/bpf, as the daemon's boot mounts it (left mounted: it is where
    pinned dataplanes live on any host)."""
    boot.mount_bpffs()


@pytest.fixture(scope="session")
def stub_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bpf") / "stub.c"
    path.write_text(STUB_PROGRAM)
    return path


@pytest.fixture
def node(bpffs: None) -> Iterator[str]:
    """A unique node name; its pins are removed afterwards."""
    name = unique_name("n")
    try:
        yield name
    finally:
        remove_pins(pin_dir_for(name))


@pytest.fixture
def loaded(node: str, stub_source: Path) -> Iterator[Dataplane]:
    """The stub program loaded for a fresh node (closed afterwards; pins go with `node`)."""
    dataplane = Dataplane.load(node, 1, source=stub_source)
    try:
        yield dataplane
    finally:
        dataplane.close()


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)


@pytest.fixture
def veth_ns() -> Iterator[str]:
    """A network namespace of our own holding a veth pair ``va``/``vb`` (both up)."""
    name = unique_name("ns")
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        _ip("-n", name, "link", "set", "va", "up")
        _ip("-n", name, "link", "set", "vb", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def tc_filters(ns: str, ifname: str, hook: str) -> str:
    """``tc filter show`` of an interface's ingress/egress hook inside ``ns``."""
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "tc", "filter", "show", "dev", ifname, hook],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout
