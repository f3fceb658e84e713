"""Load balancers with real hosts and a health monitor: connections to the VIP spread over the members; a member
whose server dies goes OFFLINE within interval * max_retries + timeout (plus convergence) and gets no new
connections, and comes back when its server does; a live connection stays on its member while members come and go.

Topology and fixture: tests/integration/routers_fixtures.py (`external`): a1 (client, s2), a2 (s3) and a3 (s1) on
network a (10.0.0.0/24), every port in the `routed` group (TCP 5001-5009 in).
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import ExitStack

import pytest
from helpers import EchoServer, Stream, connect, run_in, wait_until
from routers_fixtures import ExternalEnv

pytestmark = [pytest.mark.timeout(300)]

PORT = 5001
VIP = "10.0.0.100"
MONITOR = {"type": "tcp", "interval_s": 1, "timeout_s": 1, "max_retries": 2}
DEADLINE = MONITOR["interval_s"] * MONITOR["max_retries"] + MONITOR["timeout_s"]  # API.md's promise: 3 s
SLACK = 2.0  # a health round (0.25 s), the store, a pass


def landed(env: ExternalEnv, count: int) -> Counter[str]:
    """Which member's server answered each of `count` new connections from a1 (None: no answer)."""
    found: Counter[str] = Counter()
    for n in range(count):
        reply = connect(env.host("a1"), "tcp", VIP, PORT, timeout=1, message=f"c{n}")
        found[reply.split(":", 1)[0] if reply else None] += 1
    return found


def metric(env: ExternalEnv, name: str) -> float:
    return sum(value for sample, value in env.api.metrics().items() if sample == name or sample.startswith(name + "{"))


def status(env: ExternalEnv, lb: dict, member_id: str) -> str:
    return env.api.get(f"/load-balancers/{lb['id']}/members/{member_id}")["status"]


def test_health_decides_which_members_get_new_connections(external: ExternalEnv):
    env = external
    with ExitStack() as stack:
        servers = {label: stack.enter_context(EchoServer(env.host(label), tcp=PORT, tag=label))
                   for label in ("a2", "a3")}
        lb = env.api.create("load-balancers", {
            "name": "web", "network_id": env.network("a"), "vip_address": VIP, "protocol": "tcp", "port": PORT,
            "algorithm": "hash", "health_monitor": MONITOR,
            "members": [{"ip_address": env.ip(label), "port": PORT} for label in ("a2", "a3")]})
        a2, a3 = (m["id"] for m in lb["members"])
        wait_until(lambda: connect(env.host("a1"), "tcp", VIP, PORT, timeout=1) is not None, 10, "the VIP to answer")
        probes = metric(env, "sdn_lb_probes_total")
        wait_until(lambda: metric(env, "sdn_lb_probes_total") >= probes + 4, 4 * MONITOR["interval_s"] + SLACK,
                   "two rounds of probes")  # answered: both stay ONLINE
        assert (status(env, lb, a2), status(env, lb, a3)) == ("ONLINE", "ONLINE")
        spread = landed(env, 60)
        assert spread["a2"] >= 5 and spread["a3"] >= 5 and spread[None] == 0, spread

        # a3's server dies: OFFLINE in time, and new connections all go to a2
        servers["a3"].stop()
        killed = time.monotonic()
        wait_until(lambda: status(env, lb, a3) == "OFFLINE", DEADLINE + SLACK + 5, "a3 to go OFFLINE")
        took = time.monotonic() - killed
        assert took <= DEADLINE + SLACK, f"a3 went OFFLINE {took:.1f} s after its server died"
        assert status(env, lb, a2) == "ONLINE"
        wait_until(lambda: landed(env, 5) == Counter({"a2": 5}), SLACK, "the flows to follow a3's status")
        only = landed(env, 30)
        assert only == Counter({"a2": 30}), only

        # a live connection (on a2: a3 is out) survives a3's return, its removal and a member's addition
        with Stream(env.host("a1"), "tcp", VIP, PORT) as stream:
            servers["a3"] = stack.enter_context(EchoServer(env.host("a3"), tcp=PORT, tag="a3"))
            back = time.monotonic()
            wait_until(lambda: status(env, lb, a3) == "ONLINE", MONITOR["interval_s"] + MONITOR["timeout_s"] + SLACK,
                       "a3 to come back ONLINE")
            print(f"OFFLINE after {took:.1f} s; ONLINE again after {time.monotonic() - back:.1f} s")
            wait_until(lambda: landed(env, 10)["a3"] > 0, SLACK, "the flows to take a3 back")
            again = landed(env, 40)
            assert again["a3"] >= 3 and again["a2"] >= 3 and again[None] == 0, again
            env.api.delete(f"/load-balancers/{lb['id']}/members/{a3}")
            added = env.api.post(f"/load-balancers/{lb['id']}/members", {"ip_address": env.ip("a3"), "port": PORT})
            probes = metric(env, "sdn_lb_probes_total")
            wait_until(lambda: metric(env, "sdn_lb_probes_total") >= probes + 4, 4 * MONITOR["interval_s"] + SLACK,
                       "two rounds of probes")
            assert status(env, lb, added["id"]) == "ONLINE"
            summary = stream.stop()
        assert not summary.get("broken") and summary["received"] >= 0.9 * summary["sent"], summary

        # a3 falls silent (its interface down: no RST, only timeouts): OFFLINE in time too; back when it is up
        a3_link = env.host("a3").defaultIntf().name
        assert run_in(env.host("a3"), ["ip", "link", "set", a3_link, "down"], 5)[0] == 0
        silent = time.monotonic()
        wait_until(lambda: status(env, lb, added["id"]) == "OFFLINE", DEADLINE + SLACK + 5, "silent a3 to go OFFLINE")
        took = time.monotonic() - silent
        assert took <= DEADLINE + SLACK, f"silent a3 went OFFLINE {took:.1f} s after its link went down"
        assert run_in(env.host("a3"), ["ip", "link", "set", a3_link, "up"], 5)[0] == 0
        wait_until(lambda: status(env, lb, added["id"]) == "ONLINE", 10, "a3 to come back")
        print(f"silent a3 OFFLINE after {took:.1f} s")
