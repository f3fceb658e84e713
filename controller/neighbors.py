"""What the controller decides for routers about packets their flows hand it, with no I/O of its own.

- `Directory`: routers and networks as the last pass compiled them, found the ways packet-ins name them (a
  router's key in reg8 or its MAC, a network's segmentation id in reg1 or its uplink).
- `Neighbors`: next hops on external networks, whose hosts are not ports: the addresses a router asked for
  (pending, and when it last asked: at most one ARP request per address per `request_interval`), the bindings the
  store has and when each was last confirmed, and from that which are due for a new ARP request (every
  `refresh_interval`) and which have expired (unconfirmed for `expire_after` refresh intervals).
- `TokenBuckets`: rates per key (time-exceeded messages per router, refusals logged).

Time is always passed in (`now`, seconds), so all of it is tested without sleeping; the runtime passes its clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from apps.model import Network, Router

Key = tuple[str, str]  # (network id, IPv4 address)


class TokenBuckets:
    """One token bucket per key: `rate` tokens a second up to `burst`; at most `max_keys` keys (the least recently
    used bucket goes first; a key that comes back starts full, which only `max_keys` keys in use at once can
    exploit)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 4096) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: Hashable, now: float) -> bool:
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)  # re-inserted: most recently used last
        if len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]
        return allowed


@dataclass(frozen=True)
class Leg:
    """A router on a network: its address there, and whether that is its external gateway."""

    router: Router
    network: Network
    ip_address: str
    gateway: bool


class Directory:
    """Routers and networks by the names packet-ins give them. Written by one thread (the pass, through
    put_network/put_router), read by another (the io thread): every write is one dict operation on immutable
    values, and readers only look up, so a reader sees each object either before or after a change."""

    def __init__(self) -> None:
        self._networks: dict[str, Network] = {}
        self._by_segment: dict[int, str] = {}
        self._by_uplink: dict[tuple[str, str], str] = {}
        self._routers: dict[str, Router] = {}
        self._by_key: dict[int, str] = {}
        self._by_mac: dict[str, str] = {}
        self._gateways: dict[str, frozenset[str]] = {}  # network id -> routers whose external gateway is on it

    def put_network(self, network_id: str, network: Network | None) -> None:
        old = self._networks.pop(network_id, None)
        if old is not None:
            _drop(self._by_segment, old.segmentation_id, network_id)
            if old.uplink is not None:
                _drop(self._by_uplink, old.uplink, network_id)
        if network is not None:
            self._networks[network_id] = network
            self._by_segment[network.segmentation_id] = network_id
            if network.uplink is not None:
                self._by_uplink[network.uplink] = network_id

    def put_router(self, router_id: str, router: Router | None) -> None:
        old = self._routers.pop(router_id, None)
        if old is not None:
            _drop(self._by_key, old.key, router_id)
            _drop(self._by_mac, old.mac, router_id)
            if old.gateway is not None:
                rest = self._gateways.get(old.gateway.network_id, frozenset()) - {router_id}
                self._gateways[old.gateway.network_id] = rest
                if not rest:
                    del self._gateways[old.gateway.network_id]
        if router is not None:
            self._routers[router_id] = router
            self._by_key[router.key] = router_id
            self._by_mac[router.mac] = router_id
            if router.gateway is not None:
                network_id = router.gateway.network_id
                self._gateways[network_id] = self._gateways.get(network_id, frozenset()) | {router_id}

    def clear(self) -> None:
        for network_id in list(self._networks):
            self.put_network(network_id, None)
        for router_id in list(self._routers):
            self.put_router(router_id, None)

    # --- lookups --------------------------------------------------------------------------------------
    def router_ids(self) -> list[str]:
        """Every router's id (for the writer's thread: others may not iterate)."""
        return list(self._routers)

    def network(self, network_id: str) -> Network | None:
        return self._networks.get(network_id)

    def router(self, router_id: str) -> Router | None:
        return self._routers.get(router_id)

    def network_by_segment(self, segmentation_id: int | None) -> Network | None:
        network_id = self._by_segment.get(segmentation_id) if segmentation_id is not None else None
        return None if network_id is None else self._networks.get(network_id)

    def network_by_uplink(self, dpid: str, interface: str) -> Network | None:
        network_id = self._by_uplink.get((dpid, interface))
        return None if network_id is None else self._networks.get(network_id)

    def router_by_key(self, key: int | None) -> Router | None:
        router_id = self._by_key.get(key) if key is not None else None
        return None if router_id is None else self._routers.get(router_id)

    def router_by_mac(self, mac: str) -> Router | None:
        router_id = self._by_mac.get(mac.lower())
        return None if router_id is None else self._routers.get(router_id)

    def leg(self, router: Router, network: Network) -> Leg | None:
        """The router's address on the network: its interface's, or its gateway's on its external network."""
        if router.gateway is not None and router.gateway.network_id == network.id:
            return Leg(router, network, router.gateway.ip_address, True)
        for interface in router.interfaces:
            if interface.network_id == network.id:
                return Leg(router, network, interface.ip_address, False)
        return None

    def gateway_legs(self, network_id: str) -> list[Leg]:
        """The routers whose external gateway is on the network, as legs there, by router id."""
        network = self._networks.get(network_id)
        if network is None:
            return []
        routers = (self._routers.get(router_id) for router_id in sorted(self._gateways.get(network_id, ())))
        return [leg for router in routers if router is not None
                and (leg := self.leg(router, network)) is not None and leg.gateway]


def _drop(index: dict, key: Hashable, owner: str) -> None:
    """Remove `key` from `index` if it still names `owner` (another object may have taken it meanwhile)."""
    if index.get(key) == owner:
        del index[key]


def in_network(address: str, network: Network) -> bool:
    try:
        return ipaddress.IPv4Address(address) in ipaddress.IPv4Network(network.cidr)
    except ValueError:
        return False


@dataclass(frozen=True)
class Due:
    """What a refresh round has to do: ARP again for `refresh`, forget `expire` (each with the time it was last
    confirmed, so that a confirmation that comes in meanwhile keeps it)."""

    refresh: tuple[Key, ...]
    expire: tuple[tuple[Key, float], ...]


class Neighbors:
    """Next hops on external networks: what was asked for, what is bound, what is due. Used from one thread."""

    def __init__(self, *, request_interval: float = 1.0, refresh_interval: float = 60.0, expire_after: int = 3,
                 pending_for: float = 5.0, max_pending: int = 4096) -> None:
        self.request_interval = request_interval
        self.refresh_interval = refresh_interval
        self.expire_after = expire_after
        self.pending_for = pending_for  # how long an answer to a request is awaited
        self.max_pending = max_pending
        self._pending: dict[Key, float] = {}  # -> until when an answer is expected
        self._asked: dict[Key, float] = {}    # -> when a request last went out
        self._bound: dict[Key, float] = {}    # -> when the binding was last confirmed

    # --- asking -----------------------------------------------------------------------------------------
    def ask(self, key: Key, now: float) -> bool:
        """A packet needs `key` resolved: it is pending from now on; True when a request may go out now (none
        went within `request_interval`). False too when too many addresses are pending already."""
        if key not in self._pending and len(self._pending) >= self.max_pending:
            self._prune(now)
            if len(self._pending) >= self.max_pending:
                return False
        self._pending[key] = now + self.pending_for
        last = self._asked.get(key)
        if last is not None and now - last < self.request_interval:
            return False
        self._asked[key] = now
        return True

    def expects(self, key: Key, now: float) -> bool:
        """Whether an answer about `key` is welcome: it was asked for lately, or it is bound."""
        return self._pending.get(key, float("-inf")) >= now or key in self._bound

    def pending(self, now: float) -> set[Key]:
        return {key for key, until in self._pending.items() if until >= now}

    # --- bindings ---------------------------------------------------------------------------------------
    def confirmed(self, key: Key, now: float) -> None:
        """An answer about `key` was accepted (and stored)."""
        self._pending.pop(key, None)
        self._bound[key] = now

    def known(self, bindings: Iterable[tuple[Key, float]]) -> None:
        """The bindings the store has, each with when it was last confirmed: they replace what was known (a
        binding gone from the store, its network deleted say, is forgotten)."""
        self._bound = dict(bindings)

    def forget(self, key: Key) -> None:
        self._bound.pop(key, None)
        self._pending.pop(key, None)

    def bound(self) -> dict[Key, float]:
        return dict(self._bound)

    def due(self, now: float) -> Due:
        """The bindings to ARP for again (unconfirmed for a refresh interval, and not asked for within one; each
        counts as asked now) and those expired (unconfirmed for `expire_after` refresh intervals)."""
        refresh: list[Key] = []
        expire: list[tuple[Key, float]] = []
        for key, confirmed in sorted(self._bound.items()):
            if now - confirmed >= self.expire_after * self.refresh_interval:
                expire.append((key, confirmed))
            elif now - confirmed >= self.refresh_interval and now - self._asked.get(key, confirmed) >= \
                    self.refresh_interval:
                self._asked[key] = now
                self._pending[key] = now + self.pending_for
                refresh.append(key)
        self._prune(now)
        return Due(tuple(refresh), tuple(expire))

    def _prune(self, now: float) -> None:
        """Drop pending addresses no answer is awaited for any more, and request times that limit nothing."""
        self._pending = {key: until for key, until in self._pending.items() if until >= now}
        self._asked = {key: at for key, at in self._asked.items()
                       if key in self._pending or key in self._bound or now - at < self.request_interval}
