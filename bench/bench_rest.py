"""A REST change to flows confirmed in a real switch, with 1,000 rules in place.

A real `sdn-controller` process and the `single` Mininet layout (one netdev bridge, four VMs in two
networks), one security group on every port holding N rules (one PUT), then `--changes` rule creations
and deletions, each timed from the request to the answer, which comes only once the switch confirmed
the flows (barrier). Baseline in the same run: `GET /v1/health` through the same HTTP stack, which
converges nothing.

    .venv/bin/python -m bench.bench_rest [--rules 1000] [--changes 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import print_rows
from mininet_topos.control import ControllerProcess
from mininet_topos.launcher import random_prefix, running
from mininet_topos.rest import Api, register


def timed(call) -> float:  # noqa: ANN001 - any call
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_rest")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, ControllerProcess(Path(tmp), log_level="warning") as controller, \
            running("single", random_prefix(), controller.of_address) as run:
        api = Api(controller.api)
        reg = register(api, run.plan)
        dpid = run.plan.switch("s1").dpid
        group = api.post("/security-groups", {"name": "acl"})["id"]
        for port in reg.ports.values():
            api.patch(f"/ports/{port}", {"security_group_ids": [group]})
        rules = [{"direction": "egress"}] + [
            {"direction": "ingress", "protocol": "tcp", "port_range_min": 20000 + i,
             "remote_ip_prefix": f"10.{i % 256}.0.0/16"} for i in range(args.rules)]
        loaded = timed(lambda: api.request("PUT", f"/security-groups/{group}/rules", json={"rules": rules}))
        health = [timed(lambda: api.get("/health")) for _ in range(args.changes)]
        created, deleted = [], []
        for i in range(args.changes):
            body = {"security_group_id": group, "direction": "ingress", "protocol": "udp", "port_range_min": 40000 + i}
            rule: dict = {}
            created.append(timed(lambda body=body, rule=rule: rule.update(api.post("/security-group-rules", body))))
            deleted.append(timed(lambda rule=rule: api.delete(f"/security-group-rules/{rule['id']}")))
        flows = len(api.get(f"/switches/{dpid}/flows"))
    base = percentile(health, 0.5)
    rows = [(f"{args.rules:,} rules put in one call (one bundle), then {flows:,} flows in the switch",
             f"{loaded:.2f} s")]
    for name, times in (("rule create", created), ("rule delete", deleted)):
        rows.append((f"{name} -> flows confirmed, p50 / p99 (x GET /health p50 {base:.1f} ms)",
                     f"{percentile(times, 0.5):.1f} / {percentile(times, 0.99):.1f} ms "
                     f"({percentile(times, 0.5) / base:.1f}x / {percentile(times, 0.99) / base:.1f}x)"))
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
