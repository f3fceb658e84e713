"""Flows every switch carries whatever the policy: table misses and discovery."""

from __future__ import annotations

from apps.flows import ETH_TYPE_LLDP, Flow, controller, cookie, match
from apps.pipeline import PIPELINE, PRIO_CONTROL, PRIO_MISS

_SYSTEM = cookie("system", "pipeline")

# Stages a packet passes through untouched when nothing in them applies; the others drop.
_PASS_THROUGH = {"arp_responder": "egress_acl"}


def compile_base() -> list[Flow]:
    """Explicit misses (drop, or continue for pass-through stages) plus LLDP to the controller."""
    flows = [Flow(table.name, PRIO_MISS, (), goto=_PASS_THROUGH.get(table.name), cookie=_SYSTEM)
             for table in PIPELINE]
    flows.append(Flow("classify", PRIO_CONTROL, match(eth_type=ETH_TYPE_LLDP), (controller(),), cookie=_SYSTEM))
    return flows
