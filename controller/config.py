"""Options of `sdn-controller`: each from a flag, an SDN_<NAME> variable, a config file, or its default.

The options are declared once (`OPTIONS`); the flags, the environment names, the file keys
and the help text all derive from that table, so adding an option is one line. Two options
may fill one setting (the API token, given as is or as a file); then at most one may be given.
"""

from __future__ import annotations

import argparse
import configparser
import math
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STATE_DIR = "/var/lib/sdn-controller"
DEFAULT_OVSDB = "unix:/var/run/openvswitch/db.sock"
OVSDB_OFF = "none"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
INI_SECTION = "controller"


class ConfigError(Exception):
    """A bad option value or config file; the message is one line fit for an exit reason."""


@dataclass(frozen=True)
class Config:
    of_listen: tuple[str, int]
    api_listen: tuple[str, int]
    db: str
    api_token: str | None = field(repr=False)  # keep secrets out of logs
    log_level: str
    lldp_interval: float
    neighbor_refresh: float = 60.0
    max_flows_per_switch: int | None = None  # a REST change that would need more on any switch is refused (409)
    stats_interval: float = 10.0
    of_tls: OpenFlowTls | None = None
    ovsdb: str | None = DEFAULT_OVSDB
    attach: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OpenFlowTls:
    """OpenFlow over TLS: the controller's certificate and key, and the CA a switch's certificate must chain to."""

    cert: str
    key: str
    ca: str


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:6653
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT with a port 0-65535, got {text!r}")
    return host, int(port)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _token(text: str) -> str:
    if not text or any(ch.isspace() for ch in text):
        raise ValueError("must be non-empty and contain no whitespace")
    return text


def read_token_file(path: str) -> str:
    """The API token a file holds; surrounding whitespace (the trailing newline) is dropped.

    Read once at start. Also sdnctl's --token-file, so both read a token file alike.
    """
    try:
        text = _read_text(path)
    except ValueError as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    try:
        return _token(text.strip())
    except ValueError as exc:
        raise ValueError(f"{path}: the token {exc}") from None


def _readable_file(text: str) -> str:
    """A path to a text file this process can read (a PEM certificate or key), made absolute: os-ken reads it
    later, and a process may change its directory."""
    try:
        _read_text(text)
    except ValueError as exc:
        raise ValueError(f"cannot read {text}: {exc}") from None
    return os.path.abspath(text)


def _log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return text.lower()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number of seconds, got {text!r}")
    return value


def _flow_budget(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number of flows, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"must be a positive number of flows, got {text!r}")
    return value
def _ovsdb(text: str) -> str | None:
    if text.strip().lower() == OVSDB_OFF:
        return None
    if not text.startswith(("unix:", "tcp:", "ssl:")) or len(text.split(":", 1)[1]) == 0:
        raise ValueError(f"expected unix:PATH, tcp:HOST:PORT, ssl:HOST:PORT or {OVSDB_OFF}, got {text!r}")
    return text


def _bridges(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if any(len(name) > 15 or "/" in name or any(ch.isspace() for ch in name) for name in names):
        raise ValueError(f"expected bridge names separated by commas, got {text!r}")
    return names


def _default_db(environ: Mapping[str, str]) -> str:
    state_dir = environ.get("SDN_STATE_DIR") or DEFAULT_STATE_DIR
    return "sqlite:///" + os.path.abspath(os.path.join(state_dir, "sdn.db"))


@dataclass(frozen=True)
class _Option:
    name: str  # Config attribute and file key; flag --name-with-dashes; env SDN_NAME
    metavar: str
    help: str
    parse: Callable[[str], Any]
    default: str | Callable[[Mapping[str, str]], str] | None
    sets: str | None = None  # the Config attribute it fills when not `name`; options filling one exclude each other

    @property
    def attribute(self) -> str:
        return self.sets or self.name

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "SDN_" + self.name.upper()

    def default_for(self, environ: Mapping[str, str]) -> str | None:
        return self.default(environ) if callable(self.default) else self.default


OPTIONS: tuple[_Option, ...] = (
    _Option("of_listen", "HOST:PORT", "OpenFlow listener; switches connect here", _listen, "127.0.0.1:6653"),
    _Option("api_listen", "HOST:PORT", "REST API listener", _listen, "127.0.0.1:8080"),
    _Option("db", "URL", "policy store, an SQLAlchemy URL (default sqlite:///$SDN_STATE_DIR/sdn.db, "
            f"state dir {DEFAULT_STATE_DIR})", _non_empty, _default_db),
    _Option("api_token", "TOKEN", "require 'Authorization: Bearer TOKEN' on every request but GET /v1/health; "
            "prefer --api-token-file: every local user can read a command line (ps, /proc/PID/cmdline), and an "
            "environment can leak to the same user through /proc/PID/environ and into child processes and crash "
            "reports", _token, None),
    _Option("api_token_file", "FILE", "the same, with the token read from FILE at start (surrounding whitespace "
            "stripped); safer than a flag or the environment, as a file with mode 0600 can be readable by the "
            "service alone; give one of the two", read_token_file, None, sets="api_token"),
    _Option("log_level", "LEVEL", "one of " + ", ".join(LOG_LEVELS), _log_level, "info"),
    _Option("lldp_interval", "SECONDS", "how often to send LLDP probes for link discovery", _seconds, "1.0"),
    _Option("neighbor_refresh", "SECONDS", "how often routers ARP again for the next hops they resolved through "
            "uplinks; one unanswered three times in a row is forgotten", _seconds, "60.0"),
    _Option("max_flows_per_switch", "N", "flow budget: a REST change whose compiled flows would exceed N on any "
            "switch is refused with 409 naming the switch and the count it needed, and nothing changes "
            "(default: no budget)", _flow_budget, None),
    _Option("stats_interval", "SECONDS", "how often to read the switches' flow counters for the objects' stats (a GET "
            "with ?refresh=true reads them sooner, at most once a second)", _seconds, "10.0"),
    _Option("of_tls_cert", "FILE", "OpenFlow over TLS: the controller's certificate (PEM); with --of-tls-key and "
            "--of-tls-ca, switches connect with ssl:HOST:PORT and plain tcp: is refused", _readable_file, None),
    _Option("of_tls_key", "FILE", "OpenFlow over TLS: the controller's private key (PEM)", _readable_file, None),
    _Option("of_tls_ca", "FILE", "OpenFlow over TLS: the CA certificate(s) (PEM) a switch's certificate must be "
            "signed by; a switch without one is refused", _readable_file, None),
    _Option("ovsdb", "REMOTE", "the local Open vSwitch database (unix:PATH, tcp:HOST:PORT, ssl:HOST:PORT): a port "
            "without a binding is attached to the interface whose external_ids:iface-id is its id or name; "
            f"{OVSDB_OFF!r}: not used", _ovsdb, DEFAULT_OVSDB),
    _Option("attach", "BRIDGE,...", "bridges to point at this controller at start, through --ovsdb (OpenFlow 1.3, "
            "fail_mode=secure, their datapath type kept), as `sdn-controller attach` does", _bridges, None),
)
TLS_OPTIONS = ("of_tls_cert", "of_tls_key", "of_tls_ca")


def build_parser() -> argparse.ArgumentParser:
    return add_options(argparse.ArgumentParser(
        prog="sdn-controller",
        description="OpenFlow 1.3 controller for Open vSwitch with a REST API. "
        "Each option is also read from SDN_<NAME> and from --config; flag > env > file > default. "
        "`sdn-controller attach BRIDGE...` points bridges at it (see `sdn-controller attach -h`).",
    ))


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The controller's options (and --config) on `parser`; `config_from` reads them back."""
    parser.add_argument("--config", metavar="FILE", help="TOML or INI file ([controller] section); env SDN_CONFIG")
    for option in OPTIONS:
        shown = f"; default {option.default}" if isinstance(option.default, str) else ""
        parser.add_argument(
            option.flag, dest=option.name, metavar=option.metavar, help=f"{option.help} (env {option.env}{shown})"
        )
    return parser


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> Config:
    """Parse flags (sys.argv when None), then fill each unset option from env, file, default."""
    return config_from(build_parser().parse_args(argv), environ)


def config_from(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Config:
    """The options parsed by a parser `add_options` made, each unset one from env, file, default."""
    config_file = args.config or environ.get("SDN_CONFIG") or None
    from_file = _read_file(config_file) if config_file else {}
    values: dict[str, Any] = {}
    given: dict[str, str] = {}  # Config attribute -> where its value came from
    for option in OPTIONS:
        sources = (
            (option.flag, getattr(args, option.name)),
            (option.env, environ.get(option.env) or None),
            (f"{config_file}: {option.name}", from_file.get(option.name)),
            ("default", option.default_for(environ)),
        )
        source, raw = next(((s, v) for s, v in sources if v is not None), ("default", None))
        if raw is None:
            values.setdefault(option.attribute, None)
            continue
        if option.attribute in given:
            raise ConfigError(f"{given[option.attribute]} and {source}: give only one of them")
        try:
            values[option.attribute] = option.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        given[option.attribute] = source
    tls = [values.pop(name) for name in TLS_OPTIONS]
    if any(tls) and not all(tls):
        flags = ", ".join("--" + name.replace("_", "-") for name in TLS_OPTIONS)
        raise ConfigError(f"{flags} go together: give all three or none")
    return Config(**values, of_tls=OpenFlowTls(*tls) if all(tls) else None)


def _read_file(path: str) -> dict[str, str]:
    """Option name -> raw text from a TOML file (top level or [controller]) or an INI [controller]."""
    try:
        text = _read_text(path)
    except ValueError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        raw = _parse(path, text)
    except (configparser.Error, ValueError) as exc:  # TOMLDecodeError is a ValueError
        raise ConfigError(f"{path}: not a valid config file: {str(exc).splitlines()[0]}") from None
    known = {option.name for option in OPTIONS}
    options: dict[str, str] = {}
    for key, value in raw.items():
        name = key.strip().lower().replace("-", "_")
        if name not in known:
            raise ConfigError(f"{path}: unknown option {key!r} (known: {', '.join(sorted(known))})")
        if isinstance(value, dict | list | bool):
            raise ConfigError(f"{path}: {key} must be a string or a number")
        options[name] = str(value)
    return options


def _read_text(path: str) -> str:
    """A file's UTF-8 text, or ValueError with the one-line reason it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(getattr(exc, "strerror", None) or str(exc)) from None


def _parse(path: str, text: str) -> dict[str, Any]:
    """TOML (top level or a [controller] table) or INI ([controller]); by suffix, else TOML first."""
    if path.endswith((".ini", ".cfg", ".conf")):
        return _parse_ini(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        if path.endswith(".toml"):
            raise
        return _parse_ini(text)
    section = data.get(INI_SECTION)
    return section if isinstance(section, dict) else data


def _parse_ini(text: str) -> dict[str, Any]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.MissingSectionHeaderError:
        parser.clear()
    if not parser.has_section(INI_SECTION):
        raise ValueError(f"INI config needs a [{INI_SECTION}] section")
    return dict(parser.items(INI_SECTION))
