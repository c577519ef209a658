"""VRRPv3 codec: known answers, round trips, fuzzing and the authentication trailer."""

from __future__ import annotations

import contextlib
import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.values import IPAddress
from appliance.ha.errors import HaError, HaErrorReason
from appliance.ha.wire import (
    AUTH_TRAILER_LENGTH,
    VRRP_GROUP_V4,
    VRRP_GROUP_V6,
    Advert,
    AuthKey,
    AuthKeys,
    ReplayGuard,
    check_ttl,
    checksum,
    decode,
    encode,
)

SRC4 = ipaddress.IPv4Address("192.0.2.1")
SRC6 = ipaddress.IPv6Address("fe80::1")
VIP4 = ipaddress.IPv4Address("192.0.2.100")
ADVERT4 = Advert(vrid=1, priority=100, interval_cs=100, addresses=(VIP4,))

KEY1 = AuthKey(1, b"k" * 32)
KEY2 = AuthKey(2, b"q" * 32)


def test_known_answer_ipv4() -> None:
    # RFC 5798 §5.1 layout, by hand:
    #   3|1  VRID 1  prio 100  count 1 | rsvd 0 + interval 100 cs | checksum | 192.0.2.100
    # Pseudo-header: 192.0.2.1, 224.0.0.18, 0, 112, length 12.
    # 16-bit words: C000 0201 E000 0012 0070 000C | 3101 6401 0064 0000 C000 0264
    # sum = 0x2FA59 → folded 0xFA5B → complement 0x05A4.
    expected = bytes.fromhex("31 01 64 01 00 64 05 a4 c0 00 02 64")
    assert encode(ADVERT4, SRC4, VRRP_GROUP_V4) == expected
    assert decode(expected, SRC4, VRRP_GROUP_V4) == ADVERT4
    assert checksum(expected, SRC4, VRRP_GROUP_V4) == 0


def test_known_answer_ipv6() -> None:
    # Pseudo-header (RFC 8200 §8.1): fe80::1, ff02::12, 32-bit length 24, 3 zeros, 112.
    # Words: FE80 0 0 0 0 0 0 0001 | FF02 0 0 0 0 0 0 0012 | 0000 0018 | 0000 0070
    #      | 3105 6401 0064 0000 | 2001 0DB8 0 0 0 0 0 0001
    # sum = 0x2C141 → folded 0xC143 → complement 0x3EBC.
    advert = Advert(5, 100, 100, (ipaddress.IPv6Address("2001:db8::1"),))
    expected = bytes.fromhex("31 05 64 01 00 64 3e bc 2001 0db8 0000 0000 0000 0000 0000 0001")
    assert encode(advert, SRC6, VRRP_GROUP_V6) == expected
    assert decode(expected, SRC6, VRRP_GROUP_V6) == advert


def test_checksum_covers_pseudo_header() -> None:
    data = encode(ADVERT4, SRC4, VRRP_GROUP_V4)
    other = ipaddress.IPv4Address("192.0.2.2")
    with pytest.raises(HaError) as e:
        decode(data, other, VRRP_GROUP_V4)
    assert e.value.reason is HaErrorReason.BAD_CHECKSUM


def test_ipv6_round_trip_and_layout() -> None:
    advert = Advert(7, 254, 4095, (ipaddress.IPv6Address("2001:db8::1"), SRC6))
    data = encode(advert, SRC6, VRRP_GROUP_V6)
    assert len(data) == 8 + 2 * 16
    assert data[:6] == bytes([0x31, 7, 254, 2, 0x0F, 0xFF])
    assert decode(data, SRC6, VRRP_GROUP_V6) == advert


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b[:7], HaErrorReason.TRUNCATED),
        (lambda b: b[:10], HaErrorReason.TRUNCATED),
        (lambda b: bytes([0x21]) + b[1:], HaErrorReason.BAD_VERSION),
        (lambda b: bytes([0x32]) + b[1:], HaErrorReason.BAD_TYPE),
        (lambda b: b[:1] + b"\x00" + b[2:], HaErrorReason.BAD_VRID),
        (lambda b: b[:3] + b"\x00" + b[4:], HaErrorReason.BAD_ADDRESS_COUNT),
        (lambda b: b[:4] + b"\x00\x00" + b[6:], HaErrorReason.BAD_INTERVAL),
        (lambda b: b + b"\x00", HaErrorReason.BAD_LENGTH),
        (lambda b: b[:6] + b"\x00\x00" + b[8:], HaErrorReason.BAD_CHECKSUM),
    ],
)
def test_malformed(mutate: object, reason: HaErrorReason) -> None:
    data = encode(ADVERT4, SRC4, VRRP_GROUP_V4)
    assert callable(mutate)
    with pytest.raises(HaError) as e:
        decode(mutate(data), SRC4, VRRP_GROUP_V4)
    assert e.value.reason is reason


def test_mixed_families_rejected() -> None:
    with pytest.raises(HaError) as e:
        decode(encode(ADVERT4, SRC4, VRRP_GROUP_V4), SRC4, VRRP_GROUP_V6)
    assert e.value.reason is HaErrorReason.BAD_ADDRESS_FAMILY
    with pytest.raises(HaError):
        encode(ADVERT4, SRC6, VRRP_GROUP_V6)


def test_ttl() -> None:
    check_ttl(255)
    with pytest.raises(HaError) as e:
        check_ttl(254)
    assert e.value.reason is HaErrorReason.BAD_TTL


# --- property tests ---------------------------------------------------------------------------

v4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
adverts4 = st.builds(
    Advert,
    vrid=st.integers(1, 255),
    priority=st.integers(0, 255),
    interval_cs=st.integers(1, 4095),
    addresses=st.lists(v4, min_size=1, max_size=20).map(tuple),
)


@given(adverts4, v4)
def test_round_trip(advert: Advert, src: IPAddress) -> None:
    assert decode(encode(advert, src, VRRP_GROUP_V4), src, VRRP_GROUP_V4) == advert


@given(adverts4, st.integers(0, 2**64 - 1))
def test_round_trip_auth(advert: Advert, counter: int) -> None:
    keys = AuthKeys(KEY1)
    data = encode(advert, SRC4, VRRP_GROUP_V4, auth=keys, counter=counter)
    assert decode(data, SRC4, VRRP_GROUP_V4, auth=keys, replay=ReplayGuard()) == advert


@settings(max_examples=300)
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_raise_only_ha_error(data: bytes, with_auth: bool) -> None:
    auth = AuthKeys(KEY1) if with_auth else None
    with contextlib.suppress(HaError):
        decode(data, SRC4, VRRP_GROUP_V4, auth=auth, replay=ReplayGuard())
    with contextlib.suppress(HaError):
        decode(data, SRC6, VRRP_GROUP_V6, auth=auth)


@settings(max_examples=300)
@given(adverts4, st.data(), st.booleans())
def test_mutated_bytes_raise_only_ha_error(
    advert: Advert, data: st.DataObject, with_auth: bool
) -> None:
    auth = AuthKeys(KEY1) if with_auth else None
    wire = bytearray(encode(advert, SRC4, VRRP_GROUP_V4, auth=auth, counter=5))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "extend"]))
        if op == "flip" and wire:
            i = data.draw(st.integers(0, len(wire) - 1))
            wire[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del wire[data.draw(st.integers(0, len(wire))) :]
        else:
            wire += data.draw(st.binary(min_size=1, max_size=8))
    with contextlib.suppress(HaError):
        decode(bytes(wire), SRC4, VRRP_GROUP_V4, auth=auth, replay=ReplayGuard())


# --- authentication ---------------------------------------------------------------------------


def _signed(counter: int, key: AuthKey = KEY1) -> bytes:
    return encode(ADVERT4, SRC4, VRRP_GROUP_V4, auth=AuthKeys(key), counter=counter)


def _reason(data: bytes, keys: AuthKeys, guard: ReplayGuard | None = None) -> HaErrorReason:
    with pytest.raises(HaError) as e:
        decode(data, SRC4, VRRP_GROUP_V4, auth=keys, replay=guard)
    return e.value.reason


def test_auth_trailer_layout() -> None:
    data = _signed(0x0102030405060708)
    plain = encode(ADVERT4, SRC4, VRRP_GROUP_V4)
    assert data[: len(plain)] == plain  # the VRRP message is unchanged
    trailer = data[len(plain) :]
    assert len(trailer) == AUTH_TRAILER_LENGTH
    assert trailer[0] == KEY1.id
    assert struct.unpack("!Q", trailer[1:9])[0] == 0x0102030405060708


def test_forged_rejected() -> None:
    data = bytearray(_signed(1))
    data[-1] ^= 1
    assert _reason(bytes(data), AuthKeys(KEY1)) is HaErrorReason.AUTH_FORGED
    # same key id, another secret
    assert _reason(_signed(1, AuthKey(1, b"x")), AuthKeys(KEY1)) is HaErrorReason.AUTH_FORGED
    # a counter rewritten by an attacker breaks the MAC
    data = bytearray(_signed(1))
    data[len(data) - 33] ^= 0xFF
    assert _reason(bytes(data), AuthKeys(KEY1)) is HaErrorReason.AUTH_FORGED


def test_payload_tamper_with_fixed_checksum_is_forged() -> None:
    advert = Advert(1, 254, 100, (VIP4,))
    forged = encode(advert, SRC4, VRRP_GROUP_V4) + _signed(1)[12:]
    assert _reason(forged, AuthKeys(KEY1)) is HaErrorReason.AUTH_FORGED


def test_replayed_rejected() -> None:
    guard = ReplayGuard()
    keys = AuthKeys(KEY1)
    decode(_signed(10), SRC4, VRRP_GROUP_V4, auth=keys, replay=guard)
    assert _reason(_signed(10), keys, guard) is HaErrorReason.AUTH_REPLAYED
    assert _reason(_signed(9), keys, guard) is HaErrorReason.AUTH_REPLAYED
    decode(_signed(11), SRC4, VRRP_GROUP_V4, auth=keys, replay=guard)
    # counters are per source
    other = ipaddress.IPv4Address("192.0.2.2")
    data = encode(ADVERT4, other, VRRP_GROUP_V4, auth=keys, counter=1)
    decode(data, other, VRRP_GROUP_V4, auth=keys, replay=guard)


def test_forged_does_not_advance_replay_counter() -> None:
    guard = ReplayGuard()
    keys = AuthKeys(KEY1)
    bad = bytearray(_signed(100))
    bad[-1] ^= 1
    assert _reason(bytes(bad), keys, guard) is HaErrorReason.AUTH_FORGED
    decode(_signed(1), SRC4, VRRP_GROUP_V4, auth=keys, replay=guard)


def test_truncated_and_missing_trailer() -> None:
    keys = AuthKeys(KEY1)
    data = _signed(1)
    assert _reason(data[:-1], keys) is HaErrorReason.AUTH_TRUNCATED
    assert _reason(data[:13], keys) is HaErrorReason.AUTH_TRUNCATED
    assert _reason(data[:12], keys) is HaErrorReason.AUTH_MISSING
    assert _reason(data + b"\x00", keys) is HaErrorReason.BAD_LENGTH


def test_unauthenticated_receiver_rejects_trailer() -> None:
    with pytest.raises(HaError) as e:
        decode(_signed(1), SRC4, VRRP_GROUP_V4)
    assert e.value.reason is HaErrorReason.BAD_LENGTH


def test_rotation_accepts_both_keys() -> None:
    rotating = AuthKeys(current=KEY2, previous=KEY1)
    guard = ReplayGuard()
    assert decode(_signed(1, KEY1), SRC4, VRRP_GROUP_V4, auth=rotating, replay=guard) == ADVERT4
    assert decode(_signed(2, KEY2), SRC4, VRRP_GROUP_V4, auth=rotating, replay=guard) == ADVERT4
    # after the rotation the old key is gone
    assert _reason(_signed(3, KEY1), AuthKeys(KEY2)) is HaErrorReason.AUTH_UNKNOWN_KEY
    # a rotating sender signs with its current key
    data = encode(ADVERT4, SRC4, VRRP_GROUP_V4, auth=rotating, counter=4)
    assert decode(data, SRC4, VRRP_GROUP_V4, auth=AuthKeys(KEY2)) == ADVERT4
