"""The compile engine's inputs: the policy's objects and the topology, and the indexes units look them up by.

Objects come in one at a time (`put_*`, from the store's change journal) or all at once (`load`).
Besides the objects themselves (("port", id), ("network", id), ("group", id), ("rule", id),
("router", id), ("floating_ip", id), ("switch", dpid), ...), the index keeps sets that let a unit find what it
needs without scanning everything: the ports of a network bound to a switch, the port holding an address on a
network (("address", network_id, ip)), the members of a group, the rules
of a group and those that name it as their remote, the profiles (sets of groups that ports have) with their
ports on each switch, the interfaces bound on a switch, the router on a network (("network_router", network_id):
the routers with an interface on it, one at most once a change is complete) and the floating IP of a port
(("port_floating_ip", port_id), likewise), and the MAC bindings learned on a network
(("network_mac_bindings", network_id): the ids, "network_id/ip", of its ("mac_binding", id) inputs), and for load
balancers, which come in as ("load_balancer", id) without their members and ("lb_member", id) each, the members of a
balancer (("lb_members", load_balancer_id)) and the balancers on a network (("network_load_balancers", network_id)).
It also names the owner of every cookie the compilers can produce.

Ports declared without a binding are attached where hypervisors' OVSDB says (apps/attachments.py): the index keeps
the port as declared and the interfaces that claim ports (`set_claims`), and the ("port", id) input the units read
is the port with the interface it is attached to (`settle`, before each commit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import Any

from apps.attachments import Attachment, Binding, Claim, placed, resolve
from apps.flows import aux_cookie, cookie
from apps.incremental import Engine, Key
from apps.model import (
    FloatingIP,
    LbMember,
    LoadBalancer,
    MacBinding,
    Network,
    Policy,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    SwitchConfig,
)
from apps.routing import route_cookie, route_id
from apps.security_groups import profile_cookie
from apps.topology import Topology

STATIC_OWNERS = {
    cookie("system", "pipeline"): "system:pipeline",
    cookie("system", "discovery"): "system:discovery",
    cookie("security_groups", "pipeline"): "security_groups:pipeline",
    cookie("security_groups", "clauses"): "security_groups:clauses",
}


class Index:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sets: dict[Key, set[Hashable]] = {}
        self.owners: dict[int, str] = dict(STATIC_OWNERS)
        self.bound: dict[str, frozenset[str]] = {}  # dpid -> the interfaces ports are bound to there
        self.pins: dict[str, frozenset[str]] = {}   # dpid -> its pinned trunks (only switches that pin)
        self._profile_ports: dict[int, int] = {}     # profile -> how many ports have it
        self._declared: dict[str, Port] = {}        # port id -> the port as the store has it
        self._named: dict[str, set[str]] = {}       # port name -> the ids of the ports with it
        self._held: dict[Binding, str] = {}         # interfaces explicit bindings and uplinks hold -> by what
        self._claims: frozenset[Claim] = frozenset()
        self._claimed_values: frozenset[str] = frozenset()  # their iface-ids: the port ids and names that matter
        self._claimed_bindings: frozenset[Binding] = frozenset()
        self.attachments: dict[str, Attachment] = {}  # port id -> where OVSDB attached it (ports claimed only)
        self._unsettled = False

    def load(self, policy: Policy, topology: Topology) -> None:
        """Every object of `policy` and the whole topology (a full compile, or a resync)."""
        for network in policy.networks:
            self.put_network(network.id, network)
        for group in policy.security_groups:
            self.put_group(group.id, group)
            for rule in group.rules:
                self.put_rule(rule.id, rule)
        for port in policy.ports:
            self.put_port(port.id, port)
        for config in policy.switches:
            self.put_switch_config(config.dpid, config)
        for router in policy.routers:
            self.put_router(router.id, router)
        for floating_ip in policy.floating_ips:
            self.put_floating_ip(floating_ip.id, floating_ip)
        for binding in policy.mac_bindings:
            self.put_mac_binding(binding.id, binding)
        for balancer in policy.load_balancers:
            self.put_load_balancer(balancer.id, balancer)
            for member in balancer.members:
                self.put_lb_member(member.id, member)
        self.set_topology(topology)

    # --- policy objects ------------------------------------------------------------------------------
    def put_network(self, network_id: str, network: Network | None) -> None:
        old: Network | None = self._put_indexed("network", network_id, network, _network_entries)
        if old is not None and old.uplink is not None:
            self._hold(old.uplink, None)
        if network is not None and network.uplink is not None:
            self._hold(network.uplink, f"the uplink of network {network_id}")
        self._owns("isolation", "network", network_id, network is not None)
        self._owns("routing", "network", network_id, network is not None)

    def put_port(self, port_id: str, port: Port | None) -> None:
        if port is not None and port.port_security_enabled and not port.profile:
            raise ValueError(f"port {port_id} has port security but no profile")
        declared = self._declared.pop(port_id, None)
        self._unsettled = self._unsettled or port_id in self.attachments or any(
            value in self._claimed_values for value in (port_id, declared and declared.name, port and port.name))
        if declared is not None:
            self._name(declared, False)
            if declared.dpid and declared.interface:
                self._hold((declared.dpid, declared.interface), None)
        if port is not None:
            self._declared[port_id] = port
            self._name(port, True)
            if port.dpid and port.interface:
                self._hold((port.dpid, port.interface), f"bound to port {port_id}")
        old: Port | None = self._put_indexed("port", port_id, self._effective(port_id), _port_entries)
        for before, after in ((old, None), (port, port)):
            if before is not None and before.port_security_enabled:
                self._profile(before.profile, before.security_group_ids, after is not None)
        self._owns("isolation", "port", port_id, port is not None)
        self._owns("security_groups", "port", port_id, port is not None)
        self._owns("routing", "port", port_id, port is not None)

    def put_group(self, group_id: str, group: SecurityGroup | None) -> None:
        """A group's own fields; its rules are objects of their own (put_rule)."""
        self._engine.set(("group", group_id), None if group is None else dataclasses.replace(group, rules=()))

    def put_rule(self, rule_id: str, rule: SecurityGroupRule | None) -> None:
        self._put_indexed("rule", rule_id, rule, _rule_entries)
        self._owns("security_groups", "rule", rule_id, rule is not None)

    def put_router(self, router_id: str, router: Router | None) -> None:
        old: Router | None = self._put_indexed("router", router_id, router, _router_entries)
        self._owns("routing", "router", router_id, router is not None)
        for before, present in ((old, False), (router, True)):  # each static route owns its flows
            for route in before.routes if before is not None else ():
                self._own(route_cookie(router_id, route), f"routing:route/{route_id(router_id, route)}", present)

    def put_floating_ip(self, floating_ip_id: str, floating_ip: FloatingIP | None) -> None:
        self._put_indexed("floating_ip", floating_ip_id, floating_ip, _floating_ip_entries)
        self._owns("routing", "floating_ip", floating_ip_id, floating_ip is not None)

    def put_mac_binding(self, binding_id: str, binding: MacBinding | None) -> None:
        """A next hop the controller resolved; `binding_id` is "network id/ip"."""
        self._put_indexed("mac_binding", binding_id, binding, _mac_binding_entries)
        self._owns("routing", "mac_binding", binding_id, binding is not None)

    def put_load_balancer(self, load_balancer_id: str, balancer: LoadBalancer | None) -> None:
        """A balancer's own fields; its members are objects of their own (put_lb_member)."""
        value = None if balancer is None else dataclasses.replace(balancer, members=())
        self._put_indexed("load_balancer", load_balancer_id, value, _load_balancer_entries)
        self._owns("load_balancing", "load_balancer", load_balancer_id, balancer is not None)

    def put_lb_member(self, member_id: str, member: LbMember | None) -> None:
        self._put_indexed("lb_member", member_id, member, _lb_member_entries)
        self._owns("load_balancing", "member", member_id, member is not None)

    def put_switch_config(self, dpid: str, config: SwitchConfig | None) -> None:
        pins = None if config is None or config.trunk_ports is None else frozenset(config.trunk_ports)
        self._engine.set(("pins", dpid), pins)
        if pins is None:
            self.pins.pop(dpid, None)
        else:
            self.pins[dpid] = pins
        self._unsettled = self._unsettled or any(binding[0] == dpid for binding in self._claimed_bindings)

    # --- where hypervisors plugged ports (OVSDB) -------------------------------------------------------
    def set_claims(self, claims: frozenset[Claim]) -> None:
        """The interfaces whose external_ids:iface-id names a port (or may), as OVSDB has them now."""
        if claims != self._claims:
            self._claims = claims
            self._claimed_values = frozenset(claim.iface_id for claim in claims)
            self._claimed_bindings = frozenset(claim.binding for claim in claims)
            self._unsettled = True

    def settle(self) -> None:
        """Attach the ports that claims name to their interfaces; re-put the ports whose attachment changed."""
        if not self._unsettled:
            return
        self._unsettled = False
        before = self.attachments
        self.attachments = resolve(self._claims, self._attachable, lambda name: tuple(self._named.get(name, ())),
                                   self._holder, before)
        for port_id in before.keys() | self.attachments.keys():
            old, new = before.get(port_id), self.attachments.get(port_id)
            if (old and old.binding) != (new and new.binding) and port_id in self._declared:
                self._put_indexed("port", port_id, self._effective(port_id), _port_entries)

    def _attachable(self, port_id: str) -> bool | None:
        port = self._declared.get(port_id)
        return None if port is None else not port.dpid

    def _holder(self, binding: Binding) -> str | None:
        held = self._held.get(binding)
        if held is None and binding[1] in self.pins.get(binding[0], ()):
            return f"a trunk port of switch {binding[0]}"
        return held

    def _effective(self, port_id: str) -> Port | None:
        """The port the units read: as declared, or attached where OVSDB says when it has no binding of its own."""
        port = self._declared.get(port_id)
        return None if port is None else placed(port, self.attachments.get(port_id))

    def _name(self, port: Port, present: bool) -> None:
        if not port.name:
            return
        ids = self._named.setdefault(port.name, set())
        if present:
            ids.add(port.id)
        else:
            ids.discard(port.id)
            if not ids:
                del self._named[port.name]

    def _hold(self, binding: tuple[str, str], holder: str | None) -> None:
        if holder is None:
            self._held.pop(binding, None)
        else:
            self._held[binding] = holder
        self._unsettled = self._unsettled or binding in self._claimed_bindings

    # --- topology ----------------------------------------------------------------------------------
    def set_topology(self, topology: Topology) -> None:
        """The switches (with their ports) and the links as they are now; only what changed is new input."""
        dpids = tuple(sorted(sw.dpid for sw in topology.switches))
        for dpid in self._engine.get(("switches",)) or ():
            if dpid not in dpids:
                self._engine.set(("switch", dpid), None)
        for switch in topology.switches:
            self._engine.set(("switch", switch.dpid), switch)
        self._engine.set(("switches",), dpids)
        self._engine.set(("links",), tuple(sorted(set(topology.links))))

    # --- the sets ------------------------------------------------------------------------------------
    def _profile(self, profile: int, group_ids: tuple[str, ...], present: bool) -> None:
        """Count a port in (or out of) its profile: each of the profile's groups lists it while ports have it."""
        count = self._profile_ports.get(profile, 0) + (1 if present else -1)
        if count > 0:
            self._profile_ports[profile] = count
            if count > 1 or not present:
                return
        else:
            self._profile_ports.pop(profile, None)
        for group_id in set(group_ids):
            (self._add if count else self._remove)(("group_profiles", group_id), profile)
        self._own(profile_cookie(profile), f"security_groups:profile/{profile}", bool(count))

    def _put_indexed(self, kind: str, object_id: str, value: Any, entries: Callable[[Any], list[tuple[Key, Hashable]]]
                     ) -> Any:
        """Set the input (kind, id) to `value`, which leaves the sets its previous value was in (`entries` of it) and
        joins those it is in now; returns the previous value."""
        old = self._engine.get((kind, object_id))
        for entry, member in entries(old):
            self._remove(entry, member)
        for entry, member in entries(value):
            self._add(entry, member)
        self._engine.set((kind, object_id), value)
        return old

    def _add(self, key: Key, member: Hashable) -> None:
        members = self._sets.setdefault(key, set())
        members.add(member)
        self._set(key, frozenset(members))

    def _remove(self, key: Key, member: Hashable) -> None:
        members = self._sets.get(key)
        if members is None:
            return
        members.discard(member)
        if not members:
            del self._sets[key]
        self._set(key, frozenset(members) if members else None)

    def _set(self, key: Key, members: frozenset[Hashable] | None) -> None:
        self._engine.set(key, members)
        if key[0] == "bindings":
            if members:
                self.bound[key[1]] = members  # type: ignore[assignment]
            else:
                self.bound.pop(key[1], None)

    def _owns(self, app: str, kind: str, object_id: str, present: bool) -> None:
        """The object owns (or no longer owns) its flows of `app`: cookie(app, id) and aux_cookie(app, id), both
        named "app:kind/id"."""
        for value in (cookie(app, object_id), aux_cookie(app, object_id)):
            self._own(value, f"{app}:{kind}/{object_id}", present)

    def _own(self, value: int, name: str, present: bool) -> None:
        if present:
            self.owners[value] = name
        else:
            self.owners.pop(value, None)


def _network_entries(network: Network | None) -> list[tuple[Key, Hashable]]:
    """The sets a network belongs to: its uplink is bound (LLDP neither leaves nor counts there: it is no trunk)."""
    if network is None or network.uplink is None:
        return []
    dpid, interface = network.uplink
    return [(("bindings", dpid), interface)]


def _port_entries(port: Port | None) -> list[tuple[Key, Hashable]]:
    """The sets a port belongs to."""
    if port is None:
        return []
    entries: list[tuple[Key, Hashable]] = [(("group_ports", group_id), port.id) for group_id in port.security_group_ids]
    entries.append((("address", port.network_id, port.ip_address), port.id))
    if port.dpid:
        entries.append((("net_switch_ports", port.network_id, port.dpid), port.id))
        if port.port_security_enabled:
            entries.append((("profile_switch_ports", port.profile, port.dpid), port.id))
        if port.interface:
            entries.append((("bindings", port.dpid), port.interface))
    return entries


def _rule_entries(rule: SecurityGroupRule | None) -> list[tuple[Key, Hashable]]:
    """The sets a rule belongs to."""
    if rule is None:
        return []
    entries: list[tuple[Key, Hashable]] = [(("group_rules", rule.security_group_id), rule.id)]
    if rule.remote_group_id:
        entries.append((("referrers", rule.remote_group_id), rule.id))
    return entries


def _router_entries(router: Router | None) -> list[tuple[Key, Hashable]]:
    """The sets a router belongs to: the router of each network it has an interface on, and the routers whose
    external gateway is on a network."""
    if router is None:
        return []
    entries: list[tuple[Key, Hashable]] = [(("network_router", interface.network_id), router.id)
                                           for interface in router.interfaces]
    if router.gateway is not None:
        entries.append((("gateway_routers", router.gateway.network_id), router.id))
    return entries


def _floating_ip_entries(floating_ip: FloatingIP | None) -> list[tuple[Key, Hashable]]:
    """The sets a floating IP belongs to: the floating IP of its port."""
    if floating_ip is None or floating_ip.port_id is None:
        return []
    return [(("port_floating_ip", floating_ip.port_id), floating_ip.id)]


def _mac_binding_entries(binding: MacBinding | None) -> list[tuple[Key, Hashable]]:
    """The sets a MAC binding belongs to: the bindings of its network."""
    return [] if binding is None else [(("network_mac_bindings", binding.network_id), binding.id)]


def _load_balancer_entries(balancer: LoadBalancer | None) -> list[tuple[Key, Hashable]]:
    """The sets a load balancer belongs to: the balancers of its network."""
    return [] if balancer is None else [(("network_load_balancers", balancer.network_id), balancer.id)]


def _lb_member_entries(member: LbMember | None) -> list[tuple[Key, Hashable]]:
    """The sets a member belongs to: the members of its balancer."""
    return [] if member is None else [(("lb_members", member.load_balancer_id), member.id)]
