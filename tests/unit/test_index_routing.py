"""Routers and floating IPs as compile inputs: the objects themselves and the sets that find them."""

from __future__ import annotations

from apps.compiler import DERIVED, UNITS, Compiler
from apps.incremental import Engine
from apps.index import Index
from apps.model import FloatingIP, MacBinding, Network, Policy, Router, RouterGateway, RouterInterface, StaticRoute
from apps.topology import Topology

ROUTER = Router("r1", "r", "fa:16:3f:00:00:07", 7,
                (RouterInterface("n1", "10.0.0.1"), RouterInterface("n2", "10.1.0.1")),
                RouterGateway("ext", "203.0.113.5"), (StaticRoute("192.168.0.0/16", "10.0.0.9"),))
FLOATING_IP = FloatingIP("f1", "ext", "203.0.113.10", "p1")


def index() -> tuple[Engine, Index]:
    engine = Engine(DERIVED, UNITS)
    return engine, Index(engine)


def test_a_router_is_an_input_and_the_router_of_each_of_its_networks() -> None:
    engine, routers = index()
    routers.put_router("r1", ROUTER)
    assert engine.get(("router", "r1")) is ROUTER
    assert engine.get(("network_router", "n1")) == engine.get(("network_router", "n2")) == frozenset({"r1"})
    moved = Router("r1", "r", ROUTER.mac, 7, (RouterInterface("n2", "10.1.0.1"),))
    routers.put_router("r1", moved)
    assert engine.get(("network_router", "n1")) is None and engine.get(("network_router", "n2")) == {"r1"}
    # Within one batch a network may pass from one router to another in either order.
    routers.put_router("r2", Router("r2", "", "fa:16:3f:00:00:08", 8, (RouterInterface("n2", "10.1.0.1"),)))
    routers.put_router("r1", None)
    assert engine.get(("router", "r1")) is None and engine.get(("network_router", "n2")) == {"r2"}


def test_a_floating_ip_is_an_input_and_the_floating_ip_of_its_port() -> None:
    engine, floating_ips = index()
    floating_ips.put_floating_ip("f1", FLOATING_IP)
    assert engine.get(("floating_ip", "f1")) is FLOATING_IP
    assert engine.get(("port_floating_ip", "p1")) == {"f1"}
    floating_ips.put_floating_ip("f1", FloatingIP("f1", "ext", "203.0.113.10", "p2"))
    assert engine.get(("port_floating_ip", "p1")) is None and engine.get(("port_floating_ip", "p2")) == {"f1"}
    floating_ips.put_floating_ip("f1", FloatingIP("f1", "ext", "203.0.113.10"))
    assert engine.get(("port_floating_ip", "p2")) is None
    floating_ips.put_floating_ip("f1", None)
    assert engine.get(("floating_ip", "f1")) is None


def test_a_mac_binding_is_an_input_and_one_of_its_networks_bindings() -> None:
    engine, bindings = index()
    first = MacBinding("ext", "203.0.113.1", "02:00:00:00:00:01")
    second = MacBinding("ext", "203.0.113.9", "02:00:00:00:00:09")
    bindings.put_mac_binding(first.id, first)
    bindings.put_mac_binding(second.id, second)
    assert first.id == "ext/203.0.113.1" and engine.get(("mac_binding", first.id)) is first
    assert engine.get(("network_mac_bindings", "ext")) == {"ext/203.0.113.1", "ext/203.0.113.9"}
    moved = MacBinding("ext", "203.0.113.1", "02:00:00:00:00:02")
    bindings.put_mac_binding(first.id, moved)
    assert engine.get(("mac_binding", first.id)) is moved and len(engine.get(("network_mac_bindings", "ext"))) == 2
    bindings.put_mac_binding(first.id, None)
    bindings.put_mac_binding(second.id, None)
    assert engine.get(("mac_binding", first.id)) is None and engine.get(("network_mac_bindings", "ext")) is None


def test_the_compiler_takes_mac_bindings_whole_or_one_by_one() -> None:
    binding = MacBinding("ext", "203.0.113.1", "02:00:00:00:00:01")
    compiler = Compiler()
    compiler.load(Policy(mac_bindings=(binding,)), Topology((), ()))
    compiler.commit()
    assert compiler._engine.get(("network_mac_bindings", "ext")) == {binding.id}
    compiler.put("mac_binding", binding.id, None)
    compiler.commit()
    assert compiler._engine.get(("network_mac_bindings", "ext")) is None
    assert compiler.gateway("r1") is None  # no such router


def test_the_compiler_takes_routers_and_floating_ips_whole_or_one_by_one() -> None:
    compiler = Compiler()
    compiler.load(Policy(routers=(ROUTER,), floating_ips=(FLOATING_IP,)), Topology((), ()))
    assert compiler.commit() == {}  # no switches to put flows on
    assert compiler.zones("router", "r1") == (7,) and compiler.zones("floating_ip", "f1") == ()
    compiler.put("router", "r1", None)
    compiler.put("floating_ip", "f1", None)
    compiler.commit()
    assert compiler.zones("router", "r1") == ()


def test_an_uplink_is_bound_so_lldp_never_counts_it_as_a_trunk() -> None:
    """Hosts behind an uplink are not switches of ours: the interface is no trunk candidate while the network has it."""
    engine, networks = index()
    uplinked = Network("ext", "ext", "203.0.113.0/24", "203.0.113.1", 99, external=True, uplink=("s1", "s1-eth9"))
    networks.put_network("ext", uplinked)
    assert networks.bound == {"s1": {"s1-eth9"}} and engine.get(("bindings", "s1")) == {"s1-eth9"}
    networks.put_network("ext", Network("ext", "ext", "203.0.113.0/24", "203.0.113.1", 99, external=True))
    assert networks.bound == {} and engine.get(("bindings", "s1")) is None
