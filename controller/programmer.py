"""The one place flows and groups reach a switch: diff desired against installed, send one atomic bundle.

Installed state is read back from the switch when a channel is new (connect, reconnect, our own
restart) and then tracked from our own successful commits. Then a sync is told which flow keys
changed since the last one and encodes and compares only those: a change costs what it changes.
Unchanged flows are never deleted and re-added: that keeps their counters and leaves no window
without them.

Select groups go in the same bundle (OVS 3.1 takes group-mods in ONF bundles, applied in order): added or
modified groups before the flows, which may name them (OVS refuses a flow naming a missing group), deleted
groups after them (OVS would delete the flows still naming a group with it). A changed group is one
OFPGC_MODIFY of the whole group: established connections keep their NAT in conntrack, whatever bucket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from apps.flows import Flow
from apps.groups import Group, GroupKey, is_group_key
from apps.incremental import ChangeKey, FlowKey
from apps.pipeline import METERS, table_id
from controller import ofwire
from controller.channel import Batch, Channel

WireKey = tuple[int, int, bytes]  # (table id, priority, canonical match bytes)
WireValue = tuple[int, bytes]     # (cookie, instructions bytes)
GroupValue = tuple[int, bytes]    # (group type, buckets bytes)


@dataclass(frozen=True)
class FlowRefusal:
    """One flow-mod or group-mod of a bundle that the switch refused, and the switch's reason."""

    command: int
    key: WireKey | GroupKey
    flow: Flow | Group | None  # the desired flow or group (None for a delete)
    error: str


class ProgrammingError(Exception):
    """The switch refused the bundle; nothing of it was applied, so what it holds is unchanged.

    `refusals` names the flow-mods the switch blamed (empty when it blamed the bundle as a whole).
    """

    def __init__(self, message: str, refusals: tuple[FlowRefusal, ...] = ()) -> None:
        super().__init__(message)
        self.refusals = refusals


@dataclass(frozen=True)
class SyncResult:
    added: int = 0
    modified: int = 0
    deleted: int = 0
    groups: int = 0  # group-mods of any kind

    @property
    def changes(self) -> int:
        return self.added + self.modified + self.deleted + self.groups


def wire(flow: Flow) -> tuple[WireKey, WireValue]:
    """A flow in the switch's own terms; the encoders memoize, so recompiles stay cheap."""
    return ((table_id(flow.table), flow.priority, ofwire.encode_match(flow.match)),
            (flow.cookie, ofwire.encode_instructions(flow.actions, flow.goto, flow.meter)))


class _Bundle:
    """One atomic bundle, opened on the first change and streamed to the switch while the diff runs."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.batch: Batch | None = None
        self.id = 0
        self.mods: list[tuple[int, WireKey, WireValue]] = []
        self.group_mods: list[tuple[int, int, GroupValue]] = []  # (command, group id, value)
        self._flows: dict[int, tuple[int, WireKey | GroupKey, Flow | Group | None]] = {}  # add xid -> its content

    def _open(self) -> Batch:
        if self.batch is None:
            self.batch = self.channel.batch()
            self.id = self.batch.add(lambda xid: ofwire.bundle_open(xid, xid, ofwire.BUNDLE_FLAGS))
        return self.batch

    def put_group(self, command: int, group_id: int, value: GroupValue, group: Group | None = None) -> None:
        batch, bundle_id = self._open(), self.id
        self.group_mods.append((command, group_id, value))
        xid = batch.add(lambda xid: ofwire.bundle_add(xid, bundle_id, ofwire.BUNDLE_FLAGS,
                                                      ofwire.group_mod(xid, command, group_id, value[1])))
        self._flows[xid] = (command, ("group", group_id), group)

    def put(self, command: int, key: WireKey, value: WireValue, flow: Flow | None = None) -> None:
        self._open()
        self.mods.append((command, key, value))
        (table, priority, match), (cookie, instructions) = key, value
        bundle_id = self.id
        xid = self.batch.add(lambda xid: ofwire.bundle_add(
            xid, bundle_id, ofwire.BUNDLE_FLAGS,
            ofwire.flow_mod(xid, command, table, priority, match, instructions, cookie)))
        self._flows[xid] = (command, key, flow)

    def commit(self, timeout: float) -> None:
        """Commit only if no add was refused: add-time errors do not stop a commit by themselves.

        Errors found at commit time (a full table, say) name the add they blame, so the commit's
        batch listens for the adds' xids too.
        """
        assert self.batch is not None
        errors = self.batch.finish(timeout)
        ending = self.channel.batch(self._flows)
        if errors:
            ending.add(lambda xid: ofwire.bundle_discard(xid, self.id, ofwire.BUNDLE_FLAGS))
            ending.finish(timeout)
            raise self._refused(errors, f"refused {len(errors)} flow(s)")
        ending.add(lambda xid: ofwire.bundle_commit(xid, self.id, ofwire.BUNDLE_FLAGS))
        errors = ending.finish(timeout)
        if errors:
            raise self._refused(errors, "refused the commit")

    def _refused(self, errors: list[tuple[int, str]], what: str) -> ProgrammingError:
        refusals = tuple(FlowRefusal(*self._flows[xid], error) for xid, error in errors if xid in self._flows)
        shown = "; ".join(error for _, error in errors[:3])
        return ProgrammingError(f"switch {self.channel.dpid} {what}: {shown}", refusals)


class Programmer:
    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._installed: dict[str, tuple[Channel, dict[WireKey, WireValue], dict[int, GroupValue]]] = {}
        self._lock = threading.Lock()
        self._metered: dict[str, Channel] = {}  # dpid -> the channel that installed the meters
        self.stats = {"flow_mods": 0, "group_mods": 0, "bundles": 0, "bundle_failures": 0, "readbacks": 0,
                      "readback_seconds": 0.0}

    def forget(self, dpid: str) -> None:
        """Drop what we believe is installed on `dpid` (it will be read back on next sync)."""
        with self._lock:
            self._installed.pop(dpid, None)

    def knows(self, channel: Channel) -> bool:
        """Whether what this channel's switch holds is known (else the next sync reads it back)."""
        with self._lock:
            cached = self._installed.get(channel.dpid)
        return cached is not None and cached[0] is channel

    def forget_all(self) -> None:
        """Drop every switch's cache: the next sync of each reads back and diffs in full."""
        with self._lock:
            self._installed.clear()

    def installed(self, channel: Channel) -> dict[WireKey, WireValue]:
        """The flows the switch holds: cached for this channel, else read back from the switch."""
        return self._have(channel)[0]

    def installed_groups(self, channel: Channel) -> dict[int, GroupValue]:
        """The groups the switch holds by group id, like installed()."""
        return self._have(channel)[1]

    def _have(self, channel: Channel) -> tuple[dict[WireKey, WireValue], dict[int, GroupValue]]:
        with self._lock:
            cached = self._installed.get(channel.dpid)
        if cached is not None and cached[0] is channel:
            return cached[1], cached[2]
        started = time.perf_counter()
        have = {(f.table_id, f.priority, f.match): (f.cookie, f.instructions)
                for f in channel.dump_flows(self.timeout)}
        groups = {g.group_id: (g.type, g.buckets) for g in channel.dump_groups(self.timeout)}
        self.stats["readbacks"] += 1
        self.stats["readback_seconds"] += time.perf_counter() - started
        with self._lock:
            self._installed[channel.dpid] = (channel, have, groups)
        return have, groups

    def sync(self, channel: Channel, desired: Mapping[FlowKey, Flow], changed: Iterable[ChangeKey] | None = None,
             groups: Mapping[int, Group] | None = None) -> SyncResult:
        """Make the switch hold exactly `desired` flows and `groups` (by group id), atomically; raise
        ProgrammingError if it refuses.

        With `changed` (the flow keys, and ("group", id) keys, that may differ since the last successful sync on
        this channel), only those are encoded and compared; without it, or when the channel is new and what it
        holds has to be read back, everything is.
        """
        groups = {} if groups is None else groups
        with self._lock:
            cached = self._installed.get(channel.dpid)
        with self._lock:
            metered = self._metered.get(channel.dpid) is channel
        if not metered:
            self._install_meters(channel)
        bundle = _Bundle(channel)
        if changed is None or cached is None or cached[0] is not channel:
            have, have_groups = self._have(channel)
            dropped = self._put_groups(bundle, have_groups, groups, groups.keys() | have_groups.keys())
            wanted = {self._put(bundle, have, flow) for flow in desired.values()}
            for key in have.keys() - wanted:
                bundle.put(ofwire.OFPFC_DELETE_STRICT, key, (0, b""))
        else:
            have, have_groups = cached[1], cached[2]
            changed = list(changed)
            dropped = self._put_groups(bundle, have_groups, groups, [key[1] for key in changed if is_group_key(key)])
            for key in changed:
                if is_group_key(key):
                    continue
                flow = desired.get(key)
                if flow is not None:
                    self._put(bundle, have, flow)
                    continue
                wire_key = (table_id(key[0]), key[1], ofwire.encode_match(key[2]))
                if wire_key in have:
                    bundle.put(ofwire.OFPFC_DELETE_STRICT, wire_key, (0, b""))
        for group_id in dropped:
            bundle.put_group(ofwire.OFPGC_DELETE, group_id, (ofwire.OFPGT_SELECT, b""))
        if not bundle.mods and not bundle.group_mods:
            return SyncResult()
        self.stats["flow_mods"] += len(bundle.mods)
        self.stats["group_mods"] += len(bundle.group_mods)
        self.stats["bundles"] += 1
        try:
            bundle.commit(self.timeout)
        except ProgrammingError:
            self.stats["bundle_failures"] += 1  # refused as a whole: the switch holds what it held
            raise
        except Exception:
            self.stats["bundle_failures"] += 1
            self.forget(channel.dpid)  # timed out or closed: what it holds is unknown now
            raise
        counts = dict.fromkeys((ofwire.OFPFC_ADD, ofwire.OFPFC_MODIFY_STRICT, ofwire.OFPFC_DELETE_STRICT), 0)
        for command, key, value in bundle.mods:
            counts[command] += 1
            if command == ofwire.OFPFC_DELETE_STRICT:
                del have[key]
            else:
                have[key] = value
        for command, group_id, group_value in bundle.group_mods:
            if command == ofwire.OFPGC_DELETE:
                del have_groups[group_id]
            else:
                have_groups[group_id] = group_value
        return SyncResult(counts[ofwire.OFPFC_ADD], counts[ofwire.OFPFC_MODIFY_STRICT],
                          counts[ofwire.OFPFC_DELETE_STRICT], len(bundle.group_mods))

    @staticmethod
    def _put_groups(bundle: _Bundle, have: dict[int, GroupValue], groups: Mapping[int, Group],
                    group_ids: Iterable[int]) -> list[int]:
        """Add or modify the groups among `group_ids` that differ (first in the bundle: flows may name them);
        the ids of those the switch holds and should not, to delete after the flows."""
        dropped = []
        for group_id in group_ids:
            group = groups.get(group_id)
            if group is None:
                if group_id in have:
                    dropped.append(group_id)
                continue
            value = (ofwire.OFPGT_SELECT, ofwire.encode_buckets(group))
            if have.get(group_id) != value:
                bundle.put_group(ofwire.OFPGC_MODIFY if group_id in have else ofwire.OFPGC_ADD, group_id, value,
                                 group)
        return dropped

    def _install_meters(self, channel: Channel) -> None:
        """Every declared meter, before the first bundle that may use one: ADD, then MODIFY those the switch
        already has (from an earlier connection), so that a changed declaration takes effect."""
        adding = channel.batch()
        added = {adding.add(lambda xid, m=meter: ofwire.meter_mod(xid, ofwire.OFPMC_ADD, m)): meter for meter in METERS}
        errors = adding.finish(self.timeout)
        existing = [added[xid] for xid, error in errors if error == ofwire.METER_EXISTS]
        refused = [error for _, error in errors if error != ofwire.METER_EXISTS]
        if existing:
            modifying = channel.batch()
            for meter in existing:
                modifying.add(lambda xid, m=meter: ofwire.meter_mod(xid, ofwire.OFPMC_MODIFY, m))
            refused += [error for _, error in modifying.finish(self.timeout)]
        if refused:
            raise ProgrammingError(f"switch {channel.dpid} refused meters: {'; '.join(refused)}")
        with self._lock:
            self._metered[channel.dpid] = channel

    @staticmethod
    def _put(bundle: _Bundle, have: dict[WireKey, WireValue], flow: Flow) -> WireKey:
        """Add or modify `flow` in the bundle unless the switch already holds it as it is."""
        key, value = wire(flow)
        current = have.get(key)
        if current != value:
            # Same owner: modify in place keeps counters; a new owner needs ADD to take the cookie.
            same_owner = current is not None and current[0] == value[0]
            bundle.put(ofwire.OFPFC_MODIFY_STRICT if same_owner else ofwire.OFPFC_ADD, key, value, flow)
        return key
