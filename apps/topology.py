"""The switch graph as values, and the paths the compilers forward along.

Unicast follows shortest paths (breadth-first, ties broken by dpid then port so that every
switch agrees on the same next hop); flooding follows one spanning tree of the same graph,
so a broadcast frame never loops even when the links form a ring. The compile engine keeps
these as derived values (DERIVED), recomputed only when the usable links change.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from apps.incremental import Derived, Read


@dataclass(frozen=True)
class SwitchPort:
    name: str
    ofport: int
    mac: str
    up: bool = True


@dataclass(frozen=True)
class Switch:
    dpid: str
    ports: tuple[SwitchPort, ...] = ()
    _up: dict[str, int] = field(default_factory=dict, init=False, compare=False, repr=False)
    _by_ofport: dict[int, SwitchPort] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._up.update({port.name: port.ofport for port in self.ports if port.up})
        self._by_ofport.update({port.ofport: port for port in self.ports})

    def ofport(self, name: str) -> int | None:
        """The OpenFlow port number of an up interface called `name`, if any."""
        return self._up.get(name)

    def port(self, ofport: int) -> SwitchPort | None:
        return self._by_ofport.get(ofport)


@dataclass(frozen=True, order=True)
class Link:
    """An inter-switch link; endpoints are stored in dpid order so equal links compare equal."""

    a_dpid: str
    a_port: int
    b_dpid: str
    b_port: int

    @staticmethod
    def between(dpid1: str, port1: int, dpid2: str, port2: int) -> Link:
        if (dpid1, port1) <= (dpid2, port2):
            return Link(dpid1, port1, dpid2, port2)
        return Link(dpid2, port2, dpid1, port1)

    def port_on(self, dpid: str) -> int:
        return self.a_port if dpid == self.a_dpid else self.b_port

    def peer_of(self, dpid: str) -> str:
        return self.b_dpid if dpid == self.a_dpid else self.a_dpid


@dataclass(frozen=True)
class Topology:
    """Switches with their ports, and the links discovered between them (not all of them usable)."""

    switches: tuple[Switch, ...] = ()
    links: tuple[Link, ...] = ()

    def switch(self, dpid: str) -> Switch | None:
        for sw in self.switches:
            if sw.dpid == dpid:
                return sw
        return None


Adjacency = dict[str, list[tuple[str, int, Link]]]


def adjacency(links: tuple[Link, ...]) -> Adjacency:
    """dpid -> sorted [(peer dpid, the peer's port toward dpid, link)]."""
    return _adjacency(list(links))


def next_hops(adjacent: Adjacency, dst: str) -> dict[str, int]:
    """For every switch that can reach `dst`, the port of its first hop toward `dst` (breadth-first,
    neighbours in (dpid, port) order, so every switch agrees on the same paths)."""
    hops: dict[str, int] = {}
    seen = {dst}
    queue = deque([dst])
    while queue:
        here = queue.popleft()
        for peer, peer_port, _ in adjacent.get(here, ()):
            if peer not in seen:
                seen.add(peer)
                hops[peer] = peer_port
                queue.append(peer)
    return hops


def spanning_tree(adjacent: Adjacency) -> frozenset[Link]:
    """One spanning tree per connected part of the graph, each rooted at its lowest dpid."""
    tree: set[Link] = set()
    reached: set[str] = set()
    for root in sorted(adjacent):
        if root in reached:
            continue
        reached.add(root)
        queue = deque([root])
        while queue:
            here = queue.popleft()
            for peer, _, link in adjacent[here]:
                if peer not in reached:
                    reached.add(peer)
                    tree.add(link)
                    queue.append(peer)
    return frozenset(tree)


def _adjacency(links: list[Link]) -> dict[str, list[tuple[str, int, Link]]]:
    """dpid -> sorted [(peer dpid, the peer's port toward dpid, link)]."""
    adjacency: dict[str, list[tuple[str, int, Link]]] = {}
    for link in links:
        adjacency.setdefault(link.a_dpid, []).append((link.b_dpid, link.b_port, link))
        adjacency.setdefault(link.b_dpid, []).append((link.a_dpid, link.a_port, link))
    for peers in adjacency.values():
        peers.sort(key=lambda item: (item[0], item[1]))
    return adjacency


def _adjacency_node(read: Read) -> Adjacency:
    return adjacency(read(("usable_links",)))


def _peers_node(read: Read) -> dict[tuple[str, int], str]:
    """(dpid, ofport) of each end of a usable link -> the switch at the other end."""
    return {end: peer for link in read(("usable_links",))
            for end, peer in (((link.a_dpid, link.a_port), link.b_dpid), ((link.b_dpid, link.b_port), link.a_dpid))}


def _hops_node(read: Read, dst: str) -> dict[str, int]:
    return next_hops(read(("adjacency",)), dst)


def _tree_node(read: Read) -> frozenset[Link]:
    return spanning_tree(read(("adjacency",)))


def _trunks_node(read: Read, dpid: str) -> tuple[int, ...]:
    """Every usable inter-switch port of `dpid` (they all accept tagged traffic)."""
    return tuple(sorted(link.port_on(dpid) for link in read(("usable_links",)) if dpid in (link.a_dpid, link.b_dpid)))


DERIVED = {
    "adjacency": Derived(3, _adjacency_node),
    "peers": Derived(3, _peers_node),        # ("peers",): (dpid, ofport) -> the switch beyond that port
    "hops": Derived(4, _hops_node),          # ("hops", dst): dpid -> port toward dst
    "flood_tree": Derived(4, _tree_node),
    "trunks": Derived(4, _trunks_node),
}
