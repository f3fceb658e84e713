"""What the controller knows of the switches: ports, connections, discovered links, refused LLDP.

A link counts only once LLDP was seen in both directions within the link timeout, and goes as
soon as either direction goes stale: a frame replayed into one interface cannot make a link on
its own. The last known ports and links are persisted, so that after a controller restart the
first compile already sees the whole fabric: flows toward switches that have not reconnected yet,
or links not yet re-discovered, are kept instead of being torn down and rebuilt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from apps.topology import Link, Switch, SwitchPort, Topology
from controller.channel import Channel

End = tuple[str, int]  # (dpid, ofport)


@dataclass(frozen=True)
class Refusal:
    """The latest LLDP frame a switch delivered that did not count, for operators."""

    count: int
    interface: str
    reason: str
    at: float  # wall-clock seconds


class Fabric:
    def __init__(self, switches: list[Switch], links: list[Link], link_timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.link_timeout = link_timeout
        self._switches = {sw.dpid: sw for sw in switches}
        now = clock()
        # (sender, receiver) -> when LLDP last went that way; persisted links count as heard both ways.
        self._heard: dict[tuple[End, End], float] = {}
        self._up: set[Link] = set(links)
        for link in links:
            a, b = (link.a_dpid, link.a_port), (link.b_dpid, link.b_port)
            self._heard[(a, b)] = self._heard[(b, a)] = now
        self._channels: dict[str, Channel] = {}
        self._refused: dict[str, Refusal] = {}

    # --- switches ----------------------------------------------------------------------------
    def connect(self, channel: Channel, ports: list[SwitchPort]) -> Channel | None:
        """Register a (re)connected switch; returns the channel it replaces, if any."""
        with self._lock:
            old = self._channels.get(channel.dpid)
            self._channels[channel.dpid] = channel
            self._switches[channel.dpid] = Switch(channel.dpid, tuple(sorted(ports, key=lambda p: p.ofport)))
        return old

    def disconnect(self, channel: Channel) -> bool:
        """Forget the channel if it is still the switch's current one."""
        with self._lock:
            if self._channels.get(channel.dpid) is not channel:
                return False
            del self._channels[channel.dpid]
        return True

    def update_port(self, dpid: str, port: SwitchPort, deleted: bool) -> bool:
        """Apply a port-status change; True when the switch's ports changed."""
        with self._lock:
            switch = self._switches.get(dpid)
            if switch is None:
                return False
            ports = {p.ofport: p for p in switch.ports}
            before = ports.get(port.ofport)
            if deleted:
                ports.pop(port.ofport, None)
            else:
                ports[port.ofport] = port
            if before == ports.get(port.ofport):
                return False
            self._switches[dpid] = Switch(dpid, tuple(sorted(ports.values(), key=lambda p: p.ofport)))
        return True

    def channel(self, dpid: str) -> Channel | None:
        with self._lock:
            return self._channels.get(dpid)

    def channels(self) -> list[Channel]:
        with self._lock:
            return list(self._channels.values())

    def switch(self, dpid: str) -> Switch | None:
        with self._lock:
            return self._switches.get(dpid)

    def is_connected(self, dpid: str) -> bool:
        with self._lock:
            return dpid in self._channels

    # --- links -------------------------------------------------------------------------------
    def lldp_heard(self, sender: End, receiver: End) -> bool:
        """Record LLDP from `sender` arriving at `receiver`; True when that completes a new link."""
        with self._lock:
            now = self._clock()
            self._heard[(sender, receiver)] = now
            link = Link.between(*sender, *receiver)
            if link in self._up or self._heard.get((receiver, sender), -1e18) < now - self.link_timeout:
                return False
            self._up.add(link)
            return True

    def expire_links(self) -> bool:
        """Drop directions not refreshed within the timeout; True when a link went with them."""
        with self._lock:
            deadline = self._clock() - self.link_timeout
            self._heard = {pair: seen for pair, seen in self._heard.items() if seen >= deadline}
            stale = {link for link in self._up
                     if ((link.a_dpid, link.a_port), (link.b_dpid, link.b_port)) not in self._heard
                     or ((link.b_dpid, link.b_port), (link.a_dpid, link.a_port)) not in self._heard}
            self._up -= stale
            return bool(stale)

    def forget_links(self, links: Iterable[Link]) -> bool:
        """Drop these links (an end became a VM's port, or is not a pinned trunk); True if any was up."""
        with self._lock:
            gone = self._up & set(links)
            for link in gone:
                a, b = (link.a_dpid, link.a_port), (link.b_dpid, link.b_port)
                self._heard.pop((a, b), None)
                self._heard.pop((b, a), None)
            self._up -= gone
            return bool(gone)

    def links(self) -> list[Link]:
        with self._lock:
            return sorted(self._up)

    # --- refused LLDP -----------------------------------------------------------------------
    def refuse(self, dpid: str, interface: str, reason: str) -> None:
        with self._lock:
            last = self._refused.get(dpid)
            self._refused[dpid] = Refusal((last.count if last else 0) + 1, interface, reason, time.time())

    def refusal(self, dpid: str) -> Refusal | None:
        with self._lock:
            return self._refused.get(dpid)

    # --- views -------------------------------------------------------------------------------
    def view(self) -> tuple[Topology, list[Channel]]:
        """Every known switch and link, and the connected channels, read at one moment.

        Every known switch is in the topology (connected or not: its data plane may well still
        forward), so every connected channel has a switch in it.
        """
        with self._lock:
            topology = Topology(tuple(self._switches[d] for d in sorted(self._switches)), tuple(sorted(self._up)))
            return topology, list(self._channels.values())

    def snapshot(self) -> Topology:
        return self.view()[0]
