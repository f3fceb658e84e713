"""The local Open vSwitch database through the `ovs` Python IDL: what hypervisors say about interfaces, and bridges
pointed at the controller.

- `Monitor` follows the Bridge, Port and Interface tables and hands the runtime, on every change, the interfaces
  whose external_ids:iface-id may name a port (apps.attachments.Claim: the bridge's datapath_id, the interface's
  name and its iface-id), as switch events hand it the switches' ports. It runs on its own thread; the IDL
  reconnects by itself, and while the database is away the last claims stand (the interfaces are still there).
- `attach` points bridges at the controller (OpenFlow 1.3, fail_mode=secure, one controller target; the datapath
  type kept unless one is asked for) in one OVSDB transaction: `sdn-controller attach BRIDGE...`, or `--attach` at
  start. Nothing is written when a bridge already is so, and nothing at all when a bridge does not exist.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence

with warnings.catch_warnings():  # ovs.poller imports eventlet if present, which warns that it is deprecated
    warnings.simplefilter("ignore")
    import ovs.db.idl
    import ovs.poller

from apps.attachments import Claim

LOG = logging.getLogger(__name__)
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
DEFAULT_REMOTE = "unix:/var/run/openvswitch/db.sock"
IFACE_ID = "iface-id"
_COLUMNS = {
    "Bridge": ["name", "datapath_id", "datapath_type", "ports", "controller", "fail_mode", "protocols"],
    "Port": ["name", "interfaces"],
    "Interface": ["name", "external_ids"],
    "Controller": ["target"],
}
_POLL_MS = 500  # the longest a loop sleeps without looking at `stop`


class OvsdbError(Exception):
    """The database cannot do what was asked (unreachable, a bridge missing, a transaction refused): one line."""


def connect(remote: str, schema: str = SCHEMA) -> ovs.db.idl.Idl:
    """An IDL on `remote` following the columns used here (nothing fetched until it runs)."""
    try:
        helper = ovs.db.idl.SchemaHelper(schema)
    except (OSError, ValueError) as exc:
        raise OvsdbError(f"cannot read the Open vSwitch schema {schema}: {exc}") from None
    for table, columns in _COLUMNS.items():
        helper.register_columns(table, columns)
    return ovs.db.idl.Idl(remote, helper)


def claims(idl: ovs.db.idl.Idl) -> frozenset[Claim]:
    """Every interface with an iface-id, on a bridge whose datapath id is known, as the IDL has them now."""
    found: set[Claim] = set()
    for bridge in idl.tables["Bridge"].rows.values():
        dpid = (bridge.datapath_id[0] if bridge.datapath_id else "").lower()
        if not dpid:  # ovs-vswitchd has not made the bridge yet
            continue
        for port in bridge.ports:
            for interface in port.interfaces:
                iface_id = interface.external_ids.get(IFACE_ID)
                if iface_id:
                    found.add(Claim(dpid, interface.name, iface_id))
    return frozenset(found)


def _step(idl: ovs.db.idl.Idl, stop: threading.Event | None = None) -> None:
    """Let the IDL talk to the server, then sleep until it has something (or `_POLL_MS`)."""
    idl.run()
    if stop is not None and stop.is_set():
        return
    poller = ovs.poller.Poller()
    idl.wait(poller)
    poller.timer_wait(_POLL_MS)
    poller.block()


def _synced(idl: ovs.db.idl.Idl, remote: str, timeout: float) -> None:
    """Wait until the IDL holds the database's contents."""
    deadline = time.monotonic() + timeout
    while True:
        idl.run()
        if idl.has_ever_connected():
            return
        if time.monotonic() >= deadline:
            raise OvsdbError(f"no answer from the Open vSwitch database at {remote} within {timeout:g} s")
        _step(idl)


class Monitor:
    """Follows the database at `remote` and calls `changed(claims)` after each change (on the caller's thread)."""

    def __init__(self, remote: str, changed: Callable[[frozenset[Claim]], None], *,
                 attach: Sequence[str] = (), target: str | None = None) -> None:
        self.remote = remote
        self._changed = changed
        self._attach = tuple(attach)  # bridges to point at `target` once the database is first read
        self._target = target

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: read changes, hand over the claims. Raises on what the IDL cannot recover from itself (the
        caller backs off and calls again)."""
        idl = connect(self.remote)
        try:
            seqno = idl.change_seqno
            while not stop.is_set():
                _step(idl, stop)
                if idl.change_seqno != seqno and idl.has_ever_connected():
                    seqno = idl.change_seqno
                    if self._attach and self._target:
                        self._attach_once(idl, self._target)
                    self._changed(claims(idl))
        finally:
            idl.close()


    def _attach_once(self, idl: ovs.db.idl.Idl, target: str) -> None:
        bridges, self._attach = self._attach, ()
        try:
            changed = attach_bridges(idl, bridges, target)
        except OvsdbError as exc:
            LOG.error("cannot attach bridges %s: %s", ", ".join(bridges), exc)
            return
        LOG.info("bridges %s point at %s (changed: %s)", ", ".join(bridges), target, ", ".join(changed) or "none")


def controller_target(host: str, port: int) -> str:
    """The OVSDB Controller target of an OpenFlow listener: tcp:HOST:PORT (a wildcard address: the loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"tcp:[{host}]:{port}" if ":" in host else f"tcp:{host}:{port}"


def attach(remote: str, bridges: Iterable[str], target: str, datapath_type: str | None = None,
           timeout: float = 10.0) -> list[str]:
    """Point `bridges` at the controller at `target` (e.g. tcp:127.0.0.1:6653); returns the bridges changed."""
    idl = connect(remote)
    try:
        _synced(idl, remote, timeout)
        return attach_bridges(idl, bridges, target, datapath_type)
    finally:
        idl.close()


def attach_bridges(idl: ovs.db.idl.Idl, bridges: Iterable[str], target: str, datapath_type: str | None = None
                   ) -> list[str]:
    """One transaction on a synced IDL: each bridge with `target` as its only controller, OpenFlow 1.3 only,
    fail_mode secure, and `datapath_type` if given (else its own). All or nothing: a missing bridge writes none."""
    names = list(dict.fromkeys(bridges))
    by_name = {row.name: row for row in idl.tables["Bridge"].rows.values()}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise OvsdbError(f"no bridge named {', '.join(missing)} in the Open vSwitch database")
    txn = ovs.db.idl.Transaction(idl)
    changed = []
    for name in names:
        bridge = by_name[name]
        wanted = {"protocols": ["OpenFlow13"], "fail_mode": ["secure"]}
        if datapath_type is not None:
            wanted["datapath_type"] = datapath_type
        differs = [column for column, value in wanted.items() if getattr(bridge, column) != value]
        for column in differs:
            setattr(bridge, column, wanted[column])
        if [controller.target for controller in bridge.controller] != [target]:
            controller = txn.insert(idl.tables["Controller"])
            controller.target = target
            bridge.controller = [controller]
            differs.append("controller")
        if differs:
            changed.append(name)
    status = txn.commit_block()
    if status not in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
        raise OvsdbError(f"the Open vSwitch database refused the change ({status}: {txn.get_error()})")
    return changed
