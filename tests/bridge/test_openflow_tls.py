"""OpenFlow over TLS on a real bridge: certificates made with the README's ovs-pki commands; a switch whose
certificate the controller's CA did not sign is refused, one whose certificate it signed gets its flows.

`ovs-vsctl set-ssl` is global to the OVS instance: the test puts back the SSL settings it found (other
tests' tcp: controllers are unaffected by them)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mininet_topos import ovs
from mininet_topos.control import ControllerProcess
from mininet_topos.rest import Api

README = Path(__file__).resolve().parents[2] / "README.md"
BRIDGE = f"tls{os.getpid() % 100000}"


def readme_pki_commands() -> list[list[str]]:
    """The `ovs-pki` lines of the README's TLS section, as argv lists."""
    section = README.read_text().split("### OpenFlow over TLS", 1)[1].split("\n#", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in section.splitlines() if line.startswith("ovs-pki ")]
    assert len(lines) == 3, lines
    return [shlex.split(line) for line in lines]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the README's PKI and certificates, plus `bad-*.pem`: a switch certificate signed by
    another PKI's switch CA."""
    directory = tmp_path_factory.mktemp("pki")
    commands = [*readme_pki_commands(), ["ovs-pki", "--dir=other", "init"],
                ["ovs-pki", "--dir=other", "req+sign", "bad", "switch"]]
    for argv in commands:
        subprocess.run(argv, cwd=directory, check=True, capture_output=True, timeout=60)
    return directory


@pytest.fixture
def ovs_ssl() -> Iterator[Callable[[Path, Path, Path], None]]:
    """set-ssl for this test; the SSL settings found before are put back afterwards, whatever happened."""
    found = dict(re.findall(r"^([^:]+): (.*)$", ovs.vsctl("get-ssl"), re.MULTILINE))

    def set_ssl(key: Path, cert: Path, ca: Path) -> None:
        ovs.vsctl("set-ssl", str(key), str(cert), str(ca))

    try:
        yield set_ssl
    finally:
        if found:
            bootstrap = ["--bootstrap"] if found.get("Bootstrap") == "true" else []
            ovs.vsctl("--", *bootstrap, "set-ssl", found["Private key"], found["Certificate"], found["CA Certificate"])
        else:
            ovs.vsctl("del-ssl")


@pytest.fixture
def controller(tmp_path: Path, pki: Path) -> Iterator[ControllerProcess]:
    tls = ["--of-tls-cert", str(pki / "ctl-cert.pem"), "--of-tls-key", str(pki / "ctl-privkey.pem"),
           "--of-tls-ca", str(pki / "pki/switchca/cacert.pem")]
    with ControllerProcess(tmp_path / "controller", log_level="info", extra_args=tuple(tls)) as process:
        yield process


@pytest.fixture
def bridge(controller: ControllerProcess) -> Iterator[str]:
    """A netdev bridge pointed at the controller with ssl:, deleted afterwards."""
    host, port = controller.of_address
    try:
        ovs.vsctl("--", "--if-exists", "del-br", BRIDGE, "--", "add-br", BRIDGE,
                  "--", "set", "bridge", BRIDGE, "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure",
                  "--", "set-controller", BRIDGE, f"ssl:{host}:{port}")
        yield BRIDGE
    finally:
        ovs.delete_bridges([BRIDGE])


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def refusals(bridge: str, port: int) -> int:
    """How many times ovs-vswitchd logged a failed or dropped connection of `bridge` to the controller."""
    log = ovs.VSWITCHD_LOG.read_text(errors="replace")
    return len(re.findall(rf"{bridge}<->ssl:127\.0\.0\.1:{port}: connection (?:failed|dropped)", log))


def flows(bridge: str) -> list[str]:
    return [line for line in ovs.ofctl("-O", "OpenFlow13", "dump-flows", bridge).splitlines()
            if "actions=" in line]


def test_a_switch_certificate_from_another_ca_is_refused_and_the_right_one_gets_its_flows(
    pki: Path, ovs_ssl: Callable[[Path, Path, Path], None], controller: ControllerProcess, bridge: str
) -> None:
    port = controller.of_port
    api = Api(controller.api)
    controller_ca = pki / "pki/controllerca/cacert.pem"
    before = refusals(bridge, port)
    ovs_ssl(pki / "bad-privkey.pem", pki / "bad-cert.pem", controller_ca)
    wait_for(lambda: refusals(bridge, port) >= before + 2, 30, "two refused attempts of the wrong certificate")
    assert not ovs.controller_connected(bridge)
    assert api.get("/switches") == [] and flows(bridge) == []

    ovs_ssl(pki / "sw-privkey.pem", pki / "sw-cert.pem", controller_ca)  # the control: the same bridge, signed
    wait_for(lambda: ovs.controller_connected(bridge), 30, "the bridge connected with its signed certificate")
    wait_for(lambda: [switch["connected"] for switch in api.get("/switches")] == [True], 30, "the switch known")
    wait_for(lambda: flows(bridge), 30, "flows installed over TLS")
