"""Tenant isolation and port security: which frames a port may send and where they may go.

Every decision is keyed by the network's segmentation id (REG_NETWORK), never by address, so
tenants may reuse the same CIDR and even the same IPs. Nothing is learned: unicast goes only to
MACs the policy knows, broadcast only to the network's own ports, and between switches frames
carry the segmentation id as their 802.1Q tag.

Flows are switch-local: a network's flows live only on its *span*, the switches that have its
ports and those that its traffic crosses (on the shortest paths between them, and on the part of
the flood tree that joins them). Units compile one port or one network; what they share (where a
port is, a network's members on a switch, its span, its flood flow on a switch) is derived once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from apps.flows import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    MULTICAST_BIT,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Action,
    Flow,
    Move,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
    cookie,
    match,
    set_field,
)
from apps.incremental import Derived, Read, Unit
from apps.model import Network, Port
from apps.pipeline import (
    PRIO_DEFAULT,
    PRIO_HIGH,
    PRIO_LOW,
    REG_DST_PROFILE,
    REG_DST_ZONE,
    REG_IN_PORT,
    REG_NETWORK,
    REG_OUT_PORT,
    REG_SCOPE,
    REG_SRC_PROFILE,
    REG_SRC_ZONE,
)
from apps.topology import Link, Switch

_NO_VLAN = 0  # OFPVID_NONE: matches only untagged frames


@dataclass(frozen=True)
class Placement:
    """A port located in the topology: the switch and OpenFlow port its interface is on."""

    port: Port
    network: Network
    dpid: str
    ofport: int


Local = tuple[tuple[int, int, int], ...]  # (ofport, key, profile) of a network's ports on one switch, by ofport


def _placement(read: Read, port_id: str) -> tuple[str, int] | None:
    """(dpid, ofport) of the up interface a port is bound to, or None: the port is DOWN."""
    port: Port | None = read(("port", port_id))
    if port is None or not port.dpid or not port.interface:
        return None
    switch: Switch | None = read(("switch", port.dpid))
    ofport = switch.ofport(port.interface) if switch else None
    return None if ofport is None else (port.dpid, ofport)


def _local(read: Read, network_id: str, dpid: str) -> Local:
    members = []
    for port_id in read(("net_switch_ports", network_id, dpid)) or ():
        placement = read(("placement", port_id))
        if placement is not None:
            port: Port = read(("port", port_id))
            members.append((placement[1], port.key, port.profile))
    return tuple(sorted(members))


def _net_switches(read: Read, network_id: str) -> tuple[str, ...]:
    """The switches where the network has ports that are up."""
    return tuple(dpid for dpid in read(("switches",)) or () if read(("local", network_id, dpid)))


def _reach(read: Read, network_id: str) -> tuple[str, ...]:
    """The switches the network's frames must reach: its own, and those routing adds (apps.routing.anchors: the
    switches of its router and that router's gateway switch; an external network's uplink and gateway switches)."""
    return tuple(sorted({*read(("net_switches", network_id)), *read(("anchors", network_id))}))


def _flood_links(read: Read, network_id: str) -> frozenset[Link]:
    """The part of the flood tree that joins the network's switches (and its uplink's): leaves without them pruned."""
    members = set(read(("net_switches", network_id)))
    uplink = read(("uplink_port", network_id))
    if uplink is not None:
        members.add(uplink[0])
    if len(members) < 2:
        return frozenset()
    links = set(read(("flood_tree",)))
    while True:
        degree: dict[str, int] = {}
        for link in links:
            degree[link.a_dpid] = degree.get(link.a_dpid, 0) + 1
            degree[link.b_dpid] = degree.get(link.b_dpid, 0) + 1
        bare = {dpid for dpid, n in degree.items() if n == 1 and dpid not in members}
        if not bare:
            return frozenset(links)
        links = {link for link in links if link.a_dpid not in bare and link.b_dpid not in bare}


def _span(read: Read, network_id: str) -> frozenset[str]:
    """The switches that carry the network: those it reaches, those on shortest paths between them, and those of
    its part of the flood tree."""
    members = read(("reach", network_id))
    span = set(members)
    peers = read(("peers",))
    for dst in members:
        hops = read(("hops", dst))
        for src in members:
            here = src
            for _ in range(len(hops)):  # a path visits each switch once at most
                if here == dst or here not in hops:
                    break
                span.add(here)
                here = peers[(here, hops[here])]
    for link in read(("flood_links", network_id)):
        span.update((link.a_dpid, link.b_dpid))
    return frozenset(span)


def _flood_flow(read: Read, network_id: str, dpid: str) -> Flow:
    """Broadcast/multicast through each local port's ingress stages, then along the network's flood tree."""
    network: Network | None = read(("network", network_id))
    if network is None:  # going: so is its unit, in this same commit
        return None
    tree = sorted(link.port_on(dpid) for link in read(("flood_links", network_id)) if dpid in (link.a_dpid,
                                                                                                 link.b_dpid))
    actions = [action for ofport, key, profile in read(("local", network_id, dpid))
               for action in (*_delivery(ofport, key, profile), Resubmit("ingress_acl"))]
    actions += tagged(network.segmentation_id, tuple(tree))
    uplink = read(("uplink_port", network_id))
    if uplink is not None and uplink[0] == dpid:
        actions.append(Output(uplink[1]))
    return Flow("l2_lookup", PRIO_LOW,
                match(**{REG_NETWORK: network.segmentation_id}, eth_dst=(MULTICAST_BIT, MULTICAST_BIT)),
                tuple(actions), cookie=cookie("isolation", network.id))


def _network_flows(read: Read, network_id: str) -> dict[str, list[Flow]]:
    """On every switch of its span: tagged frames of the network accepted from trunks, and its flood flow."""
    network: Network = read(("network", network_id))
    scope = read(("scope", network_id))
    return {dpid: [*_trunk_ingress(network, scope, read(("trunks", dpid))), read(("flood", network_id, dpid))]
            for dpid in read(("span", network_id))}


def _port_flows(read: Read, port_id: str) -> dict[str, list[Flow]]:
    """Where the port is: its classification and delivery. On its network's switches: the ARP answer for it.
    On every other switch of the span: the way toward it."""
    placement = read(("placement", port_id))
    if placement is None:
        return {}
    port: Port = read(("port", port_id))
    network: Network = read(("network", port.network_id))
    placed = Placement(port, network, *placement)
    flows: dict[str, list[Flow]] = {}
    arp = arp_reply(network, port.mac_address, port.ip_address, PRIO_DEFAULT, cookie("isolation", port.id))
    for dpid in read(("reach", network.id)):
        flows.setdefault(dpid, []).append(arp)
    owner = cookie("isolation", port.id)
    dst = match(**{REG_NETWORK: network.segmentation_id}, eth_dst=port.mac_address)
    hops = read(("hops", placed.dpid))
    toward = {}  # first hop port -> the flow (one per port of the fabric, shared by the switches using it)
    for dpid in read(("span", network.id)):
        if dpid != placed.dpid and dpid in hops:
            hop = hops[dpid]
            if hop not in toward:
                toward[hop] = Flow("l2_lookup", PRIO_DEFAULT, dst, tagged(network.segmentation_id, (hop,)),
                                   cookie=owner)
            flows.setdefault(dpid, []).append(toward[hop])
    flows.setdefault(placed.dpid, []).extend([
        *_classify(placed, read(("scope", network.id))),
        Flow("l2_lookup", PRIO_DEFAULT, dst, _deliver(placed), "ingress_acl", owner),
        Flow("port_out", PRIO_DEFAULT, match(**{REG_OUT_PORT: placed.ofport}), (Output(placed.ofport),),
             cookie=owner),
    ])
    return flows


def _classify(placed: Placement, scope: int) -> list[Flow]:
    """Tag the packet with its port and network; with port security, only from its own MAC/IP. Either way only
    untagged frames: a VM port is never a trunk, and a tag from a VM would ride along into the network."""
    port, ofport = placed.port, placed.ofport
    owner = cookie("isolation", port.id)
    tag = (SetField(REG_IN_PORT, ofport), SetField(REG_NETWORK, placed.network.segmentation_id),
           SetField(REG_SCOPE, scope), SetField(REG_SRC_ZONE, port.key), SetField(REG_SRC_PROFILE, port.profile))
    untagged = {"in_port": ofport, "vlan_vid": _NO_VLAN}
    if not port.port_security_enabled:
        return [Flow("classify", PRIO_DEFAULT, match(**untagged), tag, "arp_responder", owner)]
    base = {**untagged, "eth_src": port.mac_address}
    return [
        Flow("classify", PRIO_DEFAULT, match(**base, eth_type=ETH_TYPE_IP, ipv4_src=port.ip_address),
             tag, "arp_responder", owner),
        Flow("classify", PRIO_DEFAULT,
             match(**base, eth_type=ETH_TYPE_ARP, arp_spa=port.ip_address, arp_sha=port.mac_address),
             tag, "arp_responder", owner),
        # Its own DHCP before it has an address: DISCOVER/REQUEST from 0.0.0.0, still from its own MAC.
        Flow("classify", PRIO_DEFAULT,
             match(**base, eth_type=ETH_TYPE_IP, ipv4_src="0.0.0.0", ipv4_dst="255.255.255.255", ip_proto=17,
                   udp_src=68, udp_dst=67), tag, "arp_responder", owner),
    ]


def _trunk_ingress(network: Network, scope: int, trunks: list[int]) -> list[Flow]:
    """A frame tagged with the network's id on an inter-switch link re-enters after the sender's stages: at
    router_in (a frame for a router's external leg goes to the router's gateway switch unrouted), which passes the
    rest on to L2 lookup."""
    seg = network.segmentation_id
    return [Flow("classify", PRIO_HIGH, match(in_port=trunk, vlan_vid=OFPVID_PRESENT | seg),
                 (PopVlan(), SetField(REG_NETWORK, seg), SetField(REG_SCOPE, scope)), "router_in",
                 cookie("isolation", network.id)) for trunk in trunks]


@lru_cache(maxsize=1 << 14)
def tagged(segment: int, ports: tuple[int, ...]) -> tuple[Action, ...]:
    """Tag with the network's segmentation id and out these trunks (built once per network and ports)."""
    if not ports:
        return ()
    return (PushVlan(), SetField("vlan_vid", OFPVID_PRESENT | segment), *(Output(p) for p in ports))


def _deliver(member: Placement) -> tuple[SetField, ...]:
    return _delivery(member.ofport, member.port.key, member.port.profile)


def _delivery(ofport: int, key: int, profile: int) -> tuple[SetField, ...]:
    """Name the local destination port for the ingress stages (its zone, its profile) and port_out; every
    register always, so that a flood's earlier member leaves nothing behind for the next."""
    return (SetField(REG_OUT_PORT, ofport), SetField(REG_DST_ZONE, key), SetField(REG_DST_PROFILE, profile))


def arp_reply(network: Network, mac: str, ip: str, priority: int, owner: int) -> Flow:
    """Answer "who has ip" in this network from the switch, as mac."""
    return Flow(
        "arp_responder", priority,
        match(**{REG_NETWORK: network.segmentation_id}, eth_type=ETH_TYPE_ARP, arp_op=1, arp_tpa=ip),
        (Move("eth_src", "eth_dst", 48), set_field("eth_src", mac), SetField("arp_op", 2),
         Move("arp_sha", "arp_tha", 48), Move("arp_spa", "arp_tpa", 32),
         set_field("arp_sha", mac), set_field("arp_spa", ip), Output(OFPP_IN_PORT)),
        cookie=owner)


DERIVED = {
    "placement": Derived(1, _placement),      # ("placement", port id)
    "local": Derived(2, _local),              # ("local", network id, dpid)
    "net_switches": Derived(3, _net_switches),
    "reach": Derived(7, _reach),
    "flood_links": Derived(8, _flood_links),
    "span": Derived(9, _span),
    "flood": Derived(9, _flood_flow),         # ("flood", network id, dpid)
}
UNITS = {
    "isolation.network": Unit("network", _network_flows),
    "isolation.port": Unit("port", _port_flows),
}
