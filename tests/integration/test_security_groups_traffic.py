"""Security groups with real hosts: TCP, UDP and ICMP through conntrack, changed through REST under traffic."""

from __future__ import annotations

import time

import pytest
from helpers import ApiError, EchoServer, Stream, connect, ping, register, tcp_ok, udp_ok, wait_until


@pytest.fixture
def web(api, net_factory):
    """`single`: a1 stays in `default`; a2 moves to a new group `web` (egress only: nothing may come in)."""
    run = net_factory("single")
    reg = register(api, run.plan)
    group = api.create("security-groups", {"name": "web"})
    api.patch(f"/ports/{reg.ports['a2']}", {"security_group_ids": [group["id"]]})
    return run, reg, group["id"]


def rule(api, group_id: str, direction: str = "ingress", **fields) -> str:
    return api.create("security-group-rules", {"security_group_id": group_id, "direction": direction, **fields})["id"]


def test_ingress_is_denied_by_default_and_opened_by_port_range_cidr_and_protocol(api, web):
    run, _, group = web
    a1, a2, ip2 = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip
    assert not tcp_ok(a1, a2, ip2, 5001) and not udp_ok(a1, a2, ip2, 5001) and not ping(a1, ip2)
    assert not tcp_ok(a2, a1, run.plan.vm("a1").ip, 5001)  # a1 (default) admits only members of default
    rule(api, group, protocol="tcp", port_range_min=5001, port_range_max=5002)
    # The echo comes back to a1 although a1 admits nothing from a2: replies of allowed connections pass.
    assert tcp_ok(a1, a2, ip2, 5001) and tcp_ok(a1, a2, ip2, 5002)
    assert not tcp_ok(a1, a2, ip2, 5003) and not udp_ok(a1, a2, ip2, 5001)
    rule(api, group, protocol="udp", port_range_min=5001, port_range_max=5001,
         remote_ip_prefix=f"{run.plan.vm('a1').ip}/32")
    assert udp_ok(a1, a2, ip2, 5001)
    rule(api, group, protocol="icmp", remote_ip_prefix="10.0.0.0/24")
    assert ping(a1, ip2)


def test_remote_group_membership_works_both_ways(api, web):
    run, reg, group = web
    default = next(g["id"] for g in api.get("/security-groups") if g["name"] == "default")
    rule(api, group, protocol="tcp", port_range_min=6000, port_range_max=6000, remote_group_id=default)
    a1, a2, ip2 = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip
    assert tcp_ok(a1, a2, ip2, 6000)
    api.patch(f"/ports/{reg.ports['a1']}", {"security_group_ids": [group]})  # a1 leaves default
    assert not tcp_ok(a1, a2, ip2, 6000)
    api.patch(f"/ports/{reg.ports['a1']}", {"security_group_ids": [default, group]})
    assert tcp_ok(a1, a2, ip2, 6000)


def test_two_groups_on_one_port(api, web):
    run, reg, group = web
    ssh = api.create("security-groups", {"name": "ssh"})["id"]
    rule(api, ssh, protocol="tcp", port_range_min=2222, port_range_max=2222)
    rule(api, group, protocol="udp", port_range_min=5353, port_range_max=5353)
    api.patch(f"/ports/{reg.ports['a2']}", {"security_group_ids": [group, ssh]})
    a1, a2, ip2 = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip
    assert tcp_ok(a1, a2, ip2, 2222) and udp_ok(a1, a2, ip2, 5353)
    assert not tcp_ok(a1, a2, ip2, 5353)


def test_empty_group_list_gets_nothing_in_or_out(api, web):
    run, reg, _ = web
    api.patch(f"/ports/{reg.ports['a2']}", {"security_group_ids": []})
    a1, a2 = run.host("a1"), run.host("a2")
    assert not tcp_ok(a2, a1, run.plan.vm("a1").ip, 5001) and not ping(a2, run.plan.vm("a1").ip)
    assert not tcp_ok(a1, a2, run.plan.vm("a2").ip, 5001)


def test_removing_a_rule_cuts_its_live_connection_within_a_second(api, web):
    run, _, group = web
    a1, a2, ip2 = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip
    allowing = rule(api, group, protocol="tcp", port_range_min=7000, port_range_max=7000)
    with EchoServer(a2, tcp=7000), Stream(a1, "tcp", ip2, 7000) as stream:
        api.delete(f"/security-group-rules/{allowing}")
        revoked_at = time.time()
        wait_until(stream.ended, 10, "the revoked connection to break")
        summary = stream.stop()
    assert summary["broken"], summary
    assert summary["last_ok_epoch"] - revoked_at < 1.0, summary


def test_unrelated_rule_changes_do_not_disturb_a_live_connection(api, web):
    run, _, group = web
    a1, a2, ip2 = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip
    rule(api, group, protocol="tcp", port_range_min=7001, port_range_max=7001)
    with EchoServer(a2, tcp=7001), Stream(a1, "tcp", ip2, 7001, interval=0.02) as stream:
        for port in range(8000, 8005):
            extra = rule(api, group, protocol="udp", port_range_min=port, port_range_max=port)
            api.delete(f"/security-group-rules/{extra}")
        assert connect(a1, "tcp", ip2, 7001) is not None  # still being served alongside
        summary = stream.stop()
    assert not summary["broken"] and summary["received"] == summary["sent"], summary


def test_bad_rules_are_rejected_and_change_nothing(api, web):
    run, reg, group = web
    dpid = run.plan.switch("s1").dpid
    before = api.get(f"/switches/{dpid}/flows")
    rules_before = api.get("/security-group-rules")
    bad = [
        ({"direction": "sideways"}, 400),
        ({"protocol": "sctp"}, 400),
        ({"protocol": "icmp", "port_range_min": 1, "port_range_max": 2}, 400),
        ({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, 400),
        ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 80}, 400),
        ({"remote_ip_prefix": "10.0.0.0/40"}, 400),
        ({"remote_ip_prefix": "10.0.0.0/24", "remote_group_id": group}, 400),
        ({"remote_group_id": "no-such-group"}, 404),
    ]
    for fields, code in bad:
        with pytest.raises(ApiError) as err:
            api.post("/security-group-rules", {"security_group_id": group, "direction": "ingress", **fields})
        assert err.value.status == code, (fields, err.value.body)
    with pytest.raises(ApiError) as err:
        api.delete(f"/security-groups/{group}")  # a2 uses it
    assert err.value.status == 409
    with pytest.raises(ApiError) as err:
        api.patch(f"/ports/{reg.ports['a1']}", {"security_group_ids": ["no-such-group"]})
    assert err.value.status in (400, 404)
    assert api.get("/security-group-rules") == rules_before

    def shape(flows):
        return sorted((f["table"], f["priority"], str(f["match"]), f["actions"]) for f in flows)

    assert shape(api.get(f"/switches/{dpid}/flows")) == shape(before)
