"""The frames a router sends from the controller, read back by scapy (an independent parser): ICMP
time-exceeded with the right addresses, quote and checksums, the packets it must not answer, ARP both ways."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.l2 import ARP, Dot1Q, Ether

from controller import icmp

ROUTER_MAC, ROUTER_IP = "fa:16:3f:00:00:07", "10.0.0.1"
HOST_MAC = "fa:16:3e:00:00:01"


def sent(payload, **ip) -> bytes:
    return bytes(Ether(src=HOST_MAC, dst=ROUTER_MAC) / IP(src="10.0.0.11", dst="203.0.113.9", ttl=1, **ip) / payload)


def test_checksum_of_a_header_holding_its_checksum_is_zero() -> None:
    header = bytes(IP(src="10.0.0.11", dst="10.0.0.12"))
    assert icmp.checksum(header) == 0
    assert icmp.checksum(b"\x01") == icmp.checksum(b"\x01\x00")  # odd lengths pad with a zero byte


@pytest.mark.parametrize("payload", [UDP(sport=40000, dport=33434) / (b"x" * 100), TCP(sport=40000, dport=80),
                                     ICMP(type=8, id=7, seq=1) / b"ping"], ids=["udp", "tcp", "echo"])
def test_time_exceeded_goes_back_to_the_sender_quoting_its_header(payload) -> None:
    original = sent(payload)
    reply = Ether(icmp.time_exceeded(original, ROUTER_MAC, ROUTER_IP, ident=5))
    assert (reply.src, reply.dst, reply.type) == (ROUTER_MAC, HOST_MAC, 0x0800)
    ip = reply[IP]
    assert (ip.src, ip.dst, ip.ttl, ip.proto, ip.id, ip.flags, ip.frag) == (ROUTER_IP, "10.0.0.11", 64, 1, 5, 0, 0)
    assert (reply[ICMP].type, reply[ICMP].code) == (11, 0)
    quoted = bytes(Ether(original)[IP])[:28]
    assert bytes(reply[ICMP])[8:] == quoted and ip.len == 20 + 8 + 28
    assert isinstance(reply[ICMP].payload, IPerror) and reply[IPerror].dst == "203.0.113.9"
    # Checksums: scapy recomputes them when they are deleted; ours must equal its.
    checked = reply.copy()
    del checked[IP].chksum, checked[ICMP].chksum
    rebuilt = Ether(bytes(checked))
    assert (rebuilt[IP].chksum, rebuilt[ICMP].chksum) == (ip.chksum, reply[ICMP].chksum)


def test_a_short_packet_is_quoted_whole_and_the_reply_padded() -> None:
    original = sent(UDP(sport=1, dport=2))  # 28 bytes of IP: header and UDP header, nothing more
    reply = icmp.time_exceeded(original, ROUTER_MAC, ROUTER_IP)
    assert len(reply) >= 60 and Ether(reply)[UDPerror].dport == 2
    assert bytes(Ether(reply)[ICMP])[8:8 + 28] == bytes(Ether(original)[IP])


def test_a_tagged_frame_is_read_past_its_tag() -> None:
    original = bytes(Ether(src=HOST_MAC, dst=ROUTER_MAC) / Dot1Q(vlan=5) / IP(src="10.0.0.11", dst="8.8.8.8", ttl=1)
                     / UDP())
    assert Ether(icmp.time_exceeded(original, ROUTER_MAC, ROUTER_IP))[IP].dst == "10.0.0.11"


@pytest.mark.parametrize(("frame", "reason"), [
    (sent(ICMP(type=3, code=1) / bytes(IP() / UDP())), "ICMP error"),
    (sent(ICMP(type=11) / bytes(IP() / UDP())), "ICMP error"),
    (sent(UDP(), frag=10), "fragment"),
    (bytes(Ether(src=HOST_MAC, dst=ROUTER_MAC) / IP(src="0.0.0.0", dst="10.0.0.1") / UDP()), "one host"),
    (bytes(Ether(src=HOST_MAC, dst=ROUTER_MAC) / IP(src="10.0.0.11", dst="224.0.0.5") / UDP()), "one host"),
    (bytes(Ether(src=HOST_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src="10.0.0.11", dst="10.0.0.9") / UDP()), "multicast"),
    (bytes(Ether(src="01:00:5e:00:00:01", dst=ROUTER_MAC) / IP(src="10.0.0.11", dst="10.0.0.9") / UDP()),
     "multicast Ethernet source"),
    (bytes(Ether(src=HOST_MAC, dst=ROUTER_MAC) / ARP()), "not IPv4"),
    (bytes(Ether(src=HOST_MAC, dst=ROUTER_MAC, type=0x0800) / b"\x45\x00"), "IPv4 header"),
    (b"\x00" * 10, "Ethernet"),
])
def test_what_no_time_exceeded_answers(frame: bytes, reason: str) -> None:
    with pytest.raises(icmp.NotAnswered, match=reason):
        icmp.time_exceeded(frame, ROUTER_MAC, ROUTER_IP)


def test_an_arp_request_is_a_broadcast_who_has() -> None:
    frame = icmp.arp_request(ROUTER_MAC, "203.0.113.5", "203.0.113.1")
    parsed = Ether(frame)
    assert len(frame) == 60 and (parsed.src, parsed.dst) == (ROUTER_MAC, "ff:ff:ff:ff:ff:ff")
    arp = parsed[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (1, ROUTER_MAC, "203.0.113.5", "00:00:00:00:00:00",
                                                                  "203.0.113.1")


def test_an_arp_reply_is_parsed_and_anything_else_is_none() -> None:
    reply = bytes(Ether(src="02:00:00:00:00:01", dst=ROUTER_MAC) / ARP(
        op=2, hwsrc="02:00:00:00:00:01", psrc="203.0.113.1", hwdst=ROUTER_MAC, pdst="203.0.113.5"))
    assert icmp.parse_arp(reply) == icmp.Arp(2, "02:00:00:00:00:01", ROUTER_MAC, "02:00:00:00:00:01", "203.0.113.1",
                                             ROUTER_MAC, "203.0.113.5")
    assert icmp.parse_arp(icmp.arp_request(ROUTER_MAC, "203.0.113.5", "203.0.113.1")).op == 1
    assert icmp.parse_arp(sent(UDP())) is None
    assert icmp.parse_arp(reply[:30]) is None
    assert icmp.parse_arp(b"\x00" * 4) is None
    assert icmp.parse_arp(bytes(Ether() / ARP(hwtype=6))) is None
