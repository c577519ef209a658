"""Key files: one signing key, optionally a previous one; ids derived from the keys."""

from __future__ import annotations

import ipaddress
import itertools
from pathlib import Path

import pytest

from appliance.ha import wire
from appliance.ha.errors import HaError, HaErrorReason
from appliance.ha.keyfile import key_id, parse_auth_keys, read_auth_keys

SRC = ipaddress.IPv4Address("192.168.80.252")
ADVERT = wire.Advert(1, 100, 2, (ipaddress.IPv4Address("192.168.80.200"),))


def _signed(keys: wire.AuthKeys, counter: int) -> bytes:
    return wire.encode(ADVERT, SRC, wire.VRRP_GROUP_V4, auth=keys, counter=counter)


def test_one_key_signs_and_its_id_comes_from_the_key() -> None:
    keys = parse_auth_keys(b"  s3cret \n\n")
    assert keys.current == wire.AuthKey(key_id(b"s3cret"), b"s3cret")
    assert keys.previous is None


def test_two_keys_sign_with_the_first_and_accept_the_second() -> None:
    keys = parse_auth_keys(b"new\nold\n")
    assert keys.current.secret == b"new" and keys.previous is not None
    assert keys.previous.secret == b"old"


def test_a_key_keeps_its_id_on_either_line() -> None:
    assert parse_auth_keys(b"a\nb").current.id == parse_auth_keys(b"b\na").previous.id  # type: ignore[union-attr]


def test_rotation_steps_never_reject_a_peer_one_step_behind() -> None:
    """old -> (old, new) -> (new, old) -> new: at each step, adverts signed by a node still on
    the previous step are accepted, in both directions."""
    steps = [b"old", b"old\nnew", b"new\nold", b"new"]
    counter = 1
    for before, after in itertools.pairwise(steps):
        a, b = parse_auth_keys(before), parse_auth_keys(after)
        for signer, receiver in ((a, b), (b, a)):
            counter += 1
            advert = wire.decode(_signed(signer, counter), SRC, wire.VRRP_GROUP_V4, auth=receiver)
            assert advert == ADVERT


def test_after_rotation_the_old_key_is_refused() -> None:
    with pytest.raises(HaError) as caught:
        wire.decode(
            _signed(parse_auth_keys(b"old"), 5),
            SRC,
            wire.VRRP_GROUP_V4,
            auth=parse_auth_keys(b"new"),
        )
    assert caught.value.reason in (HaErrorReason.AUTH_UNKNOWN_KEY, HaErrorReason.AUTH_FORGED)


@pytest.mark.parametrize("text", [b"", b"\n  \n", b"a\nb\nc"])
def test_bad_key_files_are_refused(text: bytes) -> None:
    with pytest.raises(HaError) as caught:
        parse_auth_keys(text, "k")
    assert caught.value.reason is HaErrorReason.BAD_CONFIG
    assert str(caught.value).startswith("bad-config: k:")


def test_colliding_ids_are_refused() -> None:
    first = b"key-0"
    other = next(s for i in range(1, 10_000) if key_id(s := f"key-{i}".encode()) == key_id(first))
    with pytest.raises(HaError, match="both keys have id"):
        parse_auth_keys(first + b"\n" + other)


def test_read_reports_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(HaError, match="missing"):
        read_auth_keys(tmp_path / "missing")
    (tmp_path / "k").write_bytes(b"x\n")
    assert read_auth_keys(tmp_path / "k").current.secret == b"x"
