"""What validating a request body costs: controller.schema.parse_body on typical bodies, per call.

Baseline in the same run: json.loads of the same body (what every request pays before validation), so
the ratio says how validation compares with merely reading the request. No switch, no store.

    .venv/bin/python -m bench.bench_validation [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from bench.common import print_rows
from controller.errors import ApiError
from controller.schema import LoadBalancerCreate, PortCreate, SecurityGroupRules, parse_body

PORT = {"network_id": "n1", "name": "vm1", "mac_address": "FA:16:3E:00:00:01", "ip_address": "10.0.0.5",
        "binding": {"dpid": "000000000000000A", "interface": "s1-eth1"}, "security_group_ids": ["g1", "g2"]}
BALANCER = {"network_id": "n1", "protocol": "TCP", "port": 80,
            "members": [{"ip_address": f"10.0.0.{i}", "port": 8080, "weight": 2} for i in range(2, 12)],
            "health_monitor": {"type": "tcp", "interval_s": 2, "timeout_s": 1, "max_retries": 3}}
RULES = {"rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 20000 + i,
                    "remote_ip_prefix": f"10.{i % 256}.0.0/16"} for i in range(1000)]}
JUNK = {**PORT, "mac_address": "01:00:5e:00:00:01", "ip_address": "10.0.0.300", "colour": "red", "name": 5}


def per_call(call: Callable[[], Any], seconds: float) -> float:
    """Microseconds per call, over about `seconds` of calls."""
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        call()
        calls += 1
    return elapsed / calls * 1e6


def validate(model: Any, body: dict[str, Any], partial: bool = False) -> Callable[[], Any]:
    def call() -> Any:
        try:
            return parse_body(model, body, partial=partial)
        except ApiError as exc:  # a refused body costs its error too
            return exc

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_validation")
    parser.add_argument("--seconds", type=float, default=0.5, help="time spent per measurement")
    args = parser.parse_args(argv)
    cases = [
        ("port create", validate(PortCreate, PORT), PORT),
        ("port PATCH (name only)", validate(PortCreate, {"name": "x"}, partial=True), {"name": "x"}),
        ("load balancer create, 10 members and a monitor", validate(LoadBalancerCreate, BALANCER), BALANCER),
        ("1,000 security-group rules (one PUT)", validate(SecurityGroupRules, RULES), RULES),
        ("port create refused (4 problems)", validate(PortCreate, JUNK), JUNK),
    ]
    rows = []
    for name, call, body in cases:
        text = json.dumps(body)
        base = per_call(lambda text=text: json.loads(text), args.seconds)
        cost = per_call(call, args.seconds)
        rows.append((f"{name} (x json.loads {base:.1f} us)", f"{cost:,.1f} us ({cost / base:.1f}x)"))
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
