"""Which interfaces may carry inter-switch links, and the flows that let LLDP reach the controller.

An interface is a trunk candidate when it is up, not reserved, no port is bound to it, and (if its
switch pins its trunks) it is pinned. Only candidates send or deliver LLDP, and a link counts only
between two candidates: a VM's port never sees the controller's LLDP frames, and a frame a VM or
any other bound interface sends can never make it a trunk.
"""

from __future__ import annotations

from dataclasses import replace

from apps.flows import ETH_TYPE_LLDP, Flow, controller, cookie, match
from apps.model import Policy
from apps.pipeline import PRIO_CONTROL
from apps.topology import Switch, SwitchPort, Topology

OFPP_MAX = 0xFFFFFF00  # port numbers above this are reserved (LOCAL, CONTROLLER, ...)
_DISCOVERY = cookie("system", "discovery")


def trunk_candidates(switch: Switch, policy: Policy) -> list[SwitchPort]:
    """The interfaces of `switch` that may send and receive LLDP, in ofport order."""
    bound = policy.bound_interfaces(switch.dpid)
    pins = policy.trunk_pins(switch.dpid)
    return [port for port in switch.ports
            if port.up and port.ofport < OFPP_MAX and port.name not in bound and (pins is None or port.name in pins)]


def trusted(topology: Topology, policy: Policy) -> Topology:
    """`topology` without the links that end on an interface that may not carry one."""
    ends = {(sw.dpid, port.ofport) for sw in topology.switches for port in trunk_candidates(sw, policy)}
    links = tuple(link for link in topology.links
                  if (link.a_dpid, link.a_port) in ends and (link.b_dpid, link.b_port) in ends)
    return topology if len(links) == len(topology.links) else replace(topology, links=links)


def compile_discovery(policy: Policy, topology: Topology) -> dict[str, list[Flow]]:
    """LLDP to the controller from trunk candidates only; from anywhere else it misses and drops."""
    return {sw.dpid: [Flow("classify", PRIO_CONTROL, match(in_port=port.ofport, eth_type=ETH_TYPE_LLDP),
                           (controller(),), cookie=_DISCOVERY)
                      for port in trunk_candidates(sw, policy)]
            for sw in topology.switches}
