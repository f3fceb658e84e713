"""Routers with real hosts: east-west routing, the gateway's own answers, SNAT, floating IPs, restarts.

Topology and fixture: tests/integration/routers_fixtures.py (`external`). Outside the tenants stands a Linux
router, `upstream` (203.0.113.1, the external network's gateway_ip, on s1's uplink), and behind it `outside`
(198.51.100.10). The upstream knows no tenant CIDR, so tenant traffic reaches `outside` and comes back only
through SNAT or a floating IP. The echo server on `outside` tells each client the source it saw ("from=IP:PORT;").

Every test checks both the path the feature opens (waited for: the first answer within CONVERGE seconds) and
a path that must stay shut (probed once, right after a working path proved the servers up), so a missing
feature and a leaking one both fail.
"""

from __future__ import annotations

import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
from helpers import (
    ApiError,
    EchoServer,
    Sniffer,
    Stream,
    connect,
    ping,
    ping_output,
    remove_router_interface,
    router_gateway_ip,
    run_in,
    seen_from,
    send_frame,
    set_external_gateway,
    wait_until,
)
from routers_fixtures import DENIED_PORT, ExternalEnv

from mininet_topos import ovs

CONVERGE = 10.0   # seconds a path may take to answer after the REST call returned (ARP through the uplink, ...)
PORT = 5001       # allowed by the `routed` group
OTHER = 5002      # allowed too


def reply_within(env: ExternalEnv, src: str, ip: str, port: int = PORT, proto: str = "tcp",
                 within: float = CONVERGE, message: str = "probe", source_port: int = 0) -> str:
    """The first echo `src` gets from `ip:port`, waiting up to `within` s for the path; fails the test otherwise."""
    replies: list[str] = []

    def attempt() -> bool:
        reply = connect(env.host(src), proto, ip, port, timeout=1, message=message, source_port=source_port)
        if reply is not None:
            replies.append(reply)
        return reply is not None

    try:
        wait_until(attempt, within, f"{proto} {src} -> {ip}:{port}")
    except TimeoutError as exc:
        failure = str(exc)
    else:
        return replies[-1]
    pytest.fail(failure, pytrace=False)


def shut(env: ExternalEnv, src: str, ip: str, port: int = PORT, proto: str = "tcp") -> bool:
    """One attempt from `src` to `ip:port` gets no echo (call it after a working path proved the servers up)."""
    return connect(env.host(src), proto, ip, port, timeout=1) is None


def shut_within(env: ExternalEnv, src: str, ip: str, port: int = PORT, within: float = CONVERGE) -> bool:
    """The path stops answering within `within` s (after a change that must cut it)."""
    wait_until(lambda: shut(env, src, ip, port), within, f"{src} -> {ip}:{port} to stop answering")
    return True


def pings_within(env: ExternalEnv, src: str, ip: str, within: float = CONVERGE) -> bool:
    try:
        wait_until(lambda: ping(env.host(src), ip, timeout=1), within, f"ping {src} -> {ip}")
    except TimeoutError as exc:
        failure = str(exc)
    else:
        return True
    pytest.fail(failure, pytrace=False)


def source_of(reply: str) -> str:
    seen = seen_from(reply)
    assert seen is not None
    return seen[0]


def at_once(jobs: dict[str, object]) -> dict[str, object]:
    """Run the callables side by side; their results by name."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}  # type: ignore[arg-type]
        return {name: f.result() for name, f in futures.items()}


# -- the harness itself (passes without any routing flows) ----------------------------------------------

def test_external_topology_plumbing(external: ExternalEnv) -> None:
    """upstream <-> outside route; the uplink is a port of s1 and the external network's uplink; the upstream
    knows no tenant CIDR; and with no router, nothing the upstream sends reaches a tenant VM."""
    env, ext = external, external.run.plan.external
    assert ext is not None
    up, out, a1, a2 = env.host("upstream"), env.host("outside"), env.host("a1"), env.host("a2")
    assert ping(up, ext.outside_ip) and ping(out, ext.upstream_ip)  # outside reaches 203.0.113.1 via upstream
    assert run_in(up, ["sysctl", "-n", "net.ipv4.ip_forward"], 5)[1].strip() == "1"
    code, routes = run_in(up, ["ip", "route", "get", env.ip("a1")], 5)
    assert code != 0, f"the upstream must not know tenant CIDRs: {routes}"
    assert ovs.vsctl("port-to-br", ext.uplink_interface) == env.run.switch(ext.uplink_switch).name
    network = env.api.get(f"/networks/{env.network('ext')}")
    assert network["external"] and network["gateway_ip"] == ext.upstream_ip
    assert network["uplink"] == ext.uplink

    # The control: a1 is up and served across switches within its network.
    with EchoServer(a1, tcp=PORT, udp=PORT):
        reply_within(env, "a2", env.ip("a1"))
        # The attack: the upstream pretends a tenant CIDR is on its uplink (its own namespace only).
        on_link = ["ip", "route", "add", "10.0.0.0/16", "dev", up.defaultIntf().name]
        assert run_in(up, on_link, 5)[0] == 0
        try:
            assert not ping(up, env.ip("a1"))
            assert shut(env, "upstream", env.ip("a1")) and shut(env, "upstream", env.ip("a1"), proto="udp")
        finally:
            run_in(up, ["ip", "route", "del", "10.0.0.0/16"], 5)

    vm = env.run.plan.vm("a1")
    # UDP to an allowed port: only isolation may stop these frames, not a1's security group.
    with Sniffer(a1, "up-unicast", "up-broadcast", "up-arp", "legit") as at_a1:
        send_frame(up, "up-unicast", eth_src=up.defaultIntf().MAC(), eth_dst=vm.mac, ip_src=ext.upstream_ip,
                   ip_dst=vm.ip, udp_dport=PORT)
        send_frame(up, "up-broadcast", eth_src=up.defaultIntf().MAC(), eth_dst="ff:ff:ff:ff:ff:ff",
                   ip_src=ext.upstream_ip, ip_dst="10.0.0.255", udp_dport=PORT)
        send_frame(up, "up-arp", eth_src=up.defaultIntf().MAC(), eth_dst="ff:ff:ff:ff:ff:ff", arp_op=1,
                   arp_spa=ext.upstream_ip, arp_tpa=vm.ip)
        a2_vm = env.run.plan.vm("a2")
        send_frame(a2, "legit", eth_src=a2_vm.mac, eth_dst=vm.mac, ip_src=a2_vm.ip, ip_dst=vm.ip,
                   udp_dport=PORT)
        assert at_a1.wait_for("legit", timeout=10), "a2's frame never reached a1: the sniffer proves nothing"
    assert not at_a1.seen & {"up-unicast", "up-broadcast", "up-arp"}, at_a1.seen


# -- east-west ------------------------------------------------------------------------------------------

def test_east_west_tcp_and_udp_across_switches_with_security_groups(external: ExternalEnv) -> None:
    env = external
    a1, c1 = env.ip("a1"), env.ip("c1")   # a1 on s2, c1 on s3
    with EchoServer(env.host("c1"), tcp=PORT, udp=PORT, peer=True), EchoServer(env.host("c1"), tcp=DENIED_PORT), \
            EchoServer(env.host("a1"), tcp=OTHER, udp=OTHER), EchoServer(env.host("c2"), tcp=PORT):
        reply_within(env, "c2", c1)                      # within network c: the servers are up
        assert shut(env, "a1", c1), "a1 reached c1 before any router joined their networks"

        env.router("r", ("a", "c"), gateway=False)
        assert source_of(reply_within(env, "a1", c1)) == a1           # routed, not NATed
        assert source_of(reply_within(env, "a1", c1, proto="udp")) == a1
        reply_within(env, "c1", a1, OTHER)                            # and back, from s3 to s2
        reply_within(env, "c1", a1, OTHER, proto="udp")
        reply_within(env, "a1", env.ip("c2"))                         # a1 and c2 share s2
        # The security group still rules routed traffic: c1 admits TCP 5001, not 6000.
        assert shut(env, "a1", c1, DENIED_PORT)
        # Network d is not on the router: nothing crosses either way.
        assert shut(env, "d1", c1) and shut(env, "d1", c1, proto="udp") and not ping(env.host("d1"), c1)

        env.api.create("security-group-rules", {"security_group_id": env.group, "direction": "ingress",
                                                "protocol": "tcp", "port_range_min": DENIED_PORT,
                                                "port_range_max": DENIED_PORT})
        reply_within(env, "a1", c1, DENIED_PORT)   # so 6000 was shut by the group, not by routing


def test_gateway_answers_ping_and_ttl_runs_out_at_the_router(external: ExternalEnv) -> None:
    env = external
    env.router("r", ("a", "c"), gateway=False)
    assert pings_within(env, "a1", env.gateway_ip("a")) and pings_within(env, "c1", env.gateway_ip("c"))
    # The same address on another tenant's network and a network off the router: nobody answers.
    assert not ping(env.host("b1"), env.gateway_ip("b")) and not ping(env.host("d1"), env.gateway_ip("d"))

    c1 = env.ip("c1")
    with EchoServer(env.host("c1"), tcp=PORT):
        reply_within(env, "a1", c1)
    out = ping_output(env.host("a1"), c1, ttl=1, timeout=2)
    assert re.search(rf"From {re.escape(env.gateway_ip('a'))}\b.*Time to live exceeded", out), out
    out = ping_output(env.host("a1"), c1, ttl=2, timeout=2)       # one router: two hops are enough
    assert " 0% packet loss" in out, out


def test_networks_off_the_router_stay_isolated_even_with_the_same_cidr(external: ExternalEnv) -> None:
    """b (tenant B) has a's 10.0.0.0/24 and no router; d (tenant A) has no router. The router joins a and c."""
    env = external
    env.router("r", ("a", "c"))
    # b1 takes a2's address: a packet the router sends into 10.0.0.0/24 must reach a2, never b1.
    env.readdress("b1", env.ip("a2"))
    c1 = env.ip("c1")
    with EchoServer(env.host("a2"), tcp=PORT, tag="a2"), EchoServer(env.host("b1"), tcp=PORT, tag="b1"), \
            EchoServer(env.host("c1"), tcp=PORT), EchoServer(env.host("d1"), tcp=PORT), \
            EchoServer(env.host("b2"), tcp=PORT):
        assert reply_within(env, "c1", env.ip("a2")).startswith("a2:")   # the control
        reply_within(env, "a1", c1)
        for _ in range(5):
            assert connect(env.host("c1"), "tcp", env.ip("a2"), PORT).startswith("a2:")
        # b1 and b2 route via 10.0.0.1 (b's gateway_ip): nothing there, nothing through.
        assert shut(env, "b1", c1) and shut(env, "b2", c1) and not ping(env.host("b2"), env.gateway_ip("b"))
        assert shut(env, "c1", env.ip("b2"))          # 10.0.0.22 is b2's alone: a has no such host
        assert shut(env, "d1", c1) and shut(env, "d1", env.ip("a1")) and shut(env, "a1", env.ip("d1"))
        assert shut(env, "b2", env.ip("outside")) and shut(env, "d1", env.ip("outside"))


# -- SNAT -----------------------------------------------------------------------------------------------

def test_snat_from_several_vms_at_once(external: ExternalEnv) -> None:
    env = external
    gateway = router_gateway_ip(env.router("r", ("a", "c")))
    outside = env.ip("outside")
    senders = ("a1", "a2", "a3", "c1", "c2")   # on s2, s3, s1, s3, s2
    with EchoServer(env.host("outside"), tcp=PORT, udp=PORT, peer=True):
        for label in senders:
            reply_within(env, label, outside)
        # All from one source port at once: the router's address must keep them apart by port.
        for proto, sport in (("tcp", 41000), ("udp", 41001)):
            replies = at_once({label: (lambda lb=label, p=proto, s=sport: connect(
                env.host(lb), p, outside, PORT, timeout=3, message=f"hello-{lb}", source_port=s))
                for label in senders})
            for label, reply in replies.items():
                assert reply is not None and reply.endswith(f"hello-{label}"), (proto, label, reply)
            seen = [seen_from(reply) for reply in replies.values()]  # type: ignore[arg-type]
            assert {address for address, _ in seen} == {gateway}, (proto, seen)
            assert len({port for _, port in seen}) == len(senders), (proto, seen)
        # Long-lived connections side by side, each getting only its own echoes.
        with ExitStack() as stack:
            streams = [stack.enter_context(Stream(env.host(label), "tcp", outside, PORT, interval=0.02,
                                                  message=f"s-{label}", source_port=41002)) for label in senders]
            for label in senders:
                reply_within(env, label, outside, proto="udp")   # more traffic while they run
            summaries = [stream.stop() for stream in streams]
        for label, summary in zip(senders, summaries, strict=True):
            assert not summary["broken"] and summary["received"] == summary["sent"] > 0, (label, summary)
        # A network not on the router gets nothing out.
        assert shut(env, "d1", outside) and shut(env, "b1", outside)


def test_snat_carries_ping_and_ttl_counts_each_hop(external: ExternalEnv) -> None:
    env = external
    router = env.router("r", ("a",))
    outside = env.ip("outside")
    assert pings_within(env, "a1", outside)
    out = ping_output(env.host("a1"), outside, ttl=1, timeout=2)
    assert re.search(rf"From {re.escape(env.gateway_ip('a'))}\b.*Time to live exceeded", out), out
    out = ping_output(env.host("a1"), outside, ttl=2, timeout=2)   # the upstream's error, un-NATed back
    assert re.search(rf"From {re.escape(env.ip('upstream'))}\b.*Time to live exceeded", out), out
    assert " 0% packet loss" in ping_output(env.host("a1"), outside, ttl=3, timeout=2)

    # Without SNAT the upstream cannot answer a tenant address: ping stops; with it again, it comes back.
    set_external_gateway(env.api, router["id"], env.network("ext"), enable_snat=False)
    wait_until(lambda: not ping(env.host("a1"), outside), CONVERGE, "ping to stop without SNAT")
    set_external_gateway(env.api, router["id"], env.network("ext"), enable_snat=True)
    assert pings_within(env, "a1", outside)


def test_overlapping_tenants_reach_outside_at_once_each_from_its_gateway(external: ExternalEnv) -> None:
    env = external
    gw_a = router_gateway_ip(env.router("ra", ("a",)))
    gw_b = router_gateway_ip(env.router("rb", ("b",)))
    assert gw_a != gw_b
    env.readdress("b1", env.ip("a1"))   # 10.0.0.11 in both tenants
    outside = env.ip("outside")
    with EchoServer(env.host("outside"), tcp=PORT, udp=PORT, peer=True), \
            EchoServer(env.host("a2"), tcp=PORT), EchoServer(env.host("b2"), tcp=PORT):
        reply_within(env, "a1", outside)
        reply_within(env, "b1", outside)
        for proto, sport in (("tcp", 42000), ("udp", 42001)):
            replies = at_once({label: (lambda lb=label, p=proto, s=sport: connect(
                env.host(lb), p, outside, PORT, timeout=3, message=f"hello-{lb}", source_port=s))
                for label in ("a1", "b1")})
            assert replies["a1"] and replies["a1"].endswith("hello-a1"), replies  # type: ignore[union-attr]
            assert replies["b1"] and replies["b1"].endswith("hello-b1"), replies  # type: ignore[union-attr]
            assert source_of(replies["a1"]) == gw_a and source_of(replies["b1"]) == gw_b, replies  # type: ignore
        pings = at_once({label: (lambda lb=label: ping(env.host(lb), outside, count=3)) for label in ("a1", "b1")})
        assert all(pings.values()), pings
        with Stream(env.host("a1"), "tcp", outside, PORT, message="sa", source_port=42002) as sa, \
                Stream(env.host("b1"), "tcp", outside, PORT, message="sb", source_port=42002) as sb:
            reply_within(env, "a2", outside)
            summaries = sa.stop(), sb.stop()
        assert all(not s["broken"] and s["received"] == s["sent"] for s in summaries), summaries
        # Tenants stay apart: a1 does not reach b2's 10.0.0.22 nor b1 a2's 10.0.0.12.
        assert shut(env, "a1", env.ip("b2")) and shut(env, "b1", env.ip("a2"))
    # Hairpin through the external network: a1 reaches b2 by b2's floating IP, arriving from ra's gateway IP.
    address = env.floating_ip("b2")["floating_ip_address"]
    with EchoServer(env.host("b2"), tcp=OTHER, tag="b2", peer=True):
        reply = reply_within(env, "a1", address, OTHER)
        assert reply.startswith("b2:") and source_of(reply) == gw_a, reply


# -- floating IPs -----------------------------------------------------------------------------------------

def test_floating_ip_both_directions_then_detach_and_move(external: ExternalEnv) -> None:
    env = external
    router = env.router("r", ("a",))
    gateway = router_gateway_ip(router)
    fip = env.floating_ip("a1")
    address = fip["floating_ip_address"]
    assert (fip["fixed_ip_address"], fip["router_id"]) == (env.ip("a1"), router["id"])
    outside = env.ip("outside")
    with EchoServer(env.host("a1"), tcp=PORT, tag="a1", peer=True), EchoServer(env.host("a1"), tcp=DENIED_PORT), \
            EchoServer(env.host("a2"), tcp=PORT, tag="a2", peer=True), \
            EchoServer(env.host("outside"), tcp=PORT, peer=True):
        # In: outside connects to the floating IP and a1 sees outside's own address (DNAT only).
        reply = reply_within(env, "outside", address)
        assert reply.startswith("a1:") and source_of(reply) == outside, reply
        assert pings_within(env, "outside", address)
        # Out: a1's own connection leaves from its floating IP; a2's from the router's gateway.
        assert source_of(reply_within(env, "a1", outside)) == address
        assert source_of(reply_within(env, "a2", outside)) == gateway
        # Still a security-group port; and the router's own address forwards nothing in.
        assert shut(env, "outside", address, DENIED_PORT)
        assert shut(env, "outside", gateway)

        env.attach(fip, None)
        assert shut_within(env, "outside", address)
        assert not ping(env.host("outside"), address)
        assert source_of(reply_within(env, "a1", outside)) == gateway

        moved = env.attach(fip, "a2")   # a2 is on s3, a1 on s2
        assert moved["fixed_ip_address"] == env.ip("a2")
        assert reply_within(env, "outside", address).startswith("a2:")
        assert source_of(reply_within(env, "a2", outside)) == address
        assert source_of(reply_within(env, "a1", outside)) == gateway

        env.api.delete(f"/floating-ips/{fip['id']}")
        assert shut_within(env, "outside", address)
        assert source_of(reply_within(env, "a2", outside)) == gateway


# -- the outside as an attacker ---------------------------------------------------------------------------

def test_the_outside_cannot_poison_bindings_spoof_inside_sources_or_reach_fixed_addresses(external: ExternalEnv
                                                                                           ) -> None:
    """From the uplink: unsolicited ARP replies to the router (for an address nobody asked for, and for one outside
    the external network) bind nothing; a frame to a floating IP claiming a source inside the router, and one
    sent straight to a fixed address, never reach the VM; the same frame from an outside source does (control)."""
    env, ext = external, external.run.plan.external
    assert ext is not None
    router = env.router("r", ("a",))
    address = env.floating_ip("a1")["floating_ip_address"]
    up, vm = env.host("upstream"), env.run.plan.vm("a1")
    with EchoServer(env.host("outside"), tcp=PORT, peer=True):
        reply_within(env, "a1", env.ip("outside"))  # the control: resolved through the uplink and bound
    bound = {b["ip_address"]: b["mac_address"] for b in env.api.get(f"/routers/{router['id']}")["mac_bindings"]}
    assert bound == {ext.upstream_ip: up.defaultIntf().MAC()}, bound

    refused = _metric(env, "sdn_arp_refused_total")
    for claimed in ("203.0.113.77", env.ip("outside")):
        send_frame(up, f"poison-{claimed}", eth_src="02:66:66:66:66:66", eth_dst=router["mac_address"], arp_op=2,
                   arp_spa=claimed, arp_sha="02:66:66:66:66:66", arp_tpa=router_gateway_ip(router),
                   arp_tha=router["mac_address"])
    wait_until(lambda: _metric(env, "sdn_arp_refused_total") >= refused + 2, CONVERGE, "the forged replies refused")
    after = {b["ip_address"]: b["mac_address"] for b in env.api.get(f"/routers/{router['id']}")["mac_bindings"]}
    assert after == bound, after

    mac = up.defaultIntf().MAC()
    with Sniffer(env.host("a1"), "spoofed-inside", "to-fixed", "legit") as at_a1:
        send_frame(up, "spoofed-inside", eth_src=mac, eth_dst=router["mac_address"], ip_src=env.ip("a2"),
                   ip_dst=address, udp_dport=PORT)
        send_frame(up, "to-fixed", eth_src=mac, eth_dst=router["mac_address"], ip_src=ext.upstream_ip,
                   ip_dst=vm.ip, udp_dport=PORT)
        send_frame(up, "legit", eth_src=mac, eth_dst=router["mac_address"], ip_src=ext.upstream_ip,
                   ip_dst=address, udp_dport=PORT)
        assert at_a1.wait_for("legit", timeout=10), "the floating IP's frame never reached a1: proves nothing"
    assert not at_a1.seen & {"spoofed-inside", "to-fixed"}, at_a1.seen


# -- taking things away -----------------------------------------------------------------------------------

def test_interface_and_router_deletion_cut_exactly_their_paths(external: ExternalEnv) -> None:
    env = external
    ra = env.router("ra", ("a", "c"))
    env.router("rb", ("b",))
    outside = env.ip("outside")
    a1, c1 = env.ip("a1"), env.ip("c1")
    with EchoServer(env.host("outside"), tcp=PORT), EchoServer(env.host("a1"), tcp=PORT), \
            EchoServer(env.host("c1"), tcp=PORT):
        for src, dst in (("a1", c1), ("c1", a1), ("a1", outside), ("c1", outside), ("b1", outside)):
            reply_within(env, src, dst)

        remove_router_interface(env.api, ra["id"], env.network("c"))
        assert shut_within(env, "c1", a1)
        assert shut(env, "a1", c1) and shut(env, "c1", outside) and not ping(env.host("c1"), env.gateway_ip("c"))
        for src, dst in (("a1", outside), ("b1", outside)):   # the rest stays
            reply_within(env, src, dst, within=2)
        assert ping(env.host("a1"), env.gateway_ip("a"))

        set_external_gateway(env.api, ra["id"], None)
        assert shut_within(env, "a1", outside)
        assert ping(env.host("a1"), env.gateway_ip("a"))
        reply_within(env, "b1", outside, within=2)

        remove_router_interface(env.api, ra["id"], env.network("a"))
        env.api.delete(f"/routers/{ra['id']}")
        wait_until(lambda: not ping(env.host("a1"), env.gateway_ip("a")), CONVERGE, "a's gateway to go silent")
        reply_within(env, "b1", outside, within=2)
        assert ping(env.host("b1"), env.gateway_ip("b"))   # rb's interface: same address, other tenant
    with pytest.raises(ApiError) as err:
        env.api.get(f"/routers/{ra['id']}")
    assert err.value.status == 404


# -- restarts ---------------------------------------------------------------------------------------------

def _metric(env: ExternalEnv, name: str) -> float:
    return env.api.metrics().get(name, 0.0)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_restart_keeps_established_snat_and_floating_ip_connections(external: ExternalEnv, sig: int) -> None:
    env = external
    gateway = router_gateway_ip(env.router("r", ("a", "c")))
    address = env.floating_ip("a2")["floating_ip_address"]
    outside = env.ip("outside")
    with EchoServer(env.host("outside"), tcp=PORT, peer=True) as server, EchoServer(env.host("a2"), tcp=OTHER):
        reply_within(env, "a1", outside)
        reply_within(env, "outside", address, OTHER)
        with Stream(env.host("a1"), "tcp", outside, PORT, message="snat", source_port=43000) as snat, \
                Stream(env.host("outside"), "tcp", address, OTHER, message="fip") as fip:
            env.restart(sig)
            restarted = time.time()
            wait_until(lambda: _metric(env, "sdn_programmer_readbacks") >= len(env.run.plan.switches), 30,
                       "every switch read back after the restart")
            # New connections work too, and the old ones kept exchanging data meanwhile.
            reply_within(env, "c1", outside)
            reply_within(env, "outside", address, OTHER)
            summaries = {"snat": snat.stop(), "fip": fip.stop()}
        peers = server.peers()
    for name, summary in summaries.items():
        assert not summary["broken"] and summary["received"] == summary["sent"], (name, summary)
        assert summary["last_ok_epoch"] > restarted, (name, summary)
    assert peers and {address for _, address, _ in peers} == {gateway}, peers   # a1 and c1 both SNAT'd


# -- bad input ---------------------------------------------------------------------------------------------

def test_bad_router_and_floating_ip_input_is_refused_and_changes_nothing(external: ExternalEnv) -> None:
    env = external
    api = env.api
    router = env.router("r", ("a",))
    other = env.router("other", (), gateway=False)
    fip = env.floating_ip("a1")
    ext, net_a, net_b, net_d = env.network("ext"), env.network("a"), env.network("b"), env.network("d")
    missing = "00000000-0000-0000-0000-000000000000"

    def routers() -> list:
        return sorted((r["id"], str(r)) for r in api.get("/routers"))

    def flows() -> dict[str, list]:
        return {s.dpid: sorted((f["table"], f["priority"], str(f["match"]), str(f["actions"]))
                               for f in api.get(f"/switches/{s.dpid}/flows")) for s in env.run.plan.switches}

    before = routers(), api.get("/floating-ips"), api.get("/networks"), flows()
    bad = [
        ("POST", "/routers", {"name": "x", "external_gateway": {"network_id": net_a}}, 400),   # not external
        ("POST", "/routers", {"name": "x", "external_gateway": {"network_id": missing}}, 404),
        ("POST", "/routers", {"name": "x", "external_gateway": {"network_id": ext, "ip_address": "198.51.100.7"}},
         400),                                                                                  # not in ext's cidr
        ("POST", "/routers", {"name": "x", "external_gateway": {"network_id": ext,
                                                                "ip_address": env.ip("upstream")}}, 409),
        ("POST", f"/routers/{router['id']}/interfaces", {"network_id": ext}, 400),
        ("POST", f"/routers/{missing}/interfaces", {"network_id": net_d}, 404),
        ("POST", f"/routers/{router['id']}/interfaces", {"network_id": missing}, 404),
        ("POST", f"/routers/{other['id']}/interfaces", {"network_id": net_a}, 409),   # a is on r already
        ("POST", f"/routers/{router['id']}/interfaces", {"network_id": net_b}, 409),  # overlaps a's cidr
        ("DELETE", f"/routers/{router['id']}/interfaces/{net_d}", None, 404),         # d is on no router
        ("DELETE", f"/routers/{router['id']}", None, 409),                             # has interfaces
        ("DELETE", f"/routers/{router['id']}/interfaces/{net_a}", None, 409),         # the floating IP needs it
        ("DELETE", f"/networks/{net_a}", None, 409),                                   # on a router
        ("POST", "/floating-ips", {"network_id": net_a}, 400),                         # not external
        ("POST", "/floating-ips", {"network_id": ext, "floating_ip_address": "198.51.100.7"}, 400),
        ("POST", "/floating-ips", {"network_id": ext, "floating_ip_address": env.ip("upstream")}, 409),
        ("POST", "/floating-ips", {"network_id": ext, "floating_ip_address": router_gateway_ip(router)}, 409),
        ("POST", "/floating-ips", {"network_id": ext, "floating_ip_address": fip["floating_ip_address"]}, 409),
        ("POST", "/floating-ips", {"network_id": ext, "port_id": env.port("d1")}, 409),   # no router for d
        ("POST", "/floating-ips", {"network_id": ext, "port_id": env.port("a1")}, 409),   # a1 has one
        ("POST", "/floating-ips", {"network_id": ext, "port_id": missing}, 404),
        ("PATCH", f"/floating-ips/{fip['id']}", {"port_id": env.port("b1")}, 409),       # b has no router
        ("PATCH", f"/networks/{ext}", {"uplink": {"dpid": env.run.plan.vm("a3").dpid,
                                                  "interface": env.run.plan.vm("a3").interface}}, 409),  # a port's
        ("PATCH", f"/networks/{net_d}", {"uplink": env.run.plan.external.uplink}, (400, 409)),  # not external
    ]
    wrong = []
    for method, path, body, code in bad:
        try:
            api.request(method, path, json=body, expect=code if isinstance(code, tuple) else (code,))
        except ApiError as exc:
            wrong.append(f"{method} {path} {body}: expected {code}, got {exc.status}: {exc.body[:200]}")
    assert not wrong, "\n".join(wrong)
    assert (routers(), api.get("/floating-ips"), api.get("/networks"), flows()) == before

    # End to end: what was there still carries traffic.
    with EchoServer(env.host("outside"), tcp=PORT, peer=True):
        assert source_of(reply_within(env, "a1", env.ip("outside"))) == fip["floating_ip_address"]
        assert source_of(reply_within(env, "a2", env.ip("outside"))) == router_gateway_ip(router)
