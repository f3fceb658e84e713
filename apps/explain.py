"""Explain a packet: its way through the compiled tables, stage by stage and switch by switch, and the object that
owns each flow deciding it (POST /v1/trace, `sdnctl trace`).

Pure: the controller hands over the policy, the topology with the links the flows use, and the compiled tables, so
a switch that is not connected is explained as well as one that is. apps.flowsim does the simulating; a frame that
leaves by a link enters the peer switch on its end of the link, tag and all (apps.flowsim.follow).

What a request leaves out is filled in as the source VM would send it: its own MAC and address, and as destination
MAC whatever answers ARP for `ip_dst` on its network (a port, a load balancer's VIP, the router; on an external
network also a router's gateway IP, a floating IP or a host the router resolved); protocol tcp from port 49152 (the
first ephemeral port) to port 80, TTL 64, an ICMP echo request for icmp. A new connection (the default) runs through
the simulator's conntrack, so NAT and a load balancer's choice of member show; any other `ct_state` is what every
conntrack lookup answers, as `ovs-appctl ofproto/trace --ct-next` does, and then nothing is translated.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from apps.actions import CONTROLLER, Nat
from apps.fields import CT_EST, CT_INV, CT_NEW, CT_REL, CT_RPL, CT_TRK, ETH_TYPE_IP, IP_PROTO, Packet
from apps.flows import Flow
from apps.flowsim import Conntrack, Port, follow, packet
from apps.groups import Group
from apps.model import Network, Policy
from apps.model import Port as VmPort
from apps.topology import Topology

PROTOCOLS = ("tcp", "udp", "icmp")
DEFAULT_PROTOCOL = "tcp"
DEFAULT_TP_SRC = 49152  # the first ephemeral port (IANA)
DEFAULT_TP_DST = 80
DEFAULT_TTL = 64
ICMP_ECHO_REQUEST = 8
CT_STATES = {"new": CT_TRK | CT_NEW, "established": CT_TRK | CT_EST, "reply": CT_TRK | CT_EST | CT_RPL,
             "related": CT_TRK | CT_REL, "invalid": CT_TRK | CT_INV}
VERDICTS = ("output", "drop", "controller")


class NotFound(LookupError):
    """The request names an object or interface that does not exist (404)."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"{kind} {object_id} not found")
        self.kind, self.object_id = kind, object_id


class BadRequest(ValueError):
    """A field the request must give, or may not give, here (400 naming it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class Untraceable(Exception):
    """The packet has no flows to go through: its source is no up interface of a switch the controller knows (422,
    naming `field`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Compiled:
    """What the controller compiled, as plain values: every switch of `topology` with its flows and groups,
    the links the flows send over, and the owner ("app:kind/id") of every cookie."""

    topology: Topology
    flows: Mapping[str, tuple[Flow, ...]]
    groups: Mapping[str, tuple[Group, ...]]
    owners: Mapping[int, str]


@dataclass(frozen=True)
class Request:
    """A packet to explain, as POST /v1/trace takes it (validated); None: the default."""

    port_id: str | None = None
    dpid: str | None = None
    interface: str | None = None
    protocol: str = DEFAULT_PROTOCOL
    eth_src: str | None = None
    eth_dst: str | None = None
    ip_src: str | None = None
    ip_dst: str | None = None
    tp_src: int | None = None
    tp_dst: int | None = None
    ct_state: str = "new"
    ttl: int = DEFAULT_TTL


@dataclass(frozen=True)
class Endpoint:
    """A switch interface and what is plugged into it: a port, an external network's uplink, or neither."""

    dpid: str
    interface: str | None
    ofport: Port
    port: VmPort | None = None
    uplink_of: Network | None = None


@dataclass(frozen=True)
class Stage:
    """One flow the packet (or a copy of it, or a conntrack recirculation) hit."""

    dpid: str
    table: str
    flow: Flow
    owner: dict[str, Any] | None


@dataclass(frozen=True)
class Reached:
    """Where a frame left the fabric (`endpoint.ofport` is apps.actions.CONTROLLER for a packet-in), as it left."""

    endpoint: Endpoint
    packet: Packet


@dataclass(frozen=True)
class Explanation:
    source: Endpoint
    packet: Packet
    ct_state: str
    verdict: str
    reached: tuple[Reached, ...]
    stages: tuple[Stage, ...]


def explain(policy: Policy, compiled: Compiled, request: Request) -> Explanation:
    """Where `request`'s packet goes, and why."""
    source = _source(policy, compiled.topology, request)
    pkt = _packet(policy, source, request)
    conntrack = Conntrack() if request.ct_state == "new" else AssumedConntrack(CT_STATES[request.ct_state])
    hops, deliveries = follow(compiled.flows, compiled.topology, source.dpid, pkt, conntrack, compiled.groups)
    stages = tuple(Stage(hop.dpid, table, flow, describe_owner(compiled.owners.get(flow.cookie), policy))
                   for hop in hops for table, flow in hop.result.path)
    reached = tuple(Reached(_endpoint(policy, compiled.topology, d.dpid, d.port), d.packet) for d in deliveries)
    verdict = "output" if any(r.endpoint.ofport != CONTROLLER for r in reached) else \
        "controller" if reached else "drop"
    return Explanation(source, pkt, request.ct_state, verdict, reached, stages)


class AssumedConntrack(Conntrack):
    """Every ct lookup answers `state` and changes nothing, as ofproto/trace --ct-next: for a packet of a
    connection the simulator has not seen start."""

    def __init__(self, state: int) -> None:
        super().__init__()
        self.state = state

    def track(self, dpid: str, zone: int, pkt: Packet, commit: bool, set_mark: int | None,
              mark_mask: int | None = None, nat: Nat | None = None) -> tuple[int, int]:
        return self.state, 0


# --- the packet -----------------------------------------------------------------------------------------------

def _source(policy: Policy, topology: Topology, request: Request) -> Endpoint:
    """Where the packet enters: the port's interface, or the interface given."""
    if request.port_id is not None:
        if request.dpid is not None or request.interface is not None:
            raise BadRequest("port_id", "give port_id or dpid and interface, not both")
        port = next((p for p in policy.ports if p.id == request.port_id), None)
        if port is None:
            raise NotFound("port", request.port_id)
        if port.dpid is None or port.interface is None:
            raise Untraceable("port_id", f"port {port.id} is bound to no interface")
        switch = topology.switch(port.dpid)
        ofport = switch.ofport(port.interface) if switch else None
        if ofport is None:
            raise Untraceable("port_id", f"port {port.id} is bound to {port.interface} on {port.dpid}, which is no up "
                              "interface of a switch the controller knows: no flows are compiled for it")
        return Endpoint(port.dpid, port.interface, ofport, port)
    if request.dpid is None or request.interface is None:
        raise BadRequest("port_id" if request.dpid is None else "interface",
                         "is required (or port_id)" if request.dpid is None else "is required with dpid")
    switch = topology.switch(request.dpid)
    if switch is None:
        raise NotFound("switch", request.dpid)
    ofport = switch.ofport(request.interface)
    if ofport is None:
        if all(port.name != request.interface for port in switch.ports):
            raise NotFound("interface", f"{request.interface} on switch {request.dpid}")
        raise Untraceable("interface", f"interface {request.interface} on {request.dpid} is down: no flows are "
                          "compiled for it")
    return _endpoint(policy, topology, request.dpid, ofport)


def _endpoint(policy: Policy, topology: Topology, dpid: str, ofport: Port) -> Endpoint:
    switch = topology.switch(dpid)
    found = switch.port(ofport) if switch and isinstance(ofport, int) else None
    interface = found.name if found else None
    if interface is None:
        return Endpoint(dpid, None, ofport)
    port = next((p for p in policy.ports if (p.dpid, p.interface) == (dpid, interface)), None)
    uplink = next((n for n in policy.networks if n.uplink == (dpid, interface)), None)
    return Endpoint(dpid, interface, ofport, port, uplink)


def _packet(policy: Policy, source: Endpoint, request: Request) -> Packet:
    """The request's packet with the defaults filled in as the source would send it."""
    network_id = source.port.network_id if source.port else source.uplink_of.id if source.uplink_of else None
    network = next((n for n in policy.networks if n.id == network_id), None)
    eth_src = request.eth_src or (source.port.mac_address if source.port else None)
    ip_src = request.ip_src or (source.port.ip_address if source.port else None)
    for name, value in (("eth_src", eth_src), ("ip_src", ip_src)):
        if value is None:
            raise BadRequest(name, f"is required: no port is bound to {source.interface} on {source.dpid}")
    ip_dst = request.ip_dst
    if ip_dst is None:
        ip_dst = _address_of(policy, network, request.eth_dst) if request.eth_dst else None
        if ip_dst is None:
            raise BadRequest("ip_dst", "is required" + (" (no port of the network has eth_dst)"
                                                        if request.eth_dst else ""))
    eth_dst = request.eth_dst or _resolve(policy, network, ip_dst)
    if request.protocol == "icmp" and (request.tp_src is not None or request.tp_dst is not None):
        raise BadRequest("tp_dst" if request.tp_dst is not None else "tp_src", "only tcp and udp have ports")
    layer4: dict[str, int] = {"icmpv4_type": ICMP_ECHO_REQUEST, "icmpv4_code": 0}
    if request.protocol != "icmp":
        layer4 = {f"{request.protocol}_src": request.tp_src or DEFAULT_TP_SRC,
                  f"{request.protocol}_dst": request.tp_dst or DEFAULT_TP_DST}
    return packet(in_port=source.ofport, eth_src=eth_src, eth_dst=eth_dst, eth_type=ETH_TYPE_IP, ipv4_src=ip_src,
                  ipv4_dst=ip_dst, ip_proto=IP_PROTO[request.protocol], nw_ttl=request.ttl, **layer4)


def _address_of(policy: Policy, network: Network | None, mac: str) -> str | None:
    """The address of the port with `mac` on `network`."""
    return next((p.ip_address for p in policy.ports
                 if network and p.network_id == network.id and p.mac_address == mac.lower()), None)


def _resolve(policy: Policy, network: Network | None, ip: str) -> str:
    """The MAC that answers ARP for `ip` on `network` (for an address off the network: its router's)."""
    if network is None:
        raise BadRequest("eth_dst", "is required: the source is on no network")
    routers = [r for r in policy.routers if any(i.network_id == network.id for i in r.interfaces)]
    candidates: list[tuple[str, str]] = [(p.ip_address, p.mac_address) for p in policy.ports
                                         if p.network_id == network.id]
    candidates += [(lb.vip_address, lb.mac) for lb in policy.load_balancers if lb.network_id == network.id]
    candidates += [(i.ip_address, r.mac) for r in routers for i in r.interfaces if i.network_id == network.id]
    if network.external:
        gateways = {r.id: r for r in policy.routers if r.gateway and r.gateway.network_id == network.id}
        candidates += [(r.gateway.ip_address, r.mac) for r in gateways.values() if r.gateway]
        candidates += [(b.ip_address, b.mac_address) for b in policy.mac_bindings if b.network_id == network.id]
        networks_of = {p.id: p.network_id for p in policy.ports}
        candidates += [(f.address, r.mac) for f in policy.floating_ips if f.network_id == network.id and f.port_id
                       for r in gateways.values() if any(i.network_id == networks_of.get(f.port_id)
                                                         for i in r.interfaces)]
    found = next((mac for address, mac in candidates if address == ip), None)
    if found is None and routers and ipaddress.IPv4Address(ip) not in ipaddress.IPv4Network(network.cidr):
        found = routers[0].mac
    if found is None:
        raise BadRequest("eth_dst", f"is required: nothing on network {network.name or network.id} answers ARP for "
                         f"{ip}")
    return found


# --- owners -------------------------------------------------------------------------------------------------

def describe_owner(name: str | None, policy: Policy) -> dict[str, Any] | None:
    """The object behind an owner name "app:kind/id" (apps.index), with what identifies it to people."""
    if name is None:
        return None
    app, _, rest = name.partition(":")
    kind, _, object_id = rest.partition("/")
    if not object_id:  # the pipeline's own flows: system:pipeline, security_groups:clauses, ...
        return {"app": app, "kind": kind, "id": None, "name": f"{app} {kind}"}
    found = _OWNER_KINDS.get(kind, lambda _policy, _id: None)(policy, object_id)
    shown_kind, label, more = found if found else (kind, "", {})
    return {"app": app, "kind": shown_kind, "id": object_id, "name": label, **more}


_Found = tuple[str, str, dict[str, Any]] | None
# Kinds found in one collection of the policy: (its attribute of Policy, the attribute that names an item).
_COLLECTIONS = {"network": ("networks", "name"), "port": ("ports", "name"), "router": ("routers", "name"),
                "floating_ip": ("floating_ips", "address"), "load_balancer": ("load_balancers", "name")}


def _item(kind: str) -> Callable[[Policy, str], _Found]:
    collection, label = _COLLECTIONS[kind]

    def find(policy: Policy, object_id: str) -> _Found:
        item = next((i for i in getattr(policy, collection) if i.id == object_id), None)
        return None if item is None else (kind, getattr(item, label), {})
    return find


def _rule(policy: Policy, rule_id: str) -> _Found:
    for group in policy.security_groups:
        for rule in group.rules:
            if rule.id == rule_id:
                return "security_group_rule", rule_text(rule, policy), {"security_group": {"id": group.id,
                                                                                           "name": group.name}}
    return None


def rule_text(rule: Any, policy: Policy) -> str:
    """A rule as people read it: "ingress tcp 22 from 10.0.0.0/24", "egress any to anywhere"."""
    low, high = rule.port_range_min or rule.port_range_max, rule.port_range_max or rule.port_range_min
    ports = "" if low is None else f" {low}" if low == high else f" {low}-{high}"
    groups = {g.id: g.name for g in policy.security_groups}
    remote = rule.remote_ip_prefix or (f"group {groups.get(rule.remote_group_id, rule.remote_group_id)}"
                                       if rule.remote_group_id else "anywhere")
    return f"{rule.direction} {rule.protocol or 'any'}{ports} {'from' if rule.direction == 'ingress' else 'to'} " \
           f"{remote}"


def _profile(policy: Policy, profile: str) -> _Found:
    """A set of security groups that ports share: named by its groups."""
    ports = [p for p in policy.ports if str(p.profile) == profile and p.port_security_enabled]
    if not ports:
        return None
    names = {g.id: g.name for g in policy.security_groups}
    groups = [{"id": g, "name": names.get(g, "")} for g in ports[0].security_group_ids]
    return "profile", ", ".join(g["name"] or g["id"] for g in groups) or "(none)", {"security_groups": groups}


def _member(policy: Policy, member_id: str) -> _Found:
    for balancer in policy.load_balancers:
        for member in balancer.members:
            if member.id == member_id:
                return "load_balancer_member", f"{member.ip_address}:{member.port}", {
                    "load_balancer": {"id": balancer.id, "name": balancer.name}}
    return None


def _mac_binding(policy: Policy, binding_id: str) -> _Found:
    binding = next((b for b in policy.mac_bindings if b.id == binding_id), None)
    return None if binding is None else ("mac_binding", f"{binding.ip_address} at {binding.mac_address}", {})


_OWNER_KINDS: dict[str, Callable[[Policy, str], _Found]] = {
    **{kind: _item(kind) for kind in _COLLECTIONS},
    "rule": _rule,
    "profile": _profile,
    "member": _member,
    "mac_binding": _mac_binding,
}
