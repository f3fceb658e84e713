"""Security-group benchmarks, each against a baseline measured in the same run.

- flows and compile time for 10/100/1,000 ports in one remote group with 5 rules, against the
  flow count a cross-product (ports x members x rules) scheme would need;
- latency from a REST rule change returning to the rule being enforced, probed with real TCP
  connections (p50/p99 over --changes changes). The probe is part of the figure (a refused probe
  waits out its 0.2 s timeout), so the count of changes the very first probe already saw is the
  telling number;
- iperf3 TCP throughput through the security-group pipeline, against `actions=NORMAL` on the same
  bridge and hosts.

    .venv/bin/python -m bench.bench_security_groups [--changes 100] [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from apps.compiler import compile_all
from apps.model import Network, Policy, Port, SecurityGroup, SecurityGroupRule, with_profiles
from apps.topology import Switch, SwitchPort, Topology
from bench.common import iperf_bps, print_rows, use_normal
from mininet_topos.control import ControllerProcess
from mininet_topos.launcher import raise_on_sigterm, random_prefix, running
from mininet_topos.reach import EchoServer, connect
from mininet_topos.rest import Api, register

DPID = "0000000000000001"


def bench_flows() -> list[tuple[str, str]]:
    rows = []
    group = SecurityGroup("g", "g", tuple(SecurityGroupRule(f"r{i}", "g", "ingress", "tcp", 1000 * i, 1000 * i + 99,
                                                            remote_group_id="g", key=i + 1) for i in range(5)))
    network = Network("n", "n", "10.0.0.0/16", "10.0.0.1", 10)
    for n in (10, 100, 1000):
        ports = with_profiles(Port(f"p{i}", "n", "", f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
                                   f"10.0.{i // 250}.{i % 250 + 2}", DPID, f"v{i}", True, ("g",), i + 1)
                              for i in range(n))
        topology = Topology((Switch(DPID, tuple(SwitchPort(f"v{i}", i + 1, "02:00:00:00:00:01") for i in range(n))),))
        started = time.perf_counter()
        flows = compile_all(Policy((network,), ports, (group,)), topology)[DPID]
        seconds = time.perf_counter() - started
        sg = sum(f.table in ("egress_ct", "ingress_ct", "egress_acl", "ingress_acl") for f in flows.values())
        cross = n * n * 5
        rows.append((f"SG flows, {n:,} ports x 5 remote-group rules",
                     f"{sg:,} flows ({sg / n:.1f}/port) in {seconds * 1000:.0f} ms; cross product {cross:,} "
                     f"= {cross / sg:,.0f}x more"))
    return rows


def _enforced_after(check, timeout: float = 10.0) -> tuple[float, int]:
    """Seconds until `check` holds, and how many probes that took (1: the first probe saw the change)."""
    started = time.perf_counter()
    probes = 1
    while not check():
        probes += 1
        if time.perf_counter() - started > timeout:
            raise TimeoutError("rule change never took effect")
    return time.perf_counter() - started, probes


def bench_live(changes: int, seconds: float) -> list[tuple[str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as state, ControllerProcess(Path(state), log_level="warning") as ctl, \
            running("single", random_prefix(), ctl.of_address) as run:
        api = Api(ctl.api)
        reg = register(api, run.plan)
        group = api.create("security-groups", {"name": "bench"})["id"]
        api.patch(f"/ports/{reg.ports['a2']}", {"security_group_ids": [group]})
        a1, a2, ip2 = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip
        opened, closed = [], []
        with EchoServer(a2, tcp=7100):
            for _ in range(changes):
                rule = api.create("security-group-rules", {"security_group_id": group, "direction": "ingress",
                                                           "protocol": "tcp", "port_range_min": 7100,
                                                           "port_range_max": 7100})["id"]
                opened.append(_enforced_after(lambda: connect(a1, "tcp", ip2, 7100, timeout=0.2) is not None))
                api.delete(f"/security-group-rules/{rule}")
                closed.append(_enforced_after(lambda: connect(a1, "tcp", ip2, 7100, timeout=0.2) is None))
        for name, samples in (("opened", opened), ("closed", closed)):
            q = statistics.quantiles([seconds for seconds, _ in samples], n=100)
            first = sum(probes == 1 for _, probes in samples)
            rows.append((f"REST return -> rule {name} (one probe incl.)",
                         f"p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms; the first probe already saw "
                         f"the change in {first}/{len(samples)}"))
        api.create("security-group-rules", {"security_group_id": group, "direction": "ingress",
                                            "protocol": "tcp", "port_range_min": 5201, "port_range_max": 5201})
        sg_rate = iperf_bps(a1, a2, ip2, seconds)
        use_normal(run.plan.bridges)
        normal_rate = iperf_bps(a1, a2, ip2, seconds)
        rows.append(("iperf3 TCP through SG pipeline", f"{sg_rate / 1e9:.2f} Gbit/s vs NORMAL {normal_rate / 1e9:.2f} "
                                                       f"Gbit/s = {sg_rate / normal_rate:.2f}x"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    raise_on_sigterm()  # a timeout's SIGTERM still runs the cleanup of the network and the controller
    rows = bench_flows() + bench_live(args.changes, args.seconds)
    print_rows(rows)


if __name__ == "__main__":
    main()
