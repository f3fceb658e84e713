"""Load balancers, asserted as packet fates through the flow-table simulator: a VIP reached from its network and
through its router, members chosen by weight and kept for a connection's life, replies from the VIP."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from apps.compiler import Compiler
from apps.flows import ETH_TYPE_ARP, ip_to_int, mac_to_int
from apps.flowsim import Conntrack, SwitchTables, packet, run_fabric
from apps.model import FloatingIP, HealthMonitor, LbMember, LoadBalancer, Policy
from tests.unit.fabric_cases import S1, S2, S3
from tests.unit.test_routing import (
    EXT,
    OUTSIDE,
    PORT,
    ROUTER,
    TOPOLOGY,
    UPLINK,
    UPSTREAM_MAC,
    from_uplink,
    from_vm,
    policy,
)

VIP = "10.1.0.100"
BALANCER = LoadBalancer("lb1", "web", "n1", VIP, "tcp", 80, "hash", key=700, mac="fa:16:3f:01:02:bc",
                        hairpin_key=702)
MEMBERS = (LbMember("m1", "lb1", "10.1.0.7", 8080, weight=1, key=1),   # n1-b on s3, the VIP's network
           LbMember("m2", "lb1", "10.2.0.5", 8080, weight=3, key=2))   # n2-a on s2, through the router


Fabric = tuple[dict[str, SwitchTables], dict[str, tuple]]


def compiled(pol: Policy) -> Fabric:
    """Each switch's tables and select groups, compiled from `pol`."""
    compiler = Compiler()
    compiler.load(pol, TOPOLOGY)
    compiler.commit()
    groups = {dpid: tuple(compiler.groups(dpid).values()) for dpid in (S1, S2, S3)}
    return ({dpid: SwitchTables(compiler.table(dpid).values(), groups=groups[dpid]) for dpid in (S1, S2, S3)},
            groups)


def fabric(*members: LbMember) -> Fabric:
    return compiled(policy(load_balancers=(dataclasses.replace(BALANCER, members=members),)))


@pytest.fixture(scope="module")
def balanced():
    return fabric(*MEMBERS)


def deliver(fab, dpid: str, pkt: dict, conntrack: Conntrack) -> list:
    tables, groups = fab
    return [(d.dpid, d.port, d.packet) for d in run_fabric(tables, TOPOLOGY, dpid, pkt, conntrack, groups)]


def to_vip(client: str, sport: int, dst_mac: str = BALANCER.mac) -> dict:
    return from_vm(PORT[client], dst_mac, VIP, tcp_src=sport, tcp_dst=80)


def test_the_vip_answers_arp_with_the_balancers_mac(balanced):
    vm = PORT["n1-a"]
    arp = packet(in_port=1, eth_src=vm.mac_address, eth_dst="ff:ff:ff:ff:ff:ff", eth_type=ETH_TYPE_ARP, arp_op=1,
                 arp_spa=vm.ip_address, arp_sha=vm.mac_address, arp_tpa=VIP, arp_tha="00:00:00:00:00:00")
    (dpid, port, reply), = deliver(balanced, S1, arp, Conntrack())
    assert (dpid, port, reply["arp_sha"]) == (S1, 1, mac_to_int(BALANCER.mac))


def test_connections_spread_by_weight_and_each_reply_comes_from_the_vip(balanced):
    conntrack = Conntrack()
    landed: Counter[str] = Counter()
    for sport in range(20000, 20300):
        (dpid, port, frame), = deliver(balanced, S1, to_vip("n1-a", sport), conntrack)
        member = {(S3, 1): "m1", (S2, 1): "m2"}[(dpid, port)]
        landed[member] += 1
        assert frame["tcp_dst"] == 8080 and frame["ipv4_src"] == ip_to_int("10.1.0.5")
        if sport % 50 == 0:  # the member answers: the client sees the VIP
            server = PORT["n1-b" if member == "m1" else "n2-a"]
            gateway = None if member == "m1" else ROUTER.mac
            reply = from_vm(server, gateway or PORT["n1-a"].mac_address, "10.1.0.5", tcp_src=8080, tcp_dst=sport)
            (dpid, port, back), = deliver(balanced, S3 if member == "m1" else S2, reply, conntrack)
            assert (dpid, port) == (S1, 1)
            assert back["ipv4_src"] == ip_to_int(VIP) and back["tcp_src"] == 80
    assert 50 <= landed["m1"] <= 100 and 200 <= landed["m2"] <= 250, landed  # 1:3 of 300


def test_a_connection_stays_on_its_member_while_others_come_go_and_reweigh(balanced):
    """Even a retransmitted first packet: its translation is in conntrack, the group is not asked again."""
    conntrack = Conntrack()
    (dpid, port, _), = deliver(balanced, S1, to_vip("n1-a", 30000), conntrack)
    mine = {(S3, 1): MEMBERS[0], (S2, 1): MEMBERS[1]}[(dpid, port)]
    other = MEMBERS[1] if mine is MEMBERS[0] else MEMBERS[0]
    third = LbMember("m3", "lb1", "10.1.0.5", 8080, weight=9, key=3)  # n1-a itself
    for members in ((mine,), (mine, dataclasses.replace(other, weight=200)), (mine, other, third)):
        again, = deliver(fabric(*members), S1, to_vip("n1-a", 30000), conntrack)
        assert again[:2] == (dpid, port), members
    assert deliver(fabric(other), S1, to_vip("n1-a", 30000), conntrack) == []  # its member gone: cut


def test_offline_and_draining_members_get_no_new_connections():
    fab = fabric(dataclasses.replace(MEMBERS[0], status="OFFLINE"),
                 dataclasses.replace(MEMBERS[1], admin_state_up=False, status="DRAINING"))
    assert deliver(fab, S1, to_vip("n1-a", 40000), Conntrack()) == []
    fab = fabric(dataclasses.replace(MEMBERS[0], status="OFFLINE"), MEMBERS[1])
    assert {d[:2] for sport in range(40000, 40020) for d in deliver(fab, S1, to_vip("n1-a", sport), Conntrack())} \
        == {(S2, 1)}


def test_a_client_on_another_network_of_the_router_reaches_the_vip(balanced):
    conntrack = Conntrack()
    seen = {deliver(balanced, S3, to_vip("n2-b", sport, ROUTER.mac), conntrack)[0][:2] for sport in range(50000, 50030)}
    assert seen == {(S3, 1), (S2, 1)}


def test_other_ports_and_other_tenants_get_nothing_from_the_vip(balanced):
    assert deliver(balanced, S1, from_vm(PORT["n1-a"], BALANCER.mac, VIP, tcp_dst=81), Conntrack()) == []
    assert deliver(balanced, S1, from_vm(PORT["n3-a"], BALANCER.mac, VIP), Conntrack()) == []


def test_two_balancers_share_a_member_host_on_a_network_without_a_router():
    """The same host at another service port (one address:port serves one balancer: the store says so)."""
    second = LoadBalancer("lb2", "api", "n1", "10.1.0.101", "tcp", 80, "hash", key=701, mac="fa:16:3f:01:02:bd",
                          hairpin_key=703,
                          members=(LbMember("m9", "lb2", "10.1.0.7", 8081, key=9),))
    fab = compiled(policy(routers=(), floating_ips=(), mac_bindings=(),
                          load_balancers=(dataclasses.replace(BALANCER, members=(MEMBERS[0],)), second)))
    for vip in (VIP, "10.1.0.101"):
        (dpid, port, frame), = deliver(fab, S1, from_vm(PORT["n1-a"], BALANCER.mac if vip == VIP else second.mac, vip,
                                                          tcp_dst=80), Conntrack())
        assert (dpid, port) == (S3, 1) and frame["ipv4_dst"] == ip_to_int("10.1.0.7")


def test_one_host_as_two_members_at_two_ports():
    both = (LbMember("m1", "lb1", "10.1.0.7", 8080, key=1), LbMember("m4", "lb1", "10.1.0.7", 8081, key=4))
    fab = fabric(*both)
    ports = {deliver(fab, S1, to_vip("n1-a", sport), Conntrack())[0][2]["tcp_dst"] for sport in range(21000, 21040)}
    assert ports == {8080, 8081}


def test_source_ip_hash_keeps_a_client_on_one_member_and_spreads_clients_by_weight():
    """n1-a without port security stands for 300 clients (sources 10.1.1-2.x): each keeps one member whatever its
    source port, and they spread 1:3 like the weights."""
    by_source = dataclasses.replace(BALANCER, algorithm="source_ip_hash", members=MEMBERS)
    open_client = dataclasses.replace(PORT["n1-a"], port_security_enabled=False, security_group_ids=(), profile=0)
    fab = compiled(policy(ports=tuple(open_client if p.id == "n1-a" else p for p in PORT.values()),
                          load_balancers=(by_source,)))
    assert not fab[1][S1]  # weighted slots, not a group
    landed: Counter[tuple[str, int]] = Counter()
    for n in range(300):
        source = ip_to_int(f"10.1.{n // 250 + 1}.{n % 250 + 1}")
        members = {deliver(fab, S1, {**to_vip("n1-a", sport), "ipv4_src": source}, Conntrack())[0][:2]
                   for sport in (23000, 23001, 23002)}
        assert len(members) == 1, (n, members)
        landed.update(members)
    assert 50 <= landed[(S3, 1)] <= 100 and 200 <= landed[(S2, 1)] <= 250, landed  # m1 weight 1, m2 weight 3


def test_one_host_as_two_members_of_a_udp_monitored_balancer_compiles_one_probe_answer():
    """An ICMP port-unreachable names no service port a switch can match: both members want one flow, which stays
    while either of them does."""
    udp = dataclasses.replace(BALANCER, protocol="udp", health_monitor=HealthMonitor("udp", 2.0, 1.0, 3))
    both = (LbMember("m1", "lb1", "10.1.0.7", 8080, key=1), LbMember("m4", "lb1", "10.1.0.7", 8081, key=4))
    for members in (both, both[:1]):
        compiler = Compiler()
        compiler.load(policy(load_balancers=(dataclasses.replace(udp, members=members),)), TOPOLOGY)
        compiler.commit()
        answers = [flow for flow in compiler.table(S3).values() if flow.table == "classify"
                   and ("icmpv4_type", 3, None) in flow.match]
        assert len(answers) == 1


# --- hairpin: a member calls its own VIP ---------------------------------------------------------------------



def test_another_tenant_with_a_members_address_cannot_pass_for_its_hairpin_answer():
    """n3-a (another tenant, N1's CIDR) sends what a member's answer to the VIP looks like from m1's address: nothing
    reaches the member or the client (port security drops the spoof; n3 has no VIP, no router to it)."""
    fab = fabric(MEMBERS[0])
    conntrack = Conntrack()
    (_, _, frame), = deliver(fab, S3, to_vip("n1-b", 31000), conntrack)  # a live hairpin to aim at
    spoof = {**from_vm(PORT["n3-a"], BALANCER.mac, VIP, tcp_src=8080, tcp_dst=frame["tcp_src"]),
             "ipv4_src": ip_to_int("10.1.0.7")}
    assert deliver(fab, S1, spoof, conntrack) == []
    own = from_vm(PORT["n3-a"], BALANCER.mac, VIP, tcp_src=8080, tcp_dst=frame["tcp_src"])
    assert deliver(fab, S1, own, conntrack) == []


def test_a_member_that_gets_itself_sees_the_vip_and_its_answer_comes_back_from_the_vip():
    """m1 (n1-b, on the VIP's network) is the only member and calls the VIP: its connection comes back to its own
    port from the VIP (address and MAC), and its answer to the VIP reaches it as the VIP's reply."""
    fab, client = fabric(MEMBERS[0]), PORT["n1-b"]
    conntrack = Conntrack()
    (dpid, port, frame), = deliver(fab, S3, to_vip("n1-b", 31000), conntrack)
    assert (dpid, port) == (S3, 1)
    assert (frame["ipv4_src"], frame["ipv4_dst"], frame["tcp_dst"]) == (ip_to_int(VIP), ip_to_int("10.1.0.7"), 8080)
    assert (frame["eth_src"], frame["eth_dst"]) == (mac_to_int(BALANCER.mac), mac_to_int(client.mac_address))
    answer = from_vm(client, BALANCER.mac, VIP, tcp_src=8080, tcp_dst=frame["tcp_src"])
    (dpid, port, back), = deliver(fab, S3, answer, conntrack)
    assert (dpid, port) == (S3, 1)
    assert (back["ipv4_src"], back["tcp_src"], back["ipv4_dst"], back["tcp_dst"]) == \
        (ip_to_int(VIP), 80, ip_to_int("10.1.0.7"), 31000)
    assert back["eth_src"] == mac_to_int(BALANCER.mac)
    again, = deliver(fab, S3, to_vip("n1-b", 31000), conntrack)  # established: the same translation
    assert again[2]["ipv4_src"] == ip_to_int(VIP) and again[2]["tcp_src"] == frame["tcp_src"]


def test_a_member_behind_the_router_that_gets_itself_is_answered_through_the_router():
    """m2 (n2-a, on the router's other network) calls the VIP through its router and gets itself."""
    fab, client = fabric(MEMBERS[1]), PORT["n2-a"]
    conntrack = Conntrack()
    (dpid, port, frame), = deliver(fab, S2, to_vip("n2-a", 32000, ROUTER.mac), conntrack)
    assert (dpid, port) == (S2, 1) and frame["ipv4_src"] == ip_to_int(VIP) and frame["tcp_dst"] == 8080
    assert frame["eth_src"] == mac_to_int(ROUTER.mac)
    answer = from_vm(client, ROUTER.mac, VIP, tcp_src=8080, tcp_dst=frame["tcp_src"])
    (dpid, port, back), = deliver(fab, S2, answer, conntrack)
    assert (dpid, port) == (S2, 1)
    assert (back["ipv4_src"], back["tcp_src"], back["tcp_dst"]) == (ip_to_int(VIP), 80, 32000)


def test_a_member_that_gets_another_member_is_answered_by_it_from_the_vip(balanced):
    """m1 calling the VIP lands on itself or on m2; on m2 it keeps its own address (no hairpin translation)."""
    landed = set()
    for sport in range(33000, 33040):
        conntrack = Conntrack()
        (dpid, port, frame), = deliver(balanced, S3, to_vip("n1-b", sport), conntrack)
        landed.add((dpid, port))
        if (dpid, port) == (S2, 1):
            assert frame["ipv4_src"] == ip_to_int("10.1.0.7")
            answer = from_vm(PORT["n2-a"], ROUTER.mac, "10.1.0.7", tcp_src=8080, tcp_dst=sport)
            (dpid, port, back), = deliver(balanced, S2, answer, conntrack)
            assert (dpid, port) == (S3, 1) and back["ipv4_src"] == ip_to_int(VIP) and back["tcp_src"] == 80
        else:
            assert frame["ipv4_src"] == ip_to_int(VIP)
    assert landed == {(S3, 1), (S2, 1)}


# --- from outside, through a floating IP on the VIP ----------------------------------------------------------

VIP_FLOATING = FloatingIP("fip3", EXT.id, "203.0.113.30", load_balancer_id="lb1")


@pytest.fixture(scope="module")
def published() -> Fabric:
    return compiled(policy(floating_ips=(VIP_FLOATING,),
                           load_balancers=(dataclasses.replace(BALANCER, members=MEMBERS),)))


def test_a_floating_ip_on_a_vip_opens_only_the_balancers_service(published):
    """Outside, another port of the floating IP, and the VIP's address itself, get nothing; without the floating IP
    (or with it unmapped) neither does its service."""
    assert deliver(published, S1, from_uplink(OUTSIDE, VIP_FLOATING.address, tcp_dst=22), Conntrack()) == []
    assert deliver(published, S1, from_uplink(OUTSIDE, VIP, tcp_dst=80), Conntrack()) == []
    unmapped = compiled(policy(floating_ips=(dataclasses.replace(VIP_FLOATING, load_balancer_id=None),),
                               load_balancers=(dataclasses.replace(BALANCER, members=MEMBERS),)))
    assert deliver(unmapped, S1, from_uplink(OUTSIDE, VIP_FLOATING.address, tcp_dst=80), Conntrack()) == []


def test_from_outside_through_a_floating_ip_on_the_vip_to_every_member_and_back_from_the_floating_ip(published):
    landed = set()
    for sport in range(34000, 34040):
        conntrack = Conntrack()
        (dpid, port, frame), = deliver(published, S1, from_uplink(OUTSIDE, VIP_FLOATING.address, tcp_src=sport,
                                                                  tcp_dst=80), conntrack)
        member = (dpid, port)
        landed.add(member)
        assert frame["ipv4_src"] == ip_to_int(OUTSIDE) and frame["tcp_dst"] == 8080
        server = PORT["n1-b" if (dpid, port) == (S3, 1) else "n2-a"]
        assert frame["ipv4_dst"] == ip_to_int(server.ip_address)
        answer = from_vm(server, ROUTER.mac, OUTSIDE, tcp_src=8080, tcp_dst=sport)
        (dpid, port, back), = deliver(published, dpid, answer, conntrack)
        assert (dpid, port, back["eth_dst"]) == (S1, UPLINK, mac_to_int(UPSTREAM_MAC))
        assert (back["ipv4_src"], back["tcp_src"]) == (ip_to_int(VIP_FLOATING.address), 80)
        again, = deliver(published, S1, from_uplink(OUTSIDE, VIP_FLOATING.address, tcp_src=sport, tcp_dst=80),
                         conntrack)
        assert again[:2] == member  # established: on its member
    assert landed == {(S3, 1), (S2, 1)}
