"""Security groups as packet outcomes through the flow simulator, connection state included."""

from __future__ import annotations

import dataclasses
import random

import pytest

from apps.compiler import Compiler, compile_all
from apps.flows import ETH_TYPE_ARP, ETH_TYPE_IP, IP_PROTO
from apps.flowsim import Conntrack, SwitchTables, packet, run, run_fabric
from apps.model import Policy, Port, SecurityGroup, SecurityGroupRule
from apps.pipeline import CT_MARK_NATTED, CT_MARK_REVOKED
from apps.security_groups import port_masks
from apps.topology import Topology
from tests.unit.fabric_cases import S1, TENANT_A, TENANT_B, mac, profile, switch, vm

DEFAULT = SecurityGroup("default", "default", (
    SecurityGroupRule("d-out", "default", "egress", key=11),
    SecurityGroupRule("d-in", "default", "ingress", remote_group_id="default", key=12),
))
WEB = SecurityGroup("web", "web", (
    SecurityGroupRule("w-http", "web", "ingress", "tcp", 80, 81, key=21),
    SecurityGroupRule("w-dns", "web", "ingress", "udp", 53, 53, remote_ip_prefix="10.0.0.3/32", key=22),
    SecurityGroupRule("w-ping", "web", "ingress", "icmp", remote_ip_prefix="10.0.0.0/24", key=23),
))
CLIENT = SecurityGroup("client", "client", (SecurityGroupRule("c-out", "client", "egress", key=31),))
SSH = SecurityGroup("ssh", "ssh", (SecurityGroupRule("s-ssh", "ssh", "ingress", "tcp", 22, 22, key=41),))
GROUPS = (DEFAULT, WEB, CLIENT, SSH)
ONE_SWITCH = Topology((switch(S1, 9),))


def a(n: int, *groups: str, secure: bool = True) -> Port:
    return vm(TENANT_A, n, S1, f"s1-eth{n}", groups=tuple(groups), secure=secure)


class Net:
    """Ports on `topology` (by default one switch, where VM n of tenant A, `a(n)`, is on port n), named by port
    id or, for tenant A's, by number; conntrack is kept across sends, one table per switch as on separate hosts."""

    def __init__(self, ports: list[Port], groups: tuple[SecurityGroup, ...] = GROUPS,
                 topology: Topology = ONE_SWITCH) -> None:
        self.ports = {p.id: p for p in ports}
        self.groups = groups
        self.topology = topology
        self.conntrack = Conntrack()
        self.compiler = Compiler()
        self.rules: dict[str, SecurityGroupRule] = {}
        self.recompile()

    def recompile(self) -> None:
        """Hand the compiler every object: it recompiles only what differs from last time."""
        for network in (TENANT_A, TENANT_B):
            self.compiler.put("network", network.id, network)
        for port in self.ports.values():
            self.compiler.put("port", port.id, port)
        rules = {rule.id: rule for group in self.groups for rule in group.rules}
        for group in self.groups:
            self.compiler.put("group", group.id, group)
        for rule_id in rules.keys() | self.rules.keys():
            self.compiler.put("rule", rule_id, rules.get(rule_id))
        self.rules = rules
        self.compiler.set_topology(self.topology)
        self.compiler.commit()
        self.tables = {dpid: SwitchTables(flows.values()) for dpid, flows in self.compiler.tables.items()}

    def update(self, port_id: str, **changes) -> None:
        port = dataclasses.replace(self.ports[port_id], **changes)
        self.ports[port_id] = dataclasses.replace(port, profile=profile(port.security_group_ids,
                                                                        port.port_security_enabled))
        self.recompile()

    def set_rules(self, group: SecurityGroup, rules: tuple[SecurityGroupRule, ...]) -> None:
        self.groups = tuple(dataclasses.replace(g, rules=rules) if g.id == group.id else g for g in self.groups)
        self.recompile()

    def port(self, ref: int | str) -> Port:
        return self.ports[f"a{ref}" if isinstance(ref, int) else ref]

    def at(self, ref: int | str) -> tuple[str, int]:
        """(dpid, OpenFlow port) of a port."""
        port = self.port(ref)
        return port.dpid, self.topology.switch(port.dpid).ofport(port.interface)

    def reach(self, src: int | str, **fields: int | str) -> list[tuple[str, int]]:
        """Where a frame sent by port src from its own MAC, with these fields, comes out: sorted (dpid, port)."""
        dpid, in_port = self.at(src)
        pkt = packet(in_port=in_port, eth_src=self.port(src).mac_address, **fields)
        return sorted((d.dpid, d.port) for d in run_fabric(self.tables, self.topology, dpid, pkt, self.conntrack))

    def send(self, src: int | str, dst: int | str, proto: str = "tcp", sport: int = 40000, dport: int = 80) -> bool:
        """Does a packet from port src to port dst (addresses as registered) come out at dst's port, and only there?"""
        fields = {"eth_dst": self.port(dst).mac_address, "eth_type": ETH_TYPE_IP,
                  "ipv4_src": self.port(src).ip_address, "ipv4_dst": self.port(dst).ip_address,
                  "ip_proto": IP_PROTO[proto]}
        if proto == "icmp":
            fields.update(icmpv4_type=8 if sport else 0, icmpv4_code=0)
        else:
            fields.update({f"{proto}_src": sport, f"{proto}_dst": dport})
        return self.reach(src, **fields) == [self.at(dst)]

    def reply(self, src: int | str, dst: int | str, proto: str = "tcp", sport: int = 40000, dport: int = 80) -> bool:
        """The answer to send(src, dst, ...)."""
        return self.send(dst, src, proto, sport=dport, dport=sport) if proto != "icmp" else \
            self.send(dst, src, "icmp", sport=0)


def test_ingress_is_denied_unless_a_rule_allows_it():
    net = Net([a(1, "web"), a(2, "client")])
    assert net.send(2, 1, dport=80)
    assert not net.send(2, 1, dport=22)
    assert not net.send(2, 1, "udp", dport=80)


@pytest.mark.parametrize("dport, allowed", [(79, False), (80, True), (81, True), (82, False)])
def test_port_ranges(dport, allowed):
    assert Net([a(1, "web"), a(2, "client")]).send(2, 1, dport=dport) is allowed


def test_remote_ip_prefix():
    net = Net([a(1, "web"), a(2, "client"), a(3, "client")])  # 10.0.0.3 is VM 2
    assert net.send(2, 1, "udp", dport=53)
    assert not net.send(3, 1, "udp", dport=53)
    assert net.send(3, 1, "icmp")  # icmp from the whole /24


def test_replies_of_allowed_connections_pass_both_ways():
    """web has no egress rule and client no ingress rule: only connection state lets the answer back."""
    net = Net([a(1, "web"), a(2, "client")])
    assert not net.send(1, 2, sport=80, dport=40000)  # web cannot start anything
    assert net.send(2, 1) and net.reply(2, 1)
    assert net.send(2, 1) and net.reply(2, 1)  # established, both directions
    assert net.send(2, 1, "icmp") and net.reply(2, 1, "icmp")  # ping from the /24 (w-ping), and its echo


def test_remote_group_membership_changes_take_effect_both_ways():
    net = Net([a(1, "default"), a(2, "default"), a(3, "client")])
    assert net.send(1, 2, dport=5000) and net.send(2, 1, dport=5001)
    assert not net.send(3, 1, dport=5002)
    net.update("a3", security_group_ids=("client", "default"))
    assert net.send(3, 1, dport=5003)
    net.update("a3", security_group_ids=("client",))
    assert not net.send(3, 1, dport=5004)
    net.update("a1", security_group_ids=())  # a1 leaves: nothing in, nothing out
    assert not net.send(2, 1, dport=5005) and not net.send(1, 2, dport=5006)


def b(n: int, *groups: str) -> Port:
    """VM n of tenant B on the one switch, after tenant A's ports: it has a(n)'s very address."""
    return vm(TENANT_B, n, S1, f"s1-eth{n + 4}", groups=tuple(groups))


def test_a_remote_group_admits_its_members_not_their_addresses_in_another_network():
    """b1 has a1's address in tenant B's network; a1 is in default, b1 is not: b2 (default) must not admit b1."""
    net = Net([a(1, "default"), b(1, "client"), b(2, "default"), b(3, "default")])
    assert net.send("b3", "b2", dport=5000) and net.send("b3", "b2", "udp", dport=5000)  # a member passes
    assert not net.send("b1", "b2", dport=5000) and not net.send("b1", "b2", "udp", dport=5000)


def test_two_groups_on_one_port_allow_the_union():
    net = Net([a(1, "web", "ssh"), a(2, "client")])
    assert net.send(2, 1, dport=22) and net.send(2, 1, dport=80)
    assert not net.send(2, 1, dport=443)


def test_empty_group_list_gets_nothing_but_arp():
    net = Net([a(1), a(2, "default")])
    assert not net.send(1, 2, dport=5000) and not net.send(2, 1, dport=5000)
    arp = packet(in_port=2, eth_src=mac("a", 2), eth_dst="ff:ff:ff:ff:ff:ff", eth_type=ETH_TYPE_ARP, arp_op=1,
                 arp_spa="10.0.0.3", arp_sha=mac("a", 2), arp_tpa="10.0.0.99", arp_tha="00:00:00:00:00:00")
    assert run(net.tables[S1], arp, conntrack=net.conntrack).ports == [1]


def dhcp(src: Port, to: Port | None, server: bool) -> dict[str, int | str]:
    """The fields of a DHCP frame from `src` to `to` (or broadcast): a server's OFFER/ACK (UDP 67 -> 68), or a
    client's DISCOVER/REQUEST (68 -> 67), which is sent from 0.0.0.0 when broadcast."""
    ports = (67, 68) if server else (68, 67)
    ip_src = src.ip_address if server or to else "0.0.0.0"
    return {"eth_dst": to.mac_address if to else "ff:ff:ff:ff:ff:ff", "eth_type": ETH_TYPE_IP, "ipv4_src": ip_src,
            "ipv4_dst": to.ip_address if to else "255.255.255.255", "ip_proto": IP_PROTO["udp"],
            "udp_src": ports[0], "udp_dst": ports[1]}


@pytest.mark.parametrize("broadcast", [False, True], ids=["unicast", "broadcast"])
def test_only_a_port_without_port_security_may_answer_as_a_dhcp_server(broadcast):
    """a1 may send anything anywhere and a2 takes DHCP replies unfiltered: a1's must stop as they leave."""
    net = Net([a(1, "client"), a(2, "default"), a(3, secure=False)])
    client = None if broadcast else net.port(2)
    assert net.reach(1, **dhcp(net.port(1), client, server=True)) == []
    assert net.reach(3, **dhcp(net.port(3), client, server=True)) == ([net.at(1)] if broadcast else []) + [net.at(2)]


@pytest.mark.parametrize("broadcast", [False, True], ids=["unicast", "broadcast"])
def test_a_port_with_port_security_still_gets_its_address_by_dhcp(broadcast):
    """a2 asks a3, a DHCP server without port security (a1 admits nothing: it sees no request)."""
    net = Net([a(1, "client"), a(2, "default"), a(3, secure=False)])
    client, server = net.port(2), net.port(3)
    assert net.reach(2, **dhcp(client, None if broadcast else server, server=False)) == [net.at(3)]
    assert net.reach(3, **dhcp(server, None if broadcast else client, server=True)) == \
        ([net.at(1)] if broadcast else []) + [net.at(2)]


def test_port_security_disabled_means_no_filtering():
    net = Net([a(1, secure=False), a(2)])
    assert net.send(1, 2, dport=1234) is False  # a2: secured, no groups
    net = Net([a(1, secure=False), a(2, secure=False)])
    assert net.send(1, 2, dport=1234) and net.send(2, 1, dport=4321)


def test_removing_a_rule_revokes_its_live_connections_and_only_those():
    net = Net([a(1, "web", "ssh"), a(2, "client")])
    assert net.send(2, 1, sport=1111, dport=80) and net.reply(2, 1, sport=1111, dport=80)
    assert net.send(2, 1, sport=2222, dport=22) and net.reply(2, 1, sport=2222, dport=22)
    net.set_rules(WEB, tuple(r for r in WEB.rules if r.id != "w-http"))
    assert not net.send(2, 1, sport=1111, dport=80)        # the live HTTP connection is cut...
    assert not net.reply(2, 1, sport=1111, dport=80)       # ...in both directions
    assert net.send(2, 1, sport=2222, dport=22) and net.reply(2, 1, sport=2222, dport=22)  # SSH unaffected
    net.set_rules(WEB, WEB.rules)                           # allowed again: the connection recovers
    assert net.send(2, 1, sport=1111, dport=80) and net.reply(2, 1, sport=1111, dport=80)


def test_revocation_reads_and_writes_its_own_bit_of_ct_mark_only():
    """Another stage's bit on a connection (NATTED, set here as a NAT stage's commit will set it) neither stops
    its replies nor is lost when the connection is revoked and allowed again."""
    net = Net([a(1, "web"), a(2, "client")])
    assert net.send(2, 1) and net.reply(2, 1)
    request = packet(eth_type=ETH_TYPE_IP, ipv4_src=net.port(2).ip_address, ipv4_dst=net.port(1).ip_address,
                     ip_proto=IP_PROTO["tcp"], tcp_src=40000, tcp_dst=80)

    def mark(ref: int, bits: int | None = None) -> int:
        """The connection's ct_mark in port `ref`'s zone, after committing `bits` of NATTED if given."""
        commit = bits is not None
        return net.conntrack.track(S1, net.port(ref).key, request, commit, bits, CT_MARK_NATTED if commit else None)[1]

    assert mark(1, CT_MARK_NATTED) == mark(2, CT_MARK_NATTED) == CT_MARK_NATTED
    assert net.send(2, 1) and net.reply(2, 1)
    net.set_rules(WEB, tuple(r for r in WEB.rules if r.id != "w-http"))
    assert not net.send(2, 1) and not net.reply(2, 1)
    assert mark(1) == CT_MARK_NATTED | CT_MARK_REVOKED
    net.set_rules(WEB, WEB.rules)
    assert net.send(2, 1) and net.reply(2, 1)
    assert mark(1) == mark(2) == CT_MARK_NATTED


def test_adding_a_rule_keeps_live_connections():
    net = Net([a(1, "web"), a(2, "client")])
    assert net.send(2, 1) and net.reply(2, 1)
    net.set_rules(WEB, (*WEB.rules, SecurityGroupRule("w-extra", "web", "ingress", "tcp", 8080, 8080, key=24)))
    assert net.send(2, 1) and net.reply(2, 1) and net.send(2, 1, dport=8080)


def test_groups_never_open_a_path_between_networks():
    b1 = vm(TENANT_B, 1, S1, "s1-eth5", groups=("default",))
    policy = Policy((TENANT_A, TENANT_B), (a(1, "default"), b1), GROUPS)
    tables = SwitchTables(compile_all(policy, ONE_SWITCH)[S1].values())
    pkt = packet(in_port=1, eth_src=mac("a", 1), eth_dst=mac("b", 1), eth_type=ETH_TYPE_IP, ipv4_src="10.0.0.2",
                 ipv4_dst="10.0.0.2", ip_proto=6, tcp_src=1, tcp_dst=2)
    assert run(tables, pkt, conntrack=Conntrack()).ports == []


def test_a_change_recompiles_only_what_depends_on_it():
    net = Net([a(1, "web"), a(2, "client"), a(3, "web")])
    net.set_rules(SSH, ())  # a group no port is in: its rule's unit goes, nothing else is touched
    assert set(net.compiler.recompiled) <= {"sg.rule", "rule_sites"}
    net.set_rules(WEB, WEB.rules[:-1])  # a rule of a group two ports are in goes: that rule alone
    assert set(net.compiler.recompiled) <= {"sg.rule", "rule_sites"}
    net.set_rules(WEB, WEB.rules)  # and comes back: that rule alone again, not the group's others
    assert net.compiler.recompiled["sg.rule"] == 1
    net.update("a2", mac_address="02:00:00:00:61:09")  # a2's units, and no other port's
    assert net.compiler.recompiled["isolation.port"] == 1 and not net.compiler.recompiled["sg.rule"]


@pytest.mark.parametrize("low, high", [(1, 65535), (80, 80), (80, 81), (1000, 1999), (22, 1023), (3, 7)])
def test_port_masks_cover_exactly_the_range(low, high):
    blocks = sorted((value, (~mask & 0xFFFF) + 1) for value, mask in port_masks(low, high))
    assert all(value % size == 0 for value, size in blocks)  # each (value, mask) is one aligned block
    assert blocks[0][0] == low and sum(size for _, size in blocks) == high - low + 1
    assert all(v1 + s1 == v2 for (v1, s1), (v2, _) in zip(blocks, blocks[1:], strict=False))  # contiguous
    assert len(blocks) <= 2 * 16


@pytest.mark.parametrize("networks", [(TENANT_A,), (TENANT_A, TENANT_B)], ids=["one-network", "two-networks"])
def test_flows_grow_with_ports_plus_rules_not_their_product(networks):
    """N ports in one group whose 5 rules all name the group itself as remote, plus a prefix rule; with two
    networks, every address is matched within its network and each network has half the ports. The ports share
    one profile, so a port adds one flow: its address as a remote (its own clause is the profile's)."""
    group = SecurityGroup("g", "g", (*(SecurityGroupRule(f"r{i}", "g", "ingress", "tcp", 1000 + i, 1000 + i,
                                                         remote_group_id="g", key=100 + i) for i in range(5)),
                                     SecurityGroupRule("r-prefix", "g", "ingress", "udp", 53, 53,
                                                       remote_ip_prefix="10.0.0.0/16", key=110)))

    def count(n: int) -> int:
        ports = tuple(vm(networks[i % len(networks)], i, S1, f"s1-eth{i}", groups=("g",),
                         ip=f"10.0.{i // 250}.{i % 250 + 2}") for i in range(1, n + 1))
        flows = compile_all(Policy(networks, ports, (group,)), Topology((switch(S1, n),)))[S1]
        return sum(f.table in ("ingress_ct",) for f in flows.values())

    small, large = count(100), count(1000)
    assert large - small == 900 and small < 100 + 25  # a cross product would be ports x members x rules


def test_random_policies_match_a_direct_evaluation_of_the_rules():
    """Property: the compiled flows allow a new connection exactly when some rule of the target says so."""
    rng = random.Random(7)
    for _ in range(30):
        rules = tuple(SecurityGroupRule(f"x{i}", "x", "ingress", rng.choice([None, "tcp", "udp"]),
                                        key=200 + i) for i in range(2))
        rules = tuple(dataclasses.replace(r, port_range_min=lo, port_range_max=lo + rng.randint(0, 300))
                      if r.protocol and (lo := rng.randint(1, 2000)) % 2 else r for r in rules)
        group = SecurityGroup("x", "x", rules)
        net = Net([a(1, "x"), a(2, "client")], (*GROUPS, group))
        for _ in range(10):
            proto, dport = rng.choice(["tcp", "udp"]), rng.randint(1, 2400)
            expected = any(r.protocol in (None, proto) and (r.port_range_min is None or
                                                            r.port_range_min <= dport <= r.port_range_max)
                           for r in rules)
            assert net.send(2, 1, proto, sport=rng.randint(1024, 60000), dport=dport) is expected, (rules, proto, dport)
