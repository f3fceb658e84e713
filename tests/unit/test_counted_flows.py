"""Which flows count for whom (apps/counters.py), asserted on packets through the flow-table simulator: a packet
counts once for the router that routes it (and the static route it takes), the floating IP it goes through, the
member it is balanced to, wherever it enters and however many switches it crosses; replies count for no rule."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable

import pytest

from apps.compiler import Compiler
from apps.counters import ObjectRef, counted_flows
from apps.flows import Flow
from apps.flowsim import Conntrack, Packet, SwitchTables, run_fabric
from apps.groups import Group
from apps.model import StaticRoute
from apps.pipeline import table_id
from apps.routing import route_id
from tests.unit.fabric_cases import S1, S2, S3
from tests.unit.test_load_balancing import BALANCER, MEMBERS, to_vip
from tests.unit.test_routing import FLOATING, OUTSIDE, PORT, ROUTER, TOPOLOGY, from_uplink, from_vm, policy

ROUTE = StaticRoute("192.0.2.0/24", "10.2.0.7")  # behind n2-b
POLICY = policy(routers=(dataclasses.replace(ROUTER, routes=(ROUTE,)),),
                load_balancers=(dataclasses.replace(BALANCER, members=MEMBERS),))
ROUTED = ("router", ROUTER.id)


class Noting(SwitchTables):
    """Tables that note every flow a packet passes."""

    def __init__(self, flows: Iterable[Flow], groups: Iterable[Group], passed: list[Flow]) -> None:
        super().__init__(flows, groups=groups)
        self.passed = passed

    def lookup(self, table: str, pkt: Packet) -> Flow | None:
        flow = super().lookup(table, pkt)
        if flow is not None:
            self.passed.append(flow)
        return flow


@pytest.fixture(scope="module")
def counting() -> tuple[dict[str, Noting], list[Flow]]:
    compiler = Compiler()
    compiler.load(POLICY, TOPOLOGY)
    compiler.commit()
    passed: list[Flow] = []
    return {dpid: Noting(compiler.table(dpid).values(), compiler.groups(dpid).values(), passed)
            for dpid in (S1, S2, S3)}, passed


def counts(counting: tuple[dict[str, Noting], list[Flow]], dpid: str, pkt: Packet, conntrack: Conntrack,
           kinds: tuple[str, ...] = ("router", "router_route", "floating_ip", "lb_member")) -> Counter[ObjectRef]:
    """What one packet entering `dpid` counts for, per object of `kinds`; asserts it was delivered."""
    tables, passed = counting
    passed.clear()
    assert run_fabric(tables, TOPOLOGY, dpid, pkt, conntrack)
    counted = counted_flows(POLICY)
    found: Counter[ObjectRef] = Counter()
    for flow in passed:
        owners = counted.get((flow.cookie, table_id(flow.table)), counted.get((flow.cookie, None), ()))
        found.update(owner for owner in owners if owner[0] in kinds)
    return found


def test_a_routed_packet_counts_once_for_its_router_and_its_static_route(counting):
    conntrack = Conntrack()
    assert counts(counting, S1, from_vm(PORT["n1-a"], ROUTER.mac, "10.2.0.5"), conntrack) == {ROUTED: 1}
    via_route = counts(counting, S1, from_vm(PORT["n1-a"], ROUTER.mac, "192.0.2.9"), conntrack)
    assert via_route == {ROUTED: 1, ("router_route", route_id(ROUTER.id, ROUTE)): 1}


def test_a_floating_ip_counts_both_ways_once_wherever_its_port_is(counting):
    """n2-a is on s2; its router's gateway switch (where the floating IP's NAT runs) is s1."""
    conntrack = Conntrack()
    mine = ("floating_ip", FLOATING.id)
    assert counts(counting, S2, from_vm(PORT["n2-a"], ROUTER.mac, OUTSIDE), conntrack) == {ROUTED: 1, mine: 1}
    inbound = from_uplink(OUTSIDE, FLOATING.address, tcp_src=6000, tcp_dst=22)
    assert counts(counting, S1, inbound, conntrack) == {ROUTED: 1, mine: 1}


def test_a_balanced_packet_counts_once_for_its_member(counting):
    conntrack = Conntrack()
    for sport in range(50000, 50010):
        found = counts(counting, S1, to_vip("n1-a", sport), conntrack)
        (member,) = [owner for owner in found if owner[0] == "lb_member"]
        assert found[member] == 1
        # A member on the VIP's network is reached directly; one on the router's other network is routed there.
        assert found == {member: 1, **({ROUTED: 1} if member == ("lb_member", "m2") else {})}


def test_rules_count_what_they_let_through_and_replies_count_for_none(counting):
    conntrack = Conntrack()
    rules = ("security_group_rule",)
    request = from_vm(PORT["n1-a"], ROUTER.mac, "10.2.0.5", tcp_src=41000, tcp_dst=80)
    assert counts(counting, S1, request, conntrack, rules) == {("security_group_rule", "open-out"): 1,
                                                               ("security_group_rule", "open-in"): 1}
    reply = from_vm(PORT["n2-a"], ROUTER.mac, "10.1.0.5", tcp_src=80, tcp_dst=41000)
    assert counts(counting, S2, reply, conntrack, rules) == {}
