"""The health checker's decisions on a clock the tests move by hand: schedules, retries, recovery, timeouts, the rate
limit, who is not probed; and its frames, read back by scapy (checksums included)."""

from __future__ import annotations

import dataclasses
import random

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.l2 import Ether

from apps.model import HealthMonitor, LbMember, LoadBalancer, Network, Policy, Port, Router, RouterInterface
from controller import health
from controller.health import ACK, SYN, Change, HealthChecker, parse_answer, targets

S1 = "0000000000000001"
VIP, VIP_MAC = "10.0.0.100", "fa:16:3f:01:00:04"
TCP_MONITOR = HealthMonitor("tcp", 1.0, 0.5, 2)
UDP_MONITOR = HealthMonitor("udp", 1.0, 0.5, 2)
NET = Network("n1", "a", "10.0.0.0/24", "10.0.0.1", 5)
NET2 = Network("n2", "b", "10.1.0.0/24", "10.1.0.1", 6)
PORTS = (Port("p1", "n1", "a1", "fa:16:3e:00:00:01", "10.0.0.11", S1, "s1-eth1"),
         Port("p2", "n1", "a2", "fa:16:3e:00:00:02", "10.0.0.12", S1, "s1-eth2"),
         Port("p3", "n2", "b1", "fa:16:3e:00:00:03", "10.1.0.13", S1, "s1-eth3"),
         Port("p4", "n1", "a4", "fa:16:3e:00:00:04", "10.0.0.14", None, None))
ROUTER = Router("r1", "r", "fa:16:3f:00:00:07", 7,
                (RouterInterface("n1", "10.0.0.1"), RouterInterface("n2", "10.1.0.1")))


def balancer(*members: LbMember, monitor: HealthMonitor | None = TCP_MONITOR, lb_id: str = "lb1") -> LoadBalancer:
    return LoadBalancer(lb_id, "web", "n1", VIP, "tcp", 80, key=4, mac=VIP_MAC, health_monitor=monitor,
                        members=members)


def member(n: int, ip: str = "10.0.0.11", port: int = 8080, **fields) -> LbMember:
    return LbMember(f"m{n}", "lb1", ip, port, key=n, **{"status": "ONLINE", **fields})


def checker(*members: LbMember, monitor: HealthMonitor = TCP_MONITOR, now: float = 0.0, **options) -> HealthChecker:
    found, statuses = targets(Policy((NET, NET2), PORTS, routers=(ROUTER,),
                                     load_balancers=(balancer(*members, monitor=monitor),)))
    made = HealthChecker(rng=random.Random(7), **options)
    made.update(found, statuses, now)
    return made


def syn_ack(probe: health.Probe, ack_offset: int = 1, flags: str = "SA") -> bytes:
    syn = Ether(probe.frame)
    return bytes(Ether(src=syn.dst, dst=syn.src) / IP(src=syn[IP].dst, dst=syn[IP].src)
                 / TCP(sport=syn[TCP].dport, dport=syn[TCP].sport, seq=1234, ack=syn[TCP].seq + ack_offset,
                       flags=flags))


def unreachable(probe: health.Probe, code: int = 3) -> bytes:
    sent = Ether(probe.frame)
    return bytes(Ether(src=sent.dst, dst=sent.src) / IP(src=sent[IP].dst, dst=sent[IP].src)
                 / ICMP(type=3, code=code) / bytes(sent[IP])[:28])


# --- what is probed -----------------------------------------------------------------------------------------------

def test_only_monitored_admin_up_members_on_bound_ports_are_targets():
    members = (member(1), member(2, "10.0.0.12", admin_state_up=False, status="DRAINING"),
               member(3, "10.1.0.13"), member(4, "10.0.0.14"), member(5, "10.0.0.99"), member(6, status="OFFLINE"))
    policy = Policy((NET, NET2), PORTS, routers=(ROUTER,),
                    load_balancers=(balancer(*members), balancer(member(7, status="NO_MONITOR"), monitor=None,
                                                                 lb_id="lb2")))
    found, statuses = targets(policy)
    assert [t.member_id for t in found] == ["m1", "m3", "m6"]  # m3 through the router; m4 unbound; m5 no port
    first = found[0]
    assert (first.vip, first.vip_mac, first.ip_address, first.port, first.mac_address, first.binding) == (
        VIP, VIP_MAC, "10.0.0.11", 8080, "fa:16:3e:00:00:01", (S1, "s1-eth1"))
    assert found[1].mac_address == "fa:16:3e:00:00:03" and found[2].status == "OFFLINE"
    assert [(s.member_id, s.status) for s in statuses] == [
        ("m1", "ONLINE"), ("m2", "DRAINING"), ("m3", "ONLINE"), ("m4", "ONLINE"), ("m5", "ONLINE"),
        ("m6", "OFFLINE"), ("m7", "NO_MONITOR")]


def test_draining_and_unmonitored_members_are_never_probed():
    made = checker(member(2, "10.0.0.12", admin_state_up=False, status="DRAINING"))
    assert made.due(0.0).probes == () and made.due(100.0).probes == ()


# --- schedules, retries, recovery -----------------------------------------------------------------------------------

def test_one_probe_per_interval_and_silence_for_max_retries_probes_is_offline():
    made = checker(member(1))
    first = made.due(0.0)
    assert len(first.probes) == 1 and first.changes == ()
    assert made.due(0.4).probes == ()
    assert made.due(0.5) == health.Round()  # timed out: one failure, still ONLINE (2 retries)
    assert made.due(0.9).probes == ()
    assert len(made.due(1.0).probes) == 1
    assert made.due(1.5).changes == (Change("m1", "OFFLINE"),)  # at interval * max_retries + timeout from the start
    assert made.statuses()[0].status == "OFFLINE"
    assert made.counters["probes_total"] == 2 and made.counters["probe_failures_total"] == 2
    assert made.counters["status_changes_total"] == 1
    made.due(2.0)
    assert made.due(2.5).changes == ()  # already OFFLINE: no change again


def test_a_syn_ack_is_a_success_answered_with_an_rst_and_one_brings_it_back_online():
    made = checker(member(1, status="OFFLINE"))
    probe, = made.due(0.0).probes
    answered = made.answer(S1, "s1-eth1", syn_ack(probe), 0.2)
    assert answered.changes == (Change("m1", "ONLINE"),) and answered.matched
    rst, = answered.replies
    syn, reset = Ether(probe.frame), Ether(rst)
    assert (reset.src, reset.dst, reset[IP].src, reset[IP].dst) == (VIP_MAC, "fa:16:3e:00:00:01", VIP, "10.0.0.11")
    assert (reset[TCP].sport, reset[TCP].dport, reset[TCP].flags, reset[TCP].seq) == (
        syn[TCP].sport, 8080, "R", syn[TCP].seq + 1)
    assert made.due(0.5).changes == ()  # answered: nothing left to time out


def test_failures_must_be_in_a_row():
    made = checker(member(1))
    made.due(0.0)
    made.due(0.5)  # failure 1
    probe, = made.due(1.0).probes
    made.answer(S1, "s1-eth1", syn_ack(probe), 1.1)  # success: the count starts again
    made.due(2.0)
    assert made.due(2.5).changes == ()  # failure 1 again
    made.due(3.0)
    assert made.due(3.5).changes == (Change("m1", "OFFLINE"),)


def test_an_rst_is_a_failure_at_once():
    made = checker(member(1, status="ONLINE"), monitor=dataclasses.replace(TCP_MONITOR, max_retries=1))
    probe, = made.due(0.0).probes
    answered = made.answer(S1, "s1-eth1", syn_ack(probe, flags="RA"), 0.1)
    assert answered.changes == (Change("m1", "OFFLINE"),) and answered.replies == ()
    assert made.due(0.5).changes == ()  # not counted twice


def test_answers_that_answer_no_probe_are_ignored():
    made = checker(member(1, status="OFFLINE"))
    probe, = made.due(0.0).probes
    assert made.answer(S1, "s1-eth1", syn_ack(probe, ack_offset=5), 0.1).changes == ()  # not our ISN
    assert made.answer(S1, "s1-eth2", syn_ack(probe), 0.1).changes == ()  # from another port
    assert made.answer(S1, "s1-eth1", b"\0" * 60, 0.1).changes == ()
    late = made.answer(S1, "s1-eth1", syn_ack(probe), 0.6)  # past the timeout: still RST, but no success
    assert late.changes == () and len(late.replies) == 1
    assert made.counters["probe_answers_ignored_total"] == 4
    assert made.answer(S1, "s1-eth1", syn_ack(probe), 0.2).changes == (Change("m1", "ONLINE"),)


def test_probe_ports_rotate_through_the_range_and_isns_are_random():
    made = checker(member(1), member(2, "10.0.0.12"))
    ports, isns = [], set()
    for second in range(40):
        for probe in made.due(float(second)).probes:
            ports.append(Ether(probe.frame)[TCP].sport)
            isns.add(Ether(probe.frame)[TCP].seq)
    assert ports[:3] == [61440, 61441, 61442] and ports[64] == 61440
    assert set(ports) == set(range(61440, 61504)) and len(isns) == 80


def test_the_rate_limit_holds_back_due_probes_oldest_first():
    made = checker(*(member(n, "10.0.0.11", 8000 + n) for n in range(1, 6)), rate=(2.0, 2.0))
    first = made.due(0.0)
    assert len(first.probes) == 2 and first.limited == 3
    assert made.due(0.0).probes == ()
    second = made.due(0.5)  # one token back; the oldest due go first
    assert [p.target.member_id for p in second.probes] == ["m3"]
    assert made.counters["probes_limited_total"] == 3 + 3 + 2


def test_a_probe_that_could_not_be_sent_counts_for_nothing():
    made = checker(member(1), monitor=dataclasses.replace(TCP_MONITOR, max_retries=1))
    probe, = made.due(0.0).probes
    made.cancel(probe)
    assert made.due(0.5).changes == () and made.counters["probes_total"] == 0
    assert made.counters["probes_unsent_total"] == 1


def test_an_update_keeps_schedules_and_restarts_changed_members():
    made = checker(member(1), member(2, "10.0.0.12"))
    made.due(0.0)
    made.due(0.5)  # both failed once
    found, statuses = targets(Policy((NET,), PORTS, load_balancers=(balancer(member(1), member(2, "10.0.0.12", 81)),)))
    made.update(found, statuses, 0.7)  # m2 now probes port 81: anew, at once
    assert [p.target.member_id for p in made.due(0.7).probes] == ["m2"]
    assert [p.target.member_id for p in made.due(1.0).probes] == ["m1"]
    assert made.due(1.5).changes == (Change("m1", "OFFLINE"),)  # m1 kept its count
    made.update([], [], 2.0)
    assert made.due(5.0) == health.Round() and made.statuses() == []


def test_rounds_run_often_enough_for_the_shortest_interval():
    assert HealthChecker().period() == 0.5
    assert checker(member(1), monitor=dataclasses.replace(TCP_MONITOR, interval_s=0.4)).period() == 0.1


# --- UDP ------------------------------------------------------------------------------------------------------------

def test_udp_silence_is_a_success_and_a_port_unreachable_a_failure():
    made = checker(member(1, status="OFFLINE"), monitor=UDP_MONITOR)
    probe, = made.due(0.0).probes
    sent = Ether(probe.frame)
    assert (sent.src, sent.dst, sent[IP].src, sent[IP].dst, sent[UDP].sport, sent[UDP].dport) == (
        VIP_MAC, "fa:16:3e:00:00:01", VIP, "10.0.0.11", 61440, 8080)
    assert made.due(0.5).changes == (Change("m1", "ONLINE"),)
    for second in (1.0, 2.0):
        probe, = made.due(second).probes
        answered = made.answer(S1, "s1-eth1", unreachable(probe), second + 0.1)
        assert answered.matched and answered.replies == ()
    assert answered.changes == (Change("m1", "OFFLINE"),)


def test_an_icmp_error_about_another_datagram_is_ignored():
    made = checker(member(1), monitor=UDP_MONITOR)
    probe, = made.due(0.0).probes
    other = Ether(probe.frame)
    other[UDP].sport = 5000
    sent = Ether(probe.frame)
    frame = bytes(Ether(src=sent.dst, dst=sent.src) / IP(src="10.0.0.11", dst=VIP) / ICMP(type=3, code=3)
                  / bytes(other[IP])[:28])
    assert not made.answer(S1, "s1-eth1", frame, 0.1).matched


# --- frames ---------------------------------------------------------------------------------------------------------

def test_a_syn_is_a_valid_segment_from_the_vip():
    frame = health.tcp_frame(VIP_MAC, "fa:16:3e:00:00:01", VIP, "10.0.0.11", 61440, 8080, 0xDEADBEEF, 0, SYN, 9)
    parsed = Ether(frame)
    assert len(frame) >= 60 and parsed.type == 0x0800
    assert (parsed[IP].ttl, parsed[IP].id, parsed[IP].flags) == (64, 9, "DF")
    assert (parsed[TCP].flags, parsed[TCP].seq, parsed[TCP].options) == ("S", 0xDEADBEEF, [("MSS", 1460)])
    rebuilt = Ether(frame)
    del rebuilt[IP].chksum, rebuilt[TCP].chksum
    rebuilt = Ether(bytes(rebuilt))
    assert (rebuilt[IP].chksum, rebuilt[TCP].chksum) == (parsed[IP].chksum, parsed[TCP].chksum)
    datagram = Ether(health.udp_frame(VIP_MAC, "fa:16:3e:00:00:01", VIP, "10.0.0.11", 61441, 53, b"x"))
    checked = datagram[UDP].chksum
    del datagram[UDP].chksum
    assert Ether(bytes(datagram))[UDP].chksum == checked


def test_answers_are_parsed():
    made = checker(member(1))
    probe, = made.due(0.0).probes
    answer = parse_answer(syn_ack(probe))
    assert (answer.kind, answer.vip, answer.member, answer.member_port, answer.probe_port, answer.flags) == (
        "tcp", VIP, "10.0.0.11", 8080, 61440, SYN | ACK)
    udp = checker(member(1), monitor=UDP_MONITOR)
    probe, = udp.due(0.0).probes
    answer = parse_answer(unreachable(probe, code=1))
    assert (answer.kind, answer.vip, answer.member, answer.member_port, answer.probe_port) == (
        "udp", VIP, "10.0.0.11", 8080, 61440)
    assert parse_answer(bytes(Ether() / IP() / ICMP(type=0))) is None
    assert parse_answer(bytes(Ether() / IP(src="10.0.0.11", dst=VIP) / ICMP(type=3) / IPerror(src=VIP, dst="10.0.0.9")
                              / UDPerror())) is None  # about a datagram to someone else
