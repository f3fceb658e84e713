"""The policy model the compilers read: immutable snapshots of what the store holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Network:
    """A tenant L2 network; `segmentation_id` is unique and doubles as its key in flows.

    `uplink` (external networks only): the (dpid, interface) of the switch interface that connects the
    network to a physical network whose hosts are not ports (no port is bound to it, it is no trunk).
    """

    id: str
    name: str
    cidr: str
    gateway_ip: str | None
    segmentation_id: int
    external: bool = False
    uplink: tuple[str, str] | None = None


@dataclass(frozen=True)
class Port:
    """A VM's attachment to a network, bound to an OVS interface on a switch.

    `key` is a store-assigned number unique among ports (1..65535): the port's conntrack zone, since
    zones are shared by every bridge of one datapath and ofport numbers repeat across bridges.
    `profile` is a store-assigned number for the port's set of security groups (0 without port
    security): ports with the same groups share it, and so share their security-group flows.
    """

    id: str
    network_id: str
    name: str
    mac_address: str
    ip_address: str
    dpid: str | None
    interface: str | None
    port_security_enabled: bool = True
    security_group_ids: tuple[str, ...] = ()
    key: int = 0
    profile: int = 0


@dataclass(frozen=True)
class SecurityGroupRule:
    """An allow rule (Neutron semantics). `key` is store-assigned and unique: the rule's conjunction id."""

    id: str
    security_group_id: str
    direction: str                      # "ingress" | "egress"
    protocol: str | None = None         # "tcp" | "udp" | "icmp" | None (any)
    port_range_min: int | None = None   # tcp/udp only
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None
    key: int = 0


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
    rules: tuple[SecurityGroupRule, ...] = ()


@dataclass(frozen=True)
class RouterInterface:
    """A router's leg on a tenant network: it holds the network's `gateway_ip`."""

    network_id: str
    ip_address: str


@dataclass(frozen=True)
class RouterGateway:
    """A router's leg on an external network; with `enable_snat`, attached networks leave from `ip_address`."""

    network_id: str
    ip_address: str
    enable_snat: bool = True


@dataclass(frozen=True)
class StaticRoute:
    """Traffic to `destination` (a CIDR) goes to `nexthop`, an address on one of the router's networks."""

    destination: str
    nexthop: str


@dataclass(frozen=True)
class Router:
    """Routes between the networks it has interfaces on, and to its external gateway's network.

    `key` is store-assigned from the same allocator as port keys (1..65535), so it is a conntrack zone no port
    has; `mac` is store-assigned from it (fa:16:3f:...), unique among routers. A network has at most one router.
    """

    id: str
    name: str
    mac: str
    key: int
    interfaces: tuple[RouterInterface, ...] = ()
    gateway: RouterGateway | None = None
    routes: tuple[StaticRoute, ...] = ()


@dataclass(frozen=True)
class FloatingIP:
    """`address` on external network `network_id`, mapped 1:1 to port `port_id` or to the VIP of load balancer
    `load_balancer_id` (one of them at most; neither: not mapped)."""

    id: str
    network_id: str
    address: str
    port_id: str | None = None
    load_balancer_id: str | None = None


@dataclass(frozen=True)
class MacBinding:
    """A host behind an external network's uplink (not a port) that answered a router's ARP: `ip_address` on
    network `network_id` is at `mac_address`. Learned by the controller, expired when it stops answering."""

    network_id: str
    ip_address: str
    mac_address: str

    @property
    def id(self) -> str:
        """Its id in the change journal and the compiler: "network_id/ip_address"."""
        return f"{self.network_id}/{self.ip_address}"


@dataclass(frozen=True)
class HealthMonitor:
    """How a load balancer probes its members: a `type` ("tcp" | "udp") probe every `interval_s` seconds, each
    given `timeout_s` to answer; `max_retries` failures in a row take a member OFFLINE, one success brings it back."""

    type: str
    interval_s: float
    timeout_s: float
    max_retries: int


@dataclass(frozen=True)
class LbMember:
    """A backend of load balancer `load_balancer_id`: `ip_address:port` (the fixed address of a port on the VIP's
    network or on one a router joins to it), chosen in proportion to `weight` (1..256).

    `status`: NO_MONITOR (the balancer has no health monitor), ONLINE or OFFLINE (as its monitor last found it; a new
    member starts ONLINE), or DRAINING (`admin_state_up` false: no new connections, existing ones stay). `key` is
    store-assigned, unique among all members (1..2**31) and stable for the member's life: its select-group bucket id.
    """

    id: str
    load_balancer_id: str
    ip_address: str
    port: int
    weight: int = 1
    admin_state_up: bool = True
    status: str = "NO_MONITOR"
    key: int = 0


@dataclass(frozen=True)
class LoadBalancer:
    """New connections to `vip_address:port` (`protocol` "tcp" | "udp") on network `network_id` spread over the
    members by `algorithm` ("source_ip_hash" | "hash", the latter of the 5-tuple).

    `key` is store-assigned from the allocator of port and router keys (1..65535): the balancer's conntrack zone and
    its group id. `mac` is made from it (fa:16:3f:01:..), never a router's: the VIP answers ARP with it.
    `hairpin_key`, from the same allocator, is the zone where a member that called the VIP and got itself has its
    source translated to the VIP (a connection takes one translation per zone: the balancer's already holds the DNAT).
    """

    id: str
    name: str
    network_id: str
    vip_address: str
    protocol: str
    port: int
    algorithm: str = "source_ip_hash"
    key: int = 0
    mac: str = ""
    health_monitor: HealthMonitor | None = None
    members: tuple[LbMember, ...] = ()
    hairpin_key: int = 0


@dataclass(frozen=True)
class SwitchConfig:
    """What an operator declared about a switch.

    `trunk_ports`: the only interfaces that may carry inter-switch links (LLDP then verifies them
    rather than discovering them); None lets LLDP find links on any interface no port is bound to.
    """

    dpid: str
    trunk_ports: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Policy:
    """Everything the compilers need from the store, as one consistent snapshot."""

    networks: tuple[Network, ...] = ()
    ports: tuple[Port, ...] = ()
    security_groups: tuple[SecurityGroup, ...] = ()
    switches: tuple[SwitchConfig, ...] = ()
    routers: tuple[Router, ...] = ()
    floating_ips: tuple[FloatingIP, ...] = ()
    mac_bindings: tuple[MacBinding, ...] = ()
    load_balancers: tuple[LoadBalancer, ...] = ()


def profile_key(group_ids: Iterable[str], keys: dict[tuple[str, ...], int]) -> int:
    """The profile of a set of groups, from `keys` (where a set not seen yet gets the next number): how the
    store hands profiles out, for policies made by hand (tests, benchmarks)."""
    return keys.setdefault(tuple(sorted(set(group_ids))), len(keys) + 1)


def with_profiles(ports: Iterable[Port]) -> tuple[Port, ...]:
    """`ports`, each with port security given the profile of its set of groups (numbered in order of first
    appearance): what the store does, for policies made by hand whose ports have no profiles yet."""
    keys: dict[tuple[str, ...], int] = {}
    return tuple(replace(port, profile=profile_key(port.security_group_ids, keys)) if port.port_security_enabled
                 else port for port in ports)
