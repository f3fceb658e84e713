"""Helpers shared by the benchmarks: iperf3 between Mininet hosts, `actions=NORMAL` as the baseline, output."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mininet.node import Host

from mininet_topos import ovs
from mininet_topos.reach import HostProcess, run_in

IPERF_PORT = 5201
VSWITCHD_PID = Path("/var/run/openvswitch/ovs-vswitchd.pid")


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


NORMAL = "actions=NORMAL\n"  # the baseline pipeline, as ovs-ofctl flow text


def snapshot_flows(bridge: str) -> str:
    """The bridge's flows as text that `load_flows` installs again (no counters, ages or table 0 ids)."""
    lines = ovs.ofctl("--no-stats", "dump-flows", bridge, timeout=60).splitlines()
    return "".join(f"{line.strip()}\n" for line in lines if line.strip() and not line.startswith("OFPST_"))


def load_flows(bridge: str, text: str) -> None:
    """Make `text` the bridge's whole flow table, atomically (one bundle)."""
    with tempfile.NamedTemporaryFile("w", suffix=".flows") as flows:
        flows.write(text)
        flows.flush()
        ovs.ofctl("--bundle", "replace-flows", bridge, flows.name, timeout=60)


def vswitchd_cpu_seconds() -> float:
    """CPU time (user + system, all threads) ovs-vswitchd has used so far."""
    stat = Path(f"/proc/{int(VSWITCHD_PID.read_text())}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0], utime [11], stime [12]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(client: Host, server: Host, ip: str, bridge: str, pipelines: dict[str, str], seconds: float,
               runs: int, baseline: str) -> dict[str, dict[str, Any]]:
    """iperf3 through each pipeline (flow text), in `runs` rounds that take the pipelines in turn. The bridge
    must have no controller.

    Per pipeline: the median bits/s and every run's; `ratio`, the median over rounds of its rate divided by
    the `baseline` pipeline's in the same round (seconds apart: load elsewhere on the machine that comes and
    goes cancels out better than in a ratio of medians); and the median CPU seconds ovs-vswitchd spent per GB
    carried (the whole daemon: other bridges' traffic counts too), which shows what a pipeline costs even
    when something else caps the throughput, with `cpu_ratio` as `ratio`.
    """
    bps: dict[str, list[float]] = {name: [] for name in pipelines}
    cpu: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(runs):
        for name, text in pipelines.items():
            load_flows(bridge, text)
            used = vswitchd_cpu_seconds()
            rate = iperf_bps(client, server, ip, seconds)
            used = vswitchd_cpu_seconds() - used
            bps[name].append(rate)
            cpu[name].append(used / (rate * seconds / 8 / 1e9))

    def per_round(samples: dict[str, list[float]], name: str) -> float:
        return statistics.median(mine / base for mine, base in zip(samples[name], samples[baseline], strict=True))

    return {name: {"bps": statistics.median(bps[name]), "ratio": per_round(bps, name), "runs": bps[name],
                   "vswitchd_cpu_s_per_gb": statistics.median(cpu[name]), "cpu_ratio": per_round(cpu, name),
                   "cpu_runs": cpu[name]}
            for name in pipelines}


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


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Columns left-aligned for the first, right-aligned for the rest, widths from the content."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))]
        print("  ".join(cells).rstrip(), flush=True)


def write_json(path: str | Path | None, results: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {path}")
