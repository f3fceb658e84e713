"""LLDP frames for link discovery, signed so that only frames this controller made recently count.

A frame names its sender (dpid, OpenFlow port) and carries, in an organisationally specific TLV,
the time it was made and an HMAC over sender and time under a secret kept in the store. A frame
without a valid signature is forged; one older than `max_age` is a replay. Together with sending
LLDP only out of trunk candidates (apps/discovery.py) and counting a link only when both
directions are seen (controller/fabric.py), this keeps a VM or a stray interface from making
itself a trunk.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

_LLDP_DST = bytes.fromhex("0180c200000e")
_ETH_TYPE_LLDP = b"\x88\xcc"
_CHASSIS_PREFIX = b"\x07dpid:"  # chassis id subtype 7 (locally assigned)
_PORT_SUBTYPE = 2  # port id subtype 2 (port component): the OpenFlow port number, 4 bytes
_TTL = 120
_ORG_TLV = 127
_OUI = b"\x00\x00\x00"  # no vendor: the subtype alone names our signature TLV
_SIGNATURE_SUBTYPE = 0x53
_MAC_BYTES = 16  # HMAC-SHA256 cut to 128 bits
_SIGNED = struct.Struct(f"!3sBQ{_MAC_BYTES}s")  # OUI, subtype, milliseconds since the epoch, MAC
_FUTURE_SLACK = 1.0  # seconds a frame's time may lie ahead of ours (clock steps)


class Refused(Exception):
    """An LLDP frame that must not count as a link; the message says why, for operators."""


def _is_dpid(text: str) -> bool:
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


def _tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!H", kind << 9 | len(value)) + value


def _mac(secret: bytes, dpid: str, port_no: int, millis: int) -> bytes:
    message = dpid.encode() + struct.pack("!IQ", port_no, millis)
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def frame(dpid: str, port_no: int, src_mac: str, secret: bytes, now: float) -> bytes:
    """A signed LLDP frame naming (dpid, port) as its sender, made at wall-clock time `now`."""
    dpid = dpid.lower()
    if not _is_dpid(dpid):
        raise ValueError(f"dpid must be 16 hex digits: {dpid!r}")
    millis = int(now * 1000)
    signature = _SIGNED.pack(_OUI, _SIGNATURE_SUBTYPE, millis, _mac(secret, dpid, port_no, millis))
    return b"".join((
        _LLDP_DST, bytes.fromhex(src_mac.replace(":", "")), _ETH_TYPE_LLDP,
        _tlv(1, _CHASSIS_PREFIX + dpid.encode()),
        _tlv(2, struct.pack("!BI", _PORT_SUBTYPE, port_no)),
        _tlv(3, struct.pack("!H", _TTL)),
        _tlv(_ORG_TLV, signature),
        _tlv(0, b""),
    ))


def _tlvs(data: bytes) -> dict[int, bytes]:
    """The first value of each TLV type, up to the end TLV."""
    found: dict[int, bytes] = {}
    pos = 14
    while pos + 2 <= len(data):
        kind_len = int.from_bytes(data[pos:pos + 2], "big")
        kind, length = kind_len >> 9, kind_len & 0x1FF
        if kind == 0:
            break
        if pos + 2 + length > len(data):
            raise Refused("malformed: a TLV runs past the end of the frame")
        found.setdefault(kind, data[pos + 2:pos + 2 + length])
        pos += 2 + length
    return found


def sender(data: bytes, secret: bytes, now: float, max_age: float) -> tuple[str, int]:
    """(dpid, port) of the switch port that sent `data`; raises Refused for any frame we did not
    make, or made more than `max_age` seconds ago."""
    if data[12:14] != _ETH_TYPE_LLDP:
        raise Refused("not LLDP")
    tlvs = _tlvs(data)
    chassis, port = tlvs.get(1, b""), tlvs.get(2, b"")
    if len(chassis) != len(_CHASSIS_PREFIX) + 16 or not chassis.startswith(_CHASSIS_PREFIX):
        raise Refused("foreign: not a chassis id of ours")
    dpid = chassis[len(_CHASSIS_PREFIX):].decode("ascii", "replace")
    if not _is_dpid(dpid) or len(port) != 5 or port[0] != _PORT_SUBTYPE:
        raise Refused("malformed: chassis or port id")
    port_no = int.from_bytes(port[1:], "big")
    signed = tlvs.get(_ORG_TLV, b"")
    if len(signed) != _SIGNED.size or signed[:4] != _OUI + bytes([_SIGNATURE_SUBTYPE]):
        raise Refused(f"unsigned: claims {dpid}:{port_no}")
    _, _, millis, mac = _SIGNED.unpack(signed)
    if not hmac.compare_digest(mac, _mac(secret, dpid, port_no, millis)):
        raise Refused(f"forged: bad signature, claims {dpid}:{port_no}")
    age = now - millis / 1000
    if age > max_age or age < -_FUTURE_SLACK:
        raise Refused(f"replayed: made {age:.1f} s ago, claims {dpid}:{port_no}")
    return dpid, port_no
