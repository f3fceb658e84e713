"""Routers: distributed routing between their networks, SNAT and floating IPs on a gateway switch, uplinks.

Routing is distributed (as OVN and Neutron DVR do): the switch where a packet enters routes it, so traffic
between two VMs of one router crosses the fabric once, and needs no conntrack of the router's. Only what
leaves by (or comes in from) a router's external network is routed on one switch, its *gateway switch*
(`gateway`): the switch of the external network's uplink, else the lowest dpid among its networks'
switches. Elsewhere such a frame goes to the gateway switch unchanged, still addressed to the router's MAC
on its own network, and is routed there. The gateway switch runs the router's NAT in the router's own
conntrack zone (its key): ct(nat) un-SNATs replies and un-DNATs floating-IP replies; new connections are
committed with their translation, outbound from the floating IP or the gateway IP, inbound to a floating IP's
fixed IP.

Registers: routing starts in router_in, which names the router (REG_ROUTER); routing picks the next network
(REG_NETWORK), the next hop (REG_NEXTHOP) and keeps the address scope (REG_SCOPE: all of a router's networks
share one, their CIDRs never overlap, so security groups match routed addresses in the router's scope);
neighbor turns the next hop into eth_dst: a port's MAC, or on an external network a MAC binding the
controller resolved by ARP through the uplink (an unresolved one goes to the controller, metered).

An uplink is the interface of an external network to hosts that are not ports: it enters the network as an
unfiltered port, takes the network's unknown unicast and its floods, and its ARP replies to a router go to the
controller (metered), which alone decides what becomes a MAC binding.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from apps.actions import DecTtl, Nat
from apps.flows import (
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_REL,
    CT_TRK,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    IP_PROTO,
    OFPP_IN_PORT,
    Action,
    Ct,
    Flow,
    Match,
    Move,
    Output,
    Resubmit,
    SetField,
    aux_cookie,
    controller,
    cookie,
    ct_state,
    ip_to_int,
    match,
    set_field,
)
from apps.incremental import Derived, Read, Unit
from apps.isolation import arp_reply, tagged
from apps.model import FloatingIP, LoadBalancer, MacBinding, Network, Port, Router, StaticRoute
from apps.pipeline import (
    PRIO_DEFAULT,
    PRIO_LOW,
    REG_IN_PORT,
    REG_NETWORK,
    REG_NEXTHOP,
    REG_ROUTER,
    REG_SCOPE,
    REG_SRC_PROFILE,
    REG_SRC_ZONE,
    ROUTER_SCOPE,
)
from apps.security_groups import PRIO_UNFILTERED

# router_in
PRIO_ECHO = 400         # ping to one of the router's own addresses: answered by the switch
PRIO_TTL = 300          # TTL about to run out: to the controller, which answers time-exceeded
PRIO_SPOOFED = 250      # from the external network with a source inside the router: dropped
PRIO_ROUTE = 100
# dnat_ct, snat_ct
PRIO_FLOATING = 300
PRIO_SNAT = 200
PRIO_PASS = 100         # established and related; in snat_ct also new ones the router does not translate
# arp_responder and neighbor: above a port's own flows, so a port holding a router's address cannot collide
PRIO_ROUTER_ARP = PRIO_DEFAULT + 1
PRIO_PORT_NEIGHBOR = PRIO_DEFAULT + 1
PRIO_BINDING = PRIO_DEFAULT
PRIO_RESOLVE = PRIO_LOW
# l2_lookup: below multicast (PRIO_LOW), for unicast to a MAC the network does not know
PRIO_UNKNOWN = PRIO_LOW - 5
SNAT_PORTS = (1024, 65535)
ECHO_REQUEST, ECHO_REPLY = 8, 0
REPLY_TTL = 64
_TTL_OUT = (0, 1)  # nw_ttl values that dec_ttl would run out (OVS matches nw_ttl exactly only)
_ROUTED = ct_state(CT_TRK | CT_EST, CT_INV), ct_state(CT_TRK | CT_REL, CT_INV)
_NEW = ct_state(CT_TRK | CT_NEW, CT_INV)
# A routed packet may leave by the port it came in by (a frame passed to the gateway switch over a trunk, routed
# back over it): OVS skips an output to the input port, so routing forgets it, as OVN does. OVS takes in_port 0
# only as a load of its low 16 bits (the whole OXM field refuses 0: BAD_SET_ARGUMENT); ports are below 2^16.
ANY_PORT = SetField("in_port", 0, 0xFFFF)


# --- derived values ----------------------------------------------------------------------------------------

def _router_of(read: Read, network_id: str) -> str | None:
    """The router with an interface on the network (one at most once a change is complete)."""
    routers = read(("network_router", network_id))
    return min(routers) if routers else None


def router_of_network(read: Read, network_id: str) -> Router | None:
    """The router with an interface on the network, read through ("router_of", ...) so a unit depends on both."""
    router_id = read(("router_of", network_id))
    return read(("router", router_id)) if router_id else None


def _scope(read: Read, network_id: str) -> int | None:
    """Where the network's addresses mean what they say: the router's scope if it has one, else its own."""
    network: Network | None = read(("network", network_id))
    if network is None:
        return None
    router = router_of_network(read, network_id)
    return network.segmentation_id if router is None else ROUTER_SCOPE | router.key


def _uplink_port(read: Read, network_id: str) -> tuple[str, int] | None:
    """(dpid, ofport) of an external network's uplink while its interface is up."""
    network: Network | None = read(("network", network_id))
    if network is None or network.uplink is None:
        return None
    dpid, interface = network.uplink
    switch = read(("switch", dpid))
    ofport = switch.ofport(interface) if switch else None
    return None if ofport is None else (dpid, ofport)


def _gateway(read: Read, router_id: str) -> str | None:
    """The router's gateway switch: its external network's uplink switch, else the lowest dpid with ports of its
    networks (the external one first), None without an external gateway or anywhere to put it."""
    router: Router | None = read(("router", router_id))
    if router is None or router.gateway is None:
        return None
    external: Network | None = read(("network", router.gateway.network_id))
    if external is None:
        return None
    if external.uplink is not None:
        return external.uplink[0] if external.uplink[0] in (read(("switches",)) or ()) else None
    candidates = [*read(("net_switches", external.id))]
    for interface in router.interfaces:
        candidates += read(("net_switches", interface.network_id))
    return min(candidates) if candidates else None


def _router_switches(read: Read, router_id: str) -> tuple[str, ...]:
    """Where the router routes: the switches of its networks' ports, and its gateway switch."""
    router: Router | None = read(("router", router_id))
    if router is None:
        return ()
    switches = {dpid for interface in router.interfaces for dpid in read(("net_switches", interface.network_id))}
    gateway = read(("gateway", router_id))
    if gateway is not None:
        switches.add(gateway)
    return tuple(sorted(switches))


def _gateways(read: Read, network_id: str) -> tuple[str, ...]:
    """The gateway switches of the routers whose external gateway is on the network."""
    switches = {read(("gateway", router_id)) for router_id in read(("gateway_routers", network_id)) or ()}
    return tuple(sorted(dpid for dpid in switches if dpid is not None))


def _anchors(read: Read, network_id: str) -> tuple[str, ...]:
    """Switches a network must reach besides its ports' (apps.isolation's reach): its router's, or for an
    external network its uplink's and the gateway switches of the routers on it."""
    router_id = read(("router_of", network_id))
    if router_id is not None:
        return read(("router_switches", router_id))
    switches = set(read(("gateways", network_id)))
    uplink = read(("uplink_port", network_id))
    if uplink is not None:
        switches.add(uplink[0])
    return tuple(sorted(switches))


# --- units -------------------------------------------------------------------------------------------------

def _router_flows(read: Read, router_id: str) -> dict[str, list[Flow]]:
    """Everything of a router but its floating IPs: answering ARP and ping for its addresses, routes on every
    switch where it routes, the way to its gateway switch, and there its NAT and next-hop resolution.

    Cookies: its routes (to its networks and its default route) carry the router's cookie, each static route its
    own (route_cookie), so that their counters count each packet the router routes once, where it is routed; every
    other flow of the router carries its aux_cookie."""
    router: Router = read(("router", router_id))
    owner = aux_cookie("routing", router.id)
    routed = cookie("routing", router.id)
    networks = [(network, interface.ip_address) for interface in router.interfaces
                if (network := read(("network", interface.network_id))) is not None]
    addresses = [ip for _, ip in networks]
    gateway_dpid = read(("gateway", router_id))
    external: Network | None = None
    if router.gateway is not None and gateway_dpid is not None:
        external = read(("network", router.gateway.network_id))
        addresses.append(router.gateway.ip_address)
    scope = ROUTER_SCOPE | router.key

    everywhere: list[Flow] = []
    for network, ip in networks:
        everywhere += [arp_reply(network, router.mac, ip, PRIO_ROUTER_ARP, owner),
                       *_router_in(router, network.segmentation_id, addresses, owner),
                       Flow("router_in", PRIO_ROUTE, _to_router(router, network.segmentation_id),
                            (SetField(REG_ROUTER, router.key),), "routing", owner),
                       _route(router, network, network.cidr, None, scope, routed)]
    local_routes, external_routes = _static_routes(router, [n for n, _ in networks], external)
    everywhere += [_route(router, network, destination, nexthop, scope, counted)
                   for destination, network, nexthop, counted in local_routes]
    flows = {dpid: list(everywhere) for dpid in read(("router_switches", router_id))}
    if external is None:
        return flows

    # Toward the gateway switch: on other switches, external destinations are passed on unrouted, and frames to
    # the router's MAC on any of its networks (external included) go there.
    on_link = (external.cidr, external, None, routed)
    for destination, _, _, _ in [on_link, *external_routes]:
        pass_on = Flow("routing", _route_priority(destination), _destination(router, destination), (),
                       "l2_lookup", owner)
        for dpid, dpid_flows in flows.items():
            if dpid != gateway_dpid:
                dpid_flows.append(pass_on)
    hops = read(("hops", gateway_dpid))
    for network in [n for n, _ in networks] + [external]:
        for dpid in read(("span", network.id)):
            if dpid != gateway_dpid and dpid in hops:
                flows.setdefault(dpid, []).append(
                    Flow("l2_lookup", PRIO_DEFAULT, match(**{REG_NETWORK: network.segmentation_id},
                                                          eth_dst=router.mac),
                         tagged(network.segmentation_id, (hops[dpid],)), cookie=owner))

    # On the gateway switch: the external leg.
    segment, gateway_ip = external.segmentation_id, router.gateway.ip_address
    here = flows.setdefault(gateway_dpid, [])
    here += [_route(router, external, destination, nexthop, segment, counted)
             for destination, _, nexthop, counted in [on_link, *external_routes]]
    here += _router_in(router, segment, [gateway_ip], owner)
    here += [Flow("router_in", PRIO_SPOOFED, _to_router(router, segment, ipv4_src=network.cidr), cookie=owner)
             for network, _ in networks]
    here.append(_from_outside(router, segment, PRIO_ROUTE, owner))
    here += [Flow("dnat_ct", PRIO_PASS, _in_router(router, ct_state=state), goto="routing", cookie=owner)
             for state in _ROUTED]
    here.append(_to_outside(router, segment, PRIO_DEFAULT, owner))
    here += [Flow("snat_ct", PRIO_PASS, _in_router(router, ct_state=state), goto="l2_lookup", cookie=owner)
             for state in (*_ROUTED, _NEW)]
    if router.gateway.enable_snat:
        snat = Nat("src", ip_to_int(gateway_ip), port_min=SNAT_PORTS[0], port_max=SNAT_PORTS[1])
        here += [Flow("snat_ct", PRIO_SNAT, _in_router(router, ct_state=_NEW, ipv4_src=network.cidr),
                      (Ct(commit=True, zone=router.key, nat=snat, table="l2_lookup"),), cookie=owner)
                 for network, _ in networks]
    uplink = read(("uplink_port", external.id))
    if uplink is not None:
        here.append(Flow("neighbor", PRIO_RESOLVE, match(**{REG_NETWORK: segment, REG_ROUTER: router.key}),
                         (controller(),), cookie=owner, meter="neighbor"))
        flows.setdefault(uplink[0], []).append(
            Flow("classify", PRIO_DEFAULT + 1, match(in_port=uplink[1], vlan_vid=0, eth_dst=router.mac,
                                                     eth_type=ETH_TYPE_ARP, arp_op=2),
                 (controller(),), cookie=owner, meter="neighbor"))
    for dpid in read(("reach", external.id)):
        flows.setdefault(dpid, []).append(arp_reply(external, router.mac, gateway_ip, PRIO_ROUTER_ARP, owner))
    # Other routers on the external network reach its gateway IP through it (hairpin): on their gateway switches
    # the address is a next hop at its MAC, and on its own gateway switch a frame another router sent to its MAC
    # re-enters router_in. Its own traffic to its own addresses is no hairpin it makes: that drops.
    here += [Flow("l2_lookup", PRIO_DEFAULT + 1, match(**{REG_NETWORK: segment, REG_ROUTER: router.key},
                                                       eth_dst=router.mac), cookie=owner),
             Flow("l2_lookup", PRIO_DEFAULT, match(**{REG_NETWORK: segment}, eth_dst=router.mac,
                                                   eth_type=ETH_TYPE_IP), (Resubmit("router_in"),), cookie=owner)]
    _on_gateways(read, flows, external, _neighbor(external, gateway_ip, router.mac, PRIO_PORT_NEIGHBOR, owner))
    return flows


def _on_gateways(read: Read, flows: dict[str, list[Flow]], external: Network, flow: Flow) -> None:
    """Add `flow` on the gateway switch of every router on the external network."""
    for dpid in read(("gateways", external.id)):
        flows.setdefault(dpid, []).append(flow)


def _floating_ip_flows(read: Read, floating_ip_id: str) -> dict[str, list[Flow]]:
    """A floating IP mapped to a port or a VIP: ARP for it answered with its router's MAC on the external network,
    and on the router's gateway switch new connections to it DNATed to the port, the port's own leaving from it.
    On a VIP only its balancer's service (protocol, port) is translated; routed to the VIP, a connection enters the
    balancer (the VIP as a next hop: its MAC, then router_in, where apps.load_balancing takes it), and its member's
    replies, un-DNATed to the VIP there, are un-DNATed to the floating IP on the way out as a port's are.

    Its cookie is on two flows of the gateway switch that only count (they do what the router's own would): what
    comes in from outside to its address (its service, on a VIP), and what its target sends out; its other flows
    carry its aux_cookie."""
    floating_ip: FloatingIP = read(("floating_ip", floating_ip_id))
    port: Port | None = read(("port", floating_ip.port_id)) if floating_ip.port_id else None
    balancer: LoadBalancer | None = (read(("load_balancer", floating_ip.load_balancer_id))
                                     if floating_ip.load_balancer_id else None)
    target = port or balancer
    external: Network | None = read(("network", floating_ip.network_id))
    router = router_of_network(read, target.network_id) if target is not None else None
    gateway_dpid = read(("gateway", router.id)) if router is not None else None
    if (target is None or external is None or router is None or gateway_dpid is None or router.gateway is None
            or router.gateway.network_id != external.id):
        return {}
    owner = aux_cookie("routing", floating_ip.id)
    counted = cookie("routing", floating_ip.id)
    address = ip_to_int(floating_ip.address)
    segment = external.segmentation_id
    flows: dict[str, list[Flow]] = {dpid: [arp_reply(external, router.mac, floating_ip.address, PRIO_ROUTER_ARP,
                                                      owner)]
                                    for dpid in read(("reach", external.id))}
    here = flows.setdefault(gateway_dpid, [])
    fixed: str | None = None  # the address it maps to; a VIP's only for its balancer's service
    service: dict[str, int] = {}
    if port is not None:
        fixed = port.ip_address
        here.append(Flow("snat_ct", PRIO_FLOATING, _in_router(router, ct_state=_NEW, ipv4_src=fixed),
                         (Ct(commit=True, zone=router.key, nat=Nat("src", address), table="l2_lookup"),), cookie=owner))
    elif balancer is not None and (network := read(("network", balancer.network_id))) is not None:
        fixed, service = balancer.vip_address, {"ip_proto": IP_PROTO[balancer.protocol],
                                                f"{balancer.protocol}_dst": balancer.port}
        here.append(Flow("neighbor", PRIO_PORT_NEIGHBOR,
                         match(**{REG_NETWORK: network.segmentation_id, REG_NEXTHOP: ip_to_int(fixed)}),
                         (set_field("eth_dst", balancer.mac), Resubmit("router_in")), cookie=owner))
    if fixed is not None:
        here += [Flow("dnat_ct", PRIO_FLOATING, _in_router(router, ct_state=_NEW, ipv4_dst=address, **service),
                      (Ct(commit=True, zone=router.key, nat=Nat("dst", ip_to_int(fixed)), table="routing"),),
                      cookie=owner),
                 _from_outside(router, segment, PRIO_ROUTE + 1, counted, ipv4_dst=address, **service),
                 _to_outside(router, segment, PRIO_DEFAULT + 1, counted, ipv4_src=fixed)]
    _on_gateways(read, flows, external, _neighbor(external, floating_ip.address, router.mac, PRIO_PORT_NEIGHBOR,
                                                  owner))
    return flows


def _port_flows(read: Read, port_id: str) -> dict[str, list[Flow]]:
    """A port as a next hop, wherever a router may route to its network, or a load balancer on its network may
    send a connection to it (apps.load_balancing)."""
    port: Port = read(("port", port_id))
    network: Network | None = read(("network", port.network_id))
    if network is None or read(("placement", port_id)) is None:
        return {}
    flow = _neighbor(network, port.ip_address, port.mac_address, PRIO_PORT_NEIGHBOR, cookie("routing", port.id))
    switches = set(read(("anchors", network.id)))
    if read(("network_load_balancers", network.id)):
        switches.update(read(("net_switches", network.id)))
    return {dpid: [flow] for dpid in sorted(switches)}


def _mac_binding_flows(read: Read, binding_id: str) -> dict[str, list[Flow]]:
    """A next hop behind an uplink, resolved by the controller: on the gateway switches of the network's routers."""
    binding: MacBinding = read(("mac_binding", binding_id))
    network: Network | None = read(("network", binding.network_id))
    if network is None:
        return {}
    flow = _neighbor(network, binding.ip_address, binding.mac_address, PRIO_BINDING, cookie("routing", binding_id))
    return {dpid: [flow] for dpid in read(("gateways", network.id))}


def _uplink_flows(read: Read, network_id: str) -> dict[str, list[Flow]]:
    """An external network's uplink: its frames enter the network unfiltered; unicast to MACs the network does not
    know leaves by it (from its switch, and toward it from the rest of the network's span)."""
    uplink = read(("uplink_port", network_id))
    if uplink is None:
        return {}
    network: Network = read(("network", network_id))
    dpid, ofport = uplink
    owner = cookie("routing", network.id)
    segment = network.segmentation_id
    tag = (SetField(REG_IN_PORT, ofport), SetField(REG_NETWORK, segment), SetField(REG_SCOPE, segment),
           SetField(REG_SRC_ZONE, 0), SetField(REG_SRC_PROFILE, 0))
    flows = {dpid: [
        Flow("classify", PRIO_DEFAULT, match(in_port=ofport, vlan_vid=0), tag, "arp_responder", owner),
        Flow("egress_acl", PRIO_UNFILTERED, match(**{REG_IN_PORT: ofport}), goto="router_in", cookie=owner),
        Flow("l2_lookup", PRIO_UNKNOWN, match(**{REG_NETWORK: segment}), (Output(ofport),), cookie=owner),
    ]}
    hops = read(("hops", dpid))
    for other in read(("span", network_id)):
        if other != dpid and other in hops:
            flows[other] = [Flow("l2_lookup", PRIO_UNKNOWN, match(**{REG_NETWORK: segment}),
                                 tagged(segment, (hops[other],)), cookie=owner)]
    return flows


# --- flows -------------------------------------------------------------------------------------------------

def _to_router(router: Router, segment: int, **fields: object) -> Match:
    """IP from `segment` to the router's MAC."""
    return match(**{REG_NETWORK: segment}, eth_dst=router.mac, eth_type=ETH_TYPE_IP, **fields)


def _in_router(router: Router, **fields: object) -> Match:
    """IP the router (REG_ROUTER) is routing."""
    return match(eth_type=ETH_TYPE_IP, **{REG_ROUTER: router.key}, **fields)


def _from_outside(router: Router, segment: int, priority: int, owner: int, **fields: object) -> Flow:
    """On the gateway switch, IP from the external network to the router: through ct(nat) in its zone (un-SNAT,
    established DNAT)."""
    return Flow("router_in", priority, _to_router(router, segment, **fields),
                (SetField(REG_ROUTER, router.key), Ct(zone=router.key, nat=Nat(), table="dnat_ct")), cookie=owner)


def _to_outside(router: Router, segment: int, priority: int, owner: int, **fields: object) -> Flow:
    """On the gateway switch, what the router routes out to its external network: through ct(nat) in its zone."""
    return Flow("snat", priority, match(eth_type=ETH_TYPE_IP, **{REG_NETWORK: segment, REG_ROUTER: router.key},
                                        **fields), (Ct(zone=router.key, nat=Nat(), table="snat_ct"),), cookie=owner)


def _router_in(router: Router, segment: int, addresses: Iterable[str], owner: int) -> list[Flow]:
    """From one of the router's networks: ping to any of its addresses answered from the switch (the frame turned
    round and sent back where it came from), and a TTL about to run out to the controller."""
    flows = [Flow("router_in", PRIO_ECHO,
                  _to_router(router, segment, ip_proto=IP_PROTO["icmp"], ipv4_dst=address, icmpv4_type=ECHO_REQUEST),
                  (Move("eth_src", "eth_dst", 48), set_field("eth_src", router.mac),
                   Move("ipv4_src", REG_NEXTHOP, 32), set_field("ipv4_src", address), Move(REG_NEXTHOP, "ipv4_dst", 32),
                   SetField("icmpv4_type", ECHO_REPLY), SetField("nw_ttl", REPLY_TTL), Output(OFPP_IN_PORT)),
                  cookie=owner) for address in addresses]
    flows += [Flow("router_in", PRIO_TTL, _to_router(router, segment, nw_ttl=ttl),
                   (SetField(REG_ROUTER, router.key), controller()), cookie=owner, meter="ttl_exceeded")
              for ttl in _TTL_OUT]
    return flows


def _route_priority(destination: str) -> int:
    """Longest prefix first."""
    return PRIO_ROUTE + ipaddress.IPv4Network(destination).prefixlen


def _destination(router: Router, destination: str) -> Match:
    prefix = ipaddress.IPv4Network(destination)
    return _in_router(router, **({"ipv4_dst": destination} if prefix.prefixlen else {}))


def _route(router: Router, network: Network, destination: str, nexthop: str | None, scope: int, owner: int) -> Flow:
    """To `destination` by `network`: to `nexthop`, or (on-link) to the destination itself."""
    next_hop: Action = (Move("ipv4_dst", REG_NEXTHOP, 32) if nexthop is None
                        else SetField(REG_NEXTHOP, ip_to_int(nexthop)))
    return Flow("routing", _route_priority(destination), _destination(router, destination),
                (DecTtl(), set_field("eth_src", router.mac), SetField(REG_NETWORK, network.segmentation_id),
                 SetField(REG_SCOPE, scope), next_hop, ANY_PORT), "neighbor", owner)


RouteTo = tuple[str, Network, str, int]  # destination, network of the nexthop, nexthop, cookie


def route_id(router_id: str, route: StaticRoute) -> str:
    """A static route's name, "router id/destination/nexthop": a router never has two routes alike."""
    return f"{router_id}/{route.destination}/{route.nexthop}"


def route_cookie(router_id: str, route: StaticRoute) -> int:
    """The cookie of a static route's flows: its own owner, so that its counters are its own."""
    return cookie("routing", f"route/{route_id(router_id, route)}")


def _static_routes(router: Router, networks: list[Network], external: Network | None
                   ) -> tuple[list[RouteTo], list[RouteTo]]:
    """The router's routes as (destination, network of the nexthop, nexthop, cookie): those by one of its own
    networks and those by its external network (with the external network's gateway_ip as the default route, under
    the router's own cookie). A destination given twice keeps its first nexthop; a nexthop on no attached network
    (the store refuses those) is left out."""
    local: list[RouteTo] = []
    outside: list[RouteTo] = []
    seen: set[str] = set()
    defaults = [] if external is None or not external.gateway_ip else [
        (StaticRoute("0.0.0.0/0", external.gateway_ip), cookie("routing", router.id))]
    for route, counted in [*((r, route_cookie(router.id, r)) for r in router.routes), *defaults]:
        destination = str(ipaddress.IPv4Network(route.destination))
        if destination in seen:
            continue
        address = ipaddress.IPv4Address(route.nexthop)
        for network in networks:
            if address in ipaddress.IPv4Network(network.cidr):
                local.append((destination, network, route.nexthop, counted))
                seen.add(destination)
                break
        else:
            if external is not None and address in ipaddress.IPv4Network(external.cidr):
                outside.append((destination, external, route.nexthop, counted))
                seen.add(destination)
    return local, outside


def _neighbor(network: Network, ip: str, mac: str, priority: int, owner: int) -> Flow:
    """Next hop `ip` on `network` is `mac`; on an external network it leaves through the router's SNAT."""
    return Flow("neighbor", priority, match(**{REG_NETWORK: network.segmentation_id, REG_NEXTHOP: ip_to_int(ip)}),
                (set_field("eth_dst", mac),), "snat" if network.external else "l2_lookup", owner)


DERIVED = {
    "router_of": Derived(1, _router_of),         # ("router_of", network id) -> router id | None
    "scope": Derived(2, _scope),                 # ("scope", network id) -> REG_SCOPE value
    "uplink_port": Derived(1, _uplink_port),     # ("uplink_port", network id) -> (dpid, ofport) | None
    "gateway": Derived(4, _gateway),             # ("gateway", router id) -> dpid | None
    "router_switches": Derived(5, _router_switches),
    "gateways": Derived(5, _gateways),           # ("gateways", network id): of the routers with their gateway on it
    "anchors": Derived(6, _anchors),             # ("anchors", network id)
}
UNITS = {
    "routing.router": Unit("router", _router_flows),
    "routing.floating_ip": Unit("floating_ip", _floating_ip_flows),
    "routing.port": Unit("port", _port_flows),
    "routing.mac_binding": Unit("mac_binding", _mac_binding_flows),
    "routing.uplink": Unit("network", _uplink_flows),
}
