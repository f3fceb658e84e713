"""Which interfaces may carry inter-switch links, and the flows that let LLDP reach the controller.

An interface is a trunk candidate when it is up, not reserved, no port is bound to it, and (if its
switch pins its trunks) it is pinned. Only candidates send or deliver LLDP, and a link is usable only
between two candidates: a VM's port never sees the controller's LLDP, and a frame a VM or any other
bound interface sends can never make it a trunk.
"""

from __future__ import annotations

from apps.flows import ETH_TYPE_LLDP, Flow, controller, cookie, match
from apps.incremental import Derived, Read, Unit
from apps.pipeline import PRIO_CONTROL
from apps.topology import Link, Switch, SwitchPort

OFPP_MAX = 0xFFFFFF00  # port numbers above this are reserved (LOCAL, CONTROLLER, ...)
_DISCOVERY = cookie("system", "discovery")


def is_candidate(port: SwitchPort, bound: frozenset[str], pins: frozenset[str] | None) -> bool:
    """May this interface send and receive LLDP: up, not reserved, no port bound to it (`bound`), and pinned
    if its switch pins its trunks (`pins`)."""
    return port.up and port.ofport < OFPP_MAX and port.name not in bound and (pins is None or port.name in pins)


def trunk_candidates(switch: Switch, bound: frozenset[str], pins: frozenset[str] | None) -> tuple[SwitchPort, ...]:
    """The trunk candidates of `switch`, in ofport order."""
    return tuple(port for port in switch.ports if is_candidate(port, bound, pins))


def _candidates(read: Read, dpid: str) -> tuple[SwitchPort, ...]:
    switch: Switch | None = read(("switch", dpid))
    if switch is None:
        return ()
    return trunk_candidates(switch, read(("bindings", dpid)) or frozenset(), read(("pins", dpid)))


def _usable_links(read: Read) -> tuple[Link, ...]:
    """Discovered links whose both ends are candidates, one per pair of switches and per interface (in
    link order: the lowest ports win)."""
    ends: dict[str, set[int]] = {}

    def candidate(dpid: str, ofport: int) -> bool:
        if dpid not in ends:
            ends[dpid] = {port.ofport for port in read(("candidates", dpid))}
        return ofport in ends[dpid]

    chosen: dict[tuple[str, str], Link] = {}
    used: set[tuple[str, int]] = set()  # an interface ends one link at most, whatever LLDP claimed
    for link in read(("links",)) or ():
        a, b = (link.a_dpid, link.a_port), (link.b_dpid, link.b_port)
        if (link.a_dpid != link.b_dpid and (link.a_dpid, link.b_dpid) not in chosen and not {a, b} & used
                and candidate(*a) and candidate(*b)):
            chosen[(link.a_dpid, link.b_dpid)] = link
            used.update((a, b))
    return tuple(sorted(chosen.values()))


def _lldp_flows(read: Read, dpid: str) -> dict[str, list[Flow]]:
    """LLDP to the controller from trunk candidates only; from anywhere else it misses and drops."""
    return {dpid: [Flow("classify", PRIO_CONTROL, match(in_port=port.ofport, eth_type=ETH_TYPE_LLDP),
                        (controller(),), cookie=_DISCOVERY, meter="lldp")
                   for port in read(("candidates", dpid))]}


DERIVED = {
    "candidates": Derived(1, _candidates),
    "usable_links": Derived(2, _usable_links),
}
UNITS = {"discovery.switch": Unit("switch", _lldp_flows)}
