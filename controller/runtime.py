"""The controller's moving parts joined: store + fabric -> compile -> programmer, per switch.

Convergence is a full pass (snapshot the policy and topology, compile, diff per switch) run
under one lock. REST calls run a pass in their own thread and return its report; switch events
only mark the state dirty and a worker thread runs the pass, because os-ken's event thread must
stay free to deliver the barrier replies the pass waits for.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from apps.compiler import Compiler
from apps.owners import owners
from apps.pipeline import PIPELINE
from apps.topology import Link, SwitchPort
from controller import ofwire
from controller.channel import Channel
from controller.fabric import Fabric
from controller.programmer import Programmer
from controller.store import Store

LOG = logging.getLogger(__name__)
_TABLE_NAMES = {t.number: t.name for t in PIPELINE}


@dataclass(frozen=True)
class ConvergeReport:
    ok: bool
    failures: dict[str, str] = field(default_factory=dict)


class Runtime:
    def __init__(self, store: Store, *, lldp_interval: float = 1.0, hold_down: float = 5.0,
                 timeout: float = 30.0) -> None:
        self.store = store
        self.lldp_interval = lldp_interval
        known = store.load_switches()
        self.fabric = Fabric(known, store.load_links(), link_timeout=3 * lldp_interval + 1.0)
        self.programmer = Programmer(timeout)
        self.compiler = Compiler()
        self._pass_lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._expected = {sw.dpid for sw in known}
        self._hold_until = time.monotonic() + hold_down
        self._bound: set[tuple[str | None, str | None]] = set()
        self._owners: dict[int, str] = {}
        self._pending_ports: dict[int, list[SwitchPort]] = {}
        self.stats = {"passes": 0, "pass_failures": 0, "last_pass_seconds": 0.0}
        if not self._expected:
            self._ready.set()

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Background threads: event-driven convergence and LLDP discovery."""
        threading.Thread(target=self._worker, name="converge", daemon=True).start()
        threading.Thread(target=self._discovery, name="lldp", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()

    def request(self) -> None:
        """Ask the worker for a convergence pass soon (from event handlers: never blocks)."""
        self._dirty.set()

    def converge(self, timeout: float = 15.0) -> ConvergeReport:
        """Converge every connected switch to the store now; returns after the barriers."""
        if not self._wait_ready(timeout):
            return ConvergeReport(False, {"*": "switches still reconnecting after restart"})
        with self._pass_lock:
            return self._pass()

    # --- switch events (called from os-ken's event thread; must not block) --------------------
    def switch_ports(self, datapath_key: int, ports: list[SwitchPort], more: bool) -> list[SwitchPort] | None:
        """Gather a multi-part port description; returns all ports once the last part arrived."""
        gathered = self._pending_ports.setdefault(datapath_key, [])
        gathered.extend(ports)
        if more:
            return None
        return self._pending_ports.pop(datapath_key)

    def switch_connected(self, channel: Channel, ports: list[SwitchPort]) -> None:
        old = self.fabric.connect(channel, ports)
        if old is not None:
            old.close()
        self.store.save_switch(channel.dpid, ports)
        LOG.info("switch %s connected with %d ports", channel.dpid, len(ports))
        self._check_ready()
        self._send_lldp(self.fabric.lldp_targets(channel.dpid))
        self.request()

    def switch_disconnected(self, channel: Channel) -> None:
        channel.close()
        if self.fabric.disconnect(channel):
            LOG.info("switch %s disconnected", channel.dpid)
            self.request()

    def port_changed(self, dpid: str, port: SwitchPort, deleted: bool) -> None:
        if self.fabric.update_port(dpid, port, deleted):
            switch = self.fabric.switch(dpid)
            self.store.save_switch(dpid, list(switch.ports) if switch else [])
            self.request()

    def lldp_received(self, dpid: str, in_port: int, frame: bytes) -> None:
        seen = ofwire.parse_lldp(frame)
        switch = self.fabric.switch(dpid)
        if seen is None or switch is None or not self.fabric.is_connected(seen[0]):
            return
        name = next((p.name for p in switch.ports if p.ofport == in_port), None)
        if (dpid, name) in self._bound:
            return  # a VM's port is never an inter-switch link, whatever it sends
        if self.fabric.link_seen(Link.between(seen[0], seen[1], dpid, in_port)):
            LOG.info("link %s:%d <-> %s:%d", seen[0], seen[1], dpid, in_port)
            self.store.save_links(self.fabric.links())
            self.request()

    # --- views for the REST API -----------------------------------------------------------------
    def port_status(self, dpid: str | None, interface: str | None) -> str:
        switch = self.fabric.switch(dpid) if dpid else None
        if switch and interface and self.fabric.is_connected(switch.dpid) and switch.ofport(interface):
            return "ACTIVE"
        return "DOWN"

    def switches(self) -> list[dict]:
        topology = self.fabric.snapshot()
        links = topology.usable_links()
        return [{
            "dpid": sw.dpid,
            "connected": self.fabric.is_connected(sw.dpid),
            "ports": [{"name": p.name, "ofport": p.ofport, "mac": p.mac, "up": p.up} for p in sw.ports],
            "links": [{"port": link.port_on(sw.dpid), "peer_dpid": link.peer_of(sw.dpid),
                       "peer_port": link.port_on(link.peer_of(sw.dpid))}
                      for link in links if sw.dpid in (link.a_dpid, link.b_dpid)],
        } for sw in topology.switches]

    def switch_flows(self, dpid: str) -> list[dict] | None:
        channel = self.fabric.channel(dpid)
        if channel is None:
            return None if self.fabric.switch(dpid) is None else []
        return [{
            "table": _TABLE_NAMES.get(f.table_id, str(f.table_id)),
            "table_id": f.table_id,
            "priority": f.priority,
            "match": ofwire.describe_match(f.match),
            "actions": ofwire.describe_instructions(f.instructions, _TABLE_NAMES),
            "cookie": f"0x{f.cookie:016x}",
            "owner": self._owners.get(f.cookie),
            "packet_count": f.packet_count,
            "byte_count": f.byte_count,
        } for f in channel.dump_flows(self.programmer.timeout)]

    def metrics(self) -> dict[str, float]:
        values: dict[str, float] = {"sdn_switches_connected": len(self.fabric.channels()),
                                    "sdn_links": len(self.fabric.links())}
        values.update({f"sdn_programmer_{k}": v for k, v in self.programmer.stats.items()})
        values.update({f"sdn_converge_{k}": v for k, v in self.stats.items()})
        return values

    # --- internals ------------------------------------------------------------------------------
    def _check_ready(self) -> None:
        connected = {c.dpid for c in self.fabric.channels()}
        if self._expected <= connected or time.monotonic() >= self._hold_until:
            self._ready.set()

    def _wait_ready(self, timeout: float) -> bool:
        """After a restart, hold back until the known switches are back (or the hold-down ends).

        Converging a half-reconnected fabric would tear down paths through switches that are
        merely slow to reconnect; their data planes kept forwarding all along.
        """
        deadline = time.monotonic() + timeout
        while not self._ready.is_set():
            self._check_ready()
            if self._ready.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
                break
            if time.monotonic() >= deadline:
                return False
        return True

    def _pass(self) -> ConvergeReport:
        started = time.perf_counter()
        policy = self.store.snapshot()
        desired = self.compiler.compile(policy, self.fabric.snapshot())
        self._bound = {(p.dpid, p.interface) for p in policy.ports}
        self._owners = owners(policy)
        channels = self.fabric.channels()
        failures: dict[str, str] = {}
        if channels:
            with ThreadPoolExecutor(max_workers=min(8, len(channels))) as pool:
                futures = {c.dpid: pool.submit(self.programmer.sync, c, desired.get(c.dpid, {})) for c in channels}
            for dpid, future in futures.items():
                try:
                    result = future.result()
                    if result.changes:
                        LOG.info("switch %s: +%d ~%d -%d flows", dpid, result.added, result.modified, result.deleted)
                except Exception as exc:  # one failing switch must not stop the others
                    failures[dpid] = str(exc) or type(exc).__name__
                    LOG.warning("switch %s: %s", dpid, failures[dpid])
        self.stats["passes"] += 1
        self.stats["pass_failures"] += bool(failures)
        self.stats["last_pass_seconds"] = time.perf_counter() - started
        return ConvergeReport(not failures, failures)

    def _worker(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            self._dirty.clear()
            report = self.converge(timeout=60.0)
            if not report.ok:
                self._stop.wait(1.0)  # retry failed switches, but do not spin
                self._dirty.set()

    def _discovery(self) -> None:
        while not self._stop.wait(self.lldp_interval):
            self._check_ready()
            self._send_lldp(self.fabric.lldp_targets())
            if self.fabric.expire_links():
                self.store.save_links(self.fabric.links())
                self.request()

    def _send_lldp(self, targets: list[tuple[Channel, SwitchPort]]) -> None:
        for channel, port in targets:
            frame = ofwire.lldp_frame(channel.dpid, port.ofport, port.mac)
            channel.send(ofwire.packet_out(channel.next_xid(), port.ofport, frame))
