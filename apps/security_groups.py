"""Stateful security groups (Neutron semantics) compiled to conntrack and conjunctive-match flows.

Each port's conntrack zone is its store-assigned key, so egress (source port's zone) and ingress
(destination port's zone) keep separate connection state. A ct table passes replies and related
packets of committed connections, drops invalid ones, and lets the port's allow-rules decide
everything in the original direction -- established connections included, on every packet. That
re-evaluation is what revokes: once no rule allows an established connection any more, its next
packet is dropped and the connection is marked (the CT_MARK_REVOKED bit) so that its replies stop too. The
stages read and write that bit alone, with its mask: other stages' bits of ct_mark never interfere.

A rule with more than one condition (port, remote, protocol/ports) becomes a conjunctive match
(`conjunction(rule key, k/n)`): one clause flow per port of the group, per remote address and per
masked port range, shared between rules, so flows grow with ports + rules, not ports x rules.
Tenants reuse addresses, so a remote address is always matched within its scope (REG_SCOPE, apps.routing's
"scope"): a remote group's member address in the member's network, a remote prefix in the network of the port
that has the rule -- or, for networks on a router, in all of that router's networks (their CIDRs never overlap,
and a routed packet keeps its scope).

Units: per switch the rule-independent flows; per port its own part (unfiltered, single-condition rules,
its clause of each conjunctive rule); per rule its conj_id flow, protocol and prefix clauses on the switches
where ports with it are (`rule_sites`); per member of a group its address clause for every rule that names
the group as remote. A port joining a group of 5,000 recompiles that port's units, not the group's.

A port with port security may not act as a DHCP server: the replies a port's own DHCP client needs pass
every ingress stage unfiltered, so they are stopped where they leave the sender instead.
"""

from __future__ import annotations

import ipaddress
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
from apps.incremental import Derived, Read, Share, Unit
from apps.model import Port, SecurityGroupRule
from apps.pipeline import (
    CT_MARK_REVOKED,
    REG_DST_PROFILE,
    REG_DST_ZONE,
    REG_IN_PORT,
    REG_OUT_PORT,
    REG_SCOPE,
    REG_SRC_PROFILE,
    REG_SRC_ZONE,
)

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
    """One direction: which tables, which registers name the port and its profile, which side is 'remote'."""

    direction: str
    acl: str
    ct: str
    after: str
    port_reg: str
    zone_reg: str
    profile_reg: str
    remote_field: str
    dhcp: tuple[int, int]  # (source, destination) UDP ports of the port's own DHCP in this direction


DHCP_SERVER, DHCP_CLIENT = 67, 68  # UDP ports
EGRESS = _Stage("egress", "egress_acl", "egress_ct", "router_in", REG_IN_PORT, REG_SRC_ZONE, REG_SRC_PROFILE,
                "ipv4_dst", (DHCP_CLIENT, DHCP_SERVER))
INGRESS = _Stage("ingress", "ingress_acl", "ingress_ct", "port_out", REG_OUT_PORT, REG_DST_ZONE, REG_DST_PROFILE,
                 "ipv4_src", (DHCP_SERVER, DHCP_CLIENT))
STAGES = {stage.direction: stage for stage in (EGRESS, INGRESS)}
_NOT_REVOKED = (0, CT_MARK_REVOKED)  # ct_mark match: the revoked bit clear, whatever the others
_STATIC = cookie("security_groups", "pipeline")
_CLAUSES = cookie("security_groups", "clauses")


def profile_cookie(profile: int) -> int:
    """The cookie of a profile's flows (the groups its ports share), which count for its allow-all rules."""
    return cookie("security_groups", f"profile/{profile}")


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
        Flow(stage.ct, PRIO_PASS, match(ct_state=ct_state(CT_TRK | CT_RPL, CT_INV), ct_mark=_NOT_REVOKED),
             goto=stage.after, cookie=_STATIC),
        Flow(stage.ct, PRIO_PASS, match(ct_state=ct_state(CT_TRK | CT_REL, CT_RPL | CT_INV), ct_mark=_NOT_REVOKED),
             goto=stage.after, cookie=_STATIC),
        Flow(stage.ct, PRIO_REVOKE, match(eth_type=ETH_TYPE_IP, ct_state=ct_state(CT_TRK | CT_EST, CT_RPL | CT_INV)),
             (Ct(commit=True, zone_reg=stage.zone_reg, set_mark=CT_MARK_REVOKED, mark_mask=CT_MARK_REVOKED),),
             cookie=_STATIC),
    ]


def _no_dhcp_server() -> Flow:
    """DHCP replies (unicast or broadcast) from a port with port security drop as they leave it. A port without
    port security passes egress_acl above this (PRIO_UNFILTERED), so it may be the network's DHCP server."""
    return Flow("egress_acl", PRIO_NO_DHCP_SERVER, match(eth_type=ETH_TYPE_IP, ip_proto=IP_PROTO["udp"],
                                                         udp_src=DHCP_SERVER, udp_dst=DHCP_CLIENT), cookie=_STATIC)


def _switch_flows(read: Read, dpid: str) -> dict[str, list[Flow]]:
    """What every switch carries whatever the rules: no DHCP server behind port security, and per direction
    the ACL and conntrack stages' own flows."""
    return {dpid: [_no_dhcp_server(), *_stage_flows(EGRESS), *_stage_flows(INGRESS)]}


@dataclass(frozen=True)
class _Shape:
    """How a rule compiles: single-condition (one flow per port) or a conjunction of `n` clauses."""

    stage: _Stage
    has_remote: bool
    protocol: tuple[Match, ...] | None

    @property
    def single(self) -> bool:
        return not self.has_remote and self.protocol is None

    @property
    def clauses(self) -> int:
        return 1 + self.has_remote + (self.protocol is not None)


def _shape(rule: SecurityGroupRule) -> _Shape:
    prefix = rule.remote_ip_prefix and ipaddress.IPv4Network(rule.remote_ip_prefix).prefixlen > 0
    protocol = _protocol_matches(rule)
    return _Shape(STAGES[rule.direction], bool(rule.remote_group_id or prefix),
                  None if protocol is None else tuple(protocol))


def single_condition(rule: SecurityGroupRule) -> bool:
    """A rule that allows everything in its direction: one flow per profile and direction, shared by every such
    rule of the profile's groups (so it carries the profile's cookie, not the rule's)."""
    return _shape(rule).single


def _live(read: Read, rule: SecurityGroupRule) -> bool:
    """A rule whose remote group has no members allows nothing: it makes no flow at all."""
    return rule.remote_group_id is None or bool(read(("group_live", rule.remote_group_id)))


def _group_live(read: Read, group_id: str) -> bool:
    return bool(read(("group_ports", group_id)))


def _original(stage: _Stage, **fields: object) -> Match:
    return match(**fields, eth_type=ETH_TYPE_IP, ct_state=ct_state(CT_TRK, CT_RPL | CT_INV))


def _accept(stage: _Stage) -> tuple[Ct]:
    """Commit, clearing the revoked bit: a connection a rule allows again recovers."""
    return (Ct(commit=True, zone_reg=stage.zone_reg, set_mark=0, mark_mask=CT_MARK_REVOKED),)


def _unfiltered_flows(read: Read, port_id: str) -> dict[str, list[Flow]]:
    """A placed port without port security skips both ACL stages."""
    placement = read(("placement", port_id))
    port: Port | None = read(("port", port_id))
    if placement is None or port is None or port.port_security_enabled:
        return {}
    dpid, ofport = placement
    return {dpid: [Flow(stage.acl, PRIO_UNFILTERED, match(**{stage.port_reg: ofport}), goto=stage.after,
                        cookie=cookie("security_groups", port.id)) for stage in (EGRESS, INGRESS)]}


def _profile_sites(read: Read, profile: int) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(dpid, address scopes of their networks) of the switches where ports with this profile are up."""
    sites = []
    for dpid in read(("switches",)) or ():
        scopes = set()
        for port_id in read(("profile_switch_ports", profile, dpid)) or ():
            port: Port | None = read(("port", port_id))
            placement = read(("placement", port_id))
            if port is not None and placement is not None:
                scopes.add(read(("scope", port.network_id)))
        if scopes:
            sites.append((dpid, tuple(sorted(scopes))))
    return tuple(sites)


Site = tuple[str, tuple[int, ...], tuple[int, ...]]  # dpid, networks' address scopes, profiles there


def _rule_sites(read: Read, rule_id: str) -> tuple[Site, ...]:
    """Where ports that have the rule are: per switch, their networks and their profiles (each profile with the
    rule's group)."""
    rule: SecurityGroupRule | None = read(("rule", rule_id))
    if rule is None:  # going: its unit is removed in this same commit
        return ()
    scopes: dict[str, set[int]] = {}
    profiles: dict[str, set[int]] = {}
    for profile in read(("group_profiles", rule.security_group_id)) or ():
        for dpid, profile_scopes in read(("profile_sites", profile)):
            scopes.setdefault(dpid, set()).update(profile_scopes)
            profiles.setdefault(dpid, set()).add(profile)
    return tuple((dpid, tuple(sorted(scopes[dpid])), tuple(sorted(profiles[dpid]))) for dpid in sorted(scopes))


def _rule_flows(read: Read, rule_id: str) -> dict[str, list[Flow | Share]]:
    """All a rule allows, on every switch where ports that have it are. A single-condition rule: one flow per
    profile and direction (the same flow for every such rule of the profile, so they merge into one). A conjunctive
    rule: the profiles' clause (1), a prefix clause (2) in each network there, the protocol clause (last), and
    its conj_id flow; its remote group's members add their own clause 2 (_member_flows). A rule is compiled
    alone: adding one to a group of 1,000 does not recompile the 1,000."""
    rule: SecurityGroupRule = read(("rule", rule_id))
    if not _live(read, rule):
        return {}
    shape = _shape(rule)
    stage = shape.stage
    flows: dict[str, list[Flow | Share]] = {}
    if shape.single:
        for dpid, _, profiles in read(("rule_sites", rule_id)):
            flows[dpid] = [Flow(stage.ct, PRIO_RULE, _original(stage, **{stage.profile_reg: profile}), _accept(stage),
                                stage.after, profile_cookie(profile)) for profile in profiles]
        return flows
    first = frozenset({Conjunction(rule.key, 1, shape.clauses)})
    last = frozenset({Conjunction(rule.key, shape.clauses, shape.clauses)})
    protocol = [Share(stage.ct, PRIO_CLAUSE, m, last, _CLAUSES) for m in shape.protocol or ()]
    hit = Flow(stage.ct, PRIO_CONJ_HIT, _original(stage, conj_id=rule.key), _accept(stage), stage.after,
               cookie("security_groups", rule.id))
    for dpid, scopes, profiles in read(("rule_sites", rule_id)):
        flows[dpid] = [hit, *protocol, *(Share(stage.ct, PRIO_CLAUSE, match(**{stage.profile_reg: profile}), first,
                                               _CLAUSES) for profile in profiles)]
        if shape.has_remote and rule.remote_group_id is None:  # a prefix, in each network the rule's ports are in
            flows[dpid] += [Share(stage.ct, PRIO_CLAUSE, _remote(stage, scope, rule.remote_ip_prefix),
                                  frozenset({Conjunction(rule.key, 2, shape.clauses)}), _CLAUSES)
                            for scope in scopes]
    return flows


def _member_flows(read: Read, port_id: str) -> dict[str, list[Share]]:
    """A port's address as clause 2 of every rule that names one of its groups as remote, wherever that rule is."""
    port: Port = read(("port", port_id))
    scope: int | None = read(("scope", port.network_id))
    if scope is None:
        return {}
    flows: dict[str, list[Share]] = {}
    for group_id in port.security_group_ids:
        for rule_id in sorted(read(("referrers", group_id)) or ()):
            rule: SecurityGroupRule | None = read(("rule", rule_id))
            if rule is None:
                continue
            shape = _shape(rule)
            share = Share(shape.stage.ct, PRIO_CLAUSE, _remote(shape.stage, scope, port.ip_address),
                          frozenset({Conjunction(rule.key, 2, shape.clauses)}), _CLAUSES)
            for dpid, _, _ in read(("rule_sites", rule_id)):
                flows.setdefault(dpid, []).append(share)
    return flows


def _remote(stage: _Stage, scope: int, address: str) -> Match:
    """An address within its scope: tenants reuse CIDRs."""
    return match(eth_type=ETH_TYPE_IP, **{REG_SCOPE: scope, stage.remote_field: address})


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


DERIVED = {
    "group_live": Derived(1, _group_live),
    "profile_sites": Derived(3, _profile_sites),   # ("profile_sites", profile)
    "rule_sites": Derived(4, _rule_sites),
}
UNITS = {
    "sg.switch": Unit("switch", _switch_flows),
    "sg.unfiltered": Unit("port", _unfiltered_flows),
    "sg.rule": Unit("rule", _rule_flows),
    "sg.member": Unit("port", _member_flows),
}
