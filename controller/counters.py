"""Packets and bytes per object (apps.counters says which flows count for whom), summed from flow counters that the
runtime's `stats` thread reads every interval, or sooner when a REST call asks (at most once a `min_age`).

Sums never go back while their object exists. Each reading is compared with the previous one of the same flow
(same switch, table, priority, match and cookie): what it grew by is added to its objects. A flow that is new, or
was replaced since (its cookie changed, or its counters or its age went down: deleted and re-added, the switch
restarted), adds all it counted. A flow that went adds nothing more: what it counted after the last reading is lost
(at most one interval's worth). A switch away keeps its last readings, so its flows, still there when it comes back
(fail_mode=secure), go on from them. The sums start when the controller does, from what the switches' flows had
counted by then; an object's sum goes with the object.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Container, Iterable, Mapping

from apps.counters import Counted, ObjectRef
from apps.flows import APP_CODES
from controller.channel import Channel
from controller.ofwire import FlowCounter

COUNTED_APPS = ("security_groups", "routing", "load_balancing")  # the apps whose flows count objects' traffic
_APP_MASK = 0xFF << 56  # a cookie's app (apps.flows.cookie)

_FlowId = tuple[int, int, bytes]  # table, priority, match


class ObjectCounters:
    """The sums, and the last reading of every counting flow of each switch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, dict[_FlowId, FlowCounter]] = {}
        self._sums: dict[ObjectRef, tuple[int, int]] = {}

    def update(self, dpid: str, readings: Iterable[FlowCounter], counted: Mapping[Counted, tuple[ObjectRef, ...]]
               ) -> None:
        """One switch's readings of the flows that count (those of `counted`; others are ignored)."""
        with self._lock:
            last = self._last.get(dpid, {})
            now: dict[_FlowId, FlowCounter] = {}
            sums = self._sums
            for reading in readings:
                owners = counted.get((reading.cookie, reading.table_id))
                if owners is None:
                    owners = counted.get((reading.cookie, None))
                    if owners is None:
                        continue
                flow = (reading.table_id, reading.priority, reading.match)
                now[flow] = reading
                packets, octets = _grown(last.get(flow), reading)
                if packets or octets:
                    for owner in owners:
                        had = sums.get(owner, (0, 0))
                        sums[owner] = (had[0] + packets, had[1] + octets)
            self._last[dpid] = now

    def keep(self, counted: Mapping[Counted, tuple[ObjectRef, ...]]) -> None:
        """The objects there are now: those gone lose their sums, new ones start at zero."""
        present = {owner for owners in counted.values() for owner in owners}
        with self._lock:
            self._sums = {owner: self._sums.get(owner, (0, 0)) for owner in present}

    def get(self, kind: str, object_id: str) -> tuple[int, int]:
        """(packets, bytes) of an object; (0, 0) before anything counted for it."""
        with self._lock:
            return self._sums.get((kind, object_id), (0, 0))

    def sums(self) -> dict[ObjectRef, tuple[int, int]]:
        with self._lock:
            return dict(self._sums)


def read_switch(channel: Channel, cookies: Container[int], timeout: float) -> list[FlowCounter]:
    """The counters of a switch's flows with one of `cookies`: one flow-stats request per counting app, under its
    cookie and mask (the switch sends only that app's flows; the others never cross the wire)."""
    return [reading for app in COUNTED_APPS
            for reading in channel.dump_flow_counters(timeout, cookies, APP_CODES[app] << 56, _APP_MASK)]


def _grown(before: FlowCounter | None, after: FlowCounter) -> tuple[int, int]:
    """What a flow counted since its previous reading: all of it when it is new or was replaced since."""
    if (before is None or before.cookie != after.cookie or after.packet_count < before.packet_count
            or after.byte_count < before.byte_count or after.duration_sec < before.duration_sec):
        return after.packet_count, after.byte_count
    return after.packet_count - before.packet_count, after.byte_count - before.byte_count


class Schedule:
    """When the `stats` thread reads: every `interval` seconds, and when asked (`fresh`) unless a reading ended less
    than `min_age` seconds ago. Callers that ask meanwhile share the one reading, which starts after they asked (one
    under way then may have read a switch before)."""

    def __init__(self, interval: float, min_age: float = 1.0) -> None:
        self.interval = interval
        self.min_age = min_age
        self._cond = threading.Condition()
        self._wanted = False
        self._stopped = False
        self._begun = 0
        self._readings = 0  # ended
        self._ended = float("-inf")  # monotonic

    def wait(self) -> bool:
        """Until the next reading is due (the interval passed, or someone asked); False once stopped."""
        with self._cond:
            self._cond.wait_for(lambda: self._wanted or self._stopped, self.interval)
            self._wanted = False
            self._begun += 1
            return not self._stopped

    def ended(self) -> None:
        """A reading ended (done or failed): those waiting for it go on."""
        with self._cond:
            self._readings += 1
            self._ended = time.monotonic()
            self._cond.notify_all()

    def fresh(self, timeout: float) -> bool:
        """Sums at most `min_age` old: a reading now, waited for (at most `timeout` s), unless one just ended.
        False when none ended in time."""
        with self._cond:
            if time.monotonic() - self._ended < self.min_age:
                return True
            begun = self._begun
            self._wanted = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._readings > begun or self._stopped, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
