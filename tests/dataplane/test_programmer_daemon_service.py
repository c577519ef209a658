"""The daemon's dataplane service in-process: load, attach in the test's namespace, reconcile
the running config and its changes, attach to an interface that appears, publish status."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest
import trio

from appliance.config.model import Config, Endpoint, Interfaces, Node, Service
from appliance.controller import IntentController
from appliance.dataplane import DATAPLANE_STATUS, DataplaneService, DataplaneStatus
from appliance.keys import RUNNING_CONFIG
from appliance.state import StateStore
from bpf.loader import attached_programs
from tests.dataplane.support_loader import bpffs, node, stub_source, veth_ns

pytestmark = pytest.mark.lab

__all__ = ["bpffs", "node", "stub_source", "veth_ns"]

IP = ipaddress.ip_address


def _config(name: str, *endpoints: int) -> Config:
    eps = tuple(Endpoint(IP(f"192.168.80.{n}"), 8080) for n in endpoints)
    return Config(
        node=Node(name, 1),
        interfaces=Interfaces(include=("^v[ac]$",)),
        services=(Service("web", 80, eps, vip=IP("198.51.100.10")),),
    )


async def _status_where(store: StateStore, check: object) -> DataplaneStatus:
    with trio.fail_after(60):  # a bound on the wait (compiling under load is slow)
        value = await store.wait_for(
            DATAPLANE_STATUS,
            lambda s: s is not None and bool(check(s)),  # type: ignore[operator]
        )
    assert value is not None
    return value


async def test_service_attaches_reconciles_and_follows_changes(
    node: str, veth_ns: str, stub_source: Path
) -> None:
    store = StateStore()
    cfg = _config(node, 101, 102)
    store.publish(RUNNING_CONFIG, cfg)
    service = DataplaneService(
        store,
        node,
        1,
        source=stub_source,
        netns=veth_ns,
        link_poll_s=0.1,
        status_interval_s=0.1,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(IntentController(store).run)  # as in the daemon: intent first
        await nursery.start(service.run)
        status = await _status_where(store, lambda s: s.services)
        assert status.attached == (("va", ("ingress",)),)
        assert not status.adopted
        (web,) = status.services
        assert [e.address for e in web.endpoints] == ["192.168.80.101", "192.168.80.102"]
        first_slot = web.slot

        store.publish(RUNNING_CONFIG, _config(node, 101, 103))
        status = await _status_where(
            store, lambda s: [e.address for e in s.services[0].endpoints][-1] == "192.168.80.103"
        )
        assert status.services[0].slot != first_slot

        subprocess.run(
            ["ip", "-n", veth_ns, "link", "add", "vc", "type", "veth", "peer", "name", "vd"],
            check=True,
            timeout=10,
        )
        await _status_where(store, lambda s: [n for n, _ in s.attached] == ["va", "vc"])
        nursery.cancel_scope.cancel()
    # the daemon stopped: the program stays attached
    assert attached_programs(netns=veth_ns) == {"va": ["ingress"], "vc": ["ingress"]}
