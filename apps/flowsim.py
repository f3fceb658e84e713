"""An exact, pure simulator of compiled flow tables, so tests assert packet outcomes, not flow text.

It follows OpenFlow 1.3 as Open vSwitch implements it (checked against OVS 3.1 with ovs-ofctl and
ofproto/trace), and it is strict where OVS is: flows OVS would refuse (missing match prerequisites,
set_field on a read-only field, set_field vlan_vid without OFPVID_PRESENT or on a frame not known to be
tagged) and gotos the pipeline declaration does not allow raise FlowError when the tables are built,
so a compiler bug fails its unit test instead of a flow-mod on a real switch. Ambiguous lookups (two
flows of equal priority matching one packet) raise too: OVS would pick one arbitrarily.

A packet is a dict of apps.flows.FIELDS names -> int. vlan_vid carries OFPVID_PRESENT when tagged and
is absent when untagged; registers and vlan_vid read as 0 when absent (as on a switch); any other
absent field cannot match a flow that requires it. Outputs carry the frame only: in_port and the
registers are pipeline metadata and do not leave the switch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from apps.flows import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    FIELDS,
    OFPP_CONTROLLER,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Action,
    Flow,
    Match,
    Move,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    set_field,
)
from apps.pipeline import PIPELINE, TABLES
from apps.topology import Topology

CONTROLLER = "controller"  # the port recorded for an output to OFPP_CONTROLLER
Port = int | str
Packet = dict[str, int]

_ETH_TYPE_IPV6 = 0x86DD
_OFPP_MAX = 0xFFFFFF00  # ports at or above this are reserved (only IN_PORT and CONTROLLER are modelled)
_VLAN_ETHERTYPES = (0x8100, 0x88A8)
_REGISTERS = frozenset(name for name in FIELDS if name.startswith("reg"))
_METADATA = _REGISTERS | {"in_port"}
_DEFAULTS = {**{reg: 0 for reg in _REGISTERS}, "vlan_vid": 0}  # OFPVID_NONE: untagged
_FIRST_TABLE = min(PIPELINE, key=lambda table: table.number).name
_READ_ONLY = frozenset({"eth_type", "ip_proto"})
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
    path: list[tuple[str, Flow]] = field(default_factory=list)  # (table, flow hit), in order

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
    """One switch's flows, checked and indexed once; reuse it across many packets."""

    def __init__(self, flows: Iterable[Flow]) -> None:
        shapes: dict[tuple[str, int], dict[tuple[str, ...], _Shape]] = {}
        keys: set[tuple[str, int, Match]] = set()
        for flow in flows:
            _check_flow(flow)
            if flow.key in keys:
                raise FlowError(f"two flows with key {flow.key}")
            keys.add(flow.key)
            exact = tuple(name for name, _, mask in flow.match if mask is None)
            shape = shapes.setdefault((flow.table, flow.priority), {}).setdefault(exact, _Shape(exact, {}))
            shape.flows.setdefault(tuple(val for _, val, mask in flow.match if mask is None), []).append(flow)
        self._tables: dict[str, list[tuple[int, list[_Shape]]]] = {}
        for (table, priority), by_fields in sorted(shapes.items(), key=lambda item: -item[0][1]):
            self._tables.setdefault(table, []).append((priority, list(by_fields.values())))

    def lookup(self, table: str, pkt: Packet) -> Flow | None:
        """The highest-priority flow of `table` matching `pkt`; None on a table miss."""
        for priority, shapes in self._tables.get(table, ()):
            hits = [
                flow
                for shape in shapes
                for flow in shape.flows.get(tuple(_read(pkt, name) for name in shape.fields), ())
                if _matches(flow.match, pkt)
            ]
            if len(hits) > 1:
                raise FlowError(f"ambiguous: {len(hits)} flows in {table} at priority {priority} match "
                                f"{pkt}: {hits}")
            if hits:
                return hits[0]
        return None


def run(flows: SwitchTables | Iterable[Flow], pkt: Packet) -> Result:
    """Send `pkt` (which must carry in_port) through one switch's pipeline."""
    tables = _indexed(flows)
    if "in_port" not in pkt:
        raise ValueError(f"packet has no in_port: {pkt}")
    pkt = _untag_none(pkt)
    _check_fields(pkt)
    result = Result()
    table: str | None = _FIRST_TABLE
    while table is not None:
        flow = tables.lookup(table, pkt)
        if flow is None:
            break  # table miss: drop
        result.path.append((table, flow))
        for action in flow.actions:
            _apply(action, pkt, result)
        table = flow.goto
    return result


def run_fabric(flows_by_dpid: Mapping[str, SwitchTables | Iterable[Flow]], topology: Topology, dpid: str,
               pkt: Packet) -> list[Delivery]:
    """Follow `pkt`, entering switch `dpid`, across the topology's links to every port it leaves by."""
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
            raise LoopError(f"frame reaches {here} port {arriving['in_port']} again: {arriving}")
        seen.add(state)
        if here not in tables:
            if here not in flows_by_dpid:
                raise ValueError(f"no flows given for switch {here}")
            tables[here] = _indexed(flows_by_dpid[here])
        for port, frame in run(tables[here], arriving).outputs:
            peer = peers.get((here, port))
            if peer is None:
                deliveries.append(Delivery(here, port, frame))
            elif hops + 1 > max_hops:
                raise LoopError(f"frame crossed more than {max_hops} links: {frame}")
            else:
                queue.append((peer[0], {**frame, "in_port": peer[1]}, hops + 1))
    return deliveries


def _indexed(flows: SwitchTables | Iterable[Flow]) -> SwitchTables:
    return flows if isinstance(flows, SwitchTables) else SwitchTables(flows)


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


def _check_flow(flow: Flow) -> None:
    """Refuse what OVS refuses at flow-mod time, and gotos apps.pipeline does not declare."""
    table = TABLES.get(flow.table)
    if table is None:
        raise FlowError(f"unknown table {flow.table}: {flow}")
    if flow.goto is not None and (flow.goto not in table.next or TABLES[flow.goto].number <= table.number):
        raise FlowError(f"goto {flow.goto} is not a declared next table of {flow.table}: {flow}")
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
        else:
            raise FlowError(f"unsupported action {action!r}: {flow}")


def _check_write(name: str, value: int | None, exact: dict[str, int], tagged: bool, flow: Flow) -> None:
    """A field written by set_field (value given) or move (value None)."""
    _check_prereqs(name, exact, flow)
    if name in _READ_ONLY:
        raise FlowError(f"{name} is read-only: {flow}")
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
