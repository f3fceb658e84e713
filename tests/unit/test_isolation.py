"""Isolation and port security, asserted as packet outcomes through the flow-table simulator."""

from __future__ import annotations

import dataclasses

import pytest

from apps.compiler import compile_all
from apps.flows import ETH_TYPE_ARP, ETH_TYPE_IP, ETH_TYPE_LLDP, OFPVID_PRESENT, ip_to_int, mac_to_int, set_field
from apps.flowsim import CONTROLLER, SwitchTables, packet, run, run_fabric
from apps.model import Policy
from apps.topology import Link, Switch, SwitchPort, Topology
from tests.unit.fabric_cases import (
    OPEN,
    S1,
    S2,
    S3,
    TENANT_A,
    TENANT_B,
    line_of_three,
    mac,
    one_switch,
    ring_of_three,
    vm,
)

BROADCAST = "ff:ff:ff:ff:ff:ff"


def tables(policy: Policy, topology: Topology) -> dict[str, SwitchTables]:
    return {dpid: SwitchTables(flows.values()) for dpid, flows in compile_all(policy, topology).items()}


def spoofed(pkt: dict[str, int], **fields: str) -> dict[str, int]:
    return {**pkt, **{name: set_field(name, value).value for name, value in fields.items()}}


def ip_packet(in_port: int, src: str, dst: str, ip_src: str, ip_dst: str) -> dict[str, int]:
    return packet(in_port=in_port, eth_src=src, eth_dst=dst, eth_type=ETH_TYPE_IP, ipv4_src=ip_src, ipv4_dst=ip_dst,
                  ip_proto=6, tcp_src=40000, tcp_dst=80)


def arp_request(in_port: int, src_mac: str, src_ip: str, target_ip: str) -> dict[str, int]:
    return packet(in_port=in_port, eth_src=src_mac, eth_dst=BROADCAST, eth_type=ETH_TYPE_ARP, arp_op=1,
                  arp_spa=src_ip, arp_sha=src_mac, arp_tpa=target_ip, arp_tha="00:00:00:00:00:00")


@pytest.fixture
def single() -> dict[str, SwitchTables]:
    return tables(*one_switch())


def test_unicast_reaches_only_the_destination_port(single):
    result = run(single[S1], ip_packet(1, mac("a", 1), mac("a", 2), "10.0.0.2", "10.0.0.3"))
    assert result.ports == [2]


def test_unicast_to_another_tenants_mac_is_dropped(single):
    assert run(single[S1], ip_packet(1, mac("a", 1), mac("b", 2), "10.0.0.2", "10.0.0.3")).ports == []


def test_unknown_unicast_is_dropped_not_flooded(single):
    assert run(single[S1], ip_packet(1, mac("a", 1), "02:99:00:00:00:01", "10.0.0.2", "10.0.0.9")).ports == []


def test_broadcast_stays_in_the_network(single):
    result = run(single[S1], ip_packet(1, mac("a", 1), BROADCAST, "10.0.0.2", "10.0.0.255"))
    assert result.ports == [2]
    result = run(single[S1], ip_packet(3, mac("b", 1), BROADCAST, "10.0.0.2", "10.0.0.255"))
    assert result.ports == [4]


def test_arp_for_a_known_address_is_answered_by_the_switch_with_the_tenants_own_mac(single):
    """Both tenants use 10.0.0.3: each gets its own network's answer, nothing is flooded."""
    for in_port, tenant, peer_mac in ((1, "a", mac("a", 2)), (3, "b", mac("b", 2))):
        result = run(single[S1], arp_request(in_port, mac(tenant, 1), "10.0.0.2", "10.0.0.3"))
        assert result.ports == [in_port]
        (_, reply), = result.outputs
        assert reply["arp_op"] == 2
        assert reply["eth_src"] == reply["arp_sha"] == mac_to_int(peer_mac)
        assert reply["eth_dst"] == reply["arp_tha"] == mac_to_int(mac(tenant, 1))
        assert (reply["arp_spa"], reply["arp_tpa"]) == (ip_to_int("10.0.0.3"), ip_to_int("10.0.0.2"))


def test_arp_for_an_unknown_address_floods_only_the_network(single):
    assert run(single[S1], arp_request(1, mac("a", 1), "10.0.0.2", "10.0.0.99")).ports == [2]


@pytest.mark.parametrize("spoof", [
    {"eth_src": "02:00:00:00:66:66"},                      # foreign MAC
    {"ipv4_src": "10.0.0.3"},                              # a neighbour's IP
    {"ipv4_src": "10.0.0.200"},                            # an unused IP
])
def test_port_security_drops_spoofed_ip(single, spoof):
    pkt = spoofed(ip_packet(1, mac("a", 1), mac("a", 2), "10.0.0.2", "10.0.0.3"), **spoof)
    assert run(single[S1], pkt).ports == []


@pytest.mark.parametrize("spoof", [{"arp_spa": "10.0.0.3"}, {"arp_sha": "02:00:00:00:66:66"},
                                   {"eth_src": "02:00:00:00:66:66"}])
def test_port_security_drops_spoofed_arp(single, spoof):
    pkt = spoofed(arp_request(1, mac("a", 1), "10.0.0.2", "10.0.0.99"), **spoof)
    assert run(single[S1], pkt).ports == []


def dhcp_discover(in_port: int, src_mac: str) -> dict[str, int]:
    return packet(in_port=in_port, eth_src=src_mac, eth_dst=BROADCAST, eth_type=ETH_TYPE_IP, ipv4_src="0.0.0.0",
                  ipv4_dst="255.255.255.255", ip_proto=17, udp_src=68, udp_dst=67)


def test_a_port_may_ask_for_its_address_by_dhcp_but_only_from_its_own_mac(single):
    assert run(single[S1], dhcp_discover(1, mac("a", 1))).ports == [2]
    assert run(single[S1], dhcp_discover(1, mac("a", 2))).ports == []
    other = packet(in_port=1, eth_src=mac("a", 1), eth_dst=BROADCAST, eth_type=ETH_TYPE_IP, ipv4_src="0.0.0.0",
                   ipv4_dst="255.255.255.255", ip_proto=17, udp_src=68, udp_dst=53)
    assert run(single[S1], other).ports == []


def test_other_ethertypes_and_tagged_frames_from_a_vm_are_dropped(single):
    ipv6 = packet(in_port=1, eth_src=mac("a", 1), eth_dst=BROADCAST, eth_type=0x86DD)
    assert run(single[S1], ipv6).ports == []
    tagged = ip_packet(1, mac("a", 1), BROADCAST, "10.0.0.2", "10.0.0.255")
    tagged["vlan_vid"] = OFPVID_PRESENT | TENANT_B.segmentation_id
    assert run(single[S1], tagged).ports == []


@pytest.mark.parametrize("secure", [True, False], ids=["port-security", "no-port-security"])
@pytest.mark.parametrize("tag", [TENANT_A.segmentation_id, TENANT_B.segmentation_id],
                         ids=["own-tag", "other-tenants-tag"])
@pytest.mark.parametrize("dst", [BROADCAST, mac("a", 2)], ids=["broadcast", "unicast"])
def test_a_vm_port_takes_untagged_frames_only_with_or_without_port_security(secure, tag, dst):
    switch = tables(*one_switch(secure_a1=secure))[S1]
    untagged = ip_packet(1, mac("a", 1), dst, "10.0.0.2", "10.0.0.3")
    assert run(switch, untagged).ports == [2]
    assert run(switch, {**untagged, "vlan_vid": OFPVID_PRESENT | tag}).ports == []


def test_disabled_port_security_lets_any_source_through():
    switch = tables(*one_switch(secure_a1=False))[S1]
    spoofed = ip_packet(1, "02:00:00:00:66:66", mac("a", 2), "10.0.0.77", "10.0.0.3")
    assert run(switch, spoofed).ports == [2]


def test_lldp_reaches_the_controller_only_from_unbound_interfaces():
    policy, topology = one_switch()
    spare = SwitchPort("s1-eth5", 5, "aa:00:00:00:01:05")
    switch = tables(policy, Topology((Switch(S1, (*topology.switches[0].ports, spare)),)))[S1]
    lldp = packet(in_port=4, eth_src="aa:00:00:00:00:09", eth_dst="01:80:c2:00:00:0e", eth_type=ETH_TYPE_LLDP)
    assert run(switch, lldp).ports == []  # a VM's port: dropped at the switch
    assert run(switch, {**lldp, "in_port": 5}).ports == [CONTROLLER]


def test_deleted_port_gets_nothing():
    policy, topology = one_switch()
    without_a2 = Policy(policy.networks, tuple(p for p in policy.ports if p.id != "a2"), policy.security_groups)
    switch = tables(without_a2, topology)[S1]
    assert run(switch, ip_packet(1, mac("a", 1), mac("a", 2), "10.0.0.2", "10.0.0.3")).ports == []
    assert run(switch, arp_request(1, mac("a", 1), "10.0.0.2", "10.0.0.3")).ports == []  # no answer, no A port left
    assert run(switch, ip_packet(2, mac("a", 2), mac("a", 1), "10.0.0.3", "10.0.0.2")).ports == []


def test_unbound_interface_is_down_and_unreachable():
    policy, topology = one_switch()
    gone = Topology((Switch(S1, tuple(p for p in topology.switches[0].ports if p.ofport != 2)),))
    switch = tables(policy, gone)[S1]
    assert run(switch, ip_packet(1, mac("a", 1), mac("a", 2), "10.0.0.2", "10.0.0.3")).ports == []


def delivered(fabric, topology, dpid, pkt):
    return sorted((d.dpid, d.port) for d in run_fabric(fabric, topology, dpid, pkt))


@pytest.mark.parametrize("case", [line_of_three, ring_of_three])
def test_tenant_traffic_crosses_switches_and_stays_isolated(case):
    policy, topology = case()
    fabric = tables(policy, topology)
    assert delivered(fabric, topology, S1, ip_packet(1, mac("a", 1), mac("a", 3), "10.0.0.2", "10.0.0.4")) == [(S3, 1)]
    assert delivered(fabric, topology, S1, ip_packet(1, mac("a", 1), mac("b", 3), "10.0.0.2", "10.0.0.4")) == []
    assert delivered(fabric, topology, S3, ip_packet(2, mac("b", 3), mac("b", 1), "10.0.0.4", "10.0.0.2")) == [(S1, 2)]


@pytest.mark.parametrize("case", [line_of_three, ring_of_three])
def test_broadcast_reaches_each_port_of_the_network_once(case):
    policy, topology = case()
    fabric = tables(policy, topology)
    result = delivered(fabric, topology, S2, arp_request(1, mac("a", 2), "10.0.0.3", "10.0.0.99"))
    assert result == [(S1, 1), (S3, 1)]
    result = delivered(fabric, topology, S1, ip_packet(2, mac("b", 1), BROADCAST, "10.0.0.2", "10.0.0.255"))
    assert result == [(S2, 2), (S3, 2)]


def test_frames_arrive_untagged_at_the_vm():
    policy, topology = line_of_three()
    deliveries = run_fabric(tables(policy, topology), topology, S1,
                            ip_packet(1, mac("a", 1), mac("a", 3), "10.0.0.2", "10.0.0.4"))
    assert [d.packet.get("vlan_vid", 0) for d in deliveries] == [0]


def test_a_vm_port_cannot_inject_into_a_trunk_network():
    """A tagged frame entering on a VM port is not treated like a frame from a link."""
    policy, topology = line_of_three()
    pkt = ip_packet(1, mac("a", 1), mac("b", 3), "10.0.0.2", "10.0.0.4")
    pkt["vlan_vid"] = OFPVID_PRESENT | TENANT_B.segmentation_id
    assert delivered(tables(policy, topology), topology, S1, pkt) == []


def test_a_link_going_down_reroutes_around_the_ring():
    policy, topology = ring_of_three()
    s1 = topology.switches[0]
    ports = tuple(dataclasses.replace(p, up=False) if p.ofport == 3 else p for p in s1.ports)
    broken = Topology((Switch(S1, ports), *topology.switches[1:]), topology.links)
    fabric = tables(policy, broken)
    assert delivered(fabric, broken, S1, ip_packet(1, mac("a", 1), mac("a", 2), "10.0.0.2", "10.0.0.3")) == [(S2, 1)]
    assert delivered(fabric, broken, S1, arp_request(1, mac("a", 1), "10.0.0.2", "10.0.0.99")) == [(S2, 1), (S3, 1)]


def test_unknown_tag_on_a_link_is_dropped():
    policy, topology = line_of_three()
    pkt = ip_packet(3, mac("a", 1), mac("a", 2), "10.0.0.2", "10.0.0.3")
    pkt["vlan_vid"] = OFPVID_PRESENT | 999
    assert run(tables(policy, topology)[S2], pkt).ports == []


def test_tenants_with_the_same_segment_layout_do_not_share_flows():
    policy, topology = one_switch()
    flows = compile_all(policy, topology)[S1]
    nets = {TENANT_A.segmentation_id, TENANT_B.segmentation_id}
    regs = {value for flow in flows.values() for name, value, _ in flow.match if name == "reg1"}
    assert regs == nets


def test_flow_count_grows_linearly_with_ports():
    def count(n_ports: int) -> int:
        ports_per_switch = n_ports // 2
        switches = tuple(Switch(dpid, tuple(SwitchPort(f"p{i}", i, "aa:00:00:00:00:01")
                                            for i in range(1, ports_per_switch + 2)))
                         for dpid in (S1, S2))
        topology = Topology(switches, (Link.between(S1, ports_per_switch + 1, S2, ports_per_switch + 1),))
        ports = tuple(vm(TENANT_A if i % 2 else TENANT_B, i, (S1, S2)[i % 2], f"p{i // 2 + 1}",
                         ip=f"10.0.{i // 250}.{i % 250 + 2}") for i in range(n_ports))
        return sum(len(f) for f in compile_all(Policy((TENANT_A, TENANT_B), ports, (OPEN,)), topology).values())

    small, mid, large = count(100), count(550), count(1000)
    assert large - mid == mid - small  # the same flows for every 450 ports more: linear (a per-pair scheme is not)
    assert (large - small) / 900 < 7   # and few per port
