"""The map programmer against real pinned maps (stub program)."""

from __future__ import annotations

import ctypes
import ipaddress
from pathlib import Path
from typing import Any

import attrs
import pytest

from bpf.layout import EP_ACTIVE, EP_DRAINING, SLOTS, Mode, Selection
from bpf.loader import Dataplane
from bpf.maps import BpfMap
from bpf.model import DpEndpoint, DpService, IpProto
from bpf.programmer import Programmer, port_block, slot_index, svc_key
from tests.dataplane.support_loader import bpffs, loaded, node, stub_source

pytestmark = pytest.mark.lab

__all__ = ["bpffs", "loaded", "node", "stub_source"]

IP = ipaddress.IPv4Address
VIP = IP("198.51.100.10")


def _ep(last: int, port: int = 8080, **kw: Any) -> DpEndpoint:
    return DpEndpoint(IP(f"192.168.80.{last}"), port, **kw)


def _svc(*endpoints: DpEndpoint, port: int = 80, **kw: Any) -> DpService:
    fields: dict[str, Any] = {
        "vip": VIP,
        "port": port,
        "protocol": IpProto.TCP,
        "mode": Mode.DEFAULT,
        "selection": Selection.ROUNDROBIN,
        "endpoints": endpoints,
    }
    fields.update(kw)
    return DpService(**fields)


class RecordingMap(BpfMap[Any, Any]):
    """The same kernel map, noting which keys were written."""

    def __init__(self, inner: BpfMap[Any, Any]) -> None:
        super().__init__(inner.name, inner.fd, inner.key_type, inner.value_type)
        self.written: list[int] = []

    def update(self, key: Any, value: Any, flags: int = 0) -> None:
        self.written.append(int(key.value))
        super().update(key, value, flags)


def _slot_bytes(dp: Dataplane, svc_id: int, slot: int) -> tuple[bytes, bytes]:
    index = ctypes.c_uint32(slot_index(svc_id, slot))
    eps = dp.maps.endpoints.lookup(index)
    table = dp.maps.tables.lookup(index)
    assert eps is not None and table is not None
    return bytes(eps), bytes(table)


def test_reconcile_twice_writes_nothing_the_second_time(loaded: Dataplane) -> None:
    programmer = Programmer(loaded.maps, 1)
    services = [
        _svc(_ep(101), _ep(102)),
        _svc(_ep(103), port=443, selection=Selection.MAGLEV),
        _svc(_ep(104), port=53, protocol=IpProto.UDP, mode=Mode.FULLNAT, snat_addr=VIP),
    ]
    first = programmer.reconcile(services)
    assert len(first.created) == 3 and first.writes > 0
    second = programmer.reconcile(services)
    assert second.writes == 0 and not second.changed


def test_service_record_and_first_slot(loaded: Dataplane) -> None:
    programmer = Programmer(loaded.maps, 2)
    programmer.reconcile(
        [_svc(_ep(101), _ep(102, weight=3), mode=Mode.FULLNAT, snat_addr=IP("198.51.100.99"))]
    )
    svc_id = programmer.ids[(VIP, 80, IpProto.TCP)]
    value = loaded.maps.services.lookup(svc_key((VIP, 80, IpProto.TCP)))
    assert value is not None
    assert (value.id, value.slot, value.mode) == (svc_id, 0, Mode.FULLNAT)
    assert (value.port_base, value.port_count) == port_block(2)
    eps = loaded.maps.endpoints.lookup(ctypes.c_uint32(slot_index(svc_id, 0)))
    table = loaded.maps.tables.lookup(ctypes.c_uint32(slot_index(svc_id, 0)))
    assert eps is not None and table is not None
    assert eps.count == 2 and eps.eps[1].weight == 3
    assert list(table.entries[: table.size]) == [0, 1]


def test_an_endpoint_change_flips_the_slot_and_never_writes_the_active_one(
    loaded: Dataplane,
) -> None:
    programmer = Programmer(loaded.maps, 1)
    programmer.reconcile([_svc(_ep(101), _ep(102))])
    svc_id = programmer.ids[(VIP, 80, IpProto.TCP)]
    before = _slot_bytes(loaded, svc_id, 0)
    recorder_eps = RecordingMap(loaded.maps.endpoints)
    recorder_tables = RecordingMap(loaded.maps.tables)
    programmer.maps = attrs.evolve(loaded.maps, endpoints=recorder_eps, tables=recorder_tables)

    report = programmer.reconcile([_svc(_ep(101), _ep(102), _ep(103))])

    assert report.flipped == ((VIP, 80, IpProto.TCP),)
    assert recorder_eps.written == recorder_tables.written == [slot_index(svc_id, 1)]
    assert _slot_bytes(loaded, svc_id, 0) == before
    value = loaded.maps.services.lookup(svc_key((VIP, 80, IpProto.TCP)))
    assert value is not None and value.slot == 1
    # and back: the slot left before is rewritten (after the grace period), not the new one
    programmer.reconcile([_svc(_ep(102), _ep(103))])
    assert recorder_eps.written[-1] == slot_index(svc_id, 0)
    indexes = programmer.indexes(svc_id)
    assert indexes == {(IP("192.168.80.102"), 8080): 1, (IP("192.168.80.103"), 8080): 2}


def test_a_draining_endpoint_keeps_its_index_and_leaves_the_table(loaded: Dataplane) -> None:
    programmer = Programmer(loaded.maps, 1)
    programmer.reconcile([_svc(_ep(101), _ep(102), _ep(103))])
    programmer.reconcile([_svc(_ep(101), _ep(102, active=False), _ep(103))])
    svc_id = programmer.ids[(VIP, 80, IpProto.TCP)]
    value = loaded.maps.services.lookup(svc_key((VIP, 80, IpProto.TCP)))
    assert value is not None
    index = ctypes.c_uint32(slot_index(svc_id, value.slot % SLOTS))
    eps = loaded.maps.endpoints.lookup(index)
    table = loaded.maps.tables.lookup(index)
    assert eps is not None and table is not None
    assert [eps.eps[i].flags for i in range(3)] == [EP_ACTIVE, EP_DRAINING, EP_ACTIVE]
    assert list(table.entries[: table.size]) == [0, 2]


def test_removed_endpoint_frees_its_index_for_the_next(loaded: Dataplane) -> None:
    programmer = Programmer(loaded.maps, 1)
    programmer.reconcile([_svc(_ep(101), _ep(102), _ep(103))])
    programmer.reconcile([_svc(_ep(101), _ep(103))])
    programmer.reconcile([_svc(_ep(101), _ep(103), _ep(109))])
    svc_id = programmer.ids[(VIP, 80, IpProto.TCP)]
    assert programmer.indexes(svc_id)[(IP("192.168.80.109"), 8080)] == 1


def test_ids_and_indexes_survive_a_reload(node: str, stub_source: Path) -> None:
    services = [_svc(_ep(101), _ep(102), _ep(103)), _svc(_ep(104), port=443)]
    first = Dataplane.load(node, 1, source=stub_source)
    try:
        programmer = Programmer(first.maps, 1)
        programmer.reconcile(services)
        programmer.reconcile([_svc(_ep(101), _ep(103)), services[1]])  # index 1 freed
        ids = programmer.ids
        indexes = {i: programmer.indexes(i) for i in ids.values()}
    finally:
        first.close()
    second = Dataplane.load(node, 1, source=stub_source)
    try:
        adopted = Programmer(second.maps, 1)
        assert adopted.ids == ids
        assert {i: adopted.indexes(i) for i in ids.values()} == indexes
        assert adopted.reconcile([_svc(_ep(101), _ep(103)), services[1]]).writes == 0
        # a new service takes the lowest free id, not one in use
        adopted.reconcile([_svc(_ep(101), _ep(103)), services[1], _svc(_ep(105), port=8443)])
        assert sorted(adopted.ids.values()) == [0, 1, 2]
    finally:
        second.close()


def test_a_removed_service_is_deleted_and_cleared(loaded: Dataplane) -> None:
    programmer = Programmer(loaded.maps, 1)
    programmer.reconcile([_svc(_ep(101)), _svc(_ep(102), port=443)])
    svc_id = programmer.ids[(VIP, 443, IpProto.TCP)]
    loaded.maps.rr_state.update(ctypes.c_uint32(svc_id), ctypes.c_uint32(77))
    report = programmer.reconcile([_svc(_ep(101))])
    assert report.removed == ((VIP, 443, IpProto.TCP),)
    assert loaded.maps.services.lookup(svc_key((VIP, 443, IpProto.TCP))) is None
    eps = loaded.maps.endpoints.lookup(ctypes.c_uint32(slot_index(svc_id, 0)))
    assert eps is not None and eps.count == 0
    rr = loaded.maps.rr_state.lookup(ctypes.c_uint32(svc_id))
    assert rr is not None and rr.value == 0
    # the freed id is the next service's
    programmer.reconcile([_svc(_ep(101)), _svc(_ep(103), port=8443)])
    assert programmer.ids[(VIP, 8443, IpProto.TCP)] == svc_id


def test_ifaddrs_follow_the_interfaces(loaded: Dataplane) -> None:
    programmer = Programmer(loaded.maps, 1)
    assert programmer.reconcile_ifaddrs({2: IP("192.168.80.252"), 3: IP("203.0.113.5")}) == 2
    assert programmer.reconcile_ifaddrs({2: IP("192.168.80.252"), 3: IP("203.0.113.5")}) == 0
    assert programmer.reconcile_ifaddrs({2: IP("192.168.80.253")}) == 2
    present = {int(k.value) for k, _ in loaded.maps.ifaddrs.items()}
    assert present == {2}


def test_status_reports_services_and_endpoints(loaded: Dataplane) -> None:
    programmer = Programmer(loaded.maps, 1)
    programmer.reconcile([_svc(_ep(101), _ep(102, active=False), name="web")])
    (status,) = programmer.status()
    assert (status.name, status.vip, status.port, status.protocol) == ("web", str(VIP), 80, "tcp")
    assert [(e.address, e.state) for e in status.endpoints] == [
        ("192.168.80.101", "active"),
        ("192.168.80.102", "draining"),
    ]
    assert status.packets == 0
