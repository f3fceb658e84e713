"""Counters per object with real traffic: a TCP and a UDP connection, each allowed by one rule of its own, move that
rule's stats in GET and in /metrics, and a rule nothing matches stays at 0; the README's commands show the same.
Through a router, a floating IP counts both ways and its router everything it routed, and an idle one stays at 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from helpers import register, tcp_ok, udp_ok, wait_until
from routers_fixtures import ExternalEnv

# No reading of the switches but those a GET asks for: what moves, moves through ?refresh=true.
pytestmark = pytest.mark.controller_args("--stats-interval", "3600")
README = Path(__file__).resolve().parents[2] / "README.md"
RULE = "security_group_rule"


def packets_in_metrics(base: str, rule_id: str) -> float | None:
    text = requests.get(base + "/metrics", timeout=10).text
    found = re.search(rf'^sdn_object_packets_total{{id="{rule_id}",kind="{RULE}"}} (\S+)$', text, re.M)
    return float(found[1]) if found else None


def test_a_connection_moves_the_counter_of_the_rule_that_allowed_it_and_no_other(api, controller, net_factory):
    run = net_factory("single")
    reg = register(api, run.plan)
    group = api.create("security-groups", {"name": "web"})["id"]  # egress anywhere; ingress only as below
    api.patch(f"/ports/{reg.ports['a2']}", {"security_group_ids": [group]})
    tcp, udp, quiet = (api.create("security-group-rules", {"security_group_id": group, "direction": "ingress",
                                                           "protocol": proto, "port_range_min": port})["id"]
                       for proto, port in (("tcp", 5001), ("udp", 5002), ("tcp", 6000)))
    a1, a2, ip2 = run.host("a1"), run.host("a2"), run.plan.vm("a2").ip
    base = controller.api.removesuffix("/v1")

    def packets(rule_id: str) -> int:
        return api.get(f"/security-group-rules/{rule_id}?refresh=true")["stats"]["packets"]

    assert packets(tcp) == packets(udp) == packets(quiet) == 0
    assert tcp_ok(a1, a2, ip2, 5001)
    wait_until(lambda: packets(tcp) >= 3, 10, "the tcp rule to count the connection (SYN, its ACK, data, FIN)")
    assert packets(udp) == 0 and packets(quiet) == 0
    assert udp_ok(a1, a2, ip2, 5002)
    wait_until(lambda: packets(udp) >= 1, 10, "the udp rule to count the datagram")
    assert packets(quiet) == 0
    shown = api.get(f"/security-group-rules/{tcp}")["stats"]
    assert shown["bytes"] > 40 * shown["packets"] > 0
    assert packets_in_metrics(base, tcp) == shown["packets"] and packets_in_metrics(base, quiet) == 0
    # Refused by every rule: counted by none.
    assert not tcp_ok(a1, a2, ip2, 5003)
    assert packets(quiet) == 0 and api.get(f"/security-group-rules/{tcp}?refresh=true")["stats"] == shown

    # The README's commands, as written there, with this controller's URL and these ids.
    block = README.read_text().split("## Counters per object", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "SDN_URL": base, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    outputs = []
    for line in block.strip().splitlines():
        command = (line.replace(".venv/bin/", "").replace("http://127.0.0.1:8080", base)
                   .replace("RULE_ID", tcp).replace("GROUP_ID", group))
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=30)
        assert done.returncode == 0, (command, done.stderr)
        outputs.append(done.stdout)
    show, listing, body, metrics = outputs
    assert re.search(rf"^stats\s+packets={shown['packets']},bytes={shown['bytes']}$", show, re.M)
    assert re.search(rf"^{tcp}\s.*\s{shown['packets']}\s+{shown['bytes']}$", listing, re.M)
    assert f'"packets":{shown["packets"]}' in body.replace(" ", "")
    assert metrics.strip() == (f'sdn_object_packets_total{{id="{tcp}",kind="{RULE}"}} '
                               f'{float(shown["packets"])}')


def test_a_floating_ip_counts_both_ways_and_its_router_what_it_routed(external: ExternalEnv) -> None:
    env = external
    router = env.router("r", ("a",))
    used, idle = env.floating_ip("a1"), env.floating_ip()
    outside, address = env.host("outside"), used["floating_ip_address"]

    def stats(path: str) -> dict[str, int]:
        return env.api.get(f"{path}?refresh=true")["stats"]

    assert stats(f"/floating-ips/{used['id']}") == stats(f"/routers/{router['id']}") == {"packets": 0, "bytes": 0}
    # In through the floating IP, its replies out (the first may wait for the router to resolve its next hop).
    wait_until(lambda: tcp_ok(outside, env.host("a1"), address, 5001), 10, "outside to reach a1's floating IP")
    wait_until(lambda: stats(f"/floating-ips/{used['id']}")["packets"] >= 6, 10,
               "the floating IP to count the connection both ways (3 packets or more each way)")
    assert tcp_ok(env.host("a1"), outside, env.ip("outside"), 5002)  # a1's own, out from its floating IP
    counted = stats(f"/floating-ips/{used['id']}")
    wait_until(lambda: stats(f"/floating-ips/{used['id']}")["packets"] >= counted["packets"] + 6, 10,
               "the floating IP to count a1's own connection")
    # Every packet through the floating IP was routed by the router, on its gateway switch; the other one is idle.
    assert stats(f"/routers/{router['id']}")["packets"] >= stats(f"/floating-ips/{used['id']}")["packets"]
    assert stats(f"/floating-ips/{idle['id']}") == {"packets": 0, "bytes": 0}
