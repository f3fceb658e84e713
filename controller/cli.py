# PYTHON_ARGCOMPLETE_OK  (argcomplete completes `sdnctl` only in a module that says so)
"""`sdnctl`: the command-line client of the REST API.

Commands are data. A CRUD resource is one `crud(...)` call naming its fields as `Opt`s; its
create/list/show/update/delete commands, their flags and the requests they send derive from
that, so a resource (network, port, security-group, router, ...) is a declaration in RESOURCES.

Wherever an id is asked for, a unique name works too (as in openstackclient): the client tries the text
as an id, else lists the kind and picks the one item named so; an ambiguous name is an error listing
the candidates. List filters the API lacks (`--name`, `port list --security-group`, ...) are applied here.
Shell completion (argcomplete) offers commands, flags, choices and, where an object is asked for, the names
the API lists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from string import Formatter
from typing import Any
from urllib.parse import quote

import requests

from controller.config import read_token_file

# The API's choices, spelled here so that sdnctl starts without pydantic; tests/unit/test_cli.py keeps them equal.

DEFAULT_URL = "http://127.0.0.1:8080"
DIRECTIONS = ("ingress", "egress")
PROTOCOLS = ("tcp", "udp", "icmp")
LB_PROTOCOLS = ("tcp", "udp")
LB_ALGORITHMS = ("source_ip_hash", "hash")
MONITOR_TYPES = ("tcp", "udp")
CT_STATES = ("new", "established", "reply", "related", "invalid")
TIMEOUT_S = 60.0  # a mutation waits for every switch to confirm its flows
COMPLETION_TIMEOUT_S = 5.0  # a shell waits for a completion: better none than a hang (5 s: a loaded machine)

POSITIONAL, REQUIRED, OPTIONAL = "positional", "required", "optional"


def _route(text: str) -> dict[str, str]:
    """DESTINATION,NEXTHOP as a route, for argparse (the API checks both)."""
    destination, comma, nexthop = text.partition(",")
    if not comma or "," in nexthop:
        raise argparse.ArgumentTypeError(f"{text!r} is not DESTINATION,NEXTHOP (such as 192.168.0.0/16,10.0.0.254)")
    return {"destination": destination.strip(), "nexthop": nexthop.strip()}


def _member(text: str) -> dict[str, Any]:
    """IP:PORT[:WEIGHT] as a load balancer member, for argparse (the API checks the values)."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        member: dict[str, Any] = {"ip_address": parts[0].strip(), "port": int(parts[1])}
        if len(parts) == 3:
            member["weight"] = int(parts[2])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not IP:PORT[:WEIGHT] (such as 10.0.0.11:8080:2)") from None
    return member


class _Null:
    """A flag's value that is sent as JSON null (None means the flag was not given)."""

    def __repr__(self) -> str:
        return "null"


NULL = _Null()


@dataclass(frozen=True)
class Kind:
    """A kind of object the API gives ids to, and what names one besides its id."""

    label: str  # "security group": in messages, help and (upper-cased) metavars
    path: str  # its collection, relative to /v1; "{id}" in it is the parent's id (a balancer's members)
    columns: tuple[str, ...]  # its table, also of the candidates of an ambiguous name
    names: tuple[str, ...] = ("{name}",)  # what else names an item, formatted from its fields
    naming: str = "name"  # those, in words
    parent: Kind | None = None  # the kind of the object its collection is in ("{id}" in path)

    @property
    def plural(self) -> str:
        return self.label + "s"

    @property
    def metavar(self) -> str:
        return self.label.upper().replace(" ", "_")

    @property
    def given_as(self) -> str:
        """How it may be given, for help texts."""
        return f"{self.naming} or id" if self.names else "id"

    def names_of(self, item: dict[str, Any]) -> set[str]:
        """What names the item: each template whose fields it has (an empty or null name names nothing)."""
        return {template.format_map(item) for template in self.names
                if all(item.get(key) not in (None, "") for _, key, _, _ in Formatter().parse(template) if key)}


_STATS = ("stats.packets", "stats.bytes")  # the counters of objects that own flows
NETWORK = Kind("network", "/networks", ("id", "name", "cidr", "gateway_ip", "segmentation_id", "external", "status"))
PORT = Kind("port", "/ports", ("id", "name", "network_id", "mac_address", "ip_address", "binding.dpid",
                               "binding.interface", "status"))
SECURITY_GROUP = Kind("security group", "/security-groups", ("id", "name", "description", "status"))
SECURITY_GROUP_RULE = Kind(
    "security group rule", "/security-group-rules",
    ("id", "security_group_id", "direction", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix",
     "remote_group_id", *_STATS),
    names=(),
)
ROUTER = Kind("router", "/routers", ("id", "name", "mac_address", "external_gateway.network_id",
                                     "external_gateway.ip_address", "status", *_STATS))
FLOATING_IP = Kind("floating IP", "/floating-ips", ("id", "floating_ip_address", "network_id", "port_id",
                                                    "load_balancer_id", "fixed_ip_address", "router_id", "status",
                                                    *_STATS),
                   names=("{floating_ip_address}",), naming="address")
LOAD_BALANCER = Kind("load balancer", "/load-balancers", ("id", "name", "network_id", "vip_address", "protocol",
                                                          "port", "algorithm", "status"))
MEMBER = Kind("member", "/load-balancers/{id}/members", ("id", "ip_address", "port", "weight", "admin_state_up",
                                                        "status", "status_changed_at", *_STATS),
              names=("{ip_address}:{port}", "{ip_address}"), naming="address:port, address", parent=LOAD_BALANCER)


@dataclass(frozen=True)
class Param:
    """One command-line argument and where its value goes: a path placeholder, the body, the query, a filter."""

    dest: str
    # "path" | "body" | "query", or "match": keep the listed items whose dotted field `key` is (or holds) the value
    to: str
    key: str  # placeholder name, dotted body field ("binding.dpid") or query parameter
    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    exclusive: str | None = None  # params sharing this name exclude each other
    ref: Kind | None = None  # the value names an object of this kind: sent as its id

    def add_to(self, parser: argparse._ActionsContainer) -> None:
        if self.flags[0].startswith("-"):
            action = parser.add_argument(*self.flags, dest=self.dest, **self.kwargs)
        else:  # a positional's name is its dest
            action = parser.add_argument(self.dest, **self.kwargs)
        if self.ref:
            action.completer = partial(_complete, self.ref)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Command:
    """One `sdnctl RESOURCE ACTION`; `name` None makes the resource itself the command."""

    name: str | None
    method: str
    path: str  # "/networks/{id}", relative to /v1
    help: str
    params: tuple[Param, ...] = ()
    columns: tuple[str, ...] | None = None  # list output: dotted field paths; None: every key
    text: Callable[[Any], str] | None = None  # the answer for people, when a table does not suit it


@dataclass(frozen=True)
class Opt:
    """A resource field as an option: how it appears on create and whether update may set it."""

    key: str
    flag: str | None = None  # default: --<last part of key, dashed>
    # bool: --flag / --no-flag; list: repeatable --flag X, or --no-<flag>s for []; None: a flag that sends null
    type: Callable[[str], Any] | None = str
    item: Callable[[str], Any] | None = None  # for a list, what makes each item of its text (default: the text)
    create: str = OPTIONAL  # POSITIONAL, REQUIRED or OPTIONAL
    update: bool = True
    help: str | None = None
    metavar: str | None = None  # default: the last part of key, upper-cased
    choices: tuple[str, ...] | None = None
    exclusive: str | None = None  # options sharing this name exclude each other
    ref: Kind | None = None  # the value names an object of this kind (its name works as well as its id)

    def params(self, to: str, mode: str = OPTIONAL) -> tuple[Param, ...]:
        dest = "field_" + self.key.replace(".", "_")  # never clashes with --url, --output, ...
        leaf = self.key.rsplit(".", 1)[-1]
        metavar = self.metavar or (self.ref.metavar if self.ref else leaf.upper())
        help = f"{self.help} ({self.ref.given_as})" if self.ref and self.help else self.help
        if mode == POSITIONAL:
            return (Param(dest, to, self.key, (dest,), {"metavar": metavar, "help": help}, ref=self.ref),)
        kwargs: dict[str, Any] = {"help": help, "default": None}
        flag = self.flag or "--" + leaf.replace("_", "-")
        if self.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif self.type is None:
            kwargs.update(action="store_const", const=NULL)
        elif self.type is list:
            kwargs.update(action="append", metavar=metavar, type=self.item)
            empty = {"action": "store_const", "const": [], "default": None, "help": f"send {leaf} as an empty list"}
            return (
                Param(dest, to, self.key, (flag,), kwargs, exclusive=self.key, ref=self.ref),
                Param(dest, to, self.key, (f"--no-{flag[2:]}s",), empty, exclusive=self.key),
            )
        else:
            kwargs.update(type=self.type, required=mode == REQUIRED, choices=self.choices)
            if not self.choices:  # argparse shows the choices themselves
                kwargs["metavar"] = metavar
        return (Param(dest, to, self.key, (flag,), kwargs, exclusive=self.exclusive, ref=self.ref),)


def _path_arg(name: str, help: str) -> Param:
    return Param(name, "path", name, (name,), {"metavar": name.upper(), "help": help})


def _ident(kind: Kind, name: str = "id") -> Param:
    """The path argument naming one object of the kind."""
    return Param(name, "path", name, (name,), {"metavar": kind.metavar, "help": f"the {kind.label} ({kind.given_as})"},
                 ref=kind)


# Resources that show counters (stats): list and show read the switches' counters first with --refresh.
_REFRESH = Param("refresh", "query", "refresh", ("--refresh",),
                 {"action": "store_const", "const": "true", "default": None,
                  "help": "read the switches' flow counters first (stats), at most once a second"})


def crud(
    kind: Kind, opts: tuple[Opt, ...], filters: tuple[Opt, ...] = (), matches: tuple[Opt, ...] = (),
    stats: bool = False,
) -> tuple[Command, ...]:
    """create/list/show/update/delete of the kind's collection, flags derived from its fields.

    `filters` are the list's query parameters, `matches` the filters sdnctl applies to what it lists (with
    `--name` for a kind with names); `stats`: list and show take --refresh. There is no update command when no
    field may be updated.
    """
    item, ident = f"{kind.path}/{{id}}", _ident(kind)
    if "{name}" in kind.names:
        matches = (Opt("name", help="only those with this name"), *matches)
    updatable = tuple(param for opt in opts if opt.update for param in opt.params("body"))
    refresh = (_REFRESH,) if stats else ()
    commands = (
        Command("create", "POST", kind.path, f"create a {kind.label}",
                tuple(param for opt in opts for param in opt.params("body", opt.create)), kind.columns),
        Command("list", "GET", kind.path, f"list {kind.plural}",
                (*(param for opt in filters for param in opt.params("query")),
                 *(param for opt in matches for param in opt.params("match")), *refresh), kind.columns),
        Command("show", "GET", item, f"show a {kind.label}", (ident, *refresh), kind.columns),
        Command("update", "PATCH", item, f"change a {kind.label}", (ident, *updatable), kind.columns),
        Command("delete", "DELETE", item, f"delete a {kind.label}", (ident,)),
    )
    return tuple(command for command in commands if command.name != "update" or updatable)


_DPID = _path_arg("dpid", "datapath id, 16 hex digits")
_BALANCER = _ident(LOAD_BALANCER)
_MEMBER = _ident(MEMBER, "member_id")
_MEMBER_CHANGES = (
    *Opt("weight", type=int, metavar="N", help="its share of new connections, 1-256 (default 1)").params("body"),
    *Opt("admin_state_up", type=bool, help="--no-admin-state-up drains it: no new connections (DRAINING)"
         ).params("body"),
)
_MEMBER_STATUSES = ("ONLINE", "OFFLINE", "NO_MONITOR", "DRAINING")
_ROUTER = _ident(ROUTER)
_INTERFACE_NETWORK = Opt("network_id", flag="--network", ref=NETWORK, help="the network")


def _json_list(path: str) -> list[Any]:
    """A JSON list read from a file ("-": standard input), for argparse."""
    try:
        with open(0 if path == "-" else path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read a JSON list from {path}: {exc}") from None
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError(f"{path} must hold a JSON list")
    return value


_TRUNKS = (
    *Opt("trunk_ports", flag="--trunk-port", type=list, metavar="INTERFACE",
         help="the only interfaces that may link to other switches, repeatable (--no-trunk-ports: none)"
         ).params("body"),
    Param("field_trunk_ports", "body", "trunk_ports", ("--discover-trunks",),
          {"action": "store_const", "const": NULL, "default": None,
           "help": "forget the pinned trunks: LLDP finds links on any interface no port is bound to"},
          exclusive="trunk_ports"),
)

RESOURCES: dict[str, tuple[Command, ...]] = {
    "network": crud(
        NETWORK,
        (
            Opt("name", create=POSITIONAL),
            Opt("cidr", create=REQUIRED, help="IPv4 subnet such as 10.0.0.0/24"),
            Opt("gateway_ip", help="default: the first host"),
            Opt("segmentation_id", type=int, help="1-4094, default: the lowest free"),
            Opt("external", type=bool, help="an external (provider) network"),
            Opt("uplink.dpid", flag="--uplink-dpid", help="external networks: the switch of the interface to a "
                "physical network whose hosts are not ports, 16 hex digits"),
            Opt("uplink.interface", flag="--uplink-interface", help="that interface (OVS port name)"),
            Opt("uplink", flag="--no-uplink", type=None, help="remove the uplink"),
        ),
        matches=(Opt("external", type=bool, help="only external networks (--no-external: only the others)"),),
    ),
    "port": crud(
        PORT,
        (
            Opt("network_id", flag="--network", create=REQUIRED, update=False, ref=NETWORK, help="its network"),
            Opt("mac_address", flag="--mac", create=REQUIRED),
            Opt("ip_address", flag="--ip", create=REQUIRED),
            Opt("binding.dpid", help="switch datapath id, 16 hex digits; without a binding the port is attached "
                "to the interface whose OVSDB external_ids:iface-id is its id or name"),
            Opt("binding.interface", help="OVS port name on that switch"),
            Opt("binding", flag="--no-binding", type=None, help="remove the binding (OVSDB attaches it)"),
            Opt("name"),
            Opt("port_security_enabled", flag="--port-security", type=bool, help="anti-spoofing, default on"),
            Opt("security_group_ids", flag="--security-group", type=list, ref=SECURITY_GROUP,
                help="a security group, repeatable, in order; without any, the `default` group"),
        ),
        filters=(Opt("network_id", flag="--network", ref=NETWORK, help="only ports of this network"),),
        matches=(Opt("security_group_ids", flag="--security-group", ref=SECURITY_GROUP,
                     help="only ports in this security group"),),
    ),
    "security-group": (
        *crud(SECURITY_GROUP, (Opt("name", create=POSITIONAL), Opt("description")), stats=True),
        Command("set-rules", "PUT", "/security-groups/{id}/rules",
                "replace a group's rules with those of a JSON file, in one change", (
                    _ident(SECURITY_GROUP),
                    Param("field_rules", "body", "rules", ("--file",),
                          {"type": _json_list, "required": True, "metavar": "FILE",
                           "help": "a JSON list of rules as security-group-rule create takes them, without the "
                                   "group id; rules equal to present ones keep their ids"}),
                )),
    ),
    "security-group-rule": crud(
        SECURITY_GROUP_RULE,
        (
            Opt("security_group_id", flag="--group", create=REQUIRED, update=False, ref=SECURITY_GROUP,
                help="the security group the rule belongs to"),
            Opt("direction", create=REQUIRED, update=False, choices=DIRECTIONS),
            Opt("protocol", update=False, choices=PROTOCOLS, help="default: any"),
            Opt("port_range_min", flag="--port-min", type=int, update=False, metavar="N",
                help="tcp/udp destination ports from N (alone: just N)"),
            Opt("port_range_max", flag="--port-max", type=int, update=False, metavar="N",
                help="tcp/udp destination ports up to N (alone: just N)"),
            Opt("remote_ip_prefix", update=False, metavar="CIDR", exclusive="remote",
                help="peer addresses (default: anywhere)"),
            Opt("remote_group_id", flag="--remote-group", update=False, ref=SECURITY_GROUP, exclusive="remote",
                help="peers: the ports of this security group"),
        ),
        filters=(Opt("security_group_id", flag="--group", ref=SECURITY_GROUP, help="only rules of this group"),),
        matches=(Opt("direction", choices=DIRECTIONS, help="only rules of this direction"),
                 Opt("protocol", choices=PROTOCOLS, help="only rules of this protocol"),
                 Opt("remote_group_id", flag="--remote-group", ref=SECURITY_GROUP,
                     help="only rules whose peers are this group's ports")),
        stats=True,
    ),
    "router": (
        *crud(
            ROUTER,
            (
                Opt("name", create=POSITIONAL),
                Opt("external_gateway.network_id", flag="--external-network", ref=NETWORK,
                    help="the external network of its gateway"),
                Opt("external_gateway.enable_snat", flag="--snat", type=bool,
                    help="attached networks reach the external network from the gateway's address (default on)"),
                Opt("external_gateway.ip_address", flag="--gateway-ip", metavar="IP",
                    help="its address on the external network (default: the lowest free)"),
                Opt("external_gateway", flag="--no-external-gateway", type=None, help="remove its gateway"),
                Opt("routes", flag="--route", type=list, item=_route, metavar="DESTINATION,NEXTHOP",
                    help="a static route, repeatable; replaces all routes (--no-routes: none)"),
            ),
            matches=(Opt("external_gateway.network_id", flag="--external-network", ref=NETWORK,
                         help="only routers with their gateway on this network"),),
            stats=True,
        ),
        Command("add-interface", "POST", "/routers/{id}/interfaces", "attach a network (it takes its gateway_ip)",
                (_ROUTER, *_INTERFACE_NETWORK.params("body", REQUIRED))),
        Command("remove-interface", "DELETE", "/routers/{id}/interfaces/{network_id}", "detach a network",
                (_ROUTER, *_INTERFACE_NETWORK.params("path", REQUIRED))),
    ),
    "floating-ip": crud(
        FLOATING_IP,
        (
            Opt("network_id", flag="--network", create=REQUIRED, update=False, ref=NETWORK,
                help="the external network it is on"),
            Opt("floating_ip_address", flag="--address", update=False, metavar="IP", help="default: the lowest free"),
            Opt("port_id", flag="--port", exclusive="target", ref=PORT, help="the port it maps to"),
            Opt("port_id", flag="--no-port", type=None, exclusive="target", help="map it to no port"),
            Opt("load_balancer_id", flag="--load-balancer", exclusive="target", ref=LOAD_BALANCER,
                help="instead of a port: the load balancer whose VIP it maps to"),
            Opt("load_balancer_id", flag="--no-load-balancer", type=None, exclusive="target",
                help="map it to no load balancer"),
        ),
        filters=(Opt("network_id", flag="--network", ref=NETWORK, help="only those on this network"),
                 Opt("port_id", flag="--port", ref=PORT, help="only the one of this port"),
                 Opt("load_balancer_id", flag="--load-balancer", ref=LOAD_BALANCER,
                     help="only the one of this load balancer")),
        matches=(Opt("router_id", flag="--router", ref=ROUTER, help="only those this router translates"),),
        stats=True,
    ),
    "load-balancer": crud(
        LOAD_BALANCER,
        (
            Opt("name", create=POSITIONAL),
            Opt("network_id", flag="--network", create=REQUIRED, update=False, ref=NETWORK,
                help="the network of the VIP"),
            Opt("vip_address", flag="--vip", update=False, metavar="IP", help="default: the lowest free address"),
            Opt("protocol", create=REQUIRED, update=False, choices=LB_PROTOCOLS),
            Opt("port", type=int, create=REQUIRED, update=False, metavar="N", help="the VIP's port"),
            Opt("algorithm", choices=LB_ALGORITHMS, help="default: source_ip_hash"),
            Opt("members", flag="--member", type=list, item=_member, update=False, metavar="IP:PORT[:WEIGHT]",
                help="a member, repeatable (later ones: sdnctl lb-member add)"),
            Opt("health_monitor.type", flag="--monitor", choices=MONITOR_TYPES,
                help="probe the members (give the other --monitor-* flags too)"),
            Opt("health_monitor.interval_s", flag="--monitor-interval", type=float, metavar="SECONDS",
                help="between two probes of a member"),
            Opt("health_monitor.timeout_s", flag="--monitor-timeout", type=float, metavar="SECONDS",
                help="a probe's wait for its answer, at most the interval"),
            Opt("health_monitor.max_retries", flag="--monitor-retries", type=int, metavar="N",
                help="failed probes in a row that take a member OFFLINE, 1-10"),
            Opt("health_monitor", flag="--no-health-monitor", type=None, help="remove its health monitor"),
        ),
        filters=(Opt("network_id", flag="--network", ref=NETWORK, help="only those on this network"),),
        stats=True,
    ),
    "lb-member": (
        Command("add", "POST", MEMBER.path, "add a member to a load balancer", (
            _BALANCER,
            *Opt("ip_address", flag="--ip", metavar="IP", help="the address of a port on a network the VIP reaches"
                 ).params("body", REQUIRED),
            *Opt("port", type=int, metavar="N").params("body", REQUIRED),
            *_MEMBER_CHANGES,
        ), MEMBER.columns),
        Command("list", "GET", MEMBER.path, "list a load balancer's members",
                (_BALANCER, *Opt("status", choices=_MEMBER_STATUSES, help="only members in this status"
                                 ).params("match"), _REFRESH), MEMBER.columns),
        Command("show", "GET", f"{MEMBER.path}/{{member_id}}", "show a member", (_BALANCER, _MEMBER, _REFRESH),
                MEMBER.columns),
        Command("update", "PATCH", f"{MEMBER.path}/{{member_id}}", "change a member's weight or drain it",
                (_BALANCER, _MEMBER, *_MEMBER_CHANGES), MEMBER.columns),
        Command("remove", "DELETE", f"{MEMBER.path}/{{member_id}}", "remove a member", (_BALANCER, _MEMBER)),
    ),
    "switch": (
        Command("list", "GET", "/switches", "list switches", columns=("dpid", "connected")),
        Command("show", "GET", "/switches/{dpid}", "show a switch, its ports and links", (_DPID,)),
        Command("update", "PATCH", "/switches/{dpid}", "pin a switch's trunk ports", (_DPID, *_TRUNKS)),
        Command("flows", "GET", "/switches/{dpid}/flows", "the flows installed in a switch", (_DPID,)),
    ),
    "health": (Command(None, "GET", "/health", "controller status, connected switches, version"),),
    "trace": (Command(None, "POST", "/trace", "explain a packet: where the flows send it, stage by stage", (
        Param("field_port_id", "body", "port_id", ("--port",),
              {"metavar": "NAME_OR_ID", "help": "the port it comes from (or --dpid and --interface)"},
              ref=PORT),
        *Opt("dpid", help="with --interface: the switch it enters, 16 hex digits").params("body"),
        *Opt("interface", help="with --dpid: the interface it enters by (a port's, an uplink, ...)").params("body"),
        *Opt("protocol", choices=PROTOCOLS, help="default tcp (icmp: an echo request)").params("body"),
        *Opt("eth_src", metavar="MAC", help="default: the port's").params("body"),
        *Opt("eth_dst", metavar="MAC", help="default: what answers ARP for --ip-dst on its network").params("body"),
        *Opt("ip_src", metavar="IP", help="default: the port's").params("body"),
        *Opt("ip_dst", metavar="IP", help="default: the address of the port with --eth-dst").params("body"),
        *Opt("tp_src", type=int, metavar="N", help="tcp/udp source port, default 49152").params("body"),
        *Opt("tp_dst", type=int, metavar="N", help="tcp/udp destination port, default 80").params("body"),
        *Opt("ct_state", choices=CT_STATES, help="default new: a connection's first packet").params("body"),
        *Opt("ttl", type=int, metavar="N", help="IP TTL, default 64").params("body"),
    ), text=lambda answer: trace_text(answer)),),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdnctl", description="Command-line client of the SDN controller API.")
    _add_globals(parser, defaults=True)
    resources = parser.add_subparsers(dest="resource", metavar="RESOURCE", required=True)
    for resource, commands in RESOURCES.items():
        if len(commands) == 1 and commands[0].name is None:
            _add_command(resources.add_parser(resource, help=commands[0].help), commands[0])
            continue
        actions = resources.add_parser(resource, help=f"{resource} commands").add_subparsers(
            dest="action", metavar="ACTION", required=True
        )
        for command in commands:
            _add_command(actions.add_parser(command.name, help=command.help), command)
    return parser


def _add_globals(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """Global options, accepted before or after the command (the inner copies default to unset)."""
    env = os.environ

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--url", default=default(env.get("SDN_URL") or DEFAULT_URL),
                        help=f"API base URL (env SDN_URL, default {DEFAULT_URL})")
    parser.add_argument("--token", default=default(env.get("SDN_API_TOKEN")),
                        help="API token (env SDN_API_TOKEN); prefer --token-file: every local user can read a "
                        "command line (ps, /proc/PID/cmdline)")
    parser.add_argument("--token-file", metavar="FILE", default=default(env.get("SDN_API_TOKEN_FILE")),
                        help="read the API token from FILE (env SDN_API_TOKEN_FILE); a file with mode 0600 can be "
                        "readable by you alone; give this or --token")
    parser.add_argument("-o", "--output", choices=("table", "json"), default=default("table"))


def _add_command(parser: argparse.ArgumentParser, command: Command) -> None:
    _add_globals(parser, defaults=False)
    exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for param in command.params:
        if param.exclusive is None:
            param.add_to(parser)
            continue
        if param.exclusive not in exclusive:
            exclusive[param.exclusive] = parser.add_mutually_exclusive_group()
        param.add_to(exclusive[param.exclusive])
    parser.set_defaults(command=command)


class CliError(Exception):
    """A failed call; the message (possibly several lines) goes to stderr."""


class UsageError(CliError):
    """Flags that contradict each other (one sends an object as null, another fills it): a usage error."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # a shell asks for completions; only then pay argcomplete's import
        import argcomplete

        argcomplete.autocomplete(parser, always_complete_options=False)  # prints them and exits
    args = parser.parse_args(argv)
    token = _token(parser, args)
    try:
        data = call(args.url, token, args.command, vars(args))
    except UsageError as exc:
        parser.error(str(exc))
    except CliError as exc:
        print(exc, file=sys.stderr)
        return 1
    if data is not None:
        text = args.command.text or (lambda answer: render(answer, args.command.columns))
        print(json.dumps(data, indent=2) if args.output == "json" else text(data))
    return 0


def _token(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """--token, or the token in --token-file (flag or variable); both is a usage error, as in sdn-controller."""
    if not args.token_file:
        return args.token
    if args.token:
        parser.error("give --token (SDN_API_TOKEN) or --token-file (SDN_API_TOKEN_FILE), not both")
    try:
        return read_token_file(args.token_file)
    except ValueError as exc:
        parser.error(f"--token-file: {exc}")


def call(url: str, token: str | None, command: Command, values: dict[str, Any]) -> Any:
    """Send the command's request (names resolved to ids first); the decoded JSON answer, None for an empty one."""
    with Client(url, token) as client:
        path, body, query, matches = _request(client, command, values)
        data = client.request(command.method, path, body, query)
    return [item for item in data if all(_holds(_lookup(item, key), value) for key, value in matches)] \
        if matches else data


def _request(
    client: Client, command: Command, values: dict[str, Any]
) -> tuple[str, dict[str, Any] | None, dict[str, Any], list[tuple[str, Any]]]:
    """The command's path, body and query from the parsed values, and the matches to keep of what it lists."""
    path, body, query, matches, filled = command.path, {}, {}, [], {}
    firsts: dict[str, Param] = {}  # params sharing a dest (--port, --no-port) hold one value: send it once
    for param in command.params:
        firsts.setdefault(param.dest, param)
    for param in firsts.values():
        value = values.get(param.dest)
        if value is None:
            continue
        if param.ref:
            value = client.resolve(param.ref, value, filled)
        if param.to == "path":
            filled[param.key] = quote(str(value), safe="")
            path = path.replace(f"{{{param.key}}}", filled[param.key])
        elif param.to == "query":
            query[param.key] = value
        elif param.to == "match":
            matches.append((param.key, value))
        else:
            _put(body, param, value)
    return path, body if command.method in ("POST", "PATCH", "PUT") else None, query, matches


class Client:
    """Requests to one API, with its token."""

    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT_S) -> None:
        base = url.rstrip("/")
        self.base = base if base.endswith("/v1") else base + "/v1"
        self.timeout = timeout
        self.session = requests.Session()  # one connection for the lookups of names and the request itself
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.session.close()

    def send(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> requests.Response:
        try:
            return self.session.request(method, self.base + path, json=body, params=query, timeout=self.timeout)
        except requests.RequestException as exc:
            raise CliError(f"sdnctl: cannot reach {self.base}: {exc}") from None

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer (None for an empty one); an error answer raises CliError."""
        response = self.send(method, path, body, query)
        if response.status_code >= 400:
            raise CliError(_error_text(response))
        return response.json() if response.content else None

    def resolve(self, kind: Kind, value: Any, filled: dict[str, str]) -> Any:
        """The id of the object the text names (each one of a list), found as openstackclient finds it: the
        object with that id, else the one item of the collection with that name. `filled`: the path
        placeholders given so far, such as the balancer of a member."""
        if value is NULL or not kind.names:  # only ids name it: the API says what is wrong with one
            return value
        if isinstance(value, list):
            return [self.resolve(kind, item, filled) for item in value]
        collection = kind.path.format_map(filled)
        by_id = self.send("GET", f"{collection}/{quote(value, safe='')}")
        if by_id.status_code == 200 and _id_of(by_id.json()) == value:
            return value
        if by_id.status_code not in (200, 404):  # 400, 401, ...: the API's word
            raise CliError(_error_text(by_id))
        named = [item for item in self.request("GET", collection)
                 if value in kind.names_of(item)]
        if not named:
            raise CliError(f"Error 404: {kind.label} {value} not found\n  no {kind.label} is named {value} and none "
                           "has that id")
        if len(named) > 1:
            rows = _table(kind.columns, [[_cell(_lookup(item, column)) for column in kind.columns] for item in named])
            raise CliError(f"sdnctl: {len(named)} {kind.plural} are named {value}; give the id of one:\n"
                           + "\n".join("  " + line for line in rows.split("\n")))
        return named[0]["id"]


def _complete(kind: Kind, prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """argcomplete's completer of an argument naming an object: the names the API lists (ids where an object has
    none, such as a rule); nothing when the API does not answer in time."""
    try:
        token = read_token_file(parsed_args.token_file) if parsed_args.token_file else parsed_args.token
        with Client(parsed_args.url, token, timeout=COMPLETION_TIMEOUT_S) as client:
            filled = {"id": quote(client.resolve(kind.parent, parsed_args.id, {}), safe="")} if kind.parent else {}
            items = client.request("GET", kind.path.format_map(filled))
    except (CliError, ValueError, AttributeError):
        return []
    return sorted({name for item in items for name in kind.names_of(item) or {item["id"]}})


def _id_of(item: Any) -> Any:
    """An object's id (None for anything else, such as what a path like `..` leads to)."""
    return item.get("id") if isinstance(item, dict) else None


def _holds(field: Any, value: Any) -> bool:
    """Whether a listed item's field is the filter's value, or a list holding it."""
    return value in field if isinstance(field, list) else field == value


def _put(body: dict[str, Any], param: Param, value: Any) -> None:
    """Set the body field at the param's dotted key; a flag that sends an object as null and one that sets a
    field inside it contradict each other."""
    *parents, leaf = param.key.split(".")
    target: Any = body
    for parent in parents:
        target = target.setdefault(parent, {})
        if target is None:
            raise UsageError(f"{param.flags[0]} sets a field of {parent}, which another flag removes")
    if value is NULL and isinstance(target.get(leaf), dict):
        raise UsageError(f"{param.flags[0]} removes {leaf}, whose fields other flags set")
    target[leaf] = None if value is NULL else value


def _error_text(response: requests.Response) -> str:
    try:
        error = response.json()["error"]
        lines = [f"Error {error['code']}: {error['message']}"]
        for detail in error.get("details") or []:
            if "field" in detail and "message" in detail:
                lines.append(f"  {detail['field']}: {detail['message']}")
            else:
                lines.append("  " + ", ".join(f"{key}={value}" for key, value in detail.items()))
        return "\n".join(lines)
    except (ValueError, KeyError, TypeError):
        return f"Error {response.status_code}: {response.text.strip()[:200] or response.reason}"


def render(data: Any, columns: tuple[str, ...] | None) -> str:
    """An aligned table: one row per item for a list, FIELD/VALUE rows for one object."""
    if isinstance(data, list):
        columns = columns or tuple(dict.fromkeys(key for item in data for key in item))
        return _table(columns, [[_cell(_lookup(item, column)) for column in columns] for item in data])
    if isinstance(data, dict):
        rows = []
        for key, value in data.items():  # a list gets one line per item
            cells = [_cell(inner) for inner in value] if isinstance(value, list) and value else [_cell(value)]
            rows += [[key if n == 0 else "", cell] for n, cell in enumerate(cells)]
        return _table(("field", "value"), rows)
    return _cell(data)


def trace_text(answer: dict[str, Any]) -> str:
    """POST /trace's answer for people: the verdict, the packet, every stage with its owner, where it went."""
    lines = [f"verdict: {answer['verdict']}",
             f"packet:  {_packet_text(answer['packet'])} ({answer['ct_state']})",
             f"from:    {_endpoint_text(answer['source'])}", ""]
    rows = [[stage["dpid"], stage["table"], str(stage["priority"]), _owner_text(stage["owner"]),
             _cell(stage["match"]), ",".join(stage["actions"]) or "drop"] for stage in answer["stages"]]
    lines.append(_table(("switch", "table", "priority", "owner", "match", "actions"), rows))
    for reached in answer["output"]:
        lines.append(f"output:  {_endpoint_text(reached)}: {_packet_text(reached['packet'])}")
    for packet_in in answer["controller"]:
        lines.append(f"to the controller from {packet_in['dpid']}: {_packet_text(packet_in['packet'])}")
    return "\n".join(lines)


def _packet_text(pkt: dict[str, Any]) -> str:
    """"tcp 10.0.0.5:49152 -> 10.0.0.6:22 ttl 64, fa:16:3e:00:00:01 -> fa:16:3e:00:00:02"."""
    proto = next((name for name in ("tcp", "udp") if f"{name}_src" in pkt), None)
    src, dst = pkt.get("ipv4_src"), pkt.get("ipv4_dst")
    if proto:
        src, dst = f"{src}:{pkt[f'{proto}_src']}", f"{dst}:{pkt[f'{proto}_dst']}"
    kind = proto or (f"icmp type {pkt['icmpv4_type']}" if "icmpv4_type" in pkt else "ip")
    tag = f" vlan {pkt['vlan_vid']}" if "vlan_vid" in pkt else ""
    return f"{kind} {src} -> {dst} ttl {pkt.get('nw_ttl')}, {pkt.get('eth_src')} -> {pkt.get('eth_dst')}{tag}"


def _endpoint_text(endpoint: dict[str, Any]) -> str:
    where = f"{endpoint['dpid']} {endpoint['interface'] or endpoint['ofport']}"
    if endpoint["port"]:
        return f"{where} (port {endpoint['port']['name'] or endpoint['port']['id']})"
    if endpoint["uplink_of"]:
        return f"{where} (uplink of {endpoint['uplink_of']['name'] or endpoint['uplink_of']['id']})"
    return where


def _owner_text(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return ""
    if owner["id"] is None:
        return owner["name"]
    return f"{owner['kind']} {owner['name'] or owner['id']}"


def _lookup(item: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        item = item.get(key) if isinstance(item, dict) else None
    return item


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return ",".join(f"{key}={_cell(inner)}" for key, inner in value.items() if inner is not None)
    if isinstance(value, list):
        return "; ".join(_cell(inner) for inner in value)
    return str(value)


def _table(headers: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in rows)])
