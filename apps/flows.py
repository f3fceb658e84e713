"""Flow specs as immutable values: what the compilers return and the programmer installs.

A flow is keyed by (table, priority, match); its cookie names the owner (app, object) that
produced it. Matches are canonical (fields in FIELDS order, masks applied, full masks dropped)
so equal policy always yields equal keys, on every compile and after reading a switch back.

Fields and actions are declared in apps.fields and apps.actions (each with its wire form, text and
simulation); this module hands the compilers that vocabulary together with the flow itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from apps.actions import (
    OFPP_CONTROLLER,
    OFPP_IN_PORT,
    Action,
    Conjunction,
    Ct,
    DecTtl,
    GroupAction,
    Move,
    Nat,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
)
from apps.fields import (
    CT_DNAT,
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_REL,
    CT_RPL,
    CT_SNAT,
    CT_TRK,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_LLDP,
    FIELD,
    FIELDS,
    IP_PROTO,
    MULTICAST_BIT,
    OFPVID_PRESENT,
    Match,
    MatchItem,
    int_to_mac,
    ip_to_int,
    mac_to_int,
)

# The compilers' vocabulary, from where each thing is declared (apps.fields, apps.actions) and from here.
__all__ = [
    "CT_DNAT", "CT_EST", "CT_INV", "CT_NEW", "CT_REL", "CT_RPL", "CT_SNAT", "CT_TRK", "ETH_TYPE_ARP", "ETH_TYPE_IP",
    "ETH_TYPE_LLDP", "FIELDS", "IP_PROTO", "MULTICAST_BIT", "OFPP_CONTROLLER", "OFPP_IN_PORT", "OFPVID_PRESENT",
    "Action", "Conjunction", "Ct", "DecTtl", "GroupAction", "Move", "Nat", "Output", "PopVlan", "PushVlan", "Resubmit",
    "SetField", "Match", "MatchItem", "FieldValue", "Flow", "APP_CODES", "int_to_mac", "ip_to_int", "mac_to_int",
    "ct_state", "match", "set_field", "controller", "cookie", "aux_cookie",
]

_ORDER = {name: i for i, name in enumerate(FIELDS)}
_FULL = {name: declared.full for name, declared in FIELD.items()}
FieldValue = int | str | tuple[int, int]


def ct_state(plus: int = 0, minus: int = 0) -> tuple[int, int]:
    """ct_state=+a-b as a (value, mask) match: ct_state(CT_TRK | CT_EST, CT_RPL) is +trk+est-rpl."""
    return (plus, plus | minus)


def _value_and_mask(name: str, value: FieldValue) -> tuple[int, int | None]:
    full = _FULL[name]
    if value.__class__ is int:
        return value & full, None
    if isinstance(value, tuple):
        val, mask = value
    elif isinstance(value, str):
        val, mask = FIELD[name].text.parse(name, value)
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


def set_field(name: str, value: FieldValue) -> SetField:
    """SetField taking MAC/IPv4 strings as well as ints, and (value, mask) for some bits only."""
    val, mask = _value_and_mask(name, value)
    return SetField(name, val, mask)


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
    meter: str | None = None  # an apps.pipeline meter limiting the flow's rate; not part of its key
    key: tuple[str, int, Match] = field(init=False, repr=False, compare=False)  # (table, priority, match)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.table, self.priority, self.match))


# Cookie layout: the top 8 bits name the app, the low 56 bits hash the owning object's id.
APP_CODES = {"system": 1, "isolation": 2, "security_groups": 3, "routing": 4, "load_balancing": 5}


def cookie(app: str, obj_id: str) -> int:
    """The owner's cookie. On the flows of a security-group rule, a router, a route, a floating IP or a load-balancer
    member it marks the flows whose counters count the object's traffic (each packet once: apps.counters); the
    object's other flows carry its aux_cookie."""
    digest = hashlib.blake2b(obj_id.encode(), digest_size=7).digest()
    return (APP_CODES[app] << 56) | int.from_bytes(digest, "big")


def aux_cookie(app: str, obj_id: str) -> int:
    """The cookie of an object's flows that do not count its traffic (ARP answers, NAT commits, the way to a gateway
    switch): the same owner as cookie(app, obj_id), kept apart so that summing the owner's counters counts a packet
    once."""
    return cookie(app, f"{obj_id}/aux")
