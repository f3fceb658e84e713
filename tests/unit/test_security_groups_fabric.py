"""Security groups across switches: rules checked at the sender's and the receiver's switch, state on each.

Each switch keeps its own conntrack (separate hosts). Tenant A's VM n and tenant B's VM n sit on switch n
with the same address (fabric_cases.line_vm), so an address alone never says which port sent a packet.
"""

from __future__ import annotations

import pytest

from apps.compiler import compile_all
from apps.model import Policy, SecurityGroup, SecurityGroupRule
from apps.pipeline import REG_SCOPE
from tests.unit.fabric_cases import OPEN, TENANT_A, TENANT_B, line_of_three, line_vm, ring_of_three
from tests.unit.test_security_groups import GROUPS, WEB, Net

# Egress: tcp/80 to members of `web` only, and nothing else.
NARROW = SecurityGroup("narrow", "narrow", (
    SecurityGroupRule("n-web", "narrow", "egress", "tcp", 80, 80, remote_group_id="web", key=51),))
FABRIC_GROUPS = (*GROUPS, OPEN, NARROW)


@pytest.fixture(params=[line_of_three, ring_of_three], ids=["line", "ring"])
def fabric(request):
    """Net(VMs given as (tenant, n, *groups)) on the line or the ring of three switches."""
    _, topology = request.param()

    def build(*vms: tuple) -> Net:
        ports = [line_vm(tenant, n, groups=tuple(groups)) for tenant, n, *groups in vms]
        return Net(ports, FABRIC_GROUPS, topology)
    return build


def test_a_remote_group_admits_members_on_other_switches_and_follows_membership(fabric):
    net = fabric((TENANT_A, 1, "default"), (TENANT_A, 2, "client"), (TENANT_A, 3, "default"))
    assert net.send(1, 3, dport=5000) and net.send(1, 3, "udp", dport=5000) and net.send(3, 1, dport=5001)
    assert not net.send(2, 3, dport=5000) and not net.send(2, 3, "udp", dport=5000)
    net.update("a2", security_group_ids=("client", "default"))
    assert net.send(2, 3, dport=5002)
    net.update("a1", security_group_ids=("client",))
    assert not net.send(1, 3, dport=5003)


def test_a_non_member_with_a_members_address_in_another_network_is_refused_across_switches(fabric):
    """a1 (switch 1, tenant A) is in default; b1 (switch 1, tenant B) has its address and is not."""
    net = fabric((TENANT_A, 1, "default"), (TENANT_B, 1, "client"), (TENANT_B, 2, "default"),
                 (TENANT_B, 3, "default"))
    assert net.send("b2", "b3", dport=5000) and net.send("b2", "b3", "udp", dport=5000)
    assert not net.send("b1", "b3", dport=5000) and not net.send("b1", "b3", "udp", dport=5000)
    assert not net.send("b1", "b2", dport=5000)


def test_both_ends_decide_and_an_egress_remote_group_names_members_not_addresses(fabric):
    """a1 may send tcp/80 to members of web only. a3 is one; a2 admits anything but is not one, though b2
    (tenant B) is and has a2's address."""
    net = fabric((TENANT_A, 1, "narrow"), (TENANT_A, 2, "open"), (TENANT_A, 3, "web"), (TENANT_B, 2, "web"))
    assert net.send(1, 3, dport=80) and net.reply(1, 3, dport=80)
    assert not net.send(1, 3, dport=81)  # a3 would admit it, a1's egress does not allow it
    assert not net.send(1, 2, dport=80)  # a2 would admit it, but is not in web
    assert not net.send(2, 1, dport=80)  # a1 admits nothing


def test_replies_cross_switches_in_both_directions(fabric):
    """web (a3) has no egress rule and client (a1) no ingress rule: the answers pass on connection state."""
    net = fabric((TENANT_A, 1, "client"), (TENANT_A, 2, "client"), (TENANT_A, 3, "web"))
    assert not net.send(3, 1, sport=80, dport=40000)
    assert net.send(1, 3) and net.reply(1, 3) and net.send(1, 3) and net.reply(1, 3)
    assert net.send(1, 3, "icmp") and net.reply(1, 3, "icmp")
    assert net.send(2, 3, "udp", sport=5353, dport=53) and net.reply(2, 3, "udp", sport=5353, dport=53)
    assert not net.send(1, 3, "udp", sport=5353, dport=53)  # the dns rule names a2's /32


def test_a_remote_prefix_applies_in_the_network_of_each_port_that_has_it(fabric):
    """web's udp/53 rule names 10.0.0.3/32: a2 in tenant A's network, b2 in tenant B's."""
    net = fabric((TENANT_A, 1, "client"), (TENANT_A, 2, "client"), (TENANT_A, 3, "web"),
                 (TENANT_B, 2, "client"), (TENANT_B, 3, "web"))
    assert net.send(2, 3, "udp", dport=53) and net.send("b2", "b3", "udp", dport=53)
    assert not net.send(1, 3, "udp", dport=53)


def test_removing_a_rule_revokes_a_connection_across_switches_and_only_that_one(fabric):
    net = fabric((TENANT_A, 1, "client"), (TENANT_A, 3, "web", "ssh"))
    assert net.send(1, 3, sport=1111, dport=80) and net.reply(1, 3, sport=1111, dport=80)
    assert net.send(1, 3, sport=2222, dport=22) and net.reply(1, 3, sport=2222, dport=22)
    net.set_rules(WEB, tuple(r for r in WEB.rules if r.id != "w-http"))
    assert not net.send(1, 3, sport=1111, dport=80) and not net.reply(1, 3, sport=1111, dport=80)
    assert net.send(1, 3, sport=2222, dport=22) and net.reply(1, 3, sport=2222, dport=22)
    net.set_rules(WEB, WEB.rules)
    assert net.send(1, 3, sport=1111, dport=80) and net.reply(1, 3, sport=1111, dport=80)


def test_no_rule_flow_matches_an_address_without_its_network():
    """Tenants reuse addresses, so a remote group's or prefix's address means nothing outside its scope (the
    network; for networks on a router, the router's)."""
    _, topology = line_of_three()
    ports = tuple(line_vm(tenant, n, groups=groups) for tenant, n, groups in (
        (TENANT_A, 1, ("narrow", "default")), (TENANT_A, 2, ("web",)), (TENANT_B, 2, ("web", "default")),
        (TENANT_B, 3, ("default",))))
    flows = compile_all(Policy((TENANT_A, TENANT_B), ports, FABRIC_GROUPS), topology)
    fields = {flow: {name for name, _, _ in flow.match} for table in flows.values() for flow in table.values()
              if flow.table in ("egress_ct", "ingress_ct")}
    addressed = [flow for flow, names in fields.items() if names & {"ipv4_src", "ipv4_dst"}]
    assert addressed
    assert all(REG_SCOPE in fields[flow] for flow in addressed), addressed
