"""What each stage of our pipeline costs in TCP throughput, as ratios to `actions=NORMAL` on the same bridge.

One netdev bridge, iperf3 from a1 to a2 (our `single` layout), every pipeline measured in each of
--runs rounds that take the pipelines in turn (median reported), so that load elsewhere on the machine
spreads over all of them. Pipelines:

- NORMAL;
- ours, configured through the REST API, then its flows snapshotted and replayed without the
  controller: what the compiler makes of port security off (isolation only), an egress-only group
  on the sender (the receiver without port security: one filtered side), the default group on both,
  and a group with an ingress TCP 5201 rule on both;
- hand-written with ovs-ofctl, isolating what conntrack costs: no ct at all; ct in both ports' zones
  with recirculation and a commit of every original-direction packet (the shape of ours); the same
  committing only new connections; one ct per packet (one zone); and the egress side as
  `ct(commit,zone=Z,exec(set_field:0->ct_mark))` without recirculation (a port whose egress allows
  everything), the ingress side as ours or committing only new connections.

    .venv/bin/python -m bench.bench_datapath [--runs 5] [--seconds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import IPERF_PORT, NORMAL, print_table, snapshot_flows, throughput, write_json
from mininet_topos import ovs
from mininet_topos.control import HOST, ControllerProcess, free_port
from mininet_topos.launcher import Running, raise_on_sigterm, random_prefix, running
from mininet_topos.reach import run_in
from mininet_topos.rest import Api, register

# Zones of the hand-written pipelines: far above the port keys (1, 2, ...) that controllers hand out,
# since every netdev bridge of the machine shares one conntrack table.
ZONE_1, ZONE_2 = 65001, 65002


@dataclass(frozen=True)
class Hand:
    """A hand-written conntrack pipeline between two ports: what each packet goes through."""

    zones: int = 2                 # 2: the sender's zone, then the receiver's (as ours); 1: one ct per packet
    egress: str = "lookup"         # "lookup": ct(table=) and recirculate; "commit": ct(commit) without recirculation
    commit: str = "every"          # "every" original-direction packet is committed (as ours), or only "new" ones
    conntrack: bool = True


HAND: dict[str, tuple[Hand, str]] = {
    "hand: no ct": (Hand(conntrack=False), "in_port -> output"),
    "hand: 2 zones, recirc, commit every packet (ours)": (Hand(), "data: 2 lookups + 2 commits, 2 recirc"),
    "hand: 2 zones, recirc, commit new only": (Hand(commit="new"), "data: 2 lookups, 2 recirc"),
    "hand: 1 ct per packet, commit new only": (Hand(zones=1, commit="new"), "data: 1 lookup, 1 recirc"),
    "hand: egress commit no recirc, ingress as ours": (Hand(egress="commit"), "data: 3 ct, 1 recirc"),
    "hand: egress commit no recirc, ingress new only": (Hand(egress="commit", commit="new"), "data: 2 ct, 1 recirc"),
}


def hand_flows(spec: Hand, ports: dict[str, int]) -> str:
    """Flows for a1 <-> a2 (`ports`: label -> ofport) following `spec`; ARP is switched by in_port alone.

    Tables: 0 egress (sender's zone), 1 after the egress lookup, 2 ingress (receiver's zone), 3 after it.
    """
    pairs = [(ports["a1"], ports["a2"], ZONE_1, ZONE_2), (ports["a2"], ports["a1"], ZONE_2, ZONE_1)]
    flows = [f"table=0,priority=200,arp,in_port={src},actions=output:{dst}" for src, dst, _, _ in pairs]
    if not spec.conntrack:
        return "\n".join(flows + [f"table=0,priority=100,ip,in_port={s},actions=output:{d}" for s, d, _, _ in pairs])

    def after_lookup(table: int, zone: int, src: int, then: str) -> list[str]:
        """Invalid drops, replies pass, original direction committed (every packet, or new ones only)."""
        commit = f"ct(commit,zone={zone},exec(set_field:0->ct_mark))"
        rows = [f"table={table},priority=300,ct_state=+trk+inv,ip,in_port={src},actions=drop",
                f"table={table},priority=200,ct_state=+trk+rpl-inv,ct_mark=0,ip,in_port={src},actions={then}"]
        if spec.commit == "every":
            return rows + [f"table={table},priority=100,ct_state=+trk-rpl-inv,ip,in_port={src},actions={commit},{then}"]
        return rows + [f"table={table},priority=100,ct_state=+trk+new-rpl-inv,ip,in_port={src},actions={commit},{then}",
                       f"table={table},priority=100,ct_state=+trk+est-rpl-inv,ct_mark=0,ip,in_port={src},"
                       f"actions={then}"]

    for src, dst, own, peer in pairs:
        if spec.zones == 1:
            flows.append(f"table=0,priority=100,ip,in_port={src},actions=ct(zone={ZONE_1},table=1)")
            flows += after_lookup(1, ZONE_1, src, f"output:{dst}")
            continue
        if spec.egress == "commit":
            flows.append(f"table=0,priority=100,ip,in_port={src},"
                         f"actions=ct(commit,zone={own},exec(set_field:0->ct_mark)),goto_table:2")
        else:
            flows.append(f"table=0,priority=100,ip,in_port={src},actions=ct(zone={own},table=1)")
            flows += after_lookup(1, own, src, "goto_table:2")
        flows.append(f"table=2,priority=100,ip,in_port={src},actions=ct(zone={peer},table=3)")
        flows += after_lookup(3, peer, src, f"output:{dst}")
    return "\n".join(flows) + "\n"


REST: dict[str, str] = {
    "ours: port security off (isolation only)": "no ct: classify, arp, acl skip, l2, port_out",
    "ours: egress-only group on a1, a2 without port security": "data: 1 lookup + 1 commit, 1 recirc",
    "ours: default group on both": "data: 2 lookups + 2 commits, 2 recirc",
    "ours: group with ingress tcp 5201 on both": "data: 2 lookups + 2 commits, 2 recirc",
}


def rest_pipelines(run: Running, state: Path) -> dict[str, str]:
    """Our controller's flows for each port configuration of REST, snapshotted after the call returned."""
    snapshots = {}
    with ControllerProcess(state, log_level="warning") as ctl:
        ovs.vsctl("set-controller", run.plan.bridges[0], f"tcp:{ctl.of_address[0]}:{ctl.of_address[1]}")
        run.wait_connected()
        api = Api(ctl.api)
        ports = register(api, run.plan).ports
        default = next(g["id"] for g in api.get("/security-groups") if g["name"] == "default")
        egress_only = api.create("security-groups", {"name": "egress-only"})["id"]  # a new group: egress anywhere
        web = api.create("security-groups", {"name": "web"})["id"]
        api.create("security-group-rules", {"security_group_id": web, "direction": "ingress", "protocol": "tcp",
                                            "port_range_min": IPERF_PORT, "port_range_max": IPERF_PORT,
                                            "remote_ip_prefix": run.plan.network("a").cidr})
        off: dict[str, Any] = {"port_security_enabled": False, "security_group_ids": []}

        def on(group: str) -> dict[str, Any]:
            return {"port_security_enabled": True, "security_group_ids": [group]}

        configs = dict(zip(REST, [(off, off), (on(egress_only), off), (on(default), on(default)), (on(web), on(web))],
                           strict=True))
        for name, (a1, a2) in configs.items():
            for label, body in (("a2", off), ("a1", a1), ("a2", a2)):  # via `off`: any order of changes is valid
                api.patch(f"/ports/{ports[label]}", body)
            snapshots[name] = snapshot_flows(run.plan.bridges[0])
    return snapshots


MODES = {"tso": "on", "mtu": "off"}  # segmentation by the hosts' veth: 64 KB TSO frames, or MTU-sized packets


def set_segmentation(run: Running, labels: tuple[str, ...], mode: str) -> None:
    """TSO/GSO on (frames of up to 64 KB reach the switch) or off (MTU-sized packets: per-packet costs x40)."""
    for label in labels:
        host = run.host(label)
        code, out = run_in(host, ["ethtool", "-K", host.defaultIntf().name, "tso", MODES[mode], "gso", MODES[mode]], 10)
        if code != 0:
            raise RuntimeError(f"ethtool in {host.name}: {out}")


def bench(runs: int, seconds: float, modes: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as state, running("single", random_prefix(), (HOST, free_port()),
                                                          connect_timeout=None) as run:
        bridge = run.plan.bridges[0]
        ovs.vsctl("del-controller", bridge)
        pipelines = {"NORMAL": NORMAL, **rest_pipelines(run, Path(state))}
        ovs.vsctl("del-controller", bridge)
        ports = {label: int(ovs.vsctl("get", "Interface", str(run.plan.vm(label).interface), "ofport"))
                 for label in ("a1", "a2")}
        pipelines |= {name: hand_flows(spec, ports) for name, (spec, _) in HAND.items()}
        a1, a2 = run.host("a1"), run.host("a2")
        results = {}
        for mode in modes:
            set_segmentation(run, ("a1", "a2"), mode)
            results[mode] = throughput(a1, a2, run.plan.vm("a2").ip, bridge, pipelines, seconds, runs,
                                       baseline="NORMAL")
        return results


def report(results: dict[str, dict[str, Any]], mode: str) -> None:
    """One table per mode; "x NORMAL" is the median over rounds of the ratio to NORMAL in the same round."""
    what = {"NORMAL": "", **REST, **{name: text for name, (_, text) in HAND.items()}}
    rows = [(name, what[name], f"{r['bps'] / 1e9:.2f}", f"{r['ratio']:.2f}", f"{r['vswitchd_cpu_s_per_gb']:.2f}",
             f"{r['cpu_ratio']:.2f}", " ".join(f"{b / 1e9:.1f}" for b in r["runs"])) for name, r in results.items()]
    print(f"\nhosts' segmentation: {mode} ({'64 KB TSO frames' if mode == 'tso' else 'MTU-sized packets'})")
    print_table(("pipeline", "per packet", "Gbit/s", "x NORMAL", "vswitchd CPU s/GB", "CPU x NORMAL",
                 "runs (Gbit/s)"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds over all pipelines (median)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per iperf3 run")
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["tso", "mtu"],
                        help="tso: the hosts hand the switch 64 KB frames (userspace TSO); mtu: MTU-sized packets")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    raise_on_sigterm()  # a timeout's SIGTERM still stops the controller and deletes the bridge
    started = time.perf_counter()
    results = bench(args.runs, args.seconds, args.modes)
    for mode, figures in results.items():
        report(figures, mode)
    wall = time.perf_counter() - started
    print(f"\ntook {wall:.0f} s")
    write_json(args.json, {"runs": args.runs, "seconds": args.seconds, "wall_s": wall, "modes": results})


if __name__ == "__main__":
    main()
