"""Load-balancer benchmarks on the `external` topology, each against a baseline measured in the same run.

- iperf3 TCP from a1 (s2) through a VIP whose one member is a2 (s3) against a1 straight to a2 (rounds take both
  paths in turn; the ratio is the median over rounds);
- short TCP connections (connect, one echo, close) from a1 through a VIP over a2 and a3 against a1 straight to a2,
  connections per second (rounds take both paths in turn; the ratio is the median over rounds; each burst also
  reports its slowest connections and the ones that timed out, up to 1%);
- failover: a health-monitored balancer (tcp, interval 1 s, timeout 1 s, 2 retries: the promise is 3 s) over a2 and
  a3; a3's server is killed `--trials` times: seconds until its member shows OFFLINE, and until it is ONLINE again
  once its server is back (medians);
- probe cost: the controller's CPU seconds per wall second with 100 monitored members (a2 at 100 ports, interval
  1 s) against the same controller with the monitor removed.

    .venv/bin/python -m bench.bench_load_balancing [--seconds 3] [--runs 5] [--connections 1000] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_routing import ECHO, Unavailable, bench_connections, bench_throughput, open_group, ratio, require
from bench.common import IPERF_PORT, print_table, write_json
from mininet_topos.control import ControllerProcess
from mininet_topos.launcher import Running, raise_on_sigterm, random_prefix, running
from mininet_topos.reach import EchoServer, wait_until
from mininet_topos.rest import Api, Registration, register

STREAM_VIP, ECHO_VIP = "10.0.0.100", "10.0.0.101"
# The VIP's members serve the echo at another port than the baseline's a2:ECHO. A client may reuse, straight to
# a2:ECHO, a source port its connection through the VIP had (its kernel allows it: another destination); while that
# connection lingers in the balancer's zone (TIME_WAIT), a2's SYN-ACK passes the zone and leaves translated to the
# VIP, and the direct connection times out (5 of 500 in a burst after a VIP burst to the same member port, none to
# another port): in rounds, direct bursts after VIP bursts measured that, not the path.
ECHO_BACKEND = ECHO + 2


def bench(args: argparse.Namespace) -> tuple[list[tuple[str, str, str]], dict]:
    rows: list[tuple[str, str, str]] = []
    results: dict = {}
    with tempfile.TemporaryDirectory() as state, ControllerProcess(Path(state), log_level="warning") as ctl, \
            running("external", random_prefix(), ctl.of_address) as run:
        api = Api(ctl.api)
        reg = register(api, run.plan)
        open_group(api, reg)
        wait_until(lambda: sum(len(s["links"]) for s in api.get("/switches")) == 2 * len(run.plan.links), 15,
                   "LLDP to find every link")
        ip = {v.label: v.ip for v in run.plan.vms}
        for vip, port, backend, members in ((STREAM_VIP, IPERF_PORT, IPERF_PORT, ("a2",)),
                                            (ECHO_VIP, ECHO, ECHO_BACKEND, ("a2", "a3"))):
            api.create("load-balancers", {"name": f"bench-{port}", "network_id": reg.networks["a"],
                                          "vip_address": vip, "protocol": "tcp", "port": port, "algorithm": "hash",
                                          "members": [{"ip_address": ip[m], "port": backend} for m in members]})
        with EchoServer(run.host("a2"), tcp=ECHO), EchoServer(run.host("a2"), tcp=ECHO_BACKEND), \
                EchoServer(run.host("a3"), tcp=ECHO_BACKEND):
            require(run, "a1", ECHO_VIP, "the VIP over a2 and a3")
            direct, balanced = "a1 -> a2 (s2 -> s3)", "a1 -> VIP -> a2 (s2 -> s3)"
            tput = bench_throughput(run, {direct: ("a1", "a2", ip["a2"]), balanced: ("a1", "a2", STREAM_VIP)},
                                    args.seconds, args.runs)
            results["iperf3"] = tput
            rows += [(f"iperf3 TCP: {direct}", f"{tput[direct]['bps'] / 1e9:.2f} Gbit/s", "baseline"),
                     (f"iperf3 TCP: {balanced}", f"{tput[balanced]['bps'] / 1e9:.2f} Gbit/s",
                      f"{ratio(tput, balanced, direct):.2f}x straight to the member")]
            conns = connection_rounds(run, "a1", {"direct": ip["a2"], "vip": ECHO_VIP}, args.connections, args.runs)
            results["connections"] = conns
            rounds = [vip / direct for vip, direct in zip(conns["vip"]["runs"], conns["direct"]["runs"], strict=True)]
            rows += [(f"{args.connections:,} short TCP connections a1 -> a2 (median of {args.runs})",
                      f"{conns['direct']['per_s']:,.0f}/s", "baseline"),
                     (f"{args.connections:,} short TCP connections a1 -> VIP (a2, a3) (median of {args.runs})",
                      f"{conns['vip']['per_s']:,.0f}/s",
                      f"{ratio(conns, 'vip', 'direct'):.2f}x straight to a member (rounds {min(rounds):.2f}x-"
                      f"{max(rounds):.2f}x)"),
                     ("  their slowest: p99 / max / over 200 ms / failed, all bursts, a1 -> a2 | a1 -> VIP",
                      " | ".join(_slowest(conns[name]["bursts"]) for name in ("direct", "vip")), "")]
        results["failover"] = failover(api, run, reg, ip, args.trials)
        down, up = (statistics.median(results["failover"][key]) for key in ("offline_s", "online_s"))
        rows.append((f"member killed -> OFFLINE / back -> ONLINE (median of {args.trials})",
                     f"{down:.2f} s / {up:.2f} s", f"{down / BOUND:.2f}x the monitor's bound ({BOUND:g} s)"))
        results["probe_cpu"] = probe_cost(api, ctl, reg, ip)
        cost = results["probe_cpu"]
        rows.append(("controller CPU with 100 monitored members (interval 1 s)", f"{cost['monitored']:.3f} s/s",
                     f"{cost['monitored'] - cost['idle']:+.3f} s/s against no monitor ({cost['idle']:.3f})"))
    return rows, results


MONITOR = {"type": "tcp", "interval_s": 1, "timeout_s": 1, "max_retries": 2}
BOUND = MONITOR["interval_s"] * MONITOR["max_retries"] + MONITOR["timeout_s"]


def connection_rounds(run: Running, client: str, targets: dict[str, str], count: int, runs: int) -> dict:
    """Bursts of `count` short connections to each target in turn, `runs` rounds: one burst per path is one sample
    of a shared machine's noise, rounds taken in turn and their median ratio are not. Each target: its median rate,
    each round's rate, and its bursts (with their slowest connections and failures)."""
    bursts: dict[str, list[dict]] = {name: [] for name in targets}
    for _ in range(runs):
        for name, ip in targets.items():
            bursts[name].append(bench_connections(run, client, ip, count, allowed_failures=count // 100))
    return {name: {"per_s": statistics.median(b["per_s"] for b in found), "runs": [b["per_s"] for b in found],
                   "bursts": found} for name, found in bursts.items()}


def _slowest(bursts: list[dict]) -> str:
    return (f"{max(b['p99_ms'] for b in bursts):.1f} / {max(b['max_ms'] for b in bursts):.0f} ms / "
            f"{sum(b['over_200ms'] for b in bursts)} / {sum(b['failed'] for b in bursts)}")


def failover(api: Api, run: Running, reg: Registration, ip: dict[str, str], trials: int) -> dict:
    lb = api.create("load-balancers", {
        "name": "failover", "network_id": reg.networks["a"], "vip_address": "10.0.0.102", "protocol": "tcp",
        "port": ECHO + 1, "algorithm": "hash", "health_monitor": MONITOR,
        "members": [{"ip_address": ip[m], "port": ECHO + 1} for m in ("a2", "a3")]})
    member = lb["members"][1]["id"]

    def status() -> str:
        return api.get(f"/load-balancers/{lb['id']}/members/{member}")["status"]

    offline, online = [], []
    with EchoServer(run.host("a2"), tcp=ECHO + 1):
        for _ in range(trials):
            server = EchoServer(run.host("a3"), tcp=ECHO + 1)
            server.__enter__()
            wait_until(lambda: status() == "ONLINE", 10, "a3 ONLINE")
            killed = time.monotonic()
            server.stop()
            wait_until(lambda: status() == "OFFLINE", 30, "a3 OFFLINE")
            offline.append(time.monotonic() - killed)
            with EchoServer(run.host("a3"), tcp=ECHO + 1):
                back = time.monotonic()
                wait_until(lambda: status() == "ONLINE", 30, "a3 ONLINE again")
                online.append(time.monotonic() - back)
    api.delete(f"/load-balancers/{lb['id']}")
    return {"offline_s": offline, "online_s": online, "bound_s": BOUND}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def probe_cost(api: Api, ctl: ControllerProcess, reg: Registration, ip: dict[str, str], seconds: float = 20.0) -> dict:
    """CPU seconds per second of the controller, with 100 monitored members and after removing the monitor."""
    lb = api.create("load-balancers", {
        "name": "many", "network_id": reg.networks["a"], "vip_address": "10.0.0.104", "protocol": "tcp", "port": 7000,
        "algorithm": "hash", "health_monitor": MONITOR,
        "members": [{"ip_address": ip["a2"], "port": 6001 + n} for n in range(100)]})
    pid = ctl.pid
    assert pid is not None

    def rate() -> float:
        start, began = _cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)  # a measuring window, not a wait for a condition
        return (_cpu_seconds(pid) - start) / (time.monotonic() - began)

    monitored = rate()
    api.patch(f"/load-balancers/{lb['id']}", {"health_monitor": None})
    idle = rate()
    api.delete(f"/load-balancers/{lb['id']}")
    return {"monitored": monitored, "idle": idle, "members": 100, "window_s": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="each iperf3 run")
    parser.add_argument("--runs", type=int, default=5, help="rounds over both paths (iperf3 and connections)")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=5, help="failovers to take the median of")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    raise_on_sigterm()
    started = time.monotonic()
    try:
        rows, results = bench(args)
    except (Unavailable, TimeoutError) as exc:
        print(f"bench_load_balancing: {exc}", file=sys.stderr)
        return 1
    print_table(("measurement", "figure", "against the same run's baseline"), rows)
    print(f"took {time.monotonic() - started:.0f} s")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
