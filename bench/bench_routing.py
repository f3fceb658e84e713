"""Routing benchmarks on the `external` topology, each against a baseline measured in the same run.

- iperf3 TCP through east-west routing (a1 on s2 -> c1 on s3, router r) against the same switches on one
  network (a1 -> a2, s2 -> s3); through SNAT (a1 on s2 -> the upstream host on s1's uplink) and through a
  floating IP (the upstream -> a1's floating IP) against one network along the same switches (a1 -> a3, s2 -> s1).
  Rounds take every path in turn; a ratio is the median over rounds of the path's rate over its baseline's in
  that round;
- 1,000 short TCP connections (connect, one echo, close) through SNAT (a1 -> upstream) against the same without
  NAT (a1 -> a3), connections per second;
- REST attach of a floating IP -> the first packet through it: a sender on the upstream host tries a UDP echo
  from a1 every 2 ms; time from the PATCH being sent to the first echo (p50/p99 over --attaches attaches), and
  the PATCH's own duration.

Needs the routing and NAT flows in the controller: without them it says which path did not answer and exits 1.

    .venv/bin/python -m bench.bench_routing [--seconds 3] [--runs 3] [--connections 1000] [--attaches 20]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import iperf_bps, print_table, write_json
from mininet_topos.control import ControllerProcess
from mininet_topos.launcher import Running, raise_on_sigterm, random_prefix, running
from mininet_topos.reach import PROBE, EchoServer, HostProcess, connect, run_in, wait_until
from mininet_topos.rest import (
    Api,
    Registration,
    add_router_interface,
    attach_floating_ip,
    create_floating_ip,
    create_router,
    register,
    router_gateway_ip,
)

ECHO = 5001
CONVERGE = 10.0


class Unavailable(RuntimeError):
    """A path the bench needs does not carry traffic (e.g. no routing flows yet)."""


def open_group(api: Api, reg: Registration) -> None:
    """Every VM port in one group letting any TCP, UDP and ICMP in: the bench measures paths, not rules."""
    group = api.create("security-groups", {"name": "bench-open"})["id"]
    for protocol in ("tcp", "udp", "icmp"):
        api.create("security-group-rules", {"security_group_id": group, "direction": "ingress",
                                            "protocol": protocol})
    for port in reg.ports.values():
        api.patch(f"/ports/{port}", {"security_group_ids": [group]})


def require(run: Running, src: str, ip: str, what: str, proto: str = "tcp") -> None:
    """`src` gets a TCP echo from `ip` (an EchoServer must be there) within CONVERGE s, else Unavailable."""
    try:
        wait_until(lambda: connect(run.host(src), proto, ip, ECHO, timeout=1) is not None, CONVERGE, what)
    except TimeoutError:
        raise Unavailable(f"{what}: {src} -> {ip}:{ECHO} did not answer within {CONVERGE:g} s (are the routing "
                          "and NAT flows in this controller yet?)") from None


def _quantiles(samples: list[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return samples[0], samples[0]
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49], q[98]


def bench_throughput(run: Running, paths: dict[str, tuple[str, str, str]], seconds: float,
                     runs: int) -> dict[str, Any]:
    """paths: name -> (client label, server label, server address as the client reaches it)."""
    bps: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(runs):
        for name, (client, server, ip) in paths.items():
            bps[name].append(iperf_bps(run.host(client), run.host(server), ip, seconds))
    return {name: {"bps": statistics.median(rates), "runs": rates} for name, rates in bps.items()}


def ratio(results: dict[str, Any], name: str, baseline: str) -> float:
    return statistics.median(mine / base for mine, base in
                             zip(results[name]["runs"], results[baseline]["runs"], strict=True))


def bench_connections(run: Running, client: str, ip: str, count: int, allowed_failures: int = 0) -> dict[str, Any]:
    code, out = run_in(run.host(client), [*PROBE, "burst", "tcp", ip, str(ECHO), "--count", str(count)],
                       timeout=count * 2 + 60)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise Unavailable(f"burst of {count} connections {client} -> {ip} printed nothing: {out[-300:]}")
    result = json.loads(lines[-1])
    if result["failed"] > allowed_failures:
        raise Unavailable(f"{result['failed']} of {count} connections {client} -> {ip} failed: {result['errors']}")
    result["per_s"] = result["ok"] / result["seconds"]
    return result


def bench_attach(api: Api, run: Running, ext_id: str, port_id: str, attaches: int) -> dict[str, Any]:
    """Floating IP attach -> first echo through it, `attaches` times (detached in between)."""
    fip = create_floating_ip(api, ext_id)
    address = fip["floating_ip_address"]
    first_packet, rest_call = [], []
    # The upstream resolves the floating IP by ARP: retry every 10 ms (its own namespace), not Linux's 1 s, so
    # that the figure is the controller's, not the neighbour table's back-off.
    upstream = run.host("upstream")
    run_in(upstream, ["sysctl", "-qw", f"net.ipv4.neigh.{upstream.defaultIntf().name}.retrans_time_ms=10"], 10)
    with EchoServer(run.host("a1"), udp=ECHO):
        for i in range(attaches):
            sender = HostProcess()
            sender.spawn(run.host("upstream"), [*PROBE, "first", "udp", address, str(ECHO), "--interval", "0.002",
                                                "--timeout", "15", "--message", f"attach-{i}"])
            try:
                if sender.line(10) != "sending":
                    raise Unavailable("the sender on the upstream host did not start")
                sent = time.time()
                attach_floating_ip(api, fip["id"], port_id)
                returned = time.time()
                line = sender.line(20) or ""
                if not line.startswith("first "):
                    raise Unavailable(f"attach {i + 1}: no echo through floating IP {address} ({line or 'no output'})")
                first_packet.append(float(line.split()[1]) - sent)
                rest_call.append(returned - sent)
            finally:
                sender.terminate()
            attach_floating_ip(api, fip["id"], None)
            # Detached means shut: the next round starts from a floating IP that answers nothing.
            wait_until(lambda: connect(run.host("upstream"), "udp", address, ECHO, timeout=0.3) is None, CONVERGE,
                       f"floating IP {address} to stop answering once detached")
    api.delete(f"/floating-ips/{fip['id']}")
    return {"first_packet_s": first_packet, "rest_s": rest_call}


def bench(args: argparse.Namespace) -> tuple[list[tuple[str, str, str]], dict[str, Any], list[str]]:
    rows: list[tuple[str, str, str]] = []
    results: dict[str, Any] = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as state, ControllerProcess(Path(state), log_level="warning") as ctl, \
            running("external", random_prefix(), ctl.of_address) as run:
        api = Api(ctl.api)
        reg = register(api, run.plan)
        assert reg.external is not None
        open_group(api, reg)
        wait_until(lambda: sum(len(s["links"]) for s in api.get("/switches")) == 2 * len(run.plan.links), 15,
                   "LLDP to find every link")
        router = create_router(api, "bench", reg.external)
        for key in ("a", "c"):
            add_router_interface(api, router["id"], reg.networks[key])
        gateway = router_gateway_ip(api.get(f"/routers/{router['id']}"))
        mapped = create_floating_ip(api, reg.external, reg.ports["a1"])
        fip = mapped["floating_ip_address"]
        ip = {v.label: v.ip for v in run.plan.vms} | {"upstream": run.plan.external.upstream_ip}  # type: ignore

        # Which paths carry traffic at all (the baselines must; the rest needs the routing flows).
        servers = [EchoServer(run.host(label), tcp=ECHO, udp=ECHO) for label in ("a1", "a2", "a3", "c1", "upstream")]
        for server in servers:
            server.__enter__()
        try:
            require(run, "a1", ip["a2"], "baseline: one network, s2 -> s3")
            require(run, "a1", ip["a3"], "baseline: one network, s2 -> s1")
            checks = {"routed": ("a1", ip["c1"], "east-west through the router"),
                      "snat": ("a2", ip["upstream"], f"SNAT through {gateway}"),   # a1 has the floating IP
                      "fip": ("upstream", fip, f"floating IP {fip} -> a1")}
            working = set()
            for name, (src, dst, what) in checks.items():
                try:
                    require(run, src, dst, what)
                    working.add(name)
                except Unavailable as exc:
                    problems.append(str(exc))
        finally:
            for server in servers:
                server.stop()

        base_ew, base_ns = "one network, s2 -> s3 (a1 -> a2)", "one network, s3 -> s2 -> s1 (a2 -> a3)"
        candidates = [  # name, client, server, address, what it is compared with, the check it needs
            (base_ew, "a1", "a2", ip["a2"], None, None),
            (base_ns, "a2", "a3", ip["a3"], None, None),
            ("east-west, s2 -> s3 (a1 -> c1)", "a1", "c1", ip["c1"], base_ew, "routed"),
            ("SNAT, s3 -> s2 -> s1 -> uplink (a2 -> upstream)", "a2", "upstream", ip["upstream"], base_ns, "snat"),
            ("floating IP, uplink -> s1 -> s2 (upstream -> a1)", "upstream", "a1", fip, base_ns, "fip"),
        ]
        chosen = [c for c in candidates if c[5] is None or c[5] in working]
        tput = bench_throughput(run, {name: (client, server, address) for name, client, server, address, _, _
                                      in chosen}, args.seconds, args.runs)
        results["iperf3"] = tput
        for name, _, _, _, base, _ in chosen:
            vs = f"{ratio(tput, name, base):.2f}x {base}" if base else "baseline"
            rows.append((f"iperf3 TCP: {name}", f"{tput[name]['bps'] / 1e9:.2f} Gbit/s", vs))

        with EchoServer(run.host("a3"), tcp=ECHO), EchoServer(run.host("upstream"), tcp=ECHO):
            plain = bench_connections(run, "a2", ip["a3"], args.connections)
            results["connections_plain"] = plain
            rows.append((f"{args.connections:,} short TCP connections, no NAT (a2 -> a3)",
                         f"{plain['per_s']:,.0f}/s", "baseline"))
            if "snat" in working:
                try:
                    snat = bench_connections(run, "a2", ip["upstream"], args.connections)
                    results["connections_snat"] = snat
                    rows.append((f"{args.connections:,} short TCP connections through SNAT (a2 -> upstream)",
                                 f"{snat['per_s']:,.0f}/s", f"{snat['per_s'] / plain['per_s']:.2f}x no NAT"))
                except Unavailable as exc:
                    problems.append(str(exc))

        if "fip" in working:
            api.delete(f"/floating-ips/{mapped['id']}")   # a1 may have one floating IP: the timed one
            try:
                attach = bench_attach(api, run, reg.external, reg.ports["a1"], args.attaches)
                results["attach"] = attach
                p50, p99 = _quantiles(attach["first_packet_s"])
                r50, r99 = _quantiles(attach["rest_s"])
                rows.append((f"floating IP attach -> first packet ({args.attaches} attaches)",
                             f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
                             f"PATCH itself p50 {r50 * 1000:.0f} ms, p99 {r99 * 1000:.0f} ms"))
            except (Unavailable, TimeoutError) as exc:
                problems.append(str(exc))
    return rows, results, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="each iperf3 run")
    parser.add_argument("--runs", type=int, default=3, help="rounds over every path")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--attaches", type=int, default=20)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    raise_on_sigterm()  # a timeout's SIGTERM still runs the cleanup of the network and the controller
    started = time.monotonic()
    try:
        rows, results, problems = bench(args)
    except (Unavailable, TimeoutError) as exc:
        print(f"bench_routing: {exc}", file=sys.stderr)
        return 1
    print_table(("measurement", "figure", "against the same run's baseline"), rows)
    print(f"took {time.monotonic() - started:.0f} s")
    results["problems"] = problems
    write_json(args.json, results)
    for problem in problems:
        print(f"bench_routing: not measured: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
