"""Active health checks of load-balancer members, sent by the controller from each balancer's VIP: no member needs an
address of the controller's, and no member is asked for anything but its service port.

- `targets(policy)`: the members to probe (admin up, of a balancer with a health monitor, on a port bound to a
  switch interface), and every member's status for metrics.
- `HealthChecker`: per member a schedule of one probe every `interval_s`, each given `timeout_s` to be answered;
  `max_retries` failures in a row make it OFFLINE, one success ONLINE. What the controller sends in all is limited by
  one token bucket (the switches' "health" meter limits what comes back).
  - TCP: a SYN from VIP:p (p one of apps.load_balancing.PROBE_PORTS, rotating; a random ISN) to member ip:port. A
    SYN-ACK (acknowledging the ISN) is a success, answered with an RST so the member drops the half-open connection;
    an RST (port closed) or silence until the timeout is a failure.
  - UDP: a small datagram from VIP:p to member ip:port. An ICMP destination unreachable about it (a port
    unreachable, quoting the probe's headers) within the timeout is a failure; silence is a success (Octavia's
    UDP-CONNECT).
- Frames: the probes and the RST are built here, and the answers parsed (pure byte work, as controller/icmp.py).

Time is passed in (`now`, seconds): tested on a clock the tests move. The runtime owns the I/O: it sends the probes
as packet-outs out of the member's port on its switch, hands over the answers its flows send to the controller, and
writes status changes to the store (controller/runtime.py).
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from apps.load_balancing import PROBE_PORTS
from apps.model import HealthMonitor, Policy
from controller.icmp import (
    ETH_HEADER,
    ETH_TYPE_IPV4,
    IP_PROTO_ICMP,
    IPV4_HEADER,
    MIN_FRAME,
    TTL,
    checksum,
    ethernet_payload,
    mac_bytes,
)
from controller.neighbors import TokenBuckets

IP_PROTO_TCP, IP_PROTO_UDP = 6, 17
ICMP_UNREACHABLE = 3
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
PROBE_PORT_FIRST = PROBE_PORTS[0]
PROBE_PORT_COUNT = (~PROBE_PORTS[1] & 0xFFFF) + 1  # 64: 61440-61503
PROBE_RATE = (1000.0, 1000.0)  # probes (and RSTs) the controller sends in all: a second, burst
UDP_PAYLOAD = b"sdn-health-probe"
MONITORED = ("ONLINE", "OFFLINE")  # the statuses a monitor decides
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
_MSS = struct.pack("!BBH", 2, 4, 1460)


# --- what to probe ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A member to probe, with everything its probes need: from the VIP (`vip`, eth_src `vip_mac`) to
    `ip_address:port` at `mac_address`, out of the member's port's `binding` (dpid, interface)."""

    member_id: str
    load_balancer_id: str
    monitor: HealthMonitor
    vip: str
    vip_mac: str
    ip_address: str
    port: int
    mac_address: str
    binding: tuple[str, str]
    status: str  # as the store has it: ONLINE or OFFLINE


@dataclass(frozen=True)
class MemberStatus:
    load_balancer_id: str
    member_id: str
    status: str


def targets(policy: Policy) -> tuple[list[Target], list[MemberStatus]]:
    """The members to probe, and every member's status (for metrics).

    A member is probed when its balancer has a monitor and it is admin up (ONLINE or OFFLINE), and the port holding
    its address (on the VIP's network, or on another network of the router the VIP's network is on) is bound."""
    ports = {(port.network_id, port.ip_address): port for port in policy.ports}
    routers = {interface.network_id: router for router in policy.routers for interface in router.interfaces}
    found: list[Target] = []
    statuses: list[MemberStatus] = []
    for balancer in policy.load_balancers:
        router = routers.get(balancer.network_id)
        networks = [balancer.network_id]
        if router is not None:
            networks += sorted(i.network_id for i in router.interfaces if i.network_id != balancer.network_id)
        for member in balancer.members:
            statuses.append(MemberStatus(balancer.id, member.id, member.status))
            if balancer.health_monitor is None or not member.admin_state_up or member.status not in MONITORED:
                continue
            port = next((p for n in networks if (p := ports.get((n, member.ip_address))) is not None), None)
            if port is None or port.dpid is None or port.interface is None:
                continue
            found.append(Target(member.id, balancer.id, balancer.health_monitor, balancer.vip_address, balancer.mac,
                                member.ip_address, member.port, port.mac_address, (port.dpid, port.interface),
                                member.status))
    return found, statuses


# --- the checker -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """A probe to send now: `frame` out of the target's port."""

    target: Target
    probe_port: int
    frame: bytes


@dataclass(frozen=True)
class Change:
    """A member's status as the checker just found it."""

    member_id: str
    status: str


@dataclass(frozen=True)
class Round:
    """What a round decided: probes to send, status changes to store, and how many due probes the rate limit held
    back (they go out in a later round)."""

    probes: tuple[Probe, ...] = ()
    changes: tuple[Change, ...] = ()
    limited: int = 0


@dataclass(frozen=True)
class Answered:
    """What an answer decided: status changes to store, and frames to send back out of the port it came by."""

    changes: tuple[Change, ...] = ()
    replies: tuple[bytes, ...] = ()
    matched: bool = False  # whether it answered an outstanding probe


@dataclass
class _Outstanding:
    isn: int
    deadline: float


@dataclass
class _State:
    target: Target
    status: str
    next_at: float
    failures: int = 0
    outstanding: dict[int, _Outstanding] = field(default_factory=dict)  # probe port -> its probe


_AnswerKey = tuple[str, str, int, str]  # (vip, member address, member port, monitor type)


def _probe_identity(target: Target) -> tuple:
    """What a member's probes depend on: a change of any of it starts its schedule anew (its status aside)."""
    return (target.monitor, target.vip, target.vip_mac, target.ip_address, target.port, target.mac_address,
            target.binding)


class HealthChecker:
    """Schedules, outstanding probes and findings of every monitored member. Used from one thread (the runtime's
    io thread); `statuses()` and `counters` may be read from others."""

    def __init__(self, *, rate: tuple[float, float] = PROBE_RATE, rng: random.Random | None = None) -> None:
        self._limit = TokenBuckets(*rate, max_keys=1)
        self._rng = rng or random.Random()
        self._members: dict[str, _State] = {}
        self._by_answer: dict[_AnswerKey, str] = {}  # -> member id
        self._statuses: dict[str, MemberStatus] = {}
        self._next_port = 0
        self._ident = 0
        self.counters: dict[str, int] = {"probes_total": 0, "probe_failures_total": 0, "status_changes_total": 0,
                                         "probes_limited_total": 0, "probe_answers_ignored_total": 0,
                                         "probes_unsent_total": 0}

    # --- the members ----------------------------------------------------------------------------------------
    def update(self, found: Iterable[Target], statuses: Iterable[MemberStatus], now: float) -> None:
        """The members to probe as the store has them now (targets()): new ones are probed at once; one whose probes
        changed (address, monitor, binding...) starts anew; its status is the store's."""
        members: dict[str, _State] = {}
        for target in found:
            state = self._members.get(target.member_id)
            if state is None or _probe_identity(state.target) != _probe_identity(target):
                state = _State(target, target.status, now)
            else:
                state.target = target
                if state.status != target.status:  # the store knows better (it reset the member, say)
                    state.status, state.failures = target.status, 0
            members[target.member_id] = state
        self._members = members
        self._by_answer = {_answer_key(s.target): member_id for member_id, s in members.items()}
        self._statuses = {s.member_id: s for s in statuses}

    def statuses(self) -> list[MemberStatus]:
        """Every member's status: the store's as of the last update, with what the checker found since."""
        found = {member_id: state.status for member_id, state in list(self._members.items())}
        return [MemberStatus(s.load_balancer_id, s.member_id, found.get(s.member_id, s.status))
                for s in list(self._statuses.values())]

    def period(self) -> float:
        """How often rounds should run: a quarter of the shortest interval, at most 0.5 s (at least 0.05 s)."""
        intervals = [state.target.monitor.interval_s for state in list(self._members.values())]
        return max(0.05, min([0.5, *(i / 4 for i in intervals)]))

    # --- rounds ---------------------------------------------------------------------------------------------
    def due(self, now: float) -> Round:
        """Expire the probes whose time is up (a failure for TCP, a success for UDP), then the probes due now,
        oldest first, as far as the rate limit allows; each counts as sent now (cancel() one that could not be)."""
        changes: list[Change] = []
        expired = sorted((sent.deadline, member_id, port) for member_id, state in self._members.items()
                         for port, sent in state.outstanding.items() if sent.deadline <= now)
        for _, member_id, port in expired:
            state = self._members[member_id]
            del state.outstanding[port]
            changes += self._result(state, ok=state.target.monitor.type == "udp")
        probes: list[Probe] = []
        due = sorted((state.next_at, member_id) for member_id, state in self._members.items() if state.next_at <= now)
        limited = 0
        for position, (_, member_id) in enumerate(due):
            if not self._limit.take(None, now):
                limited = len(due) - position
                self.counters["probes_limited_total"] += limited
                break
            state = self._members[member_id]
            probes.append(self._probe(state, now))
            interval = state.target.monitor.interval_s
            state.next_at = state.next_at + interval if state.next_at + interval > now else now + interval
        return Round(tuple(probes), tuple(changes), limited)

    def cancel(self, probe: Probe) -> None:
        """A probe that could not be sent (its switch is not connected): neither a success nor a failure."""
        state = self._members.get(probe.target.member_id)
        if state is not None and state.outstanding.pop(probe.probe_port, None) is not None:
            self.counters["probes_total"] -= 1
            self.counters["probes_unsent_total"] += 1

    def _probe(self, state: _State, now: float) -> Probe:
        target = state.target
        port = self._probe_port(state)
        isn = self._rng.getrandbits(32)
        state.outstanding[port] = _Outstanding(isn, now + target.monitor.timeout_s)
        self.counters["probes_total"] += 1
        self._ident = (self._ident + 1) & 0xFFFF
        if target.monitor.type == "tcp":
            frame = tcp_frame(target.vip_mac, target.mac_address, target.vip, target.ip_address, port, target.port,
                              isn, 0, SYN, self._ident)
        else:
            frame = udp_frame(target.vip_mac, target.mac_address, target.vip, target.ip_address, port, target.port,
                              UDP_PAYLOAD, self._ident)
        return Probe(target, port, frame)

    def _probe_port(self, state: _State) -> int:
        """The next of the probe ports, rotating, skipping those this member has a probe out from."""
        for _ in range(PROBE_PORT_COUNT):
            port = PROBE_PORT_FIRST + self._next_port
            self._next_port = (self._next_port + 1) % PROBE_PORT_COUNT
            if port not in state.outstanding:
                return port
        oldest = min(state.outstanding, key=lambda p: state.outstanding[p].deadline)  # 64 out: reuse the oldest's
        del state.outstanding[oldest]
        return oldest

    def _result(self, state: _State, ok: bool) -> list[Change]:
        if ok:
            state.failures = 0
            new = "ONLINE"
        else:
            self.counters["probe_failures_total"] += 1
            state.failures += 1
            new = "OFFLINE" if state.failures >= state.target.monitor.max_retries else state.status
        if new == state.status:
            return []
        state.status = new
        self.counters["status_changes_total"] += 1
        return [Change(state.target.member_id, new)]

    # --- answers --------------------------------------------------------------------------------------------
    def answer(self, dpid: str, interface: str | None, frame: bytes, now: float) -> Answered:
        """A frame a member's probe-answer flow sent the controller, from `interface` of switch `dpid`."""
        parsed = parse_answer(frame)
        member_id = None
        if parsed is not None:
            member_id = self._by_answer.get((parsed.vip, parsed.member, parsed.member_port, parsed.kind))
        state = self._members.get(member_id) if member_id is not None else None
        if parsed is None or state is None or state.target.binding != (dpid, interface):
            self.counters["probe_answers_ignored_total"] += 1
            return Answered()
        target = state.target
        sent = state.outstanding.get(parsed.probe_port)
        if parsed.kind == "udp":  # an ICMP unreachable about a probe still waiting
            if sent is None or sent.deadline < now:
                self.counters["probe_answers_ignored_total"] += 1
                return Answered()
            del state.outstanding[parsed.probe_port]
            return Answered(tuple(self._result(state, ok=False)), matched=True)
        replies: tuple[bytes, ...] = ()
        if parsed.flags & (SYN | ACK | RST) == SYN | ACK:  # whoever it answers, the member holds it half-open
            self._ident = (self._ident + 1) & 0xFFFF
            replies = (tcp_frame(target.vip_mac, target.mac_address, target.vip, target.ip_address,
                                 parsed.probe_port, target.port, parsed.ack, 0, RST, self._ident),)
        if sent is None or sent.deadline < now or parsed.ack != (sent.isn + 1) & 0xFFFFFFFF \
                or not parsed.flags & (SYN | RST):
            self.counters["probe_answers_ignored_total"] += 1
            return Answered(replies=replies)
        del state.outstanding[parsed.probe_port]
        ok = not parsed.flags & RST
        return Answered(tuple(self._result(state, ok=ok)), replies, matched=True)


def _answer_key(target: Target) -> _AnswerKey:
    return (target.vip, target.ip_address, target.port, target.monitor.type)


# --- frames -----------------------------------------------------------------------------------------------------

def _ipv4(src: str, dst: str, protocol: int, payload: bytes, ident: int) -> bytes:
    header = IPV4_HEADER.pack(0x45, 0, IPV4_HEADER.size + len(payload), ident & 0xFFFF, 0x4000, TTL, protocol, 0,
                        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def _l4_checksum(src: str, dst: str, protocol: int, segment: bytes) -> int:
    pseudo = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed + struct.pack(
        "!BBH", 0, protocol, len(segment))
    return checksum(pseudo + segment)


def tcp_frame(eth_src: str, eth_dst: str, src: str, dst: str, sport: int, dport: int, seq: int, ack: int,
              flags: int, ident: int = 0) -> bytes:
    """A TCP segment without data in an Ethernet frame: a SYN carries an MSS option, anything else none."""
    options = _MSS if flags & SYN else b""
    offset = (_TCP.size + len(options)) // 4
    window = 64240 if flags & SYN else 0
    segment = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, offset << 4, flags, window, 0, 0) + options
    total = _l4_checksum(src, dst, IP_PROTO_TCP, segment)
    segment = segment[:16] + struct.pack("!H", total) + segment[18:]
    return (ETH_HEADER.pack(mac_bytes(eth_dst), mac_bytes(eth_src), ETH_TYPE_IPV4)
            + _ipv4(src, dst, IP_PROTO_TCP, segment, ident)).ljust(MIN_FRAME, b"\0")


def udp_frame(eth_src: str, eth_dst: str, src: str, dst: str, sport: int, dport: int, payload: bytes,
              ident: int = 0) -> bytes:
    datagram = _UDP.pack(sport, dport, _UDP.size + len(payload), 0) + payload
    total = _l4_checksum(src, dst, IP_PROTO_UDP, datagram) or 0xFFFF
    datagram = datagram[:6] + struct.pack("!H", total) + datagram[8:]
    return (ETH_HEADER.pack(mac_bytes(eth_dst), mac_bytes(eth_src), ETH_TYPE_IPV4)
            + _ipv4(src, dst, IP_PROTO_UDP, datagram, ident)).ljust(MIN_FRAME, b"\0")


@dataclass(frozen=True)
class ProbeAnswer:
    """A member's answer to a probe: `kind` "tcp" (a segment from member:member_port to vip:probe_port, with its
    flags, seq and ack) or "udp" (an ICMP destination unreachable from the member about a datagram from
    vip:probe_port to member:member_port)."""

    kind: str
    vip: str
    member: str
    member_port: int
    probe_port: int
    flags: int = 0
    seq: int = 0
    ack: int = 0


def _ip_header(packet: bytes) -> tuple[int, int, str, str, bytes] | None:
    """(protocol, fragment field, source, destination, payload) of an IPv4 packet; None if it is not one."""
    if len(packet) < IPV4_HEADER.size or packet[0] >> 4 != 4 or (packet[0] & 0xF) < 5:
        return None
    length = (packet[0] & 0xF) * 4
    _, _, total, _, fragment, _, protocol, _, src, dst = IPV4_HEADER.unpack_from(packet)
    if len(packet) < length:
        return None
    end = min(len(packet), total) if total >= length else len(packet)
    return (protocol, fragment, str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst)),
            packet[length:end])


def parse_answer(frame: bytes) -> ProbeAnswer | None:
    """The probe answer in `frame` (what probe-answer flows send the controller); None when it holds none."""
    try:
        _, _, ethertype, packet = ethernet_payload(frame)
    except ValueError:
        return None
    header = _ip_header(packet) if ethertype == ETH_TYPE_IPV4 else None
    if header is None:
        return None
    protocol, fragment, src, dst, payload = header
    if fragment & 0x1FFF:
        return None
    if protocol == IP_PROTO_TCP and len(payload) >= _TCP.size:
        sport, dport, seq, ack, _, flags, _, _, _ = _TCP.unpack_from(payload)
        return ProbeAnswer("tcp", dst, src, sport, dport, flags, seq, ack)
    if protocol == IP_PROTO_ICMP and len(payload) >= 8 and payload[0] == ICMP_UNREACHABLE:
        inner = _ip_header(payload[8:])
        if inner is None or inner[0] != IP_PROTO_UDP or len(inner[4]) < 4 or inner[3] != src:
            return None
        sport, dport = struct.unpack_from("!HH", inner[4])
        return ProbeAnswer("udp", inner[2], src, dport, sport)
    return None
