"""Forged and replayed LLDP on a ring of three switches: no VM or stray interface becomes a trunk.

The attack this answers: a VM captured the controller's LLDP, a stray (unregistered) interface on
another switch replayed it, and once the direct link was down the forged link carried another
tenant's traffic to the VM. Now VMs never receive LLDP, frames are signed and time-stamped, a link
needs both directions, and a switch may pin its trunks. Each attack has its control beside it.
"""

from __future__ import annotations

import struct
import time

import pytest
from helpers import (
    Api,
    Running,
    Sniffer,
    capture_frame,
    ping,
    send_frame,
    send_raw,
    tcp_ok,
    udp_ok,
    wait_until,
)

LLDP = 0x88CC
LLDP_INTERVAL = 0.5
LINK_TIMEOUT = 3 * LLDP_INTERVAL + 1.0
pytestmark = pytest.mark.controller_args("--lldp-interval", str(LLDP_INTERVAL))


def links(api: Api) -> set[tuple[str, int, str, int]]:
    return {(sw["dpid"], link["port"], link["peer_dpid"], link["peer_port"])
            for sw in api.get("/switches") for link in sw["links"]}


def switch(api: Api, dpid: str) -> dict:
    return api.get(f"/switches/{dpid}")


def refused_on(api: Api, dpid: str, interface: str, reason: str) -> bool:
    last = switch(api, dpid)["lldp_refused"]["last"]
    return bool(last) and last["interface"] == interface and last["reason"].startswith(reason)


def replay_until(api: Api, dpid: str, host, frame: bytes, interface: str, reason: str) -> None:
    """Send `frame` from `host` until the controller reports it refused for `reason` (the stray's port
    may be new to the controller, and its LLDP flow a moment away)."""
    wait_until(lambda: send_raw(host, frame) or refused_on(api, dpid, interface, reason), 15,
               f"LLDP from {interface} to be refused as {reason}")


def lldp_age(frame: bytes) -> float:
    """Seconds since the controller made `frame` (its signature TLV carries the time in ms)."""
    at = frame.index(b"\xfe\x1c") + 2 + 4  # org TLV header, then OUI and subtype
    return time.time() - struct.unpack_from("!Q", frame, at)[0] / 1000


@pytest.fixture
def ring(api, tenants) -> tuple[Running, set]:
    run, _ = tenants("ring")
    return run, links(api)


def test_vms_never_receive_lldp_while_unbound_interfaces_are_probed(ring):
    run, _ = ring
    stray, _ = run.add_stray("u3", "s3")
    with Sniffer(run.host("a1"), "dpid:") as at_vm:
        for _ in range(2):  # two whole rounds after the VM started listening
            assert capture_frame(stray, LLDP) is not None, "the stray interface is a trunk candidate: probed"
        assert not at_vm.wait_for("dpid:", timeout=0.5)


def test_replayed_and_forged_lldp_makes_no_trunk(ring, api):
    run, trunks = ring
    s1 = run.plan.switch("s1").dpid
    u1, u1_port = run.add_stray("u1", "s1")
    u3, _ = run.add_stray("u3", "s3")
    frame = capture_frame(u3, LLDP)  # genuine, fresh, signed: it claims s3's port toward u3
    assert frame is not None

    send_raw(u1, frame, count=3)  # replayed into another switch: one direction only
    send_raw(run.host("a1"), frame, count=3)  # from a VM: dropped by the switch itself
    claimed_port = frame.index(b"\x04\x05\x02") + 3  # port id TLV, subtype 2: the claimed ofport
    forged = frame[:claimed_port] + struct.pack("!I", 1) + frame[claimed_port + 4:]
    replay_until(api, s1, u1, forged, u1_port, "forged")

    wait_until(lambda: lldp_age(frame) > LINK_TIMEOUT + 0.5, 10, "the captured frame to grow stale")
    replay_until(api, s1, u1, frame, u1_port, "replayed")
    assert switch(api, s1)["lldp_refused"]["count"] >= 2
    assert links(api) == trunks, "a stray or a VM became a trunk"


def test_with_the_direct_link_down_traffic_goes_around_and_never_to_a_stray(ring, api):
    run, _ = ring
    u1, _ = run.add_stray("u1", "s1")
    run.net.configLinkStatus(run.plan.switch("s1").name, run.plan.switch("s3").name, "down")
    wait_until(lambda: len(links(api)) == 4, 20, "the s1-s3 link to go")
    b1, b3 = run.plan.vm("b1"), run.plan.vm("b3")
    with Sniffer(u1, "b-to-b3") as at_stray, Sniffer(run.host("a1"), "for-a1", "control") as at_a1:
        assert ping(run.host("b1"), b3.ip) and tcp_ok(run.host("b1"), run.host("b3"), b3.ip)
        assert udp_ok(run.host("b1"), run.host("b3"), b3.ip)
        send_frame(run.host("b1"), "b-to-b3", eth_src=b1.mac, eth_dst=b3.mac, ip_src=b1.ip, ip_dst=b3.ip)
        a1 = run.plan.vm("a1")
        net_a = next(n for n in api.get("/networks") if n["name"] == "tenant-a")
        for vlan in (None, net_a["segmentation_id"]):  # untagged, and tagged as if it were a trunk
            send_frame(u1, "for-a1", eth_src="fa:16:3e:66:66:66", eth_dst=a1.mac, ip_src="10.0.0.66", ip_dst=a1.ip,
                       **({"vlan": vlan} if vlan else {}))
        a2 = run.plan.vm("a2")
        send_frame(run.host("a2"), "control", eth_src=a2.mac, eth_dst=a1.mac, ip_src=a2.ip, ip_dst=a1.ip)
        assert at_a1.wait_for("control")
        assert "for-a1" not in at_a1.seen and not at_stray.seen


def test_pinned_trunks_take_no_lldp_from_any_other_interface(ring, api):
    run, trunks = ring
    s1 = run.plan.switch("s1")
    u1, _ = run.add_stray("u1", "s1")
    u3, _ = run.add_stray("u3", "s3")
    trunk_names = sorted(p["name"] for p in switch(api, s1.dpid)["ports"]
                         if p["ofport"] in {port for dpid, port, _, _ in trunks if dpid == s1.dpid})
    assert api.patch(f"/switches/{s1.dpid}", {"trunk_ports": trunk_names})["trunk_ports"] == trunk_names
    with Sniffer(u1, "dpid:") as at_u1:
        frame = capture_frame(u3, LLDP)  # s3 still discovers: u3 is probed, and the frame is genuine
        assert frame is not None
        assert not at_u1.wait_for("dpid:", timeout=0.5), "s1 pins its trunks: nothing else is probed"
    send_raw(u1, frame, count=3)  # dropped by s1 itself: only pinned trunks deliver LLDP to the controller
    lldp_in = {f["match"]["in_port"] for f in api.get(f"/switches/{s1.dpid}/flows")
               if f["match"].get("eth_type") == "0x88cc"}
    assert lldp_in == {port for dpid, port, _, _ in trunks if dpid == s1.dpid}
    assert links(api) == trunks
    assert ping(run.host("a1"), run.plan.vm("a3").ip) and tcp_ok(run.host("a1"), run.host("a3"), run.plan.vm("a3").ip)
