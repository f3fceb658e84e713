"""Load balancers with real hosts: connections to a VIP spread over its members and come back from the VIP, over
TCP and UDP, from the VIP's network and through a router; another tenant and a member's closed port stay shut.

Fixture: tests/integration/routers_fixtures.py (`external`): tenant A's network a (10.0.0.0/24: a1 on s2, a2 on s3,
a3 on s1) and c (10.0.1.0/24: c1 on s3), tenant B's b on the same 10.0.0.0/24. The members' servers tell each
client the source they saw ("from=IP:PORT;"), which must be the client's own address (no SNAT); a TCP client takes
a reply only from the address it connected to, so any reply proves it came back from the VIP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from helpers import EchoServer, connect, seen_from, wait_until
from routers_fixtures import DENIED_PORT, ExternalEnv

VIP = "10.0.0.100"
SERVICE, BACKEND = 5001, 5002  # both allowed in by the fixture's `routed` group
CONVERGE = 10.0


def balancer(env: ExternalEnv, vip: str = VIP, backend: int = BACKEND, protocol: str = "tcp",
             algorithm: str = "hash", members: dict[str, int] | None = None) -> dict:
    """A balancer on network a at `vip`:SERVICE over `members` (label: weight; default a2 and a3, weights 1 and 2)
    at `backend`."""
    weights = members or {"a2": 1, "a3": 2}
    return env.api.post("/load-balancers", {
        "name": "web", "network_id": env.network("a"), "vip_address": vip, "protocol": protocol, "port": SERVICE,
        "algorithm": algorithm, "members": [{"ip_address": env.ip(label), "port": backend, "weight": weight}
                                         for label, weight in weights.items()]})


@contextmanager
def serving(env: ExternalEnv) -> Iterator[None]:
    """a2 and a3 serve at BACKEND (TCP and UDP) and BACKEND + 1 (TCP), each reply tagged with the member and the
    source it saw."""
    with ExitStack() as stack:
        for label in ("a2", "a3"):
            stack.enter_context(EchoServer(env.host(label), tcp=BACKEND, udp=BACKEND, tag=label, peer=True))
            stack.enter_context(EchoServer(env.host(label), tcp=BACKEND + 1, tag=label, peer=True))
        yield


def spread(env: ExternalEnv, client: str, proto: str, count: int, vip: str = VIP,
           seen_as: dict[str, str] | None = None) -> Counter[str]:
    """Which member answered each of `count` exchanges from `client` (each from a new source port). Each member saw
    the client itself, or the address `seen_as` names for that member (a member that got itself sees the VIP)."""
    answered: Counter[str] = Counter()
    for _ in range(count):
        reply = connect(env.host(client), proto, vip, SERVICE, timeout=2)
        assert reply is not None, f"{client} got no answer from the VIP over {proto}"
        member, seen = reply.split(":", 1)[0], seen_from(reply)
        assert seen is not None and seen[0] == (seen_as or {}).get(member, env.ip(client)), reply
        answered[member] += 1
    return answered


def test_connections_spread_over_members_and_come_back_from_the_vip(external: ExternalEnv) -> None:
    env = external
    balancer(env)
    udp_vip = balancer(env, "10.0.0.101", BACKEND, "udp")["vip_address"]
    sticky = balancer(env, "10.0.0.103", BACKEND + 1, algorithm="source_ip_hash")["vip_address"]
    with serving(env):
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


def test_a_member_calling_its_own_vip_lands_on_itself_or_another_member(external: ExternalEnv) -> None:
    """Hairpin, TCP and UDP: a2 alone behind a VIP gets itself and sees the connection come from the VIP; behind
    another VIP a3 alone, a2 gets a3, which sees a2; behind a VIP of both, a2 gets either; c1, a member on another
    network of the VIP's router, gets itself through the router. Another tenant's host on the same CIDR (b1) reaches
    none of it (flowsim: tests/unit/test_load_balancing.py tries its spoofed hairpin answer)."""
    env = external
    env.router("r", ("a", "c"), gateway=False)
    routed = {proto: balancer(env, f"10.0.0.{105 + n}", protocol=proto, members={"c1": 1})["vip_address"]
              for n, proto in enumerate(("tcp", "udp"))}
    own = balancer(env, members={"a2": 1})["vip_address"]
    own_udp = balancer(env, "10.0.0.101", protocol="udp", members={"a2": 1})["vip_address"]
    other = balancer(env, "10.0.0.102", members={"a3": 1})["vip_address"]
    other_udp = balancer(env, "10.0.0.103", protocol="udp", members={"a3": 1})["vip_address"]
    both = balancer(env, "10.0.0.104", BACKEND + 1, members={"a2": 1, "a3": 1})["vip_address"]
    with serving(env), EchoServer(env.host("c1"), tcp=BACKEND, udp=BACKEND, tag="c1", peer=True):
        wait_until(lambda: connect(env.host("a1"), "tcp", own, SERVICE, timeout=1) is not None, CONVERGE,
                   "the VIP answering a1")
        # the attack first: tenant B's b1, on the same 10.0.0.0/24, reaches none of tenant A's VIPs
        for vip in (own, other, both, *routed.values()):
            assert connect(env.host("b1"), "tcp", vip, SERVICE, timeout=1) is None
        for proto, vip in (("tcp", own), ("udp", own_udp)):
            assert spread(env, "a2", proto, 5, vip, seen_as={"a2": vip}) == Counter({"a2": 5})
        for proto, vip in (("tcp", other), ("udp", other_udp)):
            assert spread(env, "a2", proto, 5, vip) == Counter({"a3": 5})
        assert set(spread(env, "a2", "tcp", 30, both, seen_as={"a2": both})) == {"a2", "a3"}
        for proto, vip in routed.items():
            assert spread(env, "c1", proto, 5, vip, seen_as={"c1": vip}) == Counter({"c1": 5})


def test_from_outside_through_a_floating_ip_on_the_vip(external: ExternalEnv) -> None:
    """`outside` (beyond the external network's upstream router) reaches a VIP through a floating IP on it, over TCP
    and UDP: members see the outside host's own address, answers come back from the floating IP. Only the
    balancer's service is open there; before the floating IP is mapped, and once the balancer is gone (the floating
    IP stays, mapped to nothing), nothing is."""
    env = external
    env.router("r", ("a",))
    tcp_lb = balancer(env)
    udp_lb = balancer(env, "10.0.0.101", protocol="udp")
    floating = {lb["id"]: env.floating_ip() for lb in (tcp_lb, udp_lb)}
    outside = env.host("outside")
    with serving(env):
        tcp_fip = floating[tcp_lb["id"]]["floating_ip_address"]
        assert connect(outside, "tcp", tcp_fip, SERVICE, timeout=1) is None  # the attack first: not mapped yet
        for lb in (tcp_lb, udp_lb):
            mapped = env.api.patch(f"/floating-ips/{floating[lb['id']]['id']}", {"load_balancer_id": lb["id"]})
            assert mapped["fixed_ip_address"] == lb["vip_address"]
        wait_until(lambda: connect(outside, "tcp", tcp_fip, SERVICE, timeout=1) is not None, CONVERGE,
                   "the floating IP on the VIP answering outside")
        for port in (BACKEND, BACKEND + 1):  # only the service: not what the members serve, in the VIP's name or not
            assert connect(outside, "tcp", tcp_fip, port, timeout=1) is None
        for proto, lb in (("tcp", tcp_lb), ("udp", udp_lb)):
            address = floating[lb["id"]]["floating_ip_address"]
            answered: Counter[str] = Counter()
            for _ in range(20 if proto == "tcp" else 5):
                reply = connect(outside, proto, address, SERVICE, timeout=2)
                seen = seen_from(reply)
                assert seen is not None and seen[0] == env.ip("outside"), (proto, reply)
                answered[reply.split(":", 1)[0]] += 1
            assert set(answered) <= {"a2", "a3"} and (proto == "udp" or set(answered) == {"a2", "a3"}), answered
        env.api.delete(f"/load-balancers/{tcp_lb['id']}")
        assert env.api.get(f"/floating-ips/{floating[tcp_lb['id']]['id']}")["load_balancer_id"] is None
        assert connect(outside, "tcp", tcp_fip, SERVICE, timeout=1) is None
