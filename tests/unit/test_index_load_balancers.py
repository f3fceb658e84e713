"""Load balancers and their members as compile inputs: the objects themselves, the sets that find them, their owners
and the balancer's zone."""

from __future__ import annotations

import dataclasses

from apps.compiler import DERIVED, UNITS, Compiler
from apps.flows import cookie
from apps.incremental import Engine
from apps.index import Index
from apps.model import HealthMonitor, LbMember, LoadBalancer, Network, Policy
from apps.topology import Topology

MEMBERS = (LbMember("m1", "lb1", "10.0.0.11", 80, key=1), LbMember("m2", "lb1", "10.0.0.12", 80, 3, key=2))
BALANCER = LoadBalancer("lb1", "web", "n1", "10.0.0.100", "tcp", 80, "source_ip_hash", 9, "fa:16:3f:01:00:09",
                        HealthMonitor("tcp", 5.0, 2.0, 3), MEMBERS)


def index() -> tuple[Engine, Index]:
    engine = Engine(DERIVED, UNITS)
    return engine, Index(engine)


def test_a_load_balancer_is_an_input_without_its_members_and_one_of_its_networks_balancers() -> None:
    engine, balancers = index()
    balancers.put_load_balancer("lb1", BALANCER)
    assert engine.get(("load_balancer", "lb1")) == dataclasses.replace(BALANCER, members=())
    assert engine.get(("network_load_balancers", "n1")) == {"lb1"}
    assert engine.get(("lb_members", "lb1")) is None  # members come one by one
    assert balancers.owners[cookie("load_balancing", "lb1")] == "load_balancing:load_balancer/lb1"
    balancers.put_load_balancer("lb2", dataclasses.replace(BALANCER, id="lb2", key=10, members=()))
    assert engine.get(("network_load_balancers", "n1")) == {"lb1", "lb2"}
    balancers.put_load_balancer("lb1", None)
    assert engine.get(("load_balancer", "lb1")) is None and engine.get(("network_load_balancers", "n1")) == {"lb2"}
    assert cookie("load_balancing", "lb1") not in balancers.owners


def test_a_member_is_an_input_and_one_of_its_balancers_members() -> None:
    engine, members = index()
    for member in MEMBERS:
        members.put_lb_member(member.id, member)
    assert engine.get(("lb_member", "m2")) is MEMBERS[1]
    assert engine.get(("lb_members", "lb1")) == {"m1", "m2"}
    assert members.owners[cookie("load_balancing", "m1")] == "load_balancing:member/m1"
    offline = dataclasses.replace(MEMBERS[0], status="OFFLINE")
    members.put_lb_member("m1", offline)
    assert engine.get(("lb_member", "m1")) is offline and engine.get(("lb_members", "lb1")) == {"m1", "m2"}
    members.put_lb_member("m1", None)
    members.put_lb_member("m2", None)
    assert engine.get(("lb_members", "lb1")) is None and engine.get(("lb_member", "m1")) is None
    assert cookie("load_balancing", "m1") not in members.owners


def test_load_puts_balancers_then_their_members_and_the_compiler_knows_their_zone() -> None:
    compiler = Compiler()
    policy = Policy(networks=(Network("n1", "net", "10.0.0.0/24", "10.0.0.1", 5),), load_balancers=(BALANCER,))
    compiler.load(policy, Topology())
    compiler.commit()
    assert compiler.zones("load_balancer", "lb1")[0] == 9 and compiler.zones("lb_member", "m1") == ()
    assert compiler.owner(cookie("load_balancing", "m2")) == "load_balancing:member/m2"
    compiler.put("lb_member", "m2", None)
    compiler.put("load_balancer", "lb1", dataclasses.replace(BALANCER, name="renamed"))
    compiler.commit()
    assert compiler.owner(cookie("load_balancing", "m2")) is None
    assert compiler.owner(cookie("load_balancing", "m1")) == "load_balancing:member/m1"
    compiler.put("load_balancer", "lb1", None)
    assert compiler.zones("load_balancer", "lb1") == ()
