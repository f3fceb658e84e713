"""A switch that refuses flows: the REST change that caused it is undone, one caused by topology is retried.

A full OpenFlow table (OVS Flow_Table flow_limit with overflow_policy=refuse) makes a real switch
refuse a bundle at commit time, which is what a switch short of memory does. The controller's own flow budget
(--max-flows-per-switch) refuses a change before any switch sees it.
"""

from __future__ import annotations

import pytest
from helpers import Api, ApiError, Running, ping, register, tcp_ok, wait_until

from apps.pipeline import table_id
from mininet_topos import ovs


def flows_in(bridge: str, table: str) -> list[str]:
    return [line for line in ovs.ofctl("dump-flows", bridge, f"table={table_id(table)}").splitlines()
            if "priority=" in line]


def fill(bridge: str, table: str, room: int = 0) -> None:
    """Let `table` of `bridge` take only `room` more flows."""
    limit = len(flows_in(bridge, table)) + room
    ovs.vsctl("--", "--id=@ft", "create", "Flow_Table", f"flow_limit={limit}", "overflow_policy=refuse",
              "--", "set", "Bridge", bridge, f"flow_tables:{table_id(table)}=@ft")


def unlimit(bridge: str) -> None:
    ovs.vsctl("clear", "Bridge", bridge, "flow_tables")


def rules_and_flows(api: Api, dpid: str) -> tuple[list, list]:
    flows = api.get(f"/switches/{dpid}/flows")
    return api.get("/security-group-rules"), sorted((f["table"], f["priority"], str(f["match"]), f["actions"])
                                                    for f in flows)


def test_a_change_the_switch_refuses_is_undone_with_the_flow_and_its_owner_named(api, net_factory):
    run: Running = net_factory("single")
    register(api, run.plan)
    s1 = run.plan.switch("s1")
    default = next(g["id"] for g in api.get("/security-groups") if g["name"] == "default")
    rule = {"security_group_id": default, "direction": "egress", "protocol": "tcp", "port_range_min": 8000,
            "port_range_max": 8001, "remote_ip_prefix": "10.0.0.0/24"}
    before = rules_and_flows(api, s1.dpid)
    fill(s1.name, "egress_ct")
    try:
        with pytest.raises(ApiError) as refused:
            api.post("/security-group-rules", rule)
        error = refused.value
        assert error.status == 409 and "nothing was changed" in error.body and "TABLE_FULL" in error.body
        details = api.session.post(f"{api.base}/security-group-rules", json=rule).json()["error"]["details"]
        assert {d["dpid"] for d in details} == {s1.dpid}
        assert {d["owner"].split("/")[0] for d in details} <= {"security_groups:rule", "security_groups:clauses"}
        assert rules_and_flows(api, s1.dpid) == before
        a1, a2 = run.host("a1"), run.host("a2")
        assert tcp_ok(a1, a2, run.plan.vm("a2").ip), "the switch kept working"
    finally:
        unlimit(s1.name)
    assert api.post("/security-group-rules", rule)["port_range_max"] == 8001


FLOW_BUDGET = 300


@pytest.mark.controller_args("--max-flows-per-switch", str(FLOW_BUDGET))
def test_a_change_over_the_flow_budget_is_refused_before_the_switch_sees_it(api, net_factory):
    """`sdn-controller --max-flows-per-switch`: 400 rules at once would take s1 past it, 10 fit."""
    run: Running = net_factory("single")
    reg = register(api, run.plan)
    s1 = run.plan.switch("s1")
    group = api.create("security-groups", {"name": "many"})["id"]
    for port in reg.ports.values():
        api.patch(f"/ports/{port}", {"security_group_ids": [group]})
    before, installed = rules_and_flows(api, s1.dpid), ovs.ofctl("--no-stats", "dump-flows", s1.name)
    assert len(before[1]) < FLOW_BUDGET - 20, "the budget leaves no room to test with"

    def rules(n: int) -> dict:
        return {"rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 20000 + i} for i in range(n)]}

    with pytest.raises(ApiError) as refused:
        api.request("PUT", f"/security-groups/{group}/rules", json=rules(400))
    error = refused.value
    assert error.status == 409 and f"over the budget of {FLOW_BUDGET} per switch" in error.body, error.body
    (detail,) = api.session.put(f"{api.base}/security-groups/{group}/rules", json=rules(400)).json()["error"][
        "details"]
    assert detail["dpid"] == s1.dpid and detail["flows"] >= len(before[1]) + 400 - 1  # a flow a rule, the old one gone
    assert rules_and_flows(api, s1.dpid) == before and ovs.ofctl("--no-stats", "dump-flows", s1.name) == installed
    a1, a2 = run.host("a1"), run.host("a2")
    api.request("PUT", f"/security-groups/{group}/rules", json={"rules": [
        {"direction": "egress"}, {"direction": "ingress", "protocol": "tcp", "port_range_min": 5001}]})
    assert tcp_ok(a1, a2, run.plan.vm("a2").ip), "a change within the budget goes through"


def test_a_refusal_caused_by_topology_is_retried_and_shown_until_the_switch_takes_it(api, net_factory):
    run: Running = net_factory("single")
    reg = register(api, run.plan)
    s1 = run.plan.switch("s1")
    next_interface = f"{s1.name}-eth{len(run.plan.vms) + 1}"
    vm = {"network_id": reg.networks["a"], "name": "late", "mac_address": "fa:16:3e:00:0a:05",
          "ip_address": "10.0.0.55", "binding": {"dpid": s1.dpid, "interface": next_interface}}
    late = api.create("ports", vm)
    assert late["status"] == "DOWN"
    fill(s1.name, "classify")
    try:
        host, interface = run.add_stray("late", "s1")  # the interface appears: its flows do not fit
        assert interface == next_interface
        wait_until(lambda: (failing := api.get("/health")["failing"]) and failing[0]["attempts"] >= 2, 20,
                   "the refusing switch to be retried")
        health = api.get("/health")
        assert health["status"] == "degraded" and health["failing"][0]["dpid"] == s1.dpid
        assert "TABLE_FULL" in health["failing"][0]["reason"]
        api.create("security-groups", {"name": "unrelated"})  # changes no flow of s1: confirmed, not a 503
        assert ping(run.host("a1"), run.plan.vm("a2").ip)
    finally:
        unlimit(s1.name)
    wait_until(lambda: api.get("/health")["status"] == "ok", 40, "the retry once the table has room")
    host.setMAC(vm["mac_address"])  # bounces the link: the switch sees the port go down and up
    host.setIP(vm["ip_address"], 24)
    wait_until(lambda: ping(host, run.plan.vm("a1").ip), 15, "the late VM to reach a1")
    assert tcp_ok(host, run.host("a1"), run.plan.vm("a1").ip)
