"""POST /v1/trace on a running controller against real packets: what it says reaches a port does, what it says
is dropped is, across three switches, for TCP, UDP and ICMP."""

from __future__ import annotations

from helpers import ping, tcp_ok, udp_ok


def test_the_trace_verdict_is_what_real_packets_meet(api, tenants):
    """a3 (on s3) admits tcp 5001 alone; a1 (on s1) probes it, and asks the controller first."""
    run, reg = tenants("three")
    group = api.create("security-groups", {"name": "web"})["id"]
    rule = api.create("security-group-rules", {"security_group_id": group, "direction": "ingress",
                                               "protocol": "tcp", "port_range_min": 5001})
    api.patch(f"/ports/{reg.ports['a3']}", {"security_group_ids": [group]})
    a1, a3, ip3 = run.host("a1"), run.host("a3"), run.plan.vm("a3").ip
    probes = {("tcp", 5001): lambda: tcp_ok(a1, a3, ip3, 5001), ("tcp", 5002): lambda: tcp_ok(a1, a3, ip3, 5002),
              ("udp", 5001): lambda: udp_ok(a1, a3, ip3, 5001), ("icmp", None): lambda: ping(a1, ip3, count=2)}
    told = {}
    for (protocol, port), probe in probes.items():
        body = {"port_id": reg.ports["a1"], "ip_dst": ip3, "protocol": protocol,
                **({"tp_dst": port} if port else {})}
        told[(protocol, port)] = api.post("/trace", body)
        assert (told[(protocol, port)]["verdict"] == "output") == probe(), (protocol, port, told[(protocol, port)])
    allowed = told[("tcp", 5001)]
    assert [o["port"]["id"] for o in allowed["output"]] == [reg.ports["a3"]]
    assert len({stage["dpid"] for stage in allowed["stages"]}) == 3  # s1, s2 on the way, s3
    assert rule["id"] in {stage["owner"]["id"] for stage in allowed["stages"] if stage["owner"]}
    assert [verdict["verdict"] for verdict in told.values()] == ["output", "drop", "drop", "drop"]

