"""What routers' flows hand the controller, as a real OVS 3.1 hands it: the registers they set come in the OF1.3
packet-in's match under os-ken's names (reg1, reg8, reg9), with the table the packet was in; and the frames the
controller answers with (ICMP time-exceeded, ARP requests) are accepted as packet-outs and leave the port."""

from __future__ import annotations

import ipaddress
import re
import struct
import subprocess
import time
from types import SimpleNamespace

import pytest
from ofclient import OFClient, errors_of
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from controller import icmp, ofwire
from controller.runtime import REG_NETWORK, REG_NEXTHOP, REG_ROUTER, packet_in_kind
from mininet_topos import ovs

pytestmark = [pytest.mark.bridge, pytest.mark.timeout(120)]

OFPT_PACKET_IN = 10
OFPP_TABLE = 0xFFFFFFF9
NEIGHBOR = 45  # the table routers' flows resolve next hops in (apps/pipeline.py's "neighbor")
ROUTER_MAC, VM_MAC = "fa:16:3f:00:00:07", "fa:16:3e:00:00:01"
NEXTHOP = "203.0.113.1"


@pytest.fixture(scope="module")
def bridge(make_bridge):
    made = make_bridge("orpi", 2)
    client = OFClient("127.0.0.1", made.listen_port)
    try:
        yield made.name, client
    finally:
        client.close()


def packet_in(client: OFClient):
    """The next packet-in, parsed by os-ken exactly as its event loop parses it for ofapp."""
    deadline = time.monotonic() + 10
    while (message := client.recv()).type != OFPT_PACKET_IN:
        assert time.monotonic() < deadline, "no packet-in"
    datapath = SimpleNamespace(ofproto=ofproto_v1_3, ofproto_parser=ofproto_v1_3_parser, id=1)
    version, msg_type, length, xid = struct.unpack_from("!BBHI", message.data)
    return ofproto_v1_3_parser.OFPPacketIn.parser(datapath, version, msg_type, length, xid, message.data)


def tx_packets(bridge: str, ofport: int) -> int:
    return int(re.search(r"tx pkts=(\d+)", ovs.ofctl("dump-ports", bridge, str(ofport))).group(1))


def test_the_registers_a_flow_set_come_in_the_packet_ins_match(bridge):
    name, client = bridge
    nexthop = int(ipaddress.IPv4Address(NEXTHOP))
    ovs.ofctl("add-flow", name, f"table=0,in_port=1,actions=set_field:100->{REG_NETWORK},"
              f"set_field:7->{REG_ROUTER},set_field:{nexthop}->{REG_NEXTHOP},goto_table:{NEIGHBOR}")
    ovs.ofctl("add-flow", name, f"table={NEIGHBOR},priority=10,actions=controller")
    frame = bytes(Ether(src=VM_MAC, dst=ROUTER_MAC) / IP(src="10.0.0.11", dst=NEXTHOP, ttl=9) / UDP())
    client.send(ofwire.packet_out(1, OFPP_TABLE, frame, in_port=1))
    msg = packet_in(client)
    fields = dict(msg.match.items())  # what ofapp hands the runtime
    assert msg.table_id == NEIGHBOR and packet_in_kind(msg.table_id) == "neighbor"
    assert msg.reason == ofproto_v1_3.OFPR_ACTION
    assert fields["in_port"] == 1
    assert (fields[REG_NETWORK], fields[REG_ROUTER], fields[REG_NEXTHOP]) == (100, 7, nexthop)
    assert "reg2" not in fields  # only the registers that are not zero
    assert bytes(msg.data) == frame


def test_the_controllers_answers_are_accepted_and_leave_the_port(bridge):
    name, client = bridge
    subprocess.run(["ip", "link", "set", f"{name}p2", "up"], check=True)  # a down interface drops what it is sent
    original = bytes(Ether(src=VM_MAC, dst=ROUTER_MAC) / IP(src="10.0.0.11", dst="8.8.8.8", ttl=1) / UDP())
    before = tx_packets(name, 2)
    client.send(ofwire.packet_out(2, 2, icmp.time_exceeded(original, ROUTER_MAC, "10.0.0.1"))
                + ofwire.packet_out(3, 2, icmp.arp_request(ROUTER_MAC, "203.0.113.5", NEXTHOP)))
    assert errors_of(client.barrier(4)) == {}
    deadline = time.monotonic() + 10
    while tx_packets(name, 2) < before + 2:
        assert time.monotonic() < deadline, "the packet-outs did not leave port 2"
        time.sleep(0.05)
