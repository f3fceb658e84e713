"""Counters per object on a real bridge: packets sent into the compiled pipeline (packet-outs to OFPP_TABLE, from a
VM's port, through conntrack and its recirculations as traffic goes) move the counter of the rule that let them in,
read back as the controller reads it, and not that of a rule they do not match."""

from __future__ import annotations

import pytest
from conftest import Bridge
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from apps.compiler import compile_all
from apps.counters import counted_flows
from apps.model import Policy
from apps.topology import Topology
from controller import ofwire
from controller.counters import ObjectCounters, read_switch
from controller.programmer import Programmer
from mininet_topos.reach import wait_until
from tests.unit.fabric_cases import S1, TENANT_A, switch
from tests.unit.test_security_groups import GROUPS, a

pytestmark = [pytest.mark.bridge, pytest.mark.timeout(60)]

SERVER, CLIENT = 1, 2
VMS = {SERVER: a(SERVER, "web"), CLIENT: a(CLIENT, "client")}
POLICY = Policy((TENANT_A,), tuple(VMS.values()), GROUPS)
TOPOLOGY = Topology((switch(S1, len(VMS)),))
OFPP_TABLE = 0xFFFFFFF9
RULE = "security_group_rule"


def syn(dport: int, sport: int) -> bytes:
    client, server = VMS[CLIENT], VMS[SERVER]
    return bytes(Ether(src=client.mac_address, dst=server.mac_address) / IP(src=client.ip_address,
                                                                           dst=server.ip_address)
                 / TCP(sport=sport, dport=dport, flags="S"))


def test_a_rules_counter_moves_with_the_packets_it_lets_in_and_no_other(make_bridge) -> None:
    bridge: Bridge = make_bridge("ctr1", len(VMS))
    channel = bridge.connect(S1).channel
    Programmer(timeout=5.0).sync(channel, compile_all(POLICY, TOPOLOGY)[S1])
    counted = counted_flows(POLICY)
    cookies = {cookie for cookie, _ in counted}
    counters = ObjectCounters()

    def read() -> ObjectCounters:
        counters.update(S1, read_switch(channel, cookies, 5.0), counted)
        counters.keep(counted)
        return counters

    assert read().get(RULE, "w-http") == (0, 0)
    frames = [syn(80, 40000 + n) for n in range(3)]  # three connections to the web server's port 80
    channel.send(b"".join(ofwire.packet_out(channel.next_xid(), OFPP_TABLE, frame, in_port=CLIENT)
                          for frame in frames))
    wait_until(lambda: read().get(RULE, "w-http")[0] >= 3, 10, "the http rule to count the three SYNs")
    assert read().get(RULE, "w-http") == (3, sum(len(frame) for frame in frames))
    assert read().get(RULE, "c-out")[0] == 3  # the client's egress: its group allows everything (a shared flow)
    assert read().get(RULE, "w-dns") == (0, 0) and read().get(RULE, "w-ping") == (0, 0)
    # Not to port 80: no rule of the server's lets it in, so the http rule's counter stays where it was.
    channel.send(ofwire.packet_out(channel.next_xid(), OFPP_TABLE, syn(22, 41000), in_port=CLIENT))
    wait_until(lambda: read().get(RULE, "c-out")[0] >= 4, 10, "the client's egress rule to count the fourth SYN")
    assert read().get(RULE, "w-http")[0] == 3
