"""Match and set-field fields, each declared once: what every layer needs to know of it, side by side.

A `Field` carries its width (the order of DECLARED is the canonical order of a match), its wire headers
(`oxm` for matches and set_field as OVS 3.1 sends them in OpenFlow 1.3, `nxm` for NX actions), the bits
OVS keeps of it, how its values read and print (`text`), what a flow must match before it may match,
set or move it (`prereqs`), whether and how flows may write it (`write`), whether it belongs to the frame
or to the pipeline, what a packet without it reads, and the names OVS gives it in flow syntax and in
datapath set() actions (for ofproto/trace). controller/ofwire encodes and describes matches from these,
apps/flowsim checks and runs flows with them, and the bridge tests trace packets by them: a new field is
one declaration here.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass, field
from functools import lru_cache

MatchItem = tuple[str, int, int | None]  # (field, value, mask or None when exact)
Match = tuple[MatchItem, ...]
Packet = dict[str, int]

OFPVID_PRESENT = 0x1000
ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_LLDP = 0x88CC
MULTICAST_BIT = 0x010000000000  # the I/G bit of a MAC, as a (value, mask) on eth_dst
IP_PROTO = {"icmp": 1, "tcp": 6, "udp": 17}
IP_ANY = frozenset({ETH_TYPE_IP, ETH_TYPE_IPV6})

# ct_state bits (match as (value, mask): bits in mask must equal their bit in value).
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
CT_SNAT, CT_DNAT = 0x40, 0x80

# Header classes: OpenFlow basic, and Nicira's two (OVS uses NXM_NX for the fields only it has).
OXM_OF = 0x8000
NXM_OF = 0x0000
NXM_NX = 0x0001


def header(class_: int, number: int, hasmask: bool, length: int) -> int:
    """An OXM/NXM header; `header >> 9` (class and field) identifies the field whatever the mask and length."""
    return class_ << 16 | number << 9 | hasmask << 8 | length


def mac_to_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def int_to_mac(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


def ip_to_int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


# --- how values read and print ----------------------------------------------------------------------------

class Text:
    """Plain integers: given as ints, printed as ints (masked ones in hex, as ovs-ofctl does)."""

    def parse(self, name: str, text: str) -> tuple[int, int]:
        """A text value as (value, mask); only addresses are given as text."""
        raise ValueError(f"bad value {text!r} for field {name}")

    def render(self, value: int) -> str | int:
        return value

    def render_masked(self, value: int, mask: int) -> str:
        return f"{value:#x}/{mask:#x}"


class _Mac(Text):
    def parse(self, name: str, text: str) -> tuple[int, int]:
        return _parse_mac(text)

    def render(self, value: int) -> str:
        return int_to_mac(value)

    def render_masked(self, value: int, mask: int) -> str:
        return f"{int_to_mac(value)}/{int_to_mac(mask)}"


class _Ipv4(Text):
    def parse(self, name: str, text: str) -> tuple[int, int]:
        return _parse_ip(text)

    def render(self, value: int) -> str:
        return str(ipaddress.IPv4Address(value))

    def render_masked(self, value: int, mask: int) -> str:
        """A CIDR where the mask is a prefix, else address/mask."""
        try:
            return str(ipaddress.IPv4Network((value, str(ipaddress.IPv4Address(mask)))))
        except ValueError:
            return f"{self.render(value)}/{self.render(mask)}"


class _Ethertype(Text):
    def render(self, value: int) -> str:
        return f"0x{value:04x}"


# ct_state flags as ovs-ofctl names them, tracked first as it reads best ("+trk+est-rpl").
_CT_STATE_FLAGS = (("trk", CT_TRK), ("new", CT_NEW), ("est", CT_EST), ("rel", CT_REL), ("rpl", CT_RPL),
                   ("inv", CT_INV), ("snat", CT_SNAT), ("dnat", CT_DNAT))


class _CtState(Text):
    """+flag for each bit required set, -flag for each required clear; exact means all 8 flags OVS keeps."""

    def render(self, value: int) -> str:
        return self.render_masked(value, 0xFF)

    def render_masked(self, value: int, mask: int) -> str:
        return "".join(("+" if value & bit else "-") + flag for flag, bit in _CT_STATE_FLAGS if mask & bit)


@lru_cache(maxsize=1 << 16)
def _parse_mac(text: str) -> tuple[int, int]:
    return mac_to_int(text), (1 << 48) - 1


@lru_cache(maxsize=1 << 16)
def _parse_ip(text: str) -> tuple[int, int]:
    """Parsed once however many flows (and fields: ipv4_src, arp_spa, ...) use it."""
    net = ipaddress.IPv4Network(text, strict=False)
    return int(net.network_address), int(net.netmask)


DECIMAL, MAC, IPV4, ETHERTYPE, CT_STATE_FLAGS = Text(), _Mac(), _Ipv4(), _Ethertype(), _CtState()


# --- the declaration ---------------------------------------------------------------------------------------

class Write(enum.Enum):
    """How flows may write a field (set_field, move)."""

    ANY = "any"
    NEVER = "read-only"
    CT_EXEC = "only inside ct(commit, exec(...))"
    TAGGED = "only on a frame known to be tagged, with OFPVID_PRESENT"


class Scope(enum.Enum):
    FRAME = "frame"          # leaves the switch with the packet
    PIPELINE = "pipeline"    # metadata of one pass through the tables: in_port, registers, conj_id
    CONNTRACK = "conntrack"  # set by ct, cleared after it (OVS: "clears all the conntrack fields")


Prereqs = tuple[tuple[str, frozenset[int]], ...]
_IPV4_ONLY = frozenset({ETH_TYPE_IP})
_IP_PREREQ: Prereqs = (("eth_type", IP_ANY),)
_IPV4_PREREQ: Prereqs = (("eth_type", _IPV4_ONLY),)
_ARP_PREREQ: Prereqs = (("eth_type", frozenset({ETH_TYPE_ARP})),)


def _l4(proto: str, ip: frozenset[int] = IP_ANY) -> Prereqs:
    return (("eth_type", ip), ("ip_proto", frozenset({IP_PROTO[proto]})))


@dataclass(frozen=True)
class Field:
    """One field, for every layer. Derived: `nbytes`, `full` (all its bits), `kept` (the mask of those OVS
    keeps), `exact_header` (its OXM header without a mask)."""

    name: str
    bits: int
    oxm: tuple[int, int]       # (class, field) in matches and set_field, as OVS returns them in OF1.3
    nxm: tuple[int, int, str]  # the oldest header and its name: OVS re-encodes NX actions (move, ct zone, load)
    #                            with it whatever header they were sent with
    text: Text = DECIMAL
    prereqs: Prereqs = ()
    write: Write = Write.ANY
    scope: Scope = Scope.FRAME
    absent: int | None = None  # what a packet without the field reads (None: it cannot match)
    kept_bits: int | None = None  # how many bits OVS keeps, when fewer than `bits` (ct_state: 8 of 32)
    ovs_name: str = ""         # its name in OVS flow syntax (ofproto/trace), when not `name`
    datapath: tuple[str, str] | None = None  # (header, key) of the datapath's set(header(key=...)) for it
    maskable: bool = True      # OVS refuses a masked match on it (BAD_MASK) when False
    nbytes: int = field(init=False, repr=False)
    full: int = field(init=False, repr=False)
    kept: int = field(init=False, repr=False)
    exact_header: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nbytes", (self.bits + 7) // 8)
        object.__setattr__(self, "full", (1 << self.bits) - 1)
        object.__setattr__(self, "kept", (1 << (self.kept_bits or self.bits)) - 1)
        object.__setattr__(self, "exact_header", header(*self.oxm, False, self.nbytes))
        if not self.ovs_name:
            object.__setattr__(self, "ovs_name", self.name)

    @property
    def nxm_header(self) -> int:
        """The header OVS uses for this field inside NX actions."""
        return header(self.nxm[0], self.nxm[1], False, self.nbytes)

    def tlv(self, value: int, mask: int | None) -> bytes:
        """Its OXM TLV: exact, or masked in canonical form (as canonical_tlv leaves what OVS returns)."""
        if mask is None:
            return struct.pack("!I", self.exact_header) + value.to_bytes(self.nbytes, "big")
        return canonical_tlv(self.exact_header, self.nbytes, value, mask, self.kept)

    def describe(self, value: int, mask: int | None) -> str | int:
        """A matched value for people: MACs and IPv4 as text, masked values as "value/mask" or a CIDR."""
        return self.text.render(value) if mask is None else self.text.render_masked(value, mask)


def canonical_tlv(exact_header: int, width: int, value: int, mask: int, kept: int) -> bytes:
    """A masked field in canonical form: mask cut to `kept`, exact if then all of it, b"" if zero, value &= mask."""
    mask &= kept
    if mask == kept:
        return struct.pack("!I", exact_header) + (value & mask).to_bytes(width, "big")
    if not mask:
        return b""
    return (struct.pack("!I", exact_header + 0x100 + width) + (value & mask).to_bytes(width, "big")
            + mask.to_bytes(width, "big"))


_PIPELINE = {"scope": Scope.PIPELINE, "absent": 0}
_CONNTRACK = {"scope": Scope.CONNTRACK, "absent": 0}

DECLARED: tuple[Field, ...] = (
    Field("in_port", 32, (OXM_OF, 0), (OXM_OF, 0, "OXM_OF_IN_PORT"), scope=Scope.PIPELINE, maskable=False),
    Field("eth_dst", 48, (OXM_OF, 3), (NXM_OF, 1, "NXM_OF_ETH_DST"), MAC, datapath=("eth", "dst")),
    Field("eth_src", 48, (OXM_OF, 4), (NXM_OF, 2, "NXM_OF_ETH_SRC"), MAC, datapath=("eth", "src")),
    Field("eth_type", 16, (OXM_OF, 5), (NXM_OF, 3, "NXM_OF_ETH_TYPE"), ETHERTYPE, write=Write.NEVER, maskable=False),
    Field("vlan_vid", 13, (OXM_OF, 6), (OXM_OF, 6, "OXM_OF_VLAN_VID"), write=Write.TAGGED, absent=0),
    Field("ip_proto", 8, (OXM_OF, 10), (NXM_OF, 6, "NXM_OF_IP_PROTO"), prereqs=_IP_PREREQ, write=Write.NEVER,
          maskable=False),
    Field("ipv4_src", 32, (OXM_OF, 11), (NXM_OF, 7, "NXM_OF_IP_SRC"), IPV4, _IPV4_PREREQ, ovs_name="ip_src",
          datapath=("ipv4", "src")),
    Field("ipv4_dst", 32, (OXM_OF, 12), (NXM_OF, 8, "NXM_OF_IP_DST"), IPV4, _IPV4_PREREQ, ovs_name="ip_dst",
          datapath=("ipv4", "dst")),
    Field("tcp_src", 16, (OXM_OF, 13), (NXM_OF, 9, "NXM_OF_TCP_SRC"), prereqs=_l4("tcp"), datapath=("tcp", "src")),
    Field("tcp_dst", 16, (OXM_OF, 14), (NXM_OF, 10, "NXM_OF_TCP_DST"), prereqs=_l4("tcp"), datapath=("tcp", "dst")),
    Field("udp_src", 16, (OXM_OF, 15), (NXM_OF, 11, "NXM_OF_UDP_SRC"), prereqs=_l4("udp"), datapath=("udp", "src")),
    Field("udp_dst", 16, (OXM_OF, 16), (NXM_OF, 12, "NXM_OF_UDP_DST"), prereqs=_l4("udp"), datapath=("udp", "dst")),
    Field("icmpv4_type", 8, (OXM_OF, 19), (NXM_OF, 13, "NXM_OF_ICMP_TYPE"), prereqs=_l4("icmp", _IPV4_ONLY),
          ovs_name="icmp_type", datapath=("icmp", "type"), maskable=False),
    Field("icmpv4_code", 8, (OXM_OF, 20), (NXM_OF, 14, "NXM_OF_ICMP_CODE"), prereqs=_l4("icmp", _IPV4_ONLY),
          ovs_name="icmp_code", datapath=("icmp", "code"), maskable=False),
    Field("arp_op", 16, (OXM_OF, 21), (NXM_OF, 15, "NXM_OF_ARP_OP"), prereqs=_ARP_PREREQ, datapath=("arp", "op"),
          maskable=False),
    Field("arp_spa", 32, (OXM_OF, 22), (NXM_OF, 16, "NXM_OF_ARP_SPA"), IPV4, _ARP_PREREQ, datapath=("arp", "sip")),
    Field("arp_tpa", 32, (OXM_OF, 23), (NXM_OF, 17, "NXM_OF_ARP_TPA"), IPV4, _ARP_PREREQ, datapath=("arp", "tip")),
    Field("arp_sha", 48, (OXM_OF, 24), (NXM_NX, 17, "NXM_NX_ARP_SHA"), MAC, _ARP_PREREQ, datapath=("arp", "sha")),
    Field("arp_tha", 48, (OXM_OF, 25), (NXM_NX, 18, "NXM_NX_ARP_THA"), MAC, _ARP_PREREQ, datapath=("arp", "tha")),
    # OF1.3 has no OXM for the TTL: OVS matches and sets it by its NXM header.
    Field("nw_ttl", 8, (NXM_NX, 29), (NXM_NX, 29, "NXM_NX_IP_TTL"), prereqs=_IP_PREREQ, datapath=("ipv4", "ttl"),
          maskable=False),
    *(Field(f"reg{n}", 32, (NXM_NX, n), (NXM_NX, n, f"NXM_NX_REG{n}"), **_PIPELINE) for n in range(16)),
    # The conntrack fields and conj_id have only NXM headers, so OVS uses those (not OXM experimenter ones).
    Field("ct_state", 32, (NXM_NX, 105), (NXM_NX, 105, "NXM_NX_CT_STATE"), CT_STATE_FLAGS, write=Write.NEVER,
          kept_bits=8, **_CONNTRACK),
    Field("ct_zone", 16, (NXM_NX, 106), (NXM_NX, 106, "NXM_NX_CT_ZONE"), write=Write.NEVER, maskable=False,
          **_CONNTRACK),
    Field("ct_mark", 32, (NXM_NX, 107), (NXM_NX, 107, "NXM_NX_CT_MARK"), write=Write.CT_EXEC, **_CONNTRACK),
    Field("conj_id", 32, (NXM_NX, 37), (NXM_NX, 37, "NXM_NX_CONJ_ID"), write=Write.NEVER, **_PIPELINE, maskable=False),
)

FIELD: dict[str, Field] = {f.name: f for f in DECLARED}
FIELDS: dict[str, int] = {f.name: f.bits for f in DECLARED}  # name -> width, in canonical match order
REGISTERS = frozenset(name for name in FIELD if name.startswith("reg"))
CONNTRACK_FIELDS = tuple(f.name for f in DECLARED if f.scope is Scope.CONNTRACK)
BY_OXM: dict[int, Field] = {f.exact_header >> 9: f for f in DECLARED}  # header >> 9 -> field
BY_NXM: dict[int, Field] = {f.nxm_header >> 9: f for f in DECLARED}


_ABSENT = {f.name: f.absent for f in DECLARED}


def read(pkt: Packet, name: str) -> int | None:
    """A packet's field as a switch reads it: metadata and vlan_vid are 0 when absent, other fields None."""
    return pkt.get(name, _ABSENT[name])


def subfield_text(nxm_header: int, ofs: int, n_bits: int) -> str:
    """Bits of a field in an NX action as ovs-ofctl shows them: "NXM_NX_REG3[0..15]", "NXM_OF_ETH_SRC[]"."""
    known = BY_NXM.get(nxm_header >> 9)
    name = known.nxm[2] if known else f"field_{nxm_header >> 9:#x}"
    if ofs == 0 and n_bits == (nxm_header & 0xFF) * 8:
        return f"{name}[]"
    return f"{name}[{ofs}..{ofs + n_bits - 1}]" if n_bits > 1 else f"{name}[{ofs}]"
