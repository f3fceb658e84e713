"""What reading the counters per object costs, and whether it slows the programmer.

A real `sdn-controller` process and the `single` Mininet layout, one security group on every port holding N rules
(as bench_rest), run twice in the same run: once never reading the counters (`--stats-interval 3600`, the
baseline) and once reading them back to back (`--stats-interval 0.05`, 200 times the default rate). Each run
times `--changes` rule creations and deletions from the request to the answer (flows confirmed by the switch), and
`GET /v1/security-group-rules/{id}?refresh=true` (a reading of the switch, then the answer); the last reading's
own time comes from `sdn_counter_read_seconds`.

    .venv/bin/python -m bench.bench_counters [--rules 1000] [--changes 100]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import requests

from bench.bench_rest import percentile, timed
from bench.common import print_rows
from mininet_topos.control import ControllerProcess
from mininet_topos.launcher import random_prefix, running
from mininet_topos.rest import Api, register


def measure(interval: str, rules: int, changes: int) -> dict[str, list[float] | float]:
    """Rule changes and refreshed GETs timed against a controller reading its counters every `interval` s."""
    options = ("--stats-interval", interval)
    with tempfile.TemporaryDirectory() as tmp, \
            ControllerProcess(Path(tmp), log_level="warning", extra_args=options) as controller, \
            running("single", random_prefix(), controller.of_address) as run:
        api = Api(controller.api)
        reg = register(api, run.plan)
        group = api.post("/security-groups", {"name": "acl"})["id"]
        for port in reg.ports.values():
            api.patch(f"/ports/{port}", {"security_group_ids": [group]})
        api.request("PUT", f"/security-groups/{group}/rules", json={"rules": [{"direction": "egress"}] + [
            {"direction": "ingress", "protocol": "tcp", "port_range_min": 20000 + i,
             "remote_ip_prefix": f"10.{i % 256}.0.0/16"} for i in range(rules)]})
        some = api.get(f"/security-group-rules?security_group_id={group}")[1]["id"]
        changed: list[float] = []
        for i in range(changes):
            body = {"security_group_id": group, "direction": "ingress", "protocol": "udp", "port_range_min": 40000 + i}
            rule: dict = {}
            changed.append(timed(lambda body=body, rule=rule: rule.update(api.post("/security-group-rules", body))))
            changed.append(timed(lambda rule=rule: api.delete(f"/security-group-rules/{rule['id']}")))
        refreshed = []
        for _ in range(changes // 10 or 1):
            time.sleep(1.1)  # past the refresh bound (one a second): each GET reads the switch
            refreshed.append(timed(lambda: api.get(f"/security-group-rules/{some}?refresh=true")))
        text = requests.get(controller.api.removesuffix("/v1") + "/metrics", timeout=10).text
        found = re.search(r"^sdn_counter_read_seconds (\S+)$", text, re.M)
        reads = re.search(r"^sdn_counter_reads_total (\S+)$", text, re.M)
        return {"changes": changed, "refreshed": refreshed, "read": float(found[1]) if found else 0.0,
                "reads": float(reads[1]) if reads else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_counters")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args(argv)
    idle = measure("3600", args.rules, args.changes)
    busy = measure("0.05", args.rules, args.changes)
    rows = []
    for name, run in (("never reading", idle), ("reading back to back", busy)):
        times = run["changes"]
        rows.append((f"rule create/delete -> flows confirmed, p50 / p99, counters {name} ({run['reads']:.0f} reads)",
                     f"{percentile(times, 0.5):.1f} / {percentile(times, 0.99):.1f} ms"))
    rows.append(("-- reading back to back / never, p50 and p99",
                 f"{percentile(busy['changes'], 0.5) / percentile(idle['changes'], 0.5):.2f} / "
                 f"{percentile(busy['changes'], 0.99) / percentile(idle['changes'], 0.99):.2f}"))
    rows.append((f"one reading of the switch ({args.rules:,} rules), as the stats thread timed it",
                 f"{busy['read'] * 1000:.1f} ms"))
    rows.append(("GET a rule ?refresh=true (a reading, then the answer), p50",
                 f"{percentile(busy['refreshed'], 0.5):.1f} ms"))
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
