"""The policy model the compilers read: immutable snapshots of what the store holds."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    """A VM's attachment to a network, bound to an OVS interface on a switch."""

    id: str
    network_id: str
    name: str
    mac_address: str
    ip_address: str
    dpid: str | None
    interface: str | None
    port_security_enabled: bool = True


@dataclass(frozen=True)
class Policy:
    """Everything the compilers need from the store, as one consistent snapshot."""

    networks: tuple[Network, ...] = ()
    ports: tuple[Port, ...] = ()
    by_network: dict[str, Network] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_network.update({n.id: n for n in self.networks})
