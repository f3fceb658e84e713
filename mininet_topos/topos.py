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
from typing import Any

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
    routed: bool = False  # VMs get a default route via the network's gateway_ip (the first host)


@dataclass(frozen=True)
class External:
    """An external network reached through a switch interface (its `uplink`), with hosts that are not ports.

    `upstream` is a Linux router (ip_forward=1) plugged into switch `uplink_switch` at `upstream_ip`, the
    external network's gateway_ip, with a second leg on `outside_cidr` wired straight (a plain veth, no switch
    of ours) to `outside`, whose default route is the upstream. The upstream knows the external subnet and its
    own: never a tenant's, so only SNAT and floating IPs bring tenant traffic back.
    """

    network: str = "ext"
    cidr: str = "203.0.113.0/24"
    upstream_ip: str = "203.0.113.1"
    uplink_switch: int = 1
    outside_cidr: str = "198.51.100.0/24"
    upstream_outside_ip: str = "198.51.100.1"
    outside_ip: str = "198.51.100.10"


@dataclass(frozen=True)
class Layout:
    name: str
    switches: int
    links: tuple[tuple[int, int], ...]     # 1-based switch numbers
    vms: tuple[tuple[int, str], ...]       # (switch number, tenant key), in host-number order
    tenants: tuple[Tenant, ...]
    external: External | None = None


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
    # Routers: tenant A has three networks (a and c for one router, d left off it), tenant B reuses A's
    # 10.0.0.0/24; s1 carries the external network's uplink (the SNAT switch), VMs sit on all three switches
    # so that east-west and SNAT traffic crosses switches. Every VM routes by default via its gateway_ip.
    "external": Layout(
        "external", 3, ((1, 2), (2, 3)),
        ((2, "a"), (3, "a"), (1, "a"), (3, "c"), (2, "c"), (2, "d"), (3, "b"), (2, "b")),
        (Tenant("a", "tenant-a", "10.0.0.0/24", 10, routed=True),
         Tenant("b", "tenant-b", "10.0.0.0/24", 20, routed=True),
         Tenant("c", "tenant-a-2", "10.0.1.0/24", 10, routed=True),
         Tenant("d", "tenant-a-3", "10.0.2.0/24", 10, routed=True)),
        External()),
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
    gateway: str | None = None     # default route (routed tenants: the network's gateway_ip)

    @property
    def ip_with_prefix(self) -> str:
        return f"{self.ip}/{self.prefixlen}"


@dataclass(frozen=True)
class NetworkPlan:
    tenant: str
    name: str
    cidr: str
    gateway_ip: str | None = None   # None: the controller's default (the first host)


@dataclass(frozen=True)
class ExternalPlan:
    """The external network, its uplink and the two hosts beyond it (labels "upstream" and "outside")."""

    network: str
    cidr: str
    prefixlen: int
    upstream_ip: str                # the external network's gateway_ip
    uplink_switch: str              # switch label
    uplink_dpid: str
    upstream_host: str              # prefixed Mininet host names
    outside_host: str
    outside_cidr: str
    upstream_outside_ip: str
    outside_ip: str
    uplink_interface: str | None = None   # the switch-side OVS port of the upstream's link; known once built

    @property
    def uplink(self) -> dict[str, str]:
        """The REST `uplink` of the external network."""
        if self.uplink_interface is None:
            raise ValueError("plan not bound to a built network (no uplink interface)")
        return {"dpid": self.uplink_dpid, "interface": self.uplink_interface}


@dataclass(frozen=True)
class Plan:
    layout: str
    prefix: str
    switches: tuple[SwitchPlan, ...]
    links: tuple[tuple[str, str], ...]   # switch labels
    networks: tuple[NetworkPlan, ...]
    vms: tuple[VmPlan, ...]
    external: ExternalPlan | None = None

    def vm(self, label: str) -> VmPlan:
        return next(v for v in self.vms if v.label == label)

    def switch(self, label: str) -> SwitchPlan:
        return next(s for s in self.switches if s.label == label)

    def network(self, tenant: str) -> NetworkPlan:
        return next(n for n in self.networks if n.tenant == tenant)

    @property
    def bridges(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.switches)

    @property
    def hosts(self) -> dict[str, str]:
        """Label -> Mininet host name, VMs and the external network's hosts ("upstream", "outside")."""
        found = {v.label: v.host for v in self.vms}
        if self.external:
            found.update(upstream=self.external.upstream_host, outside=self.external.outside_host)
        return found

    def bound(self, interfaces: dict[str, str]) -> Plan:
        """The plan with each VM's (and the uplink's) switch-side interface filled in (host name -> interface)."""
        external = self.external
        if external is not None:
            external = replace(external, uplink_interface=interfaces[external.upstream_host])
        return replace(self, vms=tuple(replace(v, interface=interfaces[v.host]) for v in self.vms),
                       external=external)


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
            gateway=str(net.network_address + 1) if tenant.routed else None,
        ))
    external = None
    if layout.external:
        ext = layout.external
        external = ExternalPlan(
            network=ext.network, cidr=ext.cidr, prefixlen=ipaddress.ip_network(ext.cidr).prefixlen,
            upstream_ip=ext.upstream_ip, uplink_switch=f"s{ext.uplink_switch}",
            uplink_dpid=switches[ext.uplink_switch - 1].dpid,
            upstream_host=f"{prefix}up", outside_host=f"{prefix}out", outside_cidr=ext.outside_cidr,
            upstream_outside_ip=ext.upstream_outside_ip, outside_ip=ext.outside_ip)
    return Plan(
        layout=layout.name, prefix=prefix, switches=switches,
        links=tuple((f"s{a}", f"s{b}") for a, b in layout.links),
        networks=tuple(NetworkPlan(t.key, t.network, t.cidr,
                                   str(ipaddress.ip_network(t.cidr).network_address + 1) if t.routed else None)
                       for t in layout.tenants),
        vms=tuple(vms), external=external,
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
        ext = plan.external
        if ext is not None:
            outside_len = ipaddress.ip_network(ext.outside_cidr).prefixlen
            # The uplink first, so that it is the upstream's default interface (frames sent "from upstream").
            self.addHost(ext.upstream_host, ip=f"{ext.upstream_ip}/{ext.prefixlen}")
            self.addLink(ext.upstream_host, names[ext.uplink_switch])
            self.addHost(ext.outside_host, ip=f"{ext.outside_ip}/{outside_len}")
            self.addLink(ext.outside_host, ext.upstream_host,
                         params2={"ip": f"{ext.upstream_outside_ip}/{outside_len}"})


def configure_routing(net: Any, p: Plan) -> None:
    """Default routes of routed VMs; the upstream forwards (its own namespace only) and `outside` routes via it.

    Everything happens inside the hosts' namespaces: the root namespace gets no address and no route.
    """
    for vm in p.vms:
        if vm.gateway:
            _check(net.get(vm.host), "ip", "route", "replace", "default", "via", vm.gateway)
    ext = p.external
    if ext is not None:
        upstream, outside = net.get(ext.upstream_host), net.get(ext.outside_host)
        _check(upstream, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _check(outside, "ip", "route", "replace", "default", "via", ext.upstream_outside_ip)


def _check(host: Any, *argv: str) -> None:
    out = host.cmd(*argv, "; echo rc=$?").strip()
    if not out.endswith("rc=0"):
        raise RuntimeError(f"{host.name}: {' '.join(argv)}: {out}")
