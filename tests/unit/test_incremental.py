"""The incremental compiler against a full compile, over long random sequences of changes.

After every change (a port created, moved, readdressed, regrouped or deleted; a rule added or removed; a
network renumbered; a switch port going down or up; a link coming or going; trunks pinned), the tables
the incremental compiler keeps must equal a compile from scratch, and the keys it reports as changed
must cover every flow that did change. Plus the engine's own rules: reads only of lower levels, and
conflicts refused.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from apps.compiler import Compiler, compile_all
from apps.flows import Flow, cookie, match
from apps.incremental import Derived, Engine, FlowConflict, Unit
from apps.model import Network, Policy, Port, SecurityGroup, SecurityGroupRule, SwitchConfig, profile_key
from apps.topology import Link, Switch, SwitchPort, Topology

SWITCHES = tuple(f"{n:016x}" for n in range(1, 5))
PORTS_PER_SWITCH = 8  # 1-5 for VMs, 6-8 for links
NETWORKS = (Network("n1", "n1", "10.0.0.0/24", "10.0.0.1", 11), Network("n2", "n2", "10.0.0.0/24", "10.0.0.1", 22),
            Network("n3", "n3", "10.1.0.0/24", "10.1.0.1", 33))
CANDIDATE_LINKS = tuple(Link.between(SWITCHES[a], 6 + (b % 3), SWITCHES[b], 6 + (a % 3))
                        for a, b in ((0, 1), (1, 2), (2, 3), (3, 0), (0, 2)))


class World:
    """A random policy and topology, changed one step at a time."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.networks = {n.id: n for n in NETWORKS}
        self.ports: dict[str, Port] = {}
        self.groups = {g: SecurityGroup(g, g) for g in ("default", "web", "db")}
        self.configs: dict[str, SwitchConfig] = {}
        self.down: set[tuple[str, int]] = set()
        self.links = set(CANDIDATE_LINKS[:4])
        self.serial = 0
        self.profiles: dict[tuple[str, ...], int] = {}

    def profile(self, groups: tuple[str, ...], secure: bool) -> int:
        return profile_key(groups, self.profiles) if secure else 0

    def policy(self) -> Policy:
        return Policy(tuple(self.networks.values()), tuple(self.ports.values()), tuple(self.groups.values()),
                      tuple(self.configs.values()))

    def topology(self) -> Topology:
        switches = tuple(Switch(d, tuple(SwitchPort(f"s{i}-eth{p}", p, f"aa:00:00:00:{i:02x}:{p:02x}",
                                                    (d, p) not in self.down)
                                         for p in range(1, PORTS_PER_SWITCH + 1)))
                         for i, d in enumerate(SWITCHES, start=1))
        return Topology(switches, tuple(sorted(self.links)))

    def _next(self) -> int:
        self.serial += 1
        return self.serial

    def _random_port(self, port_id: str) -> Port:
        rng = self.rng
        switch = rng.randrange(len(SWITCHES))
        network = rng.choice(NETWORKS)
        n = self._next()
        secure = rng.random() < 0.8
        groups = tuple(rng.sample(sorted(self.groups), rng.randrange(0, 3))) if secure else ()
        return Port(port_id, network.id, port_id, f"02:00:00:00:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}",
                    f"{network.cidr.rsplit('.', 1)[0]}.{2 + n % 250}", SWITCHES[switch],
                    f"s{switch + 1}-eth{rng.randrange(1, 6)}", secure, groups, key=n,
                    profile=self.profile(groups, secure))

    def _random_rule(self, group_id: str) -> SecurityGroupRule:
        rng = self.rng
        protocol = rng.choice((None, "tcp", "udp", "icmp"))
        low = rng.choice((None, 22, 80, 1000)) if protocol in ("tcp", "udp") else None
        high = None if low is None else low + rng.choice((0, 1, 99))
        remote_group = rng.choice((None, None, *sorted(self.groups)))
        prefix = None if remote_group else rng.choice((None, "10.0.0.0/24", "10.0.0.7/32", "0.0.0.0/0"))
        n = self._next()
        return SecurityGroupRule(f"r{n}", group_id, rng.choice(("ingress", "egress")), protocol, low, high, prefix,
                                 remote_group, key=n)

    def step(self) -> str:
        """One random change; returns what it was, for the failure message."""
        rng = self.rng
        action = rng.choice(("add_port", "add_port", "move_port", "regroup", "readdress", "delete_port",
                             "add_rule", "add_rule", "delete_rule", "renumber", "flap", "link", "pin"))
        ports = sorted(self.ports)
        if action == "add_port" or not ports and action in ("move_port", "regroup", "readdress", "delete_port"):
            port = self._random_port(f"p{self._next()}")
            if any((p.dpid, p.interface) == (port.dpid, port.interface) for p in self.ports.values()):
                return "add_port (binding taken: skipped)"
            self.ports[port.id] = port
            return f"add_port {port}"
        if action == "move_port":
            old = self.ports[rng.choice(ports)]
            new = self._random_port(old.id)
            if any((p.dpid, p.interface) == (new.dpid, new.interface) for p in self.ports.values() if p.id != old.id):
                return "move_port (binding taken: skipped)"
            self.ports[old.id] = dataclasses.replace(old, dpid=new.dpid, interface=new.interface)
            return f"move_port {old.id} -> {new.dpid}/{new.interface}"
        if action == "regroup":
            old = self.ports[rng.choice(ports)]
            secure = rng.random() < 0.8
            groups = tuple(rng.sample(sorted(self.groups), rng.randrange(0, 3))) if secure else ()
            self.ports[old.id] = dataclasses.replace(old, port_security_enabled=secure, security_group_ids=groups,
                                                     profile=self.profile(groups, secure))
            return f"regroup {old.id} {secure} {groups}"
        if action == "readdress":
            old = self.ports[rng.choice(ports)]
            n = self._next()
            self.ports[old.id] = dataclasses.replace(old, mac_address=f"02:00:00:01:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}",
                                                     ip_address=f"10.0.0.{2 + n % 250}")
            return f"readdress {old.id}"
        if action == "delete_port":
            port_id = rng.choice(ports)
            del self.ports[port_id]
            return f"delete_port {port_id}"
        if action == "add_rule":
            group = self.groups[rng.choice(sorted(self.groups))]
            rule = self._random_rule(group.id)
            self.groups[group.id] = dataclasses.replace(group, rules=(*group.rules, rule))
            return f"add_rule {rule}"
        if action == "delete_rule":
            group = self.groups[rng.choice(sorted(self.groups))]
            if not group.rules:
                return "delete_rule (none: skipped)"
            gone = rng.choice(group.rules)
            self.groups[group.id] = dataclasses.replace(group, rules=tuple(r for r in group.rules if r is not gone))
            return f"delete_rule {gone.id}"
        if action == "renumber":
            network = self.networks[rng.choice(sorted(self.networks))]
            taken = {n.segmentation_id for n in self.networks.values()}
            segment = rng.choice([s for s in range(10, 60) if s not in taken])
            self.networks[network.id] = dataclasses.replace(network, segmentation_id=segment)
            return f"renumber {network.id} -> {segment}"
        if action == "flap":
            end = (rng.choice(SWITCHES), rng.randrange(1, PORTS_PER_SWITCH + 1))
            self.down ^= {end}
            return f"flap {end}"
        if action == "link":
            link = rng.choice(CANDIDATE_LINKS)
            self.links ^= {link}
            return f"link {link}"
        dpid = rng.choice(SWITCHES)
        pins = rng.choice((None, (), ("s1-eth6", "s2-eth7", "s3-eth6", "s4-eth8"), tuple(f"s{n}-eth{p}"
                                                                                     for n in range(1, 5)
                                                                                     for p in (6, 7, 8))))
        self.configs[dpid] = SwitchConfig(dpid, pins)
        return f"pin {dpid} {pins}"


Objects = tuple[dict, dict, dict, dict]  # networks, ports, groups, switch configs


def objects(world: World) -> Objects:
    return dict(world.networks), dict(world.ports), dict(world.groups), dict(world.configs)


def put_changed(compiler: Compiler, before: Objects, after: Objects) -> None:
    """Tell the compiler every object that differs, as the store's change journal would."""
    for kind, old, new in zip(("network", "port", "group", "switch"), before, after, strict=True):
        for object_id in old.keys() | new.keys():
            if old.get(object_id) != new.get(object_id):
                compiler.put(kind, object_id, new.get(object_id))
    old_rules, new_rules = ({r.id: r for g in groups.values() for r in g.rules} for groups in (before[2], after[2]))
    for rule_id in old_rules.keys() | new_rules.keys():
        if old_rules.get(rule_id) != new_rules.get(rule_id):
            compiler.put("rule", rule_id, new_rules.get(rule_id))


@pytest.mark.parametrize("seed", range(10))
def test_incremental_equals_a_full_compile_after_every_change(seed):
    world = World(random.Random(seed))
    compiler = Compiler()
    compiler.load(world.policy(), world.topology())
    compiler.commit()
    for step in range(200):
        old_tables = {dpid: dict(table) for dpid, table in compiler.tables.items()}
        before = objects(world)
        what = world.step()
        put_changed(compiler, before, objects(world))
        compiler.set_topology(world.topology())
        delta = compiler.commit()
        full = compile_all(world.policy(), world.topology())
        assert {dpid: dict(compiler.table(dpid)) for dpid in SWITCHES} == full, f"seed {seed}, step {step}: {what}"
        for dpid in SWITCHES:
            old = old_tables.get(dpid, {})
            changed = {key for key in old.keys() | full[dpid].keys() if old.get(key) != full[dpid].get(key)}
            assert changed <= delta.get(dpid, set()), f"seed {seed}, step {step}: {what}: delta misses {changed}"


def test_a_change_to_one_port_recompiles_that_port_not_the_others():
    world = World(random.Random(7))
    for _ in range(60):
        world.step()
    compiler = Compiler()
    compiler.load(world.policy(), world.topology())
    compiler.commit()
    port = world.ports[sorted(world.ports)[0]]
    compiler.put("port", port.id, dataclasses.replace(port, name="renamed"))
    compiler.commit()
    assert compiler.recompiled["isolation.port"] == 1 and compiler.recompiled["sg.unfiltered"] <= 1


# --- the engine's own rules ----------------------------------------------------------------------

def test_a_node_may_only_read_lower_levels():
    engine = Engine({"a": Derived(1, lambda read: read(("b",))), "b": Derived(1, lambda read: 1)}, {})
    with pytest.raises(ValueError, match="lower level"):
        engine.get(("a",))


def test_two_units_that_want_different_flows_under_one_key_conflict():
    def flows(read, name):
        return {"s1": [Flow("classify", 1, match(in_port=1), goto=None, cookie=cookie("isolation", name))]}

    engine = Engine({}, {"u": Unit("thing", flows)})
    engine.set(("thing", "x"), 1)
    engine.set(("thing", "y"), 1)
    with pytest.raises(FlowConflict):
        engine.commit()


def test_an_input_set_back_to_its_value_is_no_change():
    engine = Engine({}, {"u": Unit("thing", lambda read, name: {"s1": []})})
    engine.set(("thing", "x"), 1)
    engine.commit()
    engine.set(("thing", "x"), 2)
    engine.set(("thing", "x"), 1)
    assert engine.commit() == {} and not engine.recomputed
