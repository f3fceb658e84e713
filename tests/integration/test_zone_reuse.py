"""A deleted port's conntrack zone: flushed on the switches, and not handed to the next port.

The attack: a port is deleted and another is created on the same interface with the same
addresses but stricter groups. Had it received the old port's zone, the old port's connections
would still admit their replies, which its groups do not allow.
"""

from __future__ import annotations

import random
import subprocess

from helpers import Sniffer, register, send_frame, wait_until

# Conntrack is shared by every bridge of the datapath: a port of our own keeps other runs' entries apart.
CLIENT_PORT, SERVER_PORT = random.randrange(20000, 60000), 5001


def zone_entries(zone: int) -> list[str]:
    out = subprocess.run(["ovs-appctl", "dpctl/dump-conntrack", "netdev@ovs-netdev", f"zone={zone}"],
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def test_a_new_port_does_not_inherit_a_deleted_ports_connections(api, net_factory):
    run = net_factory("single")
    reg = register(api, run.plan)
    a1, a2 = run.plan.vm("a1"), run.plan.vm("a2")
    to_a1 = {"eth_src": a2.mac, "eth_dst": a1.mac, "ip_src": a2.ip, "ip_dst": a1.ip,
             "udp_sport": CLIENT_PORT, "udp_dport": SERVER_PORT}
    back = {"eth_src": a1.mac, "eth_dst": a2.mac, "ip_src": a1.ip, "ip_dst": a2.ip,
            "udp_sport": SERVER_PORT, "udp_dport": CLIENT_PORT}
    with Sniffer(run.host("a1"), "out") as at_a1:
        send_frame(run.host("a2"), "out", **to_a1)  # a2's egress commits the connection in a2's zone
        assert at_a1.wait_for("out")
    zones = {int(line.split("zone=")[1].split(",")[0]) for line in
             subprocess.run(["ovs-appctl", "dpctl/dump-conntrack", "netdev@ovs-netdev"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
             if f"src={a2.ip}," in line and f"sport={CLIENT_PORT}," in line and "zone=" in line}
    assert len(zones) == 2, f"expected the connection in a2's egress and a1's ingress zone: {zones}"

    port = api.get(f"/ports/{reg.ports['a2']}")
    api.delete(f"/ports/{reg.ports['a2']}")
    left = sorted(bool(zone_entries(zone)) for zone in zones)
    assert left == [False, True], "exactly the deleted port's zone is flushed (a1's keeps its connection)"
    closed = api.create("security-groups", {"name": "closed"})  # egress only: nothing may come in
    again = api.create("ports", {"network_id": port["network_id"], "name": "a2", "mac_address": a2.mac,
                                 "ip_address": a2.ip, "binding": port["binding"],
                                 "security_group_ids": [closed["id"]]})

    with Sniffer(run.host("a2"), "replayed-reply", "allowed") as at_a2:
        send_frame(run.host("a1"), "replayed-reply", **back)  # the old connection's reply
        rule = {"security_group_id": closed["id"], "direction": "ingress", "protocol": "udp",
                "port_range_min": CLIENT_PORT, "remote_ip_prefix": f"{a1.ip}/32"}
        api.create("security-group-rules", rule)
        wait_until(lambda: send_frame(run.host("a1"), "allowed", **back) or at_a2.wait_for("allowed", 0.5), 15,
                   "the same packet to pass once a rule allows it (control)")
        assert "replayed-reply" not in at_a2.seen
    assert again["id"] != port["id"]
