"""Smoke tests of the Mininet harness itself: topologies, probes, controller process, cleanup.

None of these rely on the controller forwarding packets; where traffic must flow, the test installs
a NORMAL flow itself, so a broken probe or checksum trap shows up here and not as a mystery in the
controller's tests.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from helpers import (
    LAYOUTS,
    Api,
    ApiError,
    EchoServer,
    Stream,
    connect,
    ping,
    plan,
    random_prefix,
    register,
    run_in,
    tcp_ok,
    udp_ok,
    wait_until,
)

from mininet_topos import ovs
from mininet_topos.launcher import disable_tx_offload, running
from mininet_topos.topos import MAX_PREFIX

NOWHERE = ("127.0.0.1", 1)  # switches pointed here never get a controller


def bridge_column(bridge: str, column: str) -> str:
    return ovs.vsctl("get", "Bridge", bridge, column).strip('"')


def leftovers(prefix: str) -> list[str]:
    return [b for b in ovs.bridges() if b.startswith(prefix)] + ovs.links_with_prefix(prefix)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_plan_names_fit_and_are_unique(name: str) -> None:
    p = plan(name, "w" * MAX_PREFIX)
    assert len({v.mac for v in p.vms}) == len(p.vms)
    assert len({(v.network, v.ip) for v in p.vms}) == len(p.vms)
    assert len({s.dpid for s in p.switches}) == len(p.switches)
    assert all(len(s.dpid) == 16 for s in p.switches)
    # the longest interface name Mininet will make: "<switch>-eth<ports>" must fit IFNAMSIZ-1
    assert all(len(f"{s.name}-eth{len(p.vms) + len(p.links) * 2}") <= 15 for s in p.switches)
    with pytest.raises(ValueError):
        plan(name, "toolong")


def test_dpid_carries_prefix() -> None:
    assert plan("single").switches[0].dpid == "0000000000000001"
    assert plan("single", "ab").switches[0].dpid != plan("single", "ac").switches[0].dpid


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_topology_builds_netdev_secure_of13(bare_net_factory, name: str) -> None:
    run = bare_net_factory(name, of_address=NOWHERE, connect_timeout=None)
    for s in run.plan.switches:
        assert bridge_column(s.name, "datapath_type") == "netdev"
        assert bridge_column(s.name, "fail_mode") == "secure"
        assert "OpenFlow13" in bridge_column(s.name, "protocols")
        assert bridge_column(s.name, "other_config:datapath-id") == s.dpid
    per_bridge = {s.label: 0 for s in run.plan.switches}
    for a, b in run.plan.links:
        per_bridge[a] += 1
        per_bridge[b] += 1
    for vm in run.plan.vms:
        bridge = run.plan.switch(vm.switch).name
        assert ovs.vsctl("port-to-br", vm.interface) == bridge
        per_bridge[vm.switch] += 1
        intf = run.host(vm.label).defaultIntf()
        assert (intf.MAC(), intf.IP()) == (vm.mac, vm.ip)
    if run.plan.external:  # the upstream host's link is the external network's uplink
        assert ovs.vsctl("port-to-br", run.plan.external.uplink_interface) == \
            run.plan.switch(run.plan.external.uplink_switch).name
        per_bridge[run.plan.external.uplink_switch] += 1
    for s in run.plan.switches:
        assert len(ovs.vsctl("list-ports", s.name).split()) == per_bridge[s.label]


def test_probes_fail_without_flows_and_pass_with_normal(bare_net_factory) -> None:
    """Secure mode with no controller drops everything; a NORMAL flow carries ping, TCP and UDP
    (TCP/UDP prove the netdev checksum trap is handled)."""
    run = bare_net_factory("single", of_address=NOWHERE, connect_timeout=None)
    a1, a2, ip = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip
    assert not ping(a1, ip, timeout=0.5)
    assert not tcp_ok(a1, a2, ip, 5001, timeout=0.5)
    assert not udp_ok(a1, a2, ip, 5001, timeout=0.5)

    bridge = run.plan.switch("s1").name
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", bridge, "actions=NORMAL"], check=True)
    assert ping(a1, ip, count=3, timeout=1)
    assert tcp_ok(a1, a2, ip, 5001)
    assert udp_ok(a1, a2, ip, 5001)
    with EchoServer(a2, tcp=5002, tag="a2"):
        assert connect(a1, "tcp", ip, 5002, message="hello") == "a2:hello"
        code, out = run_in(a1, [sys.executable, "-m", "mininet_topos.probe", "stream", "tcp", ip, "5002",
                                "--interval", "0.02", "--duration", "0.5"], timeout=10)
        assert code == 0, out
        assert '"broken": false' in out


def test_stream_notices_a_cut(bare_net_factory) -> None:
    """A long-running stream reports a path that stops carrying data (what live-policy tests need)."""
    run = bare_net_factory("single", of_address=NOWHERE, connect_timeout=None)
    a1, a2, ip = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip
    bridge = run.plan.switch("s1").name
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", bridge, "actions=NORMAL"], check=True)
    with EchoServer(a2, tcp=5003, udp=5003):
        with Stream(a1, "tcp", ip, 5003, timeout=0.5) as tcp, Stream(a1, "udp", ip, 5003, timeout=0.5) as udp:
            subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", bridge], check=True)
            wait_until(lambda: tcp.proc.poll() is not None, 10, "the TCP stream to give up")
            tcp_summary, udp_summary = tcp.stop(), udp.stop()
    assert tcp_summary["received"] >= 1 and tcp_summary["broken"], tcp_summary
    assert udp_summary["received"] >= 1 and udp_summary["sent"] > udp_summary["received"], udp_summary


def test_tx_offload_fallback_keeps_tcp_working(bare_net_factory) -> None:
    """The fallback for a vswitchd without userspace TSO: checksums computed in the hosts."""
    run = bare_net_factory("single", of_address=NOWHERE, connect_timeout=None)
    disable_tx_offload(run.net)
    a1, a2, ip = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip
    assert "tx-checksumming: off" in a1.cmd("ethtool", "-k", a1.defaultIntf().name)
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", run.plan.switch("s1").name, "actions=NORMAL"],
                   check=True)
    assert tcp_ok(a1, a2, ip, 5001)
    assert udp_ok(a1, a2, ip, 5001)


@pytest.mark.parametrize("log, expected", [
    ("|ovs_numa|INFO|Discovered 2 CPU cores\n|userspace_tso|INFO|Userspace TCP Segmentation Offloading "
     "support enabled\n", True),
    ("|ovs_numa|INFO|Discovered 2 CPU cores\n|userspace_tso|INFO|Userspace TCP Segmentation Offloading "
     "support enabled\n|ovs_numa|INFO|Discovered 2 CPU cores\n", False),  # restarted without it
])
def test_tso_detection_reads_the_latest_start(tmp_path, log: str, expected: bool) -> None:
    path = tmp_path / "ovs-vswitchd.log"
    path.write_text(log)
    assert ovs.userspace_tso_active(path) is expected


def test_cleanup_on_exit_and_on_exception() -> None:
    prefix = random_prefix()
    with running("three", prefix, NOWHERE, connect_timeout=None) as run:
        assert set(run.plan.bridges) <= set(ovs.bridges())
    assert leftovers(prefix) == []
    with pytest.raises(ZeroDivisionError), running("ring", prefix, NOWHERE, connect_timeout=None):
        1 / 0  # noqa: B018  # any exception inside the block
    assert leftovers(prefix) == []
    with pytest.raises(ZeroDivisionError), running("external", prefix, NOWHERE, connect_timeout=None) as run:
        assert run.host("outside").defaultIntf().name.startswith(prefix)  # the upstream-outside veth
        1 / 0  # noqa: B018
    assert leftovers(prefix) == []


def test_refuses_to_take_over_an_existing_bridge() -> None:
    """Mininet would `del-br` a same-named bridge first; the launcher must refuse instead."""
    prefix = random_prefix()
    foreign = f"{prefix}s1"
    ovs.vsctl("add-br", foreign, "--", "set", "Bridge", foreign, "datapath_type=netdev")
    try:
        with pytest.raises(RuntimeError, match="already exist"), \
                running("single", prefix, NOWHERE, connect_timeout=None):
            pass
        assert foreign in ovs.bridges()
    finally:
        ovs.delete_bridges([foreign])


def test_launcher_registers_and_cleans_up_on_sigterm(controller, tmp_path) -> None:
    prefix = random_prefix()
    output = tmp_path / "launcher.out"
    with open(output, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mininet_topos", "three", "--prefix", prefix,
                                 "--controller", f"127.0.0.1:{controller.of_port}", "--api", controller.api,
                                 "--register"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "running;" in output.read_text() or proc.poll() is not None, 60,
                   "the launcher to build and register")
        assert proc.poll() is None, output.read_text()
        assert set(plan("three", prefix).bridges) <= set(ovs.bridges())
        ports = Api(controller.api).get("/ports")
        ports = ports.get("ports", ports) if isinstance(ports, dict) else ports
        assert {p["name"] for p in ports} == {v.label for v in plan("three").vms}
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:  # only when the launcher hung: then clean up for it
            proc.kill()
            proc.wait()
            ovs.delete_bridges(plan("three", prefix).bridges)
    assert "stopped; removed bridges" in output.read_text()
    assert leftovers(prefix) == []


def test_controller_fixture_health_and_restart(controller) -> None:
    api = Api(controller.api)
    assert api.get("/health")
    old_pid = controller.pid
    controller.restart()
    assert controller.pid != old_pid
    assert api.healthy()
    assert controller.stop(signal.SIGTERM) is not None
    assert not api.healthy()


def test_switches_connect_to_controller(controller, net_factory) -> None:
    run = net_factory("three")  # waits for is_connected on every bridge
    assert all(ovs.controller_connected(b) for b in run.plan.bridges)
    api = Api(controller.api)
    try:
        listed = api.get("/switches")
    except ApiError as exc:
        if exc.status == 404:
            pytest.skip("controller has no /v1/switches yet")
        raise
    dpids = {s["dpid"] for s in (listed["switches"] if isinstance(listed, dict) else listed)}
    assert {s.dpid for s in run.plan.switches} <= dpids


def test_register_creates_networks_and_ports(controller, net_factory) -> None:
    run = net_factory("single")
    api = Api(controller.api)
    reg = register(api, run.plan)
    assert len(reg.networks) == 2 and len(reg.ports) == len(run.plan.vms)
    for vm in run.plan.vms:
        port = api.get(f"/ports/{reg.ports[vm.label]}")
        port = port.get("port", port)
        assert (port["mac_address"], port["ip_address"], port["network_id"]) == \
            (vm.mac, vm.ip, reg.networks[vm.tenant])
        assert port["binding"] == {"dpid": vm.dpid, "interface": vm.interface}
