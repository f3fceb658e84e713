"""The runtime answering what routers' flows hand it, with in-memory switches: ARP for next hops out of uplinks,
MAC bindings learned only from the replies it asked for, refreshed and expired, ICMP time-exceeded.

Packet-ins come in as os-ken hands them (table id, the match's fields, the frame); the clock is the test's.
"""

from __future__ import annotations

import ipaddress
import threading
import time

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from apps.model import MacBinding
from controller.runtime import MAX_QUEUED_PACKET_INS, packet_in_kind
from controller.store import Store
from mininet_topos.reach import wait_until
from tests.unit.api_helpers import metric
from tests.unit.test_runtime import S1, S2, connect, io_done, make_runtime, switch

ROUTER_IN, NEIGHBOR, CLASSIFY = 30, 45, 0
UPLINK = 4  # s1-eth4: the external network's uplink
UPSTREAM, UPSTREAM_MAC = "203.0.113.1", "02:00:00:00:00:01"  # the upstream router behind the uplink
VM_MAC = "fa:16:3e:00:00:01"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Setup:
    """s1 (and s2) connected; an external network with its uplink on s1-eth4; a tenant network with a VM on
    s1-eth1; a router between them (gateway 203.0.113.2, interface 10.0.0.1)."""

    def __init__(self, store: Store, **options) -> None:
        self.clock = Clock()
        self.runtime = make_runtime(store, clock=self.clock, **options)
        self.store, self.s1, self.s2 = store, switch(S1), switch(S2)
        connect(self.runtime, self.s1, self.s2)
        apply = self.runtime.apply
        self.ext = apply(lambda: store.create_network({"name": "ext", "cidr": "203.0.113.0/24", "external": True,
                                                       "uplink": {"dpid": S1, "interface": "s1-eth4"}}))
        self.net = apply(lambda: store.create_network({"name": "blue", "cidr": "10.0.0.0/24"}))
        apply(lambda: store.create_port({"network_id": self.net["id"], "mac_address": VM_MAC,
                                         "ip_address": "10.0.0.11", "binding": {"dpid": S1, "interface": "s1-eth1"}}))
        router = apply(lambda: store.create_router({"name": "r", "external_gateway": {"network_id": self.ext["id"]}}))
        self.router = apply(lambda: store.add_router_interface(router["id"], {"network_id": self.net["id"]}))
        self.mac, self.gateway_ip = self.router["mac_address"], self.router["external_gateway"]["ip_address"]
        self.key = next(r.key for r in store.snapshot().routers)
        io_done(self.runtime)
        self.s1.packet_outs.clear()

    def resolve(self, nexthop: str = UPSTREAM) -> None:
        self.runtime.packet_in(S1, NEIGHBOR, {"in_port": 1, "reg1": self.ext["segmentation_id"], "reg8": self.key,
                                              "reg9": int(ipaddress.IPv4Address(nexthop))}, b"\0" * 60)
        io_done(self.runtime)

    def reply(self, in_port: int = UPLINK, **arp) -> None:
        fields = {"op": 2, "hwsrc": UPSTREAM_MAC, "psrc": UPSTREAM, "hwdst": self.mac, "pdst": self.gateway_ip, **arp}
        frame = Ether(src=fields.pop("eth_src", fields["hwsrc"]), dst=fields.pop("eth_dst", self.mac)) / ARP(**fields)
        self.runtime.packet_in(S1, CLASSIFY, {"in_port": in_port}, bytes(frame))
        io_done(self.runtime)

    def round(self) -> None:
        self.runtime._io.submit(self.runtime._neighbor_round).result(timeout=10)

    def arp_requests(self) -> list[tuple[int, ARP]]:
        found = [(port, Ether(data)) for port, data in self.s1.packet_outs]
        return [(port, frame[ARP]) for port, frame in found if ARP in frame]

    def bindings(self) -> list[MacBinding]:
        return [binding for binding, _ in self.store.mac_bindings()]


def test_packet_ins_are_told_apart_by_table() -> None:
    assert [packet_in_kind(t) for t in (ROUTER_IN, NEIGHBOR, CLASSIFY, 60)] == [
        "time_exceeded", "neighbor", "arp_reply", None]


def test_a_next_hop_is_one_arp_request_out_of_the_uplink_a_second(store):
    setup = Setup(store)
    setup.resolve()
    setup.resolve()
    [(port, arp)] = setup.arp_requests()
    assert port == UPLINK and Ether(setup.s1.packet_outs[0][1]).dst == "ff:ff:ff:ff:ff:ff"
    assert (arp.op, arp.hwsrc, arp.psrc, arp.pdst) == (1, setup.mac, setup.gateway_ip, UPSTREAM)
    assert metric(setup.runtime, "sdn_arp_requests_limited_total") == 1
    assert all(name.startswith("io") for name in setup.s1.packet_out_threads)
    setup.clock.now += 1.0
    setup.resolve()
    setup.resolve("203.0.113.9")  # another address is limited on its own
    assert [arp.pdst for _, arp in setup.arp_requests()] == [UPSTREAM, UPSTREAM, "203.0.113.9"]
    assert metric(setup.runtime, "sdn_arp_requests_total") == 3
    assert metric(setup.runtime, "sdn_packet_ins_total", kind="neighbor") == 4


def test_a_next_hop_off_the_network_or_of_an_unknown_router_is_not_asked_for(store):
    setup = Setup(store)
    setup.resolve("198.51.100.1")
    setup.runtime.packet_in(S1, NEIGHBOR, {"reg1": setup.ext["segmentation_id"], "reg8": 999,
                                           "reg9": int(ipaddress.IPv4Address(UPSTREAM))}, b"")
    setup.runtime.packet_in(S1, NEIGHBOR, {"reg1": setup.net["segmentation_id"], "reg8": setup.key,
                                           "reg9": int(ipaddress.IPv4Address("10.0.0.11"))}, b"")  # not external
    io_done(setup.runtime)
    assert setup.arp_requests() == [] and metric(setup.runtime, "sdn_arp_requests_unresolvable_total") == 3


def test_a_reply_to_a_request_binds_and_the_compiler_hears_of_it(store):
    setup = Setup(store)
    setup.resolve()
    revision = store.revision()
    setup.reply()
    assert setup.bindings() == [MacBinding(setup.ext["id"], UPSTREAM, UPSTREAM_MAC)]
    assert store.revision() == revision + 1
    assert setup.runtime.converge().ok
    binding_id = f"{setup.ext['id']}/{UPSTREAM}"
    engine = setup.runtime.compiler._engine
    assert engine.get(("mac_binding", binding_id)) == MacBinding(setup.ext["id"], UPSTREAM, UPSTREAM_MAC)
    assert engine.get(("network_mac_bindings", setup.ext["id"])) == {binding_id}
    assert metric(setup.runtime, "sdn_mac_bindings_learned_total") == 1
    assert metric(setup.runtime, "sdn_arp_refused_total") == 0


@pytest.mark.parametrize(("case", "reply"), [
    ("came in on another port", {"in_port": 2}),
    ("came in on a port of no uplink", {"in_port": 3}),
    ("sender outside the cidr", {"psrc": "198.51.100.1"}),
    ("never asked for", {"psrc": "203.0.113.77"}),
    ("eth_dst not a router", {"eth_dst": "02:00:00:00:00:99", "hwdst": "02:00:00:00:00:99"}),
    ("arp_tha not the router", {"hwdst": "02:00:00:00:00:99"}),
    ("target not the router's gateway address", {"pdst": "203.0.113.3"}),
    ("a request, not a reply", {"op": 1}),
    ("sender MAC not the frame's source", {"eth_src": "02:00:00:00:00:55"}),
    ("a broadcast sender", {"hwsrc": "ff:ff:ff:ff:ff:ff", "eth_src": "ff:ff:ff:ff:ff:ff"}),
])
def test_a_reply_not_asked_for_or_from_elsewhere_is_refused_and_counted(store, case, reply):
    setup = Setup(store)
    setup.resolve()
    revision = store.revision()
    setup.reply(**reply)
    assert setup.bindings() == [] and store.revision() == revision, case
    assert metric(setup.runtime, "sdn_arp_refused_total") == 1


def test_a_reply_long_after_the_request_is_refused(store):
    setup = Setup(store)
    setup.resolve()
    setup.clock.now += 60
    setup.reply()
    assert setup.bindings() == [] and metric(setup.runtime, "sdn_arp_refused_total") == 1


def test_bindings_are_re_arped_every_interval_and_expire_after_three_unanswered(store):
    setup = Setup(store)
    setup.resolve()
    setup.reply()
    setup.s1.packet_outs.clear()
    setup.round()
    assert setup.arp_requests() == [] and metric(setup.runtime, "sdn_mac_bindings") == 1
    setup.clock.now += 60
    setup.round()
    [(port, arp)] = setup.arp_requests()
    assert port == UPLINK and (arp.psrc, arp.pdst, arp.hwsrc) == (setup.gateway_ip, UPSTREAM, setup.mac)
    revision = store.revision()
    setup.reply(hwsrc=UPSTREAM_MAC)  # the same MAC: confirmed, no change for the compiler
    assert store.revision() == revision and store.mac_bindings()[0][1] == setup.clock.now
    for _ in range(2):
        setup.clock.now += 60
        setup.round()
    assert len(setup.arp_requests()) == 3 and setup.bindings()  # 120 s unanswered: asked twice more, still kept
    setup.clock.now += 60
    setup.round()
    assert setup.bindings() == [] and store.revision() == revision + 1
    assert metric(setup.runtime, "sdn_mac_bindings_expired_total") == 1
    assert setup.runtime.converge().ok
    assert setup.runtime.compiler._engine.get(("network_mac_bindings", setup.ext["id"])) is None


def test_a_new_mac_replaces_the_old_one(store):
    setup = Setup(store)
    setup.resolve()
    setup.reply()
    setup.clock.now += 60
    setup.round()
    setup.reply(hwsrc="02:00:00:00:00:02")  # the upstream router was replaced
    assert setup.bindings() == [MacBinding(setup.ext["id"], UPSTREAM, "02:00:00:00:00:02")]
    assert metric(setup.runtime, "sdn_mac_bindings_learned_total") == 2


def test_the_neighbors_thread_expires_bindings_and_survives_an_exception(store, monkeypatch):
    runtime = make_runtime(store, neighbor_refresh=0.06)
    ext = runtime.apply(lambda: store.create_network({"name": "ext", "cidr": "203.0.113.0/24", "external": True}))
    store.put_mac_binding(ext["id"], UPSTREAM, UPSTREAM_MAC, at=time.time() - 1)
    reads = store.mac_bindings
    calls = {"n": 0}

    def fails_once(*args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("database gone for a moment")
        return reads(*args)

    monkeypatch.setattr(store, "mac_bindings", fails_once)
    runtime.start()
    try:
        wait_until(lambda: runtime.thread_errors["neighbors"] == 1 and reads() == [], 10,
                   "the binding to expire after a failed round")
    finally:
        runtime.stop()


def test_ttl_exceeded_is_answered_from_the_routers_address_on_the_input_network(store):
    setup = Setup(store)
    original = Ether(src=VM_MAC, dst=setup.mac) / IP(src="10.0.0.11", dst="8.8.8.8", ttl=1) / UDP(dport=33434)
    setup.runtime.packet_in(S1, ROUTER_IN, {"in_port": 1, "reg1": setup.net["segmentation_id"], "reg8": setup.key},
                            bytes(original))
    io_done(setup.runtime)
    [(port, data)] = setup.s1.packet_outs
    reply = Ether(data)
    assert port == 1 and (reply.src, reply.dst) == (setup.mac, VM_MAC)
    assert (reply[IP].src, reply[IP].dst, reply[IP].ttl) == ("10.0.0.1", "10.0.0.11", 64)
    assert (reply[ICMP].type, reply[ICMP].code) == (11, 0)
    assert bytes(reply[ICMP])[8:reply[IP].len - 20] == bytes(original[IP])[:28]
    assert metric(setup.runtime, "sdn_icmp_time_exceeded_total") == 1
    assert all(name.startswith("io") for name in setup.s1.packet_out_threads)


def test_ttl_exceeded_from_the_external_side_comes_from_the_gateway_address(store):
    setup = Setup(store)
    original = Ether(src=UPSTREAM_MAC, dst=setup.mac) / IP(src="198.51.100.7", dst="10.0.0.11", ttl=1) / UDP()
    setup.runtime.packet_in(S1, ROUTER_IN, {"in_port": UPLINK, "reg1": setup.ext["segmentation_id"],
                                            "reg8": setup.key}, bytes(original))
    io_done(setup.runtime)
    [(port, data)] = setup.s1.packet_outs
    assert port == UPLINK and Ether(data)[IP].src == setup.gateway_ip and Ether(data).dst == UPSTREAM_MAC


def test_ttl_exceeded_is_rate_limited_per_router_and_port_and_never_about_an_icmp_error(store):
    setup = Setup(store)
    fields = {"in_port": 1, "reg1": setup.net["segmentation_id"], "reg8": setup.key}
    original = bytes(Ether(src=VM_MAC, dst=setup.mac) / IP(src="10.0.0.11", dst="8.8.8.8", ttl=1) / UDP())
    for _ in range(12):
        setup.runtime.packet_in(S1, ROUTER_IN, fields, original)
    # Port 1 used up its share; the same router's packets from another port have their own (a flooding VM starves
    # only itself).
    setup.runtime.packet_in(S1, ROUTER_IN, {**fields, "in_port": 2}, original)
    error = bytes(Ether(src=VM_MAC, dst=setup.mac) / IP(src="10.0.0.11", dst="8.8.8.8", ttl=1) / ICMP(type=3)
                  / bytes(IP() / UDP()))
    setup.clock.now += 1
    setup.runtime.packet_in(S1, ROUTER_IN, fields, error)
    setup.runtime.packet_in(S1, ROUTER_IN, {**fields, "reg8": 999}, original)  # no such router
    io_done(setup.runtime)
    assert len(setup.s1.packet_outs) == 11 and setup.s1.packet_outs[10][0] == 2
    assert metric(setup.runtime, "sdn_icmp_time_exceeded_limited_total") == 2
    assert metric(setup.runtime, "sdn_icmp_time_exceeded_unanswered_total") == 2


def test_the_gateway_switch_is_what_the_compiler_says_as_of_the_last_pass(store):
    setup = Setup(store)
    router_id = setup.router["id"]
    assert setup.runtime.converge().ok
    assert setup.runtime.router_gateway(router_id) == setup.runtime.compiler.gateway(router_id) == S1  # the uplink's
    assert setup.runtime.router_gateway("nope") is None


def test_packet_ins_beyond_what_the_io_thread_can_take_are_dropped_and_counted(store):
    setup = Setup(store)
    busy, release = threading.Event(), threading.Event()
    setup.runtime._io.submit(lambda: (busy.set(), release.wait(10)))
    assert busy.wait(10)
    for n in range(MAX_QUEUED_PACKET_INS + 5):
        setup.runtime.packet_in(S1, NEIGHBOR, {"reg1": setup.ext["segmentation_id"], "reg8": setup.key,
                                               "reg9": int(ipaddress.IPv4Address(UPSTREAM)) + n % 200}, b"")
    release.set()
    io_done(setup.runtime)
    assert metric(setup.runtime, "sdn_packet_ins_dropped_total") == 5
    assert len(setup.arp_requests()) == 200  # one per address, the rest limited
