"""RFC 7606 outcomes for malformed UPDATEs: treat-as-withdraw, attribute discard, session reset."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest

from bgp.codec import Update, decode
from bgp.errors import BgpError, ErrorCode, Handling, UpdateSubcode
from bgp.types import Negotiated

from .wire import (
    NEW_EBGP,
    NEW_IBGP,
    NLRI_VIP,
    OLD_EBGP,
    OLD_IBGP,
    OPTIONAL,
    OPTIONAL_TRANSITIVE,
    WELL_KNOWN,
    as_path,
    attr,
    mandatory,
    next_hop,
    origin,
    update,
)

TAW = Handling.TREAT_AS_WITHDRAW
DISCARD = Handling.ATTRIBUTE_DISCARD
VIP = IPv4Network("198.51.100.0/24")
MP_V6 = (
    bytes.fromhex("0002 01 10")
    + IPv6Address("2001:db8::1").packed
    + b"\x00"
    + bytes([32, 0x20, 0x01, 0x0D, 0xB8])
)


def decoded(raw: bytes, negotiated: Negotiated = OLD_EBGP) -> Update:
    message = decode(raw, negotiated)
    assert isinstance(message, Update)
    return message


def outcome(raw: bytes, negotiated: Negotiated = OLD_EBGP) -> tuple[Update, BgpError]:
    message = decoded(raw, negotiated)
    assert len(message.errors) == 1, message.errors
    error = message.errors[0]
    assert error.code is ErrorCode.UPDATE_MESSAGE_ERROR
    return message, error


def reset(raw: bytes, negotiated: Negotiated = OLD_EBGP) -> BgpError:
    with pytest.raises(BgpError) as info:
        decode(raw, negotiated)
    assert info.value.handling is Handling.SESSION_RESET
    assert info.value.code is ErrorCode.UPDATE_MESSAGE_ERROR
    return info.value


def assert_withdrawn(message: Update, error: BgpError, subcode: UpdateSubcode) -> None:
    assert error.handling is TAW
    assert error.subcode == subcode
    assert message.treat_as_withdraw
    assert message.announced_all() == []
    assert VIP in message.withdrawn_all()


def test_clean_update_has_no_errors() -> None:
    message = decoded(update(attributes=mandatory(), nlri=NLRI_VIP))
    assert message.errors == () and not message.treat_as_withdraw
    assert message.announced_all() == [VIP]


# --- §7.1 ORIGIN ------------------------------------------------------------------------------


def test_origin_bad_length_is_treat_as_withdraw() -> None:
    raw = update(
        attributes=attr(WELL_KNOWN, 1, b"\x00\x00") + as_path(65101) + next_hop(), nlri=NLRI_VIP
    )
    message, error = outcome(raw)
    assert_withdrawn(message, error, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR)
    assert error.data == attr(WELL_KNOWN, 1, b"\x00\x00")  # the whole attribute


def test_origin_bad_value_is_treat_as_withdraw() -> None:
    raw = update(attributes=origin(3) + as_path(65101) + next_hop(), nlri=NLRI_VIP)
    assert_withdrawn(*outcome(raw), UpdateSubcode.INVALID_ORIGIN_ATTRIBUTE)


# --- §7.2 AS_PATH -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "05 01 fe4d",  # unknown segment type
        "02 00",  # empty segment
        "02 02 fe4d",  # segment overruns
        "02 01 fe4d 02",  # a lone octet after the last segment
        "02 01 0000",  # AS 0 (RFC 7607)
    ],
)
def test_malformed_as_path_is_treat_as_withdraw(value: str) -> None:
    raw = update(
        attributes=origin() + attr(WELL_KNOWN, 2, bytes.fromhex(value)) + next_hop(), nlri=NLRI_VIP
    )
    assert_withdrawn(*outcome(raw), UpdateSubcode.MALFORMED_AS_PATH)


def test_as_path_in_2_octet_form_on_a_4_octet_session_is_malformed() -> None:
    raw = update(attributes=origin() + as_path(65101, 65102, 7) + next_hop(), nlri=NLRI_VIP)
    assert_withdrawn(*outcome(raw, NEW_EBGP), UpdateSubcode.MALFORMED_AS_PATH)


# --- §7.3 NEXT_HOP ----------------------------------------------------------------------------


def test_next_hop_bad_length_is_treat_as_withdraw() -> None:
    raw = update(
        attributes=origin() + as_path(65101) + attr(WELL_KNOWN, 3, b"\x01" * 5), nlri=NLRI_VIP
    )
    assert_withdrawn(*outcome(raw), UpdateSubcode.ATTRIBUTE_LENGTH_ERROR)


@pytest.mark.parametrize("address", ["0.0.0.0", "224.0.0.5", "255.255.255.255"])
def test_next_hop_semantic_error_is_treat_as_withdraw(address: str) -> None:
    raw = update(attributes=origin() + as_path(65101) + next_hop(address), nlri=NLRI_VIP)
    assert_withdrawn(*outcome(raw), UpdateSubcode.INVALID_NEXT_HOP_ATTRIBUTE)


def test_bad_next_hop_without_classic_nlri_is_discarded() -> None:
    attributes = attr(OPTIONAL, 14, MP_V6) + origin() + as_path(65101) + next_hop("0.0.0.0")
    message, error = outcome(update(attributes=attributes))
    assert error.handling is DISCARD and not message.treat_as_withdraw
    assert message.announced_all() == [IPv6Network("2001:db8::/32")]


# --- §7.4 MED, §7.5 LOCAL_PREF ----------------------------------------------------------------


def test_med_bad_length_is_treat_as_withdraw() -> None:
    raw = update(attributes=mandatory() + attr(OPTIONAL, 4, b"\x00\x00\x01"), nlri=NLRI_VIP)
    assert_withdrawn(*outcome(raw), UpdateSubcode.ATTRIBUTE_LENGTH_ERROR)


def test_local_pref_bad_length_from_ibgp_is_treat_as_withdraw() -> None:
    raw = update(attributes=mandatory() + attr(WELL_KNOWN, 5, b"\x00\x64"), nlri=NLRI_VIP)
    assert_withdrawn(*outcome(raw, OLD_IBGP), UpdateSubcode.ATTRIBUTE_LENGTH_ERROR)
    good = update(attributes=mandatory() + attr(WELL_KNOWN, 5, b"\x00\x00\x00\x64"), nlri=NLRI_VIP)
    assert decoded(good, OLD_IBGP).attributes.local_pref == 100


@pytest.mark.parametrize("value", [b"\x00\x00\x00\x64", b"\x00"])
def test_local_pref_from_ebgp_is_discarded(value: bytes) -> None:
    raw = update(attributes=mandatory(4) + attr(WELL_KNOWN, 5, value), nlri=NLRI_VIP)
    message, error = outcome(raw, NEW_EBGP)
    assert error.handling is DISCARD
    assert message.attributes.local_pref is None
    assert not message.treat_as_withdraw and message.announced_all() == [VIP]


# --- §7.6 ATOMIC_AGGREGATE, §7.7 AGGREGATOR ---------------------------------------------------


def test_atomic_aggregate_bad_length_is_discarded() -> None:
    raw = update(attributes=mandatory() + attr(WELL_KNOWN, 6, b"\x01"), nlri=NLRI_VIP)
    message, error = outcome(raw)
    assert error.handling is DISCARD and error.subcode == UpdateSubcode.ATTRIBUTE_LENGTH_ERROR
    assert not message.attributes.atomic_aggregate and not message.treat_as_withdraw


@pytest.mark.parametrize(
    ("negotiated", "value"),
    [
        (OLD_EBGP, "fe4d 0a0000"),  # 5 octets
        (OLD_EBGP, "0000fe4d 0a000001"),  # 8 octets on a 2-octet session
        (NEW_EBGP, "fe4d 0a000001"),  # 6 octets on a 4-octet session
        (OLD_EBGP, "0000 0a000001"),  # AS 0 (RFC 7607)
    ],
)
def test_aggregator_errors_are_discarded(negotiated: Negotiated, value: str) -> None:
    raw = update(
        attributes=mandatory(4 if negotiated.four_octet_as else 2)
        + attr(OPTIONAL_TRANSITIVE, 7, bytes.fromhex(value)),
        nlri=NLRI_VIP,
    )
    message, error = outcome(raw, negotiated)
    assert error.handling is DISCARD
    assert message.attributes.aggregator is None and message.announced_all() == [VIP]


# --- §7.8 COMMUNITIES, RFC 8092 LARGE_COMMUNITY, §7.14 EXTENDED COMMUNITIES --------------------


@pytest.mark.parametrize(
    ("code", "value"),
    [(8, b""), (8, b"\x00" * 5), (32, b"\x00" * 13), (32, b""), (16, b"\x00" * 7)],
)
def test_community_lengths_are_treat_as_withdraw(code: int, value: bytes) -> None:
    raw = update(attributes=mandatory() + attr(OPTIONAL_TRANSITIVE, code, value), nlri=NLRI_VIP)
    assert_withdrawn(*outcome(raw), UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR)


def test_duplicate_large_communities_are_removed() -> None:
    one = bytes.fromhex("0000fe4c 00000001 00000002")
    two = bytes.fromhex("0000fe4c 00000001 00000003")
    raw = update(
        attributes=mandatory() + attr(OPTIONAL_TRANSITIVE, 32, one + two + one), nlri=NLRI_VIP
    )
    message = decoded(raw)
    assert message.errors == ()
    assert [str(c) for c in message.attributes.large_communities] == ["65100:1:2", "65100:1:3"]


# --- §7.9, §7.10 ORIGINATOR_ID, CLUSTER_LIST --------------------------------------------------


def test_reflection_attributes() -> None:
    bad_originator = update(attributes=mandatory() + attr(OPTIONAL, 9, b"\x01\x02"), nlri=NLRI_VIP)
    assert_withdrawn(*outcome(bad_originator, OLD_IBGP), UpdateSubcode.ATTRIBUTE_LENGTH_ERROR)
    bad_cluster = update(attributes=mandatory() + attr(OPTIONAL, 10, b"\x01" * 6), nlri=NLRI_VIP)
    assert_withdrawn(*outcome(bad_cluster, OLD_IBGP), UpdateSubcode.ATTRIBUTE_LENGTH_ERROR)
    from_ebgp = update(attributes=mandatory() + attr(OPTIONAL, 9, b"\x01" * 4), nlri=NLRI_VIP)
    message, error = outcome(from_ebgp, OLD_EBGP)
    assert error.handling is DISCARD and message.attributes.originator_id is None
    good = decoded(from_ebgp, OLD_IBGP)
    assert good.attributes.originator_id == IPv4Address("1.1.1.1")


# --- §3 c attribute flags ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        attr(OPTIONAL_TRANSITIVE, 1, b"\x00"),  # ORIGIN marked optional
        attr(0x00, 2, b""),  # AS_PATH marked non-transitive
        attr(OPTIONAL_TRANSITIVE, 4, b"\x00" * 4),  # MED marked transitive
        attr(OPTIONAL, 8, b"\x00" * 4),  # COMMUNITIES marked non-transitive
        attr(WELL_KNOWN, 32, b"\x00" * 12),  # LARGE_COMMUNITY marked well-known
    ],
)
def test_wrong_flags_are_treat_as_withdraw(bad: bytes) -> None:
    code = bad[1]
    if code == 1:
        attributes = bad + as_path(65101) + next_hop()
    elif code == 2:
        attributes = origin() + bad + next_hop()
    else:
        attributes = mandatory() + bad
    message, error = outcome(update(attributes=attributes, nlri=NLRI_VIP))
    assert_withdrawn(message, error, UpdateSubcode.ATTRIBUTE_FLAGS_ERROR)
    assert error.data == bad


def test_mp_reach_with_wrong_flags_is_a_reset() -> None:
    raw = update(attributes=attr(OPTIONAL_TRANSITIVE, 14, MP_V6) + origin() + as_path(65101))
    assert reset(raw).subcode == UpdateSubcode.ATTRIBUTE_FLAGS_ERROR


def test_partial_bit_on_known_attribute_is_accepted() -> None:
    raw = update(attributes=mandatory() + attr(0xE0, 8, b"\x00\x00\x00\x01"), nlri=NLRI_VIP)
    assert decoded(raw).errors == ()


# --- §3 g duplicates --------------------------------------------------------------------------


def test_duplicate_attribute_keeps_the_first() -> None:
    raw = update(
        attributes=mandatory()
        + origin(2)
        + attr(OPTIONAL, 4, b"\x00\x00\x00\x05")
        + attr(OPTIONAL, 4, b"\x00"),
        nlri=NLRI_VIP,
    )
    message = decoded(raw)
    assert [e.handling for e in message.errors] == [DISCARD, DISCARD]
    assert all(e.subcode == UpdateSubcode.MALFORMED_ATTRIBUTE_LIST for e in message.errors)
    assert message.attributes.origin == 0 and message.attributes.med == 5
    assert not message.treat_as_withdraw


@pytest.mark.parametrize("code", [14, 15])
def test_duplicate_mp_attribute_is_a_reset(code: int) -> None:
    value = MP_V6 if code == 14 else bytes.fromhex("0002 01")
    mp = attr(OPTIONAL, code, value)
    error = reset(update(attributes=mp + origin() + as_path(65101) + mp))
    assert error.subcode == UpdateSubcode.MALFORMED_ATTRIBUTE_LIST


# --- §3 d missing well-known attributes -------------------------------------------------------


def test_missing_next_hop_with_nlri_is_treat_as_withdraw() -> None:
    message, error = outcome(update(attributes=origin() + as_path(65101), nlri=NLRI_VIP))
    assert_withdrawn(message, error, UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE)
    assert error.data == b"\x03"


def test_missing_origin_with_mp_reach_is_treat_as_withdraw() -> None:
    message, error = outcome(update(attributes=attr(OPTIONAL, 14, MP_V6) + as_path(65101)))
    assert error.subcode == UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE and error.data == b"\x01"
    assert message.treat_as_withdraw
    assert message.withdrawn_all() == [IPv6Network("2001:db8::/32")]


def test_next_hop_is_not_needed_for_mp_reach_only() -> None:
    message = decoded(update(attributes=attr(OPTIONAL, 14, MP_V6) + origin() + as_path(65101)))
    assert message.errors == ()


def test_no_attributes_needed_for_withdrawals() -> None:
    message = decoded(update(withdrawn=NLRI_VIP))
    assert message.errors == () and message.withdrawn_all() == [VIP]


# --- §3 b, §3 j, §5.3 lengths and NLRI: session reset -----------------------------------------


def test_withdrawn_length_overrun_is_a_reset() -> None:
    raw = update(withdrawn=NLRI_VIP)
    raw = raw[:19] + b"\x00\x09" + raw[21:]
    assert reset(raw).subcode == UpdateSubcode.MALFORMED_ATTRIBUTE_LIST


def test_total_attribute_length_overrun_is_a_reset() -> None:
    raw = update(attributes=mandatory(), nlri=NLRI_VIP)
    raw = raw[:21] + b"\x00\x40" + raw[23:]
    assert reset(raw).subcode == UpdateSubcode.MALFORMED_ATTRIBUTE_LIST


@pytest.mark.parametrize("nlri", [bytes([33, 1, 2, 3, 4, 5]), bytes([24, 198, 51]), bytes([8])])
def test_bad_nlri_is_a_reset(nlri: bytes) -> None:
    assert (
        reset(update(attributes=mandatory(), nlri=nlri)).subcode
        == UpdateSubcode.INVALID_NETWORK_FIELD
    )


def test_bad_withdrawn_prefix_is_a_reset() -> None:
    assert reset(update(withdrawn=bytes([40, 1, 2, 3, 4, 5]))).subcode == (
        UpdateSubcode.INVALID_NETWORK_FIELD
    )


# --- §4 attribute length conflicts inside the block: treat-as-withdraw --------------------------


def test_attribute_overrunning_the_block_is_treat_as_withdraw() -> None:
    attributes = mandatory() + bytes([OPTIONAL_TRANSITIVE, 8, 9, 0, 0, 0, 1])
    message, error = outcome(update(attributes=attributes, nlri=NLRI_VIP))
    assert_withdrawn(message, error, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR)


def test_truncated_attribute_header_is_treat_as_withdraw() -> None:
    message, error = outcome(update(attributes=mandatory() + b"\x40\x01", nlri=NLRI_VIP))
    assert_withdrawn(message, error, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST)


# --- §5.2 no reachable NLRI: errors other than discard reset the session ------------------------


def test_error_in_update_without_nlri_is_a_reset() -> None:
    error = reset(update(withdrawn=NLRI_VIP, attributes=origin(7) + as_path(65101)))
    assert error.subcode == UpdateSubcode.INVALID_ORIGIN_ATTRIBUTE


def test_discard_in_update_without_nlri_is_kept() -> None:
    message, error = outcome(update(withdrawn=NLRI_VIP, attributes=attr(WELL_KNOWN, 6, b"\x00")))
    assert error.handling is DISCARD and message.withdrawn_all() == [VIP]


# --- §7.11 / §5.3 MP_REACH_NLRI / MP_UNREACH_NLRI -------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "0002 01 10",  # shorter than 5 octets
        "0002 01 08 20010db8 00000001 00",  # IPv6 next hop of 8 octets
        "0002 01 04 0a000001 00",  # IPv6 next hop of 4 octets
        "0001 01 10 20010db8000000000000000000000001 00",  # IPv4 next hop of 16 octets
        "0002 01 20 20010db8000000000000000000000001",  # next hop overruns the attribute
        "0002 01 10 20010db8000000000000000000000001 00 81 00",  # /129
        "0002 01 10 20010db8000000000000000000000001 00 40 2001",  # prefix overruns
        "0001 80 04 0a000001 00",  # SAFI 128 is not carried
        "0019 46 04 0a000001 00",  # L2VPN EVPN is not carried
    ],
)
def test_malformed_mp_reach_is_a_reset(value: str) -> None:
    raw = update(attributes=attr(OPTIONAL, 14, bytes.fromhex(value)) + origin() + as_path(65101))
    assert reset(raw).subcode == UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR


@pytest.mark.parametrize("value", ["0002", "0002 01 81", "0003 01"])
def test_malformed_mp_unreach_is_a_reset(value: str) -> None:
    raw = update(attributes=attr(OPTIONAL, 15, bytes.fromhex(value)))
    assert reset(raw).subcode == UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR


def test_mp_reach_unusable_next_hop_is_treat_as_withdraw() -> None:
    value = bytes.fromhex("0002 01 10") + bytes(16) + b"\x00" + bytes([32, 0x20, 0x01, 0x0D, 0xB8])
    message, error = outcome(
        update(attributes=attr(OPTIONAL, 14, value) + origin() + as_path(65101))
    )
    assert error.handling is TAW and message.treat_as_withdraw
    assert message.withdrawn_all() == [IPv6Network("2001:db8::/32")]


# --- unrecognized well-known attribute ----------------------------------------------------------


def test_unrecognized_well_known_attribute_is_a_reset() -> None:
    bad = attr(WELL_KNOWN, 97, b"\x01")
    error = reset(update(attributes=mandatory() + bad, nlri=NLRI_VIP))
    assert error.subcode == UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE
    assert error.data == bad


# --- §3 h several errors ------------------------------------------------------------------------


def test_strongest_handling_wins() -> None:
    attributes = mandatory(4) + attr(WELL_KNOWN, 6, b"\x01") + attr(OPTIONAL, 4, b"\x00")
    message = decoded(update(attributes=attributes, nlri=NLRI_VIP), NEW_IBGP)
    handlings = sorted(e.handling for e in message.errors)
    assert handlings == [DISCARD, TAW]
    assert message.treat_as_withdraw


def test_error_str_is_readable() -> None:
    _, error = outcome(update(attributes=origin(9) + as_path(65101) + next_hop(), nlri=NLRI_VIP))
    text = str(error)
    assert "UPDATE_MESSAGE_ERROR/INVALID_ORIGIN_ATTRIBUTE" in text
    assert "treat-as-withdraw" in text and "ORIGIN value 9" in text
