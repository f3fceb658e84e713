"""The switch graph as values, and the paths the compilers forward along.

Unicast follows shortest paths (breadth-first, ties broken by dpid then port so that every
switch agrees on the same next hop); flooding follows one spanning tree of the same graph,
so a broadcast frame never loops even when the links form a ring.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


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

    def ofport(self, name: str) -> int | None:
        """The OpenFlow port number of an up interface called `name`, if any."""
        for port in self.ports:
            if port.name == name and port.up:
                return port.ofport
        return None


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
    switches: tuple[Switch, ...] = ()
    links: tuple[Link, ...] = ()

    def switch(self, dpid: str) -> Switch | None:
        for sw in self.switches:
            if sw.dpid == dpid:
                return sw
        return None

    def usable_links(self) -> list[Link]:
        """Links whose two endpoints are up ports of known switches (one per switch pair)."""
        up = {(sw.dpid, p.ofport) for sw in self.switches for p in sw.ports if p.up}
        chosen: dict[tuple[str, str], Link] = {}
        for link in sorted(self.links):
            if (link.a_dpid, link.a_port) in up and (link.b_dpid, link.b_port) in up:
                chosen.setdefault((link.a_dpid, link.b_dpid), link)
        return list(chosen.values())

    def trunk_ports(self, dpid: str) -> list[int]:
        """Every usable inter-switch port on `dpid` (they all accept tagged traffic)."""
        return sorted(link.port_on(dpid) for link in self.usable_links() if dpid in (link.a_dpid, link.b_dpid))

    def next_hops(self, dst: str) -> dict[str, int]:
        """For every switch that can reach `dst`, the port of its first hop toward `dst`."""
        adjacency = _adjacency(self.usable_links())
        hops: dict[str, int] = {}
        seen = {dst}
        queue = deque([dst])
        while queue:
            here = queue.popleft()
            for peer, peer_port, _ in adjacency.get(here, ()):
                if peer not in seen:
                    seen.add(peer)
                    hops[peer] = peer_port
                    queue.append(peer)
        return hops

    def flood_tree_ports(self, dpid: str) -> list[int]:
        """This switch's ports on the spanning tree used for broadcast (rooted at the lowest dpid)."""
        links = self.usable_links()
        adjacency = _adjacency(links)
        tree: set[Link] = set()
        for root in sorted(adjacency):
            if any(root in (link.a_dpid, link.b_dpid) for link in tree):
                continue
            seen = {root}
            queue = deque([root])
            while queue:
                here = queue.popleft()
                for peer, _, link in adjacency[here]:
                    if peer not in seen:
                        seen.add(peer)
                        tree.add(link)
                        queue.append(peer)
        return sorted(link.port_on(dpid) for link in tree if dpid in (link.a_dpid, link.b_dpid))


def _adjacency(links: list[Link]) -> dict[str, list[tuple[str, int, Link]]]:
    """dpid -> sorted [(peer dpid, the peer's port toward dpid, link)]."""
    adjacency: dict[str, list[tuple[str, int, Link]]] = {}
    for link in links:
        adjacency.setdefault(link.a_dpid, []).append((link.b_dpid, link.b_port, link))
        adjacency.setdefault(link.b_dpid, []).append((link.a_dpid, link.a_port, link))
    for peers in adjacency.values():
        peers.sort(key=lambda item: (item[0], item[1]))
    return adjacency
