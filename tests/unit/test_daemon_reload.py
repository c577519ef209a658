"""The daemon in-process without boot duties: start, reload (good and bad), stop."""

from __future__ import annotations

import shutil
from pathlib import Path

import trio
import trio.testing

from appliance.config import load_config
from appliance.daemon import (
    CONFIG_GENERATION,
    LAST_RELOAD,
    RUNNING_CONFIG,
    Daemon,
    DaemonOptions,
)
from appliance.keys import RELOADS
from appliance.looplag import LOOP_LAG
from appliance.supervisor import ServiceState, service_key

EXAMPLES = Path(__file__).parents[2] / "examples"


def _copy_example(tmp_path: Path) -> Path:
    # scenario 1 has no BGP: this in-process daemon runs in the root namespace and must not
    # open sessions to lab addresses from there
    shutil.copytree(EXAMPLES / "secrets", tmp_path / "secrets")
    path = tmp_path / "node1.yaml"
    shutil.copy(EXAMPLES / "scenario1-l2-node1.yaml", path)
    return path


async def test_reload_applies_valid_and_rejects_invalid(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = _copy_example(tmp_path)
    daemon = Daemon(DaemonOptions(path, boot=False, web=False), load_config(path))
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(2)
        assert daemon.store.require(service_key("looplag")).state is ServiceState.RUNNING
        assert daemon.store.get(LOOP_LAG) is not None

        unchanged = await daemon.reload()
        assert unchanged.ok and unchanged.generation == 1
        assert daemon.store.get(RELOADS) == 1  # counted: files the config names may have changed

        original = path.read_text()
        path.write_text(original.replace("name: node1", "name: node1b"))
        renamed = await daemon.reload()  # identity: a restart, not a commit
        assert not renamed.ok and renamed.errors == (
            "node.name: cannot change while the node runs: restart it",
        )
        assert daemon.config.node.name == "node1"

        path.write_text(original.replace("selection: roundrobin", "selection: leastconn", 1))
        applied = await daemon.reload()
        assert applied.ok and applied.generation == 2
        assert daemon.config.services[0].selection.value == "leastconn"

        path.write_text(path.read_text() + "bogus: 1\n")
        rejected = await daemon.reload()
        assert not rejected.ok
        assert any("bogus" in e and "unknown key" in e for e in rejected.errors)
        assert daemon.store.require(CONFIG_GENERATION) == 2
        assert daemon.store.require(RUNNING_CONFIG).services[0].selection.value == "leastconn"
        assert daemon.store.require(LAST_RELOAD) == rejected
        assert daemon.store.get(RELOADS) == 2  # a rejected reload is not one

        daemon.stop()
    assert daemon.exit_code == 0
