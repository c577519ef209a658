"""Attaching at TC in a namespace of the test's own: add, replace atomically, detach, flush."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpf.loader import FILTER_NAME, Dataplane, attached_programs, flush, pin_dir_for
from tests.dataplane.support_loader import bpffs, loaded, node, stub_source, tc_filters, veth_ns

pytestmark = pytest.mark.lab

__all__ = ["bpffs", "loaded", "node", "stub_source", "veth_ns"]


def _program_ids(text: str) -> list[str]:
    return [line.split(" id ")[1].split()[0] for line in text.splitlines() if " id " in line]


def test_attach_adds_clsact_and_a_direct_action_filter(loaded: Dataplane, veth_ns: str) -> None:
    assert loaded.attach(["va", "missing0"], netns=veth_ns) == ["va"]
    assert attached_programs(netns=veth_ns) == {"va": ["ingress"]}
    shown = tc_filters(veth_ns, "va", "ingress")
    assert FILTER_NAME in shown and "direct-action" in shown
    assert tc_filters(veth_ns, "va", "egress").strip() == ""


def test_reattaching_replaces_the_filter(
    loaded: Dataplane, veth_ns: str, node: str, stub_source: Path
) -> None:
    loaded.attach(["va"], netns=veth_ns)
    before = _program_ids(tc_filters(veth_ns, "va", "ingress"))
    restarted = Dataplane.load(node, 1, source=stub_source)  # a restarted daemon
    try:
        restarted.attach(["va"], netns=veth_ns)
        after = _program_ids(tc_filters(veth_ns, "va", "ingress"))
    finally:
        restarted.close()
    assert len(before) == len(after) == 1  # one filter, its program replaced
    assert before != after


def test_egress_follows_the_flag_and_detach_removes_ours(loaded: Dataplane, veth_ns: str) -> None:
    loaded.attach(["va", "vb"], egress=True, netns=veth_ns)
    both = ["ingress", "egress"]
    assert attached_programs(netns=veth_ns) == {"va": both, "vb": both}
    loaded.attach(["va"], egress=False, netns=veth_ns)
    assert attached_programs(netns=veth_ns)["va"] == ["ingress"]
    loaded.detach(["va"], netns=veth_ns)
    assert attached_programs(netns=veth_ns) == {"vb": ["ingress", "egress"]}


def test_programs_stay_attached_after_close_until_flush(
    node: str, stub_source: Path, veth_ns: str
) -> None:
    dataplane = Dataplane.load(node, 1, source=stub_source)
    dataplane.attach(["va"], egress=True, netns=veth_ns)
    dataplane.close()  # the daemon stops: program and maps stay
    assert attached_programs(netns=veth_ns) == {"va": ["ingress", "egress"]}
    assert pin_dir_for(node).is_dir()
    result = flush(node, netns=veth_ns)
    assert sorted(result.detached) == ["va/egress", "va/ingress"]
    assert attached_programs(netns=veth_ns) == {}
    assert not pin_dir_for(node).exists()
