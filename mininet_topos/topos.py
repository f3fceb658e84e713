"""Emulated data centres: 'hypervisor' switches with tenant VMs, and the plan that describes them.

A `Layout` says which switches exist, how they are wired and which tenant's VMs sit on each.
`plan()` turns it into concrete names, dpids, MACs and IPs (pure; no Mininet needed), and
`TenantTopo` builds exactly that plan with Mininet's Topo API. The plan is what the launcher
registers through REST, so the controller and Mininet always agree on who is where.

Names carry a short prefix (`xs1`, `xa1`, interfaces `xs1-eth1`) so that concurrent runs on one
machine never share a bridge or interface name; dpids carry it too so stray switches cannot
impersonate each other.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from functools import partial

from mininet.node import OVSSwitch
from mininet.topo import Topo

# Every switch: userspace datapath (no kernel module here), OpenFlow 1.3, fail_mode secure (default).
NetdevSwitch = partial(OVSSwitch, datapath="user", protocols="OpenFlow13")

MAX_PREFIX = 4  # "xxxxs1-eth10" still fits Linux's 15-character interface names


@dataclass(frozen=True)
class Tenant:
    key: str          # one letter: host labels are key + number ("a1")
    network: str      # network name registered through REST
    cidr: str
    first_host: int   # VM n of this tenant gets host address first_host + n


@dataclass(frozen=True)
class Layout:
    name: str
    switches: int
    links: tuple[tuple[int, int], ...]     # 1-based switch numbers
    vms: tuple[tuple[int, str], ...]       # (switch number, tenant key), in host-number order
    tenants: tuple[Tenant, ...]


# Both tenants use the same CIDR on purpose: overlapping tenant address space must work.
# Host addresses differ across tenants so that a cross-tenant probe has a real target to miss.
TENANTS = (
    Tenant("a", "tenant-a", "10.0.0.0/24", 10),
    Tenant("b", "tenant-b", "10.0.0.0/24", 20),
)

LAYOUTS: dict[str, Layout] = {
    "single": Layout("single", 1, (), ((1, "a"), (1, "a"), (1, "b"), (1, "b")), TENANTS),
    "three": Layout("three", 3, ((1, 2), (2, 3)),
                    tuple((s, t) for s in (1, 2, 3) for t in ("a", "b")), TENANTS),
    "ring": Layout("ring", 3, ((1, 2), (2, 3), (3, 1)),
                   tuple((s, t) for s in (1, 2, 3) for t in ("a", "b")), TENANTS),
}


@dataclass(frozen=True)
class SwitchPlan:
    label: str   # "s1"
    name: str    # prefixed Mininet/OVS bridge name
    dpid: str    # 16 hex digits


@dataclass(frozen=True)
class VmPlan:
    label: str        # "a1"
    host: str         # prefixed Mininet host name
    tenant: str       # tenant key
    network: str      # network name
    switch: str       # label of the switch it hangs off
    dpid: str
    mac: str
    ip: str
    prefixlen: int
    interface: str | None = None   # the switch-side OVS port; known once Mininet built the link

    @property
    def ip_with_prefix(self) -> str:
        return f"{self.ip}/{self.prefixlen}"


@dataclass(frozen=True)
class NetworkPlan:
    tenant: str
    name: str
    cidr: str


@dataclass(frozen=True)
class Plan:
    layout: str
    prefix: str
    switches: tuple[SwitchPlan, ...]
    links: tuple[tuple[str, str], ...]   # switch labels
    networks: tuple[NetworkPlan, ...]
    vms: tuple[VmPlan, ...]

    def vm(self, label: str) -> VmPlan:
        return next(v for v in self.vms if v.label == label)

    def switch(self, label: str) -> SwitchPlan:
        return next(s for s in self.switches if s.label == label)

    def network(self, tenant: str) -> NetworkPlan:
        return next(n for n in self.networks if n.tenant == tenant)

    @property
    def bridges(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.switches)

    def bound(self, interfaces: dict[str, str]) -> Plan:
        """The plan with each VM's switch-side interface filled in (host name -> interface name)."""
        return replace(self, vms=tuple(replace(v, interface=interfaces[v.host]) for v in self.vms))


def dpid_for(prefix: str, number: int) -> str:
    """16 hex digits: the prefix's bytes, then the switch number ("" and 1 give 0000000000000001)."""
    return f"{int.from_bytes(prefix.encode(), 'big'):08x}{number:08x}"


def plan(layout: Layout | str, prefix: str = "") -> Plan:
    """Concrete names and addresses for `layout`; deterministic for a given prefix."""
    if isinstance(layout, str):
        layout = LAYOUTS[layout]
    if len(prefix) > MAX_PREFIX or (prefix and not prefix.isalnum()):
        raise ValueError(f"prefix {prefix!r}: up to {MAX_PREFIX} letters/digits (interface name limit)")
    switches = tuple(SwitchPlan(f"s{n}", f"{prefix}s{n}", dpid_for(prefix, n))
                     for n in range(1, layout.switches + 1))
    tenants = {t.key: t for t in layout.tenants}
    counts: dict[str, int] = {}
    vms = []
    for switch_number, key in layout.vms:
        tenant = tenants[key]
        counts[key] = n = counts.get(key, 0) + 1
        net = ipaddress.ip_network(tenant.cidr)
        tenant_index = layout.tenants.index(tenant) + 1
        vms.append(VmPlan(
            label=f"{key}{n}", host=f"{prefix}{key}{n}", tenant=key, network=tenant.network,
            switch=f"s{switch_number}", dpid=switches[switch_number - 1].dpid,
            mac=f"fa:16:3e:00:{tenant_index:02x}:{n:02x}",
            ip=str(net.network_address + tenant.first_host + n), prefixlen=net.prefixlen,
        ))
    return Plan(
        layout=layout.name, prefix=prefix, switches=switches,
        links=tuple((f"s{a}", f"s{b}") for a, b in layout.links),
        networks=tuple(NetworkPlan(t.key, t.network, t.cidr) for t in layout.tenants),
        vms=tuple(vms),
    )


class TenantTopo(Topo):
    """Builds a `Plan` with Mininet's Topo API (switch links first, so VM ports follow them)."""

    def build(self, plan: Plan) -> None:  # type: ignore[override]  # Topo passes build() its params
        names = {s.label: s.name for s in plan.switches}
        for s in plan.switches:
            self.addSwitch(s.name, dpid=s.dpid)
        for a, b in plan.links:
            self.addLink(names[a], names[b])
        for vm in plan.vms:
            self.addHost(vm.host, ip=vm.ip_with_prefix, mac=vm.mac)
            self.addLink(vm.host, names[vm.switch])
