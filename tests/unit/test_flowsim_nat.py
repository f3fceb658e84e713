"""dec_ttl and NAT in the flow simulator: packet fates through ct(nat), as OVS 3.1 gives them.

dec_ttl was checked with ofproto/trace on a netdev bridge (an exhausted TTL ends the flow's actions
only); NAT's ct_state bits and port choices follow OVS's userspace conntrack (lib/conntrack.c).
"""

from __future__ import annotations

import pytest

from apps.flows import (
    CT_DNAT,
    CT_EST,
    CT_NEW,
    CT_RPL,
    CT_SNAT,
    CT_TRK,
    ETH_TYPE_IP,
    Ct,
    DecTtl,
    Flow,
    Nat,
    Output,
    Resubmit,
    ip_to_int,
    match,
)
from apps.flowsim import Conntrack, FlowError, SwitchTables, packet, run

IP = {"eth_type": ETH_TYPE_IP}
PUBLIC = "203.0.113.5"


def tcp(src: str, dst: str, sport: int, dport: int, in_port: int = 1, **fields: int) -> dict[str, int]:
    return packet(in_port=in_port, ip_proto=6, ipv4_src=src, ipv4_dst=dst, tcp_src=sport, tcp_dst=dport,
                  **IP, **fields)


# --- dec_ttl ----------------------------------------------------------------------------------------------

TTL_FLOWS = [
    Flow("classify", 1, match(**IP), (Resubmit("l2_lookup"), Output(3))),
    Flow("l2_lookup", 1, match(**IP), (Output(1), DecTtl(), Output(2)), goto="ingress_acl"),
    Flow("ingress_acl", 1, match(**IP), (Output(4),)),
]


def test_dec_ttl_decrements_and_an_exhausted_ttl_ends_the_flow_only():
    """OVS 3.1 (ofproto/trace): with TTL 1, output 1 before dec_ttl stays, output 2 and the goto are skipped,
    and the resubmit's caller goes on to output 3."""
    alive = run(TTL_FLOWS, tcp("10.0.0.1", "10.0.0.2", 1, 2, in_port=9, nw_ttl=5))
    assert [(port, frame["nw_ttl"]) for port, frame in alive.outputs] == [(1, 5), (2, 4), (4, 4), (3, 4)]
    for ttl in (1, 0):
        dying = run(TTL_FLOWS, tcp("10.0.0.1", "10.0.0.2", 1, 2, in_port=9, nw_ttl=ttl))
        assert [(port, frame["nw_ttl"]) for port, frame in dying.outputs] == [(1, ttl), (3, ttl)]


def test_dec_ttl_needs_ip():
    with pytest.raises(FlowError, match="nw_ttl needs"):
        SwitchTables([Flow("classify", 1, match(in_port=1), (DecTtl(),))])


# --- NAT --------------------------------------------------------------------------------------------------

SNAT = Nat("src", ip_to_int(PUBLIC), port_min=1024, port_max=65535)
SERVER = "198.51.100.1"


def nat_flows(nat: Nat) -> list[Flow]:
    """From port 1 (inside): ct(commit, nat) then out port 2; from port 2 (outside): ct(nat), back to port 1.
    ct_state is matched exactly, so a packet goes anywhere only in the state OVS gives it."""
    there = CT_SNAT if nat.kind == "src" else CT_DNAT
    back = CT_DNAT if nat.kind == "src" else CT_SNAT  # a reply is translated the other way
    return [
        Flow("classify", 10, match(in_port=1, **IP), (Ct(commit=True, zone=5, nat=nat, table="l2_lookup"),)),
        Flow("classify", 10, match(in_port=2, **IP), (Ct(zone=5, nat=Nat(), table="l2_lookup"),)),
        *(Flow("l2_lookup", 10, match(in_port=port, ct_state=state, **IP), (Output(3 - port),)) for port, state in (
            (1, CT_TRK | CT_NEW | there), (1, CT_TRK | CT_EST | there), (2, CT_TRK | CT_EST | CT_RPL | back),
            (2, CT_TRK | CT_NEW))),
    ]


def fate(tables: SwitchTables, conntrack: Conntrack, pkt: dict[str, int]) -> list[tuple[object, dict[str, int]]]:
    return run(tables, pkt, conntrack).outputs


def sent(pkt: dict[str, int]) -> dict[str, int]:
    return {name: value for name, value in pkt.items() if name != "in_port"}


def test_snat_keeps_a_free_source_port_moves_a_taken_one_and_un_nats_each_reply():
    """Two VMs use source port 40000 to one server behind one SNAT IP: the first keeps it, the second gets the
    lowest free port of the range (the translated tuples never collide), and each reply finds its own VM."""
    tables, conntrack = SwitchTables(nat_flows(SNAT)), Conntrack()
    for vm, port in (("10.0.0.5", 40000), ("10.0.1.5", 1024)):
        assert fate(tables, conntrack, tcp(vm, SERVER, 40000, 80)) == [(2, sent(tcp(PUBLIC, SERVER, port, 80)))]
    for vm, port in (("10.0.1.5", 1024), ("10.0.0.5", 40000)):
        reply = tcp(SERVER, PUBLIC, 80, port, in_port=2)
        assert fate(tables, conntrack, reply) == [(1, sent(tcp(SERVER, vm, 80, 40000)))]
    # Established now: the original direction keeps its translation.
    assert fate(tables, conntrack, tcp("10.0.1.5", SERVER, 40000, 80)) == [(2, sent(tcp(PUBLIC, SERVER, 1024, 80)))]


def test_snat_source_port_outside_the_range_takes_its_lowest_and_a_full_range_refuses():
    tight = Nat("src", ip_to_int(PUBLIC), port_min=2000, port_max=2001)
    tables, conntrack = SwitchTables(nat_flows(tight)), Conntrack()
    for n, port in enumerate((2000, 2001)):
        assert fate(tables, conntrack, tcp(f"10.0.0.{n + 1}", SERVER, 40000, 80)) == \
            [(2, sent(tcp(PUBLIC, SERVER, port, 80)))]
    with pytest.raises(ValueError, match="no free translation"):
        fate(tables, conntrack, tcp("10.0.0.9", SERVER, 40000, 80))


def test_snat_of_icmp_echo_rewrites_addresses_only():
    tables, conntrack = SwitchTables(nat_flows(Nat("src", ip_to_int(PUBLIC)))), Conntrack()
    ping = packet(in_port=1, ip_proto=1, ipv4_src="10.0.0.5", ipv4_dst=SERVER, icmpv4_type=8, icmpv4_code=0, **IP)
    assert fate(tables, conntrack, ping) == [(2, sent({**ping, "ipv4_src": ip_to_int(PUBLIC)}))]
    pong = packet(in_port=2, ip_proto=1, ipv4_src=SERVER, ipv4_dst=PUBLIC, icmpv4_type=0, icmpv4_code=0, **IP)
    assert fate(tables, conntrack, pong) == [(1, sent({**pong, "ipv4_dst": ip_to_int("10.0.0.5")}))]


def test_dnat_translates_the_destination_and_un_dnats_the_reply_source():
    """A floating IP's shape: outside -> PUBLIC:80 becomes the fixed 10.0.0.5:8080 (+dnat); the reply from
    10.0.0.5:8080 leaves as PUBLIC:80 (+snat, OVS's state for an un-DNATted reply)."""
    dnat = Nat("dst", ip_to_int("10.0.0.5"), port_min=8080)
    tables, conntrack = SwitchTables(nat_flows(dnat)), Conntrack()
    assert fate(tables, conntrack, tcp(SERVER, PUBLIC, 5555, 80)) == [(2, sent(tcp(SERVER, "10.0.0.5", 5555, 8080)))]
    reply = tcp("10.0.0.5", SERVER, 8080, 5555, in_port=2)
    assert fate(tables, conntrack, reply) == [(1, sent(tcp(PUBLIC, SERVER, 80, 5555)))]


def test_plain_nat_on_an_unknown_connection_changes_nothing():
    tables, conntrack = SwitchTables(nat_flows(SNAT)), Conntrack()
    stranger = tcp(SERVER, PUBLIC, 80, 1024, in_port=2)
    assert fate(tables, conntrack, stranger) == [(1, sent(stranger))]  # +trk+new, untranslated


def test_nat_needs_commit_for_a_range_an_ipv4_match_and_sane_ranges():
    """OVS 3.1 refuses ct(nat(src=...)) without commit (OFPBAC_BAD_ARGUMENT) and an IPv4 range on a flow
    that does not match IPv4 (OFPBAC_MATCH_INCONSISTENT)."""
    for ct, reason in ((Ct(zone=5, nat=SNAT), "needs ct\\(commit\\)"),
                       (Ct(commit=True, nat=Nat(None, 1)), "takes no range"),
                       (Ct(commit=True, nat=Nat("src")), "nonzero ip_min"),
                       (Ct(commit=True, nat=Nat("src", 2, 1)), "nonzero ip_min"),
                       (Ct(commit=True, nat=Nat("src", 1, port_max=5)), "nat ports"),
                       (Ct(commit=True, nat=Nat("src", 1, port_min=6, port_max=5)), "nat ports")):
        with pytest.raises(FlowError, match=reason):
            SwitchTables([Flow("classify", 1, match(**IP), (ct,))])
    with pytest.raises(FlowError, match="IPv4"):
        SwitchTables([Flow("classify", 1, match(eth_type=0x86DD), (Ct(commit=True, nat=SNAT),))])
    SwitchTables([Flow("classify", 1, match(eth_type=0x86DD), (Ct(nat=Nat()),))])  # plain nat: any IP
