"""Tenant isolation and port security with real hosts and packets (ICMP, TCP, UDP, ARP, broadcast, spoofing)."""

from __future__ import annotations

import itertools

import pytest
from helpers import ApiError, Running, Sniffer, ping, readdress, send_frame, tcp_ok, udp_ok, wait_until

from mininet_topos import ovs


def reachable(run: Running, src: str, dst: str) -> dict[str, bool]:
    h_src, h_dst, ip = run.host(src), run.host(dst), run.plan.vm(dst).ip
    return {"icmp": ping(h_src, ip, count=2), "tcp": tcp_ok(h_src, h_dst, ip), "udp": udp_ok(h_src, h_dst, ip)}


ALL_OK = {"icmp": True, "tcp": True, "udp": True}
NONE_OK = {"icmp": False, "tcp": False, "udp": False}


@pytest.mark.parametrize("layout, pairs", [("single", [("a1", "a2"), ("b2", "b1")]),
                                           ("three", [("a1", "a3"), ("b3", "b1"), ("a2", "a1")])])
def test_same_network_reaches_over_icmp_tcp_udp(tenants, layout, pairs):
    run, _ = tenants(layout)
    for src, dst in pairs:
        assert reachable(run, src, dst) == ALL_OK, f"{src} -> {dst}"


@pytest.mark.parametrize("layout, pairs", [("single", [("a1", "b1"), ("b2", "a2")]), ("three", [("a1", "b3")])])
def test_other_tenants_are_unreachable(tenants, layout, pairs):
    run, _ = tenants(layout)
    for src, dst in pairs:
        assert reachable(run, src, dst) == NONE_OK, f"{src} -> {dst}"


def test_overlapping_addresses_stay_apart(tenants, api):
    """Tenant B's b1 takes a1's very IP: each tenant reaches its own 10.0.0.11, nobody the other's."""
    run, reg = tenants("three")
    a1, b1 = run.plan.vm("a1"), run.plan.vm("b1")
    readdress(api, run, reg, "b1", a1.ip)
    with Sniffer(run.host("b1"), "to-a1-from-a3", "to-b1-from-b3") as at_b1, \
            Sniffer(run.host("a1"), "to-a1-from-a3", "to-b1-from-b3") as at_a1:
        assert ping(run.host("a3"), a1.ip) and ping(run.host("b3"), a1.ip)
        assert tcp_ok(run.host("a3"), run.host("a1"), a1.ip) and tcp_ok(run.host("b3"), run.host("b1"), a1.ip)
        for src in ("a3", "b3"):
            vm = run.plan.vm(src)
            dst = a1 if src == "a3" else b1
            send_frame(run.host(src), f"to-{dst.label}-from-{src}", eth_src=vm.mac, eth_dst=dst.mac,
                       ip_src=vm.ip, ip_dst=a1.ip)
        assert at_a1.wait_for("to-a1-from-a3") and at_b1.wait_for("to-b1-from-b3")
        assert at_a1.seen == {"to-a1-from-a3"} and at_b1.seen == {"to-b1-from-b3"}


def test_arp_and_broadcast_stay_in_the_network(tenants):
    run, _ = tenants("three")
    a1, a3, b3 = (run.plan.vm(x) for x in ("a1", "a3", "b3"))
    with Sniffer(run.host("b3"), "bcast", "arp-who-has", "done") as at_b3, \
            Sniffer(run.host("a3"), "bcast", "arp-who-has") as at_a3:
        send_frame(run.host("a1"), "bcast", eth_src=a1.mac, eth_dst="ff:ff:ff:ff:ff:ff",
                   ip_src=a1.ip, ip_dst="10.0.0.255")
        send_frame(run.host("a1"), "arp-who-has", eth_src=a1.mac, eth_dst="ff:ff:ff:ff:ff:ff", arp_op=1,
                   arp_spa=a1.ip, arp_tpa="10.0.0.250")  # nobody's address: flooded, but only in tenant A
        assert at_a3.wait_for("bcast") and at_a3.wait_for("arp-who-has")
        send_frame(run.host("b1"), "done", eth_src=run.plan.vm("b1").mac, eth_dst="ff:ff:ff:ff:ff:ff",
                   ip_src=run.plan.vm("b1").ip, ip_dst="10.0.0.255")
        assert at_b3.wait_for("done")
        assert at_b3.seen == {"done"}
    # ARP for another tenant's address gets no answer: the neighbour entry never resolves.
    assert not ping(run.host("a1"), b3.ip)
    assert "lladdr" not in run.host("a1").cmd(f"ip neigh show {b3.ip}")
    assert a3.mac in run.host("a1").cmd(f"ip neigh show {a3.ip}") or ping(run.host("a1"), a3.ip)


@pytest.mark.parametrize("spoof", ["mac", "ip", "arp"])
def test_spoofed_frames_are_dropped(tenants, spoof):
    run, _ = tenants("single")
    a1, a2 = run.plan.vm("a1"), run.plan.vm("a2")
    legit = {"eth_src": a1.mac, "eth_dst": a2.mac, "ip_src": a1.ip, "ip_dst": a2.ip}
    forged = {
        "mac": {**legit, "eth_src": "fa:16:3e:66:66:66"},
        "ip": {**legit, "ip_src": "10.0.0.99"},
        "arp": {"eth_src": a1.mac, "eth_dst": "ff:ff:ff:ff:ff:ff", "arp_op": 2, "arp_spa": a2.ip,
                "arp_tpa": a2.ip, "arp_sha": a1.mac},  # gratuitous ARP claiming a2's address
    }[spoof]
    with Sniffer(run.host("a2"), "forged", "legit") as at_a2:
        send_frame(run.host("a1"), "forged", **forged)
        send_frame(run.host("a1"), "legit", **legit)
        assert at_a2.wait_for("legit")
        assert "forged" not in at_a2.seen


def test_port_security_disabled_lets_spoofed_frames_through(tenants, api):
    run, reg = tenants("single")
    for vm in ("a1", "a2"):  # a2 unfiltered too: its security groups would rightly refuse the forged source
        api.patch(f"/ports/{reg.ports[vm]}", {"port_security_enabled": False, "security_group_ids": []})
    a2 = run.plan.vm("a2")
    with Sniffer(run.host("a2"), "forged") as at_a2:
        send_frame(run.host("a1"), "forged", eth_src="fa:16:3e:66:66:66", eth_dst=a2.mac,
                   ip_src="10.0.0.99", ip_dst=a2.ip)
        assert at_a2.wait_for("forged")


def test_deleting_a_port_cuts_it_off(tenants, api):
    run, reg = tenants("three")
    assert ping(run.host("a1"), run.plan.vm("a3").ip)
    api.delete(f"/ports/{reg.ports['a3']}")
    assert not ping(run.host("a1"), run.plan.vm("a3").ip, count=2)
    assert not tcp_ok(run.host("a1"), run.host("a3"), run.plan.vm("a3").ip)
    assert ping(run.host("a1"), run.plan.vm("a2").ip)


def test_port_status_follows_the_interface(tenants, api):
    run, reg = tenants("single")
    assert api.get(f"/ports/{reg.ports['a1']}")["status"] == "ACTIVE"
    a1 = run.plan.vm("a1")
    ovs.vsctl("del-port", a1.interface)
    wait_until(lambda: api.get(f"/ports/{reg.ports['a1']}")["status"] == "DOWN", 10, "a1 to go DOWN")
    assert api.get(f"/ports/{reg.ports['a2']}")["status"] == "ACTIVE"


def test_rejected_requests_change_no_flow(tenants, api):
    run, reg = tenants("single")
    dpid = run.plan.switch("s1").dpid

    def flows() -> list[tuple]:
        return sorted((f["table"], f["priority"], str(f["match"]), f["actions"]) for f in
                      api.get(f"/switches/{dpid}/flows"))

    before = flows()
    net_a = reg.networks["a"]
    a2 = run.plan.vm("a2")
    bad = [
        ("/networks", {"name": "x", "cidr": "10.0.0.1/33"}, 400),
        ("/ports", {"network_id": net_a, "mac_address": "fa:16:3e:00:09:09", "ip_address": a2.ip,
                    "binding": {"dpid": dpid, "interface": "nope"}}, 409),       # a2's IP again
        ("/ports", {"network_id": net_a, "mac_address": "fa:16:3e:00:09:09", "ip_address": "192.168.9.9",
                    "binding": {"dpid": dpid, "interface": "nope"}}, 400),       # outside the CIDR
        ("/ports", {"network_id": "no-such-network", "mac_address": "fa:16:3e:00:09:09",
                    "ip_address": "10.0.0.99", "binding": {"dpid": dpid, "interface": "nope"}}, 404),
    ]
    for path, body, code in bad:
        with pytest.raises(ApiError) as err:
            api.post(path, body)
        assert err.value.status == code, err.value.body
    with pytest.raises(ApiError) as err:
        api.delete(f"/networks/{net_a}")
    assert err.value.status == 409
    assert flows() == before
    assert len(api.get("/ports")) == len(run.plan.vms)


def test_ring_forwards_without_loops_and_reroutes_when_a_link_fails(tenants, api):
    run, _ = tenants("ring")
    for src, dst in itertools.permutations(("a1", "a2", "a3"), 2):
        assert ping(run.host(src), run.plan.vm(dst).ip), f"{src} -> {dst}"
    assert tcp_ok(run.host("a1"), run.host("a2"), run.plan.vm("a2").ip)
    # A broadcast storm would show as thousands of packets through the flood flows; one frame stays one.
    a1 = run.plan.vm("a1")
    with Sniffer(run.host("a3"), "one-bcast") as at_a3:
        send_frame(run.host("a1"), "one-bcast", eth_src=a1.mac, eth_dst="ff:ff:ff:ff:ff:ff",
                   ip_src=a1.ip, ip_dst="10.0.0.255", count=1)
        assert at_a3.wait_for("one-bcast")
    flooded = sum(int(line.split("n_packets=")[1].split(",")[0]) for s in run.plan.switches
                  for line in ovs.ofctl("dump-flows", s.name, "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00").splitlines()
                  if "n_packets=" in line)
    assert flooded < 50, f"{flooded} broadcast packets: a loop?"
    # Take the s1-s2 link down: traffic a1 -> a2 goes around through s3.
    run.net.configLinkStatus(run.plan.switch("s1").name, run.plan.switch("s2").name, "down")
    wait_until(lambda: ping(run.host("a1"), run.plan.vm("a2").ip), 20, "a1 -> a2 around the ring")
    assert tcp_ok(run.host("a1"), run.host("a2"), run.plan.vm("a2").ip)
    assert udp_ok(run.host("b1"), run.host("b2"), run.plan.vm("b2").ip)
