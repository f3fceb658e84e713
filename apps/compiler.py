"""One entry point over all apps: the complete desired flow table of every switch.

Incremental at app granularity: each app is recompiled only when the part of the policy it reads
(or the topology) changed, so a security-group rule change does not recompile isolation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable

from apps.base import compile_base
from apps.discovery import compile_discovery
from apps.flows import Flow
from apps.isolation import compile_isolation
from apps.model import Policy
from apps.security_groups import compile_security_groups
from apps.topology import Topology

AppCompiler = Callable[[Policy, Topology], dict[str, list[Flow]]]


class FlowConflict(Exception):
    """Two apps (or objects) want different flows under the same (table, priority, match)."""


def _isolation_inputs(policy: Policy) -> Hashable:
    """What isolation reads: networks and ports, but not the ports' security groups."""
    return policy.networks, tuple(dataclasses.replace(p, security_group_ids=()) for p in policy.ports)


def _all_inputs(policy: Policy) -> Hashable:
    return policy.networks, policy.ports, policy.security_groups


def _discovery_inputs(policy: Policy) -> Hashable:
    """What discovery reads: where ports are bound, and the switches' pinned trunks."""
    return tuple((p.dpid, p.interface) for p in policy.ports), policy.switches


APPS: tuple[tuple[str, AppCompiler, Callable[[Policy], Hashable]], ...] = (
    ("discovery", compile_discovery, _discovery_inputs),
    ("isolation", compile_isolation, _isolation_inputs),
    ("security_groups", compile_security_groups, _all_inputs),
)


class Compiler:
    def __init__(self) -> None:
        self._cache: dict[str, tuple[Hashable, dict[str, list[Flow]]]] = {}
        self.recompiled: list[str] = []  # apps the last compile() had to run (for tests and metrics)

    def compile(self, policy: Policy, topology: Topology) -> dict[str, dict[tuple, Flow]]:
        """dpid -> {flow key: flow}; raises FlowConflict instead of letting one owner silently win."""
        self.recompiled = []
        per_app = []
        for name, compile_app, inputs_of in APPS:
            inputs = (inputs_of(policy), topology)
            cached = self._cache.get(name)
            if cached is None or cached[0] != inputs:
                cached = (inputs, compile_app(policy, topology))
                self._cache[name] = cached
                self.recompiled.append(name)
            per_app.append(cached[1])
        base = compile_base()
        desired: dict[str, dict[tuple, Flow]] = {}
        for switch in topology.switches:
            table: dict[tuple, Flow] = {}
            for flow in base + [f for app in per_app for f in app.get(switch.dpid, ())]:
                other = table.setdefault(flow.key, flow)
                if other != flow:
                    raise FlowConflict(f"{switch.dpid}: {other} vs {flow}")
            desired[switch.dpid] = table
        return desired


def compile_all(policy: Policy, topology: Topology) -> dict[str, dict[tuple, Flow]]:
    """A one-off compile (tests, benchmarks); the controller keeps one Compiler across passes."""
    return Compiler().compile(policy, topology)
