"""One entry point over all apps: the incremental compile engine with every app's derived values and units.

`Compiler` holds the desired flow table of every switch and updates it per changed object:
`load()` everything once (start-up, resync), then `put_*()` the objects the store says changed and
`set_topology()`, and `commit()` returns per switch the keys of the flows (and groups) that changed. `compile_all()` is
the one-off full compile that tests and benchmarks use; it runs the very same units.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from apps import base, discovery, isolation, load_balancing, routing, security_groups, topology
from apps.attachments import Attachment, Claim
from apps.explain import Compiled
from apps.flows import Flow
from apps.groups import Group
from apps.incremental import ChangeKey, Engine, FlowConflict, FlowKey
from apps.index import Index
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
from apps.topology import Link, Topology

__all__ = ["Compiler", "FlowConflict", "compile_all"]

DERIVED = {**discovery.DERIVED, **topology.DERIVED, **isolation.DERIVED, **security_groups.DERIVED, **routing.DERIVED,
           **load_balancing.DERIVED}
UNITS = {**base.UNITS, **discovery.UNITS, **isolation.UNITS, **security_groups.UNITS, **routing.UNITS,
         **load_balancing.UNITS}


class Compiler:
    def __init__(self) -> None:
        self._engine = Engine(DERIVED, UNITS)
        self._index = Index(self._engine)

    # --- what changed ------------------------------------------------------------------------------
    def load(self, policy: Policy, topology: Topology) -> None:
        self._index.load(policy, topology)

    def put(self, kind: str, object_id: str, value: Network | Port | SecurityGroup | SecurityGroupRule | SwitchConfig
            | Router | FloatingIP | MacBinding | LoadBalancer | LbMember | None) -> None:
        """One policy object as it is now (None: deleted); `kind` is network, port, group, rule, switch, router,
        floating_ip, mac_binding (id "network_id/ip"), load_balancer (its members are ignored: each comes as an
        lb_member) or lb_member."""
        {"network": self._index.put_network, "port": self._index.put_port, "group": self._index.put_group,
         "rule": self._index.put_rule, "switch": self._index.put_switch_config, "router": self._index.put_router,
         "floating_ip": self._index.put_floating_ip, "mac_binding": self._index.put_mac_binding,
         "load_balancer": self._index.put_load_balancer, "lb_member": self._index.put_lb_member,
         }[kind](object_id, value)

    def set_topology(self, topology: Topology) -> None:
        self._index.set_topology(topology)

    def set_claims(self, claims: frozenset[Claim]) -> None:
        """The hypervisors' interfaces that name ports in external_ids:iface-id (apps.attachments)."""
        self._index.set_claims(claims)

    def commit(self) -> dict[str, set[ChangeKey]]:
        """Recompile what the changes since the last commit touch; per switch, the keys that changed: flow keys,
        and ("group", group_id) for groups."""
        self._index.settle()
        return self._engine.commit()

    # --- results -----------------------------------------------------------------------------------
    @property
    def tables(self) -> Mapping[str, Mapping[FlowKey, Flow]]:
        return self._engine.tables

    def table(self, dpid: str) -> Mapping[FlowKey, Flow]:
        return self._engine.table(dpid)

    def groups(self, dpid: str) -> Mapping[int, Group]:
        """The switch's desired select groups by group id."""
        return self._engine.groups(dpid)

    @property
    def recompiled(self) -> Counter[str]:
        """How many nodes of each kind (unit, derived value) the last commit recomputed."""
        return self._engine.recomputed

    def trunk_rules(self) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
        """(dpid -> bound interfaces, dpid -> pinned trunks) as of now: what apps.discovery.trunk_candidates
        needs, as plain values another thread may keep."""
        return dict(self._index.bound), dict(self._index.pins)

    def attachments(self) -> dict[str, Attachment]:
        """port id -> where OVSDB attached it and what it refused, for every port an interface claims (a copy)."""
        return dict(self._index.attachments)

    def usable_links(self) -> tuple[Link, ...]:
        return self._engine.get(("usable_links",))

    def zones(self, kind: str, object_id: str) -> tuple[int, ...]:
        """The conntrack zones of a port, router (its key) or load balancer (its key and hairpin key) as the compiler
        last got it; none for other kinds and objects it does not have."""
        if kind not in ("port", "router", "load_balancer"):
            return ()
        owner: Port | Router | LoadBalancer | None = self._engine.get((kind, object_id))
        if owner is None:
            return ()
        return (owner.key, owner.hairpin_key) if isinstance(owner, LoadBalancer) else (owner.key,)

    def gateway(self, router_id: str) -> str | None:
        """The dpid of the switch where the router's SNAT runs (its gateway switch): the derived value
        ("gateway", router_id) that the routing compiler defines; None while it has none (or none is defined).
        Reads the engine: call it under the pass lock (the runtime keeps a copy for other threads)."""
        return self._engine.get(("gateway", router_id))

    def owner(self, cookie: int) -> str | None:
        return self._index.owners.get(cookie)

    def compiled(self, switches: Topology) -> Compiled:
        """The tables of every switch of `switches` (compiled or not yet: none), with the links the flows use and
        every cookie's owner, as plain values apps.explain reads without the compiler."""
        dpids = [sw.dpid for sw in switches.switches]
        return Compiled(Topology(switches.switches, self.usable_links()),
                        {dpid: tuple(self.table(dpid).values()) for dpid in dpids},
                        {dpid: tuple(self.groups(dpid).values()) for dpid in dpids}, dict(self._index.owners))


def compile_all(policy: Policy, topology: Topology, claims: frozenset[Claim] = frozenset()
                ) -> dict[str, dict[FlowKey, Flow]]:
    """dpid -> {flow key: flow}, compiled from scratch; raises FlowConflict instead of letting one owner win."""
    compiler = Compiler()
    compiler.load(policy, topology)
    compiler.set_claims(claims)
    compiler.commit()
    return {dpid: dict(compiler.table(dpid)) for dpid in (sw.dpid for sw in topology.switches)}
