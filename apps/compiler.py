"""One entry point over all apps: the complete desired flow table of every switch."""

from __future__ import annotations

from apps.base import compile_base
from apps.flows import Flow
from apps.isolation import compile_isolation
from apps.model import Policy
from apps.topology import Topology


class FlowConflict(Exception):
    """Two apps (or objects) want different flows under the same (table, priority, match)."""


def compile_all(policy: Policy, topology: Topology) -> dict[str, dict[tuple, Flow]]:
    """dpid -> {flow key: flow}; raises FlowConflict instead of letting one owner silently win."""
    base = compile_base()
    per_app = [compile_isolation(policy, topology)]
    desired: dict[str, dict[tuple, Flow]] = {}
    for switch in topology.switches:
        table: dict[tuple, Flow] = {}
        for flow in base + [f for app in per_app for f in app.get(switch.dpid, ())]:
            other = table.setdefault(flow.key, flow)
            if other != flow:
                raise FlowConflict(f"{switch.dpid}: {other} vs {flow}")
        desired[switch.dpid] = table
    return desired
