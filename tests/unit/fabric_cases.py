"""Small policies and topologies shared by the compiler tests."""

from __future__ import annotations

from apps.model import Network, Policy, Port, SecurityGroup, SecurityGroupRule, profile_key
from apps.topology import Link, Switch, SwitchPort, Topology

S1, S2, S3 = "0000000000000001", "0000000000000002", "0000000000000003"
TENANT_A = Network("net-a", "a", "10.0.0.0/24", "10.0.0.1", 101)
TENANT_B = Network("net-b", "b", "10.0.0.0/24", "10.0.0.1", 202)  # same CIDR on purpose
# Isolation tests run with every port in a group that allows everything: what they see is isolation alone.
OPEN = SecurityGroup("open", "open", (SecurityGroupRule("open-in", "open", "ingress", key=1),
                                      SecurityGroupRule("open-out", "open", "egress", key=2)))


PROFILES: dict[tuple[str, ...], int] = {}  # the profile of each set of groups, shared by every test


def profile(groups: tuple[str, ...], secure: bool = True) -> int:
    return profile_key(groups, PROFILES) if secure else 0


def mac(tenant: str, n: int) -> str:
    return f"02:00:00:00:{ord(tenant):02x}:{n:02x}"


def vm(tenant: Network, n: int, dpid: str, interface: str, *, secure: bool = True, ip: str | None = None,
       groups: tuple[str, ...] = (OPEN.id,)) -> Port:
    """VM n of a tenant: both tenants use the same IPs (10.0.0.n+1) to prove addresses are not keys."""
    return Port(f"{tenant.name}{n}", tenant.id, f"{tenant.name}{n}", mac(tenant.name, n),
                ip or f"10.0.0.{n + 1}", dpid, interface, secure, groups if secure else (),
                key=tenant.segmentation_id * 100 + n, profile=profile(groups, secure))


def switch(dpid: str, n_ports: int) -> Switch:
    name = f"s{int(dpid, 16)}"
    return Switch(dpid, tuple(SwitchPort(f"{name}-eth{i}", i, f"aa:00:00:00:{int(dpid, 16):02x}:{i:02x}")
                              for i in range(1, n_ports + 1)))


def one_switch(secure_a1: bool = True) -> tuple[Policy, Topology]:
    """s1: ports 1,2 tenant A; ports 3,4 tenant B (same IPs as A)."""
    ports = (vm(TENANT_A, 1, S1, "s1-eth1", secure=secure_a1), vm(TENANT_A, 2, S1, "s1-eth2"),
             vm(TENANT_B, 1, S1, "s1-eth3"), vm(TENANT_B, 2, S1, "s1-eth4"))
    return Policy((TENANT_A, TENANT_B), ports, (OPEN,)), Topology((switch(S1, 4),))


def line_vm(tenant: Network, n: int, *, groups: tuple[str, ...] = (OPEN.id,)) -> Port:
    """VM n of a tenant in line_of_three and ring_of_three: on switch n, port 1 (tenant A) or 2 (tenant B)."""
    return vm(tenant, n, (S1, S2, S3)[n - 1], f"s{n}-eth{1 if tenant == TENANT_A else 2}", groups=groups)


def line_of_three() -> tuple[Policy, Topology]:
    """s1 - s2 - s3 (ports 3/4 are links); each switch: port 1 tenant A, port 2 tenant B."""
    ports = tuple(line_vm(tenant, n) for n in (1, 2, 3) for tenant in (TENANT_A, TENANT_B))
    links = (Link.between(S1, 3, S2, 3), Link.between(S2, 4, S3, 3))
    topology = Topology(tuple(switch(d, 4) for d in (S1, S2, S3)), links)
    return Policy((TENANT_A, TENANT_B), ports, (OPEN,)), topology


def ring_of_three() -> tuple[Policy, Topology]:
    """The line plus a link s3:4 - s1:4, closing a cycle."""
    policy, topology = line_of_three()
    return policy, Topology(topology.switches, (*topology.links, Link.between(S3, 4, S1, 4)))
