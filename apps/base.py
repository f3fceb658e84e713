"""Flows every switch carries whatever the policy: the table misses."""

from __future__ import annotations

from apps.flows import Flow, cookie
from apps.incremental import Read, Unit
from apps.pipeline import PIPELINE, PRIO_MISS

_SYSTEM = cookie("system", "pipeline")

# Stages a packet passes through untouched when nothing in them applies; the others drop.
_PASS_THROUGH = {"arp_responder": "egress_acl", "router_in": "l2_lookup", "snat": "l2_lookup"}
_MISSES = tuple(Flow(table.name, PRIO_MISS, (), goto=_PASS_THROUGH.get(table.name), cookie=_SYSTEM)
                for table in PIPELINE)


def _misses(read: Read, dpid: str) -> dict[str, tuple[Flow, ...]]:
    """Explicit misses: drop, or continue for pass-through stages."""
    return {dpid: _MISSES}


UNITS = {"base.switch": Unit("switch", _misses)}
