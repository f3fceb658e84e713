"""The few Open vSwitch facts the harness needs, read through ovs-vsctl/ovs-appctl.

Everything here names bridges exactly: the machine is shared, so nothing is removed by pattern.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

VSWITCHD_LOG = Path("/var/log/openvswitch/ovs-vswitchd.log")
_START_MARK = "|ovs_numa|INFO|Discovered"  # first lines a starting ovs-vswitchd logs
_TSO_MARK = "|userspace_tso|INFO|Userspace TCP Segmentation Offloading support enabled"


class OvsNotRunning(RuntimeError):
    pass


def _run(argv: list[str], timeout: float) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 5)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip()}")
    return out.stdout.strip()


def vsctl(*args: str, timeout: float = 10) -> str:
    """Run ovs-vsctl with a database timeout so a dead ovsdb-server fails fast instead of hanging."""
    return _run(["ovs-vsctl", f"--timeout={max(1, int(timeout))}", *args], timeout)


def ofctl(*args: str, timeout: float = 10) -> str:
    """Run ovs-ofctl speaking OpenFlow 1.3 (the only version our bridges allow)."""
    return _run(["ovs-ofctl", "-O", "OpenFlow13", f"--timeout={max(1, int(timeout))}", *args], timeout)


def running() -> bool:
    """Both daemons answer: ovsdb-server alone accepts bridges that then never forward."""
    probes = (["ovs-vsctl", "-t", "2", "show"], ["ovs-appctl", "-t", "ovs-vswitchd", "version"])
    try:
        return all(subprocess.run(p, capture_output=True, timeout=5).returncode == 0 for p in probes)
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_running() -> None:
    if not running():
        raise OvsNotRunning("Open vSwitch is not running (ovsdb-server and ovs-vswitchd): run `make setup`")


def userspace_tso_active(log: Path = VSWITCHD_LOG) -> bool:
    """Whether the running ovs-vswitchd enabled userspace TSO.

    The setting is only read when the daemon starts, so the database value alone can lie; the log of
    the latest start is the witness. Without a readable start in the log, trust the database.
    """
    configured = vsctl("--if-exists", "get", "Open_vSwitch", ".",
                       "other_config:userspace-tso-enable").strip('"') == "true"
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return configured
    starts = [i for i, line in enumerate(lines) if _START_MARK in line]
    if not starts:
        return configured
    return any(_TSO_MARK in line for line in lines[starts[-1]:])


def bridges() -> list[str]:
    out = vsctl("list-br")
    return out.splitlines() if out else []


def delete_bridges(names: list[str] | tuple[str, ...]) -> None:
    """Delete exactly these bridges (missing ones are fine), in one transaction."""
    if not names:
        return
    args: list[str] = []
    for name in names:
        args += ["--", "--if-exists", "del-br", name]
    vsctl(*args)


def controller_connected(bridge: str) -> bool:
    """True when at least one controller of `bridge` reports is_connected."""
    uuids = vsctl("get", "Bridge", bridge, "controller").strip("[]")
    return any(vsctl("get", "Controller", u.strip(), "is_connected") == "true"
               for u in uuids.split(",") if u.strip())


def links_with_prefix(prefix: str) -> list[str]:
    """Root-namespace interfaces whose name starts with `prefix` (leftover check after cleanup)."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    names = (re.match(r"\d+: ([^:@]+)", line) for line in out.splitlines())
    return [m.group(1) for m in names if m and m.group(1).startswith(prefix)]


_BRIDGE_SETTINGS = ("datapath_type", "protocols", "fail_mode", "other_config")


def delete_bridge_keeping(bridge: str) -> Callable[[], None]:
    """Delete `bridge` (its flows, meters and groups go with it); returns what adds it back as it was: datapath type,
    protocols, fail mode, other_config (the datapath id), controllers, and ports by name with the ofports they had
    (so the flows the controller puts back can be compared with those it had installed). Two transactions, as an
    operator's script would do it: one that removes and one that adds the bridge anew."""
    settings = [f"{column}={vsctl('get', 'Bridge', bridge, column)}" for column in _BRIDGE_SETTINGS]
    controllers = vsctl("get-controller", bridge).split()
    ports = {port: vsctl("get", "Interface", port, "ofport") for port in vsctl("list-ports", bridge).split()}
    vsctl("del-br", bridge)

    def add_back() -> None:
        args = ["add-br", bridge, "--", "set", "Bridge", bridge, *settings]
        for port, ofport in ports.items():
            args += ["--", "add-port", bridge, port, "--", "set", "Interface", port, f"ofport_request={ofport}"]
        vsctl(*args)
        vsctl("set-controller", bridge, *controllers)

    return add_back


_OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"


def stop_vswitchd() -> None:
    """Stop ovs-vswitchd alone (not `ovs-ctl restart`, which saves and restores the flows): every bridge of the
    machine stops forwarding, its flows are lost; the bridges stay in OVSDB."""
    subprocess.run([_OVS_CTL, "stop", "--no-ovsdb-server"], check=True, capture_output=True, timeout=60)


def start_vswitchd() -> None:
    """Start ovs-vswitchd as scripts/setup.sh does (userspace TSO stays on: it is in OVSDB)."""
    subprocess.run([_OVS_CTL, "start", "--system-id=random", "--no-ovsdb-server"], check=True, capture_output=True,
                   timeout=60)
