"""Tenant isolation and port security: which frames a port may send and where they may go.

Every decision is keyed by the network's segmentation id (REG_NETWORK), never by address, so
tenants may reuse the same CIDR and even the same IPs. Nothing is learned: unicast goes only to
MACs the policy knows, broadcast only to the network's own ports, and between switches frames
carry the segmentation id as their 802.1Q tag.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

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
from apps.model import Network, Policy, Port
from apps.pipeline import (
    PRIO_DEFAULT,
    PRIO_HIGH,
    PRIO_LOW,
    REG_DST_ZONE,
    REG_IN_PORT,
    REG_NETWORK,
    REG_OUT_PORT,
    REG_SRC_ZONE,
)
from apps.topology import Topology

_NO_VLAN = 0  # OFPVID_NONE: matches only untagged frames


@dataclass(frozen=True)
class Placement:
    """A port located in the topology: the switch and OpenFlow port its interface is on."""

    port: Port
    network: Network
    dpid: str
    ofport: int


def place_ports(policy: Policy, topology: Topology) -> list[Placement]:
    """Ports whose binding names an up interface of a known switch; the rest are DOWN."""
    placed = []
    for port in policy.ports:
        switch = topology.switch(port.dpid) if port.dpid else None
        ofport = switch.ofport(port.interface) if switch and port.interface else None
        if ofport is not None:
            placed.append(Placement(port, policy.by_network[port.network_id], switch.dpid, ofport))
    return placed


def compile_isolation(policy: Policy, topology: Topology) -> dict[str, list[Flow]]:
    """Flows per dpid for every switch in `topology`."""
    placements = place_ports(policy, topology)
    by_network: dict[str, list[Placement]] = defaultdict(list)
    for placed in placements:
        by_network[placed.network.id].append(placed)
    hops_to = {sw.dpid: topology.next_hops(sw.dpid) for sw in topology.switches}
    flows: dict[str, list[Flow]] = {}
    for switch in topology.switches:
        dpid = switch.dpid
        out = flows[dpid] = []
        trunks = topology.trunk_ports(dpid)
        tree = topology.flood_tree_ports(dpid)
        local_networks = {p.network.id for p in placements if p.dpid == dpid}
        for network_id, members in by_network.items():
            network = members[0].network
            out.extend(_trunk_ingress(network, trunks))
            out.append(_flood(network, [m for m in members if m.dpid == dpid], tree))
            for member in members:
                out.extend(_unicast(member, dpid, hops_to[member.dpid]))
            if network_id in local_networks:
                out.extend(_arp_reply(network, m.port) for m in members)
        for placed in placements:
            if placed.dpid == dpid:
                out.extend(_classify(placed))
                out.append(Flow("port_out", PRIO_DEFAULT, match(**{REG_OUT_PORT: placed.ofport}),
                                (Output(placed.ofport),), cookie=cookie("isolation", placed.port.id)))
    return flows


def _classify(placed: Placement) -> list[Flow]:
    """Tag the packet with its port and network; with port security, only from its own MAC/IP. Either way only
    untagged frames: a VM port is never a trunk, and a tag from a VM would ride along into the network."""
    port, ofport = placed.port, placed.ofport
    owner = cookie("isolation", port.id)
    tag = (SetField(REG_IN_PORT, ofport), SetField(REG_NETWORK, placed.network.segmentation_id),
           SetField(REG_SRC_ZONE, port.key))
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


def _trunk_ingress(network: Network, trunks: list[int]) -> list[Flow]:
    """A frame tagged with the network's id on an inter-switch link re-enters at L2 lookup."""
    seg = network.segmentation_id
    return [Flow("classify", PRIO_HIGH, match(in_port=trunk, vlan_vid=OFPVID_PRESENT | seg),
                 (PopVlan(), SetField(REG_NETWORK, seg)), "l2_lookup", cookie("isolation", network.id))
            for trunk in trunks]


def _tagged_out(network: Network, ports: list[int]) -> list[Action]:
    if not ports:
        return []
    return [PushVlan(), SetField("vlan_vid", OFPVID_PRESENT | network.segmentation_id),
            *(Output(p) for p in ports)]


def _unicast(member: Placement, dpid: str, hops: dict[str, int]) -> list[Flow]:
    """To the local port through port_out, or tagged toward the switch the port is on."""
    dst = match(**{REG_NETWORK: member.network.segmentation_id}, eth_dst=member.port.mac_address)
    owner = cookie("isolation", member.port.id)
    if member.dpid == dpid:
        return [Flow("l2_lookup", PRIO_DEFAULT, dst, _deliver(member), "ingress_acl", owner)]
    if dpid not in hops:
        return []  # no path (yet): dropping beats flooding
    return [Flow("l2_lookup", PRIO_DEFAULT, dst, tuple(_tagged_out(member.network, [hops[dpid]])), cookie=owner)]


def _deliver(member: Placement) -> tuple[SetField, SetField]:
    """Name the local destination port for the ingress stages and port_out."""
    return (SetField(REG_OUT_PORT, member.ofport), SetField(REG_DST_ZONE, member.port.key))


def _flood(network: Network, local: list[Placement], tree: list[int]) -> Flow:
    """Broadcast/multicast through each local port's ingress stages, then along the flood tree."""
    actions = [action for member in sorted(local, key=lambda m: m.ofport)
               for action in (*_deliver(member), Resubmit("ingress_acl"))]
    actions += _tagged_out(network, tree)
    return Flow("l2_lookup", PRIO_LOW,
                match(**{REG_NETWORK: network.segmentation_id}, eth_dst=(MULTICAST_BIT, MULTICAST_BIT)),
                tuple(actions), cookie=cookie("isolation", network.id))


def _arp_reply(network: Network, port: Port) -> Flow:
    """Answer "who has port.ip" in this network from the switch, as port.mac."""
    return Flow(
        "arp_responder", PRIO_DEFAULT,
        match(**{REG_NETWORK: network.segmentation_id}, eth_type=ETH_TYPE_ARP, arp_op=1,
              arp_tpa=port.ip_address),
        (Move("eth_src", "eth_dst", 48), set_field("eth_src", port.mac_address), SetField("arp_op", 2),
         Move("arp_sha", "arp_tha", 48), Move("arp_spa", "arp_tpa", 32),
         set_field("arp_sha", port.mac_address), set_field("arp_spa", port.ip_address), Output(OFPP_IN_PORT)),
        cookie=cookie("isolation", port.id))
