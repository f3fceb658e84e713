"""Frames a router sends from the controller: ICMP time-exceeded, ARP requests; and the ARP frames it reads.

Pure byte work, no I/O: the runtime decides when and where to send (controller/runtime.py) and how often
(controller/neighbors.py). A time-exceeded message follows RFC 792 and RFC 1812 4.3.2.7: it carries the original
IP header and the first 8 bytes of its payload, and it is not sent about an ICMP error, a fragment other than the
first, or a packet whose source or destination is not one host.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_VLAN = 0x8100
BROADCAST = "ff:ff:ff:ff:ff:ff"
ARP_REQUEST, ARP_REPLY = 1, 2
ICMP_TIME_EXCEEDED = 11
IP_PROTO_ICMP = 1
TTL = 64
ETH_HEADER = struct.Struct("!6s6sH")
IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})  # destination unreachable, source quench, redirect, time exceeded,
#                                              parameter problem: never answered with another error (RFC 1122 3.2.2)
MIN_FRAME = 60  # Ethernet's minimum without the FCS: short frames are padded with zeros


class NotAnswered(ValueError):
    """A frame no ICMP error may be sent about (or that is not the IPv4 it should be); the message says why."""


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`: over a header that holds its checksum, 0 means intact."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet_payload(frame: bytes) -> tuple[bytes, bytes, int, bytes]:
    """(eth_dst, eth_src, ethertype, what follows) of an Ethernet frame, past one 802.1Q tag if it has one; raises
    NotAnswered when it is shorter than an Ethernet header."""
    if len(frame) < ETH_HEADER.size:
        raise NotAnswered("shorter than an Ethernet header")
    dst, src, ethertype = ETH_HEADER.unpack_from(frame)
    rest = frame[ETH_HEADER.size:]
    if ethertype == ETH_TYPE_VLAN and len(rest) >= 4:
        ethertype, rest = struct.unpack_from("!H", rest, 2)[0], rest[4:]
    return dst, src, ethertype, rest


@dataclass(frozen=True)
class Arp:
    """An ARP packet for IPv4 over Ethernet, addresses as text."""

    op: int
    eth_src: str
    eth_dst: str
    sha: str
    spa: str
    tha: str
    tpa: str


def parse_arp(frame: bytes) -> Arp | None:
    """The ARP packet in `frame`; None when it holds none (or not one for IPv4 over Ethernet)."""
    try:
        dst, src, ethertype, rest = ethernet_payload(frame)
    except NotAnswered:
        return None
    if ethertype != ETH_TYPE_ARP or len(rest) < _ARP.size:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(rest)
    if (htype, ptype, hlen, plen) != (1, ETH_TYPE_IPV4, 6, 4):
        return None
    return Arp(op, mac_text(src), mac_text(dst), mac_text(sha), str(ipaddress.IPv4Address(spa)), mac_text(tha),
               str(ipaddress.IPv4Address(tpa)))


def arp(op: int, eth_src: str, eth_dst: str, sha: str, spa: str, tha: str, tpa: str) -> bytes:
    """An ARP frame for IPv4 over Ethernet, padded to Ethernet's minimum."""
    frame = ETH_HEADER.pack(mac_bytes(eth_dst), mac_bytes(eth_src), ETH_TYPE_ARP) + _ARP.pack(
        1, ETH_TYPE_IPV4, 6, 4, op, mac_bytes(sha), ipaddress.IPv4Address(spa).packed, mac_bytes(tha),
        ipaddress.IPv4Address(tpa).packed)
    return frame.ljust(MIN_FRAME, b"\0")


def arp_request(src_mac: str, src_ip: str, target_ip: str) -> bytes:
    """Who has `target_ip`? Tell `src_ip` at `src_mac`: broadcast, the target MAC unknown (zero)."""
    return arp(ARP_REQUEST, src_mac, BROADCAST, src_mac, src_ip, "00:00:00:00:00:00", target_ip)


def _one_host(address: ipaddress.IPv4Address) -> bool:
    return not (address.is_multicast or address.is_unspecified or address.is_loopback
                or address == ipaddress.IPv4Address("255.255.255.255"))


def time_exceeded(frame: bytes, router_mac: str, router_ip: str, ident: int = 0) -> bytes:
    """The ICMP time-exceeded (TTL exceeded in transit) a router at `router_mac`/`router_ip` sends back to the
    sender of `frame`: to the frame's eth_src and ipv4 src, TTL 64, with the original IP header and the first 8
    bytes of its payload. Raises NotAnswered when none may be sent (see the module's docstring)."""
    eth_dst, eth_src, ethertype, packet = ethernet_payload(frame)
    if ethertype != ETH_TYPE_IPV4:
        raise NotAnswered(f"not IPv4 (ethertype 0x{ethertype:04x})")
    if eth_src[0] & 1:
        raise NotAnswered("multicast Ethernet source")
    if len(packet) < IPV4_HEADER.size or packet[0] >> 4 != 4 or (packet[0] & 0xF) < 5:
        raise NotAnswered("not an IPv4 header")
    header_len = (packet[0] & 0xF) * 4
    _, _, total_len, _, fragment, _, protocol, _, src, dst = IPV4_HEADER.unpack_from(packet)
    if len(packet) < header_len or total_len < header_len:
        raise NotAnswered("truncated IPv4 header")
    if fragment & 0x1FFF:
        raise NotAnswered("a fragment other than the first")
    source, destination = ipaddress.IPv4Address(src), ipaddress.IPv4Address(dst)
    if not _one_host(source) or not _one_host(destination):
        raise NotAnswered(f"{source} -> {destination} is not from one host to one host")
    if eth_dst[0] & 1:
        raise NotAnswered("sent to a multicast or broadcast MAC")
    if protocol == IP_PROTO_ICMP and len(packet) > header_len and packet[header_len] in _ICMP_ERRORS:
        raise NotAnswered("an ICMP error")
    quoted = packet[:min(total_len, header_len + 8, len(packet))]
    icmp = struct.pack("!BBHI", ICMP_TIME_EXCEEDED, 0, 0, 0) + quoted
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    header = IPV4_HEADER.pack(0x45, 0, IPV4_HEADER.size + len(icmp), ident & 0xFFFF, 0, TTL, IP_PROTO_ICMP, 0,
                        ipaddress.IPv4Address(router_ip).packed, src)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return (ETH_HEADER.pack(eth_src, mac_bytes(router_mac), ETH_TYPE_IPV4) + header + icmp).ljust(MIN_FRAME, b"\0")
