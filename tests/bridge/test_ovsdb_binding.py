"""A real sdn-controller following the real Open vSwitch database: `sdn-controller attach` points real bridges at it,
and a port created without a binding follows the interface whose external_ids:iface-id names it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mininet_topos import ovs
from mininet_topos.control import HOST, ControllerProcess, controller_command
from mininet_topos.launcher import random_prefix
from mininet_topos.reach import wait_until
from mininet_topos.rest import Api


class Hypervisor:
    """Two netdev bridges `{prefix}-br1` and `{prefix}-br2` (not attached yet), and a controller process."""

    def __init__(self, controller: ControllerProcess, prefix: str) -> None:
        self.controller = controller
        self.api = Api(controller.api)
        self.prefix = prefix
        self.bridges = [f"{prefix}-br1", f"{prefix}-br2"]

    def attach(self, *bridges: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*controller_command(), "attach", *bridges, "--of-listen",
                               f"{HOST}:{self.controller.of_port}", *extra],
                              capture_output=True, text=True, timeout=30)

    def dpid(self, bridge: str) -> str:
        return ovs.vsctl("get", "bridge", bridge, "datapath_id").strip().strip('"')

    def plug(self, bridge: str, name: str, iface_id: str) -> None:
        """An internal interface (a VM's tap, as far as the switch can tell), up, claiming `iface_id`."""
        ovs.vsctl("add-port", bridge, name, "--", "set", "interface", name, "type=internal",
                  f"external_ids:iface-id={iface_id}")
        subprocess.run(["ip", "link", "set", "dev", name, "up"], check=True)

    def port(self, port_id: str) -> dict[str, Any]:
        return self.api.get(f"/ports/{port_id}")

    def owned_in_ports(self, bridge: str, port_id: str) -> set[int]:
        """The in_ports of the flows the port owns on a bridge's switch (as the controller reads them back)."""
        flows = self.api.get(f"/switches/{self.dpid(bridge)}/flows")
        return {flow["match"]["in_port"] for flow in flows
                if flow["owner"] == f"isolation:port/{port_id}" and "in_port" in flow["match"]}


@pytest.fixture
def hypervisor(tmp_path: Path) -> Iterator[Hypervisor]:
    prefix = random_prefix()
    controller = ControllerProcess(tmp_path / "controller")
    made = [f"{prefix}-br1", f"{prefix}-br2", f"{prefix}-br3"]
    try:
        for bridge in made:
            ovs.vsctl("add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev")
        controller.start(timeout=30)
        yield Hypervisor(controller, prefix)
    finally:
        try:
            controller.stop()
        finally:
            ovs.delete_bridges(made)


def ofport(name: str) -> int:
    return int(ovs.vsctl("get", "interface", name, "ofport"))


def test_attach_points_bridges_at_the_controller_idempotently_and_all_or_nothing(hypervisor: Hypervisor) -> None:
    third = f"{hypervisor.prefix}-br3"
    missing = hypervisor.attach(third, f"{hypervisor.prefix}-nope")
    assert missing.returncode == 1
    assert f"no bridge named {hypervisor.prefix}-nope" in missing.stderr
    assert ovs.vsctl("get-controller", third).strip() == ""  # nothing half-done
    first = hypervisor.attach(*hypervisor.bridges)
    assert first.returncode == 0, first.stderr
    target = f"tcp:{HOST}:{hypervisor.controller.of_port}"
    assert first.stdout.splitlines() == [f"{bridge}: attached to {target}" for bridge in hypervisor.bridges]
    for bridge in hypervisor.bridges:
        assert ovs.vsctl("get-controller", bridge).strip() == target
        assert ovs.vsctl("get", "bridge", bridge, "protocols", "fail_mode", "datapath_type").split() == [
            "[OpenFlow13]", "secure", "netdev"]
    again = hypervisor.attach(*hypervisor.bridges)
    assert again.stdout.splitlines() == [f"{bridge}: already on {target}" for bridge in hypervisor.bridges]
    wait_until(lambda: hypervisor.api.get("/health")["switches"] == 2, timeout=20,
               what="both bridges connected to the controller")


def test_a_port_without_binding_follows_the_interface_that_claims_it(hypervisor: Hypervisor) -> None:
    assert hypervisor.attach(*hypervisor.bridges).returncode == 0
    api = hypervisor.api
    wait_until(lambda: api.get("/health")["switches"] == 2, timeout=20, what="both bridges connected")
    network = api.create("networks", {"name": "vms", "cidr": "10.0.0.0/24"})
    port = api.create("ports", {"network_id": network["id"], "name": "vm1", "mac_address": "fa:16:3e:00:00:01",
                                "ip_address": "10.0.0.11"})
    assert (port["binding"], port["binding_source"], port["status"]) == (None, None, "DOWN")
    br1, br2 = hypervisor.bridges
    tap, twin = f"{hypervisor.prefix}-tap1", f"{hypervisor.prefix}-tap2"

    hypervisor.plug(br1, tap, port["id"])
    wait_until(lambda: hypervisor.port(port["id"])["status"] == "ACTIVE", timeout=20, what="port ACTIVE on br1")
    shown = hypervisor.port(port["id"])
    assert shown["binding"] == {"dpid": hypervisor.dpid(br1), "interface": tap}
    assert (shown["binding_source"], shown["binding_conflict"]) == ("ovsdb", None)
    wait_until(lambda: hypervisor.owned_in_ports(br1, port["id"]) == {ofport(tap)}, timeout=10,
               what="the port's flows on br1, for the tap's ofport")

    ovs.vsctl("del-port", br1, tap, "--", "add-port", br2, tap, "--", "set", "interface", tap, "type=internal",
              f"external_ids:iface-id={port['id']}")  # live migration to another bridge, in one transaction
    subprocess.run(["ip", "link", "set", "dev", tap, "up"], check=True)
    wait_until(lambda: hypervisor.port(port["id"])["binding"] == {"dpid": hypervisor.dpid(br2), "interface": tap},
               timeout=20, what="the binding moved to br2")
    wait_until(lambda: hypervisor.port(port["id"])["status"] == "ACTIVE", timeout=20, what="port ACTIVE on br2")
    wait_until(lambda: hypervisor.owned_in_ports(br2, port["id"]) == {ofport(tap)}
               and not hypervisor.owned_in_ports(br1, port["id"]), timeout=10, what="the port's flows moved")

    hypervisor.plug(br2, twin, "vm1")  # a second interface claims it (by name): refused, reported
    wait_until(lambda: hypervisor.port(port["id"])["binding_conflict"] is not None, timeout=20,
               what="the duplicate claim reported")
    shown = hypervisor.port(port["id"])
    assert shown["binding"]["interface"] == tap  # the interface it had keeps it
    assert f"interface {twin} of switch {hypervisor.dpid(br2)} claims it too" in shown["binding_conflict"]
    assert hypervisor.owned_in_ports(br2, port["id"]) == {ofport(tap)}

    ovs.vsctl("del-port", br2, tap)  # the first goes: the other claim takes over
    wait_until(lambda: (hypervisor.port(port["id"])["binding"] or {}).get("interface") == twin, timeout=20,
               what="the remaining claim attached")
    wait_until(lambda: hypervisor.owned_in_ports(br2, port["id"]) == {ofport(twin)}, timeout=10,
               what="the port's flows for the remaining interface")

    ovs.vsctl("del-port", br2, twin)
    wait_until(lambda: [hypervisor.port(port["id"])[key] for key in ("status", "binding", "binding_source",
                                                                     "binding_conflict")] == ["DOWN", None, None, None],
               timeout=20, what="port DOWN and unbound")
    assert not hypervisor.owned_in_ports(br2, port["id"])


def test_an_explicit_binding_wins_over_ovsdb(hypervisor: Hypervisor) -> None:
    assert hypervisor.attach(*hypervisor.bridges).returncode == 0
    api = hypervisor.api
    wait_until(lambda: api.get("/health")["switches"] == 2, timeout=20, what="both bridges connected")
    br1, _ = hypervisor.bridges
    tap, other = f"{hypervisor.prefix}-tap1", f"{hypervisor.prefix}-tap3"
    network = api.create("networks", {"name": "vms", "cidr": "10.0.0.0/24"})
    port = api.create("ports", {"network_id": network["id"], "name": "vm1", "mac_address": "fa:16:3e:00:00:01",
                                "ip_address": "10.0.0.11"})
    hypervisor.plug(br1, other, "nobody")
    pinned = api.create("ports", {"network_id": network["id"], "name": "pinned", "mac_address": "fa:16:3e:00:00:02",
                                  "ip_address": "10.0.0.12",
                                  "binding": {"dpid": hypervisor.dpid(br1), "interface": tap}})
    hypervisor.plug(br1, tap, port["id"])  # it claims vm1, but the pinned port holds the interface
    wait_until(lambda: hypervisor.port(port["id"])["binding_conflict"] is not None, timeout=20,
               what="the refused claim reported")
    shown = hypervisor.port(port["id"])
    assert (shown["binding"], shown["status"]) == (None, "DOWN")
    assert f"ignored: it is bound to port {pinned['id']}" in shown["binding_conflict"]
    wait_until(lambda: hypervisor.port(pinned["id"])["status"] == "ACTIVE", timeout=20, what="pinned port ACTIVE")
    assert hypervisor.owned_in_ports(br1, pinned["id"]) == {ofport(tap)}
    assert not hypervisor.owned_in_ports(br1, port["id"])


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> list[str]:
    """The command lines of the README's OVSDB example (comments dropped)."""
    text = README.read_text()
    section = text[text.index("## Hypervisors: ports bound through OVSDB"):]
    block = section[section.index("```bash\n") + len("```bash\n"):section.index("```\n", section.index("```bash"))]
    return [line.split("   #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_example(hypervisor: Hypervisor) -> None:
    """Run as written, but for unique names and this test's controller (SDN_OF_LISTEN, SDN_URL)."""
    bridge, vm = f"{hypervisor.prefix}-br3", f"{hypervisor.prefix}-vm1"
    network = hypervisor.api.create("networks", {"name": "vms", "cidr": "10.0.0.0/24"})
    env = {**os.environ, "SDN_OF_LISTEN": f"{HOST}:{hypervisor.controller.of_port}",
           "SDN_URL": hypervisor.controller.api.removesuffix("/v1")}
    ids = {"NETWORK_ID": network["id"]}
    lines = readme_example()
    assert len(lines) == 6, lines

    def run(line: str) -> str:
        line = line.replace("br-int", bridge).replace("vm1", vm)
        for placeholder, value in ids.items():
            line = line.replace(placeholder, value)
        done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, timeout=60,
                              cwd=README.parent)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        return done.stdout

    for line in lines[:-1]:
        run(line)
        if "port create" in line:
            ids["PORT_ID"] = next(p["id"] for p in hypervisor.api.get("/ports") if p["name"] == vm)
    shown = wait_until(lambda: (port := json.loads(run(lines[-1])))["status"] == "ACTIVE" and port, timeout=20,
                       what="the port ACTIVE")
    assert shown["binding"] == {"dpid": hypervisor.dpid(bridge), "interface": vm}
    assert shown["binding_source"] == "ovsdb"
