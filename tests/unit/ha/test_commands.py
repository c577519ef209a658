"""Notify hooks and command tracks run real commands, bounded in time, never blocking."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from appliance.ha.commands import CommandCheck, Notifier, run_command
from appliance.intent import HaRole


async def test_run_command_reports_status_and_kills_overruns() -> None:
    assert await run_command(["true"], 5) == 0
    assert await run_command(["false"], 5) == 1
    assert await run_command(["/nonexistent/hook"], 5) is None
    assert await run_command([sys.executable, "-c", "import time; time.sleep(30)"], 0.2) is None


async def test_notifier_runs_the_hook_per_change_in_order(tmp_path: Path) -> None:
    out = tmp_path / "changes"
    script = 'import sys; open(sys.argv[1], "a").write(" ".join(sys.argv[2:]) + chr(10))'
    hook = f"{sys.executable} -c '{script}' {out}"
    notifier = Notifier(hook, 7)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(notifier.run)
        notifier.notify(HaRole.INIT, HaRole.BACKUP)  # queued: never waits for the hook
        notifier.notify(HaRole.BACKUP, HaRole.ACTIVE)
        with trio.fail_after(20):
            while not out.exists() or len(out.read_text().splitlines()) < 2:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert out.read_text().splitlines() == ["7 init backup", "7 backup active"]


async def test_notifier_drops_beyond_its_queue() -> None:
    notifier = Notifier("true", 1, queue=2)
    for _ in range(5):
        notifier.notify(HaRole.BACKUP, HaRole.ACTIVE)
    assert notifier.dropped == 3


async def test_command_check_flips_and_calls_back(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    check = CommandCheck(f"test -e {flag}", 0.05)
    flips: list[bool] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(check.run, lambda: flips.append(check.up))
        with trio.fail_after(20):
            while check.runs == 0:
                await trio.sleep(0.01)
            assert not check.up and flips == []
            flag.touch()
            while not flips:
                await trio.sleep(0.01)
            flag.unlink()
            while len(flips) < 2:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert flips == [True, False]
