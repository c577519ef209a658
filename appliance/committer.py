"""Candidate and running configuration: validate, diff, commit (optionally confirmed), confirm,
rollback, history — the one implementation behind SIGHUP, the CLI and the API.

A commit validates the candidate (every error, with key path and line; nothing applied when
there is one), makes it the running configuration under a new generation and waits until
every service that follows the configuration has applied it (each publishes `Applied` under
`applied_key`): services apply only what changed in their part. If one cannot apply it, the
previous configuration is made running again (as a newer generation, applied the same way)
and the commit reports what failed. Commits are serialised.

A confirmed commit is undone unless `confirm` arrives within its timeout (as in router
operating systems): the configuration before it is restored. A later commit confirms it too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

import attrs
import trio

from .config import Config, ConfigError, ConfigIssue, dump_config, parse_config
from .datastore import CommitRecord, config_diff, load_history, save_history, with_record
from .keys import CONFIG_GENERATION, RELOADS, RUNNING_CONFIG, applied_key
from .state import StateKey, StateStore
from .structlog import get_logger

log = get_logger("config")

__all__ = ["CONFIG_CONTROL", "CommitResult", "Committer", "Pending"]

#: how long a commit waits for the services to apply a configuration
APPLY_TIMEOUT_S = 20.0
#: where an unconfirmed commit's deadline comes from: at most a day
MAX_CONFIRM_S = 86_400.0

#: Callback that brings the set of running services in line with a new configuration (a
#: section added or removed starts or stops its service); awaited before waiting for answers.
SectionsFn = Callable[[Config, Config], Awaitable[None]]


@attrs.frozen
class CommitResult:
    ok: bool
    generation: int
    #: False when the candidate equals the running configuration (nothing done)
    changed: bool = False
    diff: str = ""
    errors: tuple[str, ...] = ()
    commit_id: int | None = None
    #: a confirmed commit: seconds left to `confirm` it
    confirm_within_s: float | None = None


@attrs.frozen
class Pending:
    """A confirmed commit awaiting `confirm`."""

    commit_id: int
    deadline: float  # trio clock
    previous: Config


class Committer:
    """The running configuration of one node and the operations on it (see module doc)."""

    def __init__(
        self,
        store: StateStore,
        initial: Config,
        *,
        followers: Callable[[], Collection[str]],
        sections: SectionsFn | None = None,
        history_path: Path | None = None,
        base_dir: Path | None = None,
        apply_timeout_s: float = APPLY_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._followers = followers
        self._sections = sections
        self._history_path = history_path
        self._base_dir = base_dir
        self._apply_timeout_s = apply_timeout_s
        self._clock = clock
        self._lock = trio.Lock()
        self._pending: Pending | None = None
        self._pending_changed = trio.Event()
        self._history: list[CommitRecord] = []
        self._generation = store.get(CONFIG_GENERATION) or 0
        if store.get(RUNNING_CONFIG) != initial or not self._generation:
            self._publish(initial)

    # -- reading ---------------------------------------------------------------------------

    @property
    def running(self) -> Config:
        return self._store.require(RUNNING_CONFIG)

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def pending(self) -> Pending | None:
        return self._pending

    def history(self) -> list[CommitRecord]:
        """Newest first, at most `datastore.HISTORY_SIZE`."""
        return list(self._history)

    def parse(self, text: str, source: str = "<candidate>", base_dir: Path | None = None) -> Config:
        """The candidate as a configuration this node can take; `ConfigError` listing every
        problem otherwise (also what cannot change while the node runs)."""
        cfg = parse_config(text, source, base_dir or self._base_dir)
        running = self.running
        issues = [
            ConfigIssue(f"node.{name}", None, "cannot change while the node runs: restart it")
            for name in ("name", "id")
            if getattr(cfg.node, name) != getattr(running.node, name)
        ]
        if issues:
            raise ConfigError(issues, source)
        return cfg

    def diff(self, candidate: Config) -> str:
        return config_diff(self.running, candidate)

    # -- changing --------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the history, record the configuration the node started with, and undo
        confirmed commits whose timeout passes."""
        if self._history_path is not None:
            self._history = await trio.to_thread.run_sync(load_history, self._history_path)
        text = dump_config(self.running)
        if not self._history or self._history[0].config != text:
            previous = self._history[0].config if self._history else None
            before = None if previous is None else _parsed(previous)
            await self._record("boot", None, config_diff(before, self.running, "last-run"), text)
        task_status.started()
        while True:
            self._pending_changed = trio.Event()
            pending = self._pending
            if pending is None:
                await self._pending_changed.wait()
                continue
            with trio.move_on_at(pending.deadline):
                await self._pending_changed.wait()
                continue
            await self._expire(pending)

    async def commit(
        self,
        text: str,
        *,
        origin: str,
        comment: str | None = None,
        confirmed_s: float | None = None,
        source: str = "<candidate>",
        base_dir: Path | None = None,
    ) -> CommitResult:
        """Validate ``text`` and make it the running configuration (see module doc)."""
        if confirmed_s is not None and not 0 < confirmed_s <= MAX_CONFIRM_S:
            return self._refused(f"confirmed: between 0 and {MAX_CONFIRM_S:.0f} seconds")
        try:
            candidate = self.parse(text, source, base_dir)
        except ConfigError as exc:
            log.error("commit_rejected", origin=origin, errors=[str(e) for e in exc.errors])
            return self._refused(*(str(e) for e in exc.errors))
        async with self._lock:
            result = await self._commit(candidate, origin, comment, confirmed_s)
        if result.ok:  # services re-read the files the config names (a key rotated)
            self._store.publish(RELOADS, (self._store.get(RELOADS) or 0) + 1)
        return result

    async def confirm(self, *, origin: str) -> CommitResult:
        async with self._lock:
            pending = self._pending
            if pending is None:
                return self._refused("no confirmed commit is waiting for confirmation")
            await self._settle(pending, "confirmed")
            log.info("commit_confirmed", commit_id=pending.commit_id, origin=origin)
            return CommitResult(True, self._generation, commit_id=pending.commit_id)

    async def rollback(
        self, back: int = 1, *, origin: str, comment: str | None = None
    ) -> CommitResult:
        """Make running again the configuration that was running ``back`` changes ago (0 is
        the current one); failed commits do not count."""
        async with self._lock:
            configs = [r for r in self._history if r.outcome != "failed"]
            if not 0 <= back < len(configs):
                return self._refused(f"rollback {back}: the history holds {len(configs)}")
            target = configs[back]
            candidate = _parsed(target.config)
            note = comment or f"rollback {back} (to commit {target.id})"
            return await self._commit(candidate, origin, note, None)

    # -- internals -------------------------------------------------------------------------

    async def _commit(
        self, candidate: Config, origin: str, comment: str | None, confirmed_s: float | None
    ) -> CommitResult:
        previous = self.running
        diff = config_diff(previous, candidate)
        if self._pending is not None:  # a later commit confirms the one awaiting confirmation
            await self._settle(self._pending, "confirmed")
        if not diff:
            return CommitResult(True, self._generation)
        error = await self._apply(candidate, previous)
        if error is not None:
            restore_error = await self._apply(previous, candidate)
            errors = [f"applying failed: {error}", "the previous configuration was restored"]
            if restore_error is not None:
                errors.append(f"restoring it reported: {restore_error}")
            record = await self._record(
                origin, comment, diff, dump_config(candidate), "failed", error
            )
            log.error("commit_failed", commit_id=record.id, origin=origin, error=error)
            return CommitResult(
                False, self._generation, True, diff, tuple(errors), commit_id=record.id
            )
        outcome = "pending-confirm" if confirmed_s is not None else "committed"
        record = await self._record(origin, comment, diff, dump_config(candidate), outcome)
        within = None
        if confirmed_s is not None:
            self._pending = Pending(record.id, trio.current_time() + confirmed_s, previous)
            self._pending_changed.set()
            within = confirmed_s
        log.info(
            "commit_applied",
            commit_id=record.id,
            origin=origin,
            generation=self._generation,
            confirm_within_s=within,
        )
        return CommitResult(True, self._generation, True, diff, (), record.id, within)

    async def _expire(self, pending: Pending) -> None:
        async with self._lock:
            if self._pending is not pending:
                return
            await self._settle(pending, "rolled-back")
            log.warning("commit_not_confirmed", commit_id=pending.commit_id)
            await self._commit(
                pending.previous,
                "confirm-timeout",
                f"commit {pending.commit_id} was not confirmed in time",
                None,
            )

    async def _settle(self, pending: Pending, outcome: str) -> None:
        """End a confirmed commit's wait, marking its record ``outcome``."""
        self._pending = None
        self._pending_changed.set()
        self._history = [
            attrs.evolve(r, outcome=outcome) if r.id == pending.commit_id else r
            for r in self._history
        ]
        await self._save()

    async def _apply(self, cfg: Config, previous: Config) -> str | None:
        """Make ``cfg`` running and wait for every follower's answer; the error, if any."""
        generation = self._publish(cfg)
        if self._sections is not None:
            try:
                await self._sections(previous, cfg)
            except Exception as exc:  # a service that cannot start: the commit fails
                return f"{type(exc).__name__}: {exc}"
        waiting: list[str] = []
        with trio.move_on_after(self._apply_timeout_s):
            while True:
                seen = self._store.version
                waiting, errors = self._answers(generation)
                if errors:
                    return "; ".join(errors)
                if not waiting:
                    return None
                await self._store.wait_changed(seen)
        return f"no answer from {', '.join(sorted(waiting))} within {self._apply_timeout_s:g} s"

    def _answers(self, generation: int) -> tuple[list[str], list[str]]:
        """(followers yet to answer ``generation``, errors reported for it)."""
        waiting, errors = [], []
        for name in self._followers():
            applied = self._store.get(applied_key(name))
            if applied is None or applied.generation < generation:
                waiting.append(name)
            elif applied.generation == generation and applied.error is not None:
                errors.append(f"{name}: {applied.error}")
        return waiting, errors

    def _publish(self, cfg: Config) -> int:
        self._generation += 1
        self._store.publish(RUNNING_CONFIG, cfg)
        self._store.publish(CONFIG_GENERATION, self._generation)
        return self._generation

    async def _record(
        self,
        origin: str,
        comment: str | None,
        diff: str,
        config: str,
        outcome: str = "committed",
        error: str | None = None,
    ) -> CommitRecord:
        ident = (self._history[0].id + 1) if self._history else 1
        record = CommitRecord(ident, self._clock(), origin, comment, diff, config, outcome, error)
        self._history = with_record(self._history, record)
        await self._save()
        return record

    async def _save(self) -> None:
        path = self._history_path
        if path is None:
            return
        history = list(self._history)
        try:
            await trio.to_thread.run_sync(save_history, path, history)
        except OSError as exc:
            log.error("config_history_save_failed", path=str(path), error=str(exc))

    def _refused(self, *errors: str) -> CommitResult:
        return CommitResult(False, self._generation, errors=errors)


def _parsed(text: str) -> Config:
    """A configuration from the history (normalised YAML with absolute paths)."""
    return parse_config(text, "<history>")


CONFIG_CONTROL = StateKey[Committer]("config/control")
