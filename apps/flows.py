"""Flow specs as immutable values: what the compilers return and the programmer installs.

A flow is keyed by (table, priority, match); its cookie names the owner (app, object) that
produced it. Matches are canonical (fields in FIELDS order, masks applied, full masks dropped)
so equal policy always yields equal keys, on every compile and after reading a switch back.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache

# Match/set-field names -> width in bits. The order here is the canonical order of a match.
FIELDS: dict[str, int] = {
    "in_port": 32,
    "eth_dst": 48,
    "eth_src": 48,
    "eth_type": 16,
    "vlan_vid": 13,
    "ip_proto": 8,
    "ipv4_src": 32,
    "ipv4_dst": 32,
    "tcp_src": 16,
    "tcp_dst": 16,
    "udp_src": 16,
    "udp_dst": 16,
    "icmpv4_type": 8,
    "icmpv4_code": 8,
    "arp_op": 16,
    "arp_spa": 32,
    "arp_tpa": 32,
    "arp_sha": 48,
    "arp_tha": 48,
    **{f"reg{n}": 32 for n in range(8)},
    "ct_state": 32,
    "ct_zone": 16,
    "ct_mark": 32,
    "conj_id": 32,
}
_ORDER = {name: i for i, name in enumerate(FIELDS)}
_MAC_FIELDS = {"eth_dst", "eth_src", "arp_sha", "arp_tha"}
_IP_FIELDS = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"}

OFPP_IN_PORT = 0xFFFFFFF8
OFPP_CONTROLLER = 0xFFFFFFFD
OFPVID_PRESENT = 0x1000
ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_LLDP = 0x88CC
MULTICAST_BIT = 0x010000000000  # the I/G bit of a MAC, as a (value, mask) on eth_dst
IP_PROTO = {"icmp": 1, "tcp": 6, "udp": 17}

# ct_state bits (match as (value, mask): bits in mask must equal their bit in value).
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def ct_state(plus: int = 0, minus: int = 0) -> tuple[int, int]:
    """ct_state=+a-b as a (value, mask) match: ct_state(CT_TRK | CT_EST, CT_RPL) is +trk+est-rpl."""
    return (plus, plus | minus)

MatchItem = tuple[str, int, int | None]
Match = tuple[MatchItem, ...]
FieldValue = int | str | tuple[int, int]


def mac_to_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def int_to_mac(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


def ip_to_int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


def _parse_text(name: str, text: str) -> tuple[int, int]:
    """A MAC or an IPv4 address/prefix as (value, mask)."""
    if name in _MAC_FIELDS:
        return _parse_mac(text)
    if name in _IP_FIELDS:
        return _parse_ip(text)
    raise ValueError(f"bad value {text!r} for field {name}")


@lru_cache(maxsize=1 << 16)
def _parse_mac(text: str) -> tuple[int, int]:
    return mac_to_int(text), (1 << 48) - 1


@lru_cache(maxsize=1 << 16)
def _parse_ip(text: str) -> tuple[int, int]:
    """Parsed once however many flows (and fields: ipv4_src, arp_spa, ...) use it."""
    net = ipaddress.IPv4Network(text, strict=False)
    return int(net.network_address), int(net.netmask)


_FULL = {name: (1 << bits) - 1 for name, bits in FIELDS.items()}


def _value_and_mask(name: str, value: FieldValue) -> tuple[int, int | None]:
    full = _FULL[name]
    if value.__class__ is int:
        return value & full, None
    if isinstance(value, tuple):
        val, mask = value
    elif isinstance(value, str):
        val, mask = _parse_text(name, value)
    elif isinstance(value, int):
        val, mask = value, full
    else:
        raise ValueError(f"bad value {value!r} for field {name}")
    if mask == full:
        return val & full, None
    return val & mask, mask


def match(**fields: FieldValue) -> Match:
    """A canonical match from field=value keywords (ints, MAC/IPv4 strings, or (value, mask))."""
    items = []
    last, ordered = -1, True
    for name, value in fields.items():
        rank = _ORDER.get(name)
        if rank is None:
            raise ValueError(f"unknown match field {name}")
        ordered = ordered and rank > last
        last = rank
        val, mask = _value_and_mask(name, value)
        items.append((name, val, mask))
    if not ordered:
        items.sort(key=lambda item: _ORDER[item[0]])
    return tuple(items)


@dataclass(frozen=True)
class Output:
    port: int
    max_len: int = 0


@dataclass(frozen=True)
class SetField:
    field: str
    value: int


@dataclass(frozen=True)
class PushVlan:
    ethertype: int = 0x8100


@dataclass(frozen=True)
class PopVlan:
    pass


@dataclass(frozen=True)
class Move:
    """Copy `n_bits` of field `src` (from bit src_ofs) into `dst` (at bit dst_ofs)."""

    src: str
    dst: str
    n_bits: int
    src_ofs: int = 0
    dst_ofs: int = 0


@dataclass(frozen=True)
class Resubmit:
    """Run `table` as a subroutine, then continue with the next action (OVS resubmit(,table))."""

    table: str


@dataclass(frozen=True)
class Ct:
    """Send the packet through conntrack in a zone (an immediate `zone`, or bits 0-15 of `zone_reg`).

    With `table`, a copy of the packet continues there with ct_state set (the current action list
    also continues); `commit` records the connection, `set_mark` stores ct_mark with it.
    """

    commit: bool = False
    zone: int = 0
    zone_reg: str | None = None
    table: str | None = None
    set_mark: int | None = None


@dataclass(frozen=True)
class Conjunction:
    """This flow is clause `clause` (1-based) of `n_clauses` of conjunctive match `id`."""

    id: int
    clause: int
    n_clauses: int


Action = Output | SetField | PushVlan | PopVlan | Move | Resubmit | Ct | Conjunction


def set_field(name: str, value: int | str) -> SetField:
    """SetField taking MAC/IPv4 strings as well as ints."""
    val, _ = _value_and_mask(name, value)
    return SetField(name, val)


def controller(max_len: int = 0xFFFF) -> Output:
    return Output(OFPP_CONTROLLER, max_len)


@dataclass(frozen=True, slots=True)
class Flow:
    table: str
    priority: int
    match: Match
    actions: tuple[Action, ...] = ()
    goto: str | None = None
    cookie: int = 0
    key: tuple[str, int, Match] = field(init=False, repr=False, compare=False)  # (table, priority, match)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.table, self.priority, self.match))


# Cookie layout: the top 8 bits name the app, the low 56 bits hash the owning object's id.
APP_CODES = {"system": 1, "isolation": 2, "security_groups": 3}


def cookie(app: str, obj_id: str) -> int:
    digest = hashlib.blake2b(obj_id.encode(), digest_size=7).digest()
    return (APP_CODES[app] << 56) | int.from_bytes(digest, "big")
