"""A simulated data centre for benchmarks: switches in a ring, tenants' VMs spread over them, security groups.

`build(switches, ports_per_switch)` returns a Policy and a Topology (pure values, no OVS). Each
tenant network has `per_network` ports spread over `spread` neighbouring switches of the ring (a
tenant's VMs on a few hypervisors, as schedulers place them); every port is in its tenant's group
(ingress from the group's members, egress anywhere) and one port in three also in a `web` group
(tcp/80-443 and icmp from anywhere).
"""

from __future__ import annotations

import ipaddress

from apps.model import Network, Policy, Port, SecurityGroup, SecurityGroupRule, with_profiles
from apps.topology import Link, Switch, SwitchPort, Topology

TRUNKS = (1, 2)  # ofports toward the previous and the next switch of the ring; VMs from 3 on


def dpid(n: int) -> str:
    return f"{n:016x}"


def build(switches: int, ports_per_switch: int, per_network: int = 100, spread: int = 5) -> tuple[Policy, Topology]:
    total = switches * ports_per_switch
    n_networks = max(1, total // per_network)
    networks = tuple(Network(f"net{i}", f"net{i}", f"10.{i // 256}.{i % 256}.0/24" if per_network < 250
                             else f"10.{i}.0.0/16", None, 100 + i) for i in range(n_networks))
    rule_keys = iter(range(1, 1_000_000))
    groups = []
    for network in networks:
        own = f"sg-{network.id}"
        groups.append(SecurityGroup(own, own, (
            SecurityGroupRule(f"{own}-in", own, "ingress", remote_group_id=own, key=next(rule_keys)),
            SecurityGroupRule(f"{own}-out", own, "egress", key=next(rule_keys)))))
    web = SecurityGroup("web", "web", (
        SecurityGroupRule("web-http", "web", "ingress", "tcp", 80, 443, key=next(rule_keys)),
        SecurityGroupRule("web-ping", "web", "ingress", "icmp", key=next(rule_keys))))
    groups.append(web)
    ports = []
    used = [len(TRUNKS)] * (switches + 1)  # last ofport taken on each switch
    for i in range(total):
        n = i // per_network % n_networks
        network = networks[n]
        home = n * spread  # the network's first switch, then the next ones around the ring
        sw = next(1 + (home + k) % switches for k in range(i % spread, i % spread + switches)
                  if used[1 + (home + k) % switches] < ports_per_switch + len(TRUNKS))
        used[sw] += 1
        ofport = used[sw]
        host = ipaddress.IPv4Network(network.cidr).network_address + 2 + i % per_network
        group_ids = (f"sg-{network.id}", "web") if i % 3 == 0 else (f"sg-{network.id}",)
        ports.append(Port(f"p{i}", network.id, f"p{i}", f"02:00:{i >> 24 & 0xFF:02x}:{i >> 16 & 0xFF:02x}:"
                          f"{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}", str(host), dpid(sw), f"s{sw}-eth{ofport}",
                          True, group_ids, key=i + 1))
    topology = Topology(
        tuple(Switch(dpid(sw), tuple(SwitchPort(f"s{sw}-eth{p}", p, f"aa:00:00:{sw >> 8 & 0xFF:02x}:{sw & 0xFF:02x}:"
                                                f"{p & 0xFF:02x}")
                                     for p in range(1, ports_per_switch + len(TRUNKS) + 1)))
              for sw in range(1, switches + 1)),
        tuple(Link.between(dpid(sw), 2, dpid(sw % switches + 1), 1) for sw in range(1, switches + 1))
        if switches > 1 else ())
    return Policy(networks, with_profiles(ports), tuple(groups)), topology
