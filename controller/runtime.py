"""The controller's moving parts joined: store + fabric -> compile -> programmer, per switch.

A pass snapshots the policy and the topology, compiles, and converges every connected switch
under one lock. Who runs passes, and on which thread:

- REST calls go through apply(): the change is staged in the store, the switches are converged
  to it, and only then is it committed; if a switch refuses a flow the change introduced, the
  change is rolled back and the switches are put back.
- os-ken's event thread only updates memory and asks for a pass. Everything slow (database
  writes, packet-outs) goes to the `io` thread, because the event thread also delivers the
  barrier replies that passes wait for.
- The `converge` thread runs the passes switch events ask for, and retries a failing switch with
  exponential backoff; the `lldp` thread sends discovery frames and expires links; the `neighbors`
  thread has the io thread re-ARP and expire the MAC bindings of external networks. All survive
  their own exceptions: logged, counted in metrics, retried with backoff.
- Packet-ins that routers' flows hand the controller (TTL exceeded, a next hop to resolve, an ARP
  reply from an uplink) are rate limited and queued on the event thread, and answered on the io
  thread: ICMP time-exceeded, ARP requests, MAC bindings stored (controller/neighbors.py decides,
  controller/icmp.py makes the frames).
- Counters per object (controller/counters.py sums them, apps/counters.py says which flows count for whom): the
  `stats` thread reads the counting flows of every switch every `stats_interval` seconds, or sooner when a REST
  call asks (at most once a second), with flow-stats requests of its own, filtered by app: no pass waits for it.
- Load balancers' health checks (controller/health.py decides and makes the frames): the `health` thread has the
  io thread send the probes that are due (packet-outs out of each member's port) and expire the unanswered ones;
  members' answers (IPv4 packet-ins from classify, where ARP replies from uplinks come too) are queued like the
  routers' and handled on the io thread; status changes go to the store (set_member_status), whose journal brings
  them to the compiler. The checker's members are rebuilt from a store snapshot after a change that touches them.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from prometheus_client.core import Metric

from apps.attachments import Attachment, Claim, placed
from apps.compiler import Compiler
from apps.counters import KINDS, Counted, ObjectRef, counted_flows
from apps.discovery import is_candidate, trunk_candidates
from apps.explain import Compiled
from apps.groups import Group
from apps.incremental import ChangeKey
from apps.model import Policy
from apps.pipeline import PIPELINE, REG_NETWORK, REG_NEXTHOP, REG_ROUTER, table_id
from apps.topology import Link, Switch, SwitchPort, Topology
from controller import health, icmp, lldp, ofwire, ovsdb
from controller.channel import Channel, ChannelClosed, ChannelTimeout
from controller.counters import ObjectCounters, Schedule, read_switch
from controller.errors import BudgetExceeded, ChangeRefused, NotConfirmed, OverBudget, RefusedFlow
from controller.fabric import End, Fabric
from controller.metrics import family
from controller.neighbors import Directory, Leg, Neighbors, TokenBuckets, in_network
from controller.programmer import FlowRefusal, Programmer, ProgrammingError
from controller.store import Store

LOG = logging.getLogger(__name__)
_TABLE_NAMES = {t.number: t.name for t in PIPELINE}
_UNBOUND: frozenset[str] = frozenset()
T = TypeVar("T")

# What a packet-in from each table of apps.routing's asks for.
_ROUTER_TABLES = {table_id("router_in"): "time_exceeded", table_id("neighbor"): "neighbor",
                  table_id("classify"): "arp_reply"}
MAX_QUEUED_PACKET_INS = 256  # packet-ins waiting for the io thread; beyond that they are dropped (and counted)
# Per router and port the packet came in by (switch, ofport): messages a second, burst (besides the switch's meter).
# Per port, so that a VM flooding expiring packets through a router exhausts its own share, not its neighbours'.
TIME_EXCEEDED_RATE = (10.0, 10.0)


_HEALTH_KINDS = frozenset({"load_balancer", "lb_member"})  # changes that always rebuild the health checker's members
_MEMBER_PORT_KINDS = frozenset({"port", "network", "router"})  # and those that do when there are balancers


def packet_in_kind(number: int, frame: bytes | None = None) -> str | None:
    """What a packet-in from a routers' table asks for: time_exceeded, neighbor or arp_reply (None: not ours); with
    the `frame`, an IPv4 one from classify is a member's answer to a health probe (probe_answer)."""
    kind = _ROUTER_TABLES.get(number)
    if kind == "arp_reply" and frame is not None and len(frame) >= 14:
        try:
            ethertype = icmp.ethernet_payload(frame)[2]
        except icmp.NotAnswered:
            return kind
        if ethertype == icmp.ETH_TYPE_IPV4:
            return "probe_answer"
    return kind


@dataclass(frozen=True)
class ConvergeReport:
    ok: bool
    failures: dict[str, str] = field(default_factory=dict)  # dpid -> reason
    changed: frozenset[str] = frozenset()  # switches whose desired flows differ from the previous pass's
    refusals: dict[str, tuple[FlowRefusal, ...]] = field(default_factory=dict)
    delta: dict[str, set[ChangeKey]] = field(default_factory=dict)  # per switch, the keys this pass changed
    over_budget: tuple[OverBudget, ...] = ()  # switches the compile took past the flow budget: nothing was sent


@dataclass(frozen=True)
class SwitchFailure:
    """A connected switch whose last sync failed, and when the converge thread tries it again."""

    reason: str
    since: float     # wall clock, first failure in a row
    attempts: int
    retry_at: float  # monotonic


class Runtime:
    def __init__(self, store: Store, *, lldp_interval: float = 1.0, hold_down: float = 5.0,
                 timeout: float = 30.0, backoff: tuple[float, float] = (1.0, 30.0), neighbor_refresh: float = 60.0,
                 arp_interval: float = 1.0, clock: Callable[[], float] = time.time,
                 health_rate: tuple[float, float] = health.PROBE_RATE, max_flows_per_switch: int | None = None,
                 stats_interval: float = 10.0) -> None:
        self.store = store
        self.max_flows_per_switch = max_flows_per_switch  # REST changes that would exceed it are refused
        self.lldp_interval = lldp_interval
        self.neighbor_refresh = neighbor_refresh  # re-ARP a binding this often; forget it after 3 unanswered
        self._clock = clock  # wall clock of the routers' decisions (bindings are stored with it)
        self._directory = Directory()  # routers and networks as of the last pass, for the io thread
        self._gateways: dict[str, str | None] = {}  # router id -> its gateway switch, as of the last pass
        self._neighbors = Neighbors(request_interval=arp_interval, refresh_interval=neighbor_refresh,
                                    pending_for=max(5.0, 5 * arp_interval))  # the io thread's alone
        self._time_exceeded_limits = TokenBuckets(*TIME_EXCEEDED_RATE)  # the event thread's alone
        self._health = health.HealthChecker(rate=health_rate)  # the io thread's alone (but for metrics)
        self._health_wanted = 1  # bumped by passes whose changes touch balancers' members; the io thread rebuilds
        self._health_built = 0   # the checker's members when it differs from what it built last
        self._health_touched = False  # the pass being made touched them (the pass thread's)
        self._has_balancers = True  # as of the last rebuild: port, network and router changes matter too
        self._refusal_logs = TokenBuckets(1.0, 5.0)  # the io thread's alone
        self._queued_lock = threading.Lock()
        self._queued = 0  # packet-ins handed to the io thread and not handled yet
        self._ip_ident = 0  # the IPv4 identification of the next ICMP message
        self.router_stats: Counter[str] = Counter()
        self.packet_ins: Counter[str] = Counter()  # by kind (packet_in_kind, or "other")
        self.counters = ObjectCounters()
        self._stats_schedule = Schedule(stats_interval)
        self._counted: tuple[int, dict[Counted, tuple[ObjectRef, ...]]] | None = None  # (revision, counted_flows)
        self._counter_reads = (0, 0.0)  # readings of every switch's counters so far, and the last one's seconds
        self.backoff = backoff  # (first delay, cap), doubling in between
        known = store.load_switches()
        self.fabric = Fabric(known, store.load_links(), link_timeout=3 * lldp_interval + 1.0)
        self.programmer = Programmer(timeout)
        self._secret = store.lldp_secret()
        self._pass_lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._expected = {sw.dpid for sw in known}
        self._hold_until = time.monotonic() + hold_down
        self._pending: dict[str, set[ChangeKey]] = {}  # per connected switch: keys changed since its last sync
        self._last_changes: set[tuple[str, str]] = set()  # the policy objects the last pass read
        self._flushed: dict[str, Channel] = {}  # the channel of each switch that flushed every freed zone
        self._freed: set[int] = set()  # zones of the ports and routers the last pass deleted
        self._candidate_cache: dict[str, tuple[Any, ...]] = {}  # dpid -> (switch, bound, pins, candidates)
        self._claims: frozenset[Claim] = frozenset()  # hypervisors' interfaces naming ports (the ovsdb thread's)
        self._attachments: dict[str, Attachment] = {}  # where they attached ports, as of the last pass
        self._reload()  # bindings and pins are known from the start, not from the first pass
        self._failing: dict[str, SwitchFailure] = {}
        self._pending_ports: dict[int, list[SwitchPort]] = {}
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="io")
        self._sync_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sync")
        self.stats: dict[str, float] = {"passes": 0, "pass_failures": 0, "last_pass_seconds": 0.0,
                                        "last_compile_seconds": 0.0, "last_pass_units": 0, "changes_refused": 0,
                                        "changes_over_budget": 0, "zone_flushes": 0}
        self.thread_errors: Counter[str] = Counter()
        if not self._expected:
            self._ready.set()

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Background threads: event-driven convergence and LLDP discovery."""
        threading.Thread(target=self._worker, name="converge", daemon=True).start()
        threading.Thread(target=self._discovery, name="lldp", daemon=True).start()
        threading.Thread(target=self._neighbor_loop, name="neighbors", daemon=True).start()
        threading.Thread(target=self._health_loop, name="health", daemon=True).start()
        threading.Thread(target=self._stats_loop, name="stats", daemon=True).start()

    def follow_ovsdb(self, monitor: ovsdb.Monitor) -> None:
        """Run `monitor` (it calls interfaces_claimed) on an `ovsdb` thread, guarded like the other loops."""
        threading.Thread(target=self._ovsdb_loop, args=(monitor,), name="ovsdb", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        self._stats_schedule.stop()
        self._io.shutdown(wait=False, cancel_futures=True)

    def request(self) -> None:
        """Ask the converge thread for a pass soon (from event handlers: never blocks)."""
        self._dirty.set()

    def converge(self, timeout: float = 15.0) -> ConvergeReport:
        """Converge every connected switch to the store now; returns after the barriers."""
        if not self._wait_ready(timeout):
            return ConvergeReport(False, {"*": "switches still reconnecting after restart"})
        with self._pass_lock:
            report = self._pass()
            self._flush_zones()
            self._health_note()
            return report

    def apply(self, change: Callable[[], T], timeout: float = 15.0) -> T:
        """Make a store change and converge the switches to it; keep it only if no switch refuses it.

        Raises BudgetExceeded (rolled back before any switch saw it) when the change would take a switch
        past the flow budget, ChangeRefused (rolled back, switches put back) when a switch refused a flow the
        change introduced, and NotConfirmed (kept, retried) when a switch the change affects failed
        for any other reason. Store validation errors propagate with nothing changed.
        """
        if not self._wait_ready(timeout):
            with self.store.staged() as stage:
                result = change()
                stage.commit()
            self.request()
            raise NotConfirmed(result, {"*": "switches still reconnecting after restart"})
        with self._pass_lock:
            revision = self._revision
            with self.store.staged() as stage:
                result = change()
                report = self._pass(budgeted=True)
                refused = self._blame(report)
                if refused or report.over_budget:
                    stage.rollback()
                else:
                    stage.commit()
            if refused or report.over_budget:
                self.stats["changes_refused"] += 1
                self.stats["changes_over_budget"] += bool(report.over_budget)
                self._revision = revision  # the store no longer holds the change: give it back where it was taken
                self._put_objects(self._last_changes)
                self._freed.clear()  # no port or router went after all
                self._pass()
                self._health_note()
                raise ChangeRefused(refused) if refused else BudgetExceeded(list(report.over_budget))
            self._flush_zones()
            self._health_note()
        unconfirmed = {dpid: reason for dpid, reason in report.failures.items() if dpid in report.changed}
        if unconfirmed:
            raise NotConfirmed(result, unconfirmed)
        return result

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
        LOG.info("switch %s connected with %d ports", channel.dpid, len(ports))
        self._check_ready()
        self._background(lambda: self.store.save_switch(channel.dpid, ports))
        self._background(lambda: self._send_lldp(channel.dpid))
        self.request()

    def switch_disconnected(self, channel: Channel) -> None:
        channel.close()
        if self.fabric.disconnect(channel):
            LOG.info("switch %s disconnected", channel.dpid)
            self.request()

    def port_changed(self, dpid: str, port: SwitchPort, deleted: bool) -> None:
        if self.fabric.update_port(dpid, port, deleted):
            switch = self.fabric.switch(dpid)
            ports = list(switch.ports) if switch else []
            self._background(lambda: self.store.save_switch(dpid, ports))
            self.request()

    def interfaces_claimed(self, claims: frozenset[Claim]) -> None:
        """The hypervisors' interfaces whose OVSDB external_ids:iface-id may name a port (from the ovsdb thread):
        like a switch event, memory only, then a pass."""
        if claims != self._claims:
            self._claims = claims
            self.request()

    def lldp_received(self, dpid: str, in_port: int, frame: bytes) -> None:
        """Count a link direction if the frame is ours, fresh, and both ends may carry a link."""
        self.packet_ins["lldp"] += 1
        switch = self.fabric.switch(dpid)
        if switch is None:
            return
        port = switch.port(in_port)
        name = port.name if port else f"ofport {in_port}"
        receiver = (dpid, in_port)
        try:
            sender = lldp.sender(frame, self._secret, time.time(), self.fabric.link_timeout)
            self._check_link(sender, receiver)
        except lldp.Refused as exc:
            self.fabric.refuse(dpid, name, str(exc))
            LOG.debug("switch %s: refused LLDP on %s: %s", dpid, name, exc)
            return
        if self.fabric.lldp_heard(sender, receiver):
            LOG.info("link %s:%d <-> %s:%d", *sender, *receiver)
            self._background(self._save_links)
            self.request()

    def packet_in(self, dpid: str, table_id: int, fields: dict[str, Any], data: bytes) -> None:
        """A packet a routers' flow handed the controller (`fields`: the packet-in's match: in_port and the
        non-zero registers). Rate limited and queued here; answered on the io thread."""
        kind = packet_in_kind(table_id, data)
        self.packet_ins[kind or "other"] += 1
        if kind is None:
            return
        source = (fields.get(REG_ROUTER), dpid, fields.get("in_port"))
        if kind == "time_exceeded" and not self._time_exceeded_limits.take(source, self._clock()):
            self.router_stats["icmp_time_exceeded_limited_total"] += 1
            return
        with self._queued_lock:
            if self._queued >= MAX_QUEUED_PACKET_INS:
                self.router_stats["packet_ins_dropped_total"] += 1
                return
            self._queued += 1
        handle = {"time_exceeded": self._time_exceeded, "neighbor": self._resolve, "arp_reply": self._arp_reply,
                  "probe_answer": self._probe_answer}[kind]
        self._background(lambda: self._packet_in_job(handle, dpid, fields, data))

    def router_gateway(self, router_id: str) -> str | None:
        """The dpid of the switch where the router's SNAT runs, as of the last pass (None: none)."""
        return self._gateways.get(router_id)

    def compiled(self) -> Compiled:
        """The flows compiled for every known switch, connected or not, as of the last pass (for POST /trace).

        Copied under the pass lock (a pass changes the compiler's tables in place); explaining a packet then runs
        without holding up convergence."""
        with self._pass_lock:
            return self.compiler.compiled(self.fabric.snapshot())

    def policy(self) -> Policy:
        """The store's policy with each port where it is: its own binding, or where OVSDB attached it (as of the last
        pass), as the compiler placed it."""
        policy, attachments = self.store.snapshot(), self._attachments
        return replace(policy, ports=tuple(placed(port, attachments.get(port.id)) for port in policy.ports))

    # --- views for the REST API -----------------------------------------------------------------
    def port_attachment(self, port_id: str) -> Attachment | None:
        """Where OVSDB attached a port and what it refused, as of the last pass (None: no interface claims it)."""
        return self._attachments.get(port_id)

    def port_status(self, dpid: str | None, interface: str | None) -> str:
        switch = self.fabric.switch(dpid) if dpid else None
        if switch and interface and self.fabric.is_connected(switch.dpid) and switch.ofport(interface):
            return "ACTIVE"
        return "DOWN"

    def health(self) -> dict[str, Any]:
        """Liveness from memory only: it answers while a pass or a REST change holds the store."""
        failing = sorted(self._failing.items())
        now = time.monotonic()
        return {
            "status": "degraded" if failing else "ok",
            "switches": len(self.fabric.channels()),
            "failing": [{"dpid": dpid, "reason": f.reason, "since": _iso(f.since), "attempts": f.attempts,
                         "retry_in_s": round(max(0.0, f.retry_at - now), 1)} for dpid, f in failing],
        }

    def switches(self) -> list[dict[str, Any]]:
        """Known switches (and switches only configured so far), their ports, links and LLDP refusals."""
        topology = self.fabric.snapshot()
        configs = self.store.switch_configs()
        links = self._links
        dpids = sorted({sw.dpid for sw in topology.switches} | set(configs))
        shown = []
        for dpid in dpids:
            switch = topology.switch(dpid)
            refusal = self.fabric.refusal(dpid)
            shown.append({
                "dpid": dpid,
                "connected": self.fabric.is_connected(dpid),
                "ports": [{"name": p.name, "ofport": p.ofport, "mac": p.mac, "up": p.up}
                          for p in (switch.ports if switch else ())],
                "links": [{"port": link.port_on(dpid), "peer_dpid": link.peer_of(dpid),
                           "peer_port": link.port_on(link.peer_of(dpid))}
                          for link in links if dpid in (link.a_dpid, link.b_dpid)],
                "trunk_ports": configs.get(dpid, {}).get("trunk_ports"),
                "lldp_refused": {
                    "count": refusal.count if refusal else 0,
                    "last": {"interface": refusal.interface, "reason": refusal.reason, "at": _iso(refusal.at)}
                    if refusal else None,
                },
            })
        return shown

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
            "owner": self.compiler.owner(f.cookie),
            "packet_count": f.packet_count,
            "byte_count": f.byte_count,
        } for f in channel.dump_flows(self.programmer.timeout)]

    def object_stats(self, kind: str, object_id: str) -> dict[str, int]:
        """{packets, bytes} an object counted (controller/counters.py), as of the last reading."""
        packets, octets = self.counters.get(kind, object_id)
        return {"packets": packets, "bytes": octets}

    def refresh_stats(self, timeout: float = 5.0) -> bool:
        """Read the switches' counters now, unless a reading ended less than a second ago; False when none ended
        within `timeout` seconds (the sums are then those of the last reading)."""
        return self._stats_schedule.fresh(timeout)

    def collect(self) -> Iterator[Metric]:
        """The runtime's metrics, for prometheus_client (controller/api.py registers the runtime as a collector)."""
        yield family("sdn_switches_connected", "Switches connected now.", len(self.fabric.channels()), gauge=True)
        yield family("sdn_links", "Links between switches in use.", len(self.fabric.links()), gauge=True)
        yield family("sdn_switches_failing", "Connected switches whose last sync failed.", len(self._failing),
                     gauge=True)
        for name, value in list(self.programmer.stats.items()):
            yield family(f"sdn_programmer_{name}", f"The programmer's {name.replace('_', ' ')} so far.", value)
        for name, value in list(self.stats.items()):
            yield family(f"sdn_converge_{name}", f"Passes: {name.replace('_', ' ')}.", value)
        refused = (self.fabric.refusal(sw.dpid) for sw in self.fabric.snapshot().switches)
        yield family("sdn_lldp_refused_total", "LLDP frames refused.", sum(r.count for r in refused if r))
        yield family("sdn_thread_errors_total", "Rounds of background threads that failed, by thread.",
                     [({"thread": name}, n) for name, n in list(self.thread_errors.items())], ("thread",))
        yield family("sdn_packet_ins_total", "Packet-ins by kind (LLDP, routers', load balancers').",
                     [({"kind": kind}, n) for kind, n in list(self.packet_ins.items())], ("kind",))
        for name, value in list(self.router_stats.items()):
            yield family(f"sdn_{name}", f"Routers: {name.removesuffix('_total').replace('_', ' ')}.", value)
        yield family("sdn_mac_bindings", "Next hops resolved through uplinks.", self._binding_count, gauge=True)
        for name, value in list(self._health.counters.items()):
            yield family(f"sdn_lb_{name}", f"Health checks: {name.removesuffix('_total').replace('_', ' ')}.",
                         value)
        statuses = self._health.statuses()
        yield family("sdn_lb_members", "Load-balancer members by status.",
                     [({"status": status}, sum(s.status == status for s in statuses))
                      for status in ("ONLINE", "OFFLINE", "DRAINING", "NO_MONITOR")], ("status",), gauge=True)
        yield family("sdn_lb_member_status", "1 for each member, labelled with its status.",
                     [({"load_balancer": s.load_balancer_id, "member": s.member_id, "status": s.status}, 1)
                      for s in statuses], ("load_balancer", "member", "status"), gauge=True)
        reads, seconds = self._counter_reads
        yield family("sdn_counter_reads_total", "Readings of every switch's counting flows.", reads)
        yield family("sdn_counter_read_seconds", "How long the last reading took.", seconds, gauge=True)
        sums = sorted(self.counters.sums().items())
        for unit, index in (("packets", 0), ("bytes", 1)):
            yield family(f"sdn_object_{unit}_total", f"{unit.title()} counted by the flows of each object "
                         f"(kind: {', '.join(KINDS)}), as of the last reading.",
                         [({"kind": kind, "id": object_id}, value[index]) for (kind, object_id), value in sums],
                         ("kind", "id"))

    # --- passes ---------------------------------------------------------------------------------
    def _reload(self) -> None:
        """Compile everything from a fresh snapshot (start-up, or when the change journal cannot tell what
        changed); every switch is then diffed in full on its next sync."""
        self._revision = self.store.revision()  # read first: a change made meanwhile is read again, harmlessly
        self.compiler = Compiler()
        policy = self.store.snapshot()
        self.compiler.load(policy, self.fabric.snapshot())
        self.compiler.set_claims(self._claims)
        self._directory.clear()
        for network in policy.networks:
            self._directory.put_network(network.id, network)
        for router in policy.routers:
            self._directory.put_router(router.id, router)
        self._binding_count = len(policy.mac_bindings)
        self.compiler.commit()
        self._pending.clear()
        self._flushed.clear()  # deletions it did not see: every switch flushes every freed zone again
        self.programmer.forget_all()
        self._refresh_views()
        self._health_touched = True

    def _put_objects(self, changed: set[tuple[str, str]]) -> None:
        for (kind, object_id), value in self.store.objects(changed).items():
            if value is None:
                self._freed.update(self.compiler.zones(kind, object_id))
            self.compiler.put(kind, object_id, value)
            if kind in _HEALTH_KINDS or (self._has_balancers and kind in _MEMBER_PORT_KINDS):
                self._health_touched = True
            if kind == "network":
                self._directory.put_network(object_id, value)
            elif kind == "router":
                self._directory.put_router(object_id, value)

    def _read_changes(self) -> None:
        """Hand the compiler the policy objects changed since the revision it saw last."""
        found = self.store.changes_since(self._revision)
        if found is None:
            LOG.warning("change journal does not reach back to revision %d: recompiling everything", self._revision)
            self._reload()
            self._last_changes = set()
            return
        self._revision, self._last_changes = found
        if self._last_changes:
            self._put_objects(self._last_changes)

    def _pass(self, budgeted: bool = False) -> ConvergeReport:
        """Compile the changes and sync the switches; `budgeted` (a REST change): a compile that takes a switch
        past the flow budget is reported in `over_budget` and nothing is sent to any switch."""
        started = time.perf_counter()
        self._read_changes()
        topology, channels = self.fabric.view()  # one moment: every channel has its switch compiled
        self.compiler.set_topology(topology)
        self.compiler.set_claims(self._claims)
        before = {dpid: len(table) for dpid, table in self.compiler.tables.items()} if budgeted else {}
        try:
            delta = self.compiler.commit()
        except Exception:
            self._reload()  # a half-applied commit leaves nothing to trust
            raise
        compiled = time.perf_counter()
        self._refresh_views()
        over = self._over_budget(before, delta) if budgeted else ()
        if over:
            return ConvergeReport(False, delta=delta, over_budget=over)
        untrusted = [link for link in topology.links
                     if not self._may_carry(topology, link.a_dpid, link.a_port)
                     or not self._may_carry(topology, link.b_dpid, link.b_port)]
        if untrusted and self.fabric.forget_links(untrusted):
            self._background(self._save_links)
        connected = {c.dpid for c in channels}
        for dpid in list(self._pending):
            if dpid not in connected:
                del self._pending[dpid]  # a new connection is diffed in full anyway
        for dpid in connected:
            self._pending.setdefault(dpid, set()).update(delta.get(dpid, ()))
        failures: dict[str, str] = {}
        refusals: dict[str, tuple[FlowRefusal, ...]] = {}
        due = [c for c in channels if self._pending[c.dpid] or not self.programmer.knows(c)]
        if due:
            # Switches in parallel: each waits for its own barrier. One alone is synced right here.
            futures = {c.dpid: self._sync_pool.submit(self.programmer.sync, c, self.compiler.table(c.dpid),
                                                      self._pending[c.dpid], self.compiler.groups(c.dpid))
                       if len(due) > 1 else
                       _done(self.programmer.sync, c, self.compiler.table(c.dpid), self._pending[c.dpid],
                             self.compiler.groups(c.dpid))
                       for c in due}
            for dpid, future in futures.items():
                try:
                    result = future.result()
                    self._pending[dpid] = set()
                    if result.changes:
                        LOG.info("switch %s: +%d ~%d -%d flows, %d group-mods", dpid, result.added, result.modified,
                                 result.deleted, result.groups)
                except Exception as exc:  # one failing switch must not stop the others
                    failures[dpid] = str(exc) or type(exc).__name__
                    if isinstance(exc, ProgrammingError):
                        refusals[dpid] = exc.refusals
                    LOG.warning("switch %s: %s", dpid, failures[dpid])
        self._note_failures(failures, connected)
        self.stats["passes"] += 1
        self.stats["pass_failures"] += bool(failures)
        self.stats["last_pass_seconds"] = time.perf_counter() - started
        self.stats["last_compile_seconds"] = compiled - started  # reading the changes, and compiling them
        self.stats["last_pass_units"] = sum(n for kind, n in self.compiler.recompiled.items() if "." in kind)
        return ConvergeReport(not failures, failures, frozenset(delta), refusals, delta)

    def _over_budget(self, before: dict[str, int], delta: dict[str, set[ChangeKey]]) -> tuple[OverBudget, ...]:
        """The switches this compile grew past the flow budget (one already past it may still shrink)."""
        budget = self.max_flows_per_switch
        if budget is None:
            return ()
        sizes = {dpid: len(self.compiler.table(dpid)) for dpid in delta}
        return tuple(OverBudget(dpid, size, budget) for dpid, size in sorted(sizes.items())
                     if size > budget and size > before.get(dpid, 0))

    def _refresh_views(self) -> None:
        """What other threads read between passes (LLDP, REST): plain values, never the compiler itself."""
        self._bound, self._pins = self.compiler.trunk_rules()
        self._links: tuple[Link, ...] = self.compiler.usable_links()
        before, self._attachments = self._attachments, self.compiler.attachments()
        if self._has_balancers and before != self._attachments:
            self._health_touched = True  # a member's port may have moved
        for port_id, attachment in self._attachments.items():
            if attachment != before.get(port_id):
                log = LOG.warning if attachment.conflict else LOG.info
                log("port %s: attached by OVSDB to %s%s", port_id,
                    "/".join(attachment.binding) if attachment.binding else "nothing",
                    f" ({attachment.conflict})" if attachment.conflict else "")
        for port_id in before.keys() - self._attachments.keys():
            LOG.info("port %s: no interface claims it any more", port_id)
        self._gateways = {router_id: self.compiler.gateway(router_id) for router_id in self._directory.router_ids()}

    def _may_carry(self, topology: Topology, dpid: str, ofport: int) -> bool:
        switch = topology.switch(dpid)
        port = switch.port(ofport) if switch else None
        return port is not None and is_candidate(port, self._bound.get(dpid, _UNBOUND), self._pins.get(dpid))

    def _candidates(self, dpid: str) -> tuple[SwitchPort, ...]:
        """The trunk candidates of a switch as its ports are now, and as bindings and pins were at the last pass.

        Kept until one of those changes, so an LLDP round costs what the candidates cost, not all ports."""
        switch = self.fabric.switch(dpid)
        if switch is None:
            return ()
        bound, pins = self._bound.get(dpid, _UNBOUND), self._pins.get(dpid)
        cached = self._candidate_cache.get(dpid)
        if cached is None or cached[0] is not switch or cached[1] is not bound or cached[2] is not pins:
            cached = self._candidate_cache[dpid] = (switch, bound, pins, trunk_candidates(switch, bound, pins))
        return cached[3]

    def _blame(self, report: ConvergeReport) -> list[RefusedFlow]:
        """The refused flows that the change itself introduced (changed by this very pass).

        A switch may also be refusing a flow it refused before the change (one that topology
        caused): that is not the change's fault, and rolling the change back would not fix it.
        """
        return [self._describe(dpid, refusal)
                for dpid, refusals in report.refusals.items() for refusal in refusals
                if refusal.flow is not None and refusal.flow.key in report.delta.get(dpid, ())]

    def _describe(self, dpid: str, refusal: FlowRefusal) -> RefusedFlow:
        """A refused group shows as table "group" matching its group id."""
        flow = refusal.flow
        assert flow is not None
        if isinstance(flow, Group):
            return RefusedFlow(dpid, "group", 0, {"group_id": flow.group_id}, self.compiler.owner(flow.cookie),
                               refusal.error)
        return RefusedFlow(dpid, flow.table, flow.priority, ofwire.describe_match(ofwire.encode_match(flow.match)),
                           self.compiler.owner(flow.cookie), refusal.error)

    def _note_failures(self, failures: dict[str, str], connected: set[str]) -> None:
        """Backoff bookkeeping: a failing switch is retried after 1, 2, 4, ... s (capped)."""
        first, cap = self.backoff
        now = time.monotonic()
        for dpid in list(self._failing):
            if dpid not in failures or dpid not in connected:
                del self._failing[dpid]
        for dpid, reason in failures.items():
            last = self._failing.get(dpid)
            attempts = last.attempts + 1 if last else 1
            delay = min(cap, first * 2 ** (attempts - 1))
            self._failing[dpid] = SwitchFailure(reason, last.since if last else time.time(), attempts, now + delay)

    def _flush_zones(self) -> None:
        """Flush the conntrack zones of the ports and routers deleted by the last pass on every connected switch,
        and every freed zone on a switch connected since (it may have been away when its owner went).

        Runs after the flows that used a zone are gone, so nothing can re-create its entries."""
        freed, self._freed = self._freed, set()
        every: frozenset[int] | None = None
        for channel in self.fabric.channels():
            todo: set[int] | frozenset[int] = freed
            if self._flushed.get(channel.dpid) is not channel:
                every = self.store.freed_zones() if every is None else every
                todo = every
            if todo and not self._flush(channel, sorted(todo)):
                self._flushed.pop(channel.dpid, None)  # flush them all on the next pass
                continue
            self._flushed[channel.dpid] = channel

    def _flush(self, channel: Channel, zones: list[int]) -> bool:
        try:
            batch = channel.batch()
            for zone in zones:
                batch.add(lambda xid, zone=zone: ofwire.ct_flush_zone(xid, zone))
            errors = batch.finish(self.programmer.timeout)
        except Exception as exc:
            LOG.warning("switch %s: conntrack flush failed: %s", channel.dpid, exc)
            return False
        if errors:
            LOG.warning("switch %s: conntrack flush refused: %s", channel.dpid, errors[:3])
            return False
        self.stats["zone_flushes"] += len(zones)
        return True

    # --- readiness after a restart -----------------------------------------------------------
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

    # --- background threads ---------------------------------------------------------------------
    def _worker(self) -> None:
        errors = 0
        while not self._stop.is_set():
            self._dirty.wait(self._next_retry())
            if self._stop.is_set():
                return
            self._dirty.clear()
            errors = self._guarded("converge", lambda: self.converge(timeout=60.0), errors)
            if errors:
                self._dirty.set()  # the pass that failed still has to happen

    def _next_retry(self) -> float | None:
        """Seconds until the earliest failing switch is due again (None: nothing to retry)."""
        due = [failure.retry_at for failure in list(self._failing.values())]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _discovery(self) -> None:
        errors = 0
        while not self._stop.wait(self.lldp_interval):
            errors = self._guarded("lldp", self._discovery_round, errors)

    def _discovery_round(self) -> None:
        self._check_ready()
        self._send_lldp()
        if self.fabric.expire_links():
            self._save_links()
            self.request()

    def _ovsdb_loop(self, monitor: ovsdb.Monitor) -> None:
        errors = 0
        while not self._stop.is_set():
            errors = self._guarded("ovsdb", lambda: monitor.run(self._stop), errors)

    def _neighbor_loop(self) -> None:
        """Every sixth of the refresh interval (at most 10 s), the io thread re-ARPs and expires bindings."""
        errors = 0
        while not self._stop.wait(min(10.0, self.neighbor_refresh / 6)):
            errors = self._guarded("neighbors", lambda: self._on_io(self._neighbor_round), errors)

    def _health_loop(self) -> None:
        """As often as the shortest monitor interval needs (controller.health.HealthChecker.period), the io thread
        sends the probes that are due and expires those unanswered."""
        errors = 0
        while not self._stop.wait(self._health.period()):
            errors = self._guarded("health", lambda: self._on_io(self._health_round), errors)

    def _on_io(self, work: Callable[[], object]) -> None:
        """Run `work` on the io thread and wait for it (its exception raised here)."""
        try:
            job = self._io.submit(work)
        except RuntimeError:  # shut down: the process is stopping
            return
        try:
            job.result()
        except CancelledError:  # stop() dropped it before it ran: the process is stopping, nothing failed
            if not self._stop.is_set():
                raise

    def _guarded(self, thread: str, work: Callable[[], object], errors: int) -> int:
        """Run one round of a background loop; on an exception log it, count it, and back off.

        Returns the number of rounds in a row that failed, for the next call's backoff.
        """
        try:
            work()
            return 0
        except Exception:
            LOG.exception("%s thread: round failed; retrying", thread)
            self.thread_errors[thread] += 1
            first, cap = self.backoff
            self._stop.wait(min(cap, first * 2 ** errors))
            return errors + 1

    def _background(self, work: Callable[[], object]) -> None:
        """Run `work` on the io thread (database writes, packet-outs), never on the caller's."""
        try:
            self._io.submit(self._io_job, work)
        except RuntimeError:  # shut down: the process is stopping
            pass

    def _io_job(self, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:
            LOG.exception("io thread: job failed")
            self.thread_errors["io"] += 1

    # --- counters per object (on the stats thread) ------------------------------------------------------
    def _stats_loop(self) -> None:
        errors = 0
        while self._stats_schedule.wait():
            try:
                errors = self._guarded("stats", self._read_counters, errors)
            finally:
                self._stats_schedule.ended()

    def _read_counters(self) -> None:
        """One flow-stats request per counting app and connected switch, for the flows that count objects."""
        started = time.perf_counter()
        counted = self._counted_flows()
        cookies = {cookie for cookie, _ in counted}
        for channel in self.fabric.channels():
            try:
                readings = read_switch(channel, cookies, self.programmer.timeout)
            except (ChannelClosed, ChannelTimeout) as exc:  # gone meanwhile, or slow: its sums wait for the next
                LOG.debug("switch %s: counters not read: %s", channel.dpid, exc)
                continue
            self.counters.update(channel.dpid, readings, counted)
        self.counters.keep(counted)
        self._counter_reads = (self._counter_reads[0] + 1, time.perf_counter() - started)

    def _counted_flows(self) -> dict[Counted, tuple[ObjectRef, ...]]:
        """apps.counters.counted_flows of the store as it is, made again only when the store changed."""
        revision = self.store.revision()
        if self._counted is None or self._counted[0] != revision:
            self._counted = (revision, counted_flows(self.store.snapshot()))
        return self._counted[1]

    # --- routers: packet-ins and MAC bindings (on the io thread) --------------------------------------
    def _packet_in_job(self, handle: Callable[[str, dict[str, Any], bytes], None], dpid: str,
                       fields: dict[str, Any], data: bytes) -> None:
        with self._queued_lock:
            self._queued -= 1
        handle(dpid, fields, data)

    def _time_exceeded(self, dpid: str, fields: dict[str, Any], data: bytes) -> None:
        """ICMP time-exceeded from the router (reg8) at its address on the packet's network (reg1), back out of
        the port the packet came in by."""
        router = self._directory.router_by_key(fields.get(REG_ROUTER))
        network = self._directory.network_by_segment(fields.get(REG_NETWORK))
        leg = self._directory.leg(router, network) if router is not None and network is not None else None
        channel, in_port = self.fabric.channel(dpid), fields.get("in_port")
        try:
            if leg is None or channel is None or in_port is None:
                raise icmp.NotAnswered(f"router key {fields.get(REG_ROUTER)} on segment {fields.get(REG_NETWORK)} "
                                       "is unknown (or the switch went)")
            frame = icmp.time_exceeded(data, leg.router.mac, leg.ip_address, self._ip_ident)
        except icmp.NotAnswered as exc:
            self.router_stats["icmp_time_exceeded_unanswered_total"] += 1
            LOG.debug("switch %s: no time-exceeded: %s", dpid, exc)
            return
        self._ip_ident = (self._ip_ident + 1) & 0xFFFF
        channel.send(ofwire.packet_out(channel.next_xid(), in_port, frame))
        self.router_stats["icmp_time_exceeded_total"] += 1

    def _resolve(self, dpid: str, fields: dict[str, Any], data: bytes) -> None:
        """A router (reg8) needs the MAC of a next hop (reg9) on an external network (reg1): ARP for it out of the
        network's uplink, at most once a second per address. The packet itself is dropped."""
        router = self._directory.router_by_key(fields.get(REG_ROUTER))
        network = self._directory.network_by_segment(fields.get(REG_NETWORK))
        leg = self._directory.leg(router, network) if router is not None and network is not None else None
        nexthop = fields.get(REG_NEXTHOP)
        address = str(ipaddress.IPv4Address(nexthop)) if isinstance(nexthop, int) and nexthop else ""
        if leg is None or not leg.gateway or not in_network(address, leg.network):
            self.router_stats["arp_requests_unresolvable_total"] += 1
            LOG.debug("switch %s: nothing to resolve for %s", dpid, fields)
            return
        if not self._neighbors.ask((leg.network.id, address), self._clock()):
            self.router_stats["arp_requests_limited_total"] += 1
            return
        self._send_arp_request(leg, address)

    def _send_arp_request(self, leg: Leg, address: str) -> bool:
        """Who has `address`? out of the uplink of the leg's network, from the leg's router."""
        uplink = leg.network.uplink
        channel = self.fabric.channel(uplink[0]) if uplink is not None else None
        switch = self.fabric.switch(uplink[0]) if uplink is not None else None
        ofport = switch.ofport(uplink[1]) if switch is not None and uplink is not None else None
        if channel is None or ofport is None:
            self.router_stats["arp_requests_unresolvable_total"] += 1
            LOG.debug("network %s: its uplink %s is not connected", leg.network.id, uplink)
            return False
        frame = icmp.arp_request(leg.router.mac, leg.ip_address, address)
        channel.send(ofwire.packet_out(channel.next_xid(), ofport, frame))
        self.router_stats["arp_requests_total"] += 1
        return True

    def _arp_reply(self, dpid: str, fields: dict[str, Any], data: bytes) -> None:
        """An ARP reply from an uplink: bound (and the compiler told) if a router on that network asked for it."""
        now = self._clock()
        arp = icmp.parse_arp(data)
        switch = self.fabric.switch(dpid)
        in_port = fields.get("in_port")
        interface = _interface_name(switch, in_port)
        network = self._directory.network_by_uplink(dpid, interface) if interface else None
        router = self._directory.router_by_mac(arp.eth_dst) if arp is not None else None
        leg = self._directory.leg(router, network) if router is not None and network is not None else None
        if arp is None or arp.op != icmp.ARP_REPLY:
            reason = "not an ARP reply"
        elif network is None:
            reason = f"came in by {interface or in_port}, the uplink of no network"
        elif not in_network(arp.spa, network):
            reason = f"{arp.spa} is outside {network.cidr} of network {network.id}"
        elif leg is None or not leg.gateway or arp.tha != leg.router.mac or arp.tpa != leg.ip_address:
            reason = f"for {arp.eth_dst} {arp.tpa}, not a router's gateway on network {network.id}"
        elif arp.sha != arp.eth_src or int(arp.sha[:2], 16) & 1 or arp.sha == "00:00:00:00:00:00":
            reason = f"sender {arp.sha} is not the frame's unicast source {arp.eth_src}"
        elif not self._neighbors.expects((network.id, arp.spa), now):
            reason = f"{arp.spa} was not asked for"
        else:
            if self.store.put_mac_binding(network.id, arp.spa, arp.sha, now):
                self.router_stats["mac_bindings_learned_total"] += 1
                self.request()
            self._neighbors.confirmed((network.id, arp.spa), now)
            return
        self.router_stats["arp_refused_total"] += 1
        if self._refusal_logs.take("arp", now):
            LOG.warning("switch %s: refused ARP from port %s: %s", dpid, interface or in_port, reason)

    def _neighbor_round(self) -> None:
        """Re-ARP the bindings due for it, forget the expired ones (as the store has them: a binding another
        controller learned, or whose network went, is known from here on, or forgotten)."""
        now = self._clock()
        bindings = self.store.mac_bindings()
        self._neighbors.known(((b.network_id, b.ip_address), at) for b, at in bindings)
        self._binding_count = len(bindings)
        due = self._neighbors.due(now)
        expired = 0
        for (network_id, address), confirmed in due.expire:
            if self.store.delete_mac_binding(network_id, address, unconfirmed_since=confirmed):
                self._neighbors.forget((network_id, address))
                expired += 1
        if expired:
            self.router_stats["mac_bindings_expired_total"] += expired
            self._binding_count -= expired
            self.request()
        for network_id, address in due.refresh:
            legs = self._directory.gateway_legs(network_id)
            if legs:
                self._send_arp_request(legs[0], address)

    # --- load balancers' health checks (on the io thread but for _health_note) -------------------------
    def _health_note(self) -> None:
        """After a pass (and the commit or rollback of its change): if it touched balancers' members, the io thread
        rebuilds the checker's members from the store (now that the store holds what the pass compiled)."""
        if self._health_touched:
            self._health_touched = False
            self._health_wanted += 1

    def _health_round(self) -> None:
        """Rebuild the members if a pass asked for it, send the probes that are due (out of each member's port, one
        packet-out batch per switch), and store what expired probes decided."""
        now = self._clock()
        wanted = self._health_wanted
        if wanted != self._health_built:
            policy = self.policy()  # members' ports attached by OVSDB are probed where they are
            found, statuses = health.targets(policy)
            self._health.update(found, statuses, now)
            self._has_balancers = bool(policy.load_balancers)
            self._health_built = wanted
        decided = self._health.due(now)
        batches: dict[str, list[bytes]] = {}
        for probe in decided.probes:
            dpid, interface = probe.target.binding
            channel, switch = self.fabric.channel(dpid), self.fabric.switch(dpid)
            if channel is None:  # the switch is away: no news of the member, either way
                self._health.cancel(probe)
                continue
            ofport = switch.ofport(interface) if switch is not None else None
            if ofport is None:  # its interface is gone: the probe goes unanswered, a failure
                continue
            batches.setdefault(dpid, []).append(ofwire.packet_out(channel.next_xid(), ofport, probe.frame))
        for dpid, messages in batches.items():
            channel = self.fabric.channel(dpid)
            if channel is not None:
                channel.send(b"".join(messages))
        self._store_health(decided.changes, now)

    def _probe_answer(self, dpid: str, fields: dict[str, Any], data: bytes) -> None:
        """A member's answer to a probe (its flow sent it from its port): a success or a failure; a SYN-ACK is
        answered with an RST out of the same port."""
        now = self._clock()
        switch = self.fabric.switch(dpid)
        in_port = fields.get("in_port")
        interface = _interface_name(switch, in_port)
        answered = self._health.answer(dpid, interface, data, now)
        channel = self.fabric.channel(dpid)
        if answered.replies and channel is not None and in_port is not None:
            channel.send(b"".join(ofwire.packet_out(channel.next_xid(), in_port, frame)
                                  for frame in answered.replies))
        self._store_health(answered.changes, now)

    def _store_health(self, changes: tuple[health.Change, ...], now: float) -> None:
        stored = False
        for change in changes:
            if self.store.set_member_status(change.member_id, change.status, now):
                LOG.info("load-balancer member %s is %s", change.member_id, change.status)
                stored = True
        if stored:
            self.request()

    # --- discovery ------------------------------------------------------------------------------
    def _check_link(self, sender: End, receiver: End) -> None:
        """Both ends are trunk candidates of connected switches (a bound port or an unpinned
        interface never carries a link), on two different switches."""
        if sender[0] == receiver[0]:
            raise lldp.Refused(f"loop: sent by {sender[0]}:{sender[1]}, a port of the same switch")
        for role, (dpid, ofport) in (("sender", sender), ("receiver", receiver)):
            if not self.fabric.is_connected(dpid):
                raise lldp.Refused(f"{role} switch {dpid} is not connected")
            if all(port.ofport != ofport for port in self._candidates(dpid)):
                raise lldp.Refused(f"{role} {dpid}:{ofport} may not carry a link (bound to a port, not a "
                                   "pinned trunk, or down)")

    def _send_lldp(self, dpid: str | None = None) -> None:
        """One signed LLDP frame out of every trunk candidate of each connected switch (or of `dpid`):
        the cost grows with trunk candidates, not with all ports."""
        now = time.time()
        for channel in self.fabric.channels():
            if dpid not in (None, channel.dpid):
                continue
            frames = [ofwire.packet_out(channel.next_xid(), port.ofport,
                                        lldp.frame(channel.dpid, port.ofport, port.mac, self._secret, now))
                      for port in self._candidates(channel.dpid)]
            if frames:
                channel.send(b"".join(frames))

    def _save_links(self) -> None:
        self.store.save_links(self.fabric.links())


def _done(work: Callable[..., T], *args: Any) -> Future[T]:
    """`work(*args)` run here and now, as a future (its exception kept in it, as a pool's would be)."""
    future: Future[T] = Future()
    try:
        future.set_result(work(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _interface_name(switch: Switch | None, ofport: int | None) -> str | None:
    """The name of the switch's port at `ofport` (None when either is unknown)."""
    port = switch.port(ofport) if switch is not None and ofport is not None else None
    return port.name if port is not None else None
