"""Helpers shared by the benchmarks: iperf3 between Mininet hosts, `actions=NORMAL` as the baseline, output."""

from __future__ import annotations

import json
from collections.abc import Iterable

from mininet.node import Host

from mininet_topos import ovs
from mininet_topos.reach import HostProcess, run_in

IPERF_PORT = 5201


def iperf_bps(client: Host, server: Host, ip: str, seconds: float, port: int = IPERF_PORT) -> float:
    """Bits per second the server received in one iperf3 TCP run of `seconds` from `client` to `ip`."""
    srv = HostProcess()
    srv.spawn(server, ["stdbuf", "-oL", "iperf3", "-s", "-1", "-p", str(port)])  # line-buffered: "listening" now
    try:
        while "listening" not in (line := srv.line(10) or ""):
            if not line:
                raise RuntimeError("iperf3 server did not start")
        code, out = run_in(client, ["iperf3", "-c", ip, "-p", str(port), "-t", f"{seconds:g}", "-J"], seconds + 30)
        if code != 0:
            raise RuntimeError(f"iperf3 from {client.name} to {ip}:{port} failed: {out[-500:]}")
        return json.loads(out)["end"]["sum_received"]["bits_per_second"]
    finally:
        srv.terminate()


def use_normal(bridges: Iterable[str]) -> None:
    """Same bridges and hosts, the controller's flows replaced by one `actions=NORMAL` flow."""
    for bridge in bridges:
        ovs.vsctl("del-controller", bridge)
        ovs.ofctl("del-flows", bridge)
        ovs.ofctl("add-flow", bridge, "actions=NORMAL")


def print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
