"""Load balancers with real hosts: connections to a VIP spread over its members and come back from the VIP, over
TCP and UDP, from the VIP's network and through a router; another tenant and a member's closed port stay shut.

Fixture: tests/integration/routers_fixtures.py (`external`): tenant A's network a (10.0.0.0/24: a1 on s2, a2 on s3,
a3 on s1) and c (10.0.1.0/24: c1 on s3), tenant B's b on the same 10.0.0.0/24. The members' servers tell each
client the source they saw ("from=IP:PORT;"), which must be the client's own address (no SNAT); a TCP client takes
a reply only from the address it connected to, so any reply proves it came back from the VIP.
"""

from __future__ import annotations

from collections import Counter

from helpers import EchoServer, connect, seen_from, wait_until
from routers_fixtures import DENIED_PORT, ExternalEnv

VIP = "10.0.0.100"
SERVICE, BACKEND = 5001, 5002  # both allowed in by the fixture's `routed` group
CONVERGE = 10.0


def balancer(env: ExternalEnv, vip: str = VIP, backend: int = BACKEND, protocol: str = "tcp",
             algorithm: str = "hash") -> dict:
    """A balancer on network a at `vip`:SERVICE over a2 and a3 (weights 1 and 2) at `backend`."""
    return env.api.post("/load-balancers", {
        "name": "web", "network_id": env.network("a"), "vip_address": vip, "protocol": protocol, "port": SERVICE,
        "algorithm": algorithm, "members": [{"ip_address": env.ip("a2"), "port": backend},
                                         {"ip_address": env.ip("a3"), "port": backend, "weight": 2}]})


def spread(env: ExternalEnv, client: str, proto: str, count: int, vip: str = VIP) -> Counter[str]:
    """Which member answered each of `count` exchanges from `client` (each from a new source port)."""
    answered: Counter[str] = Counter()
    for _ in range(count):
        reply = connect(env.host(client), proto, vip, SERVICE, timeout=2)
        assert reply is not None, f"{client} got no answer from the VIP over {proto}"
        seen = seen_from(reply)
        assert seen is not None and seen[0] == env.ip(client), reply  # the member saw the client itself
        answered[reply.split(":", 1)[0]] += 1
    return answered


def test_connections_spread_over_members_and_come_back_from_the_vip(external: ExternalEnv) -> None:
    env = external
    balancer(env)
    udp_vip = balancer(env, "10.0.0.101", BACKEND, "udp")["vip_address"]
    sticky = balancer(env, "10.0.0.103", BACKEND + 1, algorithm="source_ip_hash")["vip_address"]
    with EchoServer(env.host("a2"), tcp=BACKEND, udp=BACKEND, tag="a2", peer=True), \
            EchoServer(env.host("a3"), tcp=BACKEND, udp=BACKEND, tag="a3", peer=True), \
            EchoServer(env.host("a2"), tcp=BACKEND + 1, tag="a2", peer=True), \
            EchoServer(env.host("a3"), tcp=BACKEND + 1, tag="a3", peer=True):
        wait_until(lambda: connect(env.host("a1"), "tcp", VIP, SERVICE, timeout=1) is not None, CONVERGE,
                   "the VIP answering a1")
        answered = spread(env, "a1", "tcp", 30)
        assert set(answered) == {"a2", "a3"}, answered  # weights 1:2; 30 tries miss one with p < 1e-5
        # OVS's select hash takes L4 ports of TCP only: a UDP client keeps to one member (by addresses).
        assert len(spread(env, "a1", "udp", 10, udp_vip)) == 1
        # source_ip_hash: every connection of one client on one member
        assert len(spread(env, "a1", "tcp", 20, sticky)) == 1
        # Another tenant's host with the same addresses has no VIP: its ARP for it goes unanswered.
        assert connect(env.host("b1"), "tcp", VIP, SERVICE, timeout=1) is None


def test_the_vip_through_a_router_and_a_members_closed_port(external: ExternalEnv) -> None:
    env = external
    env.router("r", ("a", "c"))
    balancer(env)
    closed = balancer(env, "10.0.0.102", DENIED_PORT)["vip_address"]  # the members' group never lets it in
    with EchoServer(env.host("a2"), tcp=BACKEND, tag="a2", peer=True), \
            EchoServer(env.host("a3"), tcp=BACKEND, tag="a3", peer=True), \
            EchoServer(env.host("a2"), tcp=DENIED_PORT), EchoServer(env.host("a3"), tcp=DENIED_PORT):
        wait_until(lambda: connect(env.host("c1"), "tcp", VIP, SERVICE, timeout=1) is not None, CONVERGE,
                   "the VIP answering c1 through the router")
        assert set(spread(env, "c1", "tcp", 20)) == {"a2", "a3"}
        assert connect(env.host("a1"), "tcp", closed, SERVICE, timeout=1) is None
