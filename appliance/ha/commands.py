"""External commands of the HA service: notify hooks and ``command`` tracks.

Both run a shell-free argument vector (``shlex.split`` of the configured line) with a time
limit; a command that overruns it is killed. Neither ever blocks the protocol:

* `Notifier`: the group's ``notify`` command, run with three more arguments — the group id,
  the old role and the new role (``init``, ``backup``, ``active``, ``fault``) — once per role
  change, in order, by its own task. Changes queue (up to `NOTIFY_QUEUE`); beyond that the
  newest are dropped and logged.
* `CommandCheck`: a ``command`` track, run every ``interval_ms``; its exit status is the
  observation (0 is up), a command that cannot start or overruns the interval counts as down.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable

import trio

from appliance.intent import HaRole
from appliance.structlog import get_logger

__all__ = ["NOTIFY_QUEUE", "NOTIFY_TIMEOUT_S", "CommandCheck", "Notifier", "run_command"]

log = get_logger("ha")

NOTIFY_QUEUE = 32
NOTIFY_TIMEOUT_S = 30.0
OUTPUT_LIMIT = 512  # bytes of a failing command's output kept in the log


async def run_command(argv: list[str], timeout_s: float) -> int | None:
    """Run ``argv``; its exit status, or None when it could not start or was killed after
    ``timeout_s``."""
    result: subprocess.CompletedProcess[bytes] | None = None
    try:
        with trio.move_on_after(timeout_s):
            result = await trio.run_process(
                argv,
                check=False,
                stdin=subprocess.DEVNULL,
                capture_stdout=True,
                capture_stderr=True,
            )
    except OSError as exc:
        log.warning("ha_command_failed", argv=argv, error=str(exc))
        return None
    if result is None:
        log.warning("ha_command_timeout", argv=argv, timeout_s=timeout_s)
        return None
    if result.returncode != 0:
        output = (result.stderr or result.stdout)[-OUTPUT_LIMIT:]
        log.debug(
            "ha_command_status",
            argv=argv,
            status=result.returncode,
            output=output.decode(errors="replace"),
        )
    return result.returncode


class Notifier:
    """Runs ``command GROUP OLD NEW`` for each role change of one group, in order."""

    def __init__(
        self,
        command: str,
        group_id: int,
        *,
        timeout_s: float = NOTIFY_TIMEOUT_S,
        queue: int = NOTIFY_QUEUE,
    ) -> None:
        self.argv = shlex.split(command)
        self.group_id = group_id
        self.timeout_s = timeout_s
        self.dropped = 0
        self._send, self._receive = trio.open_memory_channel[tuple[HaRole, HaRole]](queue)

    def notify(self, old: HaRole, new: HaRole) -> None:
        """Queue one change; never blocks."""
        try:
            self._send.send_nowait((old, new))
        except trio.WouldBlock:
            self.dropped += 1
            log.warning("ha_notify_dropped", group=self.group_id, old=old.value, new=new.value)

    async def run(self) -> None:
        async for old, new in self._receive:
            argv = [*self.argv, str(self.group_id), old.value, new.value]
            status = await run_command(argv, self.timeout_s)
            log.info("ha_notify", group=self.group_id, old=old.value, new=new.value, status=status)


class CommandCheck:
    """One ``command`` track: runs the command every ``interval_s`` and keeps its result."""

    def __init__(self, command: str, interval_s: float) -> None:
        self.command = command
        self.argv = shlex.split(command)
        self.interval_s = interval_s
        self.status: int | None = None  # None: not run yet, could not run, or overran
        self.runs = 0

    @property
    def up(self) -> bool:
        return self.status == 0

    async def check(self) -> None:
        self.status = await run_command(self.argv, self.interval_s)
        self.runs += 1

    async def run(self, changed: Callable[[], None]) -> None:
        """Check every interval (the next run starts an interval after the previous one
        started, or at once if it took longer); call ``changed`` when the result flips."""
        deadline = trio.current_time()
        while True:
            deadline = max(deadline + self.interval_s, trio.current_time())
            await trio.sleep_until(deadline)
            before = self.up
            await self.check()
            if self.up != before:
                changed()
