"""Ports created without a binding, attached when the hypervisor sets external_ids:iface-id on the VM's interface
(as libvirt and Neutron/OVN hypervisors do), with real hosts and TCP, UDP and ping.

The attack: an interface claiming a port of another network speaks only as that port (its MAC and address, in its
network); an interface no port claims forwards nothing. Each refusal has its control on the same path.
"""

from __future__ import annotations

from helpers import Api, Running, ping, tcp_ok, udp_ok, wait_until
from mininet.node import Host

from mininet_topos import ovs


def _reach(run: Running, src: str, dst: str, ip: str) -> tuple[bool, bool, bool]:
    """(ping, TCP, UDP) from VM `src` to `ip`, served by VM `dst`."""
    h_from, h_to = run.host(src), run.host(dst)
    return ping(h_from, ip), tcp_ok(h_from, h_to, ip), udp_ok(h_from, h_to, ip)


def _claim(run: Running, label: str, iface_id: str) -> None:
    """What the hypervisor does: VM `label`'s switch-side interface says which port it is."""
    ovs.vsctl("set", "interface", run.plan.vm(label).interface, f"external_ids:iface-id={iface_id}")


def _readdress(host: Host, mac: str, ip: str, prefixlen: int) -> None:
    """The host takes another MAC and address, and forgets the neighbours it failed to resolve as the old one. Its
    interface goes down and up meanwhile, and the port's flows with it."""
    host.setMAC(mac)
    host.setIP(ip, prefixlen)
    host.cmd("ip", "neigh", "flush", "all")


def _port(api: Api, network_id: str, name: str, mac: str, ip: str, binding: dict | None = None) -> dict:
    body = {"network_id": network_id, "name": name, "mac_address": mac, "ip_address": ip}
    return api.create("ports", body if binding is None else {**body, "binding": binding})


def _active(api: Api, port: dict) -> bool:
    return api.get(f"/ports/{port['id']}")["status"] == "ACTIVE"


def test_a_port_gets_traffic_once_its_interface_claims_it_and_a_foreign_claim_gets_only_what_that_port_would(
        net_factory, api):
    """single: a1 a2 (tenant A), b1 b2 (tenant B), one switch. a2 and b2 are bound by the API; a1 and b1 are
    created without a binding; a3 is a port of A without a binding and no VM of its own."""
    run = net_factory("single")
    a1, a2, b1, b2 = (run.plan.vm(label) for label in ("a1", "a2", "b1", "b2"))
    net_a = api.create("networks", {"name": "tenant-a", "cidr": "10.0.0.0/24"})["id"]
    net_b = api.create("networks", {"name": "tenant-b", "cidr": "10.0.0.0/24"})["id"]
    _port(api, net_a, "a2", a2.mac, a2.ip, {"dpid": a2.dpid, "interface": a2.interface})
    _port(api, net_b, "b2", b2.mac, b2.ip, {"dpid": b2.dpid, "interface": b2.interface})
    port_a1 = _port(api, net_a, "a1", a1.mac, a1.ip)
    port_b1 = _port(api, net_b, "b1", b1.mac, b1.ip)
    port_a3 = _port(api, net_a, "a3", "fa:16:3e:00:0a:03", "10.0.0.13")

    # Unclaimed: a1's interface forwards nothing, either way.
    assert _reach(run, "a1", "a2", a2.ip) == (False, False, False)
    assert _reach(run, "a2", "a1", a1.ip) == (False, False, False)

    # The hypervisor says which port a1's interface is: traffic flows, both ways.
    _claim(run, "a1", port_a1["id"])
    wait_until(lambda: _active(api, port_a1), timeout=20, what="a1's port ACTIVE once its interface claims it")
    assert api.get(f"/ports/{port_a1['id']}")["binding_source"] == "ovsdb"
    assert _reach(run, "a1", "a2", a2.ip) == (True, True, True)
    assert _reach(run, "a2", "a1", a1.ip) == (True, True, True)

    # The attack: b1's interface claims a3, a port of tenant A. As itself (b1's MAC and address) it gets nothing:
    # not into A, not into its own tenant B.
    _claim(run, "b1", port_a3["id"])
    wait_until(lambda: _active(api, port_a3), timeout=20, what="a3's port ACTIVE on b1's interface")
    assert _reach(run, "b1", "a2", a2.ip) == (False, False, False)
    assert _reach(run, "b1", "b2", b2.ip) == (False, False, False)
    assert _reach(run, "b2", "b1", b1.ip) == (False, False, False)
    # Speaking as a3 (its MAC and address), it gets what a3 gets: tenant A, with the default group.
    host_b1 = run.host("b1")
    _readdress(host_b1, port_a3["mac_address"], port_a3["ip_address"], b1.prefixlen)
    wait_until(lambda: ping(host_b1, a2.ip), timeout=10, what="b1, as a3, pings a2 (its link came back up)")
    assert _reach(run, "b1", "a2", a2.ip) == (True, True, True)
    assert _reach(run, "b1", "b2", b2.ip) == (False, False, False)  # still nothing of tenant B

    # Control: once b1's interface claims b1's own port (and b1 speaks as itself), tenant B is reachable.
    _readdress(host_b1, b1.mac, b1.ip, b1.prefixlen)
    _claim(run, "b1", port_b1["id"])
    wait_until(lambda: _active(api, port_b1) and not _active(api, port_a3), timeout=20,
               what="b1's own port ACTIVE, a3's DOWN")
    wait_until(lambda: ping(host_b1, b2.ip), timeout=10, what="b1 pings b2")
    assert _reach(run, "b1", "b2", b2.ip) == (True, True, True)
    assert _reach(run, "b1", "a2", a2.ip) == (False, False, False)
