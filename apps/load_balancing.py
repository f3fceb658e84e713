"""L4 load balancers, distributed: the switch where a new connection to a VIP enters picks its member.

A VIP answers ARP with its balancer's MAC. A connection to VIP:port goes through conntrack in the balancer's
own zone (its key) where it enters: a new one is handed to the balancer's select group, whose bucket for each
member that may take connections (admin up, and ONLINE or without a monitor) commits it with the member as its
destination (ct(commit, nat(dst=member:port))); established ones come out of ct(nat) translated. So a
connection stays on its member whatever the group becomes, and changing members or weights moves nothing
established. The translated packet then goes to the member as any other: straight to its port on the VIP's
network, or through the router the VIP's network shares with the member's.

A member's replies go through the balancer's zone again, wherever they pass a switch of the balancer (the
member's, and the client's): ct(nat) gives them back the VIP as their source on the switch that translated the
connection (where the zone has the entry; elsewhere the lookup changes nothing). Clients reach a VIP from its
network, or from another network of a router the VIP's network is on. Security groups apply as to any other
traffic: the client's egress rules see the VIP, the member's ingress rules see the client.

A member that calls its own VIP may get itself (hairpin, as OVN's hairpin_snat_ip): source and destination would
be one address, which its kernel drops. Where it enters, the translated connection is also committed in the
balancer's hairpin zone with the VIP as its source (nat(src=VIP)), so the member sees it come from the VIP and
answers the VIP: that answer is un-SNATed in the hairpin zone, un-DNATed in the balancer's, and sent back to the
port it came from. A member that gets another member needs nothing more: that one answers the caller's address.

`hash` uses the select group: OVS's dp_hash, symmetric over addresses and, for TCP only, ports (so a UDP client
keeps to one member). `source_ip_hash` cannot: OVS takes a group's selection method only in OpenFlow 1.5 group-mods,
and the channel speaks 1.3 (apps.groups); it hashes the source address with multipath over weighted slots.
"""

from __future__ import annotations

import math

from apps.actions import GroupAction, Multipath, Nat
from apps.flows import (
    CT_DNAT,
    CT_INV,
    CT_NEW,
    CT_REL,
    CT_RPL,
    CT_TRK,
    ETH_TYPE_IP,
    IP_PROTO,
    Ct,
    Flow,
    Move,
    SetField,
    aux_cookie,
    controller,
    cookie,
    ct_state,
    ip_to_int,
    match,
    set_field,
)
from apps.groups import Bucket, Group
from apps.incremental import Derived, Read, Unit
from apps.isolation import arp_reply
from apps.model import LbMember, LoadBalancer, Network, Port
from apps.pipeline import PRIO_DEFAULT, PRIO_LOW, REG_NETWORK, REG_NEXTHOP, REG_ROUTER, REG_SCOPE, REG_SLOT
from apps.routing import ANY_PORT, router_of_network

PRIO_VIP = 200          # router_in: to a VIP (below the router's TTL check and its own echo replies)
PRIO_MEMBER_REPLY = 260  # router_in: from a member's service port, through the balancer's zone first
PRIO_HAIRPIN_REPLY = 270  # router_in: ... to the VIP (a hairpin's), through the hairpin zone before that
PRIO_HAIRPIN = PRIO_DEFAULT + 1  # lb_out: to a member from the member itself
PRIO_PROBE_ANSWER = 1001  # classify: above everything a VM port sends (port security, 100)
PROBE_PORTS = (0xF000, 0xFFC0)  # the controller's health probes leave the VIP from ports 61440-61503
ICMP_UNREACHABLE = 3
PRIO_VIP_ARP = PRIO_DEFAULT + 2
SELECTABLE = ("ONLINE", "NO_MONITOR")
MAX_SLOTS = 256  # source_ip_hash: flows per balancer and switch at most (weights are scaled down beyond)


def _members(read: Read, lb_id: str) -> tuple[LbMember, ...]:
    """The balancer's members, by key."""
    members = (read(("lb_member", member_id)) for member_id in read(("lb_members", lb_id)) or ())
    return tuple(sorted((m for m in members if m is not None), key=lambda m: m.key))


def _member_port(read: Read, member_id: str) -> Port | None:
    """The port that holds a member's address, on the balancer's network or one sharing its router."""
    member: LbMember | None = read(("lb_member", member_id))
    balancer: LoadBalancer | None = read(("load_balancer", member.load_balancer_id)) if member else None
    if balancer is None:
        return None
    networks = [balancer.network_id]
    router = router_of_network(read, balancer.network_id)
    if router is not None:
        networks += [i.network_id for i in router.interfaces if i.network_id != balancer.network_id]
    for network_id in networks:
        for port_id in sorted(read(("address", network_id, member.ip_address)) or ()):
            return read(("port", port_id))
    return None


def _lb_flows(read: Read, lb_id: str) -> dict[str, list[Flow | Group]]:
    """A balancer's VIP: ARP, the way in (from its network, and through its network's router), conntrack, and its
    select group of the members that may take new connections."""
    balancer: LoadBalancer = read(("load_balancer", lb_id))
    network: Network | None = read(("network", balancer.network_id))
    if network is None:
        return {}
    owner = cookie("load_balancing", balancer.id)
    zone = balancer.key
    to_vip = {"eth_type": ETH_TYPE_IP, "ip_proto": IP_PROTO[balancer.protocol], "ipv4_dst": balancer.vip_address,
              f"{balancer.protocol}_dst": balancer.port}
    enter = Ct(zone=zone, nat=Nat(), table="lb_ct")
    flows: list[Flow | Group] = [
        arp_reply(network, balancer.mac, balancer.vip_address, PRIO_VIP_ARP, owner),
        Flow("router_in", PRIO_VIP, match(**{REG_NETWORK: network.segmentation_id}, eth_dst=balancer.mac, **to_vip),
             (enter,), cookie=owner),
        # A connection's NAT applies to its later packets whatever their state (a retransmitted SYN is still new):
        # translated ones go on, only untranslated new ones are given a member.
        *(Flow("lb_ct", PRIO_DEFAULT, match(eth_type=ETH_TYPE_IP, ct_state=state, ct_zone=zone), goto="lb_out",
               cookie=owner)
          for state in (ct_state(CT_TRK | CT_DNAT, CT_RPL | CT_INV), ct_state(CT_TRK | CT_REL, CT_RPL | CT_INV))),
        *_choice(balancer, [m for m in _members(read, lb_id) if m.admin_state_up and m.status in SELECTABLE],
                 owner),
    ]
    # After the zone: replies (with the VIP back as their source, where this switch translated them) go on; one a
    # member sent to its router is routed. Connections from the router's other networks enter by its MAC.
    flows.append(Flow("lb_unnat", PRIO_LOW, match(eth_type=ETH_TYPE_IP, ct_zone=zone), goto="l2_lookup",
                      cookie=owner))
    flows += _hairpin(balancer, owner)
    router = router_of_network(read, network.id)
    if router is not None:
        for interface in router.interfaces:
            other: Network | None = read(("network", interface.network_id))
            if other is None:
                continue
            segment = {REG_NETWORK: other.segmentation_id}
            flows += [Flow("router_in", PRIO_VIP, match(**segment, eth_dst=router.mac, **to_vip),
                           (SetField(REG_ROUTER, router.key), enter), cookie=owner),
                      Flow("lb_unnat", PRIO_DEFAULT, match(eth_type=ETH_TYPE_IP, ct_zone=zone, eth_dst=router.mac,
                                                           **segment),
                           (SetField(REG_ROUTER, router.key),), "routing", owner)]
        flows += [Flow("lb_out", PRIO_LOW, match(eth_type=ETH_TYPE_IP, ct_zone=zone, **{REG_ROUTER: router.key}),
                       goto="routing", cookie=owner),
                  Flow("lb_hairpin", PRIO_DEFAULT, match(eth_type=ETH_TYPE_IP, ct_zone=balancer.hairpin_key,
                                                         **{REG_ROUTER: router.key}), goto="routing", cookie=owner)]
    return {dpid: list(flows) for dpid in read(("reach", network.id))}


def _hairpin(balancer: LoadBalancer, owner: int) -> list[Flow]:
    """A member's connection to itself, once its source is the VIP (hairpin zone), goes back to it from the VIP's MAC
    (through the router if it came that way: apps.routing lets a routed frame leave by the port it came in by);
    the answer, once the hairpin zone has given it back its source (the member) as destination, goes through the
    balancer's zone (the VIP back as its source), and is sent back to the member from the VIP's MAC."""
    from_vip = (set_field("eth_src", balancer.mac), Move("ipv4_dst", REG_NEXTHOP, 32), ANY_PORT)
    return [Flow("lb_hairpin", PRIO_DEFAULT, match(eth_type=ETH_TYPE_IP, ct_zone=balancer.hairpin_key,
                                                   **{REG_ROUTER: 0}), from_vip, "neighbor", owner),
            Flow("lb_ct", PRIO_DEFAULT, match(eth_type=ETH_TYPE_IP, ct_zone=balancer.hairpin_key,
                                              ct_state=ct_state(CT_TRK | CT_RPL, CT_INV)),
                 (Ct(zone=balancer.key, nat=Nat(), table="lb_unnat"),), cookie=owner),
            Flow("lb_unnat", PRIO_DEFAULT, match(eth_type=ETH_TYPE_IP, ct_zone=balancer.key, eth_dst=balancer.mac),
                 from_vip, "neighbor", owner)]


def _member_flows(read: Read, member_id: str) -> dict[str, list[Flow]]:
    """A member: the way to it once translated (its port's address is a next hop: apps.routing), its replies through
    the zone, and its answers to health probes. Its cookie is on the way to it alone, which every packet a client
    sends it passes once (where the connection entered the balancer); the others carry its aux_cookie."""
    member: LbMember = read(("lb_member", member_id))
    balancer: LoadBalancer | None = read(("load_balancer", member.load_balancer_id))
    port = read(("member_port", member_id))
    if balancer is None or port is None:
        return {}
    network: Network | None = read(("network", balancer.network_id))
    home: Network | None = read(("network", port.network_id))
    scope = read(("scope", port.network_id))
    if network is None or home is None or scope is None:
        return {}
    counted, owner = cookie("load_balancing", member.id), aux_cookie("load_balancing", member.id)
    zone = balancer.key
    at_member = {"eth_type": ETH_TYPE_IP, "ct_zone": zone, "ipv4_dst": member.ip_address,
                 "ip_proto": IP_PROTO[balancer.protocol], f"{balancer.protocol}_dst": member.port}
    if home.id == network.id:  # on the VIP's network: straight to it, unless the client came through the router
        out = Flow("lb_out", PRIO_DEFAULT, match(**at_member, **{REG_ROUTER: 0}),
                   (Move("ipv4_dst", REG_NEXTHOP, 32),), "neighbor", counted)
    else:  # on another network of the VIP's network's router
        router = router_of_network(read, network.id)
        if router is None:
            return {}
        out = Flow("lb_out", PRIO_DEFAULT, match(**at_member), (SetField(REG_ROUTER, router.key),), "routing",
                   counted)
    from_member = {"eth_type": ETH_TYPE_IP, "ip_proto": IP_PROTO[balancer.protocol], "ipv4_src": member.ip_address,
                   REG_SCOPE: scope, f"{balancer.protocol}_src": member.port}
    reply = Flow("router_in", PRIO_MEMBER_REPLY, match(**from_member), (Ct(zone=zone, nat=Nat(), table="lb_unnat"),),
                 cookie=owner)
    hairpin = Flow("lb_out", PRIO_HAIRPIN, match(**at_member, ipv4_src=member.ip_address),
                   (Ct(commit=True, zone=balancer.hairpin_key, nat=Nat("src", ip_to_int(balancer.vip_address)),
                       table="lb_hairpin"),), cookie=counted)
    hairpin_reply = Flow("router_in", PRIO_HAIRPIN_REPLY, match(**from_member, ipv4_dst=balancer.vip_address),
                         (Ct(zone=balancer.hairpin_key, nat=Nat(), table="lb_ct"),), cookie=owner)
    flows: dict[str, list[Flow]] = {dpid: [out, reply, hairpin, hairpin_reply] for dpid in read(("reach", network.id))}
    placement = read(("placement", port.id))
    monitor = balancer.health_monitor
    if monitor is not None and placement is not None:
        flows.setdefault(placement[0], []).append(_probe_answers(balancer, member, placement[1], owner))
    return flows


def _probe_answers(balancer: LoadBalancer, member: LbMember, ofport: int, owner: int) -> Flow:
    """What a member answers the controller's health probe (sent from the VIP, apps.load_balancing.PROBE_PORTS) goes
    to the controller, never on: a TCP answer from the service port, or an ICMP error (a UDP port unreachable).

    An ICMP error does not show the service port in fields a switch matches, so members of one balancer on one
    address (at several ports) want the same flow: the balancer owns it, and each of them contributes it."""
    answer = {"in_port": ofport, "eth_type": ETH_TYPE_IP, "ipv4_src": member.ip_address,
              "ipv4_dst": balancer.vip_address}
    if balancer.health_monitor.type == "tcp":
        answer |= {"ip_proto": IP_PROTO["tcp"], "tcp_src": member.port, "tcp_dst": PROBE_PORTS}
    else:
        answer |= {"ip_proto": IP_PROTO["icmp"], "icmpv4_type": ICMP_UNREACHABLE}
        owner = aux_cookie("load_balancing", balancer.id)
    return Flow("classify", PRIO_PROBE_ANSWER, match(**answer), (controller(),), cookie=owner, meter="health")


def _choice(balancer: LoadBalancer, members: list[LbMember], owner: int) -> list[Flow | Group]:
    """How a new connection gets its member. `hash`: the select group (a hash of the connection). `source_ip_hash`:
    multipath of the source address over slots, one per unit of weight (weights divided by their gcd, then scaled
    to at most MAX_SLOTS), each slot's flow committing to its member; a source keeps its member while the members
    stay, and a change moves only the sources of the slots it touches."""
    zone = balancer.key
    new = match(eth_type=ETH_TYPE_IP, ct_state=ct_state(CT_TRK | CT_NEW, CT_INV | CT_DNAT), ct_zone=zone)

    def commit(member: LbMember) -> Ct:
        return Ct(commit=True, zone=zone, nat=_to_member(member), table="lb_out")

    if balancer.algorithm == "hash" or not members:
        return [Flow("lb_ct", PRIO_DEFAULT, new, (GroupAction(zone),), cookie=owner),
                Group(zone, tuple(Bucket(m.key, m.weight, (commit(m),)) for m in members), cookie=owner)]
    slots = [member for member, count in zip(members, _slot_counts(members), strict=True)
             for _ in range(count)]
    return [Flow("lb_ct", PRIO_DEFAULT, new, (Multipath(len(slots), REG_SLOT),), "lb_pick", owner),
            *(Flow("lb_pick", PRIO_DEFAULT, match(eth_type=ETH_TYPE_IP, ct_zone=zone, **{REG_SLOT: slot}),
                   (commit(member),), cookie=owner) for slot, member in enumerate(slots))]


def _slot_counts(members: list[LbMember]) -> list[int]:
    """Each member's slots: its weight over the gcd of all weights, scaled down (to at least 1) past MAX_SLOTS."""
    divisor = math.gcd(*(m.weight for m in members))
    total = sum(m.weight for m in members) // divisor
    if total <= MAX_SLOTS:
        return [m.weight // divisor for m in members]
    return [max(1, m.weight // divisor * MAX_SLOTS // total) for m in members]


def _to_member(member: LbMember) -> Nat:
    return Nat("dst", ip_to_int(member.ip_address), port_min=member.port, port_max=member.port)


DERIVED = {
    "member_port": Derived(2, _member_port),  # ("member_port", member id) -> Port | None
}
UNITS = {
    "lb.load_balancer": Unit("load_balancer", _lb_flows),
    "lb.member": Unit("lb_member", _member_flows),
}
