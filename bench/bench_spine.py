"""Spine benchmarks: flow install rate, resync readback+diff, compile time vs ports.

Every figure is reported next to a baseline measured in the same run on the same machine:
`ovs-ofctl --bundle add-flows` of the very same flows into the same bridge for installs,
a budget of 1 s for a 50k-flow resync, and 10 ports for compile scaling.

    .venv/bin/python -m bench.bench_spine [--flows 10000 50000] [--ports 10 100 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from apps.compiler import compile_all
from apps.flows import Flow, SetField, cookie, int_to_mac, match
from apps.model import Network, Policy, Port, with_profiles
from apps.pipeline import REG_NETWORK, REG_OUT_PORT, table_id
from apps.topology import Link, Switch, SwitchPort, Topology
from bench.common import print_rows
from controller.main import listen, start_openflow
from controller.runtime import Runtime
from controller.store import Store
from mininet_topos.launcher import raise_on_sigterm

BRIDGE = "sdnbench0"
DPID = "00000000000be0c4"


def synthetic_flows(n: int) -> dict[tuple, Flow]:
    """`n` distinct L2 lookups, the most common flow shape the compilers produce."""
    owner = cookie("isolation", "bench")
    flows = (Flow("l2_lookup", 100, match(**{REG_NETWORK: 1 + i // 4000}, eth_dst=int_to_mac(0x020000000000 + i)),
                  (SetField(REG_OUT_PORT, 1 + i % 48),), "port_out", owner) for i in range(n))
    return {f.key: f for f in flows}


def ofctl_text(flows: dict[tuple, Flow]) -> str:
    lines = []
    for f in flows.values():
        (_, mac, _), (_, net, _) = f.match
        lines.append(f"table={table_id(f.table)},priority={f.priority},cookie={f.cookie:#x},reg1={net},"
                     f"dl_dst={int_to_mac(mac)},actions=set_field:{f.actions[0].value}->reg2,"
                     f"goto_table:{table_id(f.goto)}")
    return "\n".join(lines) + "\n"


def ovs(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def flow_count() -> int:
    return sum("table=" in line for line in ovs("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", BRIDGE).splitlines())


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def bench_install(sizes: list[int]) -> list[tuple[str, str]]:
    rows = []
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    runtime = Runtime(Store("sqlite://"), hold_down=0)
    start_openflow(sock, "127.0.0.1").attach(runtime)
    ovs("ovs-vsctl", "--may-exist", "add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev",
        "protocols=OpenFlow13", "fail_mode=secure", f"other-config:datapath-id={DPID}")
    try:
        ovs("ovs-vsctl", "set-controller", BRIDGE, f"tcp:127.0.0.1:{port}")
        wait(lambda: runtime.fabric.channel(DPID) is not None, 30, "bridge never connected")
        channel = runtime.fabric.channel(DPID)
        programmer = runtime.programmer
        for n in sizes:
            flows = synthetic_flows(n)
            with tempfile.NamedTemporaryFile("w", suffix=".flows") as text:
                text.write(ofctl_text(flows))
                text.flush()
                programmer.sync(channel, {})  # empty the bridge through the programmer itself
                started = time.perf_counter()
                ovs("ovs-ofctl", "-O", "OpenFlow13", "--bundle", "add-flows", BRIDGE, text.name)
                ofctl = n / (time.perf_counter() - started)
            assert flow_count() == n, flow_count()
            programmer.forget(DPID)
            programmer.sync(channel, {})  # read back the ofctl flows and delete them
            assert flow_count() == 0
            started = time.perf_counter()
            result = programmer.sync(channel, flows)  # compile-side values -> encode -> diff -> bundle -> barrier
            ours = n / (time.perf_counter() - started)
            assert result.added == n and flow_count() == n
            rows.append((f"install {n:,} flows", f"{ours:,.0f}/s vs ovs-ofctl {ofctl:,.0f}/s = {ours / ofctl:.2f}x"))
            programmer.forget(DPID)
            started = time.perf_counter()
            result = programmer.sync(channel, flows)  # cold cache: read back everything, diff, send nothing
            resync = time.perf_counter() - started
            assert result.changes == 0
            rows.append((f"resync {n:,} flows (read back + diff)", f"{resync:.3f} s (target <= 1 s: "
                                                                  f"{resync / 1.0:.2f} of budget)"))
    finally:
        ovs("ovs-vsctl", "--if-exists", "del-br", BRIDGE)
    return rows


def policy_of(n_ports: int) -> tuple[Policy, Topology]:
    """`n_ports` VMs spread over 3 switches in a line, 10 tenant networks."""
    dpids = [f"{i:016x}" for i in (1, 2, 3)]
    per_switch = n_ports // 3 + 1
    switches = tuple(Switch(d, tuple(SwitchPort(f"v{i}", i, "02:00:00:00:00:01") for i in range(1, per_switch + 3)))
                     for d in dpids)
    links = (Link.between(dpids[0], per_switch + 1, dpids[1], per_switch + 1),
             Link.between(dpids[1], per_switch + 2, dpids[2], per_switch + 1))
    networks = tuple(Network(f"n{i}", f"n{i}", "10.0.0.0/16", "10.0.0.1", 100 + i) for i in range(10))
    ports = with_profiles(Port(f"p{i}", f"n{i % 10}", "", int_to_mac(0x020000000000 + i),
                               f"10.0.{i // 200}.{i % 200 + 2}", dpids[i % 3], f"v{i // 3 + 1}")
                          for i in range(n_ports))
    return Policy(networks, ports), Topology(switches, links)


def bench_compile(sizes: list[int]) -> list[tuple[str, str]]:
    rows = []
    baseline = None
    for n in sizes:
        policy, topology = policy_of(n)
        started = time.perf_counter()
        desired = compile_all(policy, topology)
        seconds = time.perf_counter() - started
        flows = sum(len(f) for f in desired.values())
        per_port = seconds / n
        baseline = baseline or per_port
        rows.append((f"compile {n:,} ports / 3 switches",
                     f"{seconds * 1000:.1f} ms, {flows:,} flows, "
                     f"{per_port / baseline:.2f}x the per-port time at {sizes[0]}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--ports", type=int, nargs="+", default=[10, 100, 1000])
    args = parser.parse_args()
    raise_on_sigterm()  # a timeout's SIGTERM still deletes the benchmark bridge
    rows = bench_compile(args.ports) + bench_install(args.flows)
    print_rows(rows)
    sys.stdout.flush()
    os._exit(0)  # os-ken's threads cannot be joined (as in controller.main): without this `make bench` stops here


if __name__ == "__main__":
    main()
