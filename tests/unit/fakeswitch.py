"""An OpenFlow switch in memory, behind the production Channel, for tests of the runtime without OVS.

It speaks exactly the messages the controller sends (bundles of flow-mods and group-mods, barriers,
flow-stats and group-desc requests, packet-outs, conntrack zone flushes) and answers the way OVS 3.1
does: adds refused at add time (`refuse_add`) or at commit time (`table_limit`, OVS's full table) both leave the
bundle unapplied; barriers can be held back (`hold`) to model a slow switch. Flows count what a test says they
matched (`count`), and start from zero again when added anew, not when modified, as OVS's do; flow-stats requests
are answered under their cookie and mask. What a real switch does with packets is the bridge and Mininet tests'
business, not this one's.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable

from apps.topology import SwitchPort
from controller import ofwire
from controller.channel import Channel

WireKey = tuple[int, int, bytes]
_HEADER = struct.Struct("!BBHI")
_FLOW_MOD = struct.Struct("!BBHIQQBBHHHIIIH2xHH")
_STATS_ENTRY = struct.Struct("!HBxI4xH10xQQQHH")
_OFPT_PACKET_OUT = 13


class FakeSwitch:
    def __init__(self, dpid: str, ports: list[SwitchPort]) -> None:
        self.dpid = dpid
        self.ports = ports
        self.channel = Channel(dpid, self.receive)
        self.flows: dict[WireKey, tuple[int, bytes]] = {}  # (table, priority, match) -> (cookie, instructions)
        self.groups: dict[int, bytes] = {}  # group id -> buckets (select groups only)
        self.counts: dict[WireKey, tuple[int, int]] = {}  # (packets, bytes) each flow matched
        self.stats_requests = 0
        self.refuse_add: Callable[[int, int, bytes], str | None] = lambda table, priority, match: None
        self.table_limit: dict[int, int] = {}
        self.packet_outs: list[tuple[int, bytes]] = []
        self.packet_out_threads: list[str] = []  # which thread sent each packet-out
        self.barriers_waiting = 0
        self.flushed_zones: list[int] = []
        self.bundles_committed = 0
        self.hold = threading.Event()  # set: answer barriers at once; clear: keep them until set again
        self.hold.set()
        self._lock = threading.Lock()
        self._bundle: list[tuple[int, int, WireKey, tuple[int, bytes]]] = []  # (xid, command, key, value)
        self._bundle_errors = False

    def receive(self, data: bytes) -> None:
        """What the channel sends: one or more whole messages."""
        pos = 0
        while pos < len(data):
            _, kind, length, xid = _HEADER.unpack_from(data, pos)
            self._message(kind, xid, data[pos:pos + length])
            pos += length

    def _message(self, kind: int, xid: int, msg: bytes) -> None:
        if kind == ofwire.OFPT_BARRIER_REQUEST:
            threading.Thread(target=self._barrier_reply, args=(xid,), daemon=True).start()
        elif kind == ofwire.OFPT_MULTIPART_REQUEST:
            groups = struct.unpack_from("!H", msg, 8)[0] == ofwire.OFPMP_GROUP_DESC
            if not groups:
                self.stats_requests += 1
            body = self._group_desc() if groups else self._flow_stats(*struct.unpack_from("!QQ", msg, 32))
            self.channel.on_multipart_reply(xid, body, more=False)
        elif kind == _OFPT_PACKET_OUT:
            out_port = struct.unpack_from("!I", msg, 28)[0]
            self.packet_outs.append((out_port, msg[40:]))
            self.packet_out_threads.append(threading.current_thread().name)
        elif kind == ofwire.OFPT_EXPERIMENTER:
            self._experimenter(xid, msg)

    def _barrier_reply(self, xid: int) -> None:
        with self._lock:
            self.barriers_waiting += 1
        self.hold.wait()
        with self._lock:
            self.barriers_waiting -= 1
        self.channel.on_barrier_reply(xid)

    def _experimenter(self, xid: int, msg: bytes) -> None:
        vendor, subtype = struct.unpack_from("!II", msg, 8)
        if vendor == 0x2320:  # Nicira: the only one we send is NXT_CT_FLUSH_ZONE
            self.flushed_zones.append(struct.unpack_from("!H", msg, 22)[0])
            return
        if subtype == ofwire.ONF_ET_BUNDLE_ADD_MESSAGE:
            self._bundle_add(xid, msg[24:])
            return
        ctrl = struct.unpack_from("!H", msg, 20)[0]
        with self._lock:
            if ctrl == ofwire.ONF_BCT_OPEN_REQUEST:
                self._bundle, self._bundle_errors = [], False
            elif ctrl == ofwire.ONF_BCT_COMMIT_REQUEST:
                self._commit(xid)
            elif ctrl == ofwire.ONF_BCT_DISCARD_REQUEST:
                self._bundle = []

    def _bundle_add(self, xid: int, flow_mod: bytes) -> None:
        if flow_mod[1] == ofwire.OFPT_GROUP_MOD:  # a group-mod: keyed by ("group", id), valued by its buckets
            command, group_id = struct.unpack_from("!H2xI", flow_mod, 8)
            with self._lock:
                self._bundle.append((xid, command, ("group", group_id), (0, flow_mod[16:])))
            return
        fields = _FLOW_MOD.unpack_from(flow_mod)
        cookie, table, command, priority, match_len = fields[4], fields[6], fields[7], fields[10], fields[-1]
        match = flow_mod[52:48 + match_len]
        instructions = flow_mod[48 + match_len + (-match_len % 8):]
        error = self.refuse_add(table, priority, match)
        if error:
            self._bundle_errors = True
            self.channel.on_error(xid, error)
        with self._lock:
            self._bundle.append((xid, command, (table, priority, match), (cookie, instructions)))

    def _commit(self, xid: int) -> None:
        """Apply the bundle all at once, or not at all (a full table blames the add that overflowed)."""
        flows, groups = dict(self.flows), dict(self.groups)
        for add_xid, command, key, value in self._bundle:
            if key[0] == "group":
                if command == ofwire.OFPGC_DELETE:
                    groups.pop(key[1], None)
                else:
                    groups[key[1]] = value[1]
                continue
            if command != ofwire.OFPFC_MODIFY_STRICT:
                self.counts.pop(key, None)
            if command == ofwire.OFPFC_DELETE_STRICT:
                flows.pop(key, None)
                continue
            flows[key] = value
            limit = self.table_limit.get(key[0])
            if limit is not None and sum(1 for k in flows if k[0] == key[0]) > limit:
                self.channel.on_error(add_xid, "FLOW_MOD_FAILED/TABLE_FULL")
                self.channel.on_error(xid, "FLOW_MOD_FAILED/TABLE_FULL")
                self._bundle = []
                return
        if not self._bundle_errors:
            self.flows, self.groups = flows, groups
            self.bundles_committed += 1
        self._bundle = []

    def _group_desc(self) -> bytes:
        return b"".join(struct.pack("!HBxI", 8 + len(buckets), ofwire.OFPGT_SELECT, group_id) + buckets
                        for group_id, buckets in sorted(self.groups.items()))

    def count(self, cookie: int, packets: int, octets: int, table: int | None = None) -> int:
        """The flows with `cookie` (in `table`) matched that many more packets and bytes; returns how many flows."""
        keys = [key for key, (flow_cookie, _) in self.flows.items()
                if flow_cookie == cookie and table in (None, key[0])]
        for key in keys:
            had = self.counts.get(key, (0, 0))
            self.counts[key] = (had[0] + packets, had[1] + octets)
        return len(keys)

    def _flow_stats(self, cookie: int = 0, mask: int = 0) -> bytes:
        entries = []
        for key, (flow_cookie, instructions) in sorted(self.flows.items()):
            if flow_cookie & mask != cookie & mask:
                continue
            table, priority, match = key
            match_len = 4 + len(match)
            pad = bytes(-match_len % 8)
            length = 48 + match_len + len(pad) + len(instructions)
            packets, octets = self.counts.get(key, (0, 0))
            entries.append(_STATS_ENTRY.pack(length, table, 0, priority, flow_cookie, packets, octets, 1, match_len)
                           + match + pad + instructions)
        return b"".join(entries)
