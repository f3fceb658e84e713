"""An exact, pure simulator of compiled flow tables, so tests assert packet outcomes, not flow text.

It follows OpenFlow 1.3 as Open vSwitch implements it (checked against OVS 3.1 with ovs-ofctl and
ofproto/trace), and it is strict where OVS is: flows OVS would refuse (missing match prerequisites,
set_field on a read-only field, set_field vlan_vid without OFPVID_PRESENT or on a frame not known to be
tagged) and gotos the pipeline declaration does not allow raise FlowError when the tables are built,
so a compiler bug fails its unit test instead of a flow-mod on a real switch. Ambiguous lookups (two
flows of equal priority matching one packet) raise too: OVS would pick one arbitrarily.

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
  any ct the calling pass continues with the packet untracked (its conntrack fields cleared).
- conjunctive matches: conjunction(id, k/n) clause flows, and the second lookup with conj_id = id.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from apps.flows import (
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_RPL,
    CT_TRK,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    FIELDS,
    IP_PROTO,
    OFPP_CONTROLLER,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Action,
    Conjunction,
    Ct,
    Flow,
    Match,
    Move,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
    set_field,
)
from apps.pipeline import PIPELINE, Table
from apps.topology import Topology

CONTROLLER = "controller"  # the port recorded for an output to OFPP_CONTROLLER
Port = int | str
Packet = dict[str, int]

_ETH_TYPE_IPV6 = 0x86DD
_OFPP_MAX = 0xFFFFFF00  # ports at or above this are reserved (only IN_PORT and CONTROLLER are modelled)
_VLAN_ETHERTYPES = (0x8100, 0x88A8)
_REGISTERS = frozenset(name for name in FIELDS if name.startswith("reg"))
_CT_FIELDS = frozenset({"ct_state", "ct_zone", "ct_mark"})
_METADATA = _REGISTERS | _CT_FIELDS | {"in_port", "conj_id"}
# Absent metadata reads as 0 on a switch, and vlan_vid as OFPVID_NONE (untagged).
_DEFAULTS = {name: 0 for name in _METADATA - {"in_port"} | {"vlan_vid"}}
_READ_ONLY = frozenset({"eth_type", "ip_proto", "ct_state", "ct_zone", "conj_id"})
MAX_DEPTH = 64  # OVS: nested resubmits back to the same or an earlier table, per pass
MAX_RESUBMITS = 4096  # OVS: resubmits and gotos per pass
_MAX_CLAUSES = 64
_IP_ANY = frozenset({ETH_TYPE_IP, _ETH_TYPE_IPV6})
_IPV4 = frozenset({ETH_TYPE_IP})
# field -> (field, allowed exact values) that must hold before it may be matched, set or moved.
_PREREQS: dict[str, tuple[tuple[str, frozenset[int]], ...]] = {
    "ip_proto": (("eth_type", _IP_ANY),),
    "ipv4_src": (("eth_type", _IPV4),),
    "ipv4_dst": (("eth_type", _IPV4),),
    **{f: (("eth_type", _IP_ANY), ("ip_proto", frozenset({6}))) for f in ("tcp_src", "tcp_dst")},
    **{f: (("eth_type", _IP_ANY), ("ip_proto", frozenset({17}))) for f in ("udp_src", "udp_dst")},
    **{f: (("eth_type", _IPV4), ("ip_proto", frozenset({1}))) for f in ("icmpv4_type", "icmpv4_code")},
    **{f: (("eth_type", frozenset({ETH_TYPE_ARP})),) for f in FIELDS if f.startswith("arp_")},
}


class FlowError(Exception):
    """Flows a switch would refuse, or that match one packet ambiguously: a compiler bug."""


class LoopError(Exception):
    """A frame circulates between switches (or reaches one port twice)."""


def packet(**fields: int | str) -> Packet:
    """A packet from field=value keywords (ints, MAC/IPv4 strings); vlan_vid=0 means untagged."""
    for name in fields:
        if name not in FIELDS:
            raise ValueError(f"unknown packet field {name}")
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

    `pipeline` declares the tables (apps.pipeline by default; tests of loops declare their own).
    """

    def __init__(self, flows: Iterable[Flow], pipeline: Iterable[Table] = PIPELINE) -> None:
        self.pipeline = {table.name: table for table in pipeline}
        self.first_table = min(self.pipeline.values(), key=lambda table: table.number).name
        shapes: dict[tuple[str, int], dict[tuple[str, ...], _Shape]] = {}
        keys: set[tuple[str, int, Match]] = set()
        clauses: dict[tuple[str, int], set[tuple[int, int, int]]] = {}  # (table, id) -> (priority, n, k)
        for flow in flows:
            _check_flow(flow, self.pipeline)
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
                for flow in shape.flows.get(tuple(_read(pkt, name) for name in shape.fields), ())
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

    Each switch has its own table, as on separate hosts. shared=True gives all switches one table, as
    the netdev bridges of one ovs-vswitchd (the Mininet test network) share one datapath's conntrack.
    """

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        self._tables: dict[str, dict[tuple[int, _Tuple], tuple[_Connection, bool]]] = {}

    def track(self, dpid: str, zone: int, pkt: Packet, commit: bool, set_mark: int | None) -> tuple[int, int]:
        """(ct_state, ct_mark) of `pkt` passing ct in `zone` of switch `dpid`, updating the connections."""
        table = self._tables.setdefault("" if self.shared else dpid, {})
        here, reply, may_start = _directions(pkt)
        found = table.get((zone, here))
        if found is not None:
            conn, is_reply = found
            conn.replied |= is_reply
            if conn.replied:
                state = CT_TRK | CT_EST | (CT_RPL if is_reply else 0)
            else:
                state = CT_TRK | CT_NEW
        elif may_start:
            conn, state = _Connection(), CT_TRK | CT_NEW
            if commit:
                table[(zone, here)] = (conn, False)
                table[(zone, reply)] = (conn, True)
        else:
            return CT_TRK | CT_INV, 0
        if commit and set_mark is not None:
            conn.mark = set_mark
        return state, conn.mark


_Tuple = tuple[int, ...]
_PORT_FIELDS = {IP_PROTO["tcp"]: ("tcp_src", "tcp_dst"), IP_PROTO["udp"]: ("udp_src", "udp_dst")}
_ICMP_ECHO_PAIRS = {8: 0, 0: 8}  # echo request <-> echo reply


@dataclass
class _Connection:
    mark: int = 0
    replied: bool = False


def _directions(pkt: Packet) -> tuple[_Tuple, _Tuple, bool]:
    """The packet's conntrack tuple, the tuple of its reply, and whether it may start a connection."""
    if pkt.get("eth_type") != ETH_TYPE_IP:
        raise ValueError(f"conntrack of a non-IPv4 packet is not modelled: {pkt}")
    src, dst, proto = (_need(pkt, name) for name in ("ipv4_src", "ipv4_dst", "ip_proto"))
    if proto in _PORT_FIELDS:
        sport, dport = (_need(pkt, name) for name in _PORT_FIELDS[proto])
        return (src, dst, proto, sport, dport), (dst, src, proto, dport, sport), True
    if proto == IP_PROTO["icmp"]:
        icmp_type = _need(pkt, "icmpv4_type")
        if icmp_type not in _ICMP_ECHO_PAIRS:
            raise ValueError(f"conntrack of ICMP type {icmp_type} is not modelled (only echo 8/0): {pkt}")
        return (src, dst, proto, icmp_type), (dst, src, proto, _ICMP_ECHO_PAIRS[icmp_type]), icmp_type == 8
    return (src, dst, proto), (dst, src, proto), True


def _need(pkt: Packet, name: str) -> int:
    if name not in pkt:
        raise ValueError(f"conntrack needs {name}, which the packet lacks: {pkt}")
    return pkt[name]


@dataclass
class _Pass:
    """One translation of a packet (OVS: from a lookup until it ends or recirculates), with its limits."""

    tables: SwitchTables
    conntrack: Conntrack
    dpid: str
    result: Result
    depth: int = 0
    resubmits: int = 0

    def run_table(self, table: str, pkt: Packet) -> None:
        """Look `table` up, run the flow's actions, then its goto. A miss ends a pass; in a resubmit it
        returns to the caller."""
        flow = self.tables.lookup(table, pkt)
        if flow is None:
            return
        self.result.path.append((table, flow))
        for action in flow.actions:
            if isinstance(action, Resubmit):
                self.jump(table, action.table, pkt)
            elif isinstance(action, Ct):
                self.conntrack_action(action, pkt)
            else:
                _apply(action, pkt, self.result)
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

    def conntrack_action(self, ct: Ct, pkt: Packet) -> None:
        zone = ct.zone if ct.zone_reg is None else pkt.get(ct.zone_reg, 0) & 0xFFFF
        state, mark = self.conntrack.track(self.dpid, zone, pkt, ct.commit, ct.set_mark)
        if ct.table is not None:
            # A clone recirculates; the userspace datapath runs it at once, so its outputs come first.
            clone = {**pkt, "ct_state": state, "ct_zone": zone, "ct_mark": mark}
            _Pass(self.tables, self.conntrack, self.dpid, self.result).run_table(ct.table, clone)
        for name in _CT_FIELDS:  # OVS: "sets the packet to an untracked state, and clears all the conntrack fields"
            pkt.pop(name, None)


def run(flows: SwitchTables | Iterable[Flow], pkt: Packet, conntrack: Conntrack | None = None) -> Result:
    """Send `pkt` (which must carry in_port) through one switch's pipeline.

    Pass a Conntrack to keep connections between packets; by default each call starts with none.
    """
    return _run(_indexed(flows), pkt, Conntrack() if conntrack is None else conntrack, "")


def run_fabric(flows_by_dpid: Mapping[str, SwitchTables | Iterable[Flow]], topology: Topology, dpid: str,
               pkt: Packet, conntrack: Conntrack | None = None) -> list[Delivery]:
    """Follow `pkt`, entering switch `dpid`, across the topology's links to every port it leaves by.

    Pass a Conntrack to keep connections between packets; by default each call starts with none.
    """
    conntrack = Conntrack() if conntrack is None else conntrack
    peers = {}
    for link in topology.links:
        peers[(link.a_dpid, link.a_port)] = (link.b_dpid, link.b_port)
        peers[(link.b_dpid, link.b_port)] = (link.a_dpid, link.a_port)
    max_hops = 4 * len(set(flows_by_dpid) | {sw.dpid for sw in topology.switches})
    tables: dict[str, SwitchTables] = {}
    deliveries: list[Delivery] = []
    seen: set[tuple[str, tuple[tuple[str, int], ...]]] = set()
    queue = deque([(dpid, pkt, 0)])
    while queue:
        here, arriving, hops = queue.popleft()
        state = (here, tuple(sorted(arriving.items())))
        if state in seen:
            raise LoopError(f"frame reaches {here} port {arriving['in_port']} again (a loop or a copy): {arriving}")
        seen.add(state)
        if here not in tables:
            if here not in flows_by_dpid:
                raise ValueError(f"no flows given for switch {here}")
            tables[here] = _indexed(flows_by_dpid[here])
        for port, frame in _run(tables[here], arriving, conntrack, here).outputs:
            peer = peers.get((here, port))
            if peer is None:
                deliveries.append(Delivery(here, port, frame))
            elif hops + 1 > max_hops:
                raise LoopError(f"frame crossed more than {max_hops} links: {frame}")
            else:
                queue.append((peer[0], {**frame, "in_port": peer[1]}, hops + 1))
    return deliveries


def _run(tables: SwitchTables, pkt: Packet, conntrack: Conntrack, dpid: str) -> Result:
    if "in_port" not in pkt:
        raise ValueError(f"packet has no in_port: {pkt}")
    pkt = _untag_none(pkt)
    _check_fields(pkt)
    result = Result()
    _Pass(tables, conntrack, dpid, result).run_table(tables.first_table, pkt)
    return result


def _indexed(flows: SwitchTables | Iterable[Flow]) -> SwitchTables:
    return flows if isinstance(flows, SwitchTables) else SwitchTables(flows)


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


def _read(pkt: Packet, name: str) -> int | None:
    return pkt.get(name, _DEFAULTS.get(name))


def _matches(match: Match, pkt: Packet) -> bool:
    for name, val, mask in match:
        have = _read(pkt, name)
        if have is None or (have if mask is None else have & mask) != val:
            return False
    return True


def _apply(action: Action, pkt: Packet, result: Result) -> None:
    """Apply one action in place (actions were checked when the tables were built)."""
    if isinstance(action, Output):
        _output(action.port, pkt, result)
    elif isinstance(action, SetField):
        pkt[action.field] = action.value
    elif isinstance(action, PushVlan):
        if "vlan_vid" in pkt:
            raise FlowError(f"push_vlan on a tagged frame (double tagging is not modelled): {pkt}")
        pkt["vlan_vid"] = OFPVID_PRESENT
    elif isinstance(action, PopVlan):
        del pkt["vlan_vid"]
    elif isinstance(action, Move):
        _move(action, pkt)


def _output(port: int, pkt: Packet, result: Result) -> None:
    frame = {name: val for name, val in pkt.items() if name not in _METADATA}
    if port == OFPP_CONTROLLER:
        result.outputs.append((CONTROLLER, frame))
    elif port == OFPP_IN_PORT:
        result.outputs.append((pkt["in_port"], frame))
    elif port != pkt["in_port"]:  # OVS skips output to the input port unless it is asked as IN_PORT
        result.outputs.append((port, frame))


def _move(move: Move, pkt: Packet) -> None:
    src = _read(pkt, move.src)
    if src is None:
        raise ValueError(f"move reads {move.src}, which the packet lacks: {pkt}")
    bits = (1 << move.n_bits) - 1
    whole_field = move.dst_ofs == 0 and move.n_bits == FIELDS[move.dst]
    old = 0 if whole_field else _read(pkt, move.dst)
    if old is None:
        raise ValueError(f"move writes part of {move.dst}, which the packet lacks: {pkt}")
    pkt[move.dst] = (old & ~(bits << move.dst_ofs)) | (((src >> move.src_ofs) & bits) << move.dst_ofs)


def _untag_none(pkt: Mapping[str, int]) -> Packet:
    """A copy in which an untagged frame has no vlan_vid (0, OFPVID_NONE, is accepted for it)."""
    return {name: val for name, val in pkt.items() if name != "vlan_vid" or val != 0}


def _check_fields(pkt: Packet) -> None:
    """Catch malformed test packets, which would otherwise make outcome assertions vacuous."""
    for name, val in pkt.items():
        if name not in FIELDS or not 0 <= val < 1 << FIELDS[name]:
            raise ValueError(f"bad packet field {name}={val!r}")
        for need, allowed in _PREREQS.get(name, ()):
            if pkt.get(need) not in allowed:
                raise ValueError(f"packet has {name} but {need} is not one of {sorted(allowed)}: {pkt}")
    if "vlan_vid" in pkt and not pkt["vlan_vid"] & OFPVID_PRESENT:
        raise ValueError(f"a tagged packet's vlan_vid needs OFPVID_PRESENT: {pkt}")
    if "conj_id" in pkt:
        raise ValueError(f"conj_id is set only by a conjunctive lookup: {pkt}")


def _check_flow(flow: Flow, pipeline: Mapping[str, Table]) -> None:
    """Refuse what OVS refuses at flow-mod time, and table changes the pipeline does not declare."""
    if flow.table not in pipeline:
        raise FlowError(f"unknown table {flow.table}: {flow}")
    if flow.goto is not None:
        _check_next("goto", flow.goto, flow, pipeline, strictly_later=True)
    exact = {name: val for name, val, mask in flow.match if mask is None}
    for name, _, _ in flow.match:
        _check_prereqs(name, exact, flow)
    tagged = any(name == "vlan_vid" and val & OFPVID_PRESENT and (mask is None or mask & OFPVID_PRESENT)
                 for name, val, mask in flow.match)
    for action in flow.actions:
        if isinstance(action, Output):
            if not 0 < action.port < _OFPP_MAX and action.port not in (OFPP_IN_PORT, OFPP_CONTROLLER):
                raise FlowError(f"output to unsupported port {action.port:#x}: {flow}")
        elif isinstance(action, SetField):
            _check_write(action.field, action.value, exact, tagged, flow)
        elif isinstance(action, PushVlan):
            if action.ethertype not in _VLAN_ETHERTYPES:
                raise FlowError(f"push_vlan with ethertype {action.ethertype:#x}: {flow}")
            tagged = True
        elif isinstance(action, PopVlan):
            if not tagged:
                raise FlowError(f"pop_vlan on a frame not known to be tagged: {flow}")
            tagged = False
        elif isinstance(action, Move):
            _check_prereqs(action.src, exact, flow)
            _check_write(action.dst, None, exact, tagged, flow)
            if not (0 < action.n_bits and action.src_ofs + action.n_bits <= FIELDS[action.src]
                    and action.dst_ofs + action.n_bits <= FIELDS[action.dst]):
                raise FlowError(f"move bits out of range: {flow}")
        elif isinstance(action, Resubmit):
            # OVS resubmits anywhere; the pipeline declares where (back to an earlier table only if it says so).
            _check_next("resubmit to", action.table, flow, pipeline, strictly_later=False)
        elif isinstance(action, Ct):
            _check_ct(action, exact, flow, pipeline)
        elif isinstance(action, Conjunction):
            _check_clause(action, flow)
        else:
            raise FlowError(f"unsupported action {action!r}: {flow}")


def _check_next(kind: str, target: str, flow: Flow, pipeline: Mapping[str, Table], strictly_later: bool) -> None:
    here = pipeline[flow.table]
    there = pipeline.get(target)
    if target not in here.next or there is None or (strictly_later and there.number <= here.number):
        raise FlowError(f"{kind} {target} is not a declared next table of {flow.table}: {flow}")


def _check_ct(ct: Ct, exact: dict[str, int], flow: Flow, pipeline: Mapping[str, Table]) -> None:
    if exact.get("eth_type") not in _IP_ANY:  # OVS: OFPBAC_MATCH_INCONSISTENT, so no ARP ever reaches ct
        raise FlowError(f"ct needs an exact match on eth_type in {sorted(_IP_ANY)}: {flow}")
    if ct.table is not None:
        _check_next("ct table", ct.table, flow, pipeline, strictly_later=True)
    if ct.zone_reg is not None and (ct.zone_reg not in _REGISTERS or ct.zone != 0):
        raise FlowError(f"ct zone_reg must be a register, and excludes an immediate zone: {flow}")
    if not 0 <= ct.zone < 1 << FIELDS["ct_zone"]:
        raise FlowError(f"ct zone {ct.zone} does not fit 16 bits: {flow}")
    if ct.set_mark is not None and not (ct.commit and 0 <= ct.set_mark < 1 << FIELDS["ct_mark"]):
        raise FlowError(f"ct set_mark needs commit and a 32-bit value: {flow}")
    if ct.commit and any(name == "ct_state" and val & CT_INV for name, val, _ in flow.match):
        raise FlowError(f"ct commit of packets matched as +inv: {flow}")


def _check_clause(conj: Conjunction, flow: Flow) -> None:
    if flow.goto is not None or not all(isinstance(action, Conjunction) for action in flow.actions):
        raise FlowError(f"conjunction actions may not be mixed with other actions or a goto: {flow}")
    if not (2 <= conj.n_clauses <= _MAX_CLAUSES and 1 <= conj.clause <= conj.n_clauses
            and 0 <= conj.id < 1 << FIELDS["conj_id"]):
        raise FlowError(f"conjunction({conj.id}, {conj.clause}/{conj.n_clauses}) needs 2 to {_MAX_CLAUSES} "
                        f"clauses, numbered from 1: {flow}")


def _check_conjunctions(clauses: Mapping[tuple[str, int], set[tuple[int, int, int]]]) -> None:
    """Each conjunction: all its clause flows at one priority, one clause count, every clause present."""
    for (table, conj_id), found in clauses.items():
        shapes = sorted({(priority, n_clauses) for priority, n_clauses, _ in found})
        if len(shapes) > 1:
            raise FlowError(f"conjunction {conj_id} in {table} has clauses at (priority, clause count) {shapes}")
        missing = set(range(1, shapes[0][1] + 1)) - {clause for _, _, clause in found}
        if missing:
            raise FlowError(f"conjunction {conj_id} in {table} lacks clauses {sorted(missing)}")


def _check_write(name: str, value: int | None, exact: dict[str, int], tagged: bool, flow: Flow) -> None:
    """A field written by set_field (value given) or move (value None)."""
    _check_prereqs(name, exact, flow)
    if name in _READ_ONLY:
        raise FlowError(f"{name} is read-only: {flow}")
    if name == "ct_mark":
        raise FlowError(f"ct_mark is set only by ct(commit, set_mark), not outside a ct action: {flow}")
    if value is not None and not 0 <= value < 1 << FIELDS[name]:
        raise FlowError(f"value {value} does not fit {name}: {flow}")
    if name == "vlan_vid":
        if not tagged:
            raise FlowError(f"writes vlan_vid of a frame not known to be tagged: {flow}")
        if value is not None and not value & OFPVID_PRESENT:
            raise FlowError(f"set_field vlan_vid without OFPVID_PRESENT: {flow}")


def _check_prereqs(name: str, exact: dict[str, int], flow: Flow) -> None:
    if name not in FIELDS:
        raise FlowError(f"unknown field {name}: {flow}")
    for need, allowed in _PREREQS.get(name, ()):
        if exact.get(need) not in allowed:
            raise FlowError(f"{name} needs an exact match on {need} in {sorted(allowed)}: {flow}")
