"""The policy store: networks, ports, security groups, routers, floating IPs and load balancers in SQL (SQLite by
default), validated on the way in, and the MAC bindings the controller learns on external networks.

Every public method is one transaction and either fully applies or raises `ApiError` having
changed nothing. Request bodies are validated by the declarations in `controller.schema`; the
checks that need the database (uniqueness, references, keys) are here.

The store also keeps the last-known topology (switches, their ports, links) so a restarted
controller can compile the same flows before the switches have reported in again: that is
what makes a restart hitless.

Schema changes are additive: `_migrate()` creates new tables and adds new columns to an older
database when it is opened, and moves what a table of an older schema held into the table that
replaces it, so an upgrade keeps its state.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    Engine,
    ForeignKey,
    Index,
    Select,
    String,
    Subquery,
    Text,
    UniqueConstraint,
    and_,
    column,
    create_engine,
    delete,
    event,
    exists,
    func,
    inspect,
    literal,
    or_,
    select,
    table,
    text,
    union,
    union_all,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateIndex, CreateTable

from apps.model import (
    FloatingIP,
    HealthMonitor,
    LbMember,
    LoadBalancer,
    MacBinding,
    Network,
    Policy,
    Port,
    Router,
    RouterGateway,
    RouterInterface,
    SecurityGroup,
    SecurityGroupRule,
    StaticRoute,
    SwitchConfig,
)
from apps.topology import Link, Switch, SwitchPort
from controller.errors import ApiError
from controller.schema import (
    DEFAULT_GROUP,
    NAME_MAX,
    PORTED_PROTOCOLS,
    SEGMENTATION_IDS,
    FloatingIpCreate,
    LbMemberCreate,
    LoadBalancerCreate,
    NetworkCreate,
    PortCreate,
    RouterCreate,
    RouterInterfaceCreate,
    SecurityGroupCreate,
    SecurityGroupRuleCreate,
    SecurityGroupRules,
    SwitchUpdate,
    parse_body,
)

LOG = logging.getLogger(__name__)
ZONES = range(1, 65536)  # conntrack zones: the keys of ports, routers and load balancers
MEMBER_KEYS = range(1, 2**31 + 1)  # select-group bucket ids
RULE_KEYS = range(1, 2**31 + 1)  # OpenFlow conjunction ids
PROFILE_KEYS = range(1, 2**32)  # a 32-bit register; 0 means none
ROUTER_MAC_PREFIX = "fa:16:3f"  # then the router's key: unique among routers, and not Neutron's fa:16:3e for ports
LOAD_BALANCER_MAC_PREFIX = "fa:16:3f:01"  # then the balancer's key: zones < 2**16 make every router's fa:16:3f:00
MEMBER_HEALTH = ("ONLINE", "OFFLINE")  # what a health monitor finds


class StoreError(Exception):
    """The database cannot be opened; the message is one line fit for an exit reason."""


# ---------------------------------------------------------------------------------------------
# Tables.


class _Base(DeclarativeBase):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


class _NetworkRow(_Base):
    __tablename__ = "networks"
    # A unique index rather than a constraint, so that _migrate() can add it.
    __table_args__ = (Index("ix_networks_uplink", "uplink_dpid", "uplink_interface", unique=True),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    cidr: Mapped[str] = mapped_column(String(18))
    gateway_ip: Mapped[str | None] = mapped_column(String(15))
    segmentation_id: Mapped[int] = mapped_column(unique=True)
    external: Mapped[bool]
    uplink_dpid: Mapped[str | None] = mapped_column(String(16))
    uplink_interface: Mapped[str | None] = mapped_column(String(15))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class _PortRow(_Base):
    __tablename__ = "ports"
    __table_args__ = (
        UniqueConstraint("network_id", "mac_address"),
        UniqueConstraint("network_id", "ip_address"),
        UniqueConstraint("dpid", "interface"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    mac_address: Mapped[str] = mapped_column(String(17))
    ip_address: Mapped[str] = mapped_column(String(15))
    dpid: Mapped[str | None] = mapped_column(String(16))  # with interface; both null: attached where OVSDB says
    interface: Mapped[str | None] = mapped_column(String(15))
    port_security_enabled: Mapped[bool]
    key: Mapped[int] = mapped_column(unique=True, index=True)  # a unique index, so _migrate() can add it
    profile: Mapped[int] = mapped_column(default=0)  # its set of groups (_ProfileRow); 0 without port security
    created_at: Mapped[datetime] = mapped_column(default=_now)


class _RouterRow(_Base):
    """A router; its interfaces and routes are rows of their own. `key` is its zone (_ZoneRow), `mac_address`
    made from it."""

    __tablename__ = "routers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    mac_address: Mapped[str] = mapped_column(String(17), unique=True)
    key: Mapped[int] = mapped_column(unique=True)
    gateway_network_id: Mapped[str | None] = mapped_column(ForeignKey("networks.id"), index=True)
    gateway_ip: Mapped[str | None] = mapped_column(String(15))
    enable_snat: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class _RouterInterfaceRow(_Base):
    """A router's interface on a network, keyed by the network: a network is on one router at most. Its address
    is the network's gateway_ip, which cannot change while the interface is there."""

    __tablename__ = "router_interfaces"
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), primary_key=True)
    router_id: Mapped[str] = mapped_column(ForeignKey("routers.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class _RouteRow(_Base):
    """A router's static route, in the order the routes were given."""

    __tablename__ = "router_routes"
    router_id: Mapped[str] = mapped_column(ForeignKey("routers.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    destination: Mapped[str] = mapped_column(String(18))
    nexthop: Mapped[str] = mapped_column(String(15))


class _FloatingIPRow(_Base):
    """An address on an external network, mapped 1:1 to a port, to a load balancer's VIP, or to none."""

    __tablename__ = "floating_ips"
    __table_args__ = (UniqueConstraint("network_id", "address"),)
    noun: ClassVar[str] = "floating IP"  # as messages name it (else: the table's name, singular)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    address: Mapped[str] = mapped_column(String(15))
    port_id: Mapped[str | None] = mapped_column(ForeignKey("ports.id"), unique=True)
    load_balancer_id: Mapped[str | None] = mapped_column(ForeignKey("load_balancers.id"), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class _LoadBalancerRow(_Base):
    """A load balancer and its health monitor (the monitor_* columns, all null without one); its members are rows of
    their own. `key` is its zone (_ZoneRow), `mac_address` made from it."""

    __tablename__ = "load_balancers"
    __table_args__ = (UniqueConstraint("network_id", "vip_address"),)
    noun: ClassVar[str] = "load balancer"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    vip_address: Mapped[str] = mapped_column(String(15))
    protocol: Mapped[str] = mapped_column(String(3))
    port: Mapped[int]
    algorithm: Mapped[str] = mapped_column(String(16))
    key: Mapped[int] = mapped_column(unique=True)
    hairpin_key: Mapped[int | None] = mapped_column(unique=True, index=True)  # an index, so _migrate() can add it
    mac_address: Mapped[str] = mapped_column(String(17), unique=True)
    monitor_type: Mapped[str | None] = mapped_column(String(3))
    monitor_interval_s: Mapped[float | None]
    monitor_timeout_s: Mapped[float | None]
    monitor_max_retries: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=_now)


class _LbMemberRow(_Base):
    """A member of a load balancer (gone with it): the address and port of port `port_id`, which cannot go or change
    its address while it is a member. `health` is what the monitor last found (ONLINE or OFFLINE; a new member starts
    ONLINE); its status (_member_status) also depends on admin_state_up and on whether the balancer has a monitor, and
    `status_changed_at` is when that status last changed. `key` is unique among members and never changes."""

    __tablename__ = "lb_members"
    __table_args__ = (UniqueConstraint("load_balancer_id", "ip_address", "port"),)
    noun: ClassVar[str] = "member"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    load_balancer_id: Mapped[str] = mapped_column(ForeignKey("load_balancers.id", ondelete="CASCADE"), index=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id"), index=True)
    ip_address: Mapped[str] = mapped_column(String(15))
    port: Mapped[int]
    weight: Mapped[int]
    admin_state_up: Mapped[bool]
    health: Mapped[str] = mapped_column(String(8), default="ONLINE")
    key: Mapped[int] = mapped_column(unique=True)
    status_changed_at: Mapped[datetime] = mapped_column(default=_now)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class _MacBindingRow(_Base):
    """A host's MAC on an external network, learned by ARP through its uplink (not a port): kept while it keeps
    answering (`updated_at`: when it last did), gone with its network."""

    __tablename__ = "mac_bindings"
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(15), primary_key=True)
    mac_address: Mapped[str] = mapped_column(String(17))
    updated_at: Mapped[datetime] = mapped_column(default=_now)


class _SecurityGroupRow(_Base):
    __tablename__ = "security_groups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    description: Mapped[str] = mapped_column(String(NAME_MAX))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class _SecurityGroupRuleRow(_Base):
    __tablename__ = "security_group_rules"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id"), index=True)
    direction: Mapped[str] = mapped_column(String(7))
    protocol: Mapped[str | None] = mapped_column(String(4))
    port_range_min: Mapped[int | None]
    port_range_max: Mapped[int | None]
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(18))
    remote_group_id: Mapped[str | None] = mapped_column(ForeignKey("security_groups.id"), index=True)
    key: Mapped[int] = mapped_column(unique=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class _PortSecurityGroupRow(_Base):
    __tablename__ = "port_security_groups"
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id"), primary_key=True, index=True)
    position: Mapped[int]


class _ProfileRow(_Base):
    """A set of security groups that ports have, and its number: ports with the same groups share their
    security-group flows (the compiler matches the number, not the port)."""

    __tablename__ = "profiles"
    key: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    groups: Mapped[str] = mapped_column(Text, unique=True)  # sorted group ids, comma-separated


class _CounterRow(_Base):
    """Named high-water marks, for keys handed out in order rather than lowest-free."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int]


class _ZoneRow(_Base):
    """A conntrack zone and its owner: ports, routers and load balancers take their keys from this one allocator, so
    that no two of them ever share a zone. The owner keeps a copy as its `key`."""

    __tablename__ = "zones"
    __table_args__ = (UniqueConstraint("owner_kind", "owner_id"),)
    zone: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    owner_kind: Mapped[str] = mapped_column(String(16))  # "port", "router", "load_balancer" or "lb_hairpin"
    owner_id: Mapped[str] = mapped_column(String(36))


class _FreedZoneRow(_Base):
    """Zones of deleted ports, routers and load balancers: flushed on every switch, not reused soon."""

    __tablename__ = "freed_zones"
    zone: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    freed_at: Mapped[datetime] = mapped_column(default=_now)


class _SettingRow(_Base):
    """Controller-wide values that must survive restarts (the LLDP signing secret)."""

    __tablename__ = "settings"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class _SwitchConfigRow(_Base):
    """What an operator declared about a switch, whether or not it has ever connected."""

    __tablename__ = "switch_configs"
    dpid: Mapped[str] = mapped_column(String(16), primary_key=True)
    trunk_ports: Mapped[str | None] = mapped_column(String(4096))  # JSON list of interface names


class _ChangeRow(_Base):
    """The change journal: at each revision, which policy object changed (its kind and id).

    Readers (the runtime, later several controllers) ask what changed since the revision they last
    saw and load just those objects, instead of the whole policy.
    """

    __tablename__ = "changes"
    revision: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[str] = mapped_column(String(64))  # a uuid, a dpid, or "network_id/ip" of a MAC binding


class _SwitchRow(_Base):
    __tablename__ = "switches"
    dpid: Mapped[str] = mapped_column(String(16), primary_key=True)


class _SwitchPortRow(_Base):
    __tablename__ = "switch_ports"
    dpid: Mapped[str] = mapped_column(ForeignKey("switches.dpid", ondelete="CASCADE"), primary_key=True)
    ofport: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(15))
    mac: Mapped[str] = mapped_column(String(17))
    up: Mapped[bool]


class _LinkRow(_Base):
    __tablename__ = "links"
    a_dpid: Mapped[str] = mapped_column(String(16), primary_key=True)
    a_port: Mapped[int] = mapped_column(primary_key=True)
    b_dpid: Mapped[str] = mapped_column(String(16), primary_key=True)
    b_port: Mapped[int] = mapped_column(primary_key=True)


def _switch_config(row: _SwitchConfigRow) -> SwitchConfig:
    return SwitchConfig(row.dpid, None if row.trunk_ports is None else tuple(json.loads(row.trunk_ports)))


def _switch_config_dict(config: SwitchConfig) -> dict[str, Any]:
    return {"trunk_ports": None if config.trunk_ports is None else list(config.trunk_ports)}


def _network_dict(row: _NetworkRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "cidr": row.cidr,
        "gateway_ip": row.gateway_ip,
        "segmentation_id": row.segmentation_id,
        "external": row.external,
        "uplink": None if row.uplink_dpid is None else {"dpid": row.uplink_dpid, "interface": row.uplink_interface},
    }


def _port_dict(row: _PortRow, security_group_ids: list[str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "network_id": row.network_id,
        "name": row.name,
        "mac_address": row.mac_address,
        "ip_address": row.ip_address,
        "binding": None if row.dpid is None else {"dpid": row.dpid, "interface": row.interface},
        "port_security_enabled": row.port_security_enabled,
        "security_group_ids": security_group_ids,
    }


def _rule(row: _SecurityGroupRuleRow) -> SecurityGroupRule:
    return SecurityGroupRule(
        row.id, row.security_group_id, row.direction, row.protocol, row.port_range_min, row.port_range_max,
        row.remote_ip_prefix, row.remote_group_id, row.key,
    )


def _rule_dict(rule: SecurityGroupRule) -> dict[str, Any]:
    """The REST view: the model without the internal key, plus the constant ethertype."""
    shown = asdict(rule)
    del shown["key"]
    return {**shown, "ethertype": "IPv4"}


def _group_dict(row: _SecurityGroupRow, rules: list[SecurityGroupRule]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "rules": [_rule_dict(rule) for rule in rules],
    }


# ---------------------------------------------------------------------------------------------
# The store.


class Stage:
    """An open set of changes (see Store.staged): committed or rolled back exactly once."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.done = False

    def commit(self) -> None:
        self._end(self._session.commit)

    def rollback(self) -> None:
        self._end(self._session.rollback)

    def _end(self, how: Callable[[], None]) -> None:
        if self.done:
            raise RuntimeError("this stage was already committed or rolled back")
        self.done = True
        how()


class Store:
    """SQL-backed policy and topology store, safe to call from any thread."""

    def __init__(self, url: str) -> None:
        # One lock for reads and writes: SQLite allows one writer, an in-memory database is one
        # shared connection, and pysqlite does not wrap SELECTs in a transaction, so holding the
        # lock is also what makes snapshot() one consistent read.
        self._lock = threading.RLock()
        self._staged = threading.local()  # .session: the open session of this thread's stage
        try:
            self._engine = _open_engine(url)
            self._concurrent_reads = not isinstance(self._engine.pool, StaticPool)
            ports_predate_groups = _migrate(self._engine)
            self._sessions = sessionmaker(self._engine, expire_on_commit=False)
            self._default_group_id = self._ensure_default_group(ports_predate_groups)
            self._lldp_secret = bytes.fromhex(self._setting("lldp_secret", lambda: secrets.token_hex(32)))
        except (OSError, ImportError, SQLAlchemyError) as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise StoreError(f"cannot open database {shown}: {reason}") from exc

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Session]:
        """A session in a transaction: this thread's stage if it has one; else a new one, which a write
        takes under the writers' lock. A read takes it too unless the database gives readers a snapshot of
        their own (a file or a server), so that reads never wait for a change being converged."""
        staged: Session | None = getattr(self._staged, "session", None)
        try:
            if staged is not None:  # inside this thread's stage: its changes, uncommitted
                yield staged
                staged.flush()
                return
            with self._lock if write or not self._concurrent_reads else nullcontext(), \
                    self._sessions.begin() as session:
                yield session
                session.flush()
        except IntegrityError as exc:
            # The checks below run first; this is the backstop for anything they missed. The
            # database's own words name tables and columns: they go to the log, not the caller.
            LOG.info("integrity error turned into a 409: %s", exc.orig)
            raise ApiError(409, "conflict with an existing resource") from exc

    @contextmanager
    def staged(self) -> Iterator[Stage]:
        """Changes made by this thread inside the block stay uncommitted until `stage.commit()`.

        This thread's reads (snapshot() included) see them; other threads wait for the block to
        end. That lets a caller converge the switches to a change before keeping it, and drop
        the change if a switch refuses its flows. Whatever is not committed is rolled back.
        """
        with self._lock:
            if getattr(self._staged, "session", None) is not None:
                raise RuntimeError("stages do not nest")
            session = self._sessions()
            session.begin()
            self._staged.session = session
            stage = Stage(session)
            try:
                yield stage
            finally:
                self._staged.session = None
                if not stage.done:
                    session.rollback()
                session.close()

    def _setting(self, name: str, make: Callable[[], str]) -> str:
        """A persistent setting, created with `make()` the first time it is asked for."""
        with self._transaction() as session:
            row = session.get(_SettingRow, name)
            if row is None:
                row = _SettingRow(name=name, value=make())
                session.add(row)
            return row.value

    def lldp_secret(self) -> bytes:
        """The key LLDP frames are signed with: kept in the store so restarts and peers agree."""
        return self._lldp_secret

    def _ensure_default_group(self, adopt_ports: bool) -> str:
        """The built-in group's id, creating it (Neutron's rules) on first open.

        `adopt_ports`: the database has ports from before security groups; they join the default
        group, as a port created without `security_group_ids` would, so an upgrade cuts no traffic.
        """
        with self._transaction() as session:
            group_id = session.scalar(select(_SecurityGroupRow.id).where(_SecurityGroupRow.name == DEFAULT_GROUP))
            if group_id is None:
                group_id = _add_group(session, DEFAULT_GROUP, "Built-in: egress anywhere, ingress from its members.")
                _add_rule(session, _rule_values(group_id, "ingress", remote_group_id=group_id))
            if adopt_ports:
                for port in session.scalars(select(_PortRow).where(_PortRow.port_security_enabled)).all():
                    _set_port_groups(session, port, [group_id])
                    _journal(session, "port", port.id)
            return group_id

    # -- networks --------------------------------------------------------------------------

    def create_network(self, body: dict[str, Any]) -> dict[str, Any]:
        values = parse_body(NetworkCreate, body)
        cidr = ipaddress.IPv4Network(values["cidr"])
        gateway = values["gateway_ip"] if "gateway_ip" in values else str(cidr.network_address + 1)
        _check_gateway(cidr, gateway)
        with self._transaction() as session:
            if "segmentation_id" in values:
                segmentation_id = values["segmentation_id"]
                _check_segmentation_id_free(session, segmentation_id, None)
            else:
                segmentation_id = _free_key(session, _NetworkRow.segmentation_id, SEGMENTATION_IDS, "segmentation_id")
            row = _NetworkRow(
                id=str(uuid.uuid4()),
                name=values["name"],
                cidr=str(cidr),
                gateway_ip=gateway,
                segmentation_id=segmentation_id,
                external=values["external"],
            )
            _set_uplink(session, row, values["uplink"], "uplink")
            session.add(row)
            _journal(session, "network", row.id)
            return _network_dict(row)

    def list_networks(self) -> list[dict[str, Any]]:
        with self._transaction(write=False) as session:
            return [_network_dict(row) for row in session.scalars(_ordered(_NetworkRow))]

    def get_network(self, network_id: str) -> dict[str, Any]:
        with self._transaction(write=False) as session:
            return _network_dict(_get(session, _NetworkRow, network_id))

    def update_network(self, network_id: str, body: dict[str, Any]) -> dict[str, Any]:
        values = parse_body(NetworkCreate, body, partial=True)
        with self._transaction() as session:
            row = _get(session, _NetworkRow, network_id)
            cidr = ipaddress.IPv4Network(values.get("cidr", row.cidr))
            cidr_changed = str(cidr) != row.cidr
            if cidr_changed and (users := _network_users(session, row.id)):
                raise _in_use("cidr: cannot change: the network is in use by", users, "cidr")
            if "gateway_ip" in values:
                gateway = values["gateway_ip"]
            else:
                gateway = str(cidr.network_address + 1) if cidr_changed else row.gateway_ip
            _check_gateway(cidr, gateway)
            if gateway != row.gateway_ip:
                _check_gateway_free(session, row, gateway)
            if values.get("external", row.external) != row.external:
                _check_external_change(session, row, values["external"])
            if "segmentation_id" in values:
                _check_segmentation_id_free(session, values["segmentation_id"], row.id)
                row.segmentation_id = values["segmentation_id"]
            if cidr_changed:
                _drop_mac_bindings(session, row.id, keep=cidr)
            row.cidr, row.gateway_ip = str(cidr), gateway
            row.name = values.get("name", row.name)
            row.external = values.get("external", row.external)
            # An uplink kept on a network made non-external is the fault of `external`.
            blamed = "uplink" if "uplink" in values else "external"
            _set_uplink(session, row, values.get("uplink", _uplink(row)), blamed)
            _journal(session, "network", row.id)
            return _network_dict(row)

    def delete_network(self, network_id: str) -> None:
        with self._transaction() as session:
            row = _get(session, _NetworkRow, network_id)
            users = _network_users(session, row.id)
            if users:
                raise _in_use(f"network {network_id} is in use by", users)
            _drop_mac_bindings(session, row.id)
            session.delete(row)
            _journal(session, "network", row.id)

    # -- ports -------------------------------------------------------------------------------

    def create_port(self, body: dict[str, Any]) -> dict[str, Any]:
        values = parse_body(PortCreate, body)
        with self._transaction() as session:
            network = session.get(_NetworkRow, values["network_id"])
            if network is None:
                raise ApiError.not_found("network", values["network_id"], field="network_id")
            binding = values["binding"] or {"dpid": None, "interface": None}
            row = _PortRow(
                id=str(uuid.uuid4()),
                network_id=network.id,
                name=values["name"],
                mac_address=values["mac_address"],
                ip_address=values["ip_address"],
                dpid=binding["dpid"],
                interface=binding["interface"],
                port_security_enabled=values["port_security_enabled"],
            )
            row.key = _take_zone(session, "port", row.id)
            _check_port(session, network, row)
            if "security_group_ids" in values:
                group_ids = values["security_group_ids"]
                _check_port_groups(session, row, group_ids, "security_group_ids")
            else:  # Neutron: the default group, unless port security is off
                group_ids = [self._default_group_id] if row.port_security_enabled else []
            session.add(row)
            session.flush()
            _set_port_groups(session, row, group_ids)
            _journal(session, "port", row.id)
            return _port_dict(row, group_ids)

    def list_ports(self, network_id: str | None = None) -> list[dict[str, Any]]:
        query = _ordered(_PortRow)
        if network_id is not None:
            query = query.where(_PortRow.network_id == network_id)
        with self._transaction(write=False) as session:
            groups = _port_groups(session)
            return [_port_dict(row, groups.get(row.id, [])) for row in session.scalars(query)]

    def get_port(self, port_id: str) -> dict[str, Any]:
        with self._transaction(write=False) as session:
            row = _get(session, _PortRow, port_id)
            return _port_dict(row, _port_groups(session, [row.id]).get(row.id, []))

    def update_port(self, port_id: str, body: dict[str, Any]) -> dict[str, Any]:
        values = parse_body(PortCreate, body, partial=True)
        with self._transaction() as session:
            row = _get(session, _PortRow, port_id)
            if values.get("ip_address", row.ip_address) != row.ip_address and (
                    members := _port_members(session, row.id)):
                raise _in_use("ip_address: cannot change: the port is in use by", members, "ip_address")
            binding = values.pop("binding", {"dpid": row.dpid, "interface": row.interface}) or {
                "dpid": None, "interface": None}
            new_group_ids = values.pop("security_group_ids", None)
            for name, value in values.items():
                setattr(row, name, value)
            row.dpid, row.interface = binding["dpid"], binding["interface"]
            # Autoflush is off while checking: the row must not collide with itself in SQL.
            with session.no_autoflush:
                _check_port(session, session.get_one(_NetworkRow, row.network_id), row)
                if new_group_ids is None:
                    group_ids = _port_groups(session, [row.id]).get(row.id, [])
                    _check_port_groups(session, row, group_ids, "port_security_enabled")
                else:
                    group_ids = new_group_ids
                    _check_port_groups(session, row, group_ids, "security_group_ids")
            if new_group_ids is not None:
                _set_port_groups(session, row, group_ids)
            else:
                _assign_profile(session, row, group_ids)  # port security may have changed
            _journal(session, "port", row.id)
            return _port_dict(row, group_ids)

    def delete_port(self, port_id: str) -> None:
        with self._transaction() as session:
            row = _get(session, _PortRow, port_id)
            members = _port_members(session, row.id)
            if members:  # Neutron/Octavia leave a dangling member; here a member always has its port
                raise _in_use(f"port {port_id} is in use by", members)
            for floating_ip in session.scalars(select(_FloatingIPRow).where(_FloatingIPRow.port_id == row.id)):
                floating_ip.port_id = None  # Neutron: the floating IP stays, mapped to nothing
                _journal(session, "floating_ip", floating_ip.id)
            session.flush()  # before the port goes: the floating IP refers to it
            _free_zone(session, row.key)
            session.delete(row)
            _journal(session, "port", row.id)

    def freed_zones(self) -> frozenset[int]:
        """Conntrack zones of deleted ports, routers and load balancers that nothing holds again yet."""
        with self._transaction(write=False) as session:
            return frozenset(session.scalars(select(_FreedZoneRow.zone)))

    # -- security groups ---------------------------------------------------------------------

    def create_security_group(self, body: dict[str, Any]) -> dict[str, Any]:
        values = parse_body(SecurityGroupCreate, body)
        with self._transaction() as session:
            group_id = _add_group(session, values["name"], values["description"])
            rules = _group_rules(session, [group_id])[group_id]
            return _group_dict(session.get_one(_SecurityGroupRow, group_id), rules)

    def list_security_groups(self) -> list[dict[str, Any]]:
        with self._transaction(write=False) as session:
            rules = _group_rules(session)
            return [_group_dict(row, rules[row.id]) for row in session.scalars(_ordered(_SecurityGroupRow))]

    def get_security_group(self, group_id: str) -> dict[str, Any]:
        with self._transaction(write=False) as session:
            row = _get(session, _SecurityGroupRow, group_id)
            return _group_dict(row, _group_rules(session, [row.id])[row.id])

    def update_security_group(self, group_id: str, body: dict[str, Any]) -> dict[str, Any]:
        values = parse_body(SecurityGroupCreate, body, partial=True)
        with self._transaction() as session:
            row = _get(session, _SecurityGroupRow, group_id)
            if row.id == self._default_group_id and "name" in values:
                raise ApiError.conflict("name", f"the built-in {DEFAULT_GROUP!r} security group cannot be renamed")
            row.name = values.get("name", row.name)
            row.description = values.get("description", row.description)
            _journal(session, "group", row.id)
            return _group_dict(row, _group_rules(session, [row.id])[row.id])

    def delete_security_group(self, group_id: str) -> None:
        with self._transaction() as session:
            row = _get(session, _SecurityGroupRow, group_id)
            if row.id == self._default_group_id:
                raise ApiError.conflict("id", f"the built-in {DEFAULT_GROUP!r} security group cannot be deleted")
            ports = session.scalars(
                select(_PortSecurityGroupRow.port_id).where(_PortSecurityGroupRow.security_group_id == row.id)
            ).all()
            referring = session.execute(
                select(_SecurityGroupRuleRow.id, _SecurityGroupRuleRow.security_group_id).where(
                    _SecurityGroupRuleRow.remote_group_id == row.id,
                    _SecurityGroupRuleRow.security_group_id != row.id,
                )
            ).all()
            if ports or referring:
                users = [f"port {port_id}" for port_id in ports]
                users += [f"rule {rule_id} of security group {owner}" for rule_id, owner in referring]
                raise ApiError(
                    409,
                    f"security group {group_id} is in use by {len(ports)} port(s) and "
                    f"{len(referring)} rule(s) of other security groups",
                    [{"field": "id", "message": f"used by {user}"} for user in users],
                )
            for rule_id in session.scalars(select(_SecurityGroupRuleRow.id).where(
                    _SecurityGroupRuleRow.security_group_id == row.id)).all():
                _journal(session, "rule", rule_id)
            session.execute(delete(_SecurityGroupRuleRow).where(_SecurityGroupRuleRow.security_group_id == row.id))
            session.delete(row)
            _journal(session, "group", row.id)

    # -- security group rules (immutable: created and deleted only) --------------------------

    def create_security_group_rule(self, body: dict[str, Any]) -> dict[str, Any]:
        values = parse_body(SecurityGroupRuleCreate, body)
        values.pop("ethertype")  # IPv4 is all there is
        values = _rule_values(**values)
        with self._transaction() as session:
            _get(session, _SecurityGroupRow, values["security_group_id"], field="security_group_id")
            if values["remote_group_id"] is not None:
                _get(session, _SecurityGroupRow, values["remote_group_id"], field="remote_group_id")
            same = select(_SecurityGroupRuleRow.id).where(
                *(getattr(_SecurityGroupRuleRow, name).is_not_distinct_from(value) for name, value in values.items())
            )
            twin = session.scalar(same)
            if twin is not None:
                raise ApiError(
                    409,
                    f"an identical rule already exists in security group {values['security_group_id']}: {twin}",
                    [{"message": "identical rule exists", "rule_id": twin}],
                )
            return _rule_dict(_rule(_add_rule(session, values)))

    def replace_security_group_rules(self, group_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Make the group's rules exactly `body["rules"]`, in one change: a rule equal to one the group has keeps
        its id and key (so its flows and the connections it allows are untouched), the rest go or come."""
        wanted: dict[tuple, tuple[int, dict[str, Any]]] = {}  # a rule's columns -> (its index, its values)
        for i, item in enumerate(parse_body(SecurityGroupRules, body)["rules"]):
            item.pop("ethertype")  # IPv4 is all there is
            try:
                values = _rule_values(group_id, **item)
            except ApiError as exc:
                raise ApiError.invalid(f"rules[{i}].{exc.details[0]['field']}", exc.details[0]["message"]) from None
            same = tuple(values.values())
            if same in wanted:
                raise ApiError.invalid(f"rules[{i}]", f"the same rule as rules[{wanted[same][0]}]")
            wanted[same] = (i, values)
        with self._transaction() as session:
            row = _get(session, _SecurityGroupRow, group_id)
            for i, values in wanted.values():
                if values["remote_group_id"] is not None:
                    _get(session, _SecurityGroupRow, values["remote_group_id"], field=f"rules[{i}].remote_group_id")
            kept = set()
            for rule_row in session.scalars(select(_SecurityGroupRuleRow).where(
                    _SecurityGroupRuleRow.security_group_id == group_id)):
                same = tuple(getattr(rule_row, column) for column in _RULE_COLUMNS)
                if same in wanted:
                    kept.add(same)
                else:
                    session.delete(rule_row)
                    _journal(session, "rule", rule_row.id)
            session.flush()
            for _, values in sorted(wanted[same] for same in wanted.keys() - kept):
                _add_rule(session, values)
            return _group_dict(row, _group_rules(session, [group_id])[group_id])

    def list_security_group_rules(self, security_group_id: str | None = None) -> list[dict[str, Any]]:
        query = select(_SecurityGroupRuleRow).order_by(_SecurityGroupRuleRow.key)
        if security_group_id is not None:
            query = query.where(_SecurityGroupRuleRow.security_group_id == security_group_id)
        with self._transaction(write=False) as session:
            return [_rule_dict(_rule(row)) for row in session.scalars(query)]

    def get_security_group_rule(self, rule_id: str) -> dict[str, Any]:
        with self._transaction(write=False) as session:
            return _rule_dict(_rule(_get(session, _SecurityGroupRuleRow, rule_id)))

    def delete_security_group_rule(self, rule_id: str) -> None:
        with self._transaction() as session:
            row = _get(session, _SecurityGroupRuleRow, rule_id)
            session.delete(row)
            _journal(session, "rule", row.id)

    # -- routers -------------------------------------------------------------------------------------

    def create_router(self, body: dict[str, Any]) -> dict[str, Any]:
        values = parse_body(RouterCreate, body)
        with self._transaction() as session:
            row = _RouterRow(id=str(uuid.uuid4()), name=values["name"])
            row.key = _take_zone(session, "router", row.id)
            row.mac_address = _router_mac(row.key)
            session.add(row)
            _set_gateway(session, row, values["external_gateway"])
            _set_routes(session, row, values["routes"])
            _journal(session, "router", row.id)
            return _router_dicts(session, [_router(session, row.id)])[0]

    def list_routers(self) -> list[dict[str, Any]]:
        with self._transaction(write=False) as session:
            return _router_dicts(session, list(_routers(session)))

    def get_router(self, router_id: str) -> dict[str, Any]:
        with self._transaction(write=False) as session:
            return _router_dicts(session, [_router(session, router_id)])[0]

    def update_router(self, router_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Name, external gateway and routes; routes not given must still reach their nexthops."""
        values = parse_body(RouterCreate, body, partial=True)
        with self._transaction() as session:
            row = _get(session, _RouterRow, router_id)
            row.name = values.get("name", row.name)
            if "external_gateway" in values:
                _set_gateway(session, row, values["external_gateway"])
            if "routes" in values:
                _set_routes(session, row, values["routes"])
            elif "external_gateway" in values:
                _check_routes_kept(session, row, "external_gateway")
            _journal(session, "router", row.id)
            return _router_dicts(session, [_router(session, row.id)])[0]

    def delete_router(self, router_id: str) -> None:
        """Only a router without interfaces, hence without floating IPs behind it (Neutron: RouterInUse); its
        gateway and routes go with it."""
        with self._transaction() as session:
            row = _get(session, _RouterRow, router_id)
            networks = session.scalars(select(_RouterInterfaceRow.network_id).where(
                _RouterInterfaceRow.router_id == row.id).order_by(_RouterInterfaceRow.created_at)).all()
            users = [("interface", f"its interface on network {network_id}") for network_id in networks]
            users += [("floating IP", f"floating IP {ident}") for ident in _floating_ips_behind(session, row.id)]
            if users:
                raise _in_use(f"router {router_id} is in use by", users)
            session.execute(delete(_RouteRow).where(_RouteRow.router_id == row.id))
            _free_zone(session, row.key)
            session.delete(row)
            _journal(session, "router", row.id)

    def add_router_interface(self, router_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The router joins a network at its gateway_ip: a network with one, not external, on no router yet."""
        values = parse_body(RouterInterfaceCreate, body)
        with self._transaction() as session:
            row = _get(session, _RouterRow, router_id)
            network = _get(session, _NetworkRow, values["network_id"], field="network_id")
            if network.external:  # Neutron answers a router port it refuses with a 400 too
                raise ApiError.invalid("network_id", f"network {network.id} is external: set it as the router's "
                                       "external_gateway instead")
            if network.gateway_ip is None:
                raise ApiError.conflict("network_id", f"network {network.id} has no gateway_ip for the router to take")
            holder = session.scalar(select(_RouterInterfaceRow.router_id).where(
                _RouterInterfaceRow.network_id == network.id))
            if holder is not None:
                raise ApiError.conflict("network_id", f"network {network.id} is already on router {holder}")
            _check_joining(session, row, network, "network_id")
            session.add(_RouterInterfaceRow(network_id=network.id, router_id=row.id))
            _journal(session, "router", row.id)
            return _router_dicts(session, [_router(session, row.id)])[0]

    def remove_router_interface(self, router_id: str, network_id: str) -> None:
        """Unless a floating IP maps to a port on the network through it or a route needs the network for its nexthop
        (Neutron: RouterInterfaceInUseByFloatingIP, RouterInterfaceInUseByRoute; 409s)."""
        with self._transaction() as session:
            row = _get(session, _RouterRow, router_id)
            interface = session.get(_RouterInterfaceRow, network_id)
            if interface is None or interface.router_id != row.id:
                raise ApiError.not_found(f"interface of router {router_id} on network", network_id, field="network_id")
            behind = _floating_ips_behind(session, row.id, network_id)
            if behind:
                raise ApiError.conflict("network_id", f"floating IP(s) {', '.join(behind)} map to ports or VIPs on "
                                        f"network {network_id} through it")
            session.delete(interface)
            _check_routes_kept(session, row, "network_id")
            stranded = _stranded_members(session, network_id)
            if stranded:
                raise _in_use(f"network_id: cannot detach network {network_id}: the VIP would no longer reach",
                              stranded, "network_id")
            _journal(session, "router", row.id)

    # -- floating IPs ---------------------------------------------------------------------------

    def create_floating_ip(self, body: dict[str, Any]) -> dict[str, Any]:
        values = parse_body(FloatingIpCreate, body)
        with self._transaction() as session:
            network = _external_network(session, values["network_id"], "network_id")
            row = _FloatingIPRow(id=str(uuid.uuid4()), network_id=network.id)
            if "floating_ip_address" in values:
                _check_address(session, network, values["floating_ip_address"], "floating_ip_address")
                row.address = values["floating_ip_address"]
            else:
                row.address = _free_address(session, network, "floating_ip_address")
            _map_floating_ip(session, row, values)
            session.add(row)
            _journal(session, "floating_ip", row.id)
            return _floating_ip_dict(session, row.id)

    def list_floating_ips(self, network_id: str | None = None, port_id: str | None = None,
                          load_balancer_id: str | None = None) -> list[dict[str, Any]]:
        where = [column == value for column, value in ((_FloatingIPRow.network_id, network_id),
                                                       (_FloatingIPRow.port_id, port_id),
                                                       (_FloatingIPRow.load_balancer_id, load_balancer_id))
                 if value is not None]
        with self._transaction(write=False) as session:
            return _floating_ip_dicts(session, list(_floating_ips(session, *where)))

    def get_floating_ip(self, floating_ip_id: str) -> dict[str, Any]:
        with self._transaction(write=False) as session:
            return _floating_ip_dict(session, floating_ip_id)

    def update_floating_ip(self, floating_ip_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Map it to another port or load balancer, or to none (the one it maps to given as null)."""
        values = parse_body(FloatingIpCreate, body, partial=True)
        with self._transaction() as session:
            row = _get(session, _FloatingIPRow, floating_ip_id)
            _map_floating_ip(session, row, values)
            _journal(session, "floating_ip", row.id)
            return _floating_ip_dict(session, row.id)

    def delete_floating_ip(self, floating_ip_id: str) -> None:
        with self._transaction() as session:
            row = _get(session, _FloatingIPRow, floating_ip_id)
            session.delete(row)
            _journal(session, "floating_ip", row.id)

    # -- load balancers ---------------------------------------------------------------------------

    def create_load_balancer(self, body: dict[str, Any]) -> dict[str, Any]:
        """A balancer with its members (each checked as add_lb_member does, and named members[i] when refused)."""
        values = parse_body(LoadBalancerCreate, body)
        _check_monitor(values["health_monitor"], "health_monitor")
        with self._transaction() as session:
            network = _get(session, _NetworkRow, values["network_id"], field="network_id")
            if network.external:
                raise ApiError.invalid("network_id", f"network {network.id} is external: a load balancer's VIP is on "
                                       "a tenant network (give it a floating IP to reach it from outside)")
            row = _LoadBalancerRow(id=str(uuid.uuid4()), name=values["name"], network_id=network.id,
                                   protocol=values["protocol"], port=values["port"], algorithm=values["algorithm"])
            if "vip_address" in values:
                _check_address(session, network, values["vip_address"], "vip_address")
                row.vip_address = values["vip_address"]
            else:
                row.vip_address = _free_address(session, network, "vip_address")
            row.key = _take_zone(session, "load_balancer", row.id)
            row.hairpin_key = _take_zone(session, "lb_hairpin", row.id)
            row.mac_address = _load_balancer_mac(row.key)
            port = session.scalar(select(_PortRow.id).where(_PortRow.network_id == network.id,
                                                            _PortRow.mac_address == row.mac_address))
            if port is not None:
                raise ApiError.conflict("network_id", f"port {port} on network {network.id} has the MAC "
                                        f"{row.mac_address} the load balancer would take")
            _set_monitor(row, values["health_monitor"])
            session.add(row)
            session.flush()
            _journal(session, "load_balancer", row.id)
            for i, member in enumerate(values["members"]):
                _add_member(session, row, member, f"members[{i}].")
            return _load_balancer_dict(session, row)

    def list_load_balancers(self, network_id: str | None = None) -> list[dict[str, Any]]:
        query = _ordered(_LoadBalancerRow)
        if network_id is not None:
            query = query.where(_LoadBalancerRow.network_id == network_id)
        with self._transaction(write=False) as session:
            rows = session.scalars(query).all()
            members = _member_rows(session, [row.id for row in rows] if network_id is not None else None)
            return [_load_balancer_dict(session, row, members[row.id]) for row in rows]

    def get_load_balancer(self, load_balancer_id: str) -> dict[str, Any]:
        with self._transaction(write=False) as session:
            return _load_balancer_dict(session, _get(session, _LoadBalancerRow, load_balancer_id))

    def update_load_balancer(self, load_balancer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Name, algorithm and health monitor (set, replaced, or removed with null). A balancer that gains a monitor
        has its members start ONLINE; one that loses it has them NO_MONITOR (DRAINING members stay DRAINING)."""
        values = parse_body(LoadBalancerCreate, body, partial=True)
        if "health_monitor" in values:
            _check_monitor(values["health_monitor"], "health_monitor")
        with self._transaction() as session:
            row = _get(session, _LoadBalancerRow, load_balancer_id)
            members = _member_rows(session, [row.id])[row.id]
            before = {member.id: _member_status(member, row) for member in members}
            row.name = values.get("name", row.name)
            row.algorithm = values.get("algorithm", row.algorithm)
            if "health_monitor" in values:
                if row.monitor_type is None:
                    for member in members:
                        member.health = "ONLINE"
                _set_monitor(row, values["health_monitor"])
            _journal(session, "load_balancer", row.id)
            for member in members:
                if _member_status(member, row) != before[member.id]:
                    member.status_changed_at = _now()
                    _journal(session, "lb_member", member.id)
            return _load_balancer_dict(session, row, members)

    def delete_load_balancer(self, load_balancer_id: str) -> None:
        """The balancer and its members; its zones are freed. A floating IP on its VIP stays, mapped to nothing (as
        Neutron does when the VIP's port goes, and as deleting a port does here)."""
        with self._transaction() as session:
            row = _get(session, _LoadBalancerRow, load_balancer_id)
            for floating_ip in session.scalars(select(_FloatingIPRow).where(
                    _FloatingIPRow.load_balancer_id == row.id)):
                floating_ip.load_balancer_id = None
                _journal(session, "floating_ip", floating_ip.id)
            for member in _member_rows(session, [row.id])[row.id]:
                session.delete(member)
                _journal(session, "lb_member", member.id)
            session.flush()
            _free_zone(session, row.key)
            if row.hairpin_key is not None:
                _free_zone(session, row.hairpin_key)
            session.delete(row)
            _journal(session, "load_balancer", row.id)

    def add_lb_member(self, load_balancer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        values = parse_body(LbMemberCreate, body)
        with self._transaction() as session:
            balancer = _get(session, _LoadBalancerRow, load_balancer_id)
            return _member_dict(_add_member(session, balancer, values, ""), balancer)

    def list_lb_members(self, load_balancer_id: str) -> list[dict[str, Any]]:
        with self._transaction(write=False) as session:
            balancer = _get(session, _LoadBalancerRow, load_balancer_id)
            return [_member_dict(member, balancer) for member in _member_rows(session, [balancer.id])[balancer.id]]

    def get_lb_member(self, load_balancer_id: str, member_id: str) -> dict[str, Any]:
        with self._transaction(write=False) as session:
            balancer, member = _balancer_member(session, load_balancer_id, member_id)
            return _member_dict(member, balancer)

    def update_lb_member(self, load_balancer_id: str, member_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Weight and admin_state_up: false drains the member (DRAINING), true makes it eligible again (ONLINE with a
        monitor, until a probe fails; NO_MONITOR without)."""
        values = parse_body(LbMemberCreate, body, partial=True)
        with self._transaction() as session:
            balancer, member = _balancer_member(session, load_balancer_id, member_id)
            before = _member_status(member, balancer)
            member.weight = values.get("weight", member.weight)
            if values.get("admin_state_up", member.admin_state_up) != member.admin_state_up:
                member.admin_state_up = values["admin_state_up"]
                member.health = "ONLINE"
            if _member_status(member, balancer) != before:
                member.status_changed_at = _now()
            _journal(session, "lb_member", member.id)
            return _member_dict(member, balancer)

    def delete_lb_member(self, load_balancer_id: str, member_id: str) -> None:
        with self._transaction() as session:
            _, member = _balancer_member(session, load_balancer_id, member_id)
            session.delete(member)
            _journal(session, "lb_member", member.id)

    def set_member_status(self, member_id: str, status: str, at: float) -> bool:
        """What the health checker found of a member at `at` (seconds since the epoch): ONLINE or OFFLINE (else a
        400). Returns whether its status changed, which is then journaled with `status_changed_at` = `at`; False, with
        nothing written, when it did not, when the member is gone, or when it is not monitored (its balancer has no
        monitor, or it is DRAINING: it starts ONLINE again when re-enabled)."""
        if status not in MEMBER_HEALTH:
            raise ApiError.invalid("status", f"must be one of {', '.join(MEMBER_HEALTH)}")
        with self._transaction() as session:
            member = session.get(_LbMemberRow, member_id)
            if member is None:
                return False
            balancer = session.get_one(_LoadBalancerRow, member.load_balancer_id)
            if _member_status(member, balancer) not in MEMBER_HEALTH or member.health == status:
                return False
            member.health, member.status_changed_at = status, datetime.fromtimestamp(at, UTC)
            _journal(session, "lb_member", member.id)
            return True

    # -- MAC bindings (learned by the controller, not through REST) -------------------------------

    def put_mac_binding(self, network_id: str, ip_address: str, mac_address: str, at: float) -> bool:
        """`ip_address` on the network answered from `mac_address` at `at` (seconds since the epoch).

        Returns whether the compiler must hear of it: a new binding or a new MAC is journaled; the same MAC again
        only moves `updated_at` (no journal entry). False, with nothing written, when the network is gone (it was
        deleted meanwhile); an address outside its cidr is a 400."""
        with self._transaction() as session:
            network = session.get(_NetworkRow, network_id)
            if network is None:
                return False
            if ipaddress.IPv4Address(ip_address) not in ipaddress.IPv4Network(network.cidr):
                raise ApiError.invalid("ip_address", f"{ip_address} is not inside {network.cidr}")
            when = datetime.fromtimestamp(at, UTC)
            row = session.get(_MacBindingRow, (network_id, ip_address))
            if row is None:
                row = _MacBindingRow(network_id=network_id, ip_address=ip_address, mac_address=mac_address)
                session.add(row)
            elif row.mac_address == mac_address:
                row.updated_at = when
                return False
            row.mac_address, row.updated_at = mac_address, when
            _journal(session, "mac_binding", f"{network_id}/{ip_address}")
            return True

    def delete_mac_binding(self, network_id: str, ip_address: str, unconfirmed_since: float | None = None) -> bool:
        """Forget a binding (journaled); with `unconfirmed_since`, only if it was not confirmed after that time (so
        an answer that came in meanwhile keeps it). Returns whether it went."""
        with self._transaction() as session:
            row = session.get(_MacBindingRow, (network_id, ip_address))
            if row is None or (unconfirmed_since is not None and _epoch(row.updated_at) > unconfirmed_since):
                return False
            session.delete(row)
            _journal(session, "mac_binding", f"{network_id}/{ip_address}")
            return True

    def mac_bindings(self, network_ids: list[str] | None = None) -> list[tuple[MacBinding, float]]:
        """Every binding (of those networks only, if given) with when it was last confirmed (seconds since the
        epoch), by network and address."""
        where = [] if network_ids is None else [_MacBindingRow.network_id.in_(network_ids)]
        with self._transaction(write=False) as session:
            rows = session.scalars(select(_MacBindingRow).where(*where)
                                   .order_by(_MacBindingRow.network_id, _MacBindingRow.ip_address))
            return [(MacBinding(row.network_id, row.ip_address, row.mac_address), _epoch(row.updated_at))
                    for row in rows]

    # -- what the compilers read ---------------------------------------------------------------

    def snapshot(self) -> Policy:
        """The whole policy (networks, ports, security groups, switch configs, routers, floating IPs, MAC bindings,
        load balancers with their members) as one consistent, immutable snapshot."""
        with self._transaction(write=False) as session:
            return Policy(networks=tuple(_networks(session)), ports=tuple(_ports(session)),
                          security_groups=tuple(_groups(session)), switches=tuple(_switch_configs(session)),
                          routers=tuple(_routers(session)), floating_ips=tuple(_floating_ips(session)),
                          mac_bindings=tuple(_mac_bindings(session)),
                          load_balancers=tuple(_load_balancers(session)))

    def revision(self) -> int:
        """The latest revision of the change journal (0: nothing ever changed)."""
        with self._transaction(write=False) as session:
            return session.scalar(select(func.max(_ChangeRow.revision))) or 0

    def changes_since(self, revision: int) -> tuple[int, set[tuple[str, str]]] | None:
        """(the latest revision, the (kind, id) of every object changed after `revision`); None when the
        journal no longer reaches back that far (then reload the snapshot)."""
        with self._transaction(write=False) as session:
            rows = session.execute(select(_ChangeRow.revision, _ChangeRow.kind, _ChangeRow.object_id)
                                   .where(_ChangeRow.revision > revision).order_by(_ChangeRow.revision)).all()
            if not rows:
                return revision, set()
            if rows[0].revision != revision + 1:
                oldest = session.scalar(select(func.min(_ChangeRow.revision)))
                if revision < (oldest or 0) - 1:
                    return None
            return rows[-1].revision, {(kind, object_id) for _, kind, object_id in rows}

    def objects(self, changed: set[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """The current model object of each (kind, id) (None: deleted), in one consistent read."""
        ids: dict[str, list[str]] = {}
        for kind, object_id in changed:
            ids.setdefault(kind, []).append(object_id)
        loaders = {"network": (_networks, _NetworkRow.id), "port": (_ports, _PortRow.id),
                   "group": (_groups, _SecurityGroupRow.id), "rule": (_rules, _SecurityGroupRuleRow.id),
                   "switch": (_switch_configs, _SwitchConfigRow.dpid), "router": (_routers, _RouterRow.id),
                   "floating_ip": (_floating_ips, _FloatingIPRow.id),
                   "mac_binding": (_mac_bindings, _MacBindingRow.network_id + "/" + _MacBindingRow.ip_address),
                   "load_balancer": (_load_balancers, _LoadBalancerRow.id), "lb_member": (_lb_members, _LbMemberRow.id)}
        found: dict[tuple[str, str], Any] = dict.fromkeys(changed)
        with self._transaction(write=False) as session:
            for kind, wanted in ids.items():
                load, column = loaders[kind]
                for obj in load(session, column.in_(wanted)):
                    found[(kind, obj.dpid if kind == "switch" else obj.id)] = obj
        return found

    # -- switch configuration --------------------------------------------------------------------

    def switch_configs(self) -> dict[str, dict[str, Any]]:
        """dpid -> the declared configuration of every switch that has one."""
        with self._transaction(write=False) as session:
            rows = session.scalars(select(_SwitchConfigRow))
            return {row.dpid: _switch_config_dict(_switch_config(row)) for row in rows}

    def update_switch(self, dpid: str, body: dict[str, Any]) -> dict[str, Any]:
        """Declare a switch's trunk interfaces (known to us or not yet); none may be bound to a port."""
        values = parse_body(SwitchUpdate, body)
        with self._transaction() as session:
            row = session.get(_SwitchConfigRow, dpid) or _SwitchConfigRow(dpid=dpid, trunk_ports=None)
            if "trunk_ports" in values:
                pins = values["trunk_ports"]
                if pins:
                    bound = session.execute(select(_PortRow.interface, _PortRow.id).where(
                        _PortRow.dpid == dpid, _PortRow.interface.in_(pins))).first()
                    if bound is not None:
                        raise ApiError.conflict("trunk_ports", f"{bound[0]} is bound to port {bound[1]}")
                    uplink = session.execute(select(_NetworkRow.uplink_interface, _NetworkRow.id).where(
                        _NetworkRow.uplink_dpid == dpid, _NetworkRow.uplink_interface.in_(pins))).first()
                    if uplink is not None:
                        raise ApiError.conflict("trunk_ports", f"{uplink[0]} is the uplink of network {uplink[1]}")
                row.trunk_ports = None if pins is None else json.dumps(pins)
            session.add(row)
            _journal(session, "switch", dpid)
            return _switch_config_dict(_switch_config(row))

    # -- last-known topology -------------------------------------------------------------------

    def save_switch(self, dpid: str, ports: list[SwitchPort]) -> None:
        """Remember a switch and replace its known ports."""
        with self._transaction() as session:
            session.merge(_SwitchRow(dpid=dpid))
            session.execute(delete(_SwitchPortRow).where(_SwitchPortRow.dpid == dpid))
            session.add_all(
                _SwitchPortRow(dpid=dpid, ofport=p.ofport, name=p.name, mac=p.mac, up=p.up) for p in ports
            )

    def load_switches(self) -> list[Switch]:
        with self._transaction(write=False) as session:
            ports: dict[str, list[SwitchPort]] = {}
            for p in session.scalars(select(_SwitchPortRow).order_by(_SwitchPortRow.ofport)):
                ports.setdefault(p.dpid, []).append(SwitchPort(p.name, p.ofport, p.mac, p.up))
            dpids = session.scalars(select(_SwitchRow.dpid).order_by(_SwitchRow.dpid)).all()
        return [Switch(dpid, tuple(ports.get(dpid, ()))) for dpid in dpids]

    def save_links(self, links: list[Link]) -> None:
        """Replace the known inter-switch links."""
        with self._transaction() as session:
            session.execute(delete(_LinkRow))
            session.add_all(
                _LinkRow(a_dpid=x.a_dpid, a_port=x.a_port, b_dpid=x.b_dpid, b_port=x.b_port) for x in set(links)
            )

    def load_links(self) -> list[Link]:
        with self._transaction(write=False) as session:
            rows = session.scalars(select(_LinkRow)).all()
            return sorted(Link(r.a_dpid, r.a_port, r.b_dpid, r.b_port) for r in rows)


def _networks(session: Session, *where: Any) -> Iterator[Network]:
    for row in session.scalars(_ordered(_NetworkRow).where(*where)):
        uplink = None if row.uplink_dpid is None else (row.uplink_dpid, row.uplink_interface)
        yield Network(row.id, row.name, row.cidr, row.gateway_ip, row.segmentation_id, row.external, uplink)


def _ports(session: Session, *where: Any) -> Iterator[Port]:
    rows = session.scalars(_ordered(_PortRow).where(*where)).all()
    groups = _port_groups(session, [row.id for row in rows] if where else None)
    for row in rows:
        yield Port(row.id, row.network_id, row.name, row.mac_address, row.ip_address, row.dpid, row.interface,
                   row.port_security_enabled, tuple(groups.get(row.id, ())), row.key, row.profile)


def _groups(session: Session, *where: Any) -> Iterator[SecurityGroup]:
    rows = session.scalars(_ordered(_SecurityGroupRow).where(*where)).all()
    rules = _group_rules(session, [row.id for row in rows] if where else None)
    for row in rows:
        yield SecurityGroup(row.id, row.name, tuple(rules[row.id]))


def _rules(session: Session, *where: Any) -> Iterator[SecurityGroupRule]:
    for row in session.scalars(select(_SecurityGroupRuleRow).where(*where)):
        yield _rule(row)


def _switch_configs(session: Session, *where: Any) -> Iterator[SwitchConfig]:
    for row in session.scalars(select(_SwitchConfigRow).where(*where).order_by(_SwitchConfigRow.dpid)):
        yield _switch_config(row)


def _routers(session: Session, *where: Any) -> Iterator[Router]:
    rows = session.scalars(_ordered(_RouterRow).where(*where)).all()
    of_these = [_RouterInterfaceRow.router_id.in_([row.id for row in rows])] if where else []
    interfaces: defaultdict[str, list[RouterInterface]] = defaultdict(list)
    for router_id, network_id, address in session.execute(
            select(_RouterInterfaceRow.router_id, _RouterInterfaceRow.network_id, _NetworkRow.gateway_ip)
            .join(_NetworkRow, _NetworkRow.id == _RouterInterfaceRow.network_id).where(*of_these)
            .order_by(_RouterInterfaceRow.created_at, _RouterInterfaceRow.network_id)):
        interfaces[router_id].append(RouterInterface(network_id, address))
    of_these = [_RouteRow.router_id.in_([row.id for row in rows])] if where else []
    routes: defaultdict[str, list[StaticRoute]] = defaultdict(list)
    for router_id, destination, nexthop in session.execute(
            select(_RouteRow.router_id, _RouteRow.destination, _RouteRow.nexthop).where(*of_these)
            .order_by(_RouteRow.router_id, _RouteRow.position)):
        routes[router_id].append(StaticRoute(destination, nexthop))
    for row in rows:
        gateway = (None if row.gateway_network_id is None
                   else RouterGateway(row.gateway_network_id, row.gateway_ip, row.enable_snat))
        yield Router(row.id, row.name, row.mac_address, row.key, tuple(interfaces[row.id]), gateway,
                     tuple(routes[row.id]))


def _router(session: Session, router_id: str) -> Router:
    _get(session, _RouterRow, router_id)
    return next(_routers(session, _RouterRow.id == router_id))


def _router_dicts(session: Session, routers: list[Router]) -> list[dict[str, Any]]:
    """The REST view: the model without its key (internal), its MAC as mac_address, and the next hops resolved on
    its external gateway's network (mac_bindings: [{ip_address, mac_address}], by address)."""
    bindings: defaultdict[str, list[dict[str, str]]] = defaultdict(list)
    networks = {router.gateway.network_id for router in routers if router.gateway is not None}
    for binding in _mac_bindings(session, _MacBindingRow.network_id.in_(networks)) if networks else ():
        bindings[binding.network_id].append({"ip_address": binding.ip_address, "mac_address": binding.mac_address})
    for shown in bindings.values():
        shown.sort(key=lambda binding: ipaddress.IPv4Address(binding["ip_address"]))
    return [{
        "id": router.id,
        "name": router.name,
        "external_gateway": None if router.gateway is None else asdict(router.gateway),
        "routes": [asdict(route) for route in router.routes],
        "interfaces": [asdict(interface) for interface in router.interfaces],
        "mac_address": router.mac,
        "mac_bindings": [] if router.gateway is None else bindings[router.gateway.network_id],
    } for router in routers]


def _floating_ips(session: Session, *where: Any) -> Iterator[FloatingIP]:
    for row in session.scalars(_ordered(_FloatingIPRow).where(*where)):
        yield FloatingIP(row.id, row.network_id, row.address, row.port_id, row.load_balancer_id)


def _floating_ip_dict(session: Session, floating_ip_id: str) -> dict[str, Any]:
    _get(session, _FloatingIPRow, floating_ip_id)
    return _floating_ip_dicts(session, list(_floating_ips(session, _FloatingIPRow.id == floating_ip_id)))[0]


def _floating_ip_dicts(session: Session, floating_ips: list[FloatingIP]) -> list[dict[str, Any]]:
    """The REST view: the model, its address as floating_ip_address, plus the address it maps to (fixed_ip_address:
    its port's, or its load balancer's VIP) and the router that maps it (router_id: the one with an interface on that
    address's network and its gateway on the floating IP's), both null when it maps to nothing."""
    targets = {port_id: (address, network_id) for port_id, address, network_id in session.execute(
        select(_PortRow.id, _PortRow.ip_address, _PortRow.network_id)
        .where(_PortRow.id.in_({f.port_id for f in floating_ips if f.port_id})))}
    targets |= {balancer_id: (address, network_id) for balancer_id, address, network_id in session.execute(
        select(_LoadBalancerRow.id, _LoadBalancerRow.vip_address, _LoadBalancerRow.network_id)
        .where(_LoadBalancerRow.id.in_({f.load_balancer_id for f in floating_ips if f.load_balancer_id})))}
    routers = {(network_id, external_id): router_id for network_id, external_id, router_id in session.execute(
        select(_RouterInterfaceRow.network_id, _RouterRow.gateway_network_id, _RouterRow.id)
        .join(_RouterRow, _RouterRow.id == _RouterInterfaceRow.router_id)
        .where(_RouterInterfaceRow.network_id.in_({network_id for _, network_id in targets.values()})))}
    shown = []
    for floating_ip in floating_ips:
        fixed_ip, network_id = targets.get(floating_ip.port_id or floating_ip.load_balancer_id or "", (None, None))
        shown.append({"id": floating_ip.id, "network_id": floating_ip.network_id,
                      "floating_ip_address": floating_ip.address, "port_id": floating_ip.port_id,
                      "load_balancer_id": floating_ip.load_balancer_id, "fixed_ip_address": fixed_ip,
                      "router_id": routers.get((network_id, floating_ip.network_id))})
    return shown


def _mac_bindings(session: Session, *where: Any) -> Iterator[MacBinding]:
    for row in session.scalars(select(_MacBindingRow).where(*where)
                               .order_by(_MacBindingRow.network_id, _MacBindingRow.ip_address)):
        yield MacBinding(row.network_id, row.ip_address, row.mac_address)


def _drop_mac_bindings(session: Session, network_id: str, keep: ipaddress.IPv4Network | None = None) -> None:
    """Delete the network's MAC bindings (those outside `keep`, if given), journaled: its flows must forget them
    too, which the database's cascade alone would not tell the compiler."""
    for row in session.scalars(select(_MacBindingRow).where(_MacBindingRow.network_id == network_id)):
        if keep is None or ipaddress.IPv4Address(row.ip_address) not in keep:
            session.delete(row)
            _journal(session, "mac_binding", f"{network_id}/{row.ip_address}")
    session.flush()


def _epoch(moment: datetime) -> float:
    """Seconds since the epoch of a stored time (SQLite gives it back without its UTC zone)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _open_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"cannot open database {url}: not a database URL") from exc
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        if not in_memory:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            # An in-memory database lives in its connection: share that one connection.
            **({"poolclass": StaticPool} if in_memory else {}),
        )
        event.listen(engine, "connect", _sqlite_pragmas if in_memory else _sqlite_file_pragmas)
        if not in_memory:
            # pysqlite leaves SELECTs outside any transaction; BEGIN ourselves, so that the reads of one
            # transaction see one snapshot (with WAL, while a writer is busy elsewhere).
            event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
    else:
        engine = create_engine(url, pool_pre_ping=True)
    with engine.connect():  # fail here, with a clear reason, rather than on the first request
        pass
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_file_pragmas(dbapi_connection: Any, record: Any) -> None:
    """A file database: write-ahead log (readers never wait for the writer), transactions begun by us."""
    dbapi_connection.isolation_level = None
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _migrate(engine: Engine) -> bool:
    """Bring the database to this schema: new tables, then new columns of old tables (backfilled).

    Returns whether ports exist from before security groups (see `_ensure_default_group`).
    """
    before = inspect(engine)
    tables = set(before.get_table_names())
    port_columns = {column["name"]: column for column in before.get_columns("ports")} if "ports" in tables else {}
    network_columns = {column["name"] for column in before.get_columns("networks")} if "networks" in tables else set()
    columns = {table: {column["name"] for column in before.get_columns(table)}
               for table in ("load_balancers", "floating_ips") if table in tables}
    _Base.metadata.create_all(engine)
    if "hairpin_key" not in columns.get("load_balancers", {"hairpin_key"}):
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE load_balancers ADD COLUMN hairpin_key INTEGER"))
        with Session(engine) as session, session.begin():
            for balancer in session.scalars(select(_LoadBalancerRow)):
                balancer.hairpin_key = _take_zone(session, "lb_hairpin", balancer.id)
        with engine.begin() as connection:
            for index in _LoadBalancerRow.__table__.indexes:
                index.create(connection, checkfirst=True)
    if "load_balancer_id" not in columns.get("floating_ips", {"load_balancer_id"}):
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE floating_ips ADD COLUMN load_balancer_id VARCHAR(36) "
                                    "REFERENCES load_balancers (id)"))
            for index in _FloatingIPRow.__table__.indexes:
                index.create(connection, checkfirst=True)
    if "networks" in tables and "uplink_dpid" not in network_columns:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE networks ADD COLUMN uplink_dpid VARCHAR(16)"))
            connection.execute(text("ALTER TABLE networks ADD COLUMN uplink_interface VARCHAR(15)"))
            for index in _NetworkRow.__table__.indexes:
                index.create(connection, checkfirst=True)
    if "ports" in tables and "key" not in port_columns:
        with engine.begin() as connection:
            column = connection.dialect.identifier_preparer.quote("key")
            connection.execute(text(f"ALTER TABLE ports ADD COLUMN {column} INTEGER"))
            ports = connection.scalars(select(_PortRow.id).order_by(_PortRow.created_at, _PortRow.id)).all()
            for key, port_id in zip(ZONES, ports, strict=False):
                connection.execute(_PortRow.__table__.update().where(_PortRow.id == port_id).values(key=key))
            for index in _PortRow.__table__.indexes:
                index.create(connection, checkfirst=True)
    if "ports" in tables and "profile" not in port_columns:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE ports ADD COLUMN profile INTEGER NOT NULL DEFAULT 0"))
        with Session(engine) as session, session.begin():
            groups = _port_groups(session)
            for port in session.scalars(select(_PortRow)):
                _assign_profile(session, port, groups.get(port.id, []))
    if "ports" in tables and "zones" not in tables:
        _migrate_port_keys_to_zones(engine, "freed_port_keys" in tables)
    if "ports" in tables and not port_columns["dpid"]["nullable"]:
        _migrate_optional_binding(engine)
    return "ports" in tables and "port_security_groups" not in tables


def _migrate_optional_binding(engine: Engine) -> None:
    """Ports' binding became optional (null: attached where OVSDB says): the columns lose NOT NULL. SQLite cannot
    alter a column, so its table is rebuilt (the documented way: a copy under the new schema, renamed in place)."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            for column in ("dpid", "interface"):
                connection.execute(text(f"ALTER TABLE ports ALTER COLUMN {column} DROP NOT NULL"))
        return
    table = _PortRow.__table__
    columns = ", ".join(engine.dialect.identifier_preparer.quote(column.name) for column in table.columns)
    create = str(CreateTable(table).compile(dialect=engine.dialect)).replace("CREATE TABLE ports ", "CREATE TABLE "
                                                                              "ports_new ", 1)
    indexes = [str(CreateIndex(index).compile(dialect=engine.dialect)) for index in table.indexes]
    raw = engine.raw_connection()  # the PRAGMA only works outside a transaction: no autobegin here
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")  # other tables' references to ports stay as written
        cursor.executescript(f"""BEGIN; {create}; INSERT INTO ports_new ({columns}) SELECT {columns} FROM ports;
                             DROP TABLE ports; ALTER TABLE ports_new RENAME TO ports; {'; '.join(indexes)}; COMMIT;""")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        raw.close()


def _migrate_port_keys_to_zones(engine: Engine, freed_table: bool) -> None:
    """Port keys become zones held by their ports (the ports keep them), the freed port keys freed zones, and the
    port keys' high-water mark the zones', so a zone a port had is not soon handed to a router either."""
    with engine.begin() as connection:
        connection.execute(_ZoneRow.__table__.insert().from_select(
            ["zone", "owner_kind", "owner_id"], select(_PortRow.key, literal("port"), _PortRow.id)))
        if freed_table:
            freed = table("freed_port_keys", column("key"), column("freed_at"))
            still_freed = select(freed.c.key, freed.c.freed_at).where(freed.c.key.not_in(select(_ZoneRow.zone)))
            connection.execute(_FreedZoneRow.__table__.insert().from_select(["zone", "freed_at"], still_freed))
            connection.execute(text("DROP TABLE freed_port_keys"))
        connection.execute(_CounterRow.__table__.update().where(_CounterRow.name == "port_key").values(name="zone"))


def _ordered(model: type[_Base]) -> Select[Any]:
    return select(model).order_by(model.created_at, model.id)


JOURNAL_KEEP = 10_000  # revisions the journal keeps; a reader further behind reloads everything


def _journal(session: Session, kind: str, object_id: str) -> None:
    """Record that a policy object changed (network, port, group, rule, switch config, router, floating IP, MAC
    binding)."""
    row = _ChangeRow(kind=kind, object_id=object_id)
    session.add(row)
    session.flush()
    if row.revision % 1000 == 0:
        session.execute(delete(_ChangeRow).where(_ChangeRow.revision <= row.revision - JOURNAL_KEEP))


def _get(session: Session, model: type[_Base], ident: str, field: str | None = None) -> Any:
    row = session.get(model, ident)
    if row is None:
        noun = getattr(model, "noun", None) or model.__tablename__[:-1].replace("_", " ")
        raise ApiError.not_found(noun, ident, field=field)
    return row


def _free_key(session: Session, column: Any, keys: range, field: str, after: int = 0) -> int:
    """The first value of `keys` that no row holds in `column`, searching from just after `after`
    and wrapping around. One SQL query over the column's index, not a scan of rows in Python."""
    start = max(after + 1, keys.start)
    for low, high in ((start, keys[-1]), (keys.start, start - 1)):
        if low > high:
            continue
        # The free value is `low` itself, or one past a held value that is not held itself.
        held = select(column.label("k")).where(column >= low, column < high)
        starts = union(select(literal(low - 1).label("k")), held).subquery()
        after_start = starts.c.k + 1
        found = session.scalar(select(func.min(after_start)).where(~exists().where(column == after_start)))
        if found is not None and found <= high:
            return found
    raise ApiError.conflict(field, f"none left: all of {keys.start}..{keys[-1]} are in use")


def _next_key(session: Session, counter_name: str, column: Any, keys: range, field: str) -> int:
    """The next free key after the last one handed out under `counter_name`, so a freed key is not
    reused until the whole range has gone round once."""
    counter = session.get(_CounterRow, counter_name) or _CounterRow(name=counter_name, value=0)
    counter.value = _free_key(session, column, keys, field, after=counter.value)
    session.add(counter)
    return counter.value


def _take_zone(session: Session, owner_kind: str, owner_id: str) -> int:
    """A zone for a new port or router: the next free one after the last handed out, so that a freed zone is not
    reused until the whole range has gone round (its connections are flushed meanwhile); taken, it is no longer
    a freed zone."""
    zone = _next_key(session, "zone", _ZoneRow.zone, ZONES, "key")
    session.add(_ZoneRow(zone=zone, owner_kind=owner_kind, owner_id=owner_id))
    session.execute(delete(_FreedZoneRow).where(_FreedZoneRow.zone == zone))
    session.flush()  # a second zone taken in this transaction must see this one (and the counter) taken
    return zone


def _free_zone(session: Session, zone: int) -> None:
    """Give back the zone of a port or router being deleted: it is flushed on every switch (see freed_zones)."""
    session.execute(delete(_ZoneRow).where(_ZoneRow.zone == zone))
    session.merge(_FreedZoneRow(zone=zone))


def _router_mac(key: int) -> str:
    """The MAC of the router with that key."""
    return f"{ROUTER_MAC_PREFIX}:{key >> 16 & 0xFF:02x}:{key >> 8 & 0xFF:02x}:{key & 0xFF:02x}"


def _address_holders(network_id: str) -> Subquery:
    """(address, kind, id) of everything holding an address on a network besides its gateway: its ports, the
    routers whose external gateway is on it, its floating IPs, its load balancers' VIPs."""
    return union_all(
        select(_PortRow.ip_address.label("address"), literal("port").label("kind"), _PortRow.id.label("id"))
        .where(_PortRow.network_id == network_id),
        select(_RouterRow.gateway_ip, literal("router"), _RouterRow.id)
        .where(_RouterRow.gateway_network_id == network_id),
        select(_FloatingIPRow.address, literal(_FloatingIPRow.noun), _FloatingIPRow.id)
        .where(_FloatingIPRow.network_id == network_id),
        select(_LoadBalancerRow.vip_address, literal(_LoadBalancerRow.noun), _LoadBalancerRow.id)
        .where(_LoadBalancerRow.network_id == network_id),
    ).subquery()


def _check_address(session: Session, network: _NetworkRow, address: str, field: str,
                   own: tuple[str, str] | None = None) -> None:
    """`address` may be held on the network by `own` (kind, id): 400 outside its cidr or on its network or
    broadcast address, 409 on its gateway or on an address anything else holds."""
    cidr = ipaddress.IPv4Network(network.cidr)
    if ipaddress.IPv4Address(address) not in cidr:
        raise ApiError.invalid(field, f"{address} is not inside {cidr}")
    if ipaddress.IPv4Address(address) in (cidr.network_address, cidr.broadcast_address):
        raise ApiError.invalid(field, f"{address} is the network or broadcast address of {cidr}")
    if address == network.gateway_ip:
        raise ApiError.conflict(field, f"{address} is the gateway of network {network.id}")
    holder = _address_holder(session, network.id, address, own)
    if holder is not None:
        raise ApiError.conflict(field, f"{address} is already used by {holder}")


def _address_holder(session: Session, network_id: str, address: str, own: tuple[str, str] | None = None
                    ) -> str | None:
    """What holds `address` on the network ("port ID", "router ID", ...) other than `own` (kind, id); None: nothing."""
    holders = _address_holders(network_id)
    query = select(holders.c.kind, holders.c.id).where(holders.c.address == address)
    if own is not None:
        query = query.where(~and_(holders.c.kind == own[0], holders.c.id == own[1]))
    found = session.execute(query).first()
    return None if found is None else f"{found.kind} {found.id}"


def _free_address(session: Session, network: _NetworkRow, field: str) -> str:
    """The lowest address of the network that nothing holds (its gateway included)."""
    holders = _address_holders(network.id)
    used = {network.gateway_ip, *session.scalars(select(holders.c.address))}
    for host in ipaddress.IPv4Network(network.cidr).hosts():
        if str(host) not in used:
            return str(host)
    raise ApiError.conflict(field, f"no address of {network.cidr} (network {network.id}) is free")


def _network_users(session: Session, network_id: str) -> list[tuple[str, str]]:
    """(kind, "kind id") of everything that keeps a network from going or from changing its cidr: what holds an
    address on it and the router with an interface on it."""
    holders = _address_holders(network_id)
    found = session.execute(select(holders.c.kind, holders.c.id)).all()
    router = session.scalar(select(_RouterInterfaceRow.router_id).where(_RouterInterfaceRow.network_id == network_id))
    return [(kind, f"{kind} {ident}") for kind, ident in (found if router is None else [*found, ("router", router)])]


def _in_use(message: str, users: list[tuple[str, str]], field: str = "id") -> ApiError:
    """409 because `users` (kind, description) need an object: `message` ("network ID is in use by") goes on with
    how many of each kind ("2 port(s) and 1 router(s)"), and a detail names each."""
    counted = " and ".join(f"{n} {kind}(s)" for kind, n in Counter(kind for kind, _ in users).items())
    return ApiError(409, f"{message} {counted}",
                    [{"field": field, "message": f"used by {description}"} for _, description in users])


def _check_gateway_free(session: Session, network: _NetworkRow, gateway: str | None) -> None:
    """A network's new gateway_ip: not while a router holds the old one (its interface), not an address in use."""
    router = session.scalar(select(_RouterInterfaceRow.router_id).where(_RouterInterfaceRow.network_id == network.id))
    if router is not None:
        raise ApiError.conflict("gateway_ip", f"cannot change: router {router} has its interface on network "
                                f"{network.id} at {network.gateway_ip}")
    holder = None if gateway is None else _address_holder(session, network.id, gateway)
    if holder is not None:
        raise ApiError.conflict("gateway_ip", f"{gateway} is already used by {holder}")


def _check_external_change(session: Session, network: _NetworkRow, external: bool) -> None:
    """A network turns external (not while a router has an interface on it) or internal (not while a router has its
    external gateway on it or it has floating IPs)."""
    if not external:
        holders = _address_holders(network.id)
        user = session.execute(select(holders.c.kind, holders.c.id).where(holders.c.kind != "port")).first()
        if user is not None:
            raise ApiError.conflict("external", f"network {network.id} is the external network of {user.kind} "
                                    f"{user.id}")
    else:
        router = session.scalar(select(_RouterInterfaceRow.router_id).where(
            _RouterInterfaceRow.network_id == network.id))
        if router is not None:
            raise ApiError.conflict("external", f"router {router} has an interface on network {network.id}")
        balancer = session.scalar(select(_LoadBalancerRow.id).where(_LoadBalancerRow.network_id == network.id))
        if balancer is not None:
            raise ApiError.conflict("external", f"load balancer {balancer} has its VIP on network {network.id}")


def _routers_on(network_id: str) -> Any:
    """The condition on _RouterRow of having an interface or the external gateway on the network."""
    return or_(_RouterRow.gateway_network_id == network_id, _RouterRow.id.in_(
        select(_RouterInterfaceRow.router_id).where(_RouterInterfaceRow.network_id == network_id)))


def _legs(session: Session, router: _RouterRow) -> list[tuple[_NetworkRow, str]]:
    """The networks the router is on, each with its address there: its interfaces' (their gateway_ip) and its
    external gateway's."""
    legs = [(network, network.gateway_ip) for network in session.scalars(
        select(_NetworkRow).join(_RouterInterfaceRow, _RouterInterfaceRow.network_id == _NetworkRow.id)
        .where(_RouterInterfaceRow.router_id == router.id))]
    if router.gateway_network_id is not None:
        legs.append((session.get_one(_NetworkRow, router.gateway_network_id), router.gateway_ip))
    return legs


def _check_joining(session: Session, router: _RouterRow, network: _NetworkRow, field: str) -> None:
    """A network the router joins (an interface or its gateway) overlaps none of the router's other networks (it
    could not tell them apart), and no port on it has the router's MAC."""
    cidr = ipaddress.IPv4Network(network.cidr)
    for other, _ in _legs(session, router):
        if other.id != network.id and cidr.overlaps(ipaddress.IPv4Network(other.cidr)):
            raise ApiError.conflict(field, f"{network.cidr} of network {network.id} overlaps {other.cidr} of network "
                                    f"{other.id}, which router {router.id} is on")
    port = session.scalar(select(_PortRow.id).where(_PortRow.network_id == network.id,
                                                    _PortRow.mac_address == router.mac_address))
    if port is not None:
        raise ApiError.conflict(field, f"port {port} on network {network.id} has the router's MAC {router.mac_address}")


def _external_network(session: Session, network_id: str, field: str) -> _NetworkRow:
    """An external network (404 unknown, 400 not external, as Neutron answers both)."""
    network = _get(session, _NetworkRow, network_id, field=field)
    if not network.external:
        raise ApiError.invalid(field, f"network {network.id} is not external")
    return network


def _set_gateway(session: Session, router: _RouterRow, gateway: dict[str, Any] | None) -> None:
    """Give the router `gateway` (None: none), checked. Its address stays when its network does and no other is
    asked for; on another network it is the lowest free unless one is asked for."""
    old_network, old_address = router.gateway_network_id, router.gateway_ip
    if gateway is None or gateway["network_id"] != old_network:
        behind = _floating_ips_behind(session, router.id)
        if behind:  # Neutron: RouterExternalGatewayInUseByFloatingIp
            raise ApiError.conflict("external_gateway", f"floating IP(s) {', '.join(behind)} map to ports or VIPs "
                                    "through it")
        router.gateway_network_id = router.gateway_ip = None
    if gateway is None:
        return
    network = _external_network(session, gateway["network_id"], "external_gateway.network_id")
    if network.id != old_network:
        _check_joining(session, router, network, "external_gateway.network_id")
    if "ip_address" in gateway:
        _check_address(session, network, gateway["ip_address"], "external_gateway.ip_address", ("router", router.id))
        address = gateway["ip_address"]
    elif network.id == old_network:
        address = old_address
    else:
        address = _free_address(session, network, "external_gateway.ip_address")
    router.gateway_network_id, router.gateway_ip, router.enable_snat = network.id, address, gateway["enable_snat"]


def _floating_ips_behind(session: Session, router_id: str, network_id: str | None = None) -> list[str]:
    """The floating IPs that map to ports or VIPs through the router: on its gateway's network, their ports or load
    balancers on a network it has an interface on (only `network_id`, if given)."""
    behind: list[str] = []
    for target, target_id in ((_PortRow, _FloatingIPRow.port_id), (_LoadBalancerRow, _FloatingIPRow.load_balancer_id)):
        query = (select(_FloatingIPRow.id, _FloatingIPRow.created_at)
                 .join(target, target.id == target_id)
                 .join(_RouterInterfaceRow, _RouterInterfaceRow.network_id == target.network_id)
                 .join(_RouterRow, _RouterRow.id == _RouterInterfaceRow.router_id)
                 .where(_RouterRow.id == router_id, _FloatingIPRow.network_id == _RouterRow.gateway_network_id))
        if network_id is not None:
            query = query.where(target.network_id == network_id)
        behind += session.execute(query).all()
    return [ident for ident, _ in sorted(behind, key=lambda row: (row[1], row[0]))]


def _map_floating_ip(session: Session, floating_ip: _FloatingIPRow, values: dict[str, Any]) -> None:
    """Map a floating IP as `values` say: to the port or the load balancer given (not both: 400; the other is
    unmapped), or, given null, no longer to that one."""
    targets = {"port_id": _PortRow, "load_balancer_id": _LoadBalancerRow}
    given = [name for name in targets if values.get(name) is not None]
    if len(given) > 1:
        raise ApiError.invalid("load_balancer_id", "a floating IP maps to a port_id or a load_balancer_id, not both")
    for name in given:
        _check_floating_target(session, floating_ip, targets[name], name, values[name])
    for name in targets:
        if name in values:
            setattr(floating_ip, name, values[name])
        elif given:
            setattr(floating_ip, name, None)


def _check_floating_target(session: Session, floating_ip: _FloatingIPRow, kind: type[_PortRow | _LoadBalancerRow],
                           field: str, target_id: str) -> None:
    """The port or load balancer a floating IP is to map to: it exists (404), is on no external network, has no other
    floating IP, and a router joins its network to the floating IP's (409s naming `field`)."""
    target = _get(session, kind, target_id, field=field)
    noun = "port" if kind is _PortRow else "load balancer"
    if session.get_one(_NetworkRow, target.network_id).external:
        raise ApiError.conflict(field, f"{noun} {target.id} is on external network {target.network_id}")
    column = getattr(_FloatingIPRow, field)
    holder = session.scalar(select(_FloatingIPRow.id).where(column == target.id, _FloatingIPRow.id != floating_ip.id))
    if holder is not None:
        raise ApiError.conflict(field, f"{noun} {target.id} already has floating IP {holder}")
    router = session.scalar(select(_RouterRow.id).where(_RouterRow.id == _RouterInterfaceRow.router_id,
                                                        _RouterInterfaceRow.network_id == target.network_id,
                                                        _RouterRow.gateway_network_id == floating_ip.network_id))
    if router is None:
        raise ApiError.conflict(field, f"no router has an interface on network {target.network_id} of {noun} "
                                f"{target.id} and its gateway on network {floating_ip.network_id}")


def _route_problem(nexthop: str, legs: list[tuple[_NetworkRow, str]]) -> str | None:
    """Why a router with these legs cannot send to `nexthop` (its own address, or on none of its networks)."""
    if any(nexthop == own for _, own in legs):
        return f"{nexthop} is the router's own address"
    if not any(ipaddress.IPv4Address(nexthop) in ipaddress.IPv4Network(network.cidr) for network, _ in legs):
        return f"{nexthop} is on none of the router's networks"
    return None


def _set_routes(session: Session, router: _RouterRow, routes: list[dict[str, str]]) -> None:
    """Replace the router's routes: none twice (Neutron: duplicate host routes are a 400), each nexthop on one of
    its networks and not its own address (a 400 naming routes[i].nexthop)."""
    legs = _legs(session, router)
    seen: dict[tuple[str, str], int] = {}
    for i, route in enumerate(routes):
        same = (route["destination"], route["nexthop"])
        if same in seen:
            raise ApiError.invalid(f"routes[{i}]", f"the same route as routes[{seen[same]}]")
        seen[same] = i
        problem = _route_problem(route["nexthop"], legs)
        if problem is not None:
            raise ApiError.invalid(f"routes[{i}].nexthop", problem)
    session.execute(delete(_RouteRow).where(_RouteRow.router_id == router.id))
    session.add_all(_RouteRow(router_id=router.id, position=i, destination=route["destination"],
                              nexthop=route["nexthop"]) for i, route in enumerate(routes))


def _check_routes_kept(session: Session, router: _RouterRow, field: str) -> None:
    """After the router left a network (or moved its gateway), its routes still reach their nexthops: else a 409
    naming `field` (Neutron: RouterInterfaceInUseByRoute)."""
    legs = _legs(session, router)
    for destination, nexthop in session.execute(select(_RouteRow.destination, _RouteRow.nexthop).where(
            _RouteRow.router_id == router.id).order_by(_RouteRow.position)):
        problem = _route_problem(nexthop, legs)
        if problem is not None:
            raise ApiError.conflict(field, f"the route to {destination} via {nexthop} would no longer work: {problem} "
                                    "(change the routes first)")


def _check_gateway(cidr: ipaddress.IPv4Network, gateway: str | None) -> None:
    if gateway is None:
        return
    address = ipaddress.IPv4Address(gateway)
    if address not in cidr:
        raise ApiError.invalid("gateway_ip", f"{gateway} is not inside {cidr}")
    if address in (cidr.network_address, cidr.broadcast_address):
        raise ApiError.invalid("gateway_ip", f"{gateway} is the network or broadcast address of {cidr}")


def _check_segmentation_id_free(session: Session, segmentation_id: int, own_id: str | None) -> None:
    holder = session.scalar(select(_NetworkRow.id).where(_NetworkRow.segmentation_id == segmentation_id))
    if holder is not None and holder != own_id:
        raise ApiError.conflict("segmentation_id", f"{segmentation_id} is already used by network {holder}")


def _check_port(session: Session, network: _NetworkRow, port: _PortRow) -> None:
    """The port's address fits its network and nothing else holds its MAC (a router's on the network included), IP
    or interface."""
    _check_address(session, network, port.ip_address, "ip_address", ("port", port.id))
    others = select(_PortRow.id).where(_PortRow.id != port.id)
    in_network = others.where(_PortRow.network_id == network.id)
    routers_here = select(_RouterRow.id).where(_routers_on(network.id))
    binding = f"{port.dpid}/{port.interface}"
    bound = port.dpid is not None
    clashes = (
        ("mac_address", in_network.where(_PortRow.mac_address == port.mac_address),
         f"{port.mac_address} is already used by port"),
        ("mac_address", routers_here.where(_RouterRow.mac_address == port.mac_address),
         f"{port.mac_address} is the MAC of router"),
        ("mac_address", select(_LoadBalancerRow.id).where(_LoadBalancerRow.network_id == network.id,
                                                          _LoadBalancerRow.mac_address == port.mac_address),
         f"{port.mac_address} is the MAC of load balancer"),
        ("binding", others.where(_PortRow.dpid == port.dpid, _PortRow.interface == port.interface),
         f"{binding} is already used by port"),
        ("binding", _uplink_holder(port.dpid, port.interface), f"{binding} is the uplink of network"),
    )
    for name, query, clash in clashes:
        if name == "binding" and not bound:
            continue
        holder = session.scalar(query)
        if holder is not None:
            raise ApiError.conflict(name, f"{clash} {holder}")
    if bound and port.interface in _trunk_ports(session, port.dpid):
        raise ApiError.conflict("binding", f"{port.interface} is a trunk port of switch {port.dpid}")


def _trunk_ports(session: Session, dpid: str) -> list[str]:
    """The interfaces a switch pins as its trunks ([] when it pins none)."""
    config = session.get(_SwitchConfigRow, dpid)
    return json.loads(config.trunk_ports) if config is not None and config.trunk_ports else []


def _uplink_holder(dpid: str, interface: str) -> Select[Any]:
    """The network whose uplink is that interface."""
    return select(_NetworkRow.id).where(_NetworkRow.uplink_dpid == dpid, _NetworkRow.uplink_interface == interface)


def _uplink(network: _NetworkRow) -> dict[str, str] | None:
    return None if network.uplink_dpid is None else {"dpid": network.uplink_dpid, "interface": network.uplink_interface}


def _set_uplink(session: Session, network: _NetworkRow, uplink: dict[str, str] | None, field: str) -> None:
    """Give the network `uplink` (None: none), checked: only an external network has one (else a 409 naming
    `field`), and its interface carries nothing else: no port, no pinned trunk, no other network's uplink."""
    if uplink is None:
        network.uplink_dpid = network.uplink_interface = None
        return
    dpid, interface = uplink["dpid"], uplink["interface"]
    if not network.external:
        raise ApiError.conflict(field, f"only an external network has an uplink (network {network.id} is not)")
    port = session.scalar(select(_PortRow.id).where(_PortRow.dpid == dpid, _PortRow.interface == interface))
    if port is not None:
        raise ApiError.conflict("uplink", f"{dpid}/{interface} is bound to port {port}")
    other = session.scalar(_uplink_holder(dpid, interface).where(_NetworkRow.id != network.id))
    if other is not None:
        raise ApiError.conflict("uplink", f"{dpid}/{interface} is the uplink of network {other}")
    if interface in _trunk_ports(session, dpid):
        raise ApiError.conflict("uplink", f"{interface} is a trunk port of switch {dpid}")
    network.uplink_dpid, network.uplink_interface = dpid, interface


def _check_port_groups(session: Session, port: _PortRow, group_ids: list[str], field: str) -> None:
    """The groups exist, and a port with port security off has none (Neutron refuses that too)."""
    found = set(session.scalars(select(_SecurityGroupRow.id).where(_SecurityGroupRow.id.in_(group_ids))))
    for group_id in group_ids:
        if group_id not in found:
            raise ApiError.not_found("security group", group_id, field=field)
    if group_ids and not port.port_security_enabled:
        raise ApiError.conflict(
            field, "port security is disabled and security groups are set (set security_group_ids to [] as well)"
        )


def _port_groups(session: Session, port_ids: list[str] | None = None) -> dict[str, list[str]]:
    """Port id -> its security group ids in order (ports without groups are absent); of every port by default."""
    query = select(_PortSecurityGroupRow.port_id, _PortSecurityGroupRow.security_group_id).order_by(
        _PortSecurityGroupRow.port_id, _PortSecurityGroupRow.position
    )
    if port_ids is not None:
        query = query.where(_PortSecurityGroupRow.port_id.in_(port_ids))
    groups: dict[str, list[str]] = {}
    for owner, group_id in session.execute(query):
        groups.setdefault(owner, []).append(group_id)
    return groups


def _set_port_groups(session: Session, port: _PortRow, group_ids: list[str]) -> None:
    """The port's groups, in order, and the profile of that set."""
    session.execute(delete(_PortSecurityGroupRow).where(_PortSecurityGroupRow.port_id == port.id))
    session.add_all(
        _PortSecurityGroupRow(port_id=port.id, security_group_id=group_id, position=position)
        for position, group_id in enumerate(group_ids)
    )
    _assign_profile(session, port, group_ids)


def _assign_profile(session: Session, port: _PortRow, group_ids: list[str]) -> None:
    """The number of the port's set of groups, handed out the first time any port has that set."""
    if not port.port_security_enabled:
        port.profile = 0
        return
    groups = ",".join(sorted(set(group_ids)))
    key = session.scalar(select(_ProfileRow.key).where(_ProfileRow.groups == groups))
    if key is None:
        key = _next_key(session, "profile_key", _ProfileRow.key, PROFILE_KEYS, "security_group_ids")
        session.add(_ProfileRow(key=key, groups=groups))
    port.profile = key


def _group_rules(session: Session, group_ids: list[str] | None = None) -> defaultdict[str, list[SecurityGroupRule]]:
    """Group id -> its rules in key order (a group without rules maps to []); of every group by default."""
    query = select(_SecurityGroupRuleRow).order_by(_SecurityGroupRuleRow.key)
    if group_ids is not None:
        query = query.where(_SecurityGroupRuleRow.security_group_id.in_(group_ids))
    rules: defaultdict[str, list[SecurityGroupRule]] = defaultdict(list)
    for row in session.scalars(query):
        rules[row.security_group_id].append(_rule(row))
    return rules


def _add_group(session: Session, name: str, description: str) -> str:
    """A new group holding Neutron's one initial rule: egress, any protocol, anywhere."""
    row = _SecurityGroupRow(id=str(uuid.uuid4()), name=name, description=description)
    session.add(row)
    session.flush()
    _journal(session, "group", row.id)
    _add_rule(session, _rule_values(row.id, "egress"))
    return row.id


def _rule_values(
    security_group_id: str,
    direction: str,
    protocol: str | None = None,
    port_range_min: int | None = None,
    port_range_max: int | None = None,
    remote_ip_prefix: str | None = None,
    remote_group_id: str | None = None,
) -> dict[str, Any]:
    """A rule's stored columns, cross-field checked; one port bound alone means that one port (Neutron)."""
    if port_range_min is not None or port_range_max is not None:
        if protocol not in PORTED_PROTOCOLS:
            given = "port_range_min" if port_range_min is not None else "port_range_max"
            raise ApiError.invalid(given, f"only for protocol {' or '.join(PORTED_PROTOCOLS)}, not {protocol}")
        port_range_min = port_range_max if port_range_min is None else port_range_min
        port_range_max = port_range_min if port_range_max is None else port_range_max
        if port_range_min > port_range_max:
            raise ApiError.invalid("port_range_min", f"{port_range_min} is above port_range_max {port_range_max}")
    if remote_ip_prefix is not None and remote_group_id is not None:
        raise ApiError.invalid("remote_group_id", "cannot be combined with remote_ip_prefix")
    return {
        "security_group_id": security_group_id,
        "direction": direction,
        "protocol": protocol,
        "port_range_min": port_range_min,
        "port_range_max": port_range_max,
        "remote_ip_prefix": remote_ip_prefix,
        "remote_group_id": remote_group_id,
    }


_RULE_COLUMNS = tuple(_rule_values("", "ingress"))  # a rule's stored columns, in _rule_values' order


def _add_rule(session: Session, values: dict[str, Any]) -> _SecurityGroupRuleRow:
    """Store a rule under a fresh key: a deleted rule's conjunction id is not soon reused."""
    key = _next_key(session, "security_group_rule_key", _SecurityGroupRuleRow.key, RULE_KEYS, "key")
    row = _SecurityGroupRuleRow(id=str(uuid.uuid4()), key=key, **values)
    session.add(row)
    session.flush()
    _journal(session, "rule", row.id)
    return row


# ---------------------------------------------------------------------------------------------
# Load balancers.


def _load_balancer_mac(key: int) -> str:
    """The MAC of the load balancer with that key: never a router's (theirs are fa:16:3f:00:.. for keys < 2**16)."""
    return f"{LOAD_BALANCER_MAC_PREFIX}:{key >> 8 & 0xFF:02x}:{key & 0xFF:02x}"


def _check_monitor(monitor: dict[str, Any] | None, field: str) -> None:
    """A probe cannot wait longer than the interval between probes (Octavia: delay >= timeout)."""
    if monitor is not None and monitor["timeout_s"] > monitor["interval_s"]:
        raise ApiError.invalid(f"{field}.timeout_s", f"{monitor['timeout_s']:g} is longer than interval_s "
                               f"{monitor['interval_s']:g}")


def _set_monitor(row: _LoadBalancerRow, monitor: dict[str, Any] | None) -> None:
    monitor = monitor or {}
    row.monitor_type, row.monitor_interval_s = monitor.get("type"), monitor.get("interval_s")
    row.monitor_timeout_s, row.monitor_max_retries = monitor.get("timeout_s"), monitor.get("max_retries")


def _monitor(row: _LoadBalancerRow) -> HealthMonitor | None:
    if row.monitor_type is None:
        return None
    return HealthMonitor(row.monitor_type, row.monitor_interval_s, row.monitor_timeout_s, row.monitor_max_retries)


def _member_status(member: _LbMemberRow, balancer: _LoadBalancerRow) -> str:
    """DRAINING when disabled, else NO_MONITOR without a monitor, else what the monitor last found."""
    if not member.admin_state_up:
        return "DRAINING"
    return "NO_MONITOR" if balancer.monitor_type is None else member.health


def _reachable_networks(session: Session, network_id: str) -> list[str]:
    """The networks a VIP on `network_id` reaches: its own and those a router joins to it (by their interfaces)."""
    mine = aliased(_RouterInterfaceRow)
    return [network_id, *session.scalars(
        select(_RouterInterfaceRow.network_id).join(mine, mine.router_id == _RouterInterfaceRow.router_id)
        .where(mine.network_id == network_id, _RouterInterfaceRow.network_id != network_id))]


def _add_member(session: Session, balancer: _LoadBalancerRow, values: dict[str, Any], prefix: str) -> _LbMemberRow:
    """A new member, checked (fields named after `prefix`: "members[i]." or ""): 400 unless its address is a port's
    on a network the VIP reaches, 409 when a balancer of its protocol has a member at that address and port already."""
    address, number = values["ip_address"], values["port"]
    port = session.scalar(select(_PortRow.id).where(
        _PortRow.ip_address == address, _PortRow.network_id.in_(_reachable_networks(session, balancer.network_id))))
    if port is None:
        raise ApiError.invalid(f"{prefix}ip_address", f"{address} is a member address no port has on a network the "
                               f"VIP can reach (network {balancer.network_id} and those a router joins to it)")
    # One backend address:port serves one balancer per protocol: its replies are given back their VIP in that
    # balancer's zone, which nothing in a reply tells apart from another's (apps.load_balancing).
    same = session.execute(select(_LbMemberRow.id, _LbMemberRow.load_balancer_id)
                           .join(_LoadBalancerRow, _LoadBalancerRow.id == _LbMemberRow.load_balancer_id).where(
        _LbMemberRow.ip_address == address, _LbMemberRow.port == number,
        _LoadBalancerRow.protocol == balancer.protocol)).first()
    if same is not None:
        raise ApiError.conflict(prefix.rstrip(".") or "ip_address",
                                f"{address}:{number} is already member {same[0]} of load balancer {same[1]}")
    key = _next_key(session, "lb_member_key", _LbMemberRow.key, MEMBER_KEYS, "key")
    member = _LbMemberRow(id=str(uuid.uuid4()), load_balancer_id=balancer.id, port_id=port, ip_address=address,
                          port=number, weight=values["weight"], admin_state_up=values["admin_state_up"],
                          health="ONLINE", key=key, status_changed_at=_now(), created_at=_now())
    session.add(member)
    session.flush()
    _journal(session, "lb_member", member.id)
    return member


def _balancer_member(session: Session, load_balancer_id: str, member_id: str) -> tuple[_LoadBalancerRow, _LbMemberRow]:
    """A balancer and one of its members (404 for an unknown balancer, or a member that is not one of its own)."""
    balancer = _get(session, _LoadBalancerRow, load_balancer_id)
    member = session.get(_LbMemberRow, member_id)
    if member is None or member.load_balancer_id != balancer.id:
        raise ApiError.not_found(f"member of load balancer {load_balancer_id}", member_id)
    return balancer, member


def _member_rows(session: Session, load_balancer_ids: list[str] | None = None) -> defaultdict[str, list[_LbMemberRow]]:
    """Balancer id -> its members in the order they were made (their keys'); of every balancer by default."""
    query = select(_LbMemberRow).order_by(_LbMemberRow.key)
    if load_balancer_ids is not None:
        query = query.where(_LbMemberRow.load_balancer_id.in_(load_balancer_ids))
    members: defaultdict[str, list[_LbMemberRow]] = defaultdict(list)
    for member in session.scalars(query):
        members[member.load_balancer_id].append(member)
    return members


def _port_members(session: Session, port_id: str) -> list[tuple[str, str]]:
    """(kind, description) of the members that are the port, for _in_use."""
    return [("load balancer member", f"member {member} of load balancer {balancer}")
            for member, balancer in session.execute(
                select(_LbMemberRow.id, _LbMemberRow.load_balancer_id).where(_LbMemberRow.port_id == port_id)
                .order_by(_LbMemberRow.key))]


def _stranded_members(session: Session, network_id: str) -> list[tuple[str, str]]:
    """(kind, description) of the members on another network than their VIP's, one of them `network_id`, that no
    router joins to it any longer."""
    vip_side, member_side = aliased(_RouterInterfaceRow), aliased(_RouterInterfaceRow)
    joined = exists().where(vip_side.network_id == _LoadBalancerRow.network_id,
                            member_side.network_id == _PortRow.network_id, member_side.router_id == vip_side.router_id)
    rows = session.execute(
        select(_LbMemberRow.id, _LbMemberRow.load_balancer_id)
        .join(_LoadBalancerRow, _LoadBalancerRow.id == _LbMemberRow.load_balancer_id)
        .join(_PortRow, _PortRow.id == _LbMemberRow.port_id)
        .where(_PortRow.network_id != _LoadBalancerRow.network_id,
               or_(_PortRow.network_id == network_id, _LoadBalancerRow.network_id == network_id), ~joined)
        .order_by(_LbMemberRow.key))
    return [("load balancer member", f"member {member} of load balancer {balancer}") for member, balancer in rows]


def _lb_member(member: _LbMemberRow, balancer: _LoadBalancerRow) -> LbMember:
    return LbMember(member.id, member.load_balancer_id, member.ip_address, member.port, member.weight,
                    member.admin_state_up, _member_status(member, balancer), member.key)


def _load_balancers(session: Session, *where: Any) -> Iterator[LoadBalancer]:
    rows = session.scalars(_ordered(_LoadBalancerRow).where(*where)).all()
    members = _member_rows(session, [row.id for row in rows] if where else None)
    for row in rows:
        yield LoadBalancer(row.id, row.name, row.network_id, row.vip_address, row.protocol, row.port, row.algorithm,
                           row.key, row.mac_address, _monitor(row),
                           tuple(_lb_member(member, row) for member in members[row.id]), row.hairpin_key or 0)


def _lb_members(session: Session, *where: Any) -> Iterator[LbMember]:
    rows = session.scalars(select(_LbMemberRow).order_by(_LbMemberRow.key).where(*where)).all()
    balancers = {row.id: row for row in session.scalars(select(_LoadBalancerRow).where(
        _LoadBalancerRow.id.in_({member.load_balancer_id for member in rows})))}
    for member in rows:
        yield _lb_member(member, balancers[member.load_balancer_id])


def _member_dict(member: _LbMemberRow, balancer: _LoadBalancerRow) -> dict[str, Any]:
    """The REST view of a member: the model without its key, plus its port and when its status last changed."""
    return {
        "id": member.id,
        "load_balancer_id": member.load_balancer_id,
        "ip_address": member.ip_address,
        "port": member.port,
        "weight": member.weight,
        "admin_state_up": member.admin_state_up,
        "status": _member_status(member, balancer),
        "status_changed_at": _timestamp(member.status_changed_at),
        "port_id": member.port_id,
    }


def _load_balancer_dict(session: Session, row: _LoadBalancerRow, members: list[_LbMemberRow] | None = None
                        ) -> dict[str, Any]:
    """The REST view: the model without its key, its MAC as mac_address, each member as _member_dict shows it."""
    if members is None:
        members = _member_rows(session, [row.id])[row.id]
    monitor = _monitor(row)
    return {
        "id": row.id,
        "name": row.name,
        "network_id": row.network_id,
        "vip_address": row.vip_address,
        "protocol": row.protocol,
        "port": row.port,
        "algorithm": row.algorithm,
        "members": [_member_dict(member, row) for member in members],
        "health_monitor": None if monitor is None else asdict(monitor),
        "mac_address": row.mac_address,
    }


def _timestamp(moment: datetime) -> str:
    """A stored time as ISO 8601 in UTC, to the second."""
    return datetime.fromtimestamp(_epoch(moment), UTC).isoformat(timespec="seconds")
