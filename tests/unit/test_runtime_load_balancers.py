"""The runtime hands the compiler load balancers and members from the change journal, and flushes a deleted
balancer's zone as it does a port's or a router's."""

from __future__ import annotations

import dataclasses

from controller.store import Store
from tests.unit.test_runtime import S1, connect, make_runtime, switch


def test_balancers_and_members_reach_the_compiler_and_a_deleted_balancers_zone_is_flushed(store: Store) -> None:
    runtime, s1 = make_runtime(store), switch(S1)
    connect(runtime, s1)
    net = runtime.apply(lambda: store.create_network({"cidr": "10.0.0.0/24"}))
    runtime.apply(lambda: store.create_port({"network_id": net["id"], "mac_address": "fa:16:3e:00:00:01",
                                             "ip_address": "10.0.0.11",
                                             "binding": {"dpid": S1, "interface": "s1-eth1"}}))
    made = runtime.apply(lambda: store.create_load_balancer({
        "network_id": net["id"], "protocol": "tcp", "port": 80, "members": [{"ip_address": "10.0.0.11", "port": 80}],
        "health_monitor": {"type": "tcp", "interval_s": 1, "timeout_s": 1, "max_retries": 1}}))
    member = made["members"][0]["id"]
    (model,) = store.snapshot().load_balancers
    engine = runtime.compiler._engine
    assert engine.get(("load_balancer", made["id"])) == dataclasses.replace(model, members=())
    assert engine.get(("lb_member", member)) == model.members[0]
    assert engine.get(("lb_members", made["id"])) == {member}
    assert runtime.compiler.zones("load_balancer", made["id"]) == (2, 3)
    assert store.set_member_status(member, "OFFLINE", at=1.0)
    assert runtime.converge().ok and engine.get(("lb_member", member)).status == "OFFLINE"
    runtime.apply(lambda: store.delete_load_balancer(made["id"]))
    assert engine.get(("load_balancer", made["id"])) is None and engine.get(("lb_member", member)) is None
    assert sorted(s1.flushed_zones) == [2, 3] and store.freed_zones() == {2, 3}
