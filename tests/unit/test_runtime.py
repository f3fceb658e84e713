"""The runtime with in-memory switches behind real Channels: discovery, faults, refusals, zones, concurrency.

No OVS here (tests/bridge and tests/integration have it): these pin down the controller's own
decisions deterministically, with no sleeps: slow switches are barriers held back, and threads
meet on events.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from apps.attachments import Attachment, Claim
from apps.compiler import compile_all
from apps.explain import Request, explain
from apps.flows import match
from apps.topology import Link, SwitchPort
from controller import lldp
from controller.errors import ChangeRefused, NotConfirmed
from controller.ofwire import encode_match
from controller.programmer import wire
from controller.runtime import Runtime
from controller.store import Store
from mininet_topos.reach import wait_until
from tests.unit.api_helpers import metric
from tests.unit.fakeswitch import FakeSwitch

S1, S2, S3 = "0000000000000001", "0000000000000002", "0000000000000003"
LINK_PORT = 3  # sN-eth3 of each switch: wired to the next switch in the tests that need a link
SECURITY_GROUP_CT = 21  # egress_ct's table number, where a rule's flows go


def switch(dpid: str, n_ports: int = 4) -> FakeSwitch:
    n = int(dpid, 16)
    ports = [SwitchPort(f"s{n}-eth{i}", i, f"aa:00:00:00:{n:02x}:{i:02x}") for i in range(1, n_ports + 1)]
    return FakeSwitch(dpid, ports)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path}/sdn.db")


def make_runtime(store: Store, **options) -> Runtime:
    return Runtime(store, **{"hold_down": 0, "lldp_interval": 0.05, "backoff": (0.01, 0.05), **options})


def connect(runtime: Runtime, *switches: FakeSwitch) -> None:
    for sw in switches:
        runtime.switch_connected(sw.channel, sw.ports)


def expected(runtime: Runtime, dpid: str) -> dict:
    """What the switch should hold: a fresh compile of the store on the runtime's topology."""
    return dict(map(wire, compile_all(runtime.store.snapshot(), runtime.fabric.snapshot())[dpid].values()))


def network(runtime: Runtime, name: str = "blue") -> str:
    return runtime.apply(lambda: runtime.store.create_network({"name": name, "cidr": "10.0.0.0/24"}))["id"]


def port(runtime: Runtime, network_id: str, dpid: str, interface: str, n: int = 1) -> str:
    return runtime.apply(lambda: runtime.store.create_port({
        "network_id": network_id, "mac_address": f"fa:16:3e:00:00:{n:02x}", "ip_address": f"10.0.0.{10 + n}",
        "binding": {"dpid": dpid, "interface": interface}}))["id"]


def lldp_from(runtime: Runtime, dpid: str, ofport: int, *, secret: bytes | None = None, age: float = 0.0) -> bytes:
    return lldp.frame(dpid, ofport, "aa:00:00:00:00:99", secret or runtime.store.lldp_secret(), time.time() - age)


def hear(runtime: Runtime, sender: tuple[str, int], receiver: tuple[str, int], **frame_options) -> None:
    runtime.lldp_received(*receiver, lldp_from(runtime, *sender, **frame_options))


def io_done(runtime: Runtime) -> None:
    """Wait for the io thread to finish what was handed to it so far."""
    runtime._io.submit(lambda: None).result(timeout=10)


# --- convergence ------------------------------------------------------------------------------

def test_a_pass_installs_the_compiled_flows_and_the_next_sends_nothing(store):
    runtime, s1 = make_runtime(store), switch(S1)
    connect(runtime, s1)
    port(runtime, network(runtime), S1, "s1-eth1")
    assert s1.flows == expected(runtime, S1) and s1.bundles_committed == 2  # pipeline, then the port
    assert runtime.converge().ok and s1.bundles_committed == 2


def test_a_switch_that_connects_during_a_pass_is_not_wiped(store):
    """Topology and connected switches are read at one moment: a switch missing from the compile is left alone."""
    runtime, s1, s2 = make_runtime(store), switch(S1), switch(S2)
    connect(runtime, s1)
    port(runtime, network(runtime), S1, "s1-eth1")
    s2.flows = {(0, 100, b"from-its-last-controller"): (7, b"")}
    commit_once = runtime.compiler.commit

    def commit_and_connect():
        delta = commit_once()
        runtime.compiler.commit = commit_once
        connect(runtime, s2)  # as os-ken would, from its own thread, in the middle of the pass
        return delta

    runtime.compiler.commit = commit_and_connect
    assert runtime.converge().ok
    assert s2.flows == {(0, 100, b"from-its-last-controller"): (7, b"")} and s2.bundles_committed == 0
    assert runtime.converge().ok and s2.flows == expected(runtime, S2)


def test_restart_holds_convergence_until_the_known_switches_are_back(store):
    store.save_switch(S1, switch(S1).ports)
    runtime, s1 = make_runtime(store, hold_down=60), switch(S1)
    report = runtime.converge(timeout=0.01)
    assert not report.ok and "reconnecting" in report.failures["*"]
    connect(runtime, s1)
    assert runtime.converge().ok


def test_switch_events_leave_database_writes_and_packet_outs_to_the_io_thread(store, monkeypatch):
    runtime, s1 = make_runtime(store), switch(S1)
    writers: list[str] = []
    save = store.save_switch
    monkeypatch.setattr(store, "save_switch", lambda *a: (writers.append(threading.current_thread().name), save(*a)))
    connect(runtime, s1)
    runtime.port_changed(S1, SwitchPort("s1-eth9", 9, "aa:00:00:00:01:09"), deleted=False)
    io_done(runtime)
    assert writers and all(name.startswith("io") for name in writers)
    assert s1.packet_outs and all(name.startswith("io") for name in s1.packet_out_threads)
    assert store.load_switches()[0].ofport("s1-eth9") == 9


# --- discovery --------------------------------------------------------------------------------

def test_lldp_leaves_only_unbound_interfaces_signed(store):
    runtime, s1 = make_runtime(store), switch(S1)
    connect(runtime, s1)
    port(runtime, network(runtime), S1, "s1-eth1")
    s1.packet_outs.clear()
    runtime._send_lldp()
    assert sorted(out for out, _ in s1.packet_outs) == [2, 3, 4]
    for out, frame in s1.packet_outs:
        assert lldp.sender(frame, store.lldp_secret(), time.time(), max_age=1) == (S1, out)


def test_a_link_counts_only_when_both_directions_are_heard(store):
    runtime, s1, s2 = make_runtime(store), switch(S1), switch(S2)
    connect(runtime, s1, s2)
    hear(runtime, (S1, LINK_PORT), (S2, LINK_PORT))
    assert runtime.fabric.links() == []
    hear(runtime, (S2, LINK_PORT), (S1, LINK_PORT))
    assert runtime.fabric.links() == [Link.between(S1, LINK_PORT, S2, LINK_PORT)]
    io_done(runtime)
    assert store.load_links() == runtime.fabric.links()


@pytest.mark.parametrize(("case", "reason"), [
    ("forged", "forged"), ("replayed", "replayed"), ("received on a VM's port", "receiver"),
    ("claims a VM's port", "sender"), ("from a switch we do not know", "sender switch"), ("loop", "loop"),
])
def test_lldp_that_must_not_make_a_link_is_refused_and_shown(store, case, reason):
    runtime, s1, s2 = make_runtime(store), switch(S1), switch(S2)
    connect(runtime, s1, s2)
    net = network(runtime)
    port(runtime, net, S1, "s1-eth1", 1)
    port(runtime, net, S2, "s2-eth1", 2)
    sender, receiver, options = {
        "forged": ((S1, 3), (S2, 3), {"secret": b"not ours"}),
        "replayed": ((S1, 3), (S2, 3), {"age": 60}),
        "received on a VM's port": ((S1, 3), (S2, 1), {}),
        "claims a VM's port": ((S1, 1), (S2, 3), {}),
        "from a switch we do not know": ((S3, 3), (S2, 3), {}),
        "loop": ((S2, 4), (S2, 3), {}),
    }[case]
    for _ in range(2):  # both directions, for what it is worth
        hear(runtime, sender, receiver, **options)
        hear(runtime, receiver, sender, **options)
    assert runtime.fabric.links() == []
    shown = next(sw for sw in runtime.switches() if sw["dpid"] == S2)["lldp_refused"]
    assert shown["count"] >= 2 and shown["last"]["interface"] in ("s2-eth1", "s2-eth3", "s2-eth4")
    assert reason in shown["last"]["reason"]
    assert metric(runtime, "sdn_lldp_refused_total") >= 2


def test_pinned_trunks_turn_discovery_into_verification(store):
    runtime, s1, s2 = make_runtime(store), switch(S1), switch(S2)
    connect(runtime, s1, s2)
    runtime.apply(lambda: store.update_switch(S1, {"trunk_ports": ["s1-eth3"]}))
    s1.packet_outs.clear()
    runtime._send_lldp(S1)
    assert [out for out, _ in s1.packet_outs] == [3]
    hear(runtime, (S1, 4), (S2, 4))
    hear(runtime, (S2, 4), (S1, 4))
    assert runtime.fabric.links() == []
    assert "pinned" in next(sw for sw in runtime.switches() if sw["dpid"] == S1)["lldp_refused"]["last"]["reason"]
    hear(runtime, (S1, 3), (S2, 3))
    hear(runtime, (S2, 3), (S1, 3))
    assert runtime.fabric.links() == [Link.between(S1, 3, S2, 3)]


def test_binding_a_port_to_a_link_interface_takes_the_link_away(store):
    runtime, s1, s2 = make_runtime(store), switch(S1), switch(S2)
    connect(runtime, s1, s2)
    hear(runtime, (S1, 3), (S2, 3))
    hear(runtime, (S2, 3), (S1, 3))
    assert runtime.fabric.links()
    port(runtime, network(runtime), S2, "s2-eth3")
    assert runtime.fabric.links() == [] and all(not sw["links"] for sw in runtime.switches())
    io_done(runtime)
    assert store.load_links() == []


def test_after_a_restart_bound_ports_are_known_before_the_first_pass(store):
    first = make_runtime(store)
    port(first, network(first), S2, "s2-eth1")
    restarted, s1, s2 = make_runtime(store), switch(S1), switch(S2)
    connect(restarted, s1, s2)  # no pass has run yet
    hear(restarted, (S1, 3), (S2, 1))
    hear(restarted, (S2, 1), (S1, 3))
    assert restarted.fabric.links() == []


# --- background threads -------------------------------------------------------------------------

def test_the_converge_thread_survives_an_exception_and_retries(store, monkeypatch):
    runtime, s1 = make_runtime(store), switch(S1)
    changes_since = store.changes_since
    calls = {"n": 0}

    def fails_once(revision):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk on fire")
        return changes_since(revision)

    monkeypatch.setattr(store, "changes_since", fails_once)
    runtime.start()
    try:
        connect(runtime, s1)
        wait_until(lambda: runtime.thread_errors["converge"] == 1 and s1.flows == expected(runtime, S1), 10,
                   "a failed pass to be retried")
    finally:
        runtime.stop()


def test_the_lldp_thread_survives_an_exception(store, monkeypatch):
    runtime, s1 = make_runtime(store), switch(S1)
    send = runtime._send_lldp
    calls = {"n": 0}

    def fails_once(*args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("socket gone")
        send(*args)

    monkeypatch.setattr(runtime, "_send_lldp", fails_once)
    connect(runtime, s1)
    io_done(runtime)  # the connect's own LLDP round (it fails)
    runtime.start()
    try:
        wait_until(lambda: runtime.thread_errors["io"] == 1 and len(s1.packet_outs) >= 4, 10,
                   "LLDP rounds to go on after a failure")
    finally:
        runtime.stop()


def test_work_that_stop_drops_from_the_io_queue_is_not_a_thread_error(store):
    """A background round waiting on the io thread when the controller stops is not logged and counted as failed."""
    runtime = make_runtime(store)
    busy, release, queued = threading.Event(), threading.Event(), threading.Event()
    runtime._io.submit(lambda: (busy.set(), release.wait(10)))
    assert busy.wait(10)
    submit = runtime._io.submit
    runtime._io.submit = lambda *args: (submit(*args), queued.set())[0]  # type: ignore[method-assign]
    rounds: list[int] = []
    waiting = threading.Thread(target=lambda: rounds.append(runtime._guarded("health", lambda: runtime._on_io(
        lambda: None), 0)))
    waiting.start()
    assert queued.wait(10)
    runtime.stop()  # drops the queued round
    release.set()
    waiting.join(10)
    assert rounds == [0] and not runtime.thread_errors


# --- refused flows ------------------------------------------------------------------------------

def test_a_change_whose_flow_a_switch_refuses_is_rolled_back(store):
    runtime, s1 = make_runtime(store), switch(S1)
    connect(runtime, s1)
    port(runtime, network(runtime), S1, "s1-eth1")
    before = dict(s1.flows)
    default = store.list_security_groups()[0]["id"]
    s1.refuse_add = lambda table, priority, match: "BAD_MATCH/BAD_PREREQ" if table == SECURITY_GROUP_CT else None
    with pytest.raises(ChangeRefused) as refused:
        runtime.apply(lambda: store.create_security_group_rule(
            {"security_group_id": default, "direction": "egress", "protocol": "tcp", "port_range_min": 80}))
    owners = {r.owner for r in refused.value.refused}
    assert {r.error for r in refused.value.refused} == {"BAD_MATCH/BAD_PREREQ"}
    assert "security_groups:clauses" in owners or any(o.startswith("security_groups:rule/") for o in owners)
    assert len(store.list_security_group_rules(default)) == 2  # the rule is gone again
    assert s1.flows == before and runtime.stats["changes_refused"] == 1
    s1.refuse_add = lambda table, priority, match: None
    runtime.apply(lambda: store.create_security_group_rule(
        {"security_group_id": default, "direction": "egress", "protocol": "tcp", "port_range_min": 80}))
    assert s1.flows == expected(runtime, S1)


def test_a_full_table_found_at_commit_rolls_the_change_back(store):
    runtime, s1 = make_runtime(store), switch(S1)
    connect(runtime, s1)
    net = network(runtime)
    port(runtime, net, S1, "s1-eth1", 1)
    before = dict(s1.flows)
    s1.table_limit[0] = sum(1 for key in s1.flows if key[0] == 0)  # classify is full
    with pytest.raises(ChangeRefused) as refused:
        port(runtime, net, S1, "s1-eth2", 2)
    assert {r.error for r in refused.value.refused} == {"FLOW_MOD_FAILED/TABLE_FULL"}
    assert refused.value.refused[0].owner.startswith("isolation:port/")
    assert len(store.list_ports()) == 1 and s1.flows == before


def test_a_refusal_caused_by_topology_is_retried_with_backoff_and_shown_in_health(store):
    runtime, s1, s2 = make_runtime(store), switch(S1, 6), switch(S2)
    connect(runtime, s1, s2)
    net = network(runtime)
    port(runtime, net, S1, "s1-eth7", 1)  # the interface does not exist yet: the port is DOWN
    in_port_7 = encode_match(match(in_port=7))
    s1.refuse_add = lambda table, priority, match: "BAD_MATCH/BAD_VALUE" if match.startswith(in_port_7) else None
    runtime.start()
    try:
        runtime.port_changed(S1, SwitchPort("s1-eth7", 7, "aa:00:00:00:01:07"), deleted=False)
        wait_until(lambda: runtime.health()["failing"] and runtime.health()["failing"][0]["attempts"] >= 3, 10,
                   "the refusing switch to be retried")
        health = runtime.health()
        assert health["status"] == "degraded" and health["failing"][0]["dpid"] == S1
        assert "BAD_MATCH/BAD_VALUE" in health["failing"][0]["reason"]
        # A change that does not touch s1 is confirmed; one that does is kept but not confirmed there.
        runtime.apply(lambda: store.create_security_group({"name": "unused"}))
        with pytest.raises(NotConfirmed) as unconfirmed:
            port(runtime, net, S2, "s2-eth1", 2)
        assert set(unconfirmed.value.failures) == {S1} and len(store.list_ports()) == 2
        assert s2.flows == expected(runtime, S2)
        s1.refuse_add = lambda table, priority, match: None
        wait_until(lambda: runtime.health()["status"] == "ok", 10, "the switch to converge once it accepts")
        assert s1.flows == expected(runtime, S1)
    finally:
        runtime.stop()


# --- conntrack zones ----------------------------------------------------------------------------

def test_a_deleted_ports_zone_is_flushed_on_every_switch_once_per_connection(store):
    runtime, s1, s2 = make_runtime(store), switch(S1), switch(S2)
    connect(runtime, s1, s2)
    net = network(runtime)
    first = port(runtime, net, S1, "s1-eth1", 1)
    runtime.apply(lambda: store.delete_port(first))
    assert s1.flushed_zones == [1] and s2.flushed_zones == [1]
    assert runtime.converge().ok and s1.flushed_zones == [1]
    again = port(runtime, net, S1, "s1-eth1", 1)
    assert {p.id: p.key for p in store.snapshot().ports} == {again: 2}
    back = switch(S2)  # s2 reconnects: a new connection flushes what it may have missed
    connect(runtime, back)
    assert runtime.converge().ok and back.flushed_zones == [1]


def test_a_deleted_routers_zone_is_flushed_as_a_ports_is(store):
    runtime, s1 = make_runtime(store), switch(S1)
    connect(runtime, s1)
    router = runtime.apply(lambda: store.create_router({}))["id"]
    runtime.apply(lambda: store.delete_router(router))
    assert s1.flushed_zones == [1] and store.freed_zones() == {1}


# --- concurrent REST mutations --------------------------------------------------------------------

class NotingLock:
    """The pass lock, telling the test when a second caller has to wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.contended = threading.Event()

    def __enter__(self) -> NotingLock:
        if not self._lock.acquire(blocking=False):
            self.contended.set()
            self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_concurrent_mutations_converge_one_after_the_other(store):
    runtime, s1 = make_runtime(store), switch(S1)
    connect(runtime, s1)
    net = network(runtime)
    lock = runtime._pass_lock = NotingLock()
    events: list[str] = []

    def mutate(name: str, n: int) -> None:
        def change():
            events.append(f"{name} changes")
            return runtime.store.create_port({
                "network_id": net, "mac_address": f"fa:16:3e:00:00:{n:02x}", "ip_address": f"10.0.0.{10 + n}",
                "binding": {"dpid": S1, "interface": f"s1-eth{n}"}})
        runtime.apply(change)
        events.append(f"{name} confirmed")

    s1.hold.clear()  # the switch sits on its barriers: A stays inside its pass
    a = threading.Thread(target=mutate, args=("A", 1))
    a.start()
    wait_until(lambda: events == ["A changes"] and s1.barriers_waiting, 10, "A to wait for the switch")
    b = threading.Thread(target=mutate, args=("B", 2))
    b.start()
    assert lock.contended.wait(10), "B never reached the pass lock"
    assert runtime.health()["switches"] == 1  # health answers while a switch is slow
    assert events == ["A changes"]
    s1.hold.set()
    a.join(10)
    b.join(10)
    assert events == ["A changes", "A confirmed", "B changes", "B confirmed"]
    assert s1.flows == expected(runtime, S1)


def test_replacing_a_groups_rules_is_one_bundle_and_leaves_kept_rules_alone(store):
    runtime, s1 = make_runtime(store), switch(S1)
    connect(runtime, s1)
    port(runtime, network(runtime), S1, "s1-eth1")
    default = store.list_security_groups()[0]
    kept = [{key: rule[key] for key in ("direction", "protocol", "remote_ip_prefix", "remote_group_id")}
            for rule in default["rules"]]
    owners = {f"security_groups:rule/{rule['id']}" for rule in default["rules"]}
    before = {key: value for key, value in s1.flows.items() if runtime.compiler.owner(value[0]) in owners}
    bundles = s1.bundles_committed
    runtime.apply(lambda: store.replace_security_group_rules(default["id"], {"rules": [
        *kept, {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 81},
        {"direction": "ingress", "protocol": "udp", "port_range_min": 53}]}))
    assert s1.bundles_committed == bundles + 1 and s1.flows == expected(runtime, S1)
    assert before and all(s1.flows[key] == value for key, value in before.items())


def test_a_trace_reads_the_compiled_tables_of_every_known_switch_connected_or_not(store):
    """POST /trace's view of the runtime: s2 went away, its flows are still compiled and the link still counts."""
    runtime, s1, s2 = make_runtime(store), switch(S1), switch(S2)
    connect(runtime, s1, s2)
    hear(runtime, (S1, LINK_PORT), (S2, LINK_PORT))
    hear(runtime, (S2, LINK_PORT), (S1, LINK_PORT))
    net = network(runtime)
    here, there = port(runtime, net, S1, "s1-eth1", 1), port(runtime, net, S2, "s2-eth1", 2)
    runtime.switch_disconnected(s2.channel)
    assert runtime.converge().ok
    compiled = runtime.compiled()
    assert set(compiled.flows) == {S1, S2} and compiled.flows[S2]
    told = explain(store.snapshot(), compiled, Request(port_id=here, ip_dst="10.0.0.12", protocol="udp"))
    assert told.verdict == "output" and [(r.endpoint.dpid, r.endpoint.port.id) for r in told.reached] == [(S2, there)]


def test_an_interface_claiming_a_port_attaches_it_until_it_goes(store):
    """OVSDB's claims come in like switch events: the port is placed, ACTIVE, compiled there, no LLDP leaves it."""
    runtime, s1 = make_runtime(store), switch(S1)
    connect(runtime, s1)
    network_id = network(runtime)
    unbound = runtime.apply(lambda: runtime.store.create_port({
        "network_id": network_id, "name": "vm1", "mac_address": "fa:16:3e:00:00:01",
        "ip_address": "10.0.0.11"}))["id"]
    assert runtime.port_attachment(unbound) is None
    runtime.interfaces_claimed(frozenset({Claim(S1, "s1-eth2", "vm1")}))
    assert runtime.converge().ok
    assert runtime.port_attachment(unbound) == Attachment((S1, "s1-eth2"))
    assert runtime.port_status(S1, "s1-eth2") == "ACTIVE"
    placed = dict(map(wire, compile_all(dataclasses.replace(store.snapshot(), ports=tuple(
        dataclasses.replace(p, dpid=S1, interface="s1-eth2") for p in store.snapshot().ports)),
        runtime.fabric.snapshot())[S1].values()))
    assert s1.flows == placed
    s1.packet_outs.clear()
    runtime._send_lldp()
    assert sorted(out for out, _ in s1.packet_outs) == [1, 3, 4]
    runtime.interfaces_claimed(frozenset())
    assert runtime.converge().ok
    assert runtime.port_attachment(unbound) is None and s1.flows == expected(runtime, S1)


def test_a_trace_from_a_port_attached_through_ovsdb_starts_where_it_is_attached(store):
    """POST /trace reads the runtime's policy, whose ports stand where the compiler placed them: a port with no
    binding of its own is explained from the interface OVSDB attached it to, not refused as unbound."""
    runtime, s1 = make_runtime(store), switch(S1)
    connect(runtime, s1)
    net = network(runtime)
    there = port(runtime, net, S1, "s1-eth1", 2)
    unbound = runtime.apply(lambda: runtime.store.create_port({
        "network_id": net, "name": "vm1", "mac_address": "fa:16:3e:00:00:01", "ip_address": "10.0.0.11"}))["id"]
    runtime.interfaces_claimed(frozenset({Claim(S1, "s1-eth2", "vm1")}))
    assert runtime.converge().ok
    told = explain(runtime.policy(), runtime.compiled(), Request(port_id=unbound, ip_dst="10.0.0.12", protocol="udp"))
    assert (told.source.dpid, told.source.interface) == (S1, "s1-eth2")
    assert told.verdict == "output" and [r.endpoint.port.id for r in told.reached] == [there]
