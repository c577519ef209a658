"""One HA group as a sans-IO VRRPv3 instance (RFC 5798 §6.4 with the RFC 9568 corrections).

The shell feeds decoded advertisements (`receive_advert`) and the time, sleeps until
`get_timer()` to call `handle_timer`, and acts on the events in order: `SendAdvert` → encode
and send to the multicast group or the unicast peers; `StateChanged` → publish the role and
(on MASTER) take the VIPs and announce them. Times are seconds on the shell's clock.

Timers (RFC 9568 §6.1): Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256 and
Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time, with Master_Adver_Interval learnt
from the master's advertisements while BACKUP. The priority used is the effective one:
clamp(configured + tracking delta, 1, 254). triolb is never the address owner (no 255).

Beyond the RFC:

* a MASTER hearing a lower priority (or an equal priority from a lower address) answers at
  once with its own advertisement, so a split brain heals within one interval;
* ``preempt_delay``: a BACKUP preempts a lower-priority master only once it has seen that
  master continuously for the delay (it keeps accepting its advertisements until then);
* the join gate: while closed the instance never preempts (a priority-0 resignation or a silent
  master still make it MASTER); it opens by `set_join_gate` or ``join_gate_timeout`` after it
  closed;
* a FAULT instance (tracking or sync group) sends nothing; a MASTER going to FAULT or stopping
  resigns with priority 0 first;
* `VrrpInstance.reconfigure` changes the election parameters of a running instance (a config
  reload) without a state change of its own: a role only moves when the new priorities say so.
"""

from __future__ import annotations

import enum
from collections import deque

import attrs

from appliance.config.model import HaGroup
from appliance.config.values import IPAddress
from appliance.intent import HaRole

from .errors import HaError, HaErrorReason
from .wire import MAX_INTERVAL_CS, Advert

__all__ = [
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "Event",
    "InstanceConfig",
    "Reason",
    "SendAdvert",
    "State",
    "StateChanged",
    "VrrpInstance",
    "effective_priority",
    "master_down_interval",
    "skew_time",
]

MIN_PRIORITY = 1
MAX_PRIORITY = 254
RESIGN_PRIORITY = 0


class State(enum.Enum):
    INIT = "init"
    BACKUP = "backup"
    MASTER = "master"
    FAULT = "fault"

    @property
    def role(self) -> HaRole:
        return _ROLES[self]


_ROLES = {
    State.INIT: HaRole.INIT,
    State.BACKUP: HaRole.BACKUP,
    State.MASTER: HaRole.ACTIVE,
    State.FAULT: HaRole.FAULT,
}


class Reason(enum.StrEnum):
    STARTED = "started"
    STOPPED = "stopped"
    MASTER_DOWN = "master-down"
    HIGHER_PRIORITY = "higher-priority"
    FAULT = "fault"
    FAULT_CLEARED = "fault-cleared"
    SYNC_GROUP = "sync-group"
    HANDOFF = "handoff"


@attrs.frozen
class SendAdvert:
    """Send an advertisement with this priority and interval (centiseconds)."""

    priority: int
    interval_cs: int


@attrs.frozen
class StateChanged:
    old: State
    new: State
    reason: Reason


Event = SendAdvert | StateChanged


@attrs.frozen
class InstanceConfig:
    """What one instance needs; `from_group` derives it from the HA group's configuration."""

    vrid: int
    primary_address: IPAddress  # our source address: breaks priority ties
    priority: int = 100
    advert_interval_cs: int = 100
    preempt: bool = True
    preempt_delay_s: float = 0.0
    join_gate_timeout_s: float = 60.0

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.vrid <= 255:
            raise HaError(HaErrorReason.BAD_CONFIG, f"VRID {self.vrid} not in 1..255")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise HaError(HaErrorReason.BAD_CONFIG, f"priority {self.priority} not in 1..254")
        if not 1 <= self.advert_interval_cs <= MAX_INTERVAL_CS:
            raise HaError(HaErrorReason.BAD_CONFIG, f"interval {self.advert_interval_cs} cs")
        if self.preempt_delay_s < 0 or self.join_gate_timeout_s < 0:
            raise HaError(HaErrorReason.BAD_CONFIG, "negative delay")

    @classmethod
    def from_group(
        cls, group: HaGroup, primary_address: IPAddress, *, join_gate_timeout_s: float = 60.0
    ) -> InstanceConfig:
        return cls(
            vrid=group.id,
            primary_address=primary_address,
            priority=group.priority,
            advert_interval_cs=max(1, round(group.advert_interval_ms / 10)),
            preempt=group.preempt,
            preempt_delay_s=group.preempt_delay_ms / 1000,
            join_gate_timeout_s=join_gate_timeout_s,
        )


def effective_priority(configured: int, delta: int) -> int:
    return min(MAX_PRIORITY, max(MIN_PRIORITY, configured + delta))


def skew_time(priority: int, master_adver_interval_cs: int) -> float:
    """RFC 9568 Skew_Time in seconds."""
    return (256 - priority) * master_adver_interval_cs / 25600


def master_down_interval(priority: int, master_adver_interval_cs: int) -> float:
    """RFC 9568 Master_Down_Interval in seconds."""
    return 3 * master_adver_interval_cs / 100 + skew_time(priority, master_adver_interval_cs)


class VrrpInstance:
    """The VRRPv3 state machine of one group; see the module docstring."""

    def __init__(self, config: InstanceConfig) -> None:
        self.config = config
        self._state = State.INIT
        #: the longest wait (s) between two adverts sent as MASTER (one mastership at a time):
        #: a backup declares the master down after its Master_Down_Interval without one, so
        #: this is what a slow event loop would be measured against
        self.advert_gap_max = 0.0
        self._advertised_at: float | None = None
        self._events: deque[Event] = deque()
        self._delta = 0
        self._local_fault = False
        self._sync_fault = False
        self._master_adver_interval_cs = config.advert_interval_cs
        self._adver_deadline: float | None = None
        self._master_down_deadline: float | None = None
        self._down_from: float | None = None  # when the Master_Down_Timer was last armed
        self._gate_open = True
        self._gate_deadline: float | None = None
        self._lower_master_since: float | None = None
        self.master_address: IPAddress | None = None
        self.master_priority: int | None = None

    # --- observable state ---------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def priority(self) -> int:
        return effective_priority(self.config.priority, self._delta)

    @property
    def master_adver_interval_cs(self) -> int:
        return self._master_adver_interval_cs

    @property
    def skew_time(self) -> float:
        return skew_time(self.priority, self._master_adver_interval_cs)

    @property
    def master_down_interval(self) -> float:
        return master_down_interval(self.priority, self._master_adver_interval_cs)

    @property
    def faulted(self) -> bool:
        return self._local_fault or self._sync_fault

    @property
    def local_fault(self) -> bool:
        return self._local_fault

    @property
    def faulted_by_sync(self) -> bool:
        return self._sync_fault

    @property
    def join_gate_open(self) -> bool:
        return self._gate_open

    @property
    def vrid_address(self) -> tuple[int, IPAddress]:
        """What identifies the instance: its VRID and source address."""
        return (self.config.vrid, self.config.primary_address)

    # --- outputs ------------------------------------------------------------------------------

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[Event]:
        out = list(self._events)
        self._events.clear()
        return out

    def get_timer(self) -> float | None:
        deadlines = [
            d
            for d in (self._adver_deadline, self._master_down_deadline, self._gate_deadline)
            if d is not None
        ]
        return min(deadlines) if deadlines else None

    # --- inputs -------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        if self._state is not State.INIT:
            return
        if self.faulted:
            self._set_state(State.FAULT, Reason.FAULT)
        else:
            self._become_backup(now, Reason.STARTED)

    def stop(self, now: float) -> None:
        if self._state is State.MASTER:
            self._resign()
        self._adver_deadline = self._master_down_deadline = None
        self._lower_master_since = None
        if self._state is not State.INIT:
            self._set_state(State.INIT, Reason.STOPPED)

    def handle_timer(self, now: float) -> None:
        if self._gate_deadline is not None and now >= self._gate_deadline:
            self._gate_open = True
            self._gate_deadline = None
        if self._state is State.MASTER:
            if self._adver_deadline is not None and now >= self._adver_deadline:
                # the next one on the interval's grid, so a late wake-up does not stretch
                # every interval (unless it is a whole interval late)
                due = self._adver_deadline + self.config.advert_interval_cs / 100
                self._advertise(now)
                if due > now:
                    self._adver_deadline = due
        elif (
            self._state is State.BACKUP
            and self._master_down_deadline is not None
            and now >= self._master_down_deadline
        ):
            self._become_master(now)

    def receive_advert(self, advert: Advert, src: IPAddress, now: float) -> None:
        """A valid advertisement (already decoded and checked by the shell) from ``src``."""
        if advert.vrid != self.config.vrid or src == self.config.primary_address:
            return
        if self._state is State.BACKUP:
            self._backup_receive(advert, src, now)
        elif self._state is State.MASTER:
            self._master_receive(advert, src, now)

    def reconfigure(self, config: InstanceConfig, now: float) -> None:
        """Apply a changed configuration of the same group in place, keeping the state.

        Only the election parameters may change (priority, advertisement interval, preempt,
        preempt delay, join gate timeout); a VRID or source address change is another
        instance (`HaError`). No state change happens here: a MASTER whose priority or
        interval changed advertises at once (from then on on the new interval), so that the
        backups learn them and a now higher-priority backup preempts (it discards the lower
        adverts and its Master_Down timer runs out); a BACKUP's running Master_Down timer
        takes the new priority's Skew_Time, and from the master's next advertisement on the new
        priority decides (it preempts a now lower master if allowed); its own interval applies
        once it becomes MASTER."""
        if (config.vrid, config.primary_address) != self.vrid_address:
            raise HaError(
                HaErrorReason.BAD_CONFIG,
                f"VRID {self.config.vrid}: the VRID and source address cannot change in place",
            )
        before, old = self.priority, self.config
        self.config = config
        if not config.preempt:
            self._lower_master_since = None
        if self._state is State.BACKUP:
            if self._down_from is not None and self._master_down_deadline is not None:
                # the running Master_Down_Timer as if armed with the new priority's skew
                self._master_down_deadline = self._down_from + self.master_down_interval
            return
        if self._state is not State.MASTER:
            return
        self.master_priority = self.priority
        if self.priority != before or config.advert_interval_cs != old.advert_interval_cs:
            self._advertise(now)

    def set_priority_adjustment(self, delta: int, now: float) -> None:
        """Tracking: ``delta`` is the sum of the weights of the tracked objects that are down."""
        before = self.priority
        self._delta = delta
        if self.priority != before and self._state is State.MASTER:
            self._advertise(now)  # tell the backups at once so they can preempt

    def set_fault(self, fault: bool, now: float) -> None:
        """A fault of this group's own tracked objects."""
        self._local_fault = fault
        self._apply_fault(now)

    def set_sync_fault(self, fault: bool, now: float) -> None:
        """A fault imposed by the sync group (another member is in FAULT)."""
        self._sync_fault = fault
        self._apply_fault(now)

    def step_down(self, now: float, reason: Reason = Reason.SYNC_GROUP) -> None:
        """Leave MASTER for BACKUP without resigning (the sync group follows a member)."""
        if self._state is State.MASTER:
            self._become_backup(now, reason)

    def hand_off(self, now: float) -> None:
        """An operator's graceful handoff: a MASTER resigns (priority 0, so a backup takes
        over after its Skew_Time, RFC 5798 §6.4.3) and waits as a BACKUP; with the priority
        the shell lowered beforehand it does not preempt back."""
        if self._state is State.MASTER:
            self._resign()
            self._become_backup(now, Reason.HANDOFF)

    def set_join_gate(self, open: bool, now: float) -> None:
        """Close (until opened or ``join_gate_timeout``) or open the join gate."""
        self._gate_open = open
        self._gate_deadline = None if open else now + self.config.join_gate_timeout_s

    # --- internals ----------------------------------------------------------------------------

    def _set_state(self, new: State, reason: Reason) -> None:
        old, self._state = self._state, new
        if new is not State.MASTER:
            self._advertised_at = None  # the next mastership measures from its first advert
        self._events.append(StateChanged(old, new, reason))

    def _advertise(self, now: float) -> None:
        if self._advertised_at is not None:
            self.advert_gap_max = max(self.advert_gap_max, now - self._advertised_at)
        self._advertised_at = now
        self._events.append(SendAdvert(self.priority, self.config.advert_interval_cs))
        self._adver_deadline = now + self.config.advert_interval_cs / 100

    def _resign(self) -> None:
        self._events.append(SendAdvert(RESIGN_PRIORITY, self.config.advert_interval_cs))

    def _arm_master_down(self, now: float) -> None:
        """Master_Down_Timer := Master_Down_Interval from ``now`` (an accepted advert)."""
        self._down_from = now
        self._master_down_deadline = now + self.master_down_interval

    def _become_backup(self, now: float, reason: Reason) -> None:
        self._adver_deadline = None
        self._master_adver_interval_cs = self.config.advert_interval_cs
        self._arm_master_down(now)
        self._lower_master_since = None
        self._set_state(State.BACKUP, reason)

    def _become_master(self, now: float) -> None:
        self._master_down_deadline = None
        self._lower_master_since = None
        self.master_address = self.config.primary_address
        self.master_priority = self.priority
        # the state change first: the shell takes and announces the VIPs before it sends the
        # advert (the clients' gap ends with the announcement; the backups can wait 0.2 ms)
        self._set_state(State.MASTER, Reason.MASTER_DOWN)
        self._advertise(now)

    def _apply_fault(self, now: float) -> None:
        if self.faulted:
            if self._state in (State.BACKUP, State.MASTER):
                if self._state is State.MASTER:
                    self._resign()
                self._adver_deadline = self._master_down_deadline = None
                self._set_state(State.FAULT, Reason.FAULT)
        elif self._state is State.FAULT:
            self._become_backup(now, Reason.FAULT_CLEARED)

    def _may_preempt(self, now: float) -> bool:
        if not self.config.preempt or not self._gate_open:
            return False
        if self._lower_master_since is None:
            self._lower_master_since = now
        return now - self._lower_master_since >= self.config.preempt_delay_s

    def _backup_receive(self, advert: Advert, src: IPAddress, now: float) -> None:
        if advert.priority == RESIGN_PRIORITY:
            self._master_down_deadline = now + self.skew_time
            self._down_from = None  # not a Master_Down_Interval: kept on a priority change
            return
        if advert.priority >= self.priority:
            self._lower_master_since = None
        elif self._may_preempt(now):
            return  # discard: Master_Down_Timer runs out and we take over
        self._master_adver_interval_cs = advert.interval_cs
        self._arm_master_down(now)
        self.master_address = src
        self.master_priority = advert.priority

    def _master_receive(self, advert: Advert, src: IPAddress, now: float) -> None:
        if advert.priority == RESIGN_PRIORITY:
            self._advertise(now)
            return
        ours = self.priority
        if advert.priority > ours or (
            advert.priority == ours
            and _address_key(src) > _address_key(self.config.primary_address)
        ):
            self._adver_deadline = None
            self._master_adver_interval_cs = advert.interval_cs
            self._arm_master_down(now)
            self._lower_master_since = None
            self.master_address = src
            self.master_priority = advert.priority
            self._set_state(State.BACKUP, Reason.HIGHER_PRIORITY)
        else:
            self._advertise(now)  # split brain: the other master hears us and steps down


def _address_key(address: IPAddress) -> tuple[int, int]:
    return (address.version, int(address))
