"""The one place flows reach a switch: diff desired against installed, send one atomic bundle.

Installed state is read back from the switch when a channel is new (connect, reconnect, our own
restart) and then tracked from our own successful commits, so a converge costs one encode of
the desired flows plus a dict diff, and sends only what differs. Unchanged flows are never
deleted and re-added: that keeps their counters and leaves no window without them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from apps.flows import Flow
from apps.pipeline import table_id
from controller import ofwire
from controller.channel import Channel

WireKey = tuple[int, int, bytes]  # (table id, priority, canonical match bytes)
WireValue = tuple[int, bytes]     # (cookie, instructions bytes)


class ProgrammingError(Exception):
    """The switch rejected the bundle; nothing of it was applied."""


@dataclass(frozen=True)
class SyncResult:
    added: int = 0
    modified: int = 0
    deleted: int = 0

    @property
    def changes(self) -> int:
        return self.added + self.modified + self.deleted


def encode_flows(desired: dict[tuple, Flow]) -> dict[WireKey, WireValue]:
    """Desired flows in the switch's own terms; the encoders memoize, so recompiles stay cheap."""
    wire: dict[WireKey, WireValue] = {}
    for flow in desired.values():
        goto = table_id(flow.goto) if flow.goto else None
        key = (table_id(flow.table), flow.priority, ofwire.encode_match(flow.match))
        wire[key] = (flow.cookie, ofwire.encode_instructions(flow.actions, goto))
    return wire


class Programmer:
    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._installed: dict[str, tuple[Channel, dict[WireKey, WireValue]]] = {}
        self._lock = threading.Lock()
        self.stats = {"flow_mods": 0, "bundles": 0, "bundle_failures": 0, "readbacks": 0, "readback_seconds": 0.0}

    def forget(self, dpid: str) -> None:
        """Drop what we believe is installed on `dpid` (it will be read back on next sync)."""
        with self._lock:
            self._installed.pop(dpid, None)

    def installed(self, channel: Channel) -> dict[WireKey, WireValue]:
        """What the switch holds: cached for this channel, else read back from the switch."""
        with self._lock:
            cached = self._installed.get(channel.dpid)
        if cached is not None and cached[0] is channel:
            return cached[1]
        started = time.perf_counter()
        have = {(f.table_id, f.priority, f.match): (f.cookie, f.instructions)
                for f in channel.dump_flows(self.timeout)}
        self.stats["readbacks"] += 1
        self.stats["readback_seconds"] += time.perf_counter() - started
        with self._lock:
            self._installed[channel.dpid] = (channel, have)
        return have

    def sync(self, channel: Channel, desired: dict[tuple, Flow]) -> SyncResult:
        return self.sync_wire(channel, encode_flows(desired))

    def sync_wire(self, channel: Channel, want: dict[WireKey, WireValue]) -> SyncResult:
        """Make the switch hold exactly `want`, atomically; raise ProgrammingError if it refuses."""
        have = self.installed(channel)
        mods: list[tuple[int, WireKey, WireValue]] = []
        counts = {ofwire.OFPFC_ADD: 0, ofwire.OFPFC_MODIFY_STRICT: 0, ofwire.OFPFC_DELETE_STRICT: 0}
        for key in have.keys() - want.keys():
            mods.append((ofwire.OFPFC_DELETE_STRICT, key, (0, b"")))
        for key, value in want.items():
            current = have.get(key)
            if current == value:
                continue
            # Same owner: modify in place keeps counters; a new owner needs ADD to take the cookie.
            command = ofwire.OFPFC_MODIFY_STRICT if current and current[0] == value[0] else ofwire.OFPFC_ADD
            mods.append((command, key, value))
        if not mods:
            return SyncResult()
        for command, _, _ in mods:
            counts[command] += 1
        self._send_bundle(channel, mods)
        for command, key, value in mods:
            if command == ofwire.OFPFC_DELETE_STRICT:
                have.pop(key, None)
            else:
                have[key] = value
        return SyncResult(counts[ofwire.OFPFC_ADD], counts[ofwire.OFPFC_MODIFY_STRICT],
                          counts[ofwire.OFPFC_DELETE_STRICT])

    def _send_bundle(self, channel: Channel, mods: list[tuple[int, WireKey, WireValue]]) -> None:
        """Open, add every flow mod, barrier; commit only if no add was refused (see ENVIRONMENT.md)."""
        flags = ofwire.BUNDLE_FLAGS
        xids = channel.xids(len(mods) + 2)
        bundle_id = xids[0]
        messages = [ofwire.bundle_open(xids[0], bundle_id, flags)]
        for xid, (command, (table, priority, match), (cookie, instructions)) in zip(xids[1:], mods, strict=False):
            inner = ofwire.flow_mod(xid, command, table, priority, match, instructions, cookie)
            messages.append(ofwire.bundle_add(xid, bundle_id, flags, inner))
        self.stats["flow_mods"] += len(mods)
        self.stats["bundles"] += 1
        try:
            errors = channel.transact(messages, xids, self.timeout)
            if errors:
                discard = channel.xids(2)
                channel.transact([ofwire.bundle_discard(discard[0], bundle_id, flags)], discard, self.timeout)
                raise ProgrammingError(f"switch {channel.dpid} refused {len(errors)} flow(s): {errors[:3]}")
            commit = channel.xids(2)
            errors = channel.transact([ofwire.bundle_commit(commit[0], bundle_id, flags)], commit, self.timeout)
            if errors:
                raise ProgrammingError(f"switch {channel.dpid} refused the commit: {errors[:3]}")
        except Exception:
            self.stats["bundle_failures"] += 1
            self.forget(channel.dpid)
            raise
