"""Pure parts of the lab traffic tools: framing, stream accounting, error windows, HTTP bits."""

from __future__ import annotations

import pytest

from appliance.lab.traffic import endpoint_server, http_loop, stream_client
from appliance.lab.traffic.accounting import (
    ErrorWindowTracker,
    HttpTally,
    LineDecoder,
    StreamAccounting,
    collapse_ranges,
    encode_message,
    stream_summary,
)

# --- framing ------------------------------------------------------------------------------------


def test_collapse_ranges() -> None:
    assert collapse_ranges([]) == []
    assert collapse_ranges([9, 1, 2, 3, 7, 10, 2]) == [(1, 3), (7, 7), (9, 10)]


def test_encode_message_has_exact_size_and_decodes() -> None:
    raw = encode_message(stream=3, seq=41, size=64)
    assert len(raw) == 64 and raw.endswith(b"\n") and raw.startswith(b"41 3 ")
    with pytest.raises(ValueError):
        encode_message(stream=3, seq=123456, size=8)


def test_line_decoder_handles_split_and_joined_messages() -> None:
    decoder = LineDecoder()
    data = b"".join(encode_message(0, seq, 20) for seq in range(5))
    assert decoder.feed(data[:7]) == []
    assert decoder.feed(data[7:45]) == [0, 1]
    assert decoder.feed(data[45:]) == [2, 3, 4]


def test_line_decoder_rejects_endless_line() -> None:
    decoder = LineDecoder(max_line=100)
    with pytest.raises(ValueError):
        decoder.feed(b"x" * 200)


# --- stream accounting --------------------------------------------------------------------------


def _send_echo(acc: StreamAccounting, count: int, start: float, step: float = 0.01) -> float:
    now = start
    for _ in range(count):
        seq = acc.next_seq()
        acc.on_sent(seq, now)
        now += step / 2
        acc.on_echo(seq, now)
        now += step / 2
    return now


def test_healthy_stream_is_ok() -> None:
    acc = StreamAccounting(0, stall_threshold=0.2)
    acc.on_connect()
    end = _send_echo(acc, 100, start=0.0)
    acc.finish(end)
    report = acc.report()
    assert (report["sent"], report["echoed"], report["missing"]) == (100, 100, 0)
    assert report["gaps"] == [] and report["stall_count"] == 0 and report["resets"] == 0
    summary = stream_summary([acc], end)
    assert summary["ok"] and summary["totals"]["sent"] == 100


def test_stall_is_measured_while_messages_are_outstanding() -> None:
    acc = StreamAccounting(0, stall_threshold=0.2)
    now = _send_echo(acc, 10, start=0.0)
    acc.on_sent(10, now)  # outstanding from now
    acc.on_sent(11, now + 0.1)
    acc.on_echo(10, now + 0.75)  # 750 ms without any echo while waiting
    acc.on_echo(11, now + 0.76)
    acc.finish(now + 1.0)
    report = acc.report(origin=0.0)
    assert report["stall_count"] == 1
    assert report["longest_stall_ms"] == pytest.approx(750.0)
    assert report["stalls"][0]["at_s"] == pytest.approx(now, abs=1e-3)
    assert report["missing"] == 0


def test_idle_time_without_outstanding_messages_is_no_stall() -> None:
    acc = StreamAccounting(0, stall_threshold=0.2)
    now = _send_echo(acc, 3, start=0.0)
    now = _send_echo(acc, 3, start=now + 5.0)  # 5 s pause with nothing in flight
    acc.finish(now)
    assert acc.report()["stall_count"] == 0


def test_reset_loses_outstanding_messages_as_a_gap() -> None:
    acc = StreamAccounting(0, stall_threshold=0.2)
    now = _send_echo(acc, 5, start=0.0)
    for seq in (5, 6, 7):
        acc.on_sent(seq, now)
    acc.on_echo(5, now + 0.01)
    acc.on_reset(now + 0.05, "econnreset")
    acc.on_connect()  # reconnected: numbering goes on
    now = _send_echo(acc, 3, start=now + 0.3)
    acc.finish(now)
    report = acc.report()
    assert report["resets"] == 1 and report["reset_events"][0]["reason"] == "econnreset"
    assert report["gaps"] == [[6, 7]] and report["missing"] == 2 and report["gap_count"] == 1
    assert report["sent"] == 11 and report["echoed"] == 9
    assert not stream_summary([acc], now)["ok"]


def test_unanswered_messages_at_the_end_are_missing_and_a_stall() -> None:
    acc = StreamAccounting(0, stall_threshold=0.2)
    acc.on_sent(0, 0.0)
    acc.on_sent(1, 0.01)
    acc.on_echo(0, 0.02)
    acc.finish(2.0)
    report = acc.report()
    assert report["gaps"] == [[1, 1]]
    assert report["stall_count"] == 1 and report["longest_stall_ms"] == pytest.approx(1980.0)


def test_duplicates_out_of_order_and_unexpected_echoes() -> None:
    acc = StreamAccounting(0, stall_threshold=1.0)
    for seq in range(3):
        acc.on_sent(seq, 0.0)
    acc.on_echo(1, 0.1)
    acc.on_echo(0, 0.1)  # older than the highest echoed
    acc.on_echo(1, 0.1)  # again
    acc.on_echo(99, 0.1)  # never sent
    acc.on_echo(2, 0.2)
    report = acc.report()
    assert (report["out_of_order"], report["duplicates"], report["unexpected"]) == (1, 1, 1)
    assert report["echoed"] == 3 and report["missing"] == 0


def test_sequence_numbers_must_be_sent_in_order() -> None:
    acc = StreamAccounting(0, stall_threshold=1.0)
    with pytest.raises(ValueError):
        acc.on_sent(1, 0.0)


def test_summary_flags_connect_errors() -> None:
    acc = StreamAccounting(0, stall_threshold=1.0)
    acc.on_connect_error("econnrefused")
    summary = stream_summary([acc], 1.0)
    assert not summary["ok"]
    assert summary["per_stream"][0]["connect_error_kinds"] == {"econnrefused": 1}


# --- error windows and HTTP tally ---------------------------------------------------------------


def test_error_windows_group_consecutive_failures() -> None:
    tracker = ErrorWindowTracker()
    tracker.record(True, 1.0)
    tracker.record(False, 2.0, "timeout", started=1.5)
    tracker.record(False, 3.0, "econnrefused")
    assert tracker.in_window
    tracker.record(True, 3.5)
    tracker.record(False, 5.0, "econnreset")
    assert [(w.start, w.end, w.failures, w.first_error) for w in tracker.windows] == [
        (1.5, 3.0, 2, "timeout"),
        (5.0, 5.0, 1, "econnreset"),
    ]
    assert tracker.in_window


def test_http_tally_report() -> None:
    tally = HttpTally()
    tally.success("ep1", 10.1)
    tally.success("ep2", 10.2)
    tally.failure("timeout", 11.0, started=10.5)
    tally.failure("timeout", 11.5)
    tally.success("ep1", 12.0)
    report = tally.report(duration=2.0, origin=10.0)
    assert report["by_endpoint"] == {"ep1": 2, "ep2": 1}
    assert (report["requests"], report["ok"], report["failed"]) == (5, 3, 2)
    assert report["errors"] == {"timeout": 2}
    assert report["error_windows"] == [
        {"start_s": 0.5, "end_s": 1.5, "failures": 2, "first_error": "timeout"}
    ]
    assert report["longest_error_window_s"] == 1.0


# --- HTTP server response and client parsing -----------------------------------------------------


def test_endpoint_http_response() -> None:
    ok = endpoint_server.http_response(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "ep2")
    assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and ok.endswith(b"\r\n\r\nep2\n")
    assert b"Content-Length: 4\r\n" in ok and b"Connection: close\r\n" in ok
    head = endpoint_server.http_response(b"HEAD /x HTTP/1.0\r\n\r\n", "ep2")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    assert endpoint_server.http_response(b"POST / HTTP/1.1\r\n\r\n", "e").startswith(
        b"HTTP/1.1 405"
    )
    assert endpoint_server.http_response(b"garbage\r\n\r\n", "e").startswith(b"HTTP/1.1 400")


def test_http_loop_parses_endpoint_name_and_errors() -> None:
    response = endpoint_server.http_response(b"GET / HTTP/1.1\r\n\r\n", "ep3")
    assert http_loop.parse_response(response) == "ep3"
    with pytest.raises(http_loop.FetchError) as err:
        http_loop.parse_response(b"HTTP/1.1 503 Unavailable\r\n\r\n")
    assert err.value.kind == "http_503"
    with pytest.raises(http_loop.FetchError) as err:
        http_loop.parse_response(b"")
    assert err.value.kind == "eof"
    with pytest.raises(http_loop.FetchError) as err:
        http_loop.parse_response(b"SSH-2.0\r\n\r\n")
    assert err.value.kind == "bad_response"


def test_http_loop_target_from_url() -> None:
    target = http_loop.Target.from_url("http://198.51.100.10:8080/a?b=1")
    assert (target.host, target.port, target.path) == ("198.51.100.10", 8080, "/a?b=1")
    assert target.request().startswith(b"GET /a?b=1 HTTP/1.1\r\nHost: 198.51.100.10:8080\r\n")
    assert http_loop.Target.from_url("http://10.0.0.1").port == 80
    with pytest.raises(ValueError):
        http_loop.Target.from_url("https://10.0.0.1/")


# --- bounded arguments --------------------------------------------------------------------------


def test_tools_require_bounded_duration() -> None:
    with pytest.raises(SystemExit):
        stream_client.parse_args(["--host=h", "--port=9000"])  # no --duration
    with pytest.raises(SystemExit):
        stream_client.parse_args(["--host=h", "--port=9000", "--duration=3601"])
    with pytest.raises(SystemExit):
        http_loop.parse_args(["http://h/"])
    with pytest.raises(SystemExit):
        http_loop.parse_args(["http://h/", "--duration=5", "--count=0"])
    with pytest.raises(SystemExit):
        endpoint_server.parse_args(["--name=ep1"])


def test_stream_client_count_defaults_to_rate_times_duration() -> None:
    args = stream_client.parse_args(["--host=h", "--port=1", "--duration=2", "--rate=10"])
    assert args.count == 21
    args = stream_client.parse_args(["--host=h", "--port=1", "--duration=2", "--count=5"])
    assert args.count == 5
