"""Concurrent writers through the real REST app, runtime and store, with in-memory switches joined by links: eight
threads create and delete ports and security-group rules (and read) while the runtime's own threads run and a switch
port flaps (switch events, as os-ken's thread delivers them, each asking the converge thread for a pass); then every
switch holds exactly a fresh full compile of the final store, and the store is consistent with itself."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from apps.compiler import compile_all
from apps.topology import SwitchPort
from controller.api import create_app
from tests.unit.test_runtime import LINK_PORT, S1, S2, S3, connect, expected, hear, make_runtime, switch

pytestmark = pytest.mark.timeout(120)

WRITERS = 8
ROUNDS = 10  # per writer: a port and a rule created, read, and (mostly) deleted again


def test_eight_writers_leave_switches_equal_to_a_fresh_compile_of_the_store(store):
    # LLDP rounds far apart: the links heard below stay for the whole test (no topology change to wait for).
    runtime, switches = make_runtime(store, lldp_interval=30), [switch(dpid, 40) for dpid in (S1, S2, S3)]
    connect(runtime, *switches)
    for a, b in ((S1, S2), (S2, S3)):  # a line s1 - s2 - s3: networks span switches, flood trees, tagged links
        hear(runtime, (a, LINK_PORT), (b, LINK_PORT))
        hear(runtime, (b, LINK_PORT), (a, LINK_PORT))
    app = create_app(store, runtime)
    setup = app.test_client()
    networks = [setup.post("/v1/networks", json={"name": f"net{n}", "cidr": f"10.{n}.0.0/24"}).get_json()["id"]
                for n in range(2)]
    groups = [setup.post("/v1/security-groups", json={"name": f"sg{n}"}).get_json()["id"] for n in range(2)]
    runtime.start()  # convergence, LLDP, neighbors and health threads run meanwhile, as in the controller
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    kept: dict[str, set[str]] = {"ports": set(), "rules": set()}
    kept_lock = threading.Lock()

    def writer(w: int) -> None:
        client, rng = app.test_client(), random.Random(w)
        for r in range(ROUNDS):
            network = rng.choice(networks)
            n = networks.index(network)
            serial = w * ROUNDS + r  # an interface of its own (a kept port keeps its binding)
            dpid, interface = f"{serial % 3 + 1:016x}", f"s{serial % 3 + 1}-eth{LINK_PORT + 1 + serial // 3}"
            port = client.post("/v1/ports", json={
                "network_id": network, "mac_address": f"fa:16:3e:00:{w:02x}:{r:02x}",
                "ip_address": f"10.{n}.0.{10 + serial}", "binding": {"dpid": dpid, "interface": interface},
                "security_group_ids": rng.sample(groups, rng.randint(0, 2))})
            rule = client.post("/v1/security-group-rules", json={
                "security_group_id": rng.choice(groups), "direction": rng.choice(("ingress", "egress")),
                "protocol": "tcp", "port_range_min": 1000 + serial, "port_range_max": 1000 + serial,
                "remote_group_id": rng.choice(groups)})
            reads = (client.get("/v1/ports"), client.get(f"/v1/switches/{dpid}/flows"))
            answers = [port, rule, *reads]
            if port.status_code == 201 and rng.random() < 0.75:
                answers.append(client.delete(f"/v1/ports/{port.get_json()['id']}"))
            elif port.status_code == 201:
                with kept_lock:
                    kept["ports"].add(port.get_json()["id"])
            if rule.status_code == 201 and rng.random() < 0.75:
                answers.append(client.delete(f"/v1/security-group-rules/{rule.get_json()['id']}"))
            elif rule.status_code == 201:
                with kept_lock:
                    kept["rules"].add(rule.get_json()["id"])
            for answer in answers:
                statuses[answer.status_code] += 1
                if answer.status_code not in (200, 201, 204):
                    failures.append(f"{answer.request.method} {answer.request.path}: {answer.status_code} "
                                    f"{answer.get_data(as_text=True)[:300]}")

    started = time.monotonic()
    writing = threading.Event()
    writing.set()
    flaps = [0]

    def flap() -> None:
        """s2's spare interface goes down and up: a trunk candidate comes and goes (its LLDP flow with it)."""
        while writing.is_set():
            runtime.port_changed(S2, SwitchPort("s2-eth40", 40, "aa:00:00:00:02:28", flaps[0] % 2 == 1), False)
            flaps[0] += 1
            time.sleep(0.01)  # a port event every 10 ms, not a busy loop; nothing waits on it
        runtime.port_changed(S2, SwitchPort("s2-eth40", 40, "aa:00:00:00:02:28", True), False)

    threads = [threading.Thread(target=writer, args=(w,), name=f"writer-{w}") for w in range(WRITERS)]
    flapper = threading.Thread(target=flap, name="switch-events")
    try:
        flapper.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        writing.clear()
        flapper.join(10)
        assert not any(thread.is_alive() for thread in [*threads, flapper]), "a writer hung"
        assert not failures, failures[:5]
        assert statuses[201] == 2 * WRITERS * ROUNDS, statuses
        # The store agrees with what the writers kept, and with itself: every reference resolves.
        policy = store.snapshot()
        assert {p.id for p in policy.ports} == kept["ports"]
        group_ids = {g.id for g in policy.security_groups}
        assert {rule.id for g in policy.security_groups for rule in g.rules} >= kept["rules"]
        assert all(set(p.security_group_ids) <= group_ids for p in policy.ports)
        assert len({p.key for p in policy.ports}) == len(policy.ports)  # no zone handed out twice
        # After the pass the last port event asked for, every switch holds exactly a fresh compile of the final store
        # and topology, and the runtime's incremental tables are that compile too.
        assert runtime.converge().ok and len(runtime.fabric.links()) == 2
        for sw in switches:
            assert sw.flows == expected(runtime, sw.dpid), sw.dpid
        fresh = compile_all(policy, runtime.fabric.snapshot())
        assert {dpid: dict(runtime.compiler.table(dpid)) for dpid in fresh} == fresh
        assert not runtime.thread_errors  # no background thread failed a round meanwhile
    finally:
        runtime.stop()
    print(f"{WRITERS} writers, {sum(statuses.values())} requests and {flaps[0]} port events in "
          f"{time.monotonic() - started:.1f} s: {dict(statuses)}")
