"""The compile engine's inputs: the policy's objects and the topology, and the indexes units look them up by.

Objects come in one at a time (`put_*`, from the store's change journal) or all at once (`load`).
Besides the objects themselves (("port", id), ("network", id), ("group", id), ("rule", id),
("switch", dpid), ...), the index keeps sets that let a unit find what it needs without scanning
everything: the ports of a network bound to a switch, the ports of a group bound to a switch, the
members of a group, the rules that name a group as their remote, the interfaces bound on a switch.
It also names the owner of every cookie the compilers can produce.
"""

from __future__ import annotations

from collections.abc import Hashable

from apps.flows import cookie
from apps.incremental import Engine, Key
from apps.model import Network, Policy, Port, SecurityGroup, SwitchConfig
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
        self.pins: dict[str, frozenset[str]] = {}  # dpid -> its pinned trunks (only switches that pin)

    def load(self, policy: Policy, topology: Topology) -> None:
        """Every object of `policy` and the whole topology (a full compile, or a resync)."""
        for network in policy.networks:
            self.put_network(network.id, network)
        for port in policy.ports:
            self.put_port(port.id, port)
        for group in policy.security_groups:
            self.put_group(group.id, group)
        for config in policy.switches:
            self.put_switch_config(config.dpid, config)
        self.set_topology(topology)

    # --- policy objects ------------------------------------------------------------------------------
    def put_network(self, network_id: str, network: Network | None) -> None:
        self._engine.set(("network", network_id), network)
        self._own(cookie("isolation", network_id), f"isolation:network/{network_id}", network is not None)

    def put_port(self, port_id: str, port: Port | None) -> None:
        old: Port | None = self._engine.get(("port", port_id))
        for entry, member in _port_entries(old):
            self._remove(entry, member)
        for entry, member in _port_entries(port):
            self._add(entry, member)
        self._engine.set(("port", port_id), port)
        self._own(cookie("isolation", port_id), f"isolation:port/{port_id}", port is not None)
        self._own(cookie("security_groups", port_id), f"security_groups:port/{port_id}", port is not None)

    def put_group(self, group_id: str, group: SecurityGroup | None) -> None:
        old: SecurityGroup | None = self._engine.get(("group", group_id))
        old_rules = {rule.id: rule for rule in old.rules} if old else {}
        new_rules = {rule.id: rule for rule in group.rules} if group else {}
        for rule_id, rule in old_rules.items():
            if rule.remote_group_id:
                self._remove(("referrers", rule.remote_group_id), rule_id)
            if rule_id not in new_rules:
                self._engine.set(("rule", rule_id), None)
                self._own(cookie("security_groups", rule_id), "", False)
        for rule_id, rule in new_rules.items():
            if rule.remote_group_id:
                self._add(("referrers", rule.remote_group_id), rule_id)
            self._engine.set(("rule", rule_id), rule)
            self._own(cookie("security_groups", rule_id), f"security_groups:rule/{rule_id}", True)
        self._engine.set(("group", group_id), group)

    def put_switch_config(self, dpid: str, config: SwitchConfig | None) -> None:
        pins = None if config is None or config.trunk_ports is None else frozenset(config.trunk_ports)
        self._engine.set(("pins", dpid), pins)
        if pins is None:
            self.pins.pop(dpid, None)
        else:
            self.pins[dpid] = pins

    def bindings(self) -> dict[str, frozenset[str]]:
        """dpid -> the interfaces ports are bound to there (a copy, for other threads)."""
        return {key[1]: frozenset(names) for key, names in self._sets.items() if key[0] == "bindings"}

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
    def _add(self, key: Key, member: Hashable) -> None:
        members = self._sets.setdefault(key, set())
        members.add(member)
        self._engine.set(key, frozenset(members))

    def _remove(self, key: Key, member: Hashable) -> None:
        members = self._sets.get(key)
        if members is None:
            return
        members.discard(member)
        if not members:
            del self._sets[key]
        self._engine.set(key, frozenset(members) if members else None)

    def _own(self, value: int, name: str, present: bool) -> None:
        if present:
            self.owners[value] = name
        else:
            self.owners.pop(value, None)


def _port_entries(port: Port | None) -> list[tuple[Key, Hashable]]:
    """The sets a port belongs to."""
    if port is None:
        return []
    entries: list[tuple[Key, Hashable]] = [(("group_ports", group_id), port.id) for group_id in port.security_group_ids]
    if port.dpid:
        entries.append((("net_switch_ports", port.network_id, port.dpid), port.id))
        entries += [(("group_switch_ports", group_id, port.dpid), port.id) for group_id in port.security_group_ids]
        if port.interface:
            entries.append((("bindings", port.dpid), port.interface))
    return entries
