"""Load balancers on real bridges: ofproto/trace of a connection to the VIP agrees with apps.flowsim on the
member it reaches (the select group's bucket, ct(commit, nat(dst=member))), and a member's reply passes the
balancer's zone (tests/unit/test_load_balancing.py's fabric, one bridge per switch)."""

from __future__ import annotations

import dataclasses

import pytest
from test_pipeline_trace import Fabric, install, trace_report

from tests.unit.fabric_cases import S1, S2, S3
from tests.unit.test_load_balancing import BALANCER, MEMBERS, VIP, VIP_FLOATING, to_vip
from tests.unit.test_routing import OUTSIDE, PORT, ROUTER, TOPOLOGY, from_uplink, from_vm, policy

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


@pytest.fixture(scope="module")
def published(make_bridge) -> Fabric:
    """The balanced fabric with a floating IP on the VIP: OVS takes the hairpin table and zone, and the floating IP's
    way into the balancer (a resubmit from neighbor back to router_in), as install() checks."""
    return install(make_bridge, policy(floating_ips=(VIP_FLOATING,),
                                       load_balancers=(dataclasses.replace(BALANCER, members=MEMBERS),)),
                   TOPOLOGY, {S1: "lbf1", S2: "lbf2", S3: "lbf3"})


def datapath_actions(report: str) -> str:
    return " ".join(line for line in report.splitlines() if line.startswith("Datapath actions: "))


def test_a_members_answer_to_the_vip_goes_through_the_hairpin_zone_then_the_balancers(published):
    """What m1 (n1-b) answers the VIP (a hairpin's reply) is un-SNATed in the hairpin zone, then un-DNATed in the
    balancer's; its answer to a client is not (the balancer's zone only), and another tenant's is neither."""
    answer = from_vm(PORT["n1-b"], BALANCER.mac, VIP, tcp_src=8080, tcp_dst=31000)
    report = datapath_actions(trace_report("lbf3", answer, ("trk,est,rpl", "trk,est,rpl")))
    hairpin, balancer = f"ct(zone={BALANCER.hairpin_key},nat)", f"ct(zone={BALANCER.key},nat)"
    assert hairpin in report and balancer in report and report.index(hairpin) < report.index(balancer), report
    to_client = from_vm(PORT["n1-b"], PORT["n1-a"].mac_address, "10.1.0.5", tcp_src=8080, tcp_dst=31000)
    report = datapath_actions(trace_report("lbf3", to_client, ("trk,est,rpl",)))
    assert balancer in report and hairpin not in report, report
    spoof = from_vm(PORT["n3-a"], BALANCER.mac, VIP, tcp_src=8080, tcp_dst=31000)
    report = datapath_actions(trace_report("lbf1", spoof, ("trk,est,rpl", "trk,est,rpl")))
    assert hairpin not in report and balancer not in report, report


def test_the_floating_ip_on_the_vip_translates_the_service_only(published):
    """On the router's gateway switch (s1, the uplink's), a new connection to the floating IP's service is committed
    with the VIP as its destination; to another port of it, nothing is."""
    dnat = f"nat(dst={VIP})"
    report = datapath_actions(trace_report("lbf1", from_uplink(OUTSIDE, VIP_FLOATING.address, tcp_dst=80)))
    assert f"ct(commit,zone={ROUTER.key},{dnat})" in report, report
    report = datapath_actions(trace_report("lbf1", from_uplink(OUTSIDE, VIP_FLOATING.address, tcp_dst=22)))
    assert dnat not in report, report
