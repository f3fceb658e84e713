"""The flow budget (--max-flows-per-switch) through the real REST app, runtime and store, with in-memory switches:
a change that would take a switch past it is a 409 naming the switch and what it would have needed, and neither the
store nor any switch changes."""

from __future__ import annotations

from flask.testing import FlaskClient

from controller.api import create_app
from controller.runtime import Runtime
from controller.store import Store
from tests.unit.api_helpers import metric
from tests.unit.fakeswitch import FakeSwitch
from tests.unit.test_runtime import S1, S2, connect, expected, make_runtime, switch


def port_body(network_id: str, dpid: str, interface: str, n: int) -> dict:
    return {"network_id": network_id, "mac_address": f"fa:16:3e:00:00:{n:02x}", "ip_address": f"10.0.0.{10 + n}",
            "binding": {"dpid": dpid, "interface": interface}}


def setup(store: Store) -> tuple[Runtime, FlaskClient, FakeSwitch, FakeSwitch, str]:
    runtime, s1, s2 = make_runtime(store), switch(S1), switch(S2)
    connect(runtime, s1, s2)
    client = create_app(store, runtime).test_client()
    net = client.post("/v1/networks", json={"name": "blue", "cidr": "10.0.0.0/24"}).get_json()["id"]
    assert client.post("/v1/ports", json=port_body(net, S1, "s1-eth1", 1)).status_code == 201
    return runtime, client, s1, s2, net


def test_a_change_over_the_flow_budget_is_refused_and_changes_nothing(store):
    runtime, client, s1, s2, net = setup(store)
    runtime.max_flows_per_switch = len(s1.flows)  # s1 is exactly full
    ports, revision = store.list_ports(), store.revision()
    flows, bundles = (dict(s1.flows), dict(s2.flows)), (s1.bundles_committed, s2.bundles_committed)
    answer = client.post("/v1/ports", json=port_body(net, S1, "s1-eth2", 2))
    assert answer.status_code == 409, answer.get_json()
    error = answer.get_json()["error"]
    (detail,) = error["details"]
    assert detail["dpid"] == S1 and detail["max_flows_per_switch"] == runtime.max_flows_per_switch
    needed = detail["flows"]
    assert needed > runtime.max_flows_per_switch
    assert error["message"] == (f"nothing was changed: switch {S1} would need {needed} flows, over the budget of "
                                f"{runtime.max_flows_per_switch} per switch (--max-flows-per-switch)")  # as in README
    # Nothing changed: not the store, not either switch (no bundle sent at all).
    assert store.list_ports() == ports and store.revision() == revision
    assert (dict(s1.flows), dict(s2.flows)) == flows
    assert (s1.bundles_committed, s2.bundles_committed) == bundles
    assert runtime.stats["changes_refused"] == metric(runtime, "sdn_converge_changes_over_budget") == 1
    # The figure is what the change really needs: without the budget the same request takes exactly that many.
    runtime.max_flows_per_switch = None
    assert client.post("/v1/ports", json=port_body(net, S1, "s1-eth2", 2)).status_code == 201
    assert len(s1.flows) == needed and s1.flows == expected(runtime, S1)


def test_within_the_budget_changes_go_through_and_a_full_switch_may_shrink(store):
    runtime, client, s1, s2, _ = setup(store)
    runtime.max_flows_per_switch = len(s1.flows)
    # s2 has room (it carries no port): a port there that adds nothing to s1 (another network, no security group
    # that would make its address a remote on s1) is fine although s1 is full ...
    red = client.post("/v1/networks", json={"name": "red", "cidr": "10.0.0.0/24"}).get_json()["id"]
    second = client.post("/v1/ports", json={**port_body(red, S2, "s2-eth1", 2), "security_group_ids": []})
    assert second.status_code == 201, second.get_json()
    assert s2.flows == expected(runtime, S2) and len(s2.flows) <= runtime.max_flows_per_switch
    # ... and a switch already over a lowered budget still takes a change that shrinks it.
    runtime.max_flows_per_switch = 1
    assert client.delete(f"/v1/ports/{second.get_json()['id']}").status_code == 204
    assert s1.flows == expected(runtime, S1) and s2.flows == expected(runtime, S2)
