"""Loading pins the maps; a restarted daemon adopts them; another layout version is reset."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from bpf.layout import LAYOUT_VERSION, MAPS, Settings
from bpf.loader import Dataplane, flush, pin_dir_for
from bpf.maps import Maps, read_settings
from bpf.source import LB_SOURCE
from tests.dataplane.support_loader import bpffs, loaded, node, stub_source

pytestmark = pytest.mark.lab

__all__ = ["bpffs", "loaded", "node", "stub_source"]

PINNED = sorted(spec.name for spec in MAPS if spec.pinned)
KEY = ctypes.c_uint32(7)


def test_load_pins_every_map_and_writes_settings(loaded: Dataplane, node: str) -> None:
    pin_dir = pin_dir_for(node)
    assert sorted(p.name for p in pin_dir.iterdir()) == PINNED
    assert not loaded.result.adopted
    assert not loaded.result.layout_reset
    settings = read_settings(pin_dir)
    assert settings is not None
    assert (settings.version, settings.node_id) == (LAYOUT_VERSION, 1)


def test_a_restarted_daemon_adopts_the_pinned_maps(node: str, stub_source: Path) -> None:
    first = Dataplane.load(node, 2, source=stub_source)
    first.maps.rr_state.update(KEY, ctypes.c_uint32(4242))
    first.close()

    second = Dataplane.load(node, 2, source=stub_source)
    try:
        assert second.result.adopted
        assert not second.result.layout_reset
        assert second.result.previous_version == LAYOUT_VERSION
        value = second.maps.rr_state.lookup(KEY)
        assert value is not None and value.value == 4242
    finally:
        second.close()


def test_another_layout_version_is_reset_explicitly(node: str, stub_source: Path) -> None:
    first = Dataplane.load(node, 1, source=stub_source)
    first.maps.rr_state.update(KEY, ctypes.c_uint32(99))
    first.maps.settings.update(ctypes.c_uint32(0), Settings(version=LAYOUT_VERSION + 1000))
    first.close()

    second = Dataplane.load(node, 1, source=stub_source)
    try:
        assert second.result.layout_reset
        assert not second.result.adopted
        assert second.result.previous_version == LAYOUT_VERSION + 1000
        value = second.maps.rr_state.lookup(KEY)
        assert value is not None and value.value == 0  # fresh maps, nothing misread
        settings = read_settings(pin_dir_for(node))
        assert settings is not None and settings.version == LAYOUT_VERSION
    finally:
        second.close()


def test_pinned_maps_open_without_compiling(loaded: Dataplane, node: str) -> None:
    loaded.maps.rr_state.update(KEY, ctypes.c_uint32(5))
    maps = Maps.open_pinned(pin_dir_for(node))
    try:
        value = maps.rr_state.lookup(KEY)
        assert value is not None and value.value == 5
    finally:
        maps.close()


def test_flush_removes_the_pins(loaded: Dataplane, node: str) -> None:
    result = flush(node, filters=False)
    assert sorted(result.pins_removed) == PINNED
    assert not pin_dir_for(node).exists()


@pytest.mark.skipif(not LB_SOURCE.exists(), reason="bpf/lb.c not written yet")
def test_the_real_program_loads_with_pinned_maps(node: str) -> None:
    dataplane = Dataplane.load(node, 1)
    try:
        assert dataplane.program_fd > 0
        assert sorted(p.name for p in pin_dir_for(node).iterdir()) == PINNED
    finally:
        dataplane.close()
