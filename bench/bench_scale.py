"""What one change costs as the fabric grows: incremental compilation, switch-local flows, delta sync.

A simulated fabric (bench/fabric.py: switches in a ring, tenants with security groups) is loaded into a
real store and a real Runtime whose switches are `NullSwitch`es: they take every message and confirm it
at once, so what is measured is the controller's own work (store, compile, encode, diff, send). Each
figure is reported against the same change on a small fabric measured in the same run:

- one port create, delete and update, one rule add and remove, at 5,000 and at 100 ports: the whole
  change (Runtime.apply: store, compile, diff, send, barrier) and its compile part, p50 and p99;
- rule creation as a group grows to 1,000 rules: the last 100 against the first 100;
- a full compile of every port, flows per switch, and the resident memory of this process.

    .venv/bin/python -m bench.bench_scale [--switches 20] [--ports 250] [--small 5] [--repeat 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import ipaddress
import json
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apps.compiler import Compiler
from apps.model import Policy, Port
from apps.topology import Topology
from bench.common import print_rows
from bench.fabric import build
from controller import ofwire
from controller.channel import Channel
from controller.runtime import Runtime
from controller.store import Store

_HEADER = struct.Struct("!BBHI")


class NullSwitch:
    """A switch that takes every message and confirms it at once: what remains is the controller's cost."""

    def __init__(self, dpid: str) -> None:
        self.channel = Channel(dpid, self.receive)

    def receive(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            _, kind, length, xid = _HEADER.unpack_from(data, pos)
            if kind == ofwire.OFPT_BARRIER_REQUEST:
                self.channel.on_barrier_reply(xid)
            elif kind == ofwire.OFPT_MULTIPART_REQUEST:
                self.channel.on_multipart_reply(xid, b"", more=False)
            pos += length


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(store: Store, policy: Policy) -> dict[str, str]:
    """The policy's networks, groups and ports created through the store, as the REST API would;
    returns the model ids -> store ids."""
    ids: dict[str, str] = {}
    for network in policy.networks:
        ids[network.id] = store.create_network({"name": network.name, "cidr": network.cidr,
                                                "segmentation_id": network.segmentation_id})["id"]
    for group in policy.security_groups:
        ids[group.id] = store.create_security_group({"name": group.name})["id"]
    for group in policy.security_groups:
        rules = [{k: v for k, v in dataclasses.asdict(rule).items()
                  if k in ("direction", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix")}
                 | {"remote_group_id": ids.get(rule.remote_group_id)} for rule in group.rules]
        store.replace_security_group_rules(ids[group.id], {"rules": rules})
    for port in policy.ports:
        ids[port.id] = store.create_port(_port_body(port, ids))["id"]
    return ids


def _port_body(port: Port, ids: dict[str, str]) -> dict[str, Any]:
    return {"network_id": ids[port.network_id], "name": port.name, "mac_address": port.mac_address,
            "ip_address": port.ip_address, "binding": {"dpid": port.dpid, "interface": port.interface},
            "security_group_ids": [ids[g] for g in port.security_group_ids]}


@dataclasses.dataclass
class Fabric:
    runtime: Runtime
    store: Store
    policy: Policy
    topology: Topology
    ids: dict[str, str]
    spare: list[tuple[str, str]]  # (dpid, interface) nobody is bound to, for new ports


def fabric(tmp: Path, switches: int, ports: int) -> Fabric:
    policy, topology = build(switches, ports + 4)
    placed = {(p.dpid, p.interface) for p in policy.ports[: switches * ports]}
    spare = [(sw.dpid, port.name) for sw in topology.switches for port in sw.ports[2:]
             if (sw.dpid, port.name) not in placed]
    policy = dataclasses.replace(policy, ports=policy.ports[: switches * ports])
    store = Store(f"sqlite:///{tmp}/sdn-{switches}x{ports}.db")
    ids = load(store, policy)
    runtime = Runtime(store, hold_down=0)
    for switch in topology.switches:
        runtime.switch_connected(NullSwitch(switch.dpid).channel, list(switch.ports))
    for link in topology.links:
        runtime.fabric.lldp_heard((link.a_dpid, link.a_port), (link.b_dpid, link.b_port))
        runtime.fabric.lldp_heard((link.b_dpid, link.b_port), (link.a_dpid, link.a_port))
    assert runtime.converge(timeout=60).ok
    return Fabric(runtime, store, policy, topology, ids, spare)


def measure(fab: Fabric, change: Callable[[int], Callable[[], object]], repeat: int) -> tuple[list, list]:
    """(whole change seconds, compile seconds) of `repeat` changes, the i-th made by change(i)."""
    whole, compiled = [], []
    for i in range(repeat):
        work = change(i)
        started = time.perf_counter()
        fab.runtime.apply(work)
        whole.append(time.perf_counter() - started)
        compiled.append(fab.runtime.stats["last_compile_seconds"])
    return whole, compiled


def operations(fab: Fabric, repeat: int) -> dict[str, tuple[list, list]]:
    store, ids = fab.store, fab.ids
    first = fab.policy.ports[0]
    network, groups = ids[first.network_id], [ids[g] for g in first.security_group_ids]
    group = groups[0]
    created: list[str] = []

    subnet = ipaddress.IPv4Network(next(n.cidr for n in fab.policy.networks if ids[n.id] == network))

    def create(i: int) -> Callable[[], object]:
        dpid, interface = fab.spare[i]
        body = {"network_id": network, "mac_address": f"02:ff:00:00:{i >> 8:02x}:{i & 0xFF:02x}",
                "ip_address": str(subnet.broadcast_address - 1 - i),  # the fabric fills subnets from the bottom
                "binding": {"dpid": dpid, "interface": interface}, "security_group_ids": groups}
        return lambda: created.append(store.create_port(body)["id"])

    def update(i: int) -> Callable[[], object]:
        return lambda: store.update_port(ids[first.id], {"mac_address": f"02:fe:00:00:{i >> 8:02x}:{i & 0xFF:02x}"})

    rules: list[str] = []

    def add_rule(i: int) -> Callable[[], object]:
        body = {"security_group_id": group, "direction": "ingress", "protocol": "tcp", "port_range_min": 2000 + i}
        return lambda: rules.append(store.create_security_group_rule(body)["id"])

    return {
        "port create": measure(fab, create, repeat),
        "port delete": measure(fab, lambda i: lambda: store.delete_port(created[i]), repeat),
        "port update (MAC)": measure(fab, update, repeat),
        "rule add (group of the port's network)": measure(fab, add_rule, repeat),
        "rule remove": measure(fab, lambda i: lambda: store.delete_security_group_rule(rules[i]), repeat),
    }


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


def rule_growth(fab: Fabric, n: int = 1000) -> tuple[float, float]:
    """Mean ms of a rule create for the first 100 and the last 100 of `n` rules in one group."""
    group = fab.ids[fab.policy.ports[0].security_group_ids[0]]
    times = measure(fab, lambda i: lambda: fab.store.create_security_group_rule(
        {"security_group_id": group, "direction": "ingress", "protocol": "udp", "port_range_min": 10000 + i}), n)[0]
    return statistics.mean(times[:100]) * 1000, statistics.mean(times[-100:]) * 1000


def full_compile(policy: Policy, topology: Topology) -> tuple[float, int]:
    gc.collect()
    started = time.process_time()
    compiler = Compiler()
    compiler.load(policy, topology)
    compiler.commit()
    return time.process_time() - started, sum(len(table) for table in compiler.tables.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_scale")
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--ports", type=int, default=250, help="VM ports per switch (large fabric)")
    parser.add_argument("--small", type=int, default=5, help="VM ports per switch (small fabric)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str]] = []
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for size in (args.small, args.ports):
            started = time.perf_counter()
            fab = fabric(Path(tmp), args.switches, size)
            print(f"loaded {args.switches} x {size} ports in {time.perf_counter() - started:.1f} s", flush=True)
            results[size] = operations(fab, args.repeat)
            if size == args.ports:
                seconds, flows = full_compile(fab.policy, fab.topology)
                figures["full_compile_seconds"] = seconds
                figures["flows"] = flows
                figures["rss_mib"] = rss_mib()
                first, last = rule_growth(fab)
                figures["rule_create_ms_first_100"], figures["rule_create_ms_last_100"] = first, last
        big, small = args.switches * args.ports, args.switches * args.small
        for name in results[args.ports]:
            whole, compiled = results[args.ports][name]
            small_whole = results[args.small][name][0]
            figures[name] = {"p50_ms": p(whole, 0.5), "p99_ms": p(whole, 0.99), "compile_p50_ms": p(compiled, 0.5),
                             f"p50_ms_at_{small}": p(small_whole, 0.5)}
            rows.append((f"{name}: {big} ports p50 / p99 (compile p50) vs {small} ports p50",
                         f"{p(whole, 0.5):.1f} / {p(whole, 0.99):.1f} ms ({p(compiled, 0.5):.1f}) vs "
                         f"{p(small_whole, 0.5):.1f} ms = {p(whole, 0.5) / p(small_whole, 0.5):.2f}x"))
    rows.append((f"full compile of {big} ports on {args.switches} switches (CPU)",
                 f"{figures['full_compile_seconds']:.2f} s, {figures['flows']} flows, "
                 f"{figures['flows'] / args.switches:.0f} per switch"))
    rows.append(("rule create, first 100 / last 100 of 1,000 in one group",
                 f"{figures['rule_create_ms_first_100']:.1f} / {figures['rule_create_ms_last_100']:.1f} ms = "
                 f"{figures['rule_create_ms_last_100'] / figures['rule_create_ms_first_100']:.2f}x"))
    rows.append(("resident memory with the large fabric loaded", f"{figures['rss_mib']:.0f} MiB"))
    print_rows(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
