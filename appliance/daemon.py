"""The triolb daemon: one Trio nursery holding the node's services under a supervisor.

Start-up order is explicit: boot duties, then each service with `nursery.start`. Signals:
SIGTERM/SIGINT stop gracefully, SIGHUP reloads the configuration file.
"""

from __future__ import annotations

import signal
from pathlib import Path

import attrs
import trio

from bgp.speaker import BgpSpeaker
from web.auth import TokenAuth
from web.server import WebService

from . import boot
from .committer import CONFIG_CONTROL, Committer
from .config import Config, load_config
from .controller import IntentController
from .dataplane import DataplaneService
from .ha.service import HaService, discover_sources
from .health import HealthService
from .journal import JOURNAL, close_journal, open_journal
from .keys import CONFIG_GENERATION, RUNNING_CONFIG
from .looplag import LoopLagMonitor
from .state import StateKey, StateStore
from .structlog import get_logger
from .supervisor import RestartPolicy, ServiceEscalation, ServiceSpec, ServiceState, Supervisor
from .sync.service import SyncService

log = get_logger("daemon")

__all__ = ["CONFIG_GENERATION", "LAST_RELOAD", "RUNNING_CONFIG", "Daemon", "DaemonOptions"]

LAST_RELOAD = StateKey["ReloadResult"]("config/last_reload")
BOOT_REPORT = StateKey["BootReport"]("daemon/boot")


@attrs.frozen
class ReloadResult:
    ok: bool
    generation: int
    errors: tuple[str, ...] = ()


@attrs.frozen
class BootReport:
    sysctl_changes: tuple[boot.SysctlChange, ...]
    bpffs_mounted: bool
    interfaces: tuple[str, ...]
    missing_interfaces: tuple[str, ...]


@attrs.frozen
class DaemonOptions:
    config_path: Path
    #: Act on the network namespace: boot duties (sysctls, bpffs, interface wait) and the
    #: services that change it (HA: VIP addresses, adverts, gratuitous ARP). Off only for tests
    #: that run the daemon in-process where the namespace must stay untouched.
    boot: bool = True
    interface_wait_s: float = 30.0
    #: Serve the API/dashboard on web.listen. Off for in-process tests in the root namespace.
    web: bool = True


def required_interfaces(cfg: Config) -> list[str]:
    """Interfaces the config names explicitly (HA groups); the daemon waits for them."""
    if cfg.ha is None:
        return []
    return sorted({group.interface for group in cfg.ha.groups})


#: services that follow the running configuration and answer each generation (`Applied`)
FOLLOWERS = ("intent", "dataplane", "sync", "health", "ha", "bgp")
#: how long after a commit that changed the web section its server restarts (the commit's
#: own response goes out first)
WEB_RESTART_DELAY_S = 0.5


class Daemon:
    def __init__(self, options: DaemonOptions, config: Config) -> None:
        self.options = options
        self.store = StateStore()
        self.exit_code = 0
        self._cancel = trio.CancelScope()
        self._supervisor: Supervisor | None = None
        self._nursery: trio.Nursery | None = None
        # the history is kept by a real node only (in-process tests keep it in memory)
        history = boot.STATE_DIR / config.node.name / "config_history.json"
        self.committer = Committer(
            self.store,
            config,
            followers=self._followers,
            sections=self._sections,
            history_path=history if options.boot else None,
            base_dir=options.config_path.resolve().parent,
        )
        self.store.publish(CONFIG_CONTROL, self.committer)
        self.journal = open_journal()
        self.store.publish(JOURNAL, self.journal)

    @property
    def config(self) -> Config:
        return self.store.require(RUNNING_CONFIG)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> int:
        try:
            return await self._run(task_status)
        finally:
            close_journal(self.journal)

    async def _run(self, task_status: trio.TaskStatus[None]) -> int:
        cfg = self.config
        log.info(
            "daemon_starting",
            node=cfg.node.name,
            node_id=cfg.node.id,
            config=str(self.options.config_path),
        )
        if self.options.boot:
            await self._boot(cfg)
        with self._cancel:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                supervisor = Supervisor(nursery, self.store, self._escalated)
                self._supervisor = supervisor
                await nursery.start(self._signals)
                await supervisor.start(
                    ServiceSpec("looplag", LoopLagMonitor(self.store).run, RestartPolicy())
                )
                await supervisor.start(ServiceSpec("config", self.committer.run, critical=True))
                # the pool allocation is saved only by a real node (in-process tests keep it)
                state_dir = boot.STATE_DIR if self.options.boot else None
                intent = IntentController(self.store, state_dir)
                await supervisor.start(ServiceSpec("intent", intent.run, critical=True))
                if self.options.boot:  # compiles and attaches eBPF: never in-process tests
                    dataplane = DataplaneService(self.store, cfg.node.name, cfg.node.id)
                    await supervisor.start(ServiceSpec("dataplane", dataplane.run))
                    if cfg.sync is not None:  # replicates the dataplane's connections
                        await self._start_sync(cfg)
                    # probes send traffic to the endpoints: only from the node's own namespace
                    await supervisor.start(ServiceSpec("health", HealthService(self.store).run))
                # HA owns addresses and sends ARP: never where the namespace must stay untouched
                if cfg.ha is not None and self.options.boot:
                    await supervisor.start(ServiceSpec("ha", self._run_ha))
                if cfg.bgp is not None:
                    await supervisor.start(ServiceSpec("bgp", self._run_bgp))
                if self.options.web:
                    await self._start_web(cfg)
                log.info("daemon_ready", services=supervisor.names)
                task_status.started()
        log.info("daemon_stopped", exit_code=self.exit_code)
        return self.exit_code

    def _followers(self) -> list[str]:
        """The running services the committer waits for (one in backoff applies the running
        configuration when it starts again)."""
        supervisor = self._supervisor
        if supervisor is None:
            return []
        return [
            name
            for name in FOLLOWERS
            if name in supervisor.names
            and (status := supervisor.status(name)) is not None
            and status.state is ServiceState.RUNNING
        ]

    async def _sections(self, old: Config, new: Config) -> None:
        """Start or stop the services of sections a commit added or removed (conntrack sync
        also restarts when its section changed: its peers and socket are set at start)."""
        supervisor = self._supervisor
        assert supervisor is not None
        if old.sync != new.sync and self.options.boot:
            await supervisor.remove("sync")
            if new.sync is not None:
                await self._start_sync(new)
        if (old.ha is None) != (new.ha is None) and self.options.boot:
            await supervisor.remove("ha")
            if new.ha is not None:
                await supervisor.start(ServiceSpec("ha", self._run_ha))
        if (old.bgp is None) != (new.bgp is None):
            await supervisor.remove("bgp")
            if new.bgp is not None:
                await supervisor.start(ServiceSpec("bgp", self._run_bgp))
        if old.web != new.web and self.options.web and self._nursery is not None:
            self._nursery.start_soon(self._restart_web)

    async def _start_sync(self, cfg: Config) -> None:
        assert self._supervisor is not None and cfg.sync is not None
        sync = SyncService(cfg.sync, cfg.node.id, self.store)
        await self._supervisor.start(ServiceSpec("sync", sync.run))

    async def _start_web(self, cfg: Config) -> None:
        assert self._supervisor is not None
        auth = TokenAuth.from_file(cfg.web.token_file)
        web = WebService(self.store, cfg.web.listen, auth)
        await self._supervisor.start(ServiceSpec("web", web.run))

    async def _restart_web(self) -> None:
        await trio.sleep(WEB_RESTART_DELAY_S)
        assert self._supervisor is not None
        await self._supervisor.remove("web")
        await self._start_web(self.config)

    async def _run_bgp(self, *, task_status: trio.TaskStatus[None]) -> None:
        """A fresh speaker for each (re)start: the supervisor restarts from a clean slate."""
        cfg = self.config
        assert cfg.bgp is not None
        restarting = await trio.to_thread.run_sync(boot.note_restart, cfg.node.name, "bgp")
        await BgpSpeaker(cfg.bgp, self.store, restarting=restarting).run(task_status=task_status)

    async def _run_ha(self, *, task_status: trio.TaskStatus[None]) -> None:
        """HA election; IPv4 groups source their adverts from the interface's own address,
        IPv6 groups from its link-local address. With conntrack sync, preemption waits for
        sync's bulk resync (the join gate)."""
        cfg = self.config
        ha = cfg.ha
        assert ha is not None
        sources = await trio.to_thread.run_sync(discover_sources, ha.groups)
        service = HaService(ha, self.store, sources, join_gate=cfg.sync is not None)
        await service.run(task_status=task_status)

    def stop(self, exit_code: int = 0) -> None:
        self.exit_code = exit_code
        self._cancel.cancel()

    def _escalated(self, escalation: ServiceEscalation) -> None:
        log.error("daemon_stopping_on_escalation", service=escalation.name)
        self.stop(1)

    async def _signals(self, *, task_status: trio.TaskStatus[None]) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
            task_status.started()
            async for signum in sigs:
                if signum == signal.SIGHUP:
                    await self.reload()
                else:
                    log.info("daemon_signal", signal=signal.Signals(signum).name)
                    self.stop(0)

    async def reload(self) -> ReloadResult:
        """SIGHUP: commit the config file (validated, applied as a difference); a bad file
        changes nothing."""
        path = self.options.config_path
        try:
            text = await trio.to_thread.run_sync(path.read_text)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            result = ReloadResult(False, self.committer.generation, (f"{path}: {reason}",))
            log.error("reload_rejected", config=str(path), errors=list(result.errors))
        else:
            commit = await self.committer.commit(
                text, origin="sighup", source=str(path), base_dir=path.resolve().parent
            )
            result = ReloadResult(commit.ok, commit.generation, commit.errors)
            if not commit.ok:
                log.error("reload_rejected", config=str(path), errors=list(result.errors))
            elif commit.changed:
                log.info("reload_applied", generation=commit.generation)
            else:
                log.info("reload_unchanged", generation=commit.generation)
        self.store.publish(LAST_RELOAD, result)
        return result

    async def _boot(self, cfg: Config) -> None:
        interfaces = await self._wait_interfaces(required_interfaces(cfg))
        selected = boot.selected_interfaces(interfaces, cfg.interfaces)
        settings = [*boot.GLOBAL_SYSCTLS, *boot.interface_sysctls(selected)]
        changes = await trio.to_thread.run_sync(boot.write_sysctls, settings)
        for change in changes:
            log.info("sysctl_set", name=change.name, old=change.old, new=change.new)
        mounted = await trio.to_thread.run_sync(boot.mount_bpffs)
        if mounted:
            log.info("bpffs_mounted", path=str(boot.BPFFS))
        missing = [name for name in required_interfaces(cfg) if name not in interfaces]
        self.store.publish(
            BOOT_REPORT,
            BootReport(tuple(changes), mounted, tuple(selected), tuple(missing)),
        )

    async def _wait_interfaces(self, required: list[str]) -> dict[str, str]:
        """Wait (bounded) until every required interface exists; return what exists."""
        with trio.move_on_after(self.options.interface_wait_s):
            while True:
                present = await trio.to_thread.run_sync(boot.list_interfaces)
                missing = [name for name in required if name not in present]
                if not missing:
                    return present
                log.info("waiting_for_interfaces", missing=missing)
                await trio.sleep(0.5)
        present = await trio.to_thread.run_sync(boot.list_interfaces)
        log.warning("interfaces_missing", missing=[n for n in required if n not in present])
        return present


def run_daemon(options: DaemonOptions) -> int:
    """Load the config and run the daemon until it is stopped; returns the exit code."""
    config = load_config(options.config_path)
    daemon = Daemon(options, config)
    return trio.run(daemon.run)
