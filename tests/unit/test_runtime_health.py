"""The runtime checking load-balancer members' health, with in-memory switches: probes leave each member's port on
its switch (from the io thread), answers come back as packet-ins from classify, findings reach the store and from
there the select group; rates, draining members, metrics. The clock is the test's; rounds are run by hand."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from apps.attachments import Claim
from controller.runtime import packet_in_kind
from controller.store import Store
from mininet_topos.reach import wait_until
from tests.unit.api_helpers import metric
from tests.unit.test_runtime import S1, S2, connect, io_done, make_runtime, switch
from tests.unit.test_runtime_routers import Clock

CLASSIFY = 0
VIP = "10.0.0.100"
MONITOR = {"type": "tcp", "interval_s": 1, "timeout_s": 0.5, "max_retries": 2}


class Setup:
    """s1 and s2; network a with a1 (s1-eth1, the client), a2 (s1-eth2) and a3 (s2-eth1); a balancer on VIP:80
    with members a2:8080 and a3:8080 and a TCP monitor (interval 1 s, timeout 0.5 s, 2 retries)."""

    def __init__(self, store: Store, **options) -> None:
        self.clock = Clock()
        self.store = store
        self.runtime = make_runtime(store, clock=self.clock, **options)
        self.s1, self.s2 = switch(S1), switch(S2)
        connect(self.runtime, self.s1, self.s2)
        apply = self.runtime.apply
        self.net = apply(lambda: store.create_network({"name": "a", "cidr": "10.0.0.0/24"}))
        self.ports = [apply(lambda n=n, dpid=dpid, iface=iface: store.create_port({
            "network_id": self.net["id"], "mac_address": f"fa:16:3e:00:00:0{n}", "ip_address": f"10.0.0.1{n}",
            "binding": {"dpid": dpid, "interface": iface}}))
            for n, dpid, iface in ((1, S1, "s1-eth1"), (2, S1, "s1-eth2"), (3, S2, "s2-eth1"))]
        self.lb = apply(lambda: store.create_load_balancer({
            "name": "web", "network_id": self.net["id"], "vip_address": VIP, "protocol": "tcp", "port": 80,
            "algorithm": "hash", "health_monitor": MONITOR,  # a select group, whose buckets the test watches
            "members": [{"ip_address": "10.0.0.12", "port": 8080}, {"ip_address": "10.0.0.13", "port": 8080}]}))
        self.a2, self.a3 = (m["id"] for m in self.lb["members"])
        io_done(self.runtime)
        self.s1.packet_outs.clear()
        self.s2.packet_outs.clear()

    def round(self, after: float = 0.0) -> None:
        self.clock.now += after
        self.runtime._io.submit(self.runtime._health_round).result(timeout=10)

    def probes(self, sw) -> list[tuple[int, Ether]]:
        found = [(port, Ether(data)) for port, data in sw.packet_outs]
        sw.packet_outs.clear()
        return [(port, frame) for port, frame in found if TCP in frame and frame[TCP].flags == "S"]

    def status(self, member_id: str) -> str:
        return self.store.get_lb_member(self.lb["id"], member_id)["status"]

    def answer(self, sw, in_port: int, syn: Ether, flags: str = "SA") -> None:
        frame = (Ether(src=syn.dst, dst=syn.src) / IP(src=syn[IP].dst, dst=syn[IP].src)
                 / TCP(sport=syn[TCP].dport, dport=syn[TCP].sport, seq=777, ack=syn[TCP].seq + 1, flags=flags))
        self.runtime.packet_in(sw.dpid, CLASSIFY, {"in_port": in_port}, bytes(frame))
        io_done(self.runtime)

    def buckets(self, dpid: str) -> set[int]:
        group, = self.runtime.compiler.groups(dpid).values()
        return {bucket.bucket_id for bucket in group.buckets}

    def keys(self) -> dict[str, int]:
        balancer, = self.store.snapshot().load_balancers
        return {m.id: m.key for m in balancer.members}


def test_ipv4_packet_ins_from_classify_are_probe_answers_and_arp_ones_arp_replies():
    arp = bytes(Ether() / ARP(op=2))
    syn_ack = bytes(Ether() / IP() / TCP(flags="SA"))
    assert packet_in_kind(CLASSIFY, arp) == "arp_reply" and packet_in_kind(CLASSIFY, syn_ack) == "probe_answer"
    assert packet_in_kind(CLASSIFY) == "arp_reply" and packet_in_kind(45, syn_ack) == "neighbor"


def test_a_probe_leaves_the_members_port_on_its_switch_from_the_vip(store):
    setup = Setup(store)
    setup.round()
    (port2, syn2), = setup.probes(setup.s1)
    (port3, syn3), = setup.probes(setup.s2)
    assert (port2, syn2.dst, syn2[IP].dst, syn2[TCP].dport) == (2, "fa:16:3e:00:00:02", "10.0.0.12", 8080)
    assert (port3, syn3.dst, syn3[IP].dst) == (1, "fa:16:3e:00:00:03", "10.0.0.13")
    for syn in (syn2, syn3):
        assert (syn.src, syn[IP].src, syn[TCP].flags) == (setup.lb["mac_address"], VIP, "S")
        assert 61440 <= syn[TCP].sport <= 61503
    assert set(setup.s1.packet_out_threads) == {"io_0"}
    setup.round(0.4)
    assert setup.probes(setup.s1) == []  # one a second
    assert metric(setup.runtime, "sdn_lb_probes_total") == 2


def test_silence_takes_a_member_offline_and_out_of_the_group_and_a_syn_ack_brings_it_back(store):
    setup = Setup(store)
    keys = setup.keys()
    assert setup.buckets(S1) == {keys[setup.a2], keys[setup.a3]}
    for _ in range(2):
        setup.round()
        (_, syn2), = setup.probes(setup.s1)
        setup.answer(setup.s1, 2, syn2)  # a2 answers, a3 is silent
        setup.round(0.5)
        setup.clock.now += 0.5
    assert (setup.status(setup.a2), setup.status(setup.a3)) == ("ONLINE", "OFFLINE")
    member = setup.store.get_lb_member(setup.lb["id"], setup.a3)
    assert member["status_changed_at"].startswith("1970-01-12T13:46")  # the test's clock: 1_000_001.5
    assert setup.runtime.converge().ok
    assert setup.buckets(S1) == setup.buckets(S2) == {keys[setup.a2]}
    assert len(setup.s1.groups) == 1
    assert metric(setup.runtime, "sdn_lb_probe_failures_total") == 2
    assert metric(setup.runtime, "sdn_lb_status_changes_total") == 1
    assert metric(setup.runtime, "sdn_lb_members", status="OFFLINE") == 1
    assert metric(setup.runtime, "sdn_lb_member_status", load_balancer=setup.lb["id"], member=setup.a3,
                  status="OFFLINE") == 1
    # a3 answers again: ONLINE, its half-open connection reset, and back in the group
    setup.s2.packet_outs.clear()
    setup.round()
    setup.probes(setup.s1)
    (port, syn3), = setup.probes(setup.s2)
    setup.answer(setup.s2, port, syn3)
    assert setup.status(setup.a3) == "ONLINE"
    (out, rst), = [(p, Ether(d)) for p, d in setup.s2.packet_outs]
    assert (out, rst[TCP].flags, rst[TCP].seq, rst[TCP].sport) == (1, "R", syn3[TCP].seq + 1, syn3[TCP].sport)
    assert setup.runtime.converge().ok and setup.buckets(S1) == {keys[setup.a2], keys[setup.a3]}
    assert metric(setup.runtime, "sdn_packet_ins_total", kind="probe_answer") == 3


def test_an_rst_from_a_closed_port_counts_as_a_failure(store):
    setup = Setup(store)
    for _ in range(2):
        setup.round()
        (_, syn2), = setup.probes(setup.s1)
        setup.answer(setup.s1, 2, syn2, flags="RA")
        setup.clock.now += 1.0
    assert setup.status(setup.a2) == "OFFLINE"
    assert setup.s1.packet_outs == []  # nothing to reset


def test_an_answer_from_another_port_proves_nothing(store):
    setup = Setup(store)
    setup.round()
    (_, syn2), = setup.probes(setup.s1)
    setup.answer(setup.s1, 1, syn2)  # a1's port, not a2's
    assert metric(setup.runtime, "sdn_lb_probe_answers_ignored_total") == 1


def test_draining_members_and_balancers_without_a_monitor_are_not_probed(store):
    setup = Setup(store)
    runtime, lb = setup.runtime, setup.lb
    runtime.apply(lambda: store.update_lb_member(lb["id"], setup.a2, {"admin_state_up": False}))
    setup.round()
    assert setup.probes(setup.s1) == [] and len(setup.probes(setup.s2)) == 1
    assert metric(runtime, "sdn_lb_members", status="DRAINING") == 1
    runtime.apply(lambda: store.update_load_balancer(lb["id"], {"health_monitor": None}))
    setup.round(5.0)
    assert setup.probes(setup.s1) == setup.probes(setup.s2) == []
    assert metric(runtime, "sdn_lb_members", status="NO_MONITOR") == 1


def test_a_new_member_is_probed_at_once_and_a_removed_one_no_more(store):
    setup = Setup(store)
    runtime, lb = setup.runtime, setup.lb
    setup.round()
    setup.probes(setup.s1), setup.probes(setup.s2)
    runtime.apply(lambda: store.add_lb_member(lb["id"], {"ip_address": "10.0.0.11", "port": 8080}))
    runtime.apply(lambda: store.delete_lb_member(lb["id"], setup.a3))
    setup.round(0.2)
    [(port, syn)] = setup.probes(setup.s1)
    assert (port, syn[IP].dst) == (1, "10.0.0.11")
    setup.round(1.0)
    assert setup.probes(setup.s2) == []


def test_the_rate_limit_holds(store):
    setup = Setup(store, health_rate=(1.0, 1.0))
    setup.round()
    assert len(setup.probes(setup.s1)) + len(setup.probes(setup.s2)) == 1
    assert metric(setup.runtime, "sdn_lb_probes_limited_total") == 1
    setup.round(0.5)
    assert len(setup.probes(setup.s1)) + len(setup.probes(setup.s2)) == 0
    setup.round(0.5)
    assert len(setup.probes(setup.s1)) + len(setup.probes(setup.s2)) == 1


def test_a_member_on_a_switch_that_is_away_is_not_judged(store):
    setup = Setup(store)
    setup.runtime.switch_disconnected(setup.s2.channel)
    for _ in range(4):
        setup.round(1.0)
    assert setup.status(setup.a3) == "ONLINE"
    assert metric(setup.runtime, "sdn_lb_probes_unsent_total") == 4


def test_the_health_thread_survives_its_errors(store):
    setup = Setup(store)
    runtime = setup.runtime

    def broken() -> None:
        raise RuntimeError("boom")

    runtime._health_round = broken
    runtime.start()
    try:
        assert wait_until(lambda: metric(runtime, "sdn_thread_errors_total", thread="health") >= 2, 10,
                          "health errors")
    finally:
        runtime.stop()


def test_a_member_whose_port_ovsdb_attached_is_probed_where_it_is(store):
    """a3 loses its binding: no probe; an interface on s1 claims it: probed out of that interface, on s1."""
    setup = Setup(store)
    a3 = setup.ports[2]["id"]
    setup.runtime.apply(lambda: store.update_port(a3, {"binding": None}))
    setup.round(1.0)
    assert setup.probes(setup.s2) == [] and [frame[IP].dst for _, frame in setup.probes(setup.s1)] == ["10.0.0.12"]
    setup.runtime.interfaces_claimed(frozenset({Claim(S1, "s1-eth4", a3)}))
    assert setup.runtime.converge().ok
    setup.round(1.0)
    probes = sorted((port, frame[IP].dst) for port, frame in setup.probes(setup.s1))
    assert probes == [(2, "10.0.0.12"), (4, "10.0.0.13")]
