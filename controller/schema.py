"""Request bodies: one declaration per resource (`Field`s) that validates and normalizes input and
from which the REST API derives its OpenAPI schemas.

Only checks that need no database live here; uniqueness and references are the store's. One
check covers every string of a body and every path or query parameter: it must be text a database
can store (UTF-8 encodable, no NUL).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from controller.errors import ApiError

SEGMENTATION_IDS = range(1, 4095)
TRANSPORT_PORTS = range(1, 65536)
NAME_MAX = 255
DEFAULT_GROUP = "default"
DIRECTIONS = ("ingress", "egress")
PROTOCOLS = ("tcp", "udp", "icmp")
PORTED_PROTOCOLS = ("tcp", "udp")
LB_PROTOCOLS = ("tcp", "udp")
LB_ALGORITHMS = ("source_ip_hash", "hash")
MONITOR_TYPES = ("tcp", "udp")
MEMBER_WEIGHTS = range(1, 257)
MONITOR_RETRIES = range(1, 11)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True)
class Field:
    """One JSON field of a resource: its type, whether it is required or patchable, its check.

    `check` receives a value of the right JSON type and returns it normalized, or raises
    ValueError with a reason. `schema` holds extra OpenAPI keywords (pattern, minimum, ...).
    """

    name: str
    type: str
    description: str
    required: bool = False
    mutable: bool = True
    nullable: bool = False
    default: Any = MISSING
    check: Callable[[Any], Any] | None = None
    fields: tuple[Field, ...] = ()  # an object's fields; for an array, the fields of each of its objects
    schema: dict[str, Any] = field(default_factory=dict)


def parse_body(fields: tuple[Field, ...], body: Any, *, partial: bool = False) -> dict[str, Any]:
    """Validate a create (or, with `partial`, a PATCH) body; return the normalized values.

    A create gets the declared defaults filled in, a PATCH only the fields it names. Every
    problem is collected so that one 400 names all the offending fields.
    """
    problems: list[tuple[str, str]] = []
    values = _parse_object(fields, body, partial, "", problems)
    _raise_problems(problems)
    return values


def check_parameters(params: Iterable[tuple[str, str]]) -> None:
    """400 naming each path or query parameter that is not storable text, as parse_body does for bodies.

    Without this, a NUL in a path id or a filter would reach the database, and some refuse it with an error.
    """
    _raise_problems([(_shown(name), reason) for name, value in params if (reason := _text_problem(value))])


def _raise_problems(problems: list[tuple[str, str]]) -> None:
    if not problems:
        return
    details = [{"field": name, "message": reason} if name else {"message": reason} for name, reason in problems]
    name, reason = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    message = f"{name}: {reason}{more}" if name else f"{reason}{more}"
    raise ApiError(400, message, details)


def _parse_object(
    fields: tuple[Field, ...], body: Any, partial: bool, prefix: str, problems: list[tuple[str, str]]
) -> dict[str, Any]:
    if not isinstance(body, dict):
        problems.append((prefix.rstrip("."), "must be a JSON object"))
        return {}
    known = {f.name: f for f in fields}
    values: dict[str, Any] = {}
    for key in body:
        if key not in known:
            problems.append((prefix + _shown(key), "unknown field"))
    for spec in fields:
        path = prefix + spec.name
        if spec.name not in body:
            if spec.required and not partial:
                problems.append((path, "is required"))
            elif spec.default is not MISSING and not partial:
                values[spec.name] = spec.default
            continue
        if partial and not spec.mutable:
            problems.append((path, "cannot be changed"))
            continue
        value = body[spec.name]
        if value is None:
            if spec.nullable:
                values[spec.name] = None
            else:
                problems.append((path, "must not be null"))
        elif spec.type == "object" and isinstance(value, dict):  # nested fields are named by their own path
            values[spec.name] = _parse_object(spec.fields, value, False, path + ".", problems)
        elif spec.type == "array" and spec.fields and isinstance(value, list):  # a list of such objects
            values[spec.name] = [_parse_object(spec.fields, item, False, f"{path}[{i}].", problems)
                                 for i, item in enumerate(value)]
        elif reason := _text_problem(value):
            problems.append((path, reason))
        elif not _has_type(value, spec.type):
            problems.append((path, f"must be of type {spec.type}"))
        else:
            try:
                values[spec.name] = spec.check(value) if spec.check else value
            except ValueError as exc:
                problems.append((path, str(exc)))
    return values


def _text_problem(value: Any) -> str | None:
    """Why a string in `value` (itself, an item or a key, at any depth) cannot be stored; None if none.

    JSON can carry lone UTF-16 surrogates ("\\ud800"), which no UTF-8 encoder (so no database)
    accepts, and NUL, which PostgreSQL refuses; caught here they are a 400, not a database error.
    Walked without recursion: a body may nest as deep as the JSON decoder allows.
    """
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            problem = _bad_text(item)
            if problem:
                reason, position = problem
                return f"{reason} ({f'in {where} ' if where else ''}at position {position})"
        elif isinstance(item, list):
            pending += ((f"{where}[{index}]", inner) for index, inner in enumerate(item))
        elif isinstance(item, dict):
            for key, inner in item.items():
                path = f"{where}.{_shown(key)}"
                pending += ((path, key), (path, inner))
    return None


def _bad_text(text: str) -> tuple[str, int] | None:
    """What makes `text` unstorable and where, or None."""
    nul = text.find("\x00")
    if nul >= 0:
        return "must not contain NUL characters", nul
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"must be valid Unicode text, not a lone surrogate U+{ord(text[exc.start]):04X}", exc.start
    return None


def _shown(text: str) -> str:
    """`text` fit to appear in an error: itself, or escaped if it could not be encoded or stored."""
    return ascii(text)[1:-1] if _bad_text(text) else text


def _has_type(value: Any, json_type: str) -> bool:
    # bool is an int in Python, never in JSON.
    return isinstance(value, _JSON_TYPES[json_type]) and (json_type == "boolean" or not isinstance(value, bool))


def _short_text(value: str) -> str:
    if len(value) > NAME_MAX:
        raise ValueError(f"must be at most {NAME_MAX} characters")
    return value


def _group_name(value: str) -> str:
    if value == DEFAULT_GROUP:
        raise ValueError(f"{DEFAULT_GROUP!r} is reserved for the built-in security group")
    return _short_text(value)


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return check


def _protocol(value: str) -> str:
    return _one_of(*PROTOCOLS)(value.lower())


def _transport_port(value: int) -> int:
    if value not in TRANSPORT_PORTS:
        raise ValueError(f"must be between {TRANSPORT_PORTS[0]} and {TRANSPORT_PORTS[-1]}")
    return value


def _ip_prefix(value: str) -> str:
    """Any IPv4 address or CIDR, as its network (Neutron clears host bits; a bare address is a /32)."""
    try:
        return str(ipaddress.IPv4Network(value, strict=False))
    except ValueError:
        raise ValueError("must be an IPv4 CIDR such as 192.168.0.0/16") from None


def _id_list(value: list[Any]) -> list[str]:
    if not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of id strings")
    return list(dict.fromkeys(value))  # duplicates dropped, order kept


def _prefix(value: str) -> str:
    """An IPv4 CIDR with its host bits clear (any prefix length), normalized."""
    if "/" not in value:
        raise ValueError("must be an IPv4 CIDR such as 10.0.0.0/24")
    try:
        net = ipaddress.IPv4Network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 CIDR: {exc}") from None
    if str(net.network_address) != value.split("/")[0]:
        raise ValueError(f"has host bits set (did you mean {net}?)")
    return str(net)


def _cidr(value: str) -> str:
    """A network's subnet: a prefix with room for a gateway and a port."""
    net = _prefix(value)
    if ipaddress.IPv4Network(net).prefixlen > 30:
        raise ValueError("prefix must be /30 or shorter (room for a gateway and a port)")
    return net


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError("must be an IPv4 address such as 10.0.0.5") from None


_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


def _mac(value: str) -> str:
    text = value.strip().lower()
    if not _MAC_RE.match(text):
        raise ValueError("must be a MAC address such as fa:16:3e:00:00:01")
    digits = re.sub(r"[:-]", "", text)
    if int(digits[:2], 16) & 1:
        raise ValueError("must be a unicast MAC (lowest bit of the first octet clear)")
    if int(digits, 16) == 0:
        raise ValueError("must not be all zeros")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _segmentation_id(value: int) -> int:
    if value not in SEGMENTATION_IDS:
        raise ValueError(f"must be between {SEGMENTATION_IDS[0]} and {SEGMENTATION_IDS[-1]}")
    return value


_DPID_RE = re.compile(r"^[0-9a-fA-F]{16}$")
_INTERFACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def _dpid(value: str) -> str:
    if not _DPID_RE.match(value):
        raise ValueError("must be a datapath id of 16 hex digits such as 0000000000000001")
    return value.lower()


def parse_dpid(value: str) -> str:
    """A datapath id from a URL: 400 naming it unless it is 16 hex digits."""
    try:
        return _dpid(value)
    except ValueError as exc:
        raise ApiError.invalid("dpid", str(exc)) from None


def _interface(value: str) -> str:
    if not _INTERFACE_RE.match(value):
        raise ValueError("must be an OVS port name of 1-15 characters from [A-Za-z0-9_.-]")
    return value


def _interface_list(value: list[Any]) -> list[str]:
    if not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of OVS port names")
    return sorted({_interface(item) for item in value})


SWITCH_FIELDS: tuple[Field, ...] = (
    Field("trunk_ports", "array",
          "The only interfaces that may carry links to other switches (LLDP verifies them instead of "
          "discovering them); null: links are discovered on any interface no port is bound to.",
          nullable=True, check=_interface_list, schema={"items": {"type": "string", "pattern": _INTERFACE_RE.pattern}}),
)

_NAME = Field("name", "string", "Human-readable name.", default="", check=_short_text,
               schema={"maxLength": NAME_MAX})

BINDING_FIELDS: tuple[Field, ...] = (
    Field("dpid", "string", "Datapath id of the switch, 16 hex digits.", required=True, check=_dpid,
          schema={"pattern": _DPID_RE.pattern}),
    Field("interface", "string", "OVS port name on that switch.", required=True, check=_interface,
          schema={"pattern": _INTERFACE_RE.pattern}),
)

NETWORK_FIELDS: tuple[Field, ...] = (
    _NAME,
    Field("cidr", "string", "IPv4 subnet, normalized (host bits must be clear).", required=True,
          check=_cidr, schema={"example": "10.0.0.0/24"}),
    Field("gateway_ip", "string", "Gateway address inside cidr; default: the first host; null: none. On an "
          "external network, the upstream router's address.", nullable=True, check=_ipv4, schema={"format": "ipv4"}),
    Field("segmentation_id", "integer", "802.1Q tag on inter-switch links; default: the lowest free.",
          check=_segmentation_id, schema={"minimum": SEGMENTATION_IDS[0], "maximum": SEGMENTATION_IDS[-1]}),
    Field("external", "boolean", "Whether this is an external (provider) network.", default=False),
    Field("uplink", "object", "External networks only: the switch interface to a physical network whose hosts "
          "are not ports (no port bound to it, not a pinned trunk, no other network's uplink); null: none.",
          nullable=True, default=None, fields=BINDING_FIELDS),
)

PORT_FIELDS: tuple[Field, ...] = (
    Field("network_id", "string", "The network this port is attached to.", required=True, mutable=False),
    _NAME,
    Field("mac_address", "string", "Unicast MAC, unique within the network.", required=True, check=_mac,
          schema={"example": "fa:16:3e:00:00:01"}),
    Field("ip_address", "string", "IPv4 address inside the network's cidr, unique within it.", required=True,
          check=_ipv4, schema={"format": "ipv4"}),
    Field("binding", "object", "Where the port is plugged: switch and interface. Null or absent: where a "
          "hypervisor says, the interface whose OVSDB external_ids:iface-id is the port's id (or its name).",
          nullable=True, default=None, fields=BINDING_FIELDS),
    Field("port_security_enabled", "boolean", "Anti-spoofing (and security groups) on this port.", default=True),
    Field("security_group_ids", "array",
          "Security groups, in order; default: the built-in `default` group (none when port security is "
          "disabled); []: none, so nothing in or out. Requires port security.",
          check=_id_list, schema={"items": {"type": "string"}}),
)

SECURITY_GROUP_FIELDS: tuple[Field, ...] = (
    Field("name", "string", f"Human-readable name; {DEFAULT_GROUP!r} is reserved.", default="", check=_group_name,
          schema={"maxLength": NAME_MAX}),
    Field("description", "string", "Free text.", default="", check=_short_text, schema={"maxLength": NAME_MAX}),
)

_TRANSPORT_PORT_SCHEMA = {"minimum": TRANSPORT_PORTS[0], "maximum": TRANSPORT_PORTS[-1]}

SECURITY_GROUP_RULE_FIELDS: tuple[Field, ...] = (
    Field("security_group_id", "string", "The group this rule belongs to.", required=True, mutable=False),
    Field("direction", "string", "ingress: traffic to the group's ports; egress: traffic from them.",
          required=True, mutable=False, check=_one_of(*DIRECTIONS), schema={"enum": list(DIRECTIONS)}),
    Field("ethertype", "string", "Only IPv4.", default="IPv4", mutable=False, check=_one_of("IPv4"),
          schema={"enum": ["IPv4"]}),
    Field("protocol", "string", "tcp, udp or icmp; null: any.", nullable=True, default=None, mutable=False,
          check=_protocol, schema={"enum": [*PROTOCOLS, None]}),
    Field("port_range_min", "integer", "First destination port (tcp/udp); alone, the one port.", nullable=True,
          default=None, mutable=False, check=_transport_port, schema=_TRANSPORT_PORT_SCHEMA),
    Field("port_range_max", "integer", "Last destination port (tcp/udp); alone, the one port.", nullable=True,
          default=None, mutable=False, check=_transport_port, schema=_TRANSPORT_PORT_SCHEMA),
    Field("remote_ip_prefix", "string", "Peer addresses (source for ingress, destination for egress); "
          "host bits are cleared. Excludes remote_group_id.", nullable=True, default=None, mutable=False,
          check=_ip_prefix, schema={"example": "192.168.0.0/16"}),
    Field("remote_group_id", "string", "Peers are the ports of this group. Excludes remote_ip_prefix.",
          nullable=True, default=None, mutable=False),
)

RULE_ITEM_FIELDS: tuple[Field, ...] = tuple(spec for spec in SECURITY_GROUP_RULE_FIELDS
                                            if spec.name != "security_group_id")

SECURITY_GROUP_RULES_FIELDS: tuple[Field, ...] = (
    Field("rules", "array", "Every rule the group is to have, replacing the ones it has: a rule equal to one it "
          "has keeps its id (and its flows), the others are removed or added, all in one change.",
          required=True, fields=RULE_ITEM_FIELDS),
)

GATEWAY_FIELDS: tuple[Field, ...] = (
    Field("network_id", "string", "An external network.", required=True),
    Field("enable_snat", "boolean", "Attached networks reach the external network from the gateway's address.",
          default=True),
    Field("ip_address", "string", "The router's address on the external network; default: the lowest free.",
          check=_ipv4, schema={"format": "ipv4"}),
)

ROUTE_FIELDS: tuple[Field, ...] = (
    Field("destination", "string", "IPv4 CIDR (host bits clear).", required=True, check=_prefix,
          schema={"example": "192.168.0.0/16"}),
    Field("nexthop", "string", "IPv4 address inside one of the router's networks (its interfaces' or its external "
          "gateway's).", required=True, check=_ipv4, schema={"format": "ipv4"}),
)

ROUTER_FIELDS: tuple[Field, ...] = (
    _NAME,
    Field("external_gateway", "object", "The router's leg on an external network; null: none.", nullable=True,
          default=None, fields=GATEWAY_FIELDS),
    Field("routes", "array", "Static routes, replaced as a whole by PATCH; no two alike.", default=[],
          fields=ROUTE_FIELDS),
)

ROUTER_INTERFACE_FIELDS: tuple[Field, ...] = (
    Field("network_id", "string", "A network with a gateway_ip, which the router takes; not external, on no other "
          "router, not overlapping the router's other networks.", required=True),
)

FLOATING_IP_FIELDS: tuple[Field, ...] = (
    Field("network_id", "string", "The external network the address is on.", required=True, mutable=False),
    Field("floating_ip_address", "string", "Inside the network's cidr, used by nothing else; default: the lowest "
          "free.", mutable=False, check=_ipv4, schema={"format": "ipv4"}),
    Field("port_id", "string", "The port the address maps to 1:1 (its network has a router with a gateway on this "
          "external network); null: none.", nullable=True, default=None),
)


def _lowercase_one_of(*choices: str) -> Callable[[str], str]:
    check = _one_of(*choices)
    return lambda value: check(value.lower())


def _in_range(numbers: range) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value not in numbers:
            raise ValueError(f"must be between {numbers[0]} and {numbers[-1]}")
        return value

    return check


def _seconds(value: float) -> float:
    """A positive, finite number of seconds (JSON as Python reads it also has Infinity and NaN)."""
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a number of seconds greater than 0")
    return float(value)


def _range_schema(numbers: range) -> dict[str, int]:
    return {"minimum": numbers[0], "maximum": numbers[-1]}


_SECONDS_SCHEMA = {"minimum": 0, "exclusiveMinimum": True}

HEALTH_MONITOR_FIELDS: tuple[Field, ...] = (
    Field("type", "string", "How members are probed: a TCP connection, or a UDP datagram that must draw no ICMP "
          "port-unreachable.", required=True, check=_lowercase_one_of(*MONITOR_TYPES),
          schema={"enum": list(MONITOR_TYPES)}),
    Field("interval_s", "number", "Seconds between two probes of a member.", required=True, check=_seconds,
          schema=_SECONDS_SCHEMA),
    Field("timeout_s", "number", "Seconds a probe waits for its answer; at most interval_s.", required=True,
          check=_seconds, schema=_SECONDS_SCHEMA),
    Field("max_retries", "integer", "Failed probes in a row that take a member OFFLINE (one success brings it "
          "back ONLINE).", required=True, check=_in_range(MONITOR_RETRIES), schema=_range_schema(MONITOR_RETRIES)),
)

LB_MEMBER_FIELDS: tuple[Field, ...] = (
    Field("ip_address", "string", "The fixed address of a port on the VIP's network or on a network a router joins "
          "to it.", required=True, mutable=False, check=_ipv4, schema={"format": "ipv4"}),
    Field("port", "integer", "The member's tcp/udp port; one member per address and port in a balancer.",
          required=True, mutable=False, check=_transport_port, schema=_TRANSPORT_PORT_SCHEMA),
    Field("weight", "integer", "Its share of new connections, relative to the other members'.", default=1,
          check=_in_range(MEMBER_WEIGHTS), schema=_range_schema(MEMBER_WEIGHTS)),
    Field("admin_state_up", "boolean", "false: DRAINING, no new connections (existing ones stay).", default=True),
)

LOAD_BALANCER_FIELDS: tuple[Field, ...] = (
    _NAME,
    Field("network_id", "string", "The (not external) network of the VIP.", required=True, mutable=False),
    Field("vip_address", "string", "Inside the network's cidr, used by nothing else (ports, the gateway, other "
          "VIPs); default: the lowest free.", mutable=False, check=_ipv4, schema={"format": "ipv4"}),
    Field("protocol", "string", "tcp or udp.", required=True, mutable=False, check=_lowercase_one_of(*LB_PROTOCOLS),
          schema={"enum": list(LB_PROTOCOLS)}),
    Field("port", "integer", "The VIP's tcp/udp port.", required=True, mutable=False, check=_transport_port,
          schema=_TRANSPORT_PORT_SCHEMA),
    Field("algorithm", "string", "source_ip_hash: a client sticks to a member; hash: of the 5-tuple, so each "
          "connection is placed on its own.", default=LB_ALGORITHMS[0], check=_one_of(*LB_ALGORITHMS),
          schema={"enum": list(LB_ALGORITHMS)}),
    Field("members", "array", "The backends, created with the balancer; later ones through "
          "/load-balancers/{id}/members.", default=[], mutable=False, fields=LB_MEMBER_FIELDS),
    Field("health_monitor", "object", "Probes the members: a member that fails max_retries probes in a row gets no "
          "new connections until it answers again; null: none (members are NO_MONITOR).", nullable=True,
          default=None, fields=HEALTH_MONITOR_FIELDS),
)
