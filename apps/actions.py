"""OpenFlow actions, each declared once: its value, wire form, text and simulation side by side.

An action is a frozen dataclass deriving from `Action`, which makes it implement:
- `encode()`: its OpenFlow 1.3 bytes, exactly as OVS 3.1 returns them in a flow-stats reply, so that an
  installed flow reads back byte-identical (controller/ofwire memoizes and joins them);
- `WIRE` and `describe()`: the wire forms it is read back from (an OFPAT type, or an NX subtype) and
  their ovs-ofctl-like text (controller/ofwire dispatches each action it reads to its describer);
- `check()`: what OVS 3.1 refuses at flow-mod time and what the pipeline declaration forbids, called by
  apps/flowsim as it builds tables, so that a compiler bug fails a unit test and not a real flow-mod;
- `simulate()`: what it does to a packet in apps/flowsim.
Defining a subclass registers it (ACTIONS) and its wire forms (DESCRIBERS); leaving a side out makes it
abstract, which tests/unit/test_declarations.py refuses. Table names are numbered by apps.pipeline, fields
are apps.fields declarations. ofproto/trace's datapath actions are another vocabulary, after OVS's own
translation: tests/bridge/datapath.py reads those.
"""

from __future__ import annotations

import hashlib
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, NamedTuple, NoReturn, Protocol

from apps.fields import (
    BY_OXM,
    CONNTRACK_FIELDS,
    CT_INV,
    ETH_TYPE_IP,
    FIELD,
    IP_ANY,
    IPV4,
    OFPVID_PRESENT,
    REGISTERS,
    Packet,
    read,
    subfield_text,
)
from apps.pipeline import table_id

if TYPE_CHECKING:
    from apps.flows import Flow
    from apps.groups import Bucket, Group

OFPP_IN_PORT = 0xFFFFFFF8
OFPP_CONTROLLER = 0xFFFFFFFD
CONTROLLER = "controller"  # the port flowsim records for an output to OFPP_CONTROLLER
OFPAT_EXPERIMENTER = 0xFFFF
NX_VENDOR_ID = 0x00002320

WireKey = tuple[int, ...]  # (OFPAT type,) or (OFPAT_EXPERIMENTER, vendor, subtype)


def nx_key(subtype: int) -> WireKey:
    return (OFPAT_EXPERIMENTER, NX_VENDOR_ID, subtype)


def _pad8(length: int) -> bytes:
    return bytes(-length % 8)


class ActionText(NamedTuple):
    """What a describer needs besides its bytes: table names, and a describer of nested actions."""

    tables: Mapping[int, str]
    actions: Callable[[bytes], list[str]]

    def table(self, number: int) -> str | int:
        return self.tables.get(number, number)


class FlowCheck(Protocol):
    """The flow being checked, as apps.flowsim shows it to each of its actions in turn."""

    flow: Flow
    exact: dict[str, int]  # the fields the flow matches exactly
    tagged: bool           # whether the frame is known to be tagged at this point of the action list

    def fail(self, reason: str) -> NoReturn: ...

    def readable(self, name: str) -> None:
        """The field's prerequisites hold."""

    def writable(self, name: str, value: int | None, mask: int | None) -> None:
        """The field may be written (by set_field with `value` and `mask`, or by move with None)."""

    def continues(self, kind: str, table: str, strictly_later: bool) -> None:
        """The pipeline declares `table` as a next table of the flow's."""

    def group(self, group_id: int) -> Group:
        """The switch's group `group_id` (fails when it has none)."""


class Simulation(Protocol):
    """One pass of a packet through a switch's tables, as apps.flowsim runs it."""

    def fail(self, reason: str) -> NoReturn: ...

    def output(self, port: int | str, pkt: Packet) -> None:
        """The frame leaves by `port` (its metadata stays behind)."""

    def resubmit(self, table: str, pkt: Packet) -> None:
        """Run `table` as a subroutine."""

    def track(self, zone: int, pkt: Packet, commit: bool, mark: int | None, mark_mask: int | None,
              nat: Nat | None) -> tuple[int, int]:
        """(ct_state, ct_mark) of the packet's connection in `zone`, committing it (and the mark) if asked,
        and `pkt` translated (in place) by `nat`."""

    def recirculate(self, table: str, pkt: Packet) -> None:
        """A copy continues at `table` in a new pass."""

    def stop(self) -> NoReturn:
        """The running flow's remaining actions and goto are skipped (OVS: "stop processing for current
        table"); outputs already made stay, and a resubmit's caller carries on."""

    def select(self, group_id: int, pkt: Packet) -> Bucket | None:
        """The bucket of the switch's group `group_id` that `pkt` gets (None: no live bucket)."""


ACTIONS: list[type[Action]] = []
DESCRIBERS: dict[WireKey, type[Action]] = {}


class Action(ABC):
    """Every action: subclasses are frozen dataclasses, registered as they are defined."""

    WIRE: ClassVar[tuple[WireKey, ...]]  # the wire forms describe() reads

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for key in cls.WIRE:
            if key in DESCRIBERS:
                raise TypeError(f"{cls.__name__} claims wire form {key} of {DESCRIBERS[key].__name__}")
            DESCRIBERS[key] = cls
        ACTIONS.append(cls)

    @abstractmethod
    def encode(self) -> bytes:
        """The action's bytes as OVS 3.1 returns them."""

    @staticmethod
    @abstractmethod
    def describe(raw: bytes, text: ActionText) -> str:
        """One of this action's wire forms for people, as ovs-ofctl writes it."""

    @abstractmethod
    def check(self, flow: FlowCheck) -> None:
        """Refuse (flow.fail) what OVS or the pipeline declaration would."""

    @abstractmethod
    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        """Do to `pkt` (in place) what the switch does."""


# --- output ------------------------------------------------------------------------------------------------

_OFPAT_OUTPUT = 0
_OFPP_MAX = 0xFFFFFF00  # ports at or above this are reserved (only IN_PORT and CONTROLLER are modelled)
_PORT_NAMES = {OFPP_IN_PORT: "IN_PORT", 0xFFFFFFF9: "TABLE", 0xFFFFFFFA: "NORMAL", 0xFFFFFFFB: "FLOOD",
               0xFFFFFFFC: "ALL", OFPP_CONTROLLER: "CONTROLLER", 0xFFFFFFFE: "LOCAL"}


@dataclass(frozen=True)
class Output(Action):
    port: int
    max_len: int = 0

    WIRE = ((_OFPAT_OUTPUT,),)

    def encode(self) -> bytes:
        return struct.pack("!HHIH6x", _OFPAT_OUTPUT, 16, self.port, self.max_len)

    @staticmethod
    def describe(raw: bytes, text: ActionText) -> str:
        port, max_len = struct.unpack_from("!IH", raw, 4)
        if port == OFPP_CONTROLLER:
            return f"CONTROLLER:{max_len}"
        return f"output:{_PORT_NAMES.get(port, port)}"

    def check(self, flow: FlowCheck) -> None:
        if not 0 < self.port < _OFPP_MAX and self.port not in (OFPP_IN_PORT, OFPP_CONTROLLER):
            flow.fail(f"output to unsupported port {self.port:#x}")

    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        """OVS skips an output to the input port unless it is asked for as IN_PORT."""
        if self.port == OFPP_CONTROLLER:
            sim.output(CONTROLLER, pkt)
        elif self.port == OFPP_IN_PORT:
            sim.output(pkt["in_port"], pkt)
        elif self.port != pkt["in_port"]:
            sim.output(self.port, pkt)


# --- set_field ---------------------------------------------------------------------------------------------

_OFPAT_SET_FIELD = 25
_NXAST_REG_LOAD = 7


@dataclass(frozen=True)
class SetField(Action):
    """Set `field` to `value`, or only the bits of `mask` (value within mask).

    OpenFlow 1.3's set_field has no mask, so OVS sends a masked one back as NXAST_REG_LOAD, one per run
    of consecutive mask bits (lowest first), whatever form it came in: so do we.
    """

    field: str
    value: int
    mask: int | None = None

    WIRE = ((_OFPAT_SET_FIELD,), nx_key(_NXAST_REG_LOAD))

    def encode(self) -> bytes:
        declared = FIELD[self.field]
        if self.mask is None or self.mask == declared.full:
            oxm = declared.tlv(self.value, None)
            length = 4 + len(oxm)
            return struct.pack("!HH", _OFPAT_SET_FIELD, length + (-length % 8)) + oxm + _pad8(length)
        return b"".join(struct.pack("!HHIHHIQ", OFPAT_EXPERIMENTER, 24, NX_VENDOR_ID, _NXAST_REG_LOAD,
                                    ofs << 6 | n_bits - 1, declared.nxm_header, self.value >> ofs & (1 << n_bits) - 1)
                        for ofs, n_bits in _runs(self.mask))

    @staticmethod
    def describe(raw: bytes, text: ActionText) -> str:
        if raw[:2] != b"\xff\xff":
            oxm_header = int.from_bytes(raw[4:8], "big")
            known = BY_OXM.get(oxm_header >> 9)
            if known is None:
                return f"set_field:{raw[8:8 + (oxm_header & 0xFF)].hex()}->oxm_{oxm_header >> 9:#x}"
            return f"set_field:{known.text.render(int.from_bytes(raw[8:8 + known.nbytes], 'big'))}->{known.name}"
        ofs_nbits, dst, value = struct.unpack_from("!HIQ", raw, 10)
        shown = f"{value:#x}" if value else "0"  # as C's %#x
        return f"load:{shown}->{subfield_text(dst, ofs_nbits >> 6, (ofs_nbits & 0x3F) + 1)}"

    def check(self, flow: FlowCheck) -> None:
        flow.writable(self.field, self.value, self.mask)

    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        if self.mask is None:
            pkt[self.field] = self.value
            return
        old = read(pkt, self.field)
        if old is None:
            raise ValueError(f"set_field writes part of {self.field}, which the packet lacks: {pkt}")
        pkt[self.field] = old & ~self.mask | self.value


def _runs(mask: int) -> list[tuple[int, int]]:
    """(offset, length) of each run of consecutive set bits in `mask`, lowest first, at most 64 bits long
    (OVS's next_load_segment)."""
    runs, ofs = [], 0
    while rest := mask >> ofs:
        ofs += (rest & -rest).bit_length() - 1  # the next set bit
        rest = mask >> ofs
        n_bits = min((rest ^ (rest + 1)).bit_length() - 1, 64)
        runs.append((ofs, n_bits))
        ofs += n_bits
    return runs


# --- VLAN tags ---------------------------------------------------------------------------------------------

_OFPAT_PUSH_VLAN = 17
_OFPAT_POP_VLAN = 18
_VLAN_ETHERTYPES = (0x8100, 0x88A8)


@dataclass(frozen=True)
class PushVlan(Action):
    ethertype: int = 0x8100

    WIRE = ((_OFPAT_PUSH_VLAN,),)

    def encode(self) -> bytes:
        return struct.pack("!HHH2x", _OFPAT_PUSH_VLAN, 8, self.ethertype)

    @staticmethod
    def describe(raw: bytes, text: ActionText) -> str:
        return f"push_vlan:0x{int.from_bytes(raw[4:6], 'big'):04x}"

    def check(self, flow: FlowCheck) -> None:
        if self.ethertype not in _VLAN_ETHERTYPES:
            flow.fail(f"push_vlan with ethertype {self.ethertype:#x}")
        flow.tagged = True

    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        if "vlan_vid" in pkt:
            sim.fail(f"push_vlan on a tagged frame (double tagging is not modelled): {pkt}")
        pkt["vlan_vid"] = OFPVID_PRESENT


@dataclass(frozen=True)
class PopVlan(Action):
    WIRE = ((_OFPAT_POP_VLAN,),)

    def encode(self) -> bytes:
        return struct.pack("!HH4x", _OFPAT_POP_VLAN, 8)

    @staticmethod
    def describe(raw: bytes, text: ActionText) -> str:
        return "pop_vlan"

    def check(self, flow: FlowCheck) -> None:
        if not flow.tagged:
            flow.fail("pop_vlan on a frame not known to be tagged")
        flow.tagged = False

    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        del pkt["vlan_vid"]


# --- move --------------------------------------------------------------------------------------------------

_NXAST_REG_MOVE = 6


@dataclass(frozen=True)
class Move(Action):
    """Copy `n_bits` of field `src` (from bit src_ofs) into `dst` (at bit dst_ofs)."""

    src: str
    dst: str
    n_bits: int
    src_ofs: int = 0
    dst_ofs: int = 0

    WIRE = (nx_key(_NXAST_REG_MOVE),)

    def encode(self) -> bytes:
        """NXAST_REG_MOVE with each field's oldest header, which OVS re-encodes it with anyway."""
        return struct.pack("!HHIHHHHII", OFPAT_EXPERIMENTER, 24, NX_VENDOR_ID, _NXAST_REG_MOVE, self.n_bits,
                           self.src_ofs, self.dst_ofs, FIELD[self.src].nxm_header, FIELD[self.dst].nxm_header)

    @staticmethod
    def describe(raw: bytes, text: ActionText) -> str:
        n_bits, src_ofs, dst_ofs, src, dst = struct.unpack_from("!HHHII", raw, 10)
        return f"move:{subfield_text(src, src_ofs, n_bits)}->{subfield_text(dst, dst_ofs, n_bits)}"

    def check(self, flow: FlowCheck) -> None:
        flow.readable(self.src)
        flow.writable(self.dst, None, None)
        if not (0 < self.n_bits and self.src_ofs + self.n_bits <= FIELD[self.src].bits
                and self.dst_ofs + self.n_bits <= FIELD[self.dst].bits):
            flow.fail("move bits out of range")

    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        src = read(pkt, self.src)
        if src is None:
            raise ValueError(f"move reads {self.src}, which the packet lacks: {pkt}")
        bits = (1 << self.n_bits) - 1
        whole_field = self.dst_ofs == 0 and self.n_bits == FIELD[self.dst].bits
        old = 0 if whole_field else read(pkt, self.dst)
        if old is None:
            raise ValueError(f"move writes part of {self.dst}, which the packet lacks: {pkt}")
        pkt[self.dst] = (old & ~(bits << self.dst_ofs)) | (((src >> self.src_ofs) & bits) << self.dst_ofs)


# --- multipath --------------------------------------------------------------------------------------------

_NXAST_MULTIPATH = 10
_NX_HASH_FIELDS_NW_SRC = 4
_NX_MP_ALG_HRW = 2


@dataclass(frozen=True)
class Multipath(Action):
    """Hash the source address into one of `n_links` (0..n_links-1), highest random weight (OVS multipath
    with fields nw_src, algorithm hrw), and write it to register `dst`: the same source always gets the same link,
    and a link added or removed moves only the sources that pick it."""

    n_links: int
    dst: str

    WIRE = (nx_key(_NXAST_MULTIPATH),)

    def encode(self) -> bytes:
        n_bits = FIELD[self.dst].bits
        return struct.pack("!HHIHHHHHHIHHI", OFPAT_EXPERIMENTER, 32, NX_VENDOR_ID, _NXAST_MULTIPATH,
                           _NX_HASH_FIELDS_NW_SRC, 0, 0, _NX_MP_ALG_HRW, self.n_links - 1, 0, 0, n_bits - 1,
                           FIELD[self.dst].nxm_header)

    @staticmethod
    def describe(raw: bytes, text: ActionText) -> str:
        fields, basis, _, algorithm, max_link, arg, _, ofs_nbits, dst = struct.unpack_from("!HHHHHIHHI", raw, 10)
        names = {_NX_HASH_FIELDS_NW_SRC: "nw_src"}
        algorithms = {_NX_MP_ALG_HRW: "hrw"}
        return (f"multipath({names.get(fields, fields)},{basis},{algorithms.get(algorithm, algorithm)},"
                f"{max_link + 1},{arg},{subfield_text(dst, ofs_nbits >> 6, (ofs_nbits & 0x3F) + 1)})")

    def check(self, flow: FlowCheck) -> None:
        if self.dst not in REGISTERS:
            flow.fail("multipath writes a register")
        if not 1 <= self.n_links <= 1 << 16:
            flow.fail(f"multipath over {self.n_links} links")
        flow.readable("ipv4_src")
        flow.writable(self.dst, None, None)

    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        """A stand-in for OVS's hash (flowsim cannot reproduce it): stable per source, HRW over the links."""
        source = read(pkt, "ipv4_src") or 0
        pkt[self.dst] = max(range(self.n_links), key=lambda link: _hrw(source, link))


def _hrw(source: int, link: int) -> int:
    return int.from_bytes(hashlib.blake2b(struct.pack("!II", source, link), digest_size=4).digest(), "big")


# --- resubmit ----------------------------------------------------------------------------------------------

_NXAST_RESUBMIT_TABLE = 14
_OFPP16_IN_PORT = 0xFFF8  # OFPP_IN_PORT in the 16-bit port field of NXAST_RESUBMIT_TABLE


@dataclass(frozen=True)
class Resubmit(Action):
    """Run `table` as a subroutine, then continue with the next action (OVS resubmit(,table))."""

    table: str

    WIRE = (nx_key(_NXAST_RESUBMIT_TABLE),)

    def encode(self) -> bytes:
        return struct.pack("!HHIHHB3x", OFPAT_EXPERIMENTER, 16, NX_VENDOR_ID, _NXAST_RESUBMIT_TABLE,
                           _OFPP16_IN_PORT, table_id(self.table))

    @staticmethod
    def describe(raw: bytes, text: ActionText) -> str:
        port, table = struct.unpack_from("!HB", raw, 10)
        return f"resubmit({'' if port == _OFPP16_IN_PORT else port},{text.table(table)})"

    def check(self, flow: FlowCheck) -> None:
        """OVS resubmits anywhere; the pipeline declares where (back to an earlier table only if it says so)."""
        flow.continues("resubmit to", self.table, strictly_later=False)

    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        sim.resubmit(self.table, pkt)


# --- TTL ---------------------------------------------------------------------------------------------------

_OFPAT_DEC_NW_TTL = 24


@dataclass(frozen=True)
class DecTtl(Action):
    """Decrement the IP TTL; a packet whose TTL runs out goes no further in this flow (OVS would hand it to
    controllers that asked for invalid_ttl packets, which ours never does)."""

    WIRE = ((_OFPAT_DEC_NW_TTL,),)

    def encode(self) -> bytes:
        return struct.pack("!HH4x", _OFPAT_DEC_NW_TTL, 8)

    @staticmethod
    def describe(raw: bytes, text: ActionText) -> str:
        return "dec_ttl"

    def check(self, flow: FlowCheck) -> None:
        """OVS refuses dec_ttl in OF1.3 unless the flow matches IP exactly."""
        flow.readable("nw_ttl")

    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        ttl = read(pkt, "nw_ttl")
        if ttl is None:
            raise ValueError(f"dec_ttl on a packet without nw_ttl: {pkt}")
        if ttl <= 1:
            sim.stop()
        pkt["nw_ttl"] = ttl - 1


# --- conntrack ---------------------------------------------------------------------------------------------

_NXAST_CT = 35
_NXAST_NAT = 36
_NX_CT_F_COMMIT = 1
_NX_CT_RECIRC_NONE = 0xFF
_CT_ZONE_BITS = FIELD["ct_zone"].bits
_NAT_FLAGS = {"src": 1, "dst": 2}  # NX_NAT_F_SRC, NX_NAT_F_DST
# NX_NAT_RANGE_* bit, wire format and width of each optional range parameter, in wire order.
_NAT_RANGES = (("ip_min", 1, "!I"), ("ip_max", 2, "!I"), ("port_min", 16, "!H"), ("port_max", 32, "!H"))


@dataclass(frozen=True)
class Nat:
    """ct's nat: `kind` "src" or "dst" translates a new connection to the given range (IPv4 as ints, see
    apps.fields.ip_to_int) when committed; None only applies an existing connection's translation, or its
    reverse to replies."""

    kind: str | None = None
    ip_min: int | None = None
    ip_max: int | None = None
    port_min: int | None = None
    port_max: int | None = None

    def encode(self) -> bytes:
        """NXAST_NAT: flags, which ranges are present, then those, padded to 8 (OVS's encode_NAT)."""
        present, params = 0, b""
        for name, bit, fmt in _NAT_RANGES:
            value = getattr(self, name)
            if value is not None:
                present |= bit
                params += struct.pack(fmt, value)
        length = 16 + len(params)
        return struct.pack("!HHIH2xHH", OFPAT_EXPERIMENTER, length + (-length % 8), NX_VENDOR_ID, _NXAST_NAT,
                           _NAT_FLAGS.get(self.kind or "", 0), present) + params + _pad8(length)

    @staticmethod
    def describe(raw: bytes) -> str:
        """As ovs-ofctl: nat, or nat(src=IP[-IP][:PORT[-PORT]])."""
        flags, present = struct.unpack_from("!HH", raw, 12)
        values, pos = {}, 16
        for name, bit, fmt in _NAT_RANGES:
            if present & bit:
                values[name] = struct.unpack_from(fmt, raw, pos)[0]
                pos += struct.calcsize(fmt)
        kind = next((kind for kind, bit in _NAT_FLAGS.items() if flags & bit), None)
        if kind is None:
            return "nat"
        shown = kind
        if "ip_min" in values:
            shown += f"={IPV4.render(values['ip_min'])}" + _upper(values, "ip_max", values["ip_min"], IPV4.render)
            if "port_min" in values:
                shown += f":{values['port_min']}" + _upper(values, "port_max", values["port_min"], str)
        return f"nat({shown})"

    def check(self, flow: FlowCheck, commit: bool) -> None:
        """OVS refuses nat with a range outside ct(commit), and an IPv4 range on a flow not matching IPv4."""
        ranges = [getattr(self, name) for name, _, _ in _NAT_RANGES]
        if self.kind is None:
            if any(value is not None for value in ranges):
                flow.fail("nat without src or dst takes no range")
            return
        if self.kind not in _NAT_FLAGS or not commit:
            flow.fail("nat(src=...) or nat(dst=...) needs ct(commit)")
        if flow.exact.get("eth_type") != ETH_TYPE_IP:
            flow.fail("an IPv4 nat range needs an exact match on eth_type IPv4")
        ip_min, ip_max, port_min, port_max = ranges
        if not (ip_min and 0 < ip_min <= (ip_max or ip_min) <= FIELD["ipv4_src"].full):
            flow.fail(f"nat needs a nonzero ip_min, and ip_max not below it: {self}")
        if (port_min is None and port_max is not None) or not (
                port_min is None or 0 < port_min <= (port_max or port_min) <= 0xFFFF):
            flow.fail(f"nat ports need a nonzero port_min, and port_max not below it: {self}")


def _upper(values: dict[str, int], name: str, low: int, render: Callable[[int], str]) -> str:
    """The "-max" of a range, shown only when it differs from its min (as OVS's format_NAT)."""
    high = values.get(name)
    return f"-{render(high)}" if high and high != low else ""


@dataclass(frozen=True)
class Ct(Action):
    """Send the packet through conntrack in a zone (an immediate `zone`, or bits 0-15 of `zone_reg`).

    With `table`, a copy of the packet continues there with ct_state set (the current action list
    also continues); `commit` records the connection, `set_mark` stores ct_mark with it: the bits of
    `mark_mask` only, or the whole mark without one. `nat` translates the packet (see Nat).
    """

    commit: bool = False
    zone: int = 0
    zone_reg: str | None = None
    table: str | None = None
    set_mark: int | None = None
    mark_mask: int | None = None
    nat: Nat | None = None

    WIRE = (nx_key(_NXAST_CT),)

    def encode(self) -> bytes:
        """NXAST_CT: zone from bits 0-15 of a register (NXM header + ofs_nbits) or immediate, alg 0, then
        the nested actions: nat first (OVS shows it outside exec only there), then the mark as a set_field
        (a whole one) or reg_loads (masked)."""
        nested = b"" if self.nat is None else self.nat.encode()
        if self.set_mark is not None:
            nested += SetField("ct_mark", self.set_mark, self.mark_mask).encode()
        if self.zone_reg is None:
            zone_src, zone = 0, self.zone
        else:
            zone_src, zone = FIELD[self.zone_reg].nxm_header, _CT_ZONE_BITS - 1  # ofs 0 << 6 | n_bits - 1
        recirc_table = _NX_CT_RECIRC_NONE if self.table is None else table_id(self.table)
        return struct.pack("!HHIHHIHB3xH", OFPAT_EXPERIMENTER, 24 + len(nested), NX_VENDOR_ID, _NXAST_CT,
                           _NX_CT_F_COMMIT if self.commit else 0, zone_src, zone, recirc_table, 0) + nested

    @staticmethod
    def describe(raw: bytes, text: ActionText) -> str:
        flags, zone_src, zone, recirc_table = struct.unpack_from("!HIHB", raw, 10)
        parts = ["commit"] if flags & _NX_CT_F_COMMIT else []
        if zone_src:
            parts.append(f"zone={subfield_text(zone_src, zone >> 6, (zone & 0x3F) + 1)}")
        elif zone:
            parts.append(f"zone={zone}")
        nested = raw[24:]
        if len(nested) >= 16 and struct.unpack_from("!HxxIH", nested) == (OFPAT_EXPERIMENTER, NX_VENDOR_ID, _NXAST_NAT):
            nat_length = int.from_bytes(nested[2:4], "big")
            parts.append(Nat.describe(nested[:nat_length]))
            nested = nested[nat_length:]
        if recirc_table != _NX_CT_RECIRC_NONE:
            parts.append(f"table={text.table(recirc_table)}")
        described = text.actions(nested)
        if described:
            parts.append(f"exec({','.join(described)})")
        return f"ct({','.join(parts)})"

    def check(self, flow: FlowCheck) -> None:
        if flow.exact.get("eth_type") not in IP_ANY:  # OVS: OFPBAC_MATCH_INCONSISTENT, so no ARP ever reaches ct
            flow.fail(f"ct needs an exact match on eth_type in {sorted(IP_ANY)}")
        if self.table is not None:
            flow.continues("ct table", self.table, strictly_later=True)
        if self.zone_reg is not None and (self.zone_reg not in REGISTERS or self.zone != 0):
            flow.fail("ct zone_reg must be a register, and excludes an immediate zone")
        if not 0 <= self.zone < 1 << _CT_ZONE_BITS:
            flow.fail(f"ct zone {self.zone} does not fit 16 bits")
        mark_bits = FIELD["ct_mark"].full
        if self.set_mark is not None and not (self.commit and 0 <= self.set_mark <= mark_bits):
            flow.fail("ct set_mark needs commit and a 32-bit value")
        if self.mark_mask is not None and (self.set_mark is None or not 0 < self.mark_mask <= mark_bits
                                           or self.set_mark & ~self.mark_mask):
            flow.fail("ct mark_mask needs a set_mark within it, and 1 to 32 bits")
        if self.commit and any(name == "ct_state" and val & CT_INV for name, val, _ in flow.flow.match):
            flow.fail("ct commit of packets matched as +inv")
        if self.nat is not None:
            self.nat.check(flow, self.commit)

    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        """With a table, a clone recirculates with ct_state, ct_zone and ct_mark set and the registers as
        they were; either way the packet goes on untracked (OVS: "sets the packet to an untracked state,
        and clears all the conntrack fields"), and translated by nat, as the datapath leaves it."""
        zone = self.zone if self.zone_reg is None else read(pkt, self.zone_reg) & 0xFFFF
        state, mark = sim.track(zone, pkt, self.commit, self.set_mark, self.mark_mask, self.nat)
        if self.table is not None:
            sim.recirculate(self.table, {**pkt, "ct_state": state, "ct_zone": zone, "ct_mark": mark})
        for name in CONNTRACK_FIELDS:
            pkt.pop(name, None)


# --- conjunctive matches -----------------------------------------------------------------------------------

_NXAST_CONJUNCTION = 34
_MAX_CLAUSES = 64


@dataclass(frozen=True)
class Conjunction(Action):
    """This flow is clause `clause` (1-based) of `n_clauses` of conjunctive match `id`."""

    id: int
    clause: int
    n_clauses: int

    WIRE = (nx_key(_NXAST_CONJUNCTION),)

    def encode(self) -> bytes:
        """The wire counts clauses from 0."""
        return struct.pack("!HHIHBBI", OFPAT_EXPERIMENTER, 16, NX_VENDOR_ID, _NXAST_CONJUNCTION,
                           self.clause - 1, self.n_clauses, self.id)

    @staticmethod
    def describe(raw: bytes, text: ActionText) -> str:
        clause, n_clauses, conj_id = struct.unpack_from("!BBI", raw, 10)
        return f"conjunction({conj_id},{clause + 1}/{n_clauses})"

    def check(self, flow: FlowCheck) -> None:
        if flow.flow.goto is not None or not all(isinstance(action, Conjunction) for action in flow.flow.actions):
            flow.fail("conjunction actions may not be mixed with other actions or a goto")
        if not (2 <= self.n_clauses <= _MAX_CLAUSES and 1 <= self.clause <= self.n_clauses
                and 0 <= self.id <= FIELD["conj_id"].full):
            flow.fail(f"conjunction({self.id}, {self.clause}/{self.n_clauses}) needs 2 to {_MAX_CLAUSES} clauses, "
                      "numbered from 1")

    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        """Nothing: the classifier resolves clause flows (apps.flowsim's lookup), they never run."""



# --- groups ------------------------------------------------------------------------------------------------

_OFPAT_GROUP = 22


@dataclass(frozen=True)
class GroupAction(Action):
    """Hand the packet to one bucket of select group `group_id` (apps.groups); the bucket acts on a copy, as
    OVS rolls the packet back after a bucket, and its actions count as the calling flow's."""

    group_id: int

    WIRE = ((_OFPAT_GROUP,),)

    def encode(self) -> bytes:
        return struct.pack("!HHI", _OFPAT_GROUP, 8, self.group_id)

    @staticmethod
    def describe(raw: bytes, text: ActionText) -> str:
        return f"group:{int.from_bytes(raw[4:8], 'big')}"

    def check(self, flow: FlowCheck) -> None:
        """OVS refuses a flow naming a group the switch lacks. It checks bucket actions against no flow at all (a
        ct on a non-IP packet fails only in the datapath); here they must suit each calling flow as its own would."""
        tagged = flow.tagged
        for bucket in flow.group(self.group_id).buckets:
            for action in bucket.actions:
                action.check(flow)
            flow.tagged = tagged

    def simulate(self, pkt: Packet, sim: Simulation) -> None:
        bucket = sim.select(self.group_id, pkt)
        if bucket is not None:
            copy = dict(pkt)
            for action in bucket.actions:
                action.simulate(copy, sim)
