"""Load balancers on real bridges: ofproto/trace of a connection to the VIP agrees with apps.flowsim on the
member it reaches (the select group's bucket, ct(commit, nat(dst=member))), and a member's reply passes the
balancer's zone (tests/unit/test_load_balancing.py's fabric, one bridge per switch)."""

from __future__ import annotations

import dataclasses

import pytest
from test_pipeline_trace import Fabric, install, trace_report

from tests.unit.fabric_cases import S1, S2, S3
from tests.unit.test_load_balancing import BALANCER, MEMBERS, VIP, to_vip
from tests.unit.test_routing import PORT, ROUTER, TOPOLOGY, from_vm, policy

pytestmark = [pytest.mark.bridge, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def balanced(make_bridge) -> Fabric:
    return install(make_bridge, policy(load_balancers=(dataclasses.replace(BALANCER, members=MEMBERS),)), TOPOLOGY,
                   {S1: "lbb1", S2: "lbb2", S3: "lbb3"})


def reaches_the_group(bridge: str, pkt: dict) -> bool:
    """The traced packet is handed to a select group: the datapath hashes it and recirculates (ofproto/trace stops
    there; tests/bridge/test_groups_trace.py follows each hash value to its bucket and translation)."""
    return "hash(sym_l4(0))" in trace_report(bridge, pkt)


def test_a_new_connection_to_the_vip_from_its_network_or_through_the_router_reaches_the_group(balanced):
    """OVS took every flow and the group (install() syncs them), and a first packet to the VIP reaches the group."""
    assert reaches_the_group("lbb1", to_vip("n1-a", 20000))
    assert reaches_the_group("lbb3", to_vip("n2-b", 20001, ROUTER.mac))


def test_other_ports_of_the_vip_and_other_tenants_get_nothing(balanced):
    assert balanced.fate(S1, from_vm(PORT["n1-a"], BALANCER.mac, VIP, tcp_dst=81)) == []
    assert balanced.fate(S1, from_vm(PORT["n3-a"], BALANCER.mac, VIP)) == []
    assert not reaches_the_group("lbb1", from_vm(PORT["n3-a"], BALANCER.mac, VIP))


def test_a_members_reply_passes_the_balancers_zone(balanced):
    reply = from_vm(PORT["n1-b"], PORT["n1-a"].mac_address, "10.1.0.5", tcp_src=8080, tcp_dst=20000)
    (port, _), = balanced.fate(S3, reply)
    assert port == 3  # on toward s1 (no translation here: this switch's zone never saw the connection)
