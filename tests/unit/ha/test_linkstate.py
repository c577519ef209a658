"""Interface oper state by ioctl, on the loopback of this namespace (always up)."""

from __future__ import annotations

from appliance.ha.linkstate import UP, oper_states


def test_loopback_is_up_and_missing_interfaces_are_left_out() -> None:
    assert oper_states(["lo", "no-such-if0"]) == {"lo": UP}
