"""`sdnctl`: the command-line client of the REST API.

Commands are data. A CRUD resource is one `crud(...)` call naming its fields as `Opt`s; its
create/list/show/update/delete commands, their flags and the requests they send derive from
that, so a resource (network, port, security-group, router, ...) is a declaration in RESOURCES.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from controller.config import read_token_file

DEFAULT_URL = "http://127.0.0.1:8080"
DIRECTIONS = ("ingress", "egress")
PROTOCOLS = ("tcp", "udp", "icmp")
LB_PROTOCOLS = ("tcp", "udp")
LB_ALGORITHMS = ("source_ip_hash", "hash")
TIMEOUT_S = 60.0  # a mutation waits for every switch to confirm its flows

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
class Param:
    """One command-line argument and where its value goes: a path placeholder, the body, the query."""

    dest: str
    to: str  # "path" | "body" | "query"
    key: str  # placeholder name, dotted body field ("binding.dpid") or query parameter
    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    exclusive: str | None = None  # params sharing this name exclude each other

    def add_to(self, parser: argparse._ActionsContainer) -> None:
        if self.flags[0].startswith("-"):
            parser.add_argument(*self.flags, dest=self.dest, **self.kwargs)
        else:  # a positional's name is its dest
            parser.add_argument(self.dest, **self.kwargs)


@dataclass(frozen=True)
class Command:
    """One `sdnctl RESOURCE ACTION`; `name` None makes the resource itself the command."""

    name: str | None
    method: str
    path: str  # "/networks/{id}", relative to /v1
    help: str
    params: tuple[Param, ...] = ()
    columns: tuple[str, ...] | None = None  # list output: dotted field paths; None: every key


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

    def params(self, to: str, mode: str = OPTIONAL) -> tuple[Param, ...]:
        dest = "field_" + self.key.replace(".", "_")  # never clashes with --url, --output, ...
        leaf = self.key.rsplit(".", 1)[-1]
        metavar = self.metavar or leaf.upper()
        if mode == POSITIONAL:
            return (Param(dest, to, self.key, (dest,), {"metavar": metavar, "help": self.help}),)
        kwargs: dict[str, Any] = {"help": self.help, "default": None}
        flag = self.flag or "--" + leaf.replace("_", "-")
        if self.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif self.type is None:
            kwargs.update(action="store_const", const=NULL)
        elif self.type is list:
            kwargs.update(action="append", metavar=metavar, type=self.item)
            empty = {"action": "store_const", "const": [], "default": None, "help": f"send {leaf} as an empty list"}
            return (
                Param(dest, to, self.key, (flag,), kwargs, exclusive=self.key),
                Param(dest, to, self.key, (f"--no-{flag[2:]}s",), empty, exclusive=self.key),
            )
        else:
            kwargs.update(type=self.type, required=mode == REQUIRED, choices=self.choices)
            if not self.choices:  # argparse shows the choices themselves
                kwargs["metavar"] = metavar
        return (Param(dest, to, self.key, (flag,), kwargs, exclusive=self.exclusive),)


def _path_arg(name: str, help: str) -> Param:
    return Param(name, "path", name, (name,), {"metavar": name.upper(), "help": help})


def crud(
    singular: str, plural: str, opts: tuple[Opt, ...], columns: tuple[str, ...], filters: tuple[Opt, ...] = ()
) -> tuple[Command, ...]:
    """create/list/show/update/delete of /<plural>, flags derived from the resource's fields.

    There is no update command when no field may be updated.
    """
    item, ident = f"/{plural}/{{id}}", _path_arg("id", f"{singular} id")
    updatable = tuple(param for opt in opts if opt.update for param in opt.params("body"))
    commands = (
        Command("create", "POST", f"/{plural}", f"create a {singular}",
                tuple(param for opt in opts for param in opt.params("body", opt.create)), columns),
        Command("list", "GET", f"/{plural}", f"list {plural}",
                tuple(param for opt in filters for param in opt.params("query")), columns),
        Command("show", "GET", item, f"show a {singular}", (ident,), columns),
        Command("update", "PATCH", item, f"change a {singular}", (ident, *updatable), columns),
        Command("delete", "DELETE", item, f"delete a {singular}", (ident,)),
    )
    return tuple(command for command in commands if command.name != "update" or updatable)


_DPID = _path_arg("dpid", "datapath id, 16 hex digits")
_BALANCER = _path_arg("id", "load balancer id")
_MEMBER = _path_arg("member_id", "member id")
_MEMBER_COLUMNS = ("id", "ip_address", "port", "weight", "admin_state_up", "status", "status_changed_at")
_MEMBER_CHANGES = (
    *Opt("weight", type=int, metavar="N", help="its share of new connections, 1-256 (default 1)").params("body"),
    *Opt("admin_state_up", type=bool, help="--no-admin-state-up drains it: no new connections (DRAINING)"
         ).params("body"),
)
_ROUTER = _path_arg("id", "router id")
_INTERFACE_NETWORK = Opt("network_id", flag="--network", metavar="ID", help="network id")


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
        "network", "networks",
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
        columns=("id", "name", "cidr", "gateway_ip", "segmentation_id", "external", "status"),
    ),
    "port": crud(
        "port", "ports",
        (
            Opt("network_id", flag="--network", create=REQUIRED, update=False, help="network id"),
            Opt("mac_address", flag="--mac", create=REQUIRED),
            Opt("ip_address", flag="--ip", create=REQUIRED),
            Opt("binding.dpid", help="switch datapath id, 16 hex digits; without a binding the port is attached "
                "to the interface whose OVSDB external_ids:iface-id is its id or name"),
            Opt("binding.interface", help="OVS port name on that switch"),
            Opt("binding", flag="--no-binding", type=None, help="remove the binding (OVSDB attaches it)"),
            Opt("name"),
            Opt("port_security_enabled", flag="--port-security", type=bool, help="anti-spoofing, default on"),
            Opt("security_group_ids", flag="--security-group", type=list, metavar="ID",
                help="security group id, repeatable, in order (default: the `default` group)"),
        ),
        columns=("id", "name", "network_id", "mac_address", "ip_address", "binding.dpid", "binding.interface",
                 "status"),
        filters=(Opt("network_id", flag="--network", help="only ports of this network"),),
    ),
    "security-group": (
        *crud("security group", "security-groups", (Opt("name", create=POSITIONAL), Opt("description")),
              columns=("id", "name", "description", "status")),
        Command("set-rules", "PUT", "/security-groups/{id}/rules",
                "replace a group's rules with those of a JSON file, in one change", (
                    _path_arg("id", "security group id"),
                    Param("field_rules", "body", "rules", ("--file",),
                          {"type": _json_list, "required": True, "metavar": "FILE",
                           "help": "a JSON list of rules as security-group-rule create takes them, without the "
                                   "group id; rules equal to present ones keep their ids"}),
                )),
    ),
    "security-group-rule": crud(
        "security group rule", "security-group-rules",
        (
            Opt("security_group_id", flag="--group", create=REQUIRED, update=False, metavar="ID",
                help="the security group the rule belongs to"),
            Opt("direction", create=REQUIRED, update=False, choices=DIRECTIONS),
            Opt("protocol", update=False, choices=PROTOCOLS, help="default: any"),
            Opt("port_range_min", flag="--port-min", type=int, update=False, metavar="N",
                help="tcp/udp destination ports from N (alone: just N)"),
            Opt("port_range_max", flag="--port-max", type=int, update=False, metavar="N",
                help="tcp/udp destination ports up to N (alone: just N)"),
            Opt("remote_ip_prefix", update=False, metavar="CIDR", exclusive="remote",
                help="peer addresses (default: anywhere)"),
            Opt("remote_group_id", flag="--remote-group", update=False, metavar="ID", exclusive="remote",
                help="peers: the ports of this security group"),
        ),
        columns=("id", "security_group_id", "direction", "protocol", "port_range_min", "port_range_max",
                 "remote_ip_prefix", "remote_group_id"),
        filters=(Opt("security_group_id", flag="--group", metavar="ID", help="only rules of this group"),),
    ),
    "router": (
        *crud(
            "router", "routers",
            (
                Opt("name", create=POSITIONAL),
                Opt("external_gateway.network_id", flag="--external-network", metavar="ID",
                    help="the external network of its gateway"),
                Opt("external_gateway.enable_snat", flag="--snat", type=bool,
                    help="attached networks reach the external network from the gateway's address (default on)"),
                Opt("external_gateway.ip_address", flag="--gateway-ip", metavar="IP",
                    help="its address on the external network (default: the lowest free)"),
                Opt("external_gateway", flag="--no-external-gateway", type=None, help="remove its gateway"),
                Opt("routes", flag="--route", type=list, item=_route, metavar="DESTINATION,NEXTHOP",
                    help="a static route, repeatable; replaces all routes (--no-routes: none)"),
            ),
            columns=("id", "name", "mac_address", "external_gateway.network_id", "external_gateway.ip_address",
                     "status"),
        ),
        Command("add-interface", "POST", "/routers/{id}/interfaces", "attach a network (it takes its gateway_ip)",
                (_ROUTER, *_INTERFACE_NETWORK.params("body", REQUIRED))),
        Command("remove-interface", "DELETE", "/routers/{id}/interfaces/{network_id}", "detach a network",
                (_ROUTER, *_INTERFACE_NETWORK.params("path", REQUIRED))),
    ),
    "floating-ip": crud(
        "floating IP", "floating-ips",
        (
            Opt("network_id", flag="--network", create=REQUIRED, update=False, metavar="ID",
                help="the external network it is on"),
            Opt("floating_ip_address", flag="--address", update=False, metavar="IP", help="default: the lowest free"),
            Opt("port_id", flag="--port", metavar="ID", exclusive="port", help="the port it maps to"),
            Opt("port_id", flag="--no-port", type=None, exclusive="port", help="map it to no port"),
        ),
        columns=("id", "floating_ip_address", "network_id", "port_id", "fixed_ip_address", "router_id", "status"),
        filters=(Opt("network_id", flag="--network", metavar="ID", help="only those on this network"),
                 Opt("port_id", flag="--port", metavar="ID", help="only the one of this port")),
    ),
    "load-balancer": crud(
        "load balancer", "load-balancers",
        (
            Opt("name", create=POSITIONAL),
            Opt("network_id", flag="--network", create=REQUIRED, update=False, metavar="ID",
                help="the network of the VIP"),
            Opt("vip_address", flag="--vip", update=False, metavar="IP", help="default: the lowest free address"),
            Opt("protocol", create=REQUIRED, update=False, choices=LB_PROTOCOLS),
            Opt("port", type=int, create=REQUIRED, update=False, metavar="N", help="the VIP's port"),
            Opt("algorithm", choices=LB_ALGORITHMS, help="default: source_ip_hash"),
            Opt("members", flag="--member", type=list, item=_member, update=False, metavar="IP:PORT[:WEIGHT]",
                help="a member, repeatable (later ones: sdnctl lb-member add)"),
            Opt("health_monitor.type", flag="--monitor", choices=LB_PROTOCOLS,
                help="probe the members (give the other --monitor-* flags too)"),
            Opt("health_monitor.interval_s", flag="--monitor-interval", type=float, metavar="SECONDS",
                help="between two probes of a member"),
            Opt("health_monitor.timeout_s", flag="--monitor-timeout", type=float, metavar="SECONDS",
                help="a probe's wait for its answer, at most the interval"),
            Opt("health_monitor.max_retries", flag="--monitor-retries", type=int, metavar="N",
                help="failed probes in a row that take a member OFFLINE, 1-10"),
            Opt("health_monitor", flag="--no-health-monitor", type=None, help="remove its health monitor"),
        ),
        columns=("id", "name", "network_id", "vip_address", "protocol", "port", "algorithm", "status"),
        filters=(Opt("network_id", flag="--network", metavar="ID", help="only those on this network"),),
    ),
    "lb-member": (
        Command("add", "POST", "/load-balancers/{id}/members", "add a member to a load balancer", (
            _BALANCER,
            *Opt("ip_address", flag="--ip", metavar="IP", help="the address of a port on a network the VIP reaches"
                 ).params("body", REQUIRED),
            *Opt("port", type=int, metavar="N").params("body", REQUIRED),
            *_MEMBER_CHANGES,
        ), _MEMBER_COLUMNS),
        Command("list", "GET", "/load-balancers/{id}/members", "list a load balancer's members", (_BALANCER,),
                _MEMBER_COLUMNS),
        Command("show", "GET", "/load-balancers/{id}/members/{member_id}", "show a member", (_BALANCER, _MEMBER),
                _MEMBER_COLUMNS),
        Command("update", "PATCH", "/load-balancers/{id}/members/{member_id}", "change a member's weight or drain it",
                (_BALANCER, _MEMBER, *_MEMBER_CHANGES), _MEMBER_COLUMNS),
        Command("remove", "DELETE", "/load-balancers/{id}/members/{member_id}", "remove a member",
                (_BALANCER, _MEMBER)),
    ),
    "switch": (
        Command("list", "GET", "/switches", "list switches", columns=("dpid", "connected")),
        Command("show", "GET", "/switches/{dpid}", "show a switch, its ports and links", (_DPID,)),
        Command("update", "PATCH", "/switches/{dpid}", "pin a switch's trunk ports", (_DPID, *_TRUNKS)),
        Command("flows", "GET", "/switches/{dpid}/flows", "the flows installed in a switch", (_DPID,)),
    ),
    "health": (Command(None, "GET", "/health", "controller status, connected switches, version"),),
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
        print(json.dumps(data, indent=2) if args.output == "json" else render(data, args.command.columns))
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
    """Send the command's request; the decoded JSON answer, None for an empty one."""
    path, body, query = command.path, {}, {}
    for param in command.params:
        value = values.get(param.dest)
        if value is None:
            continue
        if param.to == "path":
            path = path.replace(f"{{{param.key}}}", quote(str(value), safe=""))
        elif param.to == "query":
            query[param.key] = value
        else:
            _put(body, param, value)
    base = url.rstrip("/")
    base = base if base.endswith("/v1") else base + "/v1"
    try:
        response = requests.request(
            command.method,
            base + path,
            json=body if command.method in ("POST", "PATCH", "PUT") else None,
            params=query,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=TIMEOUT_S,
        )
    except requests.RequestException as exc:
        raise CliError(f"sdnctl: cannot reach {base}: {exc}") from None
    if response.status_code >= 400:
        raise CliError(_error_text(response))
    return response.json() if response.content else None


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
