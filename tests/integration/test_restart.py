"""A controller restart is invisible to the data plane: no packet lost, no flow deleted and re-added."""

from __future__ import annotations

import re
import signal
import subprocess

import pytest
from helpers import EchoServer, Stream, register, tcp_ok, wait_until

from mininet_topos import ovs

_FLOW = re.compile(r"duration=([\d.]+)s, table=(\d+), n_packets=(\d+).*?priority=(\d+)(?:,(\S+))? actions")


def flows(bridge: str) -> dict[tuple[str, str, str], tuple[float, int]]:
    """(table, priority, match) -> (duration, n_packets) as OVS reports them."""
    found = {}
    for line in ovs.ofctl("dump-flows", bridge).splitlines():
        m = _FLOW.search(line)
        if m:
            duration, table, packets, priority, match = m.groups()
            found[(table, priority, match or "")] = (float(duration), int(packets))
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_restart_under_traffic_loses_nothing(controller, api, net_factory, sig):
    run = net_factory("three")
    register(api, run.plan)
    wait_until(lambda: sum(len(s["links"]) for s in api.get("/switches")) == 4, 15, "links to be discovered")
    a1, a3 = run.host("a1"), run.host("a3")
    ip = run.plan.vm("a3").ip
    assert tcp_ok(a1, a3, ip)
    before = {s.name: flows(s.name) for s in run.plan.switches}

    pinger = a1.popen(["ping", "-n", "-i", "0.05", ip], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with EchoServer(a3, tcp=5002), Stream(a1, "tcp", ip, 5002) as stream:
            controller.restart(sig)
            wait_until(lambda: all(s["connected"] for s in api.get("/switches")), 30, "switches to reconnect")
            # Every switch read back and diffed: the resync has happened (and found nothing to do).
            wait_until(lambda: api.metrics().get("sdn_programmer_readbacks", 0) >= 3, 30, "resync")
            assert tcp_ok(a1, a3, ip, port=5003)
            summary = stream.stop()
    finally:
        pinger.send_signal(signal.SIGINT)
        out, _ = pinger.communicate(timeout=10)

    sent = int(re.search(r"(\d+) packets transmitted", out).group(1))
    answered = {int(seq) for seq in re.findall(r"icmp_seq=(\d+) ", out)}
    # Every echo got its reply; only the very last may still have been on its way when ping was stopped.
    assert sent > 20 and set(range(1, sent)) <= answered, out.splitlines()[-3:]
    assert not summary.get("broken") and summary["received"] == summary["sent"], summary
    assert api.metrics()["sdn_programmer_flow_mods"] == 0
    for s in run.plan.switches:
        after = flows(s.name)
        assert after.keys() == before[s.name].keys()
        for key, (duration, packets) in before[s.name].items():
            assert after[key][0] >= duration and after[key][1] >= packets, f"{s.name} {key} was re-added"
