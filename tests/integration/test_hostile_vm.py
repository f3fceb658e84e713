"""A hostile VM against security groups and port security, with real hosts and forged frames.

Each attack comes with its control: the same path carries the legitimate version, so a refusal is the
policy's doing and not a broken path. A sniffer that must not see a frame is proven alive by a later frame
it must see.
"""

from __future__ import annotations

from helpers import Sniffer, readdress, send_frame, tcp_ok, udp_ok

BROADCAST = "ff:ff:ff:ff:ff:ff"


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


def test_only_a_port_without_port_security_can_act_as_a_dhcp_server(tenants, api):
    """a1 sends DHCP OFFER/ACK (UDP 67 -> 68), broadcast and unicast to a2, which must see none of them. Once its
    port security is off, a1 is a DHCP server: a2's DISCOVER reaches it and its OFFER reaches a2."""
    run, reg = tenants("single")
    a1, a2 = run.plan.vm("a1"), run.plan.vm("a2")
    server = {"eth_src": a1.mac, "ip_src": a1.ip, "udp_sport": 67, "udp_dport": 68}
    broadcast = {"eth_dst": BROADCAST, "ip_dst": "255.255.255.255"}
    forged = {"rogue-offer": {**server, **broadcast, "dhcp": "offer"},
              "rogue-ack": {**server, "eth_dst": a2.mac, "ip_dst": a2.ip, "dhcp": "ack"}}
    with Sniffer(run.host("a2"), *forged, "offer", timeout=60) as at_a2, \
            Sniffer(run.host("a1"), "discover", timeout=60) as at_a1:
        for marker, fields in forged.items():
            send_frame(run.host("a1"), marker, **fields)
        api.patch(f"/ports/{reg.ports['a1']}", {"port_security_enabled": False, "security_group_ids": []})
        send_frame(run.host("a2"), "discover", eth_src=a2.mac, ip_src="0.0.0.0", udp_sport=68, udp_dport=67,
                   **broadcast)
        assert at_a1.wait_for("discover")
        send_frame(run.host("a1"), "offer", **server, **broadcast, dhcp="offer")
        assert at_a2.wait_for("offer")
        assert at_a2.seen == {"offer"}


def test_a_vm_port_never_passes_a_tagged_frame(tenants, api):
    """a1 sends 802.1Q-tagged frames (its own network's tag, and tenant B's), with and without port security:
    nobody may get them, while its untagged frames still reach a2. The others admit anything, so that what they
    see is decided by classification alone."""
    run, reg = tenants("single")
    admit_all = api.create("security-groups", {"name": "admit-all"})["id"]
    api.create("security-group-rules", {"security_group_id": admit_all, "direction": "ingress"})
    for label in ("a2", "b1", "b2"):
        api.patch(f"/ports/{reg.ports[label]}", {"security_group_ids": [admit_all]})
    a1, a2, b1, b2 = (run.plan.vm(label) for label in ("a1", "a2", "b1", "b2"))
    tags = {tenant: api.get(f"/networks/{reg.networks[tenant]}")["segmentation_id"] for tenant in ("a", "b")}
    tagged = {"own-tag-broadcast": (tags["a"], BROADCAST, a2.ip), "own-tag-to-a2": (tags["a"], a2.mac, a2.ip),
              "b-tag-broadcast": (tags["b"], BROADCAST, b1.ip), "b-tag-to-b1": (tags["b"], b1.mac, b1.ip)}
    for secure in (True, False):
        if not secure:
            api.patch(f"/ports/{reg.ports['a1']}", {"port_security_enabled": False, "security_group_ids": []})
        with Sniffer(run.host("a2"), *tagged, "untagged", timeout=60) as at_a2, \
                Sniffer(run.host("b1"), *tagged, "from-b2", timeout=60) as at_b1, \
                Sniffer(run.host("b2"), *tagged, "from-b1", timeout=60) as at_b2:
            for marker, (vlan, eth_dst, ip_dst) in tagged.items():
                send_frame(run.host("a1"), marker, vlan=vlan, eth_src=a1.mac, eth_dst=eth_dst, ip_src=a1.ip,
                           ip_dst=ip_dst)
            send_frame(run.host("a1"), "untagged", eth_src=a1.mac, eth_dst=BROADCAST, ip_src=a1.ip, ip_dst=a2.ip)
            send_frame(run.host("b2"), "from-b2", eth_src=b2.mac, eth_dst=BROADCAST, ip_src=b2.ip, ip_dst=b1.ip)
            send_frame(run.host("b1"), "from-b1", eth_src=b1.mac, eth_dst=BROADCAST, ip_src=b1.ip, ip_dst=b2.ip)
            assert at_a2.wait_for("untagged") and at_b1.wait_for("from-b2") and at_b2.wait_for("from-b1")
            assert (at_a2.seen, at_b1.seen, at_b2.seen) == ({"untagged"}, {"from-b2"}, {"from-b1"}), secure
