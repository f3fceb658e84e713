"""The policy model the compilers read: immutable snapshots of what the store holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Network:
    """A tenant L2 network; `segmentation_id` is unique and doubles as its key in flows."""

    id: str
    name: str
    cidr: str
    gateway_ip: str | None
    segmentation_id: int
    external: bool = False


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
