"""The flow simulator's resubmit, conntrack and conjunctive matches, against outcomes checked on OVS 3.1.

Where a docstring says "OVS 3.1", the same flows (table numbers from apps.pipeline) were installed on
a netdev bridge and the outcome compared: with ofproto/trace (--ct-next for conntrack), or for
connection states by sending the packets with packet-out and reading the flow counters.
"""

from __future__ import annotations

import pytest

from apps.flows import (
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_RPL,
    CT_TRK,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    IP_PROTO,
    Conjunction,
    Ct,
    Flow,
    Move,
    Output,
    Resubmit,
    SetField,
    ct_state,
    match,
    set_field,
)
from apps.flowsim import (
    MAX_DEPTH,
    Conntrack,
    Delivery,
    FlowError,
    SwitchTables,
    packet,
    run,
    run_fabric,
)
from apps.pipeline import REG_NETWORK, REG_SRC_ZONE, Table
from apps.topology import Switch, SwitchPort, Topology

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"
IP_A, IP_B = "10.0.0.1", "10.0.0.2"
IP = {"eth_type": ETH_TYPE_IP}
TO_EGRESS = [Flow("classify", 1, (), goto="arp_responder"), Flow("arp_responder", 1, (), goto="egress_acl")]


def ip_packet(src: str, dst: str, proto: str | int, in_port: int = 1, **fields: int) -> dict[str, int]:
    """An IPv4 packet; `fields` give ports (sport/dport) or the ICMP type."""
    number = IP_PROTO.get(proto, proto)
    layer4 = {"tcp": ("tcp_src", "tcp_dst"), "udp": ("udp_src", "udp_dst")}.get(proto)
    if layer4:
        fields = {layer4[0]: fields.pop("sport"), layer4[1]: fields.pop("dport"), **fields}
    return packet(in_port=in_port, eth_src=MAC_A, eth_dst=MAC_B, ip_proto=number, ipv4_src=src, ipv4_dst=dst,
                  **IP, **fields)


# --- resubmit ---------------------------------------------------------------------------------------------

def test_resubmit_runs_a_table_as_a_subroutine_and_its_changes_persist():
    """OVS 3.1 (ofproto/trace): outputs 2, 4, 3, 5, all with the rewritten eth_dst."""
    flows = [
        Flow("classify", 1, (), (SetField(REG_NETWORK, 5), Resubmit("l2_lookup"), Output(3)), goto="arp_responder"),
        # The subroutine's own goto runs inside it, before the caller's next action.
        Flow("l2_lookup", 1, match(**{REG_NETWORK: 5}), (set_field("eth_dst", MAC_B), Output(2),
                                                          SetField(REG_NETWORK, 6)), goto="ingress_acl"),
        Flow("ingress_acl", 1, match(**{REG_NETWORK: 6}), (Output(4),)),
        # A table miss inside a resubmit returns to the caller (egress_acl has no flows).
        Flow("arp_responder", 1, match(eth_dst=MAC_B, **{REG_NETWORK: 6}), (Resubmit("egress_acl"), Output(5))),
    ]
    result = run(flows, packet(in_port=1, eth_dst=MAC_A))
    assert result.outputs == [(port, {"eth_dst": 0x02000000000B}) for port in (2, 4, 3, 5)]
    assert [table for table, _ in result.path] == ["classify", "l2_lookup", "ingress_acl", "arp_responder"]


@pytest.mark.parametrize("flow", [
    Flow("classify", 1, (), (Resubmit("egress_acl"),)),
    Flow("l2_lookup", 1, (), (Resubmit("classify"),)),
    Flow("l2_lookup", 1, (), (Resubmit("l2_lookup"),)),
])
def test_resubmit_only_to_a_declared_next_table(flow):
    with pytest.raises(FlowError, match="resubmit to .* not a declared next table"):
        SwitchTables([flow])


LOOP = (Table("loop", 0, "resubmits to itself", ("loop",)),)


def counting_loop(resubmits: int) -> list[Flow]:
    """Each pass through table `loop` counts in reg0 and resubmits to `loop` again, `resubmits` times."""
    flows = [Flow("loop", 1, match(reg0=n), (SetField("reg0", n + 1), Resubmit("loop"))) for n in range(resubmits)]
    return [*flows, Flow("loop", 1, match(reg0=resubmits), (Output(2),))]


def test_resubmits_back_nest_at_most_64_deep():
    """OVS 3.1 (ofproto/trace): 64 nested resubmit(,0) from table 0 pass, the 65th is "over max
    translation depth 64" and the packet is dropped."""
    assert run(SwitchTables(counting_loop(MAX_DEPTH), LOOP), packet(in_port=1)).ports == [2]
    with pytest.raises(FlowError, match="depth 64"):
        run(SwitchTables(counting_loop(MAX_DEPTH + 1), LOOP), packet(in_port=1))


def test_resubmits_forward_do_not_nest_deeper():
    """OVS 3.1 (ofproto/trace): tables 0..99 each resubmit to the next, and table 100 outputs."""
    chain = tuple(Table(f"t{n}", n, "resubmits onward", (f"t{n + 1}",)) for n in range(100)) + (
        Table("t100", 100, "outputs", ()),)
    flows = [Flow(f"t{n}", 1, (), (Resubmit(f"t{n + 1}"),)) for n in range(100)]
    assert run(SwitchTables([*flows, Flow("t100", 1, (), (Output(2),))], chain), packet(in_port=1)).ports == [2]


def test_a_pass_allows_4096_resubmits_and_gotos():
    """OVS 3.1 (ofproto/trace): 64 resubmits to a table that resubmits 63 times pass (4096); one more
    resubmit, or a goto, is "over 4096 resubmit actions"."""
    fan_out = [
        Flow("arp_responder", 1, (), (Resubmit("egress_acl"),) * 63),
        Flow("egress_acl", 1, (), (Output(2),)),
        Flow("l2_lookup", 1, (), (Output(3),)),
    ]
    fan_in = (Resubmit("arp_responder"),) * 64
    assert run([Flow("classify", 1, (), fan_in), *fan_out], packet(in_port=1)).ports == [2] * 64 * 63
    for extra in [{"actions": (*fan_in, Resubmit("l2_lookup"))}, {"actions": fan_in, "goto": "l2_lookup"}]:
        with pytest.raises(FlowError, match="over 4096 resubmit actions"):
            run([Flow("classify", 1, (), **extra), *fan_out], packet(in_port=1))


# --- conntrack --------------------------------------------------------------------------------------------

STATES = {"new": CT_TRK | CT_NEW, "est": CT_TRK | CT_EST, "rpl": CT_TRK | CT_EST | CT_RPL, "inv": CT_TRK | CT_INV}
STATE_PORTS = {name: 10 + n for n, name in enumerate(STATES)}
ZONES, MARKS = (1, 2), (0, 7, 9)
LOOKUP = Ct(zone_reg=REG_SRC_ZONE, table="egress_ct")
COMMIT = Ct(commit=True, zone_reg=REG_SRC_ZONE, set_mark=7)


def probe_port(zone: int, mark: int) -> int:
    return 1000 + 100 * zone + mark


def firewall(commits: dict[str, Ct]) -> list[Flow]:
    """Port 1 is zone 1 (in bits 0-15 of its register), port 2 zone 2. egress_acl sends IP through
    conntrack; egress_ct outputs to a port naming the ct_state, then router_in to one naming ct_zone and
    ct_mark, then runs the commit given for that state (if any)."""
    flows = [
        Flow("classify", 1, match(in_port=1), (SetField(REG_SRC_ZONE, 0x7_0001),), goto="arp_responder"),
        Flow("classify", 1, match(in_port=2), (SetField(REG_SRC_ZONE, 2),), goto="arp_responder"),
        TO_EGRESS[1],
        Flow("egress_acl", 1, match(**IP), (LOOKUP,)),
    ]
    flows += [Flow("egress_ct", 1, match(ct_state=(state, 0xFF), **IP),
                   (Output(STATE_PORTS[name]), Resubmit("router_in"), *([commits[name]] if name in commits else [])))
              for name, state in STATES.items()]
    flows += [Flow("router_in", 1, match(ct_zone=zone, ct_mark=mark), (Output(probe_port(zone, mark)),))
              for zone in ZONES for mark in MARKS]
    return flows


def conntrack_view(tables: SwitchTables, conntrack: Conntrack, pkt: dict[str, int]) -> tuple[str, int, int]:
    """(ct_state name, ct_zone, ct_mark) that egress_ct saw for `pkt`."""
    (state_port, _), (probe, _) = run(tables, pkt, conntrack).outputs
    state = next(name for name, port in STATE_PORTS.items() if port == state_port)
    return state, (probe - 1000) // 100, (probe - 1000) % 100


FORWARD = {
    "udp": ip_packet(IP_A, IP_B, "udp", sport=1000, dport=2000),
    "tcp": ip_packet(IP_A, IP_B, "tcp", sport=3000, dport=22),
    "gre": ip_packet(IP_A, IP_B, 47),
}
BACKWARD = {
    "udp": ip_packet(IP_B, IP_A, "udp", sport=2000, dport=1000),
    "tcp": ip_packet(IP_B, IP_A, "tcp", sport=22, dport=3000),
    "gre": ip_packet(IP_B, IP_A, 47),
}


@pytest.mark.parametrize("proto", FORWARD)
def test_a_connection_is_new_until_its_first_reply_then_established(proto):
    """OVS 3.1 (packet-out through a netdev bridge, same flows): new (commit sets mark 7), new again
    with mark 7, then the reply est+rpl, then est; for UDP, TCP (SYN, SYN, SYN-ACK, ACK) and GRE."""
    tables, conntrack = SwitchTables(firewall({"new": COMMIT})), Conntrack()
    views = [conntrack_view(tables, conntrack, pkt)
             for pkt in (FORWARD[proto], FORWARD[proto], BACKWARD[proto], FORWARD[proto], BACKWARD[proto])]
    assert views == [("new", 1, 0), ("new", 1, 7), ("rpl", 1, 7), ("est", 1, 7), ("rpl", 1, 7)]
    # Another source port is another connection.
    if proto != "gre":
        other = ip_packet(IP_A, IP_B, proto, sport=3001, dport=FORWARD[proto][f"{proto}_dst"])
        assert conntrack_view(tables, conntrack, other) == ("new", 1, 0)


def test_icmp_echo_replies_pair_with_requests_and_a_lone_reply_is_invalid():
    """OVS 3.1 (packet-out): a reply before any request is inv; a request from the other side is a
    connection of its own."""
    tables, conntrack = SwitchTables(firewall({"new": COMMIT})), Conntrack()
    request, reply = ip_packet(IP_A, IP_B, "icmp", icmpv4_type=8), ip_packet(IP_B, IP_A, "icmp", icmpv4_type=0)
    views = [conntrack_view(tables, conntrack, pkt) for pkt in (reply, request, request, reply, request)]
    assert views == [("inv", 1, 0), ("new", 1, 0), ("new", 1, 7), ("rpl", 1, 7), ("est", 1, 7)]
    assert conntrack_view(tables, conntrack, ip_packet(IP_B, IP_A, "icmp", icmpv4_type=8)) == ("new", 1, 0)
    with pytest.raises(ValueError, match="ICMP type 3 is not modelled"):
        run(tables, ip_packet(IP_A, IP_B, "icmp", icmpv4_type=3), conntrack)
    with pytest.raises(ValueError, match="needs icmpv4_type"):
        run(tables, ip_packet(IP_A, IP_B, "icmp"), conntrack)


def test_lookups_without_commit_create_no_connection():
    tables, conntrack = SwitchTables(firewall({})), Conntrack()
    views = [conntrack_view(tables, conntrack, pkt) for pkt in (FORWARD["udp"], BACKWARD["udp"], FORWARD["udp"])]
    assert views == [("new", 1, 0)] * 3


def test_zones_keep_separate_connections():
    tables, conntrack = SwitchTables(firewall({"new": COMMIT})), Conntrack()
    assert conntrack_view(tables, conntrack, FORWARD["udp"]) == ("new", 1, 0)
    assert conntrack_view(tables, conntrack, {**BACKWARD["udp"], "in_port": 2}) == ("new", 2, 0)
    assert conntrack_view(tables, conntrack, BACKWARD["udp"]) == ("rpl", 1, 7)
    # Port 2's new packet committed B->A in zone 2, so A->B from port 2 is its reply.
    assert conntrack_view(tables, conntrack, {**FORWARD["udp"], "in_port": 2}) == ("rpl", 2, 7)


def test_commit_sets_the_mark_of_an_existing_connection_and_keeps_it_without_set_mark():
    commits = {"new": COMMIT, "rpl": Ct(commit=True, zone_reg=REG_SRC_ZONE, set_mark=9),
               "est": Ct(commit=True, zone_reg=REG_SRC_ZONE)}
    tables, conntrack = SwitchTables(firewall(commits)), Conntrack()
    views = [conntrack_view(tables, conntrack, pkt) for pkt in (FORWARD["udp"], BACKWARD["udp"], FORWARD["udp"],
                                                                FORWARD["udp"])]
    assert views == [("new", 1, 0), ("rpl", 1, 7), ("est", 1, 9), ("est", 1, 9)]


def test_a_masked_commit_sets_only_the_bits_of_its_mask():
    """OVS 3.1 (packet-out, then dpctl/dump-conntrack): ct(commit,exec(set_field:0x8/0xe->ct_mark)) on a
    connection marked 7 leaves it marked 9."""
    commits = {"new": COMMIT, "rpl": Ct(commit=True, zone_reg=REG_SRC_ZONE, set_mark=8, mark_mask=0xE),
               "est": Ct(commit=True, zone_reg=REG_SRC_ZONE, set_mark=0, mark_mask=0x9)}
    tables, conntrack = SwitchTables(firewall(commits)), Conntrack()
    views = [conntrack_view(tables, conntrack, pkt) for pkt in (FORWARD["udp"], BACKWARD["udp"], FORWARD["udp"],
                                                                FORWARD["udp"])]
    assert views == [("new", 1, 0), ("rpl", 1, 7), ("est", 1, 9), ("est", 1, 0)]


def test_a_masked_set_field_sets_only_the_bits_of_its_mask():
    flows = [Flow("classify", 1, (), (SetField("reg0", 0xF0F), set_field("reg0", (0x50, 0xF0))), goto="arp_responder"),
             Flow("arp_responder", 1, match(reg0=0xF5F), (Output(2),))]
    assert run(flows, packet(in_port=1)).ports == [2]


def test_each_run_starts_without_connections_unless_given_a_conntrack():
    tables = SwitchTables(firewall({"new": COMMIT}))
    run(tables, FORWARD["udp"])
    assert run(tables, BACKWARD["udp"]).ports == [STATE_PORTS["new"], probe_port(1, 0)]


def test_ct_with_a_table_forks_a_tracked_clone_and_the_caller_continues_untracked():
    """OVS 3.1 (ofproto/trace --ct-next trk,new): "A clone of the packet is forked to recirculate";
    the caller "Sets the packet to an untracked state, and clears all the conntrack fields" and goes
    on; the clone sees the mark just committed and the registers as they were at ct. The userspace
    datapath runs the clone at once, so its outputs come first."""
    flows = [
        Flow("classify", 1, (), (SetField("reg0", 7),), goto="arp_responder"), TO_EGRESS[1],
        Flow("egress_acl", 1, match(**IP), (Ct(commit=True, zone=5, set_mark=3, table="egress_ct"),
                                            SetField("reg0", 8), set_field("eth_dst", MAC_A),
                                            Resubmit("router_in"), Output(2))),
        Flow("egress_ct", 1, match(reg0=7, eth_dst=MAC_B, ct_state=ct_state(CT_TRK | CT_NEW, CT_EST),
                                   ct_zone=5, ct_mark=3, **IP), (Output(3),)),
        Flow("router_in", 1, match(reg0=8, ct_state=0, ct_zone=0, ct_mark=0), (Output(4),)),
    ]
    pkt = FORWARD["udp"]
    result = run(flows, pkt)
    rewritten = {name: val for name, val in {**pkt, "eth_dst": 0x02000000000A}.items() if name != "in_port"}
    assert result.outputs == [(3, {n: v for n, v in pkt.items() if n != "in_port"}), (4, rewritten),
                              (2, rewritten)]
    assert [table for table, _ in result.path] == ["classify", "arp_responder", "egress_acl", "egress_ct",
                                                   "router_in"]


def test_after_ct_without_a_table_the_pass_sees_the_packet_untracked():
    """OVS 3.1 (packet-out): after ct(commit) with no table, a resubmit matches ct_state=0, ct_mark=0,
    while a resubmit before it sees the recirculated state."""
    flows = [*TO_EGRESS,
             Flow("egress_acl", 1, match(**IP), (Ct(zone=1, table="egress_ct"),)),
             Flow("egress_ct", 1, match(**IP), (Resubmit("router_in"), Ct(commit=True, zone=1),
                                                Resubmit("router_in"))),
             Flow("router_in", 1, match(ct_state=(CT_TRK | CT_NEW, 0xFF), ct_zone=1), (Output(2),)),
             Flow("router_in", 1, match(ct_state=0, ct_zone=0), (Output(3),))]
    assert run(flows, FORWARD["udp"]).ports == [2, 3]


def test_ct_outside_ipv4_is_not_modelled():
    flows = [*TO_EGRESS, Flow("egress_acl", 1, match(eth_type=0x86DD), (Ct(zone=1),))]
    with pytest.raises(ValueError, match="non-IPv4"):
        run(flows, packet(in_port=1, eth_type=0x86DD))
    with pytest.raises(ValueError, match="needs ipv4_src"):
        run([*TO_EGRESS, Flow("egress_acl", 1, match(**IP), (Ct(zone=1),))], packet(in_port=1, ip_proto=6, **IP))


def test_fabric_switches_track_apart_unless_they_share_a_datapath():
    """A commits on s1; B's reply entering s2 is a reply only where s1 and s2 share one conntrack (the
    Mininet case: all netdev bridges of one ovs-vswitchd use one datapath)."""
    switch_flows = [Flow("classify", 1, match(**IP), (Ct(commit=True, zone=1, table="l2_lookup"),)),
                    *(Flow("l2_lookup", 1, match(ct_state=(state, 0xFF)), (Output(STATE_PORTS[name]),))
                      for name, state in STATES.items())]
    flows = {"s1": switch_flows, "s2": switch_flows}
    topology = Topology(tuple(Switch(dpid, (SwitchPort(f"{dpid}-p1", 1, MAC_A),)) for dpid in flows), ())
    for conntrack, reply_state in [(Conntrack(), "new"), (Conntrack(shared=True), "rpl")]:
        request = run_fabric(flows, topology, "s1", FORWARD["udp"], conntrack)
        assert [(d.dpid, d.port) for d in request] == [("s1", STATE_PORTS["new"])]
        reply = run_fabric(flows, topology, "s2", BACKWARD["udp"], conntrack)
        assert reply == [Delivery("s2", STATE_PORTS[reply_state], {n: v for n, v in BACKWARD["udp"].items()
                                                                   if n != "in_port"})]


@pytest.mark.parametrize("flow, reason", [
    # Refused by OVS 3.1 (ovs-ofctl -O OpenFlow13 add-flow).
    (Flow("egress_acl", 1, (), (Ct(zone=1),)), "ct needs an exact match on eth_type"),
    (Flow("egress_acl", 1, match(eth_type=ETH_TYPE_ARP), (Ct(zone=1),)), "ct needs an exact match on eth_type"),
    (Flow("egress_acl", 1, match(**IP), (Ct(zone=1, set_mark=1),)), "set_mark needs commit"),
    (Flow("egress_acl", 1, match(ct_state=ct_state(CT_TRK | CT_INV), **IP), (Ct(commit=True),)), r"\+inv"),
    (Flow("egress_acl", 1, (), (SetField("ct_mark", 1),)), "ct_mark is set only by ct"),
    (Flow("egress_acl", 1, (), (Move("reg0", "ct_mark", 32),)), "ct_mark is set only by ct"),
    (Flow("egress_acl", 1, (), (SetField("ct_state", 1),)), "read-only"),
    (Flow("egress_acl", 1, (), (SetField("ct_zone", 1),)), "read-only"),
    (Flow("egress_acl", 1, (), (SetField("conj_id", 1),)), "read-only"),
    # The pipeline's declarations, and values the action cannot carry.
    (Flow("egress_acl", 1, match(**IP), (Ct(table="port_out"),)), "ct table port_out is not a declared next"),
    (Flow("egress_acl", 1, match(**IP), (Ct(table="egress_acl"),)), "ct table egress_acl is not a declared next"),
    (Flow("egress_acl", 1, match(**IP), (Ct(zone_reg="eth_dst"),)), "zone_reg must be a register"),
    (Flow("egress_acl", 1, match(**IP), (Ct(zone=3, zone_reg="reg3"),)), "excludes an immediate zone"),
    (Flow("egress_acl", 1, match(**IP), (Ct(zone=1 << 16),)), "does not fit 16 bits"),
    # Accepted by OVS, which cuts the value to the mask (or drops the action): a compiler bug here.
    (Flow("egress_acl", 1, match(**IP), (Ct(commit=True, set_mark=2, mark_mask=1),)), "set_mark within it"),
    (Flow("egress_acl", 1, match(**IP), (Ct(commit=True, mark_mask=1),)), "set_mark within it"),
    (Flow("egress_acl", 1, (), (SetField("reg0", 3, 1),)), "must fit it and hold the value"),
    (Flow("egress_acl", 1, (), (SetField("reg0", 0, 0),)), "must fit it and hold the value"),
])
def test_ct_flows_ovs_would_refuse_are_refused(flow, reason):
    with pytest.raises(FlowError, match=reason):
        SwitchTables([flow])


# --- conjunctive matches ----------------------------------------------------------------------------------

def clause(priority: int, *conjunctions: tuple[int, int, int], **fields) -> Flow:
    return Flow("classify", priority, match(**fields), tuple(Conjunction(*c) for c in conjunctions))


def out(priority: int, port: int, **fields) -> Flow:
    return Flow("classify", priority, match(**fields), (Output(port),))


PRIORITY_CASE = [
    out(200, 5, ipv4_dst="10.0.0.66", **IP),
    clause(150, (8, 1, 2), ipv4_src=IP_A, **IP),
    clause(150, (8, 2, 2), ip_proto=17, udp_src=99, **IP),  # conjunction 8 has no conj_id flow
    clause(100, (7, 1, 2), ipv4_src=IP_A, **IP),
    clause(100, (7, 2, 2), ip_proto=17, udp_dst=53, **IP),
    out(60, 3, ipv4_dst="10.0.0.9", **IP),
    out(50, 2, conj_id=7, **IP),
]
CATCH_ALL = out(10, 4, **IP)


@pytest.mark.parametrize("dst, sport, dport, port", [
    (IP_B, 1, 53, 2),          # conjunction 7, then its conj_id flow
    ("10.0.0.9", 1, 53, 3),    # the second lookup finds a plain flow above the conj_id flow
    (IP_B, 1, 80, 4),          # clause 2 unmatched: the plain flow below
    ("10.0.0.66", 1, 53, 5),   # a plain flow above the clauses wins outright
    (IP_B, 99, 53, 4),         # conjunction 8 wins on priority; its second lookup finds the catch-all
])
def test_conjunction_priorities_as_ovs_resolves_them(dst, sport, dport, port):
    """OVS 3.1 (ofproto/trace), flow for flow."""
    pkt = ip_packet(IP_A, dst, "udp", sport=sport, dport=dport)
    assert run([*PRIORITY_CASE, CATCH_ALL], pkt).ports == [port]


def test_a_conjunction_whose_second_lookup_misses_falls_through_to_lower_priorities():
    """OVS 3.1 (ofproto/trace): without the catch-all, conjunction 8 finds nothing and 7 decides."""
    assert run(PRIORITY_CASE, ip_packet(IP_A, IP_B, "udp", sport=99, dport=53)).ports == [2]


def three_clauses(*extra: Flow) -> list[Flow]:
    """Conjunction 1: source A or B, destination 10.0.0.3, UDP 53. Conjunction 2 shares source B."""
    return [
        clause(100, (1, 1, 3), ipv4_src=IP_A, **IP),
        clause(100, (1, 1, 3), (2, 1, 2), ipv4_src=IP_B, **IP),
        clause(100, (1, 2, 3), ipv4_dst="10.0.0.3", **IP),
        clause(100, (1, 3, 3), ip_proto=17, udp_dst=53, **IP),
        clause(100, (2, 2, 2), ipv4_dst="10.0.0.4", **IP),
        Flow("classify", 1, match(conj_id=1), (Output(11),), goto="l2_lookup"),
        out(1, 12, conj_id=2),
        Flow("l2_lookup", 10, match(conj_id=1), (Output(13),)),
        Flow("l2_lookup", 1, (), (Output(14),)),
        *extra,
    ]


@pytest.mark.parametrize("src, dst, dport, ports", [
    (IP_A, "10.0.0.3", 53, [11, 14]),  # conj_id is reset after the lookup: l2_lookup sees 0
    (IP_B, "10.0.0.3", 53, [11, 14]),
    (IP_B, "10.0.0.4", 80, [12]),
    (IP_A, "10.0.0.4", 53, []),
    (IP_B, "10.0.0.3", 80, []),
])
def test_three_clauses_and_a_clause_flow_shared_by_two_conjunctions(src, dst, dport, ports):
    result = run(three_clauses(), ip_packet(src, dst, "udp", sport=1, dport=dport))
    assert result.ports == ports
    assert all("conj_id" not in frame for _, frame in result.outputs)


def test_overlapping_conjunctions_must_lead_to_the_same_actions():
    """Two conjunctions at one priority matching one packet: OVS follows either ("unpredictable
    results", ovs-fields(7)), so their conj_id flows must act alike, else the lookup is ambiguous."""
    overlap = clause(100, (2, 2, 2), ipv4_dst="10.0.0.3", ip_proto=17, **IP)
    differing = three_clauses(overlap)
    with pytest.raises(FlowError, match="ambiguous: conjunctions .* differ"):
        run(differing, ip_packet(IP_B, "10.0.0.3", "udp", sport=1, dport=53))
    assert run(differing, ip_packet(IP_A, "10.0.0.3", "udp", sport=1, dport=53)).ports == [11, 14]
    alike = [flow for flow in three_clauses(overlap) if flow.match != match(conj_id=2)]
    alike.append(Flow("classify", 1, match(conj_id=2), (Output(11),), goto="l2_lookup", cookie=2))
    result = run(alike, ip_packet(IP_B, "10.0.0.3", "udp", sport=1, dport=53))
    assert result.ports == [11, 14] and result.path[0][1].match == match(conj_id=1)  # the lowest id
    # One conj_id flow missing: OVS either falls through to lower priorities or takes the other.
    missing = [flow for flow in alike if flow.match != match(conj_id=2)]
    with pytest.raises(FlowError, match="ambiguous: conjunctions .* differ"):
        run(missing, ip_packet(IP_B, "10.0.0.3", "udp", sport=1, dport=53))


def test_a_plain_flow_at_the_priority_of_clause_flows_is_ambiguous():
    """OVS's classifier would take the plain flow, but OpenFlow leaves two flows of one priority
    matching a packet undefined: refused whether the conjunction completes (source B) or not (A)."""
    shadowed = three_clauses(out(100, 15, ipv4_dst="10.0.0.4", ip_proto=17, **IP))
    for src in (IP_A, IP_B):
        with pytest.raises(FlowError, match="ambiguous: 3 flows"):
            run(shadowed, ip_packet(src, "10.0.0.4", "udp", sport=1, dport=80))
    assert run(shadowed, ip_packet(IP_B, "10.0.0.3", "udp", sport=1, dport=53)).ports == [11, 14]


def test_conj_id_is_not_a_packet_field():
    with pytest.raises(ValueError, match="conj_id"):
        run(three_clauses(), packet(in_port=1, conj_id=1))


@pytest.mark.parametrize("flows, reason", [
    # Refused by OVS 3.1 (ovs-ofctl -O OpenFlow13 add-flow).
    ([Flow("classify", 1, (), (Conjunction(1, 1, 2), Output(2)))], "may not be mixed"),
    ([Flow("classify", 1, (), (Conjunction(1, 1, 2),), goto="l2_lookup")], "may not be mixed"),
    ([clause(1, (1, 1, 1))], "needs 2 to 64 clauses"),
    ([clause(1, (1, 1, 65))], "needs 2 to 64 clauses"),
    ([clause(1, (1, 0, 2))], "numbered from 1"),
    ([clause(1, (1, 3, 2))], "numbered from 1"),
    # Accepted by OVS, but a conjunction that can never match, or that OVS splits by priority.
    ([clause(1, (1, 1, 2), in_port=1)], r"lacks clauses \[2\]"),
    ([clause(1, (1, 1, 3), in_port=1), clause(1, (1, 3, 3), in_port=2)], r"lacks clauses \[2\]"),
    ([clause(1, (1, 1, 2), in_port=1), clause(2, (1, 2, 2), in_port=2)], r"\(priority, clause count\)"),
    ([clause(1, (1, 1, 2), in_port=1), clause(1, (1, 2, 3), in_port=2), clause(1, (1, 3, 3), in_port=3)],
     r"\(priority, clause count\)"),
])
def test_conjunction_flows_ovs_would_refuse_or_never_match_are_refused(flows, reason):
    with pytest.raises(FlowError, match=reason):
        SwitchTables(flows)


def test_the_same_conjunction_id_in_two_tables_is_two_conjunctions():
    flows = [clause(1, (1, 1, 2), in_port=1), clause(1, (1, 2, 2), eth_src=MAC_A),
             Flow("classify", 0, match(conj_id=1), goto="l2_lookup"),
             Flow("l2_lookup", 5, match(in_port=1), (Conjunction(1, 1, 2),)),
             Flow("l2_lookup", 5, match(eth_dst=MAC_B), (Conjunction(1, 2, 2),)),
             Flow("l2_lookup", 1, match(conj_id=1), (Output(2),))]
    assert run(flows, packet(in_port=1, eth_src=MAC_A, eth_dst=MAC_B)).ports == [2]
    assert run(flows, packet(in_port=1, eth_src=MAC_A, eth_dst=MAC_A)).ports == []
