"""The configuration committer on a fake clock: commits applied and answered by followers,
a follower's failure restoring the previous configuration, confirmed commits undone by their
timeout, rollback, serialised commits, history (bounded, persisted, free of secrets)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from appliance.committer import Committer
from appliance.config import Config, parse_config
from appliance.datastore import HISTORY_SIZE, load_history
from appliance.keys import CONFIG_GENERATION, RUNNING_CONFIG, Applied, applied_key
from appliance.state import StateStore

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "secrets", tmp_path / "secrets")
    shutil.copy(EXAMPLES / "scenario4-ctsync-node1.yaml", tmp_path / "node1.yaml")
    return tmp_path


def _text(config_dir: Path, weight: int | None = None) -> str:
    """The example with the first endpoint's weight set (a change that validates)."""
    text = (config_dir / "node1.yaml").read_text()
    if weight is None:
        return text
    return text.replace(
        "- {address: 192.168.80.101", f"- {{weight: {weight}, address: 192.168.80.101", 1
    )


def _weight(cfg: Config) -> int:
    return cfg.services[0].endpoints[0].weight


class Follower:
    """A service following the config: answers each generation, with an error while
    ``fails(cfg)`` says so, after ``delay`` seconds."""

    def __init__(
        self,
        store: StateStore,
        name: str = "svc",
        fails: Callable[[Config], bool] = lambda cfg: False,
        delay: float = 0.1,
    ) -> None:
        self.store, self.name, self.fails, self.delay = store, name, fails, delay
        self.seen: list[int] = []

    async def run(self) -> None:
        done = 0
        async for _ in self.store.watch(CONFIG_GENERATION.name):
            generation = self.store.require(CONFIG_GENERATION)
            if generation == done:
                continue
            cfg = self.store.require(RUNNING_CONFIG)
            await trio.sleep(self.delay)
            self.seen.append(_weight(cfg))
            error = "cannot program it" if self.fails(cfg) else None
            self.store.publish(applied_key(self.name), Applied(generation, error))
            done = generation


async def _started(
    nursery: trio.Nursery,
    config_dir: Path,
    *,
    followers: tuple[Follower, ...] = (),
    history: Path | None = None,
    store: StateStore | None = None,
) -> Committer:
    store = store or StateStore()
    initial = parse_config(_text(config_dir), "node1.yaml", config_dir)
    committer = Committer(
        store,
        initial,
        followers=lambda: [f.name for f in followers],
        history_path=history,
        base_dir=config_dir,
        apply_timeout_s=5.0,
    )
    for follower in followers:
        nursery.start_soon(follower.run)
    await nursery.start(committer.run)
    return committer


async def test_a_commit_waits_for_every_follower_and_is_recorded(
    config_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        store = StateStore()
        slow = Follower(store, "slow", delay=2.0)
        fast = Follower(store, "fast")
        committer = await _started(nursery, config_dir, followers=(slow, fast), store=store)
        before = trio.current_time()
        result = await committer.commit(_text(config_dir, 7), origin="cli", comment="ep1 x7")
        assert result.ok and result.changed and result.generation == 2
        assert trio.current_time() - before >= 2.0  # it waited for the slow one
        assert _weight(committer.running) == 7
        changed = [line for line in result.diff.splitlines() if line[:1] in "+-"]
        assert changed == [
            "--- running",
            "+++ candidate",
            "-        weight: 1",
            "+        weight: 7",
        ]
        latest = committer.history()[0]
        assert (latest.origin, latest.comment, latest.outcome) == ("cli", "ep1 x7", "committed")
        same = await committer.commit(_text(config_dir, 7), origin="cli")
        assert same.ok and not same.changed and same.generation == 2
        nursery.cancel_scope.cancel()


async def test_an_invalid_candidate_changes_nothing_and_lists_every_error(
    config_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        committer = await _started(nursery, config_dir)
        running = committer.running
        bad = _text(config_dir).replace("port: 9000", "port: 99999", 1) + "bogus: 1\n"
        result = await committer.commit(bad, origin="api")
        assert not result.ok and result.generation == 1
        assert len(result.errors) == 2
        assert "services[1].port (line 44): must be 1-65535" in result.errors
        assert any("bogus" in e for e in result.errors)
        assert committer.running is running and len(committer.history()) == 1  # boot only
        nursery.cancel_scope.cancel()


async def test_a_failing_follower_restores_the_previous_configuration(
    config_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        store = StateStore()
        picky = Follower(store, "picky", fails=lambda cfg: _weight(cfg) == 13)
        good = Follower(store, "good")
        committer = await _started(nursery, config_dir, followers=(picky, good), store=store)
        result = await committer.commit(_text(config_dir, 13), origin="cli")
        assert not result.ok and result.changed
        assert result.errors[0] == "applying failed: picky: cannot program it"
        assert "restored" in result.errors[1]
        assert _weight(committer.running) == 1 and result.generation == 3  # restored as gen 3
        assert good.seen == [1, 13, 1] and picky.seen == [1, 13, 1]  # both followed it back
        assert committer.history()[0].outcome == "failed"
        nursery.cancel_scope.cancel()


async def test_a_follower_that_never_answers_fails_the_commit(
    config_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        store = StateStore()
        stuck = Follower(store, "stuck", delay=60.0)
        committer = await _started(nursery, config_dir, followers=(stuck,), store=store)
        result = await committer.commit(_text(config_dir, 3), origin="cli")
        assert not result.ok
        assert result.errors[0] == "applying failed: no answer from stuck within 5 s"
        assert _weight(committer.running) == 1
        nursery.cancel_scope.cancel()


async def test_an_unconfirmed_commit_is_undone_when_its_time_is_up(
    config_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        committer = await _started(nursery, config_dir)
        result = await committer.commit(_text(config_dir, 5), origin="cli", confirmed_s=60)
        assert result.ok and result.confirm_within_s == 60
        assert committer.history()[0].outcome == "pending-confirm"
        await trio.sleep(59)
        assert _weight(committer.running) == 5  # not yet
        await trio.sleep(2)
        assert _weight(committer.running) == 1 and committer.pending is None
        undo, undone = committer.history()[:2]
        assert (undo.origin, undone.outcome) == ("confirm-timeout", "rolled-back")
        assert "was not confirmed" in (undo.comment or "")
        nursery.cancel_scope.cancel()


async def test_a_confirmed_commit_stays(
    config_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        committer = await _started(nursery, config_dir)
        await committer.commit(_text(config_dir, 5), origin="cli", confirmed_s=30)
        await trio.sleep(10)
        confirmed = await committer.confirm(origin="cli")
        assert confirmed.ok
        await trio.sleep(60)
        assert _weight(committer.running) == 5
        assert committer.history()[0].outcome == "confirmed"
        nothing = await committer.confirm(origin="cli")
        assert not nothing.ok and "no confirmed commit" in nothing.errors[0]
        # a later commit confirms a pending one too
        await committer.commit(_text(config_dir, 6), origin="cli", confirmed_s=30)
        await committer.commit(_text(config_dir, 8), origin="cli")
        await trio.sleep(60)
        assert _weight(committer.running) == 8
        assert [r.outcome for r in committer.history()[:2]] == ["committed", "confirmed"]
        nursery.cancel_scope.cancel()


async def test_rollback_restores_an_earlier_configuration(
    config_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        committer = await _started(nursery, config_dir)
        for weight in (2, 3, 4):
            assert (await committer.commit(_text(config_dir, weight), origin="cli")).ok
        result = await committer.rollback(2, origin="cli")
        assert result.ok and _weight(committer.running) == 2
        assert committer.history()[0].origin == "cli"
        assert "rollback 2" in (committer.history()[0].comment or "")
        again = await committer.rollback(origin="cli")  # 1: the one before the rollback
        assert again.ok and _weight(committer.running) == 4
        too_far = await committer.rollback(99, origin="cli")
        assert not too_far.ok and _weight(committer.running) == 4
        nursery.cancel_scope.cancel()


async def test_concurrent_commits_are_serialised(
    config_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        store = StateStore()
        follower = Follower(store, "svc", delay=1.0)
        committer = await _started(nursery, config_dir, followers=(follower,), store=store)
        results = {}

        async def commit(weight: int) -> None:
            results[weight] = await committer.commit(_text(config_dir, weight), origin="api")

        async with trio.open_nursery() as both:
            for weight in (21, 22, 23):
                both.start_soon(commit, weight)
        assert all(r.ok for r in results.values())
        # each one applied and answered in turn: never two generations in flight
        assert sorted(r.generation for r in results.values()) == [2, 3, 4]
        assert follower.seen[0] == 1 and sorted(follower.seen[1:]) == [21, 22, 23]
        assert len(committer.history()) == 4
        nursery.cancel_scope.cancel()


async def test_history_is_bounded_persisted_and_free_of_secrets(
    config_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = config_dir / "state" / "config_history.json"
    secrets = [p.read_text().strip() for p in (config_dir / "secrets").glob("*.*")]
    assert secrets
    async with trio.open_nursery() as nursery:
        committer = await _started(nursery, config_dir, history=path)
        for weight in range(2, HISTORY_SIZE + 5):
            await committer.commit(_text(config_dir, weight), origin="cli")
        assert len(committer.history()) == HISTORY_SIZE
        nursery.cancel_scope.cancel()
    saved = load_history(path)
    assert [r.id for r in saved] == [r.id for r in committer.history()]
    text = path.read_text()
    for secret in secrets:
        for line in secret.splitlines():
            assert line not in text
    # a restart with the same configuration adds nothing; another one is recorded as "boot"
    async with trio.open_nursery() as nursery:
        again = await _started(nursery, config_dir, history=path)
        assert again.history()[0].id == saved[0].id + 1  # started from the example (weight 1)
        assert again.history()[0].origin == "boot"
        nursery.cancel_scope.cancel()
