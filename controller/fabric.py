"""What the controller knows of the switches: ports, connections and discovered links.

The last known ports and links are persisted, so that after a controller restart the first
compile already sees the whole fabric: flows toward switches that have not reconnected yet,
or links not yet re-discovered, are kept instead of being torn down and rebuilt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from apps.topology import Link, Switch, SwitchPort, Topology
from controller.channel import Channel

OFPP_MAX = 0xFFFFFF00  # port numbers above this are reserved (LOCAL, CONTROLLER, ...)


class Fabric:
    def __init__(self, switches: list[Switch], links: list[Link], link_timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.link_timeout = link_timeout
        self._switches = {sw.dpid: sw for sw in switches}
        now = clock()
        self._links = dict.fromkeys(links, now)  # link -> last seen
        self._channels: dict[str, Channel] = {}

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

    def lldp_targets(self, dpid: str | None = None) -> list[tuple[Channel, SwitchPort]]:
        """Every up, non-reserved port of every connected switch (or of just `dpid`)."""
        with self._lock:
            return [(channel, port) for d, channel in self._channels.items() if dpid in (None, d)
                    for port in self._switches[d].ports if port.up and port.ofport < OFPP_MAX]

    # --- links -------------------------------------------------------------------------------
    def link_seen(self, link: Link) -> bool:
        """Refresh a link from an LLDP frame; True when it is new."""
        with self._lock:
            new = link not in self._links
            self._links[link] = self._clock()
        return new

    def expire_links(self) -> bool:
        """Drop links not refreshed within the timeout; True when any went."""
        with self._lock:
            deadline = self._clock() - self.link_timeout
            stale = [link for link, seen in self._links.items() if seen < deadline]
            for link in stale:
                del self._links[link]
        return bool(stale)

    def links(self) -> list[Link]:
        with self._lock:
            return sorted(self._links)

    def snapshot(self) -> Topology:
        """Every known switch (connected or not: its data plane may well still forward) and link."""
        with self._lock:
            return Topology(tuple(self._switches[d] for d in sorted(self._switches)), tuple(sorted(self._links)))
