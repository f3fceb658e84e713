"""Ports attached where hypervisors' OVSDB says (external_ids:iface-id), asserted as resolutions and packet outcomes."""

from __future__ import annotations

import dataclasses
import random

from apps.attachments import Attachment, Claim, resolve
from apps.compiler import Compiler, compile_all
from apps.flows import ETH_TYPE_IP
from apps.flowsim import SwitchTables, packet, run
from apps.model import Network, Policy, Port, SwitchConfig
from tests.unit.fabric_cases import S1, TENANT_A, mac, one_switch, vm

UNBOUND = dataclasses.replace(vm(TENANT_A, 1, S1, "s1-eth1"), id="p-unbound", name="web", dpid=None, interface=None)


def _resolve(claims: list[Claim], ports: list[Port], previous: dict[str, Attachment] | None = None,
             held: dict[tuple[str, str], str] | None = None) -> dict[str, Attachment]:
    by_id = {port.id: port for port in ports}
    return resolve(claims, lambda pid: None if pid not in by_id else not by_id[pid].dpid,
                   lambda name: tuple(p.id for p in ports if p.name == name), (held or {}).get, previous or {})


def test_an_interface_naming_a_port_by_id_or_by_name_attaches_it():
    for iface_id in ("p-unbound", "web"):
        assert _resolve([Claim(S1, "vm1", iface_id)], [UNBOUND]) == {"p-unbound": Attachment((S1, "vm1"))}


def test_an_interface_naming_no_port_attaches_nothing():
    assert _resolve([Claim(S1, "vm1", "nobody")], [UNBOUND]) == {}


def test_an_explicit_binding_wins_over_ovsdb():
    bound = dataclasses.replace(UNBOUND, dpid=S1, interface="s1-eth1")
    found = _resolve([Claim(S1, "vm1", "p-unbound")], [bound])
    assert found["p-unbound"].binding is None
    assert "has a binding of its own" in found["p-unbound"].conflict


def test_an_interface_held_by_an_explicit_binding_is_refused():
    found = _resolve([Claim(S1, "vm1", "p-unbound")], [UNBOUND], held={(S1, "vm1"): "bound to port other"})
    assert found == {"p-unbound": Attachment(None, f"interface vm1 of switch {S1} ignored: it is bound to port other")}


def test_two_interfaces_claiming_one_port_lowest_wins_and_the_other_is_reported():
    claims = [Claim(S1, "vm2", "p-unbound"), Claim(S1, "vm1", "p-unbound")]
    found = _resolve(claims, [UNBOUND])["p-unbound"]
    assert found.binding == (S1, "vm1")
    assert "vm2" in found.conflict and "claims it too" in found.conflict


def test_a_newcomer_cannot_steal_a_port_from_the_interface_it_has():
    claims = [Claim(S1, "vm1", "p-unbound"), Claim(S1, "vm2", "p-unbound")]
    found = _resolve(claims, [UNBOUND], previous={"p-unbound": Attachment((S1, "vm2"))})["p-unbound"]
    assert found.binding == (S1, "vm2")


def test_a_name_two_ports_share_attaches_neither():
    twin = dataclasses.replace(UNBOUND, id="p-twin")
    found = _resolve([Claim(S1, "vm1", "web")], [UNBOUND, twin])
    assert {pid: a.binding for pid, a in found.items()} == {"p-unbound": None, "p-twin": None}
    assert "share the name 'web'" in found["p-twin"].conflict


def test_an_id_beats_a_name():
    named_like_the_other = dataclasses.replace(UNBOUND, id="p-x", name="p-unbound")
    found = _resolve([Claim(S1, "vm1", "p-unbound")], [UNBOUND, named_like_the_other])
    assert found == {"p-unbound": Attachment((S1, "vm1"))}


# --- through the compiler: the attached port's flows are those of a port bound there ---------------------------------

def _ip(in_port: int, src: str, dst: str, ip_src: str, ip_dst: str) -> dict[str, int]:
    return packet(in_port=in_port, eth_src=src, eth_dst=dst, eth_type=ETH_TYPE_IP, ipv4_src=ip_src, ipv4_dst=ip_dst,
                  ip_proto=17, udp_src=40000, udp_dst=53)


def _unbind(policy: Policy, port_id: str) -> Policy:
    return dataclasses.replace(policy, ports=tuple(dataclasses.replace(p, dpid=None, interface=None)
                                                   if p.id == port_id else p for p in policy.ports))


def test_an_attached_port_compiles_as_if_bound_there():
    policy, topology = one_switch()
    claims = frozenset({Claim(S1, "s1-eth1", "a1")})
    assert compile_all(_unbind(policy, "a1"), topology, claims) == compile_all(policy, topology)


def test_an_unclaimed_port_is_down_and_a_foreign_claim_gets_only_what_the_port_would():
    """a1 unbound: its interface forwards nothing; an interface claiming b1 (tenant B) speaks as b1, in B only."""
    policy, topology = one_switch()
    policy = _unbind(_unbind(policy, "a1"), "b1")
    tables = {d: SwitchTables(f.values()) for d, f in compile_all(policy, topology).items()}[S1]
    assert run(tables, _ip(1, mac("a", 1), mac("a", 2), "10.0.0.2", "10.0.0.3")).ports == []
    claimed = {d: SwitchTables(f.values()) for d, f in compile_all(
        policy, topology, frozenset({Claim(S1, "s1-eth1", "b1")})).items()}[S1]
    assert run(claimed, _ip(1, mac("a", 1), mac("a", 2), "10.0.0.2", "10.0.0.3")).ports == []  # a1's identity: no
    assert run(claimed, _ip(1, mac("b", 1), mac("a", 2), "10.0.0.2", "10.0.0.3")).ports == []  # into A: no
    assert run(claimed, _ip(1, mac("b", 1), mac("b", 2), "10.0.0.2", "10.0.0.3")).ports == [4]  # as b1, in B: yes


def test_attachments_follow_claims_incrementally_and_agree_with_a_full_compile():
    policy, topology = one_switch()
    policy = _unbind(policy, "a1")
    compiler = Compiler()
    compiler.load(policy, topology)
    steps = [frozenset({Claim(S1, "s1-eth1", "a1")}),  # appears
             frozenset({Claim(S1, "s1-eth1", "a1"), Claim(S1, "s1-eth4", "a1")}),  # a duplicate: refused (b2 has it)
             frozenset({Claim(S1, "s1-eth3", "zzz")}),  # gone
             frozenset()]
    for claims in steps:
        compiler.set_claims(claims)
        compiler.commit()
        assert {d: dict(compiler.table(d)) for d in (S1,)} == compile_all(policy, topology, claims)
    compiler.set_claims(steps[1])
    compiler.commit()
    assert compiler.attachments()["a1"] == Attachment(
        (S1, "s1-eth1"), f"attached to interface s1-eth1 of switch {S1}; interface s1-eth4 of switch {S1} ignored: "
        "it is bound to port b2")


def test_an_uplink_and_a_pinned_trunk_are_never_attached():
    policy, topology = one_switch()
    policy = _unbind(policy, "a1")
    ext = Network("ext", "ext", "203.0.113.0/24", None, 303, external=True, uplink=(S1, "s1-eth1"))
    for held, expected in ((dataclasses.replace(policy, networks=(*policy.networks, ext)), "the uplink of network ext"),
                           (dataclasses.replace(policy, switches=(SwitchConfig(S1, ("s1-eth1",)),)),
                            f"a trunk port of switch {S1}")):
        compiler = Compiler()
        compiler.load(held, topology)
        compiler.set_claims(frozenset({Claim(S1, "s1-eth1", "a1")}))
        compiler.commit()
        assert compiler.attachments()["a1"].binding is None
        assert expected in compiler.attachments()["a1"].conflict


def test_random_changes_to_ports_and_claims_agree_with_a_full_compile():
    """Ports renamed, bound, unbound, deleted and claims coming and going, in random order: after each change the
    incremental tables and attachments equal those of a fresh compile."""
    policy, topology = one_switch()
    rng = random.Random(7)
    ports = {p.id: p for p in policy.ports}
    compiler = Compiler()
    compiler.load(policy, topology)
    claims: frozenset[Claim] = frozenset()
    for _ in range(150):
        port_id = rng.choice(sorted(ports))
        original = next(p for p in policy.ports if p.id == port_id)
        change = rng.choice(("rename", "unbind", "bind", "delete", "claim", "unclaim"))
        if change == "claim":
            claims |= {Claim(S1, f"s1-eth{rng.randint(1, 4)}", rng.choice([*ports, "a1", "b2", "nobody"]))}
        elif change == "unclaim" and claims:
            claims -= {rng.choice(sorted(claims))}
        elif change == "delete" and port_id in ports and len(ports) > 1:
            del ports[port_id]
            compiler.put("port", port_id, None)
        else:
            current = ports.get(port_id, original)
            ports[port_id] = {"rename": dataclasses.replace(current, name=rng.choice(["a1", "a2", "b1", "x"])),
                              "unbind": dataclasses.replace(current, dpid=None, interface=None),
                              "bind": dataclasses.replace(current, dpid=original.dpid, interface=original.interface),
                              }.get(change, current)
            compiler.put("port", port_id, ports[port_id])
        compiler.set_claims(claims)
        compiler.commit()
        fresh = Compiler()
        fresh.load(dataclasses.replace(policy, ports=tuple(ports.values())), topology)
        fresh.set_claims(claims)
        fresh.commit()
        if any("claims it too" in (a.conflict or "") for a in compiler.attachments().values()):
            continue  # two interfaces claim one port: the one it had keeps it, which a fresh compile cannot know
        assert dict(compiler.table(S1)) == dict(fresh.table(S1)), (change, compiler.attachments(), fresh.attachments())
        assert {k: v.binding for k, v in compiler.attachments().items()} == {
            k: v.binding for k, v in fresh.attachments().items()}, change
