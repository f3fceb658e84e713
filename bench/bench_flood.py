"""REST latency while a VM floods the controller, against the same calls with no flood.

A real `sdn-controller` process and the `single` Mininet layout (one netdev bridge, four VMs), a router on tenant A's
network and a security group on every port. Three phases, each timing `--calls` rounds of a REST read
(`GET /v1/ports`) and a REST mutation (a security-group rule created, then deleted; each answered only once the
switch confirmed its flows):

- quiet: nothing else happens (the baseline);
- dropped flood: a1 sends UDP to an unknown MAC as fast as a raw socket goes; the switch drops it (the datapath
  and the host's CPU are as busy as in the next phase, the controller is not);
- controller flood: a1 sends UDP with TTL 1 to the router's MAC as fast, each one a time-exceeded packet-in held by
  the switch's `ttl_exceeded` meter.

p50 / p99 of each phase against the quiet one, and the packet-ins that reached the controller a second.

    .venv/bin/python -m bench.bench_flood [--calls 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from scapy.all import IP, UDP, Ether, Raw  # type: ignore[attr-defined]

from bench.bench_rest import percentile, timed
from bench.common import print_table, write_json
from mininet_topos.control import ControllerProcess
from mininet_topos.launcher import Running, random_prefix, running
from mininet_topos.reach import Flood
from mininet_topos.rest import Api, add_router_interface, create_router, register

TIME_EXCEEDED = 'sdn_packet_ins_total{kind="time_exceeded"}'


def phase(api: Api, group: str, calls: int) -> dict[str, list[float]]:
    """Seconds per call: `calls` reads and `calls` mutations (rule create, rule delete), interleaved."""
    times: dict[str, list[float]] = {"GET /v1/ports": [], "POST rule": [], "DELETE rule": []}
    for i in range(calls):
        times["GET /v1/ports"].append(timed(lambda: api.get("/ports")))
        rule: dict = {}
        body = {"security_group_id": group, "direction": "ingress", "protocol": "udp", "port_range_min": 40000 + i}
        times["POST rule"].append(timed(lambda body=body, rule=rule: rule.update(api.post("/security-group-rules",
                                                                                          body))))
        times["DELETE rule"].append(timed(lambda rule=rule: api.delete(f"/security-group-rules/{rule['id']}")))
    return times


def flooding(run: Running, frame: bytes, work: Callable[[], dict[str, list[float]]]) -> tuple[dict, float]:
    """`work()` while a1 floods `frame`: its result and the seconds it took."""
    with Flood(run.host("a1"), [frame], seconds=600) as flood:
        started = time.monotonic()
        result = work()
        elapsed = time.monotonic() - started
        if flood.proc is None or flood.proc.poll() is not None:
            raise RuntimeError("the flood ended before the calls")
    return result, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_flood")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, ControllerProcess(Path(tmp), log_level="warning") as controller, \
            running("single", random_prefix(), controller.of_address) as run:
        api = Api(controller.api)
        reg = register(api, run.plan)
        router = add_router_interface(api, create_router(api, "r")["id"], reg.networks["a"])
        group = api.post("/security-groups", {"name": "acl"})["id"]
        for port in reg.ports.values():
            api.patch(f"/ports/{port}", {"security_group_ids": [group]})
        a1, a2 = run.plan.vm("a1"), run.plan.vm("a2")

        def frame(eth_dst: str, ttl: int) -> bytes:
            return bytes(Ether(src=a1.mac, dst=eth_dst) / IP(src=a1.ip, dst=a2.ip, ttl=ttl) / UDP(sport=40000, dport=9)
                         / Raw(b"flood"))

        dropped, expiring = frame("fa:16:3e:99:99:99", 64), frame(router["mac_address"], 1)
        phase(api, group, 10)  # warm-up: connections, caches
        results = {"quiet": (phase(api, group, args.calls), 0.0)}
        for name, flood in (("dropped flood", dropped), ("controller flood", expiring)):
            before = api.metrics().get(TIME_EXCEEDED, 0.0)
            times, elapsed = flooding(run, flood, lambda: phase(api, group, args.calls))
            results[name] = (times, (api.metrics().get(TIME_EXCEEDED, 0.0) - before) / elapsed)
    quiet = results["quiet"][0]
    rows, report = [], {}
    for name, (times, packet_ins) in results.items():
        for call, seconds in times.items():
            p50, p99 = percentile(seconds, 0.5), percentile(seconds, 0.99)
            base50, base99 = percentile(quiet[call], 0.5), percentile(quiet[call], 0.99)
            rows.append((name, call, f"{p50:.1f} / {p99:.1f} ms", f"{p50 / base50:.2f}x / {p99 / base99:.2f}x",
                         f"{packet_ins:.0f}"))
            report[f"{name}: {call}"] = {"p50_ms": p50, "p99_ms": p99, "p50_ratio": p50 / base50,
                                         "p99_ratio": p99 / base99, "time_exceeded_packet_ins_per_s": packet_ins}
    print_table(("phase", "call", "p50 / p99", "vs quiet", "packet-ins/s"), rows)
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
