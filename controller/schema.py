"""Request bodies as pydantic models: one class per body validates and normalizes input, and the REST API
derives its OpenAPI schemas from the same classes (controller/api.py).

A field declared `frozen` is set on create only (a PATCH naming it is refused); `MISSING` as a default means
"optional, and absent unless given" (the store then picks a value). Only checks that need no database live
here; uniqueness and references are the store's. One check covers every value of a body and every path or
query parameter: strings must be text a database can store (UTF-8 encodable, no NUL).

The per-field checks are validators rather than pydantic constraints (`ge`, `pattern`, Literal) because their
messages are part of the API ("must be between 1 and 4094") and pydantic's own messages are not.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections.abc import Callable, Iterable
from copy import copy
from typing import Annotated, Any

from pydantic import (
    MISSING,
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from apps import explain
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


# -- the checks: each takes a value of the right JSON type, returns it normalized or raises ValueError --------


def _short_text(value: str) -> str:
    if len(value) > NAME_MAX:
        raise ValueError(f"must be at most {NAME_MAX} characters")
    return value


def _group_name(value: str) -> str:
    if value == DEFAULT_GROUP:
        raise ValueError(f"{DEFAULT_GROUP!r} is reserved for the built-in security group")
    return _short_text(value)


def _one_of(*choices: str, lowercase: bool = False) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = value.lower() if lowercase else value
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return check


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


def _ip_prefix(value: str) -> str:
    """Any IPv4 address or CIDR, as its network (Neutron clears host bits; a bare address is a /32)."""
    try:
        return str(ipaddress.IPv4Network(value, strict=False))
    except ValueError:
        raise ValueError("must be an IPv4 CIDR such as 192.168.0.0/16") from None


def _unique(value: list[str]) -> list[str]:
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


def _any_mac(value: str) -> str:
    """A MAC address, normalized to lower case and colons; broadcast and multicast included."""
    text = value.strip().lower()
    if not _MAC_RE.match(text):
        raise ValueError("must be a MAC address such as fa:16:3e:00:00:01")
    digits = re.sub(r"[:-]", "", text)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _mac(value: str) -> str:
    text = _any_mac(value)
    if int(text[:2], 16) & 1:
        raise ValueError("must be a unicast MAC (lowest bit of the first octet clear)")
    if text == "00:00:00:00:00:00":
        raise ValueError("must not be all zeros")
    return text


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


# -- the field types: a JSON type, its check and what the OpenAPI document says of it --------------------------


def _checked(json_type: Any, check: Callable[[Any], Any], **schema: Any) -> Any:
    return Annotated[json_type, AfterValidator(check), Field(json_schema_extra=schema or None)]


def _choice(choices: tuple[str, ...], *, lowercase: bool = False) -> Any:
    return _checked(StrictStr, _one_of(*choices, lowercase=lowercase), enum=list(choices))


def _integer(numbers: range) -> Any:
    return _checked(StrictInt, _in_range(numbers), minimum=numbers[0], maximum=numbers[-1])


ShortText = _checked(StrictStr, _short_text, maxLength=NAME_MAX)
IPv4 = _checked(StrictStr, _ipv4, format="ipv4")
Prefix = _checked(StrictStr, _prefix, example="192.168.0.0/16")
TransportPort = _integer(TRANSPORT_PORTS)
Seconds = _checked(StrictFloat, _seconds, minimum=0, exclusiveMinimum=True)
Dpid = _checked(StrictStr, _dpid, pattern=_DPID_RE.pattern)
Interface = _checked(StrictStr, _interface, pattern=_INTERFACE_RE.pattern)


# -- validation: the base of every body, and pydantic's errors in the API's words -----------------------------


class Body(BaseModel):
    """A request body: JSON types as they are (no coercion), no unknown fields, storable text everywhere."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _escaped_keys(cls, body: Any) -> Any:
        """Unstorable keys escaped: pydantic cannot name them, and they are unknown fields anyway."""
        if isinstance(body, dict) and any(isinstance(key, str) and _bad_text(key) for key in body):
            return {_shown(key) if isinstance(key, str) else key: value for key, value in body.items()}
        return body

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse unstorable text before its type is checked, so that it is named even inside a wrong type.

        A nested body's own fields are checked (and named) by that body.
        """
        if isinstance(value, dict | list) and info.field_name in _nested_fields(cls):
            return value
        reason = _text_problem(value)
        if reason:
            raise ValueError(reason)
        return value


@functools.cache
def _nested_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of `model` that hold bodies (or lists of them)."""
    return frozenset(name for name, spec in model.model_fields.items() if _holds_body(spec.annotation))


def _holds_body(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_body(arg) for arg in getattr(annotation, "__args__", ()))


def parse_body(model: type[Body], body: Any, *, partial: bool = False) -> dict[str, Any]:
    """Validate a create (or, with `partial`, a PATCH) body; return the normalized values.

    A create gets the declared defaults filled in, a PATCH only the fields it names (and none that is frozen).
    Every problem is reported so that one 400 names all the offending fields.
    """
    checked = update_model(model) if partial else model
    try:
        return checked.model_validate(body).model_dump()
    except ValidationError as exc:
        frozen = _frozen_fields(model) if partial else frozenset()
        errors = sorted(exc.errors(include_url=False), key=lambda error: error["type"] != "extra_forbidden")
        _raise_problems([_problem(error, frozen) for error in errors])  # unknown fields first, as before pydantic
        raise  # not reached: there is at least one problem


@functools.cache
def update_model(model: type[Body]) -> type[Body]:
    """`<Name>Update` from `<Name>Create`: its fields that are not frozen, each optional and absent unless given."""
    fields: dict[str, Any] = {}
    for name, spec in model.model_fields.items():
        if not spec.frozen:
            optional = copy(spec)
            optional.default = MISSING
            fields[name] = (spec.annotation | MISSING, optional)  # type: ignore[operator]
    return create_model(model.__name__.removesuffix("Create") + "Update", __base__=Body, __doc__=model.__doc__,
                        **fields)


@functools.cache
def _frozen_fields(model: type[Body]) -> frozenset[str]:
    return frozenset(name for name, spec in model.model_fields.items() if spec.frozen)


_TYPE_NAMES = {"string_type": "string", "int_type": "integer", "float_type": "number", "bool_type": "boolean",
               "dict_type": "object", "model_type": "object", "list_type": "array"}


def _problem(error: Any, frozen: frozenset[str]) -> tuple[str, str]:
    """(field path such as `binding.dpid` or `routes[0].nexthop`, reason) of one pydantic error."""
    location, kind = error["loc"], error["type"]
    if location and isinstance(location[-1], int) and kind != "model_type":
        location = location[:-1]  # an item of a list of strings is named by its list, as before
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{_shown(part)}" for part in location).lstrip(".")
    if kind == "missing":
        return path, "is required"
    if kind == "extra_forbidden":
        return path, "cannot be changed" if len(location) == 1 and location[0] in frozen else "unknown field"
    if kind == "value_error":
        return path, str(error["ctx"]["error"])
    if error["input"] is None:
        return path, "must not be null"
    if kind == "model_type" and (not location or isinstance(location[-1], int)):
        return path, "must be a JSON object"
    if kind in _TYPE_NAMES:
        return path, f"must be of type {_TYPE_NAMES[kind]}"
    return path, error["msg"]


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


# -- the bodies: a new one is one class (the API's route table names it) ------------------------------------------


class SwitchUpdate(Body):
    """What PATCH /switches/{dpid} accepts."""

    trunk_ports: Annotated[list[Interface], AfterValidator(lambda names: sorted(set(names)))] | None = Field(
        MISSING, description="The only interfaces that may carry links to other switches (LLDP verifies them "
        "instead of discovering them); null: links are discovered on any interface no port is bound to.")


def _name(**given: Any) -> Any:
    return Field("", description="Human-readable name.", **given)


class Binding(Body):
    """A switch interface: where a port is plugged, or an external network's uplink."""

    dpid: Dpid = Field(description="Datapath id of the switch, 16 hex digits.")
    interface: Interface = Field(description="OVS port name on that switch.")


class NetworkCreate(Body):
    name: ShortText = _name()
    cidr: _checked(StrictStr, _cidr, example="10.0.0.0/24") = Field(  # type: ignore[valid-type]
        description="IPv4 subnet, normalized (host bits must be clear).")
    gateway_ip: IPv4 | None = Field(MISSING, description="Gateway address inside cidr; default: the first host; "
                                    "null: none. On an external network, the upstream router's address.")
    segmentation_id: _integer(SEGMENTATION_IDS) = Field(  # type: ignore[valid-type]
        MISSING, description="802.1Q tag on inter-switch links; default: the lowest free.")
    external: StrictBool = Field(False, description="Whether this is an external (provider) network.")
    uplink: Binding | None = Field(None, description="External networks only: the switch interface to a physical "
                                   "network whose hosts are not ports (no port bound to it, not a pinned trunk, no "
                                   "other network's uplink); null: none.")


class PortCreate(Body):
    network_id: StrictStr = Field(description="The network this port is attached to.", frozen=True)
    name: ShortText = _name()
    mac_address: _checked(StrictStr, _mac, example="fa:16:3e:00:00:01") = Field(  # type: ignore[valid-type]
        description="Unicast MAC, unique within the network.")
    ip_address: IPv4 = Field(description="IPv4 address inside the network's cidr, unique within it.")
    binding: Binding | None = Field(None, description="Where the port is plugged: switch and interface. Null or "
                                    "absent: where a hypervisor says, the interface whose OVSDB external_ids:iface-id "
                                    "is the port's id (or its name).")
    port_security_enabled: StrictBool = Field(True, description="Anti-spoofing (and security groups) on this port.")
    security_group_ids: Annotated[list[StrictStr], AfterValidator(_unique)] = Field(
        MISSING, description="Security groups, in order; default: the built-in `default` group (none when port "
        "security is disabled); []: none, so nothing in or out. Requires port security.")


class SecurityGroupCreate(Body):
    name: _checked(StrictStr, _group_name, maxLength=NAME_MAX) = Field(  # type: ignore[valid-type]
        "", description=f"Human-readable name; {DEFAULT_GROUP!r} is reserved.")
    description: ShortText = Field("", description="Free text.")


class SecurityGroupRuleCreate(Body):
    security_group_id: StrictStr = Field(description="The group this rule belongs to.", frozen=True)
    direction: _choice(DIRECTIONS) = Field(  # type: ignore[valid-type]
        description="ingress: traffic to the group's ports; egress: traffic from them.", frozen=True)
    ethertype: _choice(("IPv4",)) = Field("IPv4", description="Only IPv4.", frozen=True)  # type: ignore[valid-type]
    protocol: _choice(PROTOCOLS, lowercase=True) | None = Field(  # type: ignore[valid-type]
        None, description="tcp, udp or icmp; null: any.", frozen=True)
    port_range_min: TransportPort | None = Field(
        None, description="First destination port (tcp/udp); alone, the one port.", frozen=True)
    port_range_max: TransportPort | None = Field(
        None, description="Last destination port (tcp/udp); alone, the one port.", frozen=True)
    remote_ip_prefix: _checked(StrictStr, _ip_prefix, example="192.168.0.0/16") | None = Field(  # type: ignore
        None, description="Peer addresses (source for ingress, destination for egress); host bits are cleared. "
        "Excludes remote_group_id.", frozen=True)
    remote_group_id: StrictStr | None = Field(
        None, description="Peers are the ports of this group. Excludes remote_ip_prefix.", frozen=True)


def _without(model: type[Body], name: str, drop: str) -> type[Body]:
    """`model` less one field, as a new body called `name`."""
    fields = {key: (spec.annotation, spec) for key, spec in model.model_fields.items() if key != drop}
    return create_model(name, __base__=Body, __doc__=model.__doc__, **fields)


SecurityGroupRuleItem = _without(SecurityGroupRuleCreate, "SecurityGroupRuleItem", "security_group_id")


class SecurityGroupRules(Body):
    rules: list[SecurityGroupRuleItem] = Field(  # type: ignore[valid-type]
        description="Every rule the group is to have, replacing the ones it has: a rule equal to one it has keeps "
        "its id (and its flows), the others are removed or added, all in one change.")


class Gateway(Body):
    network_id: StrictStr = Field(description="An external network.")
    enable_snat: StrictBool = Field(True, description="Attached networks reach the external network from the "
                                    "gateway's address.")
    ip_address: IPv4 = Field(MISSING, description="The router's address on the external network; default: the "
                             "lowest free.")


class Route(Body):
    destination: Prefix = Field(description="IPv4 CIDR (host bits clear).")
    nexthop: IPv4 = Field(description="IPv4 address inside one of the router's networks (its interfaces' or its "
                          "external gateway's).")


class RouterCreate(Body):
    name: ShortText = _name()
    external_gateway: Gateway | None = Field(None, description="The router's leg on an external network; null: "
                                             "none.")
    routes: list[Route] = Field([], description="Static routes, replaced as a whole by PATCH; no two alike.")


class RouterInterfaceCreate(Body):
    network_id: StrictStr = Field(description="A network with a gateway_ip, which the router takes; not external, "
                                  "on no other router, not overlapping the router's other networks.")


class FloatingIpCreate(Body):
    network_id: StrictStr = Field(description="The external network the address is on.", frozen=True)
    floating_ip_address: IPv4 = Field(MISSING, description="Inside the network's cidr, used by nothing else; "
                                      "default: the lowest free.", frozen=True)
    port_id: StrictStr | None = Field(None, description="The port the address maps to 1:1 (its network has a "
                                      "router with a gateway on this external network); null: none.")
    load_balancer_id: StrictStr | None = Field(None, description="Instead of a port: the load balancer whose VIP "
                                               "the address maps to (its network has a router with a gateway on "
                                               "this external network); null: none.")


class HealthMonitor(Body):
    type: _choice(MONITOR_TYPES, lowercase=True) = Field(  # type: ignore[valid-type]
        description="How members are probed: a TCP connection, or a UDP datagram that must draw no ICMP "
        "port-unreachable.")
    interval_s: Seconds = Field(description="Seconds between two probes of a member.")
    timeout_s: Seconds = Field(description="Seconds a probe waits for its answer; at most interval_s.")
    max_retries: _integer(MONITOR_RETRIES) = Field(  # type: ignore[valid-type]
        description="Failed probes in a row that take a member OFFLINE (one success brings it back ONLINE).")


class LbMemberCreate(Body):
    ip_address: IPv4 = Field(description="The fixed address of a port on the VIP's network or on a network a "
                             "router joins to it.", frozen=True)
    port: TransportPort = Field(description="The member's tcp/udp port; one member per address and port in a "
                                "balancer.", frozen=True)
    weight: _integer(MEMBER_WEIGHTS) = Field(  # type: ignore[valid-type]
        1, description="Its share of new connections, relative to the other members'.")
    admin_state_up: StrictBool = Field(True, description="false: DRAINING, no new connections (existing ones "
                                       "stay).")


class LoadBalancerCreate(Body):
    name: ShortText = _name()
    network_id: StrictStr = Field(description="The (not external) network of the VIP.", frozen=True)
    vip_address: IPv4 = Field(MISSING, description="Inside the network's cidr, used by nothing else (ports, the "
                              "gateway, other VIPs); default: the lowest free.", frozen=True)
    protocol: _choice(LB_PROTOCOLS, lowercase=True) = Field(  # type: ignore[valid-type]
        description="tcp or udp.", frozen=True)
    port: TransportPort = Field(description="The VIP's tcp/udp port.", frozen=True)
    algorithm: _choice(LB_ALGORITHMS) = Field(  # type: ignore[valid-type]
        LB_ALGORITHMS[0], description="source_ip_hash: a client sticks to a member; hash: of the 5-tuple, so each "
        "connection is placed on its own.")
    members: list[LbMemberCreate] = Field([], description="The backends, created with the balancer; later ones "
                                          "through /load-balancers/{id}/members.", frozen=True)
    health_monitor: HealthMonitor | None = Field(None, description="Probes the members: a member that fails "
                                                 "max_retries probes in a row gets no new connections until it "
                                                 "answers again; null: none (members are NO_MONITOR).")


TTLS = range(0, 256)


class TraceRequest(Body):
    """A packet to explain (POST /trace): where it enters, and what of it differs from what its source would send."""

    port_id: StrictStr = Field(MISSING, description="The port the packet comes from (its switch and interface); or "
                               "give dpid and interface.")
    dpid: Dpid = Field(MISSING, description="With interface: the switch the packet enters, 16 hex digits.")
    interface: Interface = Field(MISSING, description="With dpid: the interface it enters by (a port's, an external "
                                 "network's uplink, or any other).")
    protocol: _choice(explain.PROTOCOLS, lowercase=True) = Field(  # type: ignore[valid-type]
        explain.DEFAULT_PROTOCOL, description="tcp, udp, or icmp (an echo request).")
    eth_src: _checked(StrictStr, _mac, example="fa:16:3e:00:00:01") = Field(  # type: ignore[valid-type]
        MISSING, description="Default: the source port's MAC (required from an interface no port is bound to).")
    eth_dst: _checked(StrictStr, _any_mac, example="fa:16:3e:00:00:02") = Field(  # type: ignore[valid-type]
        MISSING, description="Default: the MAC that answers ARP for ip_dst on the source's network (a port, a load "
        "balancer's VIP, the router; for an address off the network, its router).")
    ip_src: IPv4 = Field(MISSING, description="Default: the source port's address.")
    ip_dst: IPv4 = Field(MISSING, description="Default: the address of the port that has eth_dst.")
    tp_src: TransportPort = Field(MISSING, description=f"tcp/udp source port; default {explain.DEFAULT_TP_SRC}.")
    tp_dst: TransportPort = Field(MISSING, description=f"tcp/udp destination port; default {explain.DEFAULT_TP_DST}.")
    ct_state: _choice(tuple(explain.CT_STATES)) = Field(  # type: ignore[valid-type]
        "new", description="The connection the packet belongs to: new (its first packet, traced through conntrack, "
        "NAT and load balancers included), or established, reply, related or invalid (what every conntrack lookup "
        "then answers, translating nothing).")
    ttl: _integer(TTLS) = Field(explain.DEFAULT_TTL,  # type: ignore[valid-type]
                                description=f"The IP TTL; default {explain.DEFAULT_TTL}.")
