"""One switch's OpenFlow channel as seen by the programmer: raw bytes out, replies matched by xid.

os-ken owns the TCP connection and parses what the switch sends; its event handlers hand us the
replies (barrier, error, flow stats) and we wake whichever thread waits for that xid. Waiting
happens only in worker and REST threads, never in os-ken's event thread (it delivers the replies).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from controller import ofwire

_CHUNK = 2048  # messages per socket write: one write per chunk is what makes installs fast


class ChannelClosed(Exception):
    """The switch disconnected while we waited for it."""


class ChannelTimeout(Exception):
    """The switch did not answer in time."""


@dataclass
class _Waiter:
    xids: range
    done: threading.Event = field(default_factory=threading.Event)
    errors: list[tuple[int, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    closed: bool = False


class Channel:
    def __init__(self, dpid: str, send: Callable[[bytes], object]) -> None:
        self.dpid = dpid
        self._send = send
        self._lock = threading.Lock()
        self._xids = itertools.count(0x10000000)
        self._waiters: dict[int, _Waiter] = {}  # keyed by the xid whose reply completes the wait
        self.closed = False

    def xids(self, n: int) -> range:
        """`n` consecutive fresh xids (ours start high, away from os-ken's own requests)."""
        with self._lock:
            first = next(self._xids)
            self._xids = itertools.count(first + n)
        return range(first, first + n)

    def transact(self, messages: list[bytes], xids: range, timeout: float) -> list[tuple[int, str]]:
        """Send `messages` (built with `xids`, the last xid left for a barrier) and wait for the barrier.

        Returns the errors the switch reported for any of those xids: the switch handles messages in
        order, so every error precedes the barrier reply.
        """
        barrier_xid = xids[-1]
        waiter = self._register(barrier_xid, xids)
        for start in range(0, len(messages), _CHUNK):
            self._send(b"".join(messages[start:start + _CHUNK]))
        self._send(ofwire.barrier_request(barrier_xid))
        return self._wait(barrier_xid, waiter, timeout).errors

    def dump_flows(self, timeout: float) -> list[ofwire.InstalledFlow]:
        """Every flow in every table, read back through a lean parser."""
        xid = self.xids(1)[0]
        waiter = self._register(xid, range(xid, xid + 1))
        self._send(ofwire.flow_stats_request(xid))
        self._wait(xid, waiter, timeout)
        if waiter.errors:
            raise ChannelClosed(f"flow dump refused: {waiter.errors}")
        return ofwire.parse_flow_stats(b"".join(waiter.bodies))

    def send(self, message: bytes) -> None:
        """Fire-and-forget (packet-outs)."""
        self._send(message)

    # --- called from os-ken's event thread -------------------------------------------------
    def on_barrier_reply(self, xid: int) -> None:
        self._finish(xid)

    def on_flow_stats(self, xid: int, body: bytes, more: bool) -> None:
        with self._lock:
            waiter = self._waiters.get(xid)
        if waiter is not None:
            waiter.bodies.append(body)
            if not more:
                self._finish(xid)

    def on_error(self, xid: int, text: str) -> None:
        with self._lock:
            waiters = [w for w in self._waiters.values() if xid in w.xids]
        for waiter in waiters:
            waiter.errors.append((xid, text))
            if xid == waiter.xids[-1] and len(waiter.xids) == 1:
                self._finish(xid)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            waiters = list(self._waiters.values())
            self._waiters.clear()
        for waiter in waiters:
            waiter.closed = True
            waiter.done.set()

    # --- internals -------------------------------------------------------------------------
    def _register(self, key: int, xids: range) -> _Waiter:
        waiter = _Waiter(xids)
        with self._lock:
            if self.closed:
                raise ChannelClosed(self.dpid)
            self._waiters[key] = waiter
        return waiter

    def _finish(self, key: int) -> None:
        with self._lock:
            waiter = self._waiters.pop(key, None)
        if waiter is not None:
            waiter.done.set()

    def _wait(self, key: int, waiter: _Waiter, timeout: float) -> _Waiter:
        if not waiter.done.wait(timeout):
            with self._lock:
                self._waiters.pop(key, None)
            raise ChannelTimeout(f"switch {self.dpid} did not answer within {timeout:.1f}s")
        if waiter.closed:
            raise ChannelClosed(f"switch {self.dpid} disconnected")
        return waiter
