"""Signed LLDP frames: what the controller makes, and every kind of frame it refuses."""

from __future__ import annotations

import struct

import pytest

from controller import lldp

SECRET = b"k" * 32
MAC = "0a:00:00:00:00:09"
NOW = 1_800_000_000.0


def test_round_trip_and_layout():
    frame = lldp.frame("000000000000ABCD", 0xFFFFFF00, MAC, SECRET, NOW)
    assert frame[:14] == bytes.fromhex("0180c200000e" "0a0000000009" "88cc")
    assert frame[14:16] == struct.pack("!H", 1 << 9 | 22) and frame[16:38] == b"\x07dpid:000000000000abcd"
    assert len(frame) >= 60
    assert lldp.sender(frame, SECRET, NOW + 1, max_age=4) == ("000000000000abcd", 0xFFFFFF00)
    with pytest.raises(ValueError):
        lldp.frame("1", 1, MAC, SECRET, NOW)


def refusal(frame: bytes, now: float = NOW, secret: bytes = SECRET) -> str:
    with pytest.raises(lldp.Refused) as info:
        lldp.sender(frame, secret, now, max_age=4)
    return str(info.value)


def test_frames_we_did_not_make_are_refused():
    ours = lldp.frame("0000000000000001", 1, MAC, SECRET, NOW)
    assert refusal(ours, secret=b"x" * 32).startswith("forged")
    assert refusal(ours[:16] + b"\x04" + ours[17:]).startswith("foreign")  # chassis subtype MAC
    assert refusal(ours[:12] + b"\x08\x00" + ours[14:]) == "not LLDP"
    assert refusal(ours[:30]).startswith("malformed")
    unsigned = ours[:ours.index(b"\xfe")] + b"\x00\x00"  # everything before the org TLV header
    assert refusal(unsigned).startswith("unsigned")


def test_a_claim_cannot_be_moved_to_another_port_or_switch():
    ours = lldp.frame("0000000000000001", 1, MAC, SECRET, NOW)
    other_port = ours.replace(struct.pack("!BI", 2, 1), struct.pack("!BI", 2, 7))
    other_switch = ours.replace(b"0000000000000001", b"0000000000000002")
    assert refusal(other_port).startswith("forged") and refusal(other_switch).startswith("forged")


def test_old_frames_are_replays_and_future_ones_forged_clocks():
    ours = lldp.frame("0000000000000001", 1, MAC, SECRET, NOW)
    assert lldp.sender(ours, SECRET, NOW + 3.9, max_age=4) == ("0000000000000001", 1)
    assert refusal(ours, now=NOW + 4.1).startswith("replayed")
    assert refusal(ours, now=NOW - 5).startswith("replayed")
