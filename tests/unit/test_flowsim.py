"""The flow simulator against hand-written flows whose outcome is known (and checked on OVS 3.1)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from apps.flows import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    MULTICAST_BIT,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Flow,
    Move,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    controller,
    match,
    set_field,
)
from apps.flowsim import (
    CONTROLLER,
    Delivery,
    FlowError,
    LoopError,
    SwitchTables,
    packet,
    run,
    run_fabric,
)
from apps.pipeline import REG_NETWORK, REG_OUT_PORT
from apps.topology import Link, Switch, SwitchPort, Topology

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"
MAC_GW = "02:00:00:00:00:fe"


def classify(priority: int, out: int | None = None, goto: str | None = None, **fields) -> Flow:
    actions = (Output(out),) if out is not None else ()
    return Flow("classify", priority, match(**fields), actions, goto)


def line_topology(*dpids: str) -> Topology:
    """Switches in a line: port 1 is a host, port 2 leads right, port 3 leads left."""
    switches = tuple(Switch(dpid, tuple(SwitchPort(f"{dpid}-p{n}", n, MAC_A) for n in (1, 2, 3)))
                     for dpid in dpids)
    links = tuple(Link.between(left, 2, right, 3) for left, right in zip(dpids, dpids[1:], strict=False))
    return Topology(switches, links)


def test_packet_helper_parses_strings_and_rejects_malformed_packets():
    pkt = packet(in_port=1, eth_src=MAC_A, eth_type=ETH_TYPE_IP, ipv4_dst="10.0.0.5", vlan_vid=0)
    assert pkt == {"in_port": 1, "eth_src": 0x02000000000A, "eth_type": ETH_TYPE_IP, "ipv4_dst": 0x0A000005,
                   "nw_ttl": 64}  # an IP packet has a TTL
    with pytest.raises(ValueError, match="ipv4_dst"):
        packet(in_port=1, ipv4_dst="10.0.0.5")  # no eth_type: the flow tests would prove nothing
    with pytest.raises(ValueError, match="OFPVID_PRESENT"):
        packet(in_port=1, vlan_vid=5)
    with pytest.raises(ValueError, match="unknown"):
        packet(in_port=1, colour=3)
    with pytest.raises(ValueError, match="in_port"):
        run([], packet(eth_src=MAC_A))


def test_highest_priority_wins_and_a_miss_drops():
    flows = [classify(10, out=2, in_port=1), classify(20, out=3, in_port=1, eth_src=MAC_A)]
    assert run(flows, packet(in_port=1, eth_src=MAC_A)).ports == [3]
    assert run(flows, packet(in_port=1, eth_src=MAC_B)).ports == [2]
    missed = run(flows, packet(in_port=4, eth_src=MAC_A))
    assert missed.outputs == [] and missed.path == []


def test_masked_matches_and_absent_fields():
    flows = [
        classify(30, out=5, eth_dst=(MULTICAST_BIT, MULTICAST_BIT)),
        classify(20, out=6, eth_type=ETH_TYPE_IP, ipv4_dst="10.1.0.0/16"),
        classify(10, out=7, reg3=0),  # registers start at 0, so this is the table's default
    ]
    tables = SwitchTables(flows)
    ip = {"in_port": 1, "eth_type": ETH_TYPE_IP}
    assert run(tables, packet(eth_dst="ff:ff:ff:ff:ff:ff", **ip)).ports == [5]
    assert run(tables, packet(eth_dst="01:00:5e:00:00:01", **ip)).ports == [5]
    assert run(tables, packet(eth_dst=MAC_B, ipv4_dst="10.1.200.3", **ip)).ports == [6]
    assert run(tables, packet(eth_dst=MAC_B, ipv4_dst="10.2.0.3", **ip)).ports == [7]
    # A packet that does not carry a field cannot match a flow that requires it.
    assert run(tables, packet(**ip)).ports == [7]


def test_goto_follows_the_pipeline_and_registers_carry_between_tables():
    flows = [
        Flow("classify", 100, match(in_port=1), (SetField(REG_NETWORK, 42),), goto="l2_lookup"),
        Flow("l2_lookup", 100, match(eth_dst=MAC_B, **{REG_NETWORK: 42}), (SetField(REG_OUT_PORT, 9),),
             goto="ingress_acl"),
        Flow("ingress_acl", 100, (), goto="port_out"),
        Flow("port_out", 100, match(**{REG_OUT_PORT: 9}), (Output(9),)),
    ]
    result = run(flows, packet(in_port=1, eth_dst=MAC_B))
    assert result.outputs == [(9, {"eth_dst": 0x02000000000B})]  # registers do not leave the switch
    assert [table for table, _ in result.path] == ["classify", "l2_lookup", "ingress_acl", "port_out"]
    assert [flow for _, flow in result.path] == flows
    assert run(flows, packet(in_port=1, eth_dst=MAC_A)).outputs == []


@pytest.mark.parametrize("flow, reason", [
    (Flow("classify", 1, (), goto="port_out"), "not a declared next table"),
    (Flow("l2_lookup", 1, (), goto="classify"), "not a declared next table"),
    (Flow("classify", 1, (), goto="classify"), "not a declared next table"),
    (Flow("egress", 1, ()), "unknown table"),
])
def test_goto_outside_the_declared_pipeline_is_refused(flow, reason):
    with pytest.raises(FlowError, match=reason):
        SwitchTables([flow])


def test_arp_responder_answers_out_the_input_port_with_the_swapped_packet():
    request = packet(in_port=1, eth_src=MAC_A, eth_dst="ff:ff:ff:ff:ff:ff", eth_type=ETH_TYPE_ARP, arp_op=1,
                     arp_sha=MAC_A, arp_spa="10.0.0.1", arp_tha="00:00:00:00:00:00", arp_tpa="10.0.0.254")
    responder = Flow("arp_responder", 100, match(eth_type=ETH_TYPE_ARP, arp_op=1, arp_tpa="10.0.0.254"), (
        Move("eth_src", "eth_dst", 48),
        set_field("eth_src", MAC_GW),
        set_field("arp_op", 2),
        Move("arp_sha", "arp_tha", 48),
        Move("arp_spa", "arp_tpa", 32),
        set_field("arp_sha", MAC_GW),
        set_field("arp_spa", "10.0.0.254"),
        Output(OFPP_IN_PORT),
    ))
    flows = [classify(100, goto="arp_responder", eth_type=ETH_TYPE_ARP), responder]
    result = run(flows, request)
    assert result.outputs == [(1, packet(eth_src=MAC_GW, eth_dst=MAC_A, eth_type=ETH_TYPE_ARP, arp_op=2,
                                         arp_sha=MAC_GW, arp_spa="10.0.0.254", arp_tha=MAC_A,
                                         arp_tpa="10.0.0.1"))]
    assert not result.to_controller


def test_output_to_the_input_port_is_skipped_unless_asked_as_in_port():
    flows = [Flow("classify", 1, (), (Output(1), Output(2), controller()), meter="lldp")]
    result = run(flows, packet(in_port=1, eth_src=MAC_A))
    assert result.ports == [2, CONTROLLER] and result.to_controller
    assert result.outputs[1] == (CONTROLLER, {"in_port": 1, "eth_src": 0x02000000000A})  # a packet-in keeps metadata


def test_move_copies_the_requested_bits_only():
    flows = [Flow("classify", 1, (), (
        SetField("reg1", 0xAAAA_BBBB),
        Move("reg0", "reg1", 8, src_ofs=4, dst_ofs=16),
        Move("reg1", "eth_dst", 32),  # into the low 32 bits of the destination MAC
        Output(2),
    ))]
    result = run(flows, packet(in_port=1, reg0=0x0000_0AB0, eth_dst="11:22:33:44:55:66"))
    assert result.outputs == [(2, {"eth_dst": 0x1122_AAAB_BBBB})]
    with pytest.raises(ValueError, match="lacks"):
        run(flows, packet(in_port=1))  # a partial write into eth_dst, which the packet does not carry


def test_vlan_push_and_pop_across_a_three_switch_line():
    vid = OFPVID_PRESENT | 7
    flows = {
        "s1": [Flow("classify", 1, match(in_port=1), (PushVlan(), SetField("vlan_vid", vid), Output(2)))],
        "s2": [Flow("classify", 1, match(in_port=3, vlan_vid=vid), (Output(2),))],
        "s3": [Flow("classify", 1, match(in_port=3, vlan_vid=vid), (PopVlan(), Output(1)))],
    }
    frame = packet(eth_src=MAC_A, eth_dst=MAC_B)
    assert run(flows["s1"], {**frame, "in_port": 1}).outputs == [(2, {**frame, "vlan_vid": vid})]
    deliveries = run_fabric(flows, line_topology("s1", "s2", "s3"), "s1", {**frame, "in_port": 1})
    assert deliveries == [Delivery("s3", 1, frame)]
    # Untagged frames do not match the trunk flows: the frame stops at s2.
    untagged = {**flows, "s1": [Flow("classify", 1, match(in_port=1), (Output(2),))]}
    assert run_fabric(untagged, line_topology("s1", "s2", "s3"), "s1", {**frame, "in_port": 1}) == []


def test_fabric_delivers_a_broadcast_once_to_every_host_port_of_a_tree():
    flood = Flow("classify", 1, (), (Output(1), Output(2), Output(3)))  # all ports but the input one
    flows = {dpid: [flood] for dpid in ("s1", "s2", "s3")}
    topology = line_topology("s1", "s2", "s3")
    frame = packet(eth_src=MAC_A, eth_dst="ff:ff:ff:ff:ff:ff")
    deliveries = run_fabric(flows, topology, "s2", {**frame, "in_port": 1})
    # Ports 3 of s1 and 2 of s3 are unlinked ends of the line: they count as host ports too.
    assert sorted((d.dpid, d.port) for d in deliveries) == [("s1", 1), ("s1", 3), ("s3", 1), ("s3", 2)]
    assert all(d.packet == frame for d in deliveries)
    # Sending the frame back out its input port as well reflects it over every link: a loop.
    reflect = Flow("classify", 1, (), (Output(OFPP_IN_PORT), *flood.actions))
    with pytest.raises(LoopError):
        run_fabric({dpid: [reflect] for dpid in flows}, topology, "s2", {**frame, "in_port": 1})


def test_flooding_everywhere_on_a_ring_is_a_loop():
    flood = Flow("classify", 1, (), (Output(1), Output(2), Output(3)))
    ring = line_topology("s1", "s2", "s3")
    ring = Topology(ring.switches, ring.links + (Link.between("s3", 2, "s1", 3),))
    with pytest.raises(LoopError, match="again"):
        run_fabric({dpid: [flood] for dpid in ("s1", "s2", "s3")}, ring, "s1", packet(in_port=1))


def test_a_frame_changed_at_every_hop_is_stopped_by_the_hop_limit():
    bounce = [Flow("classify", 1, match(vlan_vid=OFPVID_PRESENT | v),
                   (SetField("vlan_vid", OFPVID_PRESENT | (v + 1)), Output(OFPP_IN_PORT)))
              for v in range(1, 50)]
    start = Flow("classify", 1, match(in_port=1), (PushVlan(), SetField("vlan_vid", OFPVID_PRESENT | 1),
                                                   Output(2)))
    topology = Topology(line_topology("s1", "s2").switches, (Link.between("s1", 2, "s2", 3),))
    flows = {"s1": [start, *bounce], "s2": bounce}
    with pytest.raises(LoopError, match="more than 8 links"):
        run_fabric(flows, topology, "s1", packet(in_port=1))


def test_equal_priority_flows_matching_one_packet_are_ambiguous():
    flows = SwitchTables([classify(10, out=2, in_port=1), classify(10, out=3, eth_src=MAC_A)])
    assert run(flows, packet(in_port=1, eth_src=MAC_B)).ports == [2]
    assert run(flows, packet(in_port=4, eth_src=MAC_A)).ports == [3]
    with pytest.raises(FlowError, match="ambiguous"):
        run(flows, packet(in_port=1, eth_src=MAC_A))


@dataclass(frozen=True)
class Meter:
    meter_id: int


@pytest.mark.parametrize("flow, reason", [
    # Each of these is refused by OVS 3.1 at flow-mod time (ovs-ofctl -O OpenFlow13 add-flow).
    (Flow("classify", 1, match(ipv4_dst="10.0.0.1")), "needs an exact match on eth_type"),
    (Flow("classify", 1, match(eth_type=ETH_TYPE_IP, tcp_dst=80)), "needs an exact match on ip_proto"),
    (Flow("classify", 1, (), (set_field("arp_op", 2),)), "arp_op needs"),
    (Flow("classify", 1, (), (Move("arp_spa", "reg0", 32),)), "arp_spa needs"),
    (Flow("classify", 1, match(eth_type=ETH_TYPE_ARP), (SetField("ip_proto", 1),)), "ip_proto needs"),
    (Flow("classify", 1, match(eth_type=ETH_TYPE_IP), (SetField("ip_proto", 1),)), "read-only"),
    (Flow("classify", 1, (), (SetField("vlan_vid", OFPVID_PRESENT | 5),)), "not known to be tagged"),
    (Flow("classify", 1, match(vlan_vid=(OFPVID_PRESENT, OFPVID_PRESENT)), (SetField("vlan_vid", 5),)),
     "OFPVID_PRESENT"),
    (Flow("classify", 1, match(vlan_vid=OFPVID_PRESENT | 5), (PopVlan(), SetField("vlan_vid", 0x1005))),
     "not known to be tagged"),
    (Flow("classify", 1, (), (PopVlan(),)), "pop_vlan"),
    # Outside what the simulator models: refuse rather than guess.
    (Flow("classify", 1, (), (Output(0xFFFFFFFB),)), "unsupported port"),
    (Flow("classify", 1, (), (Meter(1),)), "unsupported action"),
    (Flow("classify", 1, (), (Move("reg0", "reg1", 8, src_ofs=30),)), "out of range"),
])
def test_flows_ovs_would_refuse_are_refused(flow, reason):
    with pytest.raises(FlowError, match=reason):
        SwitchTables([flow])


def test_accepted_vlan_rewrites_and_duplicate_keys():
    tagged = match(vlan_vid=(OFPVID_PRESENT, OFPVID_PRESENT))
    SwitchTables([Flow("classify", 1, tagged, (SetField("vlan_vid", OFPVID_PRESENT | 5), PopVlan()))])
    with pytest.raises(FlowError, match="two flows"):
        SwitchTables([classify(1, out=2, in_port=1), classify(1, out=3, in_port=1)])


def test_double_tagging_is_not_modelled():
    flows = [Flow("classify", 1, (), (PushVlan(), Output(2)))]
    with pytest.raises(FlowError, match="double tagging"):
        run(flows, packet(in_port=1, vlan_vid=OFPVID_PRESENT | 3))


def test_a_thousand_ports_index_to_their_own_flows():
    ports = range(1, 1001)
    macs = {port: f"02:00:00:00:{port >> 8:02x}:{port & 255:02x}" for port in ports}
    flows = [Flow("classify", 100, match(in_port=port, eth_src=macs[port]), (SetField(REG_OUT_PORT, port),),
                  goto="l2_lookup") for port in ports]
    flows += [Flow("classify", 1, match(in_port=port), ()) for port in ports]  # spoofed source: drop
    flows.append(Flow("l2_lookup", 1, (), (Move(REG_OUT_PORT, "reg5", 32),), goto="ingress_acl"))
    flows.append(Flow("ingress_acl", 1, (), goto="port_out"))
    flows += [Flow("port_out", 1, match(reg5=port), (Output(2000 + port),)) for port in ports]
    tables = SwitchTables(flows)
    for port in ports:
        assert run(tables, packet(in_port=port, eth_src=macs[port])).ports == [2000 + port]
        assert run(tables, packet(in_port=port, eth_src=macs[port % 1000 + 1])).ports == []
