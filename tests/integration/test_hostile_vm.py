"""A hostile VM against security groups and port security, with real hosts and forged frames.

Each attack comes with its control: the same path carries the legitimate version, so a refusal is the
policy's doing and not a broken path. A sniffer that must not see a frame is proven alive by a later frame
it must see.
"""

from __future__ import annotations

from helpers import readdress, tcp_ok, udp_ok


def test_a_non_member_with_a_members_address_in_another_network_is_refused(tenants, api):
    """Group g admits TCP and UDP from its members. a1 (tenant A, s1) is one; b1 (tenant B, s1) takes a1's very
    address but is not. b3 (s3) must admit b2 (s2, a member) and refuse b1."""
    run, reg = tenants("three")
    group = api.create("security-groups", {"name": "g"})["id"]
    for protocol in ("tcp", "udp"):
        api.create("security-group-rules", {"security_group_id": group, "direction": "ingress", "protocol": protocol,
                                            "port_range_min": 5001, "port_range_max": 5001, "remote_group_id": group})
    for member in ("a1", "b2", "b3"):
        api.patch(f"/ports/{reg.ports[member]}", {"security_group_ids": [group]})
    readdress(api, run, reg, "b1", run.plan.vm("a1").ip)
    b1, b2, b3, ip3 = run.host("b1"), run.host("b2"), run.host("b3"), run.plan.vm("b3").ip
    assert tcp_ok(b2, b3, ip3) and udp_ok(b2, b3, ip3)
    assert not tcp_ok(b1, b3, ip3) and not udp_ok(b1, b3, ip3)
