"""An exact, pure simulator of compiled flow tables, so tests assert packet outcomes, not flow text.

It follows OpenFlow 1.3 as Open vSwitch implements it (checked against OVS 3.1 with ovs-ofctl and
ofproto/trace), and it is strict where OVS is: flows OVS would refuse (missing match prerequisites,
set_field on a read-only field, set_field vlan_vid without OFPVID_PRESENT or on a frame not known to be
tagged) and gotos the pipeline declaration does not allow raise FlowError when the tables are built,
so a compiler bug fails its unit test instead of a flow-mod on a real switch. Ambiguous lookups (two
flows of equal priority matching one packet) raise too: OVS would pick one arbitrarily.

Each action checks and simulates itself (apps/actions.py) and each field declares its prerequisites,
writability and value when absent (apps/fields.py); this module is the classifier, the passes and
recirculations the actions run in, and conntrack.

A packet is a dict of apps.flows.FIELDS names -> int. vlan_vid carries OFPVID_PRESENT when tagged and
is absent when untagged; registers, ct_state/ct_zone/ct_mark and vlan_vid read as 0 when absent (as on
a switch); any other absent field cannot match a flow that requires it. Outputs carry the frame only:
in_port, registers, the conntrack fields and conj_id are pipeline metadata and do not leave the switch.

Beyond lookups it models, as OVS 3.1 does (each point checked with ofproto/trace, or by sending packets
through a netdev bridge and reading flow counters):
- resubmit: the target table runs as a subroutine (its gotos included), then the calling flow's next
  action; the packet's changes persist. A pass allows 4096 resubmits and gotos, and 64 nested
  resubmits back to the same or an earlier table.
- ct: conntrack with a Conntrack that the caller owns across packets. With a table, a clone of the
  packet recirculates there with ct_state, ct_zone, ct_mark set and the registers as they were; after
  any ct the calling pass continues with the packet untracked (its conntrack fields cleared). A commit
  with a mark mask sets only those bits of the connection's ct_mark.
- conjunctive matches: conjunction(id, k/n) clause flows, and the second lookup with conj_id = id.
- select groups: a bucket chosen from a hash of the packet's connection (apps.groups.bucket_for: a stand-in for
  the datapath's hash, spread over the buckets by weight exactly as OVS's dp_hash table), its actions run on a
  copy of the packet.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, NoReturn

from apps.actions import CONTROLLER, OFPP_CONTROLLER, Action, Conjunction, Nat, Output
from apps.fields import (
    CT_DNAT,
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_RPL,
    CT_SNAT,
    CT_TRK,
    ETH_TYPE_IP,
    FIELD,
    FIELDS,
    IP_ANY,
    IP_PROTO,
    OFPVID_PRESENT,
    Packet,
    Scope,
    Write,
    read,
)
from apps.flows import Flow, Match, set_field
from apps.groups import Bucket, Group, bucket_for
from apps.pipeline import METERS, PIPELINE, Table
from apps.topology import Topology

Port = int | str

METER_NAMES = frozenset(meter.name for meter in METERS)
_METADATA = frozenset(name for name, declared in FIELD.items() if declared.scope is not Scope.FRAME)
MAX_DEPTH = 64  # OVS: nested resubmits back to the same or an earlier table, per pass
MAX_RESUBMITS = 4096  # OVS: resubmits and gotos per pass


class FlowError(Exception):
    """Flows a switch would refuse, or that match one packet ambiguously: a compiler bug."""


class LoopError(Exception):
    """A frame circulates between switches (or reaches one port twice)."""


class _Stopped(Exception):
    """An action ended its flow's processing (apps.actions.Simulation.stop)."""


DEFAULT_TTL = 64  # the nw_ttl of an IP packet that names none


def packet(**fields: int | str) -> Packet:
    """A packet from field=value keywords (ints, MAC/IPv4 strings); vlan_vid=0 means untagged; an IP packet
    carries nw_ttl DEFAULT_TTL unless given one."""
    for name in fields:
        if name not in FIELDS:
            raise ValueError(f"unknown packet field {name}")
    if fields.get("eth_type") in IP_ANY:
        fields.setdefault("nw_ttl", DEFAULT_TTL)
    pkt = _untag_none({name: set_field(name, value).value for name, value in fields.items()})
    _check_fields(pkt)
    return pkt


@dataclass
class Result:
    """What one switch did with one packet."""

    outputs: list[tuple[Port, Packet]] = field(default_factory=list)
    path: list[tuple[str, Flow]] = field(default_factory=list)  # (table, flow hit), in order, ct clones' too

    @property
    def ports(self) -> list[Port]:
        return [port for port, _ in self.outputs]

    @property
    def to_controller(self) -> bool:
        return CONTROLLER in self.ports


class Delivery(NamedTuple):
    """A frame leaving the fabric: out a non-link port, or to the controller."""

    dpid: str
    port: Port
    packet: Packet


@dataclass(frozen=True)
class _Shape:
    """Flows of one priority that match exactly on the same fields, hashed on those fields' values
    (a tuple space search, as the OVS classifier does), so lookups stay fast with 1,000s of flows."""

    fields: tuple[str, ...]
    flows: dict[tuple[int, ...], list[Flow]]


class SwitchTables:
    """One switch's flows, checked and indexed once; reuse it across many packets.

    `pipeline` declares the tables (apps.pipeline by default; tests of loops declare their own); `groups` are
    the switch's select groups, which its flows' GroupActions name.
    """

    def __init__(self, flows: Iterable[Flow], pipeline: Iterable[Table] = PIPELINE, groups: Iterable[Group] = ()) \
            -> None:
        self.pipeline = {table.name: table for table in pipeline}
        self.groups: dict[int, Group] = {}
        for group in groups:
            problem = group.problem()
            if problem is not None or group.group_id in self.groups:
                raise FlowError(f"{problem or 'two groups with one id'}: {group}")
            self.groups[group.group_id] = group
        self.first_table = min(self.pipeline.values(), key=lambda table: table.number).name
        shapes: dict[tuple[str, int], dict[tuple[str, ...], _Shape]] = {}
        keys: set[tuple[str, int, Match]] = set()
        clauses: dict[tuple[str, int], set[tuple[int, int, int]]] = {}  # (table, id) -> (priority, n, k)
        for flow in flows:
            _check_flow(flow, self.pipeline, self.groups)
            if flow.key in keys:
                raise FlowError(f"two flows with key {flow.key}")
            keys.add(flow.key)
            exact = tuple(name for name, _, mask in flow.match if mask is None)
            shape = shapes.setdefault((flow.table, flow.priority), {}).setdefault(exact, _Shape(exact, {}))
            shape.flows.setdefault(tuple(val for _, val, mask in flow.match if mask is None), []).append(flow)
            for action in flow.actions:
                if isinstance(action, Conjunction):
                    clauses.setdefault((flow.table, action.id), set()).add(
                        (flow.priority, action.n_clauses, action.clause))
        _check_conjunctions(clauses)
        self._tables: dict[str, list[tuple[int, list[_Shape]]]] = {}
        for (table, priority), by_fields in sorted(shapes.items(), key=lambda item: -item[0][1]):
            self._tables.setdefault(table, []).append((priority, list(by_fields.values())))

    def lookup(self, table: str, pkt: Packet) -> Flow | None:
        """The flow `table` applies to `pkt`, conjunctive matches resolved; None on a table miss."""
        return self._lookup(table, pkt, conjunctive=True)

    def _lookup(self, table: str, pkt: Packet, conjunctive: bool) -> Flow | None:
        """OVS's classifier: the highest priority decides. Clause flows count only in the first lookup
        (`conjunctive`); a completed conjunction looks the table up again with conj_id set (the lowest
        id first), and if that finds nothing the search goes on below the clauses' priority."""
        for priority, shapes in self._tables.get(table, ()):
            hits = [
                flow
                for shape in shapes
                for flow in shape.flows.get(tuple(read(pkt, name) for name in shape.fields), ())
                if _matches(flow.match, pkt)
            ]
            clauses = [flow for flow in hits if _is_clause(flow)] if conjunctive else []
            plain = [flow for flow in hits if not _is_clause(flow)]
            if len(plain) > 1 or (plain and clauses):
                raise FlowError(f"ambiguous: {len(plain) + len(clauses)} flows in {table} at priority {priority} "
                                f"match {pkt}: {plain + clauses}")
            if plain:
                return plain[0]
            # OVS follows whichever completed conjunction it meets first ("unpredictable results" for
            # overlapping ones, ovs-fields(7)): harmless only when every choice acts the same.
            chosen = [self._lookup(table, {**pkt, "conj_id": conj_id}, conjunctive=False)
                      for conj_id in _completed_conjunctions(clauses)]
            if len({_effect(flow) for flow in chosen}) > 1:
                raise FlowError(f"ambiguous: conjunctions in {table} at priority {priority} match {pkt} and "
                                f"lead to flows that differ: {chosen}")
            if chosen and chosen[0] is not None:
                return chosen[0]
        return None


class Conntrack:
    """Connection tracking that outlives one packet, so a test can send a request, its reply, then more.

    It follows OVS 3.1's userspace conntrack (checked by sending packets through a netdev bridge): a
    connection's packets are +trk+new until it sees its first reply, then +trk+est; replies are
    +trk+est+rpl. Only a committed packet creates a connection, with ct_mark 0 unless set_mark sets it.
    An ICMP echo reply that has no connection is +trk+inv. A connection is keyed by zone, IPv4 source,
    destination and protocol, plus the ports for TCP and UDP or the echo type for ICMP (echo request 8
    pairs with reply 0). Not modelled (ValueError): IPv6, other ICMP types (errors are +rel in OVS),
    ICMP ids, and TCP flags (OVS tracks TCP state: a second bare ACK of an unanswered connection is
    already +est there; here every protocol waits for the reply).

    NAT: a commit with nat(src) or nat(dst) on a new connection records its translation and rewrites the
    packet: src takes ip_min (the next address of the range if that one is taken) and keeps its source
    port when it is free and within the port range, else the lowest free one, so that two connections
    never share a translated tuple; dst takes ip_min and port_min. Any nat on a later packet of the
    connection applies the translation (original direction) or its reverse (replies); translated
    packets carry +snat or +dnat as OVS sets them (a reply of an SNATted connection is +dnat).

    Each switch has its own table, as on separate hosts. shared=True gives all switches one table, as
    the netdev bridges of one ovs-vswitchd (the Mininet test network) share one datapath's conntrack.
    """

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        self._tables: dict[str, dict[tuple[int, _Tuple], tuple[_Connection, bool]]] = {}

    def track(self, dpid: str, zone: int, pkt: Packet, commit: bool, set_mark: int | None,
              mark_mask: int | None = None, nat: Nat | None = None) -> tuple[int, int]:
        """(ct_state, ct_mark) of `pkt` passing ct in `zone` of switch `dpid`, updating the connections and
        translating `pkt` by `nat`; a commit sets the bits of `mark_mask` to those of `set_mark` (all of them
        without a mask)."""
        table = self._tables.setdefault("" if self.shared else dpid, {})
        here, may_start = _conn_tuple(pkt)
        found = table.get((zone, here))
        if found is not None:
            conn, is_reply = found
            conn.replied |= is_reply
            if conn.replied:
                state = CT_TRK | CT_EST | (CT_RPL if is_reply else 0)
            else:
                state = CT_TRK | CT_NEW
            if nat is not None and conn.nat is not None:
                state |= _translate(pkt, _reverse(conn.original) if is_reply else conn.translated,
                                    conn.nat if not is_reply else _UNDO[conn.nat])
        elif may_start:
            conn, state = _Connection(here, here), CT_TRK | CT_NEW
            if commit:
                if nat is not None and nat.kind is not None:
                    conn.nat, conn.translated = nat.kind, _allocate(table, zone, here, nat)
                    state |= _translate(pkt, conn.translated, nat.kind)
                table[(zone, here)] = (conn, False)
                table[(zone, _reverse(conn.translated))] = (conn, True)
        else:
            return CT_TRK | CT_INV, 0
        if commit and set_mark is not None:
            conn.mark = set_mark if mark_mask is None else conn.mark & ~mark_mask | set_mark
        return state, conn.mark


_Tuple = tuple[int, ...]  # (ipv4 src, dst, proto, then the L4 source and destination ports, or the ICMP type)
_PORT_FIELDS = {IP_PROTO["tcp"]: ("tcp_src", "tcp_dst"), IP_PROTO["udp"]: ("udp_src", "udp_dst")}
_ICMP_ECHO_PAIRS = {8: 0, 0: 8}  # echo request <-> echo reply
_NAT_STATE = {"src": CT_SNAT, "dst": CT_DNAT}
_UNDO = {"src": "dst", "dst": "src"}  # undoing a translation of one end rewrites the other end of the reply
_EPHEMERAL = (1024, 65535)  # the ports a source translation without a port range may move to


@dataclass
class _Connection:
    original: _Tuple
    translated: _Tuple  # the original direction as it leaves the translation (the original when none)
    mark: int = 0
    replied: bool = False
    nat: str | None = None  # "src" or "dst" when translated


def _conn_tuple(pkt: Packet) -> tuple[_Tuple, bool]:
    """The packet's conntrack tuple, and whether it may start a connection."""
    if pkt.get("eth_type") != ETH_TYPE_IP:
        raise ValueError(f"conntrack of a non-IPv4 packet is not modelled: {pkt}")
    src, dst, proto = (_need(pkt, name) for name in ("ipv4_src", "ipv4_dst", "ip_proto"))
    if proto in _PORT_FIELDS:
        return (src, dst, proto, *(_need(pkt, name) for name in _PORT_FIELDS[proto])), True
    if proto == IP_PROTO["icmp"]:
        icmp_type = _need(pkt, "icmpv4_type")
        if icmp_type not in _ICMP_ECHO_PAIRS:
            raise ValueError(f"conntrack of ICMP type {icmp_type} is not modelled (only echo 8/0): {pkt}")
        return (src, dst, proto, icmp_type), icmp_type == 8
    return (src, dst, proto), True


def _reverse(conn: _Tuple) -> _Tuple:
    """The tuple of a reply to `conn`."""
    src, dst, proto, *rest = conn
    if proto == IP_PROTO["icmp"]:
        return (dst, src, proto, _ICMP_ECHO_PAIRS[rest[0]])
    return (dst, src, proto, *rest[::-1])


def _translate(pkt: Packet, target: _Tuple, kind: str) -> int:
    """Rewrite `pkt`'s addresses and ports to `target`; the ct_state bit that says so."""
    pkt["ipv4_src"], pkt["ipv4_dst"] = target[:2]
    if target[2] in _PORT_FIELDS:
        sport, dport = _PORT_FIELDS[target[2]]
        pkt[sport], pkt[dport] = target[3:]
    return _NAT_STATE[kind]


def _allocate(table: Mapping[tuple[int, _Tuple], object], zone: int, original: _Tuple, nat: Nat) -> _Tuple:
    """The translated tuple of a new connection: the first in `nat`'s range whose reply no connection
    of the zone has (OVS: the translated tuple must be unique)."""
    src, dst, proto, *rest = original
    if nat.kind == "dst":
        if proto in _PORT_FIELDS and nat.port_min is not None:
            rest = [rest[0], nat.port_min]
        candidates: Iterable[_Tuple] = [(src, nat.ip_min, proto, *rest)]
    else:
        ips = range(nat.ip_min, (nat.ip_max or nat.ip_min) + 1)
        if proto in _PORT_FIELDS:
            sport, dport = rest
            low, high = _EPHEMERAL if nat.port_min is None else (nat.port_min, nat.port_max or nat.port_min)
            kept = [sport] if nat.port_min is None or low <= sport <= high else []
            candidates = ((ip, dst, proto, port, dport) for ip in ips for port in [*kept, *range(low, high + 1)])
        else:
            candidates = ((ip, dst, proto, *rest) for ip in ips)
    for candidate in candidates:
        if (zone, _reverse(candidate)) not in table:
            return candidate
    raise ValueError(f"no free translation of {original} in zone {zone} for {nat} (ICMP ids are not modelled)")


def _need(pkt: Packet, name: str) -> int:
    if name not in pkt:
        raise ValueError(f"conntrack needs {name}, which the packet lacks: {pkt}")
    return pkt[name]


@dataclass
class _Pass:
    """One translation of a packet (OVS: from a lookup until it ends or recirculates), with its limits.

    Each action runs itself against it (apps.actions.Simulation)."""

    tables: SwitchTables
    conntrack: Conntrack
    dpid: str
    result: Result
    depth: int = 0
    resubmits: int = 0
    here: str = ""  # the table whose flow is running

    def run_table(self, table: str, pkt: Packet) -> None:
        """Look `table` up, run the flow's actions, then its goto. A miss ends a pass; in a resubmit it
        returns to the caller."""
        flow = self.tables.lookup(table, pkt)
        if flow is None:
            return
        self.result.path.append((table, flow))
        try:
            for action in flow.actions:
                self.here = table  # again after each action: a resubmit ran other tables
                action.simulate(pkt, self)
        except _Stopped:
            return
        if flow.goto is not None:
            self.jump(table, flow.goto, pkt)

    def jump(self, here: str, target: str, pkt: Packet) -> None:
        """A resubmit or goto: OVS counts both, and nests deeper only back to the same or an earlier table."""
        if self.depth >= MAX_DEPTH:
            raise FlowError(f"over max translation depth {MAX_DEPTH} resubmitting to {target}: {pkt}")
        if self.resubmits >= MAX_RESUBMITS:
            raise FlowError(f"over {MAX_RESUBMITS} resubmit actions at {target}: {pkt}")
        self.resubmits += 1
        deepens = self.tables.pipeline[target].number <= self.tables.pipeline[here].number
        self.depth += deepens
        self.run_table(target, pkt)
        self.depth -= deepens

    def fail(self, reason: str) -> NoReturn:
        raise FlowError(reason)

    def output(self, port: Port, pkt: Packet) -> None:
        """A frame leaves without its metadata; a packet-in carries the pipeline's fields (registers) along."""
        if port == CONTROLLER:
            self.result.outputs.append((port, dict(pkt)))
        else:
            self.result.outputs.append((port, {name: val for name, val in pkt.items() if name not in _METADATA}))

    def resubmit(self, table: str, pkt: Packet) -> None:
        self.jump(self.here, table, pkt)

    def track(self, zone: int, pkt: Packet, commit: bool, mark: int | None, mark_mask: int | None,
              nat: Nat | None) -> tuple[int, int]:
        return self.conntrack.track(self.dpid, zone, pkt, commit, mark, mark_mask, nat)

    def stop(self) -> NoReturn:
        raise _Stopped

    def recirculate(self, table: str, pkt: Packet) -> None:
        """The userspace datapath runs a recirculated clone at once, so its outputs come first."""
        _Pass(self.tables, self.conntrack, self.dpid, self.result).run_table(table, pkt)

    def select(self, group_id: int, pkt: Packet) -> Bucket | None:
        return bucket_for(self.tables.groups[group_id], pkt)


def run(flows: SwitchTables | Iterable[Flow], pkt: Packet, conntrack: Conntrack | None = None,
        groups: Iterable[Group] = ()) -> Result:
    """Send `pkt` (which must carry in_port) through one switch's pipeline (with `groups` unless given
    SwitchTables, which have their own).

    Pass a Conntrack to keep connections between packets; by default each call starts with none.
    """
    return _run(_indexed(flows, groups), pkt, Conntrack() if conntrack is None else conntrack, "")


class Hop(NamedTuple):
    """One switch's part in a packet's way across the fabric: the frame as it arrived there, and what it did."""

    dpid: str
    packet: Packet
    result: Result


def run_fabric(flows_by_dpid: Mapping[str, SwitchTables | Iterable[Flow]], topology: Topology, dpid: str,
               pkt: Packet, conntrack: Conntrack | None = None,
               groups_by_dpid: Mapping[str, Iterable[Group]] | None = None) -> list[Delivery]:
    """Follow `pkt`, entering switch `dpid`, across the topology's links to every port it leaves by.

    Pass a Conntrack to keep connections between packets; by default each call starts with none. Switches
    given as flows have the groups of `groups_by_dpid`.
    """
    return follow(flows_by_dpid, topology, dpid, pkt, conntrack, groups_by_dpid)[1]


def follow(flows_by_dpid: Mapping[str, SwitchTables | Iterable[Flow]], topology: Topology, dpid: str,
           pkt: Packet, conntrack: Conntrack | None = None,
           groups_by_dpid: Mapping[str, Iterable[Group]] | None = None) -> tuple[list[Hop], list[Delivery]]:
    """run_fabric, also returning every switch the frame (or a copy of it) passed, in the order it did."""
    conntrack = Conntrack() if conntrack is None else conntrack
    peers = {}
    for link in topology.links:
        peers[(link.a_dpid, link.a_port)] = (link.b_dpid, link.b_port)
        peers[(link.b_dpid, link.b_port)] = (link.a_dpid, link.a_port)
    max_hops = 4 * len(set(flows_by_dpid) | {sw.dpid for sw in topology.switches})
    tables: dict[str, SwitchTables] = {}
    hops: list[Hop] = []
    deliveries: list[Delivery] = []
    seen: set[tuple[str, tuple[tuple[str, int], ...]]] = set()
    queue = deque([(dpid, pkt, 0)])
    while queue:
        here, arriving, count = queue.popleft()
        state = (here, tuple(sorted(arriving.items())))
        if state in seen:
            raise LoopError(f"frame reaches {here} port {arriving['in_port']} again (a loop or a copy): {arriving}")
        seen.add(state)
        if here not in tables:
            if here not in flows_by_dpid:
                raise ValueError(f"no flows given for switch {here}")
            tables[here] = _indexed(flows_by_dpid[here], (groups_by_dpid or {}).get(here, ()))
        result = _run(tables[here], arriving, conntrack, here)
        hops.append(Hop(here, arriving, result))
        for port, frame in result.outputs:
            peer = peers.get((here, port))
            if peer is None:
                deliveries.append(Delivery(here, port, frame))
            elif count + 1 > max_hops:
                raise LoopError(f"frame crossed more than {max_hops} links: {frame}")
            else:
                queue.append((peer[0], {**frame, "in_port": peer[1]}, count + 1))
    return hops, deliveries


def _run(tables: SwitchTables, pkt: Packet, conntrack: Conntrack, dpid: str) -> Result:
    if "in_port" not in pkt:
        raise ValueError(f"packet has no in_port: {pkt}")
    pkt = _untag_none(pkt)
    _check_fields(pkt)
    result = Result()
    _Pass(tables, conntrack, dpid, result).run_table(tables.first_table, pkt)
    return result


def _indexed(flows: SwitchTables | Iterable[Flow], groups: Iterable[Group] = ()) -> SwitchTables:
    return flows if isinstance(flows, SwitchTables) else SwitchTables(flows, groups=groups)


def _is_clause(flow: Flow) -> bool:
    """A clause flow carries only conjunction actions (checked when the tables are built)."""
    return bool(flow.actions) and isinstance(flow.actions[0], Conjunction)


def _effect(flow: Flow | None) -> tuple[tuple[Action, ...], str | None] | None:
    return None if flow is None else (flow.actions, flow.goto)


def _completed_conjunctions(clauses: list[Flow]) -> list[int]:
    """Ids of the conjunctions all of whose clauses are among `clauses` (flows matching one packet)."""
    matched: dict[int, set[int]] = {}
    needed: dict[int, int] = {}
    for conj in (action for flow in clauses for action in flow.actions if isinstance(action, Conjunction)):
        matched.setdefault(conj.id, set()).add(conj.clause)
        needed[conj.id] = conj.n_clauses
    return sorted(conj_id for conj_id, got in matched.items() if len(got) == needed[conj_id])


def _matches(match: Match, pkt: Packet) -> bool:
    for name, val, mask in match:
        have = read(pkt, name)
        if have is None or (have if mask is None else have & mask) != val:
            return False
    return True


def _untag_none(pkt: Mapping[str, int]) -> Packet:
    """A copy in which an untagged frame has no vlan_vid (0, OFPVID_NONE, is accepted for it)."""
    return {name: val for name, val in pkt.items() if name != "vlan_vid" or val != 0}


def _check_fields(pkt: Packet) -> None:
    """Catch malformed test packets, which would otherwise make outcome assertions vacuous."""
    for name, val in pkt.items():
        if name not in FIELDS or not 0 <= val < 1 << FIELDS[name]:
            raise ValueError(f"bad packet field {name}={val!r}")
        for need, allowed in FIELD[name].prereqs:
            if pkt.get(need) not in allowed:
                raise ValueError(f"packet has {name} but {need} is not one of {sorted(allowed)}: {pkt}")
    if "vlan_vid" in pkt and not pkt["vlan_vid"] & OFPVID_PRESENT:
        raise ValueError(f"a tagged packet's vlan_vid needs OFPVID_PRESENT: {pkt}")
    if "conj_id" in pkt:
        raise ValueError(f"conj_id is set only by a conjunctive lookup: {pkt}")


@dataclass
class _FlowCheck:
    """A flow as its actions check it while the tables are built (apps.actions.FlowCheck)."""

    flow: Flow
    pipeline: Mapping[str, Table]
    groups: Mapping[int, Group]
    exact: dict[str, int]
    tagged: bool

    def fail(self, reason: str) -> NoReturn:
        raise FlowError(f"{reason}: {self.flow}")

    def readable(self, name: str) -> None:
        declared = FIELD.get(name)
        if declared is None:
            self.fail(f"unknown field {name}")
        for need, allowed in declared.prereqs:
            if self.exact.get(need) not in allowed:
                self.fail(f"{name} needs an exact match on {need} in {sorted(allowed)}")

    def writable(self, name: str, value: int | None, mask: int | None) -> None:
        self.readable(name)
        declared = FIELD[name]
        if declared.write is Write.NEVER:
            self.fail(f"{name} is read-only")
        if declared.write is Write.CT_EXEC:
            self.fail(f"{name} is set only by ct(commit, set_mark), not outside a ct action")
        if value is not None and not 0 <= value <= declared.full:
            self.fail(f"value {value} does not fit {name}")
        if mask is not None and not (0 < mask <= declared.full and value is not None and not value & ~mask):
            self.fail(f"mask {mask:#x} of {name} must fit it and hold the value")
        if declared.write is Write.TAGGED:
            if not self.tagged:
                self.fail(f"writes {name} of a frame not known to be tagged")
            if value is not None and not value & OFPVID_PRESENT:
                self.fail(f"set_field {name} without OFPVID_PRESENT")

    def continues(self, kind: str, target: str, strictly_later: bool) -> None:
        here = self.pipeline[self.flow.table]
        there = self.pipeline.get(target)
        if target not in here.next or there is None or (strictly_later and there.number <= here.number):
            self.fail(f"{kind} {target} is not a declared next table of {self.flow.table}")

    def group(self, group_id: int) -> Group:
        if group_id not in self.groups:
            self.fail(f"group {group_id} is not one of the switch's")
        return self.groups[group_id]


def _check_flow(flow: Flow, pipeline: Mapping[str, Table], groups: Mapping[int, Group]) -> None:
    """Refuse what OVS refuses at flow-mod time, and table changes the pipeline does not declare."""
    if flow.table not in pipeline:
        raise FlowError(f"unknown table {flow.table}: {flow}")
    tagged = any(name == "vlan_vid" and val & OFPVID_PRESENT and (mask is None or mask & OFPVID_PRESENT)
                 for name, val, mask in flow.match)
    check = _FlowCheck(flow, pipeline, groups, {name: val for name, val, mask in flow.match if mask is None}, tagged)
    if flow.goto is not None:
        check.continues("goto", flow.goto, strictly_later=True)
    if flow.meter is not None and flow.meter not in METER_NAMES:
        check.fail(f"unknown meter {flow.meter}")
    if flow.meter is None and any(isinstance(a, Output) and a.port == OFPP_CONTROLLER for a in flow.actions):
        check.fail("sends to the controller without a meter: a host could flood the controller through it")
    for name, _, mask in flow.match:
        check.readable(name)
        if mask is not None and not FIELD[name].maskable:
            check.fail(f"OVS matches {name} exactly only (BAD_MASK)")
    for action in flow.actions:
        if not isinstance(action, Action):
            check.fail(f"unsupported action {action!r}")
        action.check(check)


def _check_conjunctions(clauses: Mapping[tuple[str, int], set[tuple[int, int, int]]]) -> None:
    """Each conjunction: all its clause flows at one priority, one clause count, every clause present."""
    for (table, conj_id), found in clauses.items():
        shapes = sorted({(priority, n_clauses) for priority, n_clauses, _ in found})
        if len(shapes) > 1:
            raise FlowError(f"conjunction {conj_id} in {table} has clauses at (priority, clause count) {shapes}")
        missing = set(range(1, shapes[0][1] + 1)) - {clause for _, _, clause in found}
        if missing:
            raise FlowError(f"conjunction {conj_id} in {table} lacks clauses {sorted(missing)}")
