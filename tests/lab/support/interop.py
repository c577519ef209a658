"""The frame of the BGP interop tests: one lab per test module, and per test an `Interop`
holding that test's router daemon (BIRD or GoBGP) and node harnesses, all stopped afterwards.

    @pytest.fixture(scope="module")
    def lab() -> Iterator[LabHandle]:
        with shared_lab() as handle:
            yield handle

    @pytest.fixture
    def env(lab, tmp_path, request) -> Iterator[Interop]:
        with interop(lab, tmp_path, request) as env:
            yield env
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.lab.api import LabHandle, lab_up
from appliance.lab.bird import BirdConfig
from tests.lab.conftest import lab_unavailable_reason
from tests.lab.support.bird_configs import Bird, stop_bird
from tests.lab.support.gobgp import Gobgp, GobgpNeighbor, stop_gobgpd
from tests.lab.support.nodes import NodeSet


@contextlib.contextmanager
def shared_lab(scenario: str = "scenario2") -> Iterator[LabHandle]:
    """A routed lab without endpoint servers and without the default BIRD (each test starts
    the router daemon it needs); removed afterwards whatever happened."""
    reason = lab_unavailable_reason()
    if reason is not None:  # module fixtures run before conftest's autouse check
        pytest.fail(reason)
    handle = lab_up(scenario, start_endpoints=False, start_router=False)
    try:
        yield handle
    finally:
        handle.down()


class Interop:
    """One test's parts inside the shared lab."""

    def __init__(self, handle: LabHandle, workdir: Path) -> None:
        self.lab = handle
        self.workdir = workdir
        self.nodes = NodeSet(handle, workdir)
        self._bird: Bird | None = None
        self._gobgp: Gobgp | None = None

    def bird(self, config: BirdConfig) -> Bird:
        """(Re)start the router's BIRD with ``config``."""
        self._bird = Bird(self.lab, config)
        return self._bird

    def gobgp(self, asn: int, *neighbors: GobgpNeighbor) -> Gobgp:
        """(Re)start gobgpd in the router with these neighbours."""
        self._gobgp = Gobgp(self.lab, asn, neighbors)
        return self._gobgp

    def close(self, failed: bool) -> None:
        if failed:
            if self._bird is not None:
                print(f"--- BIRD log of this test ---\n{self._bird.log()[-4000:]}")
            if self._gobgp is not None:
                print(f"--- gobgpd log ---\n{self._gobgp.log_tail()}")
        self.nodes.close(dump_logs=failed)
        stop_bird(self.lab)
        stop_gobgpd(self.lab)


@contextlib.contextmanager
def interop(handle: LabHandle, workdir: Path, request: pytest.FixtureRequest) -> Iterator[Interop]:
    env = Interop(handle, workdir)
    try:
        yield env
    finally:
        report = getattr(request.node, "rep_call", None)
        env.close(failed=report is None or report.failed)
