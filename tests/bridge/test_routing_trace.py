"""Routers on real bridges: ofproto/trace of the compiled router flows agrees with apps.flowsim on routing,
the gateway's answers, TTL, SNAT and floating IPs, and on what stays closed (tests/unit/test_routing.py's
fabric, one bridge per switch)."""

from __future__ import annotations

import pytest
from test_pipeline_trace import Fabric, install

from apps.flows import ip_to_int, mac_to_int
from apps.flowsim import CONTROLLER
from tests.unit.fabric_cases import S1, S2, S3
from tests.unit.test_routing import (
    FLOATING,
    OTHER_ROUTER,
    OUTSIDE,
    PORT,
    ROUTER,
    THEIR_FLOATING,
    TOPOLOGY,
    UPLINK,
    from_uplink,
    from_vm,
    policy,
)

pytestmark = [pytest.mark.bridge, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def routed(make_bridge) -> Fabric:
    return install(make_bridge, policy(), TOPOLOGY, {S1: "rtb1", S2: "rtb2", S3: "rtb3"})


def test_a_routed_packet_leaves_its_entry_switch_rewritten_toward_the_destination(routed):
    (port, frame), = routed.fate(S1, from_vm(PORT["n1-a"], ROUTER.mac, "10.2.0.5"))
    assert port == 3  # the link toward s2, tagged with n2
    assert frame["eth_src"] == mac_to_int(ROUTER.mac) and frame["eth_dst"] == mac_to_int(PORT["n2-a"].mac_address)
    assert frame["nw_ttl"] == 63


def test_the_gateway_answers_ping_and_a_running_out_ttl_goes_to_the_controller(routed):
    (port, echo), = routed.fate(S3, from_vm(PORT["n1-b"], ROUTER.mac, "10.1.0.1", "icmp"))
    assert port == 1 and echo["icmpv4_type"] == 0 and echo["ipv4_src"] == ip_to_int("10.1.0.1")
    assert [port for port, _ in routed.fate(S3, from_vm(PORT["n1-b"], ROUTER.mac, "10.2.0.7", ttl=1))] \
        == [CONTROLLER]


def test_snat_on_the_gateway_switch_and_external_traffic_passed_on_elsewhere(routed):
    (port, _), = routed.fate(S3, from_vm(PORT["n1-b"], ROUTER.mac, OUTSIDE))
    assert port == 3  # unrouted, toward the gateway switch s1
    # ofproto/trace translates to the lowest port of the range: a source port there keeps both views equal
    (port, out), = routed.fate(S1, from_vm(PORT["n1-a"], ROUTER.mac, OUTSIDE, tcp_src=1024))
    assert port == UPLINK and out["ipv4_src"] == ip_to_int("203.0.113.10")


def test_a_floating_ip_is_dnated_on_the_gateway_switch_and_the_rest_of_the_outside_gets_nothing(routed):
    (port, inbound), = routed.fate(S1, from_uplink(OUTSIDE, FLOATING.address))
    assert port == 3 and inbound["ipv4_dst"] == ip_to_int(PORT["n2-a"].ip_address)
    assert routed.fate(S1, from_uplink(OUTSIDE, "10.1.0.5")) == []
    assert routed.fate(S1, from_uplink("10.1.0.5", FLOATING.address)) == []


def test_a_network_not_on_the_router_gets_nothing_from_it(routed):
    assert routed.fate(S1, from_vm(PORT["n3-a"], ROUTER.mac, "10.2.0.5")) == []
    assert routed.fate(S1, from_vm(PORT["n3-a"], ROUTER.mac, "10.1.0.1", "icmp")) == []


def test_hairpin_to_another_routers_floating_ip_re_enters_on_the_shared_gateway_switch(make_bridge):
    fabric = install(make_bridge, policy(routers=(ROUTER, OTHER_ROUTER), floating_ips=(FLOATING, THEIR_FLOATING)),
                     TOPOLOGY, {S1: "rth1", S2: "rth2", S3: "rth3"})
    (port, there), = fabric.fate(S1, from_vm(PORT["n1-a"], ROUTER.mac, THEIR_FLOATING.address, tcp_src=1024))
    assert port == 2 and there["ipv4_src"] == ip_to_int("203.0.113.10") and there["ipv4_dst"] == ip_to_int("10.1.0.6")
