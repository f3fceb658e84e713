"""Explaining a packet (apps.explain) on compiled policies: verdicts, where the packet went, and who owns each flow."""

from __future__ import annotations

import dataclasses

import pytest

from apps.compiler import Compiler
from apps.explain import BadRequest, Compiled, NotFound, Request, Untraceable, describe_owner, explain
from apps.flows import ip_to_int
from apps.flowsim import CONTROLLER
from apps.model import LbMember, LoadBalancer, Policy
from apps.topology import Topology
from tests.unit import test_routing as routing
from tests.unit.fabric_cases import S1, S2, S3, TENANT_A, TENANT_B, line_of_three, vm
from tests.unit.test_security_groups import GROUPS, ONE_SWITCH, a

# One switch, tenant A: a web server (ingress tcp 80-81 from anywhere), a client (egress anywhere) and an
# outsider on tenant B with the client's address.
SERVER, CLIENT = a(1, "web"), a(2, "client")
STRANGER = vm(TENANT_B, 3, S1, "s1-eth3", groups=("client",), ip=CLIENT.ip_address)
SG_POLICY = Policy((TENANT_A, TENANT_B), (SERVER, CLIENT, STRANGER), GROUPS)


def compiled(policy: Policy, topology: Topology) -> Compiled:
    compiler = Compiler()
    compiler.load(policy, topology)
    compiler.commit()
    return compiler.compiled(topology)


@pytest.fixture(scope="module")
def one_switch() -> Compiled:
    return compiled(SG_POLICY, ONE_SWITCH)


@pytest.fixture(scope="module")
def routed() -> Compiled:
    return compiled(routing.policy(), routing.TOPOLOGY)


def reached(explanation) -> list[tuple[str, object]]:
    return sorted((r.endpoint.dpid, r.endpoint.ofport) for r in explanation.reached)


def owners(explanation) -> list[tuple[str, str, str | None]]:
    return [(s.table, s.owner["kind"], s.owner["id"]) for s in explanation.stages if s.owner]


# --- security groups and isolation ---------------------------------------------------------------------------

def test_a_connection_an_ingress_rule_allows_is_output_at_the_server_and_the_rule_is_named(one_switch):
    told = explain(SG_POLICY, one_switch, Request(port_id=CLIENT.id, ip_dst=SERVER.ip_address, tp_dst=80))
    assert told.verdict == "output"
    assert reached(told) == [(S1, 1)]
    [port] = [r.endpoint.port for r in told.reached]
    assert port == SERVER
    assert ("ingress_ct", "security_group_rule", "w-http") in owners(told)
    rule = next(s.owner for s in told.stages if s.owner and s.owner["id"] == "w-http")
    assert rule["name"] == "ingress tcp 80-81 from anywhere" and rule["security_group"] == {"id": "web", "name": "web"}
    assert [s.dpid for s in told.stages] == [S1] * len(told.stages)
    # the defaults: the client's own MAC and address, the server's MAC from its address, tcp from 49152
    assert told.packet["eth_src"] == int(CLIENT.mac_address.replace(":", ""), 16)
    assert told.packet["eth_dst"] == int(SERVER.mac_address.replace(":", ""), 16)
    assert (told.packet["tcp_src"], told.packet["tcp_dst"], told.packet["nw_ttl"]) == (49152, 80, 64)


def test_a_port_no_rule_opens_is_dropped_at_ingress_ct(one_switch):
    told = explain(SG_POLICY, one_switch, Request(port_id=CLIENT.id, ip_dst=SERVER.ip_address, tp_dst=22))
    assert told.verdict == "drop" and told.reached == ()
    last = told.stages[-1]
    assert (last.table, last.flow.actions, last.owner["kind"]) == ("ingress_ct", (), "pipeline")


def test_udp_and_icmp_are_judged_by_their_own_rules(one_switch):
    dns = explain(SG_POLICY, one_switch, Request(port_id=CLIENT.id, ip_dst=SERVER.ip_address, protocol="udp",
                                                 tp_dst=53))
    assert dns.verdict == "output" and CLIENT.ip_address == "10.0.0.3"  # w-dns admits 10.0.0.3/32 only
    assert ("ingress_ct", "security_group_rule", "w-dns") in owners(dns)
    ping = explain(SG_POLICY, one_switch, Request(port_id=CLIENT.id, ip_dst=SERVER.ip_address, protocol="icmp"))
    assert ping.verdict == "output" and ping.packet["icmpv4_type"] == 8


def test_the_reply_of_a_connection_passes_where_a_new_one_from_the_server_does_not(one_switch):
    back = Request(port_id=SERVER.id, ip_dst=CLIENT.ip_address, tp_src=80, tp_dst=49152)
    assert explain(SG_POLICY, one_switch, back).verdict == "drop"  # web has no egress rule
    reply = explain(SG_POLICY, one_switch, dataclasses.replace(back, ct_state="reply"))
    assert reply.verdict == "output" and reached(reply) == [(S1, 2)]
    assert explain(SG_POLICY, one_switch, dataclasses.replace(back, ct_state="invalid")).verdict == "drop"


def test_another_tenants_mac_is_unreachable_even_with_the_same_address(one_switch):
    told = explain(SG_POLICY, one_switch, Request(port_id=CLIENT.id, ip_dst=STRANGER.ip_address,
                                                  eth_dst=STRANGER.mac_address))
    assert told.verdict == "drop"
    assert told.stages[-1].table == "l2_lookup"


def test_a_spoofed_source_is_dropped_in_classify(one_switch):
    told = explain(SG_POLICY, one_switch, Request(port_id=CLIENT.id, ip_src="10.0.0.99", ip_dst=SERVER.ip_address))
    assert told.verdict == "drop" and [s.table for s in told.stages] == ["classify"]


def test_a_source_named_by_switch_and_interface_is_its_port(one_switch):
    by_port = explain(SG_POLICY, one_switch, Request(port_id=CLIENT.id, ip_dst=SERVER.ip_address))
    by_interface = explain(SG_POLICY, one_switch, Request(dpid=S1, interface=CLIENT.interface,
                                                          ip_dst=SERVER.ip_address))
    assert by_interface == dataclasses.replace(by_port, source=by_interface.source)
    assert by_interface.source.port == CLIENT


# --- across switches ----------------------------------------------------------------------------------------

def test_a_packet_is_followed_over_the_links_to_the_far_switch():
    policy, topology = line_of_three()
    fabric = compiled(policy, topology)
    a1, a3 = (next(p for p in policy.ports if p.id == f"a{n}") for n in (1, 3))
    told = explain(policy, fabric, Request(port_id=a1.id, ip_dst=a3.ip_address))
    assert told.verdict == "output" and reached(told) == [(S3, 1)]
    assert list(dict.fromkeys(s.dpid for s in told.stages)) == [S1, S2, S3]
    assert "vlan_vid" not in told.reached[0].packet
    b3 = next(p for p in policy.ports if p.id == "b3")
    isolated = explain(policy, fabric, Request(port_id=a1.id, ip_dst=b3.ip_address, eth_dst=b3.mac_address))
    assert isolated.verdict == "drop" and {s.dpid for s in isolated.stages} == {S1}


def test_a_switch_that_is_not_connected_is_explained_from_its_compiled_tables():
    """Nothing here is connected: the tables are the compiler's, and every switch of the topology has them."""
    policy, topology = line_of_three()
    fabric = compiled(policy, topology)
    assert set(fabric.flows) == {S1, S2, S3} and all(fabric.flows.values())


# --- routers ------------------------------------------------------------------------------------------------

def test_routed_via_the_router_to_another_switch_with_the_ttl_decremented(routed):
    src, dst = routing.PORT["n1-a"], routing.PORT["n2-a"]
    told = explain(routing.policy(), routed, Request(port_id=src.id, ip_dst=dst.ip_address))
    assert told.packet["eth_dst"] == int(routing.ROUTER.mac.replace(":", ""), 16)  # off-link: the router's MAC
    assert told.verdict == "output" and reached(told) == [(S2, 1)]
    assert told.reached[0].packet["nw_ttl"] == 63
    assert ("routing", "router", routing.ROUTER.id) in owners(told)
    router = next(s.owner for s in told.stages if s.owner and s.owner["kind"] == "router")
    assert router["name"] == routing.ROUTER.name


def test_a_ttl_running_out_in_the_router_goes_to_the_controller(routed):
    src, dst = routing.PORT["n1-a"], routing.PORT["n2-a"]
    told = explain(routing.policy(), routed, Request(port_id=src.id, ip_dst=dst.ip_address, ttl=1))
    assert told.verdict == "controller" and reached(told) == [(S1, CONTROLLER)]
    assert told.stages[-1].table == "router_in" and told.stages[-1].flow.meter == "ttl_exceeded"


def test_a_network_on_no_router_has_nothing_to_send_off_link_to(routed):
    src = routing.PORT["n3-a"]
    with pytest.raises(BadRequest) as refused:
        explain(routing.policy(), routed, Request(port_id=src.id, ip_dst="10.2.0.5"))
    assert refused.value.field == "eth_dst"


def test_snat_shows_the_address_the_packet_leaves_with_and_the_floating_ip_comes_in(routed):
    src = routing.PORT["n1-a"]
    out = explain(routing.policy(), routed, Request(port_id=src.id, ip_dst=routing.OUTSIDE))
    assert out.verdict == "output" and reached(out) == [(S1, routing.UPLINK)]
    assert out.reached[0].endpoint.uplink_of == routing.EXT
    assert out.reached[0].packet["ipv4_src"] == ip_to_int(routing.ROUTER.gateway.ip_address)
    inbound = explain(routing.policy(), routed, Request(dpid=S1, interface="s1-eth5", eth_src=routing.UPSTREAM_MAC,
                                                        ip_src=routing.OUTSIDE, ip_dst=routing.FLOATING.address,
                                                        tp_dst=22))
    assert inbound.packet["eth_dst"] == int(routing.ROUTER.mac.replace(":", ""), 16)
    assert inbound.verdict == "output" and reached(inbound) == [(S2, 1)]
    assert ("dnat_ct", "floating_ip", routing.FLOATING.id) in owners(inbound)


def test_a_load_balancer_member_is_named(routed):
    n1a, n1b = routing.PORT["n1-a"], routing.PORT["n1-b"]
    balancer = LoadBalancer("lb", "web-lb", routing.N1.id, "10.1.0.100", "tcp", 80, key=700,
                            mac="fa:16:3f:01:02:bc",
                            members=(LbMember("m1", "lb", n1b.ip_address, 8080, key=1),))
    policy = dataclasses.replace(routing.policy(), load_balancers=(balancer,))
    told = explain(policy, compiled(policy, routing.TOPOLOGY), Request(port_id=n1a.id, ip_dst="10.1.0.100"))
    assert told.verdict == "output" and reached(told) == [(S3, 1)]
    assert told.reached[0].packet["ipv4_dst"] == ip_to_int(n1b.ip_address)
    member = next(s.owner for s in told.stages if s.owner and s.owner["kind"] == "load_balancer_member")
    assert member["name"] == f"{n1b.ip_address}:8080" and member["load_balancer"] == {"id": "lb", "name": "web-lb"}


# --- what cannot be explained -------------------------------------------------------------------------------

@pytest.mark.parametrize(("request_", "field"), [
    (Request(port_id=CLIENT.id, dpid=S1, interface="s1-eth1", ip_dst="10.0.0.2"), "port_id"),
    (Request(ip_dst="10.0.0.2"), "port_id"),
    (Request(dpid=S1, ip_dst="10.0.0.2"), "interface"),
    (Request(port_id=CLIENT.id), "ip_dst"),
    (Request(port_id=CLIENT.id, ip_dst="10.0.0.2", protocol="icmp", tp_dst=22), "tp_dst"),
    (Request(port_id=CLIENT.id, ip_dst="10.0.0.77"), "eth_dst"),
    (Request(dpid=S1, interface="s1-eth9", ip_dst="10.0.0.2"), "eth_src"),
], ids=["port-and-interface", "no-source", "dpid-alone", "no-destination", "icmp-ports", "unknown-address",
        "unbound-interface"])
def test_a_request_missing_what_cannot_be_defaulted_names_the_field(one_switch, request_, field):
    with pytest.raises(BadRequest) as refused:
        explain(SG_POLICY, one_switch, request_)
    assert refused.value.field == field


def test_unknown_ports_switches_and_interfaces_are_not_found(one_switch):
    for request_, kind in [(Request(port_id="nope", ip_dst="10.0.0.2"), "port"),
                           (Request(dpid=S2, interface="s2-eth1", ip_dst="10.0.0.2"), "switch"),
                           (Request(dpid=S1, interface="s1-eth99", ip_dst="10.0.0.2"), "interface")]:
        with pytest.raises(NotFound) as missing:
            explain(SG_POLICY, one_switch, request_)
        assert missing.value.kind == kind


def test_a_port_on_an_interface_no_switch_has_or_a_down_interface_cannot_be_traced(one_switch):
    lost = dataclasses.replace(CLIENT, id="lost", interface="s1-eth42")
    with pytest.raises(Untraceable) as untraceable:
        explain(dataclasses.replace(SG_POLICY, ports=(*SG_POLICY.ports, lost)), one_switch,
                Request(port_id="lost", ip_dst="10.0.0.2"))
    assert untraceable.value.field == "port_id"
    [switch] = one_switch.topology.switches
    down = dataclasses.replace(switch, ports=tuple(dataclasses.replace(p, up=p.name != CLIENT.interface)
                                                   for p in switch.ports))
    downed = dataclasses.replace(one_switch, topology=Topology((down,)))
    for request_, field in [(Request(port_id=CLIENT.id, ip_dst="10.0.0.2"), "port_id"),
                            (Request(dpid=S1, interface=CLIENT.interface, ip_dst="10.0.0.2"), "interface")]:
        with pytest.raises(Untraceable) as untraceable:
            explain(SG_POLICY, downed, request_)
        assert untraceable.value.field == field


def test_owner_names_resolve_to_objects_and_unknown_ones_keep_their_kind():
    policy = routing.policy()
    assert describe_owner("isolation:network/n1", policy) == {"app": "isolation", "kind": "network", "id": "n1",
                                                             "name": "n1"}
    assert describe_owner("routing:floating_ip/fip1", policy)["name"] == routing.FLOATING.address
    assert describe_owner(f"routing:mac_binding/{routing.BINDING.id}", policy)["name"] == \
        f"203.0.113.1 at {routing.UPSTREAM_MAC}"
    assert describe_owner("system:pipeline", policy) == {"app": "system", "kind": "pipeline", "id": None,
                                                        "name": "system pipeline"}
    assert describe_owner("routing:router/gone", policy) == {"app": "routing", "kind": "router", "id": "gone",
                                                            "name": ""}
    assert describe_owner(None, policy) is None
    profile = describe_owner(f"security_groups:profile/{routing.PORT['n1-a'].profile}", policy)
    assert profile["kind"] == "profile" and profile["security_groups"] == [{"id": "open", "name": "open"}]

