"""Routers, asserted as packet fates through the flow-table simulator: east-west routing on the entry switch,
the gateway's own answers, SNAT and floating IPs on the gateway switch, the uplink, and what stays closed."""

from __future__ import annotations

import dataclasses

import pytest

from apps.compiler import Compiler, compile_all
from apps.flows import ETH_TYPE_ARP, ETH_TYPE_IP, IP_PROTO, ip_to_int, mac_to_int
from apps.flowsim import CONTROLLER, Conntrack, SwitchTables, packet, run_fabric
from apps.model import (
    FloatingIP,
    MacBinding,
    Network,
    Policy,
    Port,
    Router,
    RouterGateway,
    RouterInterface,
    SecurityGroup,
    SecurityGroupRule,
    StaticRoute,
)
from apps.topology import Link, Topology
from tests.unit.fabric_cases import OPEN, S1, S2, S3, profile, switch

N1 = Network("n1", "n1", "10.1.0.0/24", "10.1.0.1", 11)
N2 = Network("n2", "n2", "10.2.0.0/24", "10.2.0.1", 12)
N3 = Network("n3", "n3", "10.1.0.0/24", "10.1.0.1", 13)  # another tenant, N1's CIDR, on no router
EXT = Network("ext", "ext", "203.0.113.0/24", "203.0.113.1", 99, external=True, uplink=(S1, "s1-eth5"))
ROUTER = Router("r1", "r1", "fa:16:3f:00:01:f4", 500,
                (RouterInterface(N1.id, "10.1.0.1"), RouterInterface(N2.id, "10.2.0.1")),
                RouterGateway(EXT.id, "203.0.113.10"))
# A second router, on the other tenant's N3 (N1's CIDR), with its gateway on the same external network.
OTHER_ROUTER = Router("r2", "r2", "fa:16:3f:00:02:00", 600, (RouterInterface(N3.id, "10.1.0.1"),),
                      RouterGateway(EXT.id, "203.0.113.11"))
THEIR_FLOATING = FloatingIP("fip2", EXT.id, "203.0.113.21", "n3-a")
UPSTREAM_MAC = "02:ee:00:00:00:01"
BINDING = MacBinding(EXT.id, "203.0.113.1", UPSTREAM_MAC)
FLOATING = FloatingIP("fip1", EXT.id, "203.0.113.20", "n2-a")
OUTSIDE = "198.51.100.10"
UPLINK = 5  # s1's port to the upstream router


def _vm(name: str, network: Network, ip: str, dpid: str, ofport: int, groups: tuple[str, ...] = (OPEN.id,),
        key: int = 0) -> Port:
    return Port(name, network.id, name, f"02:00:00:00:{network.segmentation_id:02x}:{ofport + int(dpid, 16) * 8:02x}",
                ip, dpid, f"s{int(dpid, 16)}-eth{ofport}", True, groups, key=key or 1000 + len(name) * 10 + ofport
                + int(dpid, 16) * 100, profile=profile(groups))


# s1: n1-a (port 1), n3-a (port 2), uplink (port 5); s2: n2-a (port 1); s3: n1-b (port 1), n2-b (port 2)
PORTS = (_vm("n1-a", N1, "10.1.0.5", S1, 1, key=11), _vm("n3-a", N3, "10.1.0.6", S1, 2, key=12),
         _vm("n2-a", N2, "10.2.0.5", S2, 1, key=21), _vm("n1-b", N1, "10.1.0.7", S3, 1, key=31),
         _vm("n2-b", N2, "10.2.0.7", S3, 2, key=32))
PORT = {port.id: port for port in PORTS}
TOPOLOGY = Topology(tuple(switch(d, 5) for d in (S1, S2, S3)),
                    (Link.between(S1, 3, S2, 3), Link.between(S2, 4, S3, 3)))


def policy(**changes: object) -> Policy:
    base = Policy((N1, N2, N3, EXT), PORTS, (OPEN,), routers=(ROUTER,), floating_ips=(FLOATING,),
                  mac_bindings=(BINDING,))
    return dataclasses.replace(base, **changes)


def tables(pol: Policy) -> dict[str, SwitchTables]:
    return {dpid: SwitchTables(flows.values()) for dpid, flows in compile_all(pol, TOPOLOGY).items()}


@pytest.fixture(scope="module")
def fabric() -> dict[str, SwitchTables]:
    return tables(policy())


def ofport(port: Port) -> int:
    return int(port.interface.rsplit("eth", 1)[1])


def from_vm(port: Port, dst_mac: str, ip_dst: str, proto: str = "tcp", ttl: int = 64, **fields: int) -> dict:
    l4 = {"tcp": {"tcp_src": 40000, "tcp_dst": 80}, "udp": {"udp_src": 40000, "udp_dst": 53},
          "icmp": {"icmpv4_type": 8, "icmpv4_code": 0}}[proto]
    return packet(in_port=ofport(port), eth_src=port.mac_address, eth_dst=dst_mac, eth_type=ETH_TYPE_IP,
                  ipv4_src=port.ip_address, ipv4_dst=ip_dst, ip_proto=IP_PROTO[proto], nw_ttl=ttl, **{**l4, **fields})


def from_uplink(ip_src: str, ip_dst: str, dst_mac: str = ROUTER.mac, **fields: int) -> dict:
    return packet(in_port=UPLINK, eth_src=UPSTREAM_MAC, eth_dst=dst_mac, eth_type=ETH_TYPE_IP, ipv4_src=ip_src,
                  ipv4_dst=ip_dst, ip_proto=IP_PROTO["tcp"], nw_ttl=60, **{"tcp_src": 5555, "tcp_dst": 22, **fields})


def deliveries(fab: dict[str, SwitchTables], dpid: str, pkt: dict, conntrack: Conntrack | None = None) -> list:
    return [(d.dpid, d.port, d.packet) for d in run_fabric(fab, TOPOLOGY, dpid, pkt, conntrack)]


def test_routed_across_switches_with_router_mac_and_ttl_decremented(fabric):
    for proto in ("tcp", "udp"):
        (dpid, port, frame), = deliveries(fabric, S1, from_vm(PORT["n1-a"], ROUTER.mac, "10.2.0.5", proto))
        assert (dpid, port) == (S2, 1)
        assert frame["eth_src"] == mac_to_int(ROUTER.mac) and frame["eth_dst"] == mac_to_int(PORT["n2-a"].mac_address)
        assert frame["ipv4_src"] == ip_to_int("10.1.0.5") and frame["nw_ttl"] == 63


def test_routing_happens_on_the_entry_switch():
    """From s3 to a VM on s3 of the other network: delivered on s3, never crossing a link."""
    (dpid, port, frame), = deliveries(tables(policy()), S3, from_vm(PORT["n1-b"], ROUTER.mac, "10.2.0.7"))
    assert (dpid, port) == (S3, 2) and frame["nw_ttl"] == 63


def test_gateway_answers_arp_and_ping_from_the_switch(fabric):
    n1 = PORT["n1-a"]
    arp = packet(in_port=1, eth_src=n1.mac_address, eth_dst="ff:ff:ff:ff:ff:ff", eth_type=ETH_TYPE_ARP, arp_op=1,
                 arp_spa=n1.ip_address, arp_sha=n1.mac_address, arp_tpa="10.1.0.1", arp_tha="00:00:00:00:00:00")
    (dpid, port, reply), = deliveries(fabric, S1, arp)
    assert (dpid, port, reply["arp_op"], reply["arp_sha"]) == (S1, 1, 2, mac_to_int(ROUTER.mac))
    for address in ("10.1.0.1", "10.2.0.1", "203.0.113.10"):  # any of the router's addresses
        (dpid, port, echo), = deliveries(fabric, S1, from_vm(n1, ROUTER.mac, address, "icmp", ttl=1))
        assert (dpid, port, echo["icmpv4_type"]) == (S1, 1, 0)
        assert echo["ipv4_src"] == ip_to_int(address) and echo["ipv4_dst"] == ip_to_int(n1.ip_address)
        assert echo["eth_dst"] == mac_to_int(n1.mac_address) and echo["eth_src"] == mac_to_int(ROUTER.mac)


def test_a_ttl_running_out_goes_to_the_controller_not_on(fabric):
    for ttl in (0, 1):
        (dpid, port, frame), = deliveries(fabric, S3, from_vm(PORT["n1-b"], ROUTER.mac, "10.2.0.5", ttl=ttl))
        assert (dpid, port) == (S3, CONTROLLER)
        assert frame["reg8"] == ROUTER.key and frame["reg1"] == N1.segmentation_id


def test_a_network_not_on_the_router_gets_nothing_from_it(fabric):
    n3 = PORT["n3-a"]  # same CIDR and gateway address as N1
    assert deliveries(fabric, S1, from_vm(n3, ROUTER.mac, "10.2.0.5")) == []
    assert deliveries(fabric, S1, from_vm(n3, ROUTER.mac, "10.1.0.1", "icmp")) == []
    arp = packet(in_port=2, eth_src=n3.mac_address, eth_dst="ff:ff:ff:ff:ff:ff", eth_type=ETH_TYPE_ARP, arp_op=1,
                 arp_spa=n3.ip_address, arp_sha=n3.mac_address, arp_tpa="10.1.0.1", arp_tha="00:00:00:00:00:00")
    assert all(frame.get("arp_op") != 2 for _, _, frame in deliveries(fabric, S1, arp))
    # and the router never routes into it: N1's address 10.1.0.6 is n3-a's in another tenant
    assert all((d, p) != (S1, 2) for d, p, _ in deliveries(fabric, S2, from_vm(PORT["n2-a"], ROUTER.mac, "10.1.0.6")))


def test_snat_from_a_non_gateway_switch_leaves_by_the_uplink_from_the_gateway_ip(fabric):
    conntrack = Conntrack()
    vm = PORT["n1-b"]  # on s3; the gateway switch is s1 (the uplink's)
    (dpid, port, out), = deliveries(fabric, S3, from_vm(vm, ROUTER.mac, OUTSIDE), conntrack)
    assert (dpid, port) == (S1, UPLINK)
    assert out["ipv4_src"] == ip_to_int("203.0.113.10") and out["ipv4_dst"] == ip_to_int(OUTSIDE)
    assert out["eth_src"] == mac_to_int(ROUTER.mac) and out["eth_dst"] == mac_to_int(UPSTREAM_MAC)
    assert out["nw_ttl"] == 63
    reply = from_uplink(OUTSIDE, "203.0.113.10", tcp_src=80, tcp_dst=out["tcp_src"])
    (dpid, port, back), = deliveries(fabric, S1, reply, conntrack)
    assert (dpid, port) == (S3, 1)
    assert back["ipv4_dst"] == ip_to_int(vm.ip_address) and back["tcp_dst"] == 40000
    assert back["eth_dst"] == mac_to_int(vm.mac_address)


def test_unsolicited_traffic_to_the_gateway_ip_or_a_fixed_ip_goes_nowhere(fabric):
    assert deliveries(fabric, S1, from_uplink(OUTSIDE, "203.0.113.10")) == []
    assert deliveries(fabric, S1, from_uplink(OUTSIDE, "10.1.0.5")) == []


def test_floating_ip_both_ways(fabric):
    conntrack = Conntrack()
    vm = PORT["n2-a"]
    (dpid, port, inbound), = deliveries(fabric, S1, from_uplink(OUTSIDE, FLOATING.address), conntrack)
    assert (dpid, port) == (S2, 1)
    assert inbound["ipv4_dst"] == ip_to_int(vm.ip_address) and inbound["ipv4_src"] == ip_to_int(OUTSIDE)
    reply = from_vm(vm, ROUTER.mac, OUTSIDE, tcp_src=22, tcp_dst=5555)
    (dpid, port, out), = deliveries(fabric, S2, reply, conntrack)
    assert (dpid, port) == (S1, UPLINK) and out["ipv4_src"] == ip_to_int(FLOATING.address)
    # its own new connections leave from the floating IP too, not the gateway IP
    (_, _, own), = deliveries(fabric, S2, from_vm(vm, ROUTER.mac, OUTSIDE, tcp_src=41000), conntrack)
    assert own["ipv4_src"] == ip_to_int(FLOATING.address)


def test_arp_on_the_uplink_is_answered_for_the_gateway_ip_and_attached_floating_ips_only():
    def ask(fab: dict[str, SwitchTables], address: str) -> list:
        arp = packet(in_port=UPLINK, eth_src=UPSTREAM_MAC, eth_dst="ff:ff:ff:ff:ff:ff", eth_type=ETH_TYPE_ARP,
                     arp_op=1, arp_spa="203.0.113.1", arp_sha=UPSTREAM_MAC, arp_tpa=address,
                     arp_tha="00:00:00:00:00:00")
        return [frame for _, port, frame in deliveries(fab, S1, arp) if port == UPLINK and frame["arp_op"] == 2]

    attached = tables(policy())
    assert [f["arp_sha"] for f in ask(attached, "203.0.113.10")] == [mac_to_int(ROUTER.mac)]
    assert [f["arp_sha"] for f in ask(attached, FLOATING.address)] == [mac_to_int(ROUTER.mac)]
    detached = tables(policy(floating_ips=(dataclasses.replace(FLOATING, port_id=None),)))
    assert ask(detached, FLOATING.address) == []
    assert deliveries(detached, S1, from_uplink(OUTSIDE, FLOATING.address)) == []


def test_an_unresolved_next_hop_goes_to_the_controller_and_arp_replies_from_the_uplink_too():
    fab = tables(policy(mac_bindings=()))
    (dpid, port, frame), = deliveries(fab, S3, from_vm(PORT["n1-b"], ROUTER.mac, OUTSIDE))
    assert (dpid, port) == (S1, CONTROLLER)
    assert frame["reg9"] == ip_to_int("203.0.113.1") and frame["reg8"] == ROUTER.key
    reply = packet(in_port=UPLINK, eth_src=UPSTREAM_MAC, eth_dst=ROUTER.mac, eth_type=ETH_TYPE_ARP, arp_op=2,
                   arp_spa="203.0.113.1", arp_sha=UPSTREAM_MAC, arp_tpa="203.0.113.10", arp_tha=ROUTER.mac)
    assert [(d, p) for d, p, _ in deliveries(fab, S1, reply)] == [(S1, CONTROLLER)]


def test_sources_inside_the_router_are_refused_from_the_outside(fabric):
    conntrack = Conntrack()
    deliveries(fabric, S1, from_uplink(OUTSIDE, FLOATING.address), conntrack)
    assert deliveries(fabric, S1, from_uplink("10.1.0.5", FLOATING.address, tcp_src=6000), conntrack) == []


def test_static_route_and_on_link_external_hosts():
    routed = dataclasses.replace(ROUTER, routes=(StaticRoute("192.0.2.0/24", "203.0.113.2"),))
    fab = tables(policy(routers=(routed,), mac_bindings=(BINDING, MacBinding(EXT.id, "203.0.113.2",
                                                                             "02:ee:00:00:00:02"))))
    for destination, mac in (("192.0.2.9", "02:ee:00:00:00:02"), (OUTSIDE, UPSTREAM_MAC),
                             ("203.0.113.2", "02:ee:00:00:00:02")):
        (_, port, out), = deliveries(fab, S3, from_vm(PORT["n1-b"], ROUTER.mac, destination))
        assert port == UPLINK and out["eth_dst"] == mac_to_int(mac)


def test_security_groups_see_routed_packets_in_the_routers_scope():
    """n2-a admits TCP 22 only from group `web`, which only n1-a is in: n1-b (same network) is refused, and so is
    n3-a's identical address in another tenant."""
    web = SecurityGroup("web", "web", (SecurityGroupRule("web-out", "web", "egress", key=11),))
    locked = SecurityGroup("locked", "locked", (
        SecurityGroupRule("ssh-from-web", "locked", "ingress", "tcp", 22, 22, remote_group_id="web", key=12),
        SecurityGroupRule("locked-out", "locked", "egress", key=13)))
    ports = tuple(dataclasses.replace(p, security_group_ids=g, profile=profile(g)) for p, g in (
        (PORT["n1-a"], ("web",)), (PORT["n2-a"], ("locked",)), (PORT["n1-b"], (OPEN.id,)), (PORT["n3-a"], ("web",)),
        (PORT["n2-b"], (OPEN.id,))))
    fab = tables(policy(ports=ports, security_groups=(OPEN, web, locked)))
    ssh = {"tcp_dst": 22}
    assert [(d, p) for d, p, _ in deliveries(fab, S1, from_vm(PORT["n1-a"], ROUTER.mac, "10.2.0.5", **ssh))] \
        == [(S2, 1)]
    assert deliveries(fab, S3, from_vm(PORT["n1-b"], ROUTER.mac, "10.2.0.5", **ssh)) == []
    assert deliveries(fab, S1, from_vm(PORT["n1-a"], ROUTER.mac, "10.2.0.5", tcp_dst=80)) == []


def test_a_router_without_a_gateway_routes_east_west_and_drops_the_rest():
    fab = tables(policy(routers=(dataclasses.replace(ROUTER, gateway=None),), floating_ips=()))
    (dpid, port, _), = deliveries(fab, S1, from_vm(PORT["n1-a"], ROUTER.mac, "10.2.0.5"))
    assert (dpid, port) == (S2, 1)
    assert deliveries(fab, S3, from_vm(PORT["n1-b"], ROUTER.mac, OUTSIDE)) == []
    assert deliveries(fab, S1, from_uplink(OUTSIDE, "203.0.113.10")) == []


def test_incremental_router_changes_equal_a_full_compile():
    """Each step as the store's journal would hand it over: the flows equal a compile from scratch."""
    bare = dataclasses.replace(ROUTER, gateway=None, interfaces=ROUTER.interfaces[:1])
    moved_port = dataclasses.replace(PORT["n2-b"], dpid=S1, interface="s1-eth4")
    steps = [
        ("router", ROUTER.id, bare), ("router", ROUTER.id, dataclasses.replace(bare, interfaces=ROUTER.interfaces)),
        ("router", ROUTER.id, ROUTER), ("floating_ip", FLOATING.id, FLOATING),
        ("mac_binding", BINDING.id, BINDING),
        ("floating_ip", FLOATING.id, dataclasses.replace(FLOATING, port_id="n2-b")),
        ("port", "n2-b", moved_port),
        ("router", ROUTER.id, dataclasses.replace(ROUTER, routes=(StaticRoute("192.0.2.0/24", "203.0.113.2"),))),
        ("floating_ip", FLOATING.id, dataclasses.replace(FLOATING, port_id=None)),
        ("mac_binding", BINDING.id, None), ("floating_ip", FLOATING.id, None), ("router", ROUTER.id, None),
    ]
    state = {"router": {}, "floating_ip": {}, "mac_binding": {}, "port": dict(PORT)}
    compiler = Compiler()
    compiler.load(policy(routers=(), floating_ips=(), mac_bindings=()), TOPOLOGY)
    compiler.commit()
    for kind, object_id, value in steps:
        state[kind][object_id] = value
        compiler.put(kind, object_id, value)
        compiler.commit()
        now = policy(ports=tuple(state["port"].values()),
                     **{f"{kind}s": tuple(v for v in state[kind].values() if v is not None)
                        for kind in ("router", "floating_ip", "mac_binding")})
        full = compile_all(now, TOPOLOGY)
        assert {dpid: dict(compiler.table(dpid)) for dpid in full} == full, (kind, object_id, value)


def test_hairpin_between_two_routers_on_one_external_network():
    """n1-a (behind the router) opens a connection to the floating IP of n3-a, behind a second router with the same
    CIDR: it arrives from the first router's gateway IP, and the reply comes back from the floating IP. A router's
    own traffic to its own floating IP is no hairpin it makes: it drops."""
    other, theirs = OTHER_ROUTER, THEIR_FLOATING
    fab = tables(policy(routers=(ROUTER, other), floating_ips=(FLOATING, theirs)))
    conntrack = Conntrack()
    (dpid, port, there), = deliveries(fab, S1, from_vm(PORT["n1-a"], ROUTER.mac, theirs.address), conntrack)
    assert (dpid, port) == (S1, 2)
    assert there["ipv4_src"] == ip_to_int("203.0.113.10") and there["ipv4_dst"] == ip_to_int("10.1.0.6")
    assert there["nw_ttl"] == 62 and there["eth_src"] == mac_to_int(other.mac)
    back = from_vm(PORT["n3-a"], other.mac, "203.0.113.10", tcp_src=80, tcp_dst=there["tcp_src"])
    (dpid, port, home), = deliveries(fab, S1, back, conntrack)
    assert (dpid, port) == (S1, 1)
    assert home["ipv4_src"] == ip_to_int(theirs.address) and home["ipv4_dst"] == ip_to_int("10.1.0.5")
    assert deliveries(fab, S3, from_vm(PORT["n1-b"], ROUTER.mac, FLOATING.address), conntrack) == []


def test_a_frame_routed_back_over_the_trunk_it_came_by_leaves_by_it():
    """From s3 to the floating IP of a VM on s3 behind the other router: to the gateway switch s1 and back over the
    same link (OVS skips an output to the input port: routing forgets the input port)."""
    theirs_on_s3 = dataclasses.replace(PORT["n3-a"], dpid=S3, interface="s3-eth4")
    fab = tables(policy(ports=(*(p for p in PORTS if p.id != "n3-a"), theirs_on_s3),
                        routers=(ROUTER, OTHER_ROUTER), floating_ips=(FLOATING, THEIR_FLOATING)))
    (dpid, port, there), = deliveries(fab, S3, from_vm(PORT["n1-b"], ROUTER.mac, THEIR_FLOATING.address))
    assert (dpid, port) == (S3, 4) and there["ipv4_dst"] == ip_to_int(theirs_on_s3.ip_address)
