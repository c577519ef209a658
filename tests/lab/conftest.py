"""Fixtures for the network-namespace lab tests.

- ``lab_factory(scenario, **lab_up_options) -> LabHandle``: every lab it makes is torn down after
  the test, whatever happened; on failure the tails of the lab's process logs are printed.
- ``lab``: one lab, scenario given by indirect parametrisation
  (``@pytest.mark.parametrize("lab", ["scenario2"], indirect=True)``).
- A session fixture cleans stale labs before and asserts after the run that no lab namespace of
  this process (or of nobody) is left.

Without root (namespaces, veths, bridges) every lab test fails with the reason: `make test`
runs as root on this kind of machine, and a skipped test would prove nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from appliance.lab import lifecycle, netbuild
from appliance.lab.api import LabHandle, clean_stale, lab_down, lab_up
from appliance.lab.state import load_state, prefix_of_namespace

if TYPE_CHECKING:
    from tests.lab.support.interop import Interop


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (they create network namespaces, veths and bridges)"
    if shutil.which("ip") is None:
        return "lab tests need iproute2's `ip`"
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _require_lab() -> None:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.fail(reason)


def leftover_namespaces() -> list[str]:
    """Lab namespaces owned by this process, or by nobody alive (stale / orphaned)."""
    me = os.getpid()
    left = []
    for ns in netbuild.lab_namespaces():
        prefix = prefix_of_namespace(ns)
        state = load_state(prefix) if prefix else None
        if state is None or state.owner_pid == me or lifecycle.is_stale(state):
            left.append(ns)
    return left


@pytest.fixture(scope="session", autouse=True)
def _no_lab_leftovers() -> Iterator[None]:
    if lab_unavailable_reason() is not None:
        yield
        return
    clean_stale()
    yield
    left = leftover_namespaces()
    for prefix in sorted({p for p in map(prefix_of_namespace, left) if p is not None}):
        lab_down(prefix)
    assert not left, f"lab namespaces left behind by the tests: {left}"
    assert not leftover_namespaces()


def dump_logs(handle: LabHandle) -> None:
    for record in handle.processes:
        print(f"--- {handle.prefix} {record.name} ({record.log}) ---")
        print(handle.log_tail(record.name, 30))


@pytest.fixture
def lab_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., LabHandle]]:
    handles: list[LabHandle] = []

    def make(scenario: str, **options: Any) -> LabHandle:
        handle = lab_up(scenario, **options)
        handles.append(handle)
        return handle

    yield make
    report = getattr(request.node, "rep_call", None)
    for handle in handles:
        if report is None or report.failed:
            dump_logs(handle)
        handle.down()


@pytest.fixture
def lab(
    request: pytest.FixtureRequest, lab_factory: Callable[..., LabHandle]
) -> Generator[LabHandle, None, None]:
    scenario = getattr(request, "param", None)
    if scenario is None:
        pytest.fail("parametrize `lab` indirectly with a scenario name")
    yield lab_factory(scenario)


@pytest.fixture(scope="module")
def interop_lab() -> Iterator[LabHandle]:
    """One scenario-2 lab shared by a BGP interop module's tests."""
    from tests.lab.support.interop import shared_lab  # it imports this module: load it late

    with shared_lab() as handle:
        yield handle


@pytest.fixture
def env(
    interop_lab: LabHandle, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Interop]:
    """Per interop test: its router and harness nodes, all stopped afterwards."""
    from tests.lab.support.interop import interop

    with interop(interop_lab, tmp_path, request) as parts:
        yield parts
