"""A VM flooding the controller: the per-switch meters hold it, and legitimate packet-ins still work meanwhile.

Topology and fixture: tests/integration/routers_fixtures.py (`external`: s1 - s2 - s3, the uplink on s1). a1 (on s2)
sends, as fast as a raw socket goes, UDP with TTL 1 to its router's MAC (each one a time-exceeded packet-in, through
s2's `ttl_exceeded` meter) mixed with LLDP look-alikes (which a VM port never gets to the controller). The controller's
own counter (`sdn_packet_ins_total{kind="time_exceeded"}`) must grow by no more than the meter lets through, while:
c1 on s3 still gets its time-exceeded (meters are per switch), the router's first SNAT connection still resolves the
upstream by ARP through the uplink (neighbor and arp_reply packet-ins, on s1), LLDP keeps every link, routed TCP and
UDP from the flooding switch still flow, and REST reads and writes still answer. Latency under a flood is measured in
bench/bench_flood.py, not here.
"""

from __future__ import annotations

import re
import time

import pytest
from helpers import EchoServer, connect, ping_output, wait_until
from routers_fixtures import ALLOWED_PORTS, ExternalEnv
from scapy.all import IP, UDP, Ether, Raw  # type: ignore[attr-defined]

from apps.pipeline import METERS
from mininet_topos import ovs
from mininet_topos.reach import Flood

pytestmark = pytest.mark.timeout(180)

FLOOD_S = 10.0  # long enough for every check below to run inside it (asserted)
PORT = ALLOWED_PORTS[0]
TTL_METER = next(m for m in METERS if m.name == "ttl_exceeded")
TIME_EXCEEDED = 'sdn_packet_ins_total{kind="time_exceeded"}'
LLDP_LOOKALIKE = bytes.fromhex("0180c200000e" "fa163e666666" "88cc") + bytes.fromhex(
    "020704" "000000000000bb" "040302" "0001" "060200" "78" "0000") + bytes(32)


def flood_frames(env: ExternalEnv, router: dict) -> list[bytes]:
    a1 = env.run.plan.vm("a1")
    expiring = Ether(src=a1.mac, dst=router["mac_address"]) / IP(src=a1.ip, dst=env.ip("c1"), ttl=1) / UDP(
        sport=40000, dport=PORT) / Raw(b"flood")
    return [bytes(expiring), LLDP_LOOKALIKE]


def settled(env: ExternalEnv, name: str) -> float:
    """The counter once the controller has caught up with what the switches sent (two reads 0.5 s apart agree)."""
    last = [env.api.metrics().get(name, 0.0)]

    def steady() -> bool:
        time.sleep(0.5)  # the interval between the two reads that must agree, not a wait for an outcome
        now = env.api.metrics().get(name, 0.0)
        same, last[0] = now == last[0], now
        return same

    wait_until(steady, 30, f"{name} to settle")
    return last[0]


def test_a_flood_toward_the_controller_is_held_by_the_meters(external: ExternalEnv) -> None:
    env = external
    router = env.router("r", ("a", "c"))  # gateway on ext with SNAT: its upstream is not resolved yet
    c1, outside = env.ip("c1"), env.ip("outside")
    with EchoServer(env.host("c1"), tcp=PORT):
        wait_until(lambda: connect(env.host("a1"), "tcp", c1, PORT, timeout=1), 10, "a1 -> c1 through the router")
    before = env.api.metrics()
    assert before.get('sdn_packet_ins_total{kind="arp_reply"}', 0) == 0  # nothing resolved through the uplink yet
    flooded = env.run.plan.switch(env.run.plan.vm("a1").switch).name
    count_before = settled(env, TIME_EXCEEDED)

    started = time.monotonic()
    with Flood(env.host("a1"), flood_frames(env, router), FLOOD_S) as flood, \
            EchoServer(env.host("a2"), tcp=PORT, udp=PORT), EchoServer(env.host("outside"), tcp=PORT):
        # Legitimate packet-ins, during the flood: a time-exceeded on another switch, the router's ARP through the
        # uplink (its first SNAT connection), LLDP on every link.
        out = ping_output(env.host("c1"), env.ip("a1"), ttl=1, timeout=2)
        assert re.search(rf"From {re.escape(env.gateway_ip('c'))}\b.*Time to live exceeded", out), out
        wait_until(lambda: connect(env.host("a2"), "tcp", outside, PORT, timeout=1), 5, "SNAT (and its ARP)")
        # Routed TCP and UDP from another VM on the flooding switch (c2), and REST reads and writes, still answer.
        for proto in ("tcp", "udp"):
            wait_until(lambda p=proto: connect(env.host("c2"), p, env.ip("a2"), PORT, 1), 5, f"{proto} c2 -> a2")
        rule = env.api.create("security-group-rules", {"security_group_id": env.group, "direction": "ingress",
                                                       "protocol": "udp", "port_range_min": 7000})
        env.api.delete(f"/security-group-rules/{rule['id']}")
        assert all(len(s["links"]) for s in env.api.get("/switches"))
        assert flood.proc is not None and flood.proc.poll() is None, "the checks outlasted the flood"
        sent = flood.wait()
    elapsed = time.monotonic() - started

    count_after = settled(env, TIME_EXCEEDED)
    after = env.api.metrics()
    reached = count_after - count_before
    # The meter's rate over the flood plus its burst bucket (OVS may let up to a few bursts through at once, as
    # tests/bridge/test_meter_limits.py measured), and c1's legitimate ping.
    allowed = TTL_METER.rate_pps * elapsed + 5 * TTL_METER.burst + 3
    print(f"flood: {sent} frames in {elapsed:.1f} s ({sent / elapsed:.0f}/s); time-exceeded packet-ins reaching the "
          f"controller: {reached:.0f} ({reached / elapsed:.0f}/s), allowed {allowed:.0f}")
    stats = ovs.ofctl("meter-stats", flooded)
    meter = re.search(rf"meter:{TTL_METER.id} .*packet_in_count:(\d+) .*\n\s*0: packet_count:(\d+)", stats)
    assert meter, stats
    metered, dropped = int(meter[1]), int(meter[2])
    print(f"{flooded}'s {TTL_METER.name} meter: {metered} packets in, {dropped} dropped")
    assert metered > 5 * allowed, f"the flood was too weak to prove anything: {stats}"
    assert 0 < reached <= allowed  # what reached the controller: the meter's rate, not the flood's
    assert dropped >= metered - allowed  # the switch dropped the rest, not the controller
    assert after.get('sdn_packet_ins_total{kind="arp_reply"}', 0) >= 1  # the router's ARP was answered
    assert after.get("sdn_lldp_refused_total", 0) == before.get("sdn_lldp_refused_total", 0)  # look-alikes dropped
    wait_until(lambda: sum(len(s["links"]) for s in env.api.get("/switches")) == 2 * len(env.run.plan.links), 10,
               "every link to stay")
