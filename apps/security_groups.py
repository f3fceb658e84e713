"""Stateful security groups (Neutron semantics) compiled to conntrack and conjunctive-match flows.

Each port's conntrack zone is its store-assigned key, so egress (source port's zone) and ingress
(destination port's zone) keep separate connection state. A ct table passes replies and related
packets of committed connections, drops invalid ones, and lets the port's allow-rules decide
everything in the original direction -- established connections included, on every packet. That
re-evaluation is what revokes: once no rule allows an established connection any more, its next
packet is dropped and the connection is marked (ct_mark=1) so that its replies stop too.

A rule with more than one condition (port, remote, protocol/ports) becomes a conjunctive match
(`conjunction(rule key, k/n)`): one clause flow per port of the group, per remote address and per
masked port range, shared between rules, so flows grow with ports + rules, not ports x rules.
Tenants reuse addresses, so a remote address is always matched within its scope (_address_scope):
a remote group's member address in the member's network, a remote prefix in the network of the port
that has the rule.

A port with port security may not act as a DHCP server: the replies a port's own DHCP client needs pass
every ingress stage unfiltered, so they are stopped where they leave the sender instead.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass

from apps.flows import (
    CT_EST,
    CT_INV,
    CT_REL,
    CT_RPL,
    CT_TRK,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    IP_PROTO,
    Conjunction,
    Ct,
    Flow,
    Match,
    cookie,
    ct_state,
    match,
)
from apps.isolation import Placement, place_ports
from apps.model import Network, Policy, SecurityGroupRule
from apps.pipeline import REG_DST_ZONE, REG_IN_PORT, REG_NETWORK, REG_OUT_PORT, REG_SRC_ZONE
from apps.topology import Topology

PRIO_CT_INVALID = 3000
PRIO_UNFILTERED = 2600  # ports with port security disabled skip the ACL stages
PRIO_NO_DHCP_SERVER = 2550  # DHCP replies from ports with port security drop as they leave
PRIO_PASS = 2500      # ARP, own DHCP, replies and related
PRIO_RULE = 1500      # single-condition rules (the port alone)
PRIO_CONJ_HIT = 1200  # conj_id=rule key: the rule matched
PRIO_CLAUSE = 1000    # clause flows of conjunctive rules
PRIO_REVOKE = 10      # an established connection no rule allows any more


@dataclass(frozen=True)
class _Stage:
    """One direction: which tables, which register names the port, which side is 'remote'."""

    direction: str
    acl: str
    ct: str
    after: str
    port_reg: str
    zone_reg: str
    remote_field: str
    dhcp: tuple[int, int]  # (source, destination) UDP ports of the port's own DHCP in this direction


DHCP_SERVER, DHCP_CLIENT = 67, 68  # UDP ports
EGRESS = _Stage("egress", "egress_acl", "egress_ct", "l2_lookup", REG_IN_PORT, REG_SRC_ZONE, "ipv4_dst",
                (DHCP_CLIENT, DHCP_SERVER))
INGRESS = _Stage("ingress", "ingress_acl", "ingress_ct", "port_out", REG_OUT_PORT, REG_DST_ZONE, "ipv4_src",
                 (DHCP_SERVER, DHCP_CLIENT))
_STATIC = cookie("security_groups", "pipeline")

Remote = tuple[Network, str]  # an address or prefix, and the network in which it names ports


def port_masks(low: int, high: int) -> list[tuple[int, int]]:
    """The fewest (value, mask) pairs covering low..high of a 16-bit port number."""
    pieces = []
    while low <= high:
        size = low & -low if low else 1 << 16
        while size > high - low + 1:
            size >>= 1
        pieces.append((low, 0xFFFF & ~(size - 1)))
        low += size
    return pieces


def compile_security_groups(policy: Policy, topology: Topology) -> dict[str, list[Flow]]:
    """Flows per dpid for the ACL and conntrack stages of every switch in `topology`."""
    groups = {g.id: g for g in policy.security_groups}
    members: dict[str, set[Remote]] = defaultdict(set)
    for port in policy.ports:
        for group_id in port.security_group_ids:
            members[group_id].add((policy.by_network[port.network_id], port.ip_address))
    local: dict[str, list[Placement]] = defaultdict(list)
    for placed in place_ports(policy, topology):
        local[placed.dpid].append(placed)
    flows: dict[str, list[Flow]] = {}
    for switch in topology.switches:
        out = flows[switch.dpid] = [_no_dhcp_server()]
        for stage in (EGRESS, INGRESS):
            out.extend(_stage_flows(stage))
            ports_of_rule: dict[SecurityGroupRule, list[Placement]] = defaultdict(list)
            for placed in local[switch.dpid]:
                if not placed.port.port_security_enabled:
                    out.append(Flow(stage.acl, PRIO_UNFILTERED, match(**{stage.port_reg: placed.ofport}),
                                    goto=stage.after, cookie=cookie("security_groups", placed.port.id)))
                    continue
                for group_id in placed.port.security_group_ids:
                    for rule in groups[group_id].rules if group_id in groups else ():
                        if rule.direction == stage.direction:
                            ports_of_rule[rule].append(placed)
            clauses: dict[Match, set[Conjunction]] = defaultdict(set)
            for rule, placements in ports_of_rule.items():
                out.extend(_rule(stage, rule, placements, members, clauses))
            out.extend(Flow(stage.ct, PRIO_CLAUSE, m, tuple(sorted(conj, key=_conj_order)),
                            cookie=cookie("security_groups", "clauses"))
                       for m, conj in clauses.items())
    return {dpid: _dedupe(f) for dpid, f in flows.items()}


def _stage_flows(stage: _Stage) -> list[Flow]:
    """Per-switch flows of one direction that do not depend on any rule."""
    client, server = stage.dhcp
    return [
        Flow(stage.acl, PRIO_PASS, match(eth_type=ETH_TYPE_ARP), goto=stage.after, cookie=_STATIC),
        Flow(stage.acl, PRIO_PASS, match(eth_type=ETH_TYPE_IP, ip_proto=IP_PROTO["udp"], udp_src=client,
                                         udp_dst=server), goto=stage.after, cookie=_STATIC),
        Flow(stage.acl, PRIO_RULE, match(eth_type=ETH_TYPE_IP), (Ct(zone_reg=stage.zone_reg, table=stage.ct),),
             cookie=_STATIC),
        Flow(stage.ct, PRIO_CT_INVALID, match(ct_state=ct_state(CT_TRK | CT_INV)), cookie=_STATIC),
        Flow(stage.ct, PRIO_PASS, match(ct_state=ct_state(CT_TRK | CT_RPL, CT_INV), ct_mark=0),
             goto=stage.after, cookie=_STATIC),
        Flow(stage.ct, PRIO_PASS, match(ct_state=ct_state(CT_TRK | CT_REL, CT_RPL | CT_INV), ct_mark=0),
             goto=stage.after, cookie=_STATIC),
        Flow(stage.ct, PRIO_REVOKE, match(eth_type=ETH_TYPE_IP, ct_state=ct_state(CT_TRK | CT_EST, CT_RPL | CT_INV)),
             (Ct(commit=True, zone_reg=stage.zone_reg, set_mark=1),), cookie=_STATIC),
    ]


def _no_dhcp_server() -> Flow:
    """DHCP replies (unicast or broadcast) from a port with port security drop as they leave it. A port without
    port security passes egress_acl above this (PRIO_UNFILTERED), so it may be the network's DHCP server."""
    return Flow("egress_acl", PRIO_NO_DHCP_SERVER, match(eth_type=ETH_TYPE_IP, ip_proto=IP_PROTO["udp"],
                                                         udp_src=DHCP_SERVER, udp_dst=DHCP_CLIENT), cookie=_STATIC)


def _rule(stage: _Stage, rule: SecurityGroupRule, placements: list[Placement], members: dict[str, set[Remote]],
          clauses: dict[Match, set[Conjunction]]) -> list[Flow]:
    """The flows (or clauses) that let `rule` allow original-direction packets of the ports in `placements`."""
    remotes = _remote_matches(stage, rule, placements, members)
    if remotes == []:
        return []  # a remote group with no members allows nothing
    protocol = _protocol_matches(rule)
    original = ct_state(CT_TRK, CT_RPL | CT_INV)
    accept = (Ct(commit=True, zone_reg=stage.zone_reg, set_mark=0),)
    if remotes is None and protocol is None:
        return [Flow(stage.ct, PRIO_RULE, match(**{stage.port_reg: p.ofport}, eth_type=ETH_TYPE_IP, ct_state=original),
                     accept, stage.after, cookie("security_groups", p.port.id)) for p in placements]
    ports = [match(**{stage.port_reg: p.ofport}) for p in placements]
    dimensions = [ports, *(d for d in (remotes, protocol) if d is not None)]
    for clause, matches in enumerate(dimensions, start=1):
        for m in matches:
            clauses[m].add(Conjunction(rule.key, clause, len(dimensions)))
    return [Flow(stage.ct, PRIO_CONJ_HIT, match(conj_id=rule.key, eth_type=ETH_TYPE_IP, ct_state=original), accept,
                 stage.after, cookie("security_groups", rule.id))]


def _remote_matches(stage: _Stage, rule: SecurityGroupRule, placements: list[Placement],
                    members: dict[str, set[Remote]]) -> list[Match] | None:
    """None: any remote; a list: one of these (empty: nobody). A member's address counts in the member's
    network, a prefix in the network of each port that has the rule."""
    if rule.remote_group_id is not None:
        remotes = members.get(rule.remote_group_id, set())
    elif rule.remote_ip_prefix and ipaddress.IPv4Network(rule.remote_ip_prefix).prefixlen > 0:
        remotes = {(placed.network, rule.remote_ip_prefix) for placed in placements}
    else:
        return None
    return [match(eth_type=ETH_TYPE_IP, **_address_scope(network), **{stage.remote_field: address})
            for network, address in sorted(remotes, key=lambda remote: (remote[0].segmentation_id, remote[1]))]


def _address_scope(network: Network) -> dict[str, int]:
    """The match that says where an address of `network` means what it says: tenants reuse CIDRs, so today that
    is the network itself (REG_NETWORK). Routers will widen it to every network a router joins (their CIDRs never
    overlap), so that a routed packet's source counts in the router's scope: this is the one place to change."""
    return {REG_NETWORK: network.segmentation_id}


def _protocol_matches(rule: SecurityGroupRule) -> list[Match] | None:
    if rule.protocol is None:
        return None
    proto = IP_PROTO[rule.protocol]
    high = rule.port_range_max if rule.port_range_max is not None else rule.port_range_min
    if rule.protocol == "icmp" or rule.port_range_min is None or (rule.port_range_min <= 1 and high == 0xFFFF):
        return [match(eth_type=ETH_TYPE_IP, ip_proto=proto)]
    field = f"{rule.protocol}_dst"
    return [match(eth_type=ETH_TYPE_IP, ip_proto=proto, **{field: piece})
            for piece in port_masks(rule.port_range_min, high)]


def _conj_order(conj: Conjunction) -> tuple[int, int]:
    return (conj.id, conj.clause)


def _dedupe(flows: list[Flow]) -> list[Flow]:
    """Two rules of one port may yield the very same single-condition flow: keep one."""
    return list({flow.key: flow for flow in flows}.values())
