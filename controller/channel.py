"""One switch's OpenFlow channel as seen by the programmer: raw bytes out, replies matched by xid.

os-ken owns the TCP connection and parses what the switch sends; its event handlers hand us the
replies (barrier, error, flow stats, group descriptions) and we wake whichever thread waits for that xid. Waiting
happens only in worker and REST threads, never in os-ken's event thread (it delivers the replies).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from functools import partial

from controller import ofwire

_CHUNK = 2048  # messages per socket write: few writes make installs fast, and vswitchd cheaper


class ChannelClosed(Exception):
    """The switch disconnected while we waited for it."""


class ChannelTimeout(Exception):
    """The switch did not answer in time."""


@dataclass(eq=False)
class _Waiter:
    xids: set[int] = field(default_factory=set)  # errors for these belong to this waiter
    done_xid: int | None = None                  # the reply to this xid ends the wait
    done: threading.Event = field(default_factory=threading.Event)
    errors: list[tuple[int, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    closed: bool = False


class Batch:
    """Messages streamed to the switch as they are built, ended by one barrier.

    Sending chunk by chunk while the caller builds the next lets the switch work on one core
    while Python encodes on the other.
    """

    def __init__(self, channel: Channel, xids: Iterable[int] = ()) -> None:
        self._channel = channel
        self._waiter = channel._register(_Waiter(set(xids)))
        self._pending: list[bytes] = []

    def add(self, build: Callable[[int], bytes]) -> int:
        """Queue the message `build(xid)` under a fresh xid; returns the xid."""
        xid = self._channel.next_xid()
        self._waiter.xids.add(xid)
        self._pending.append(build(xid))
        if len(self._pending) >= _CHUNK:
            self._flush()
        return xid

    def finish(self, timeout: float) -> list[tuple[int, str]]:
        """Barrier, then the errors the switch reported for this batch's messages.

        The switch handles messages in order, so every error precedes the barrier reply.
        """
        barrier = self._channel.next_xid()
        self._waiter.done_xid = barrier
        self._pending.append(ofwire.barrier_request(barrier))
        self._flush()
        return self._channel._wait(self._waiter, timeout).errors

    def _flush(self) -> None:
        if self._pending:
            self._channel.send(b"".join(self._pending))
            self._pending = []


class Channel:
    def __init__(self, dpid: str, send: Callable[[bytes], object]) -> None:
        self.dpid = dpid
        self._send = send
        self._lock = threading.Lock()
        self._xids = itertools.count(0x10000000)  # ours start high, away from os-ken's own requests
        self._waiters: list[_Waiter] = []
        self.closed = False

    def next_xid(self) -> int:
        with self._lock:
            return next(self._xids)

    def batch(self, xids: Iterable[int] = ()) -> Batch:
        """A new batch; errors the switch reports for `xids` (earlier messages) land in it too."""
        return Batch(self, xids)

    def dump_flows(self, timeout: float) -> list[ofwire.InstalledFlow]:
        """Every flow in every table, read back through a lean parser."""
        return ofwire.parse_flow_stats(self._multipart(ofwire.flow_stats_request, "flow", timeout))

    def dump_flow_counters(self, timeout: float, cookies: Container[int], cookie: int = 0, cookie_mask: int = 0
                           ) -> list[ofwire.FlowCounter]:
        """The counters of the flows with one of `cookies`, from a dump of the flows under cookie/mask."""
        request = partial(ofwire.flow_stats_request, cookie=cookie, cookie_mask=cookie_mask)
        return ofwire.parse_flow_counters(self._multipart(request, "flow", timeout), cookies)

    def dump_groups(self, timeout: float) -> list[ofwire.InstalledGroup]:
        """Every group, read back through a lean parser."""
        return ofwire.parse_group_desc(self._multipart(ofwire.group_desc_request, "group", timeout))

    def _multipart(self, request: Callable[[int], bytes], what: str, timeout: float) -> bytes:
        """The joined bodies of a multipart reply."""
        xid = self.next_xid()
        waiter = self._register(_Waiter({xid}, xid))
        self._send(request(xid))
        self._wait(waiter, timeout)
        if waiter.errors:
            raise ChannelClosed(f"{what} dump refused: {waiter.errors}")
        return b"".join(waiter.bodies)

    def send(self, message: bytes) -> None:
        self._send(message)

    # --- called from os-ken's event thread -------------------------------------------------
    def on_barrier_reply(self, xid: int) -> None:
        self._finish(self._waiting_for(xid))

    def on_multipart_reply(self, xid: int, body: bytes, more: bool) -> None:
        waiter = self._waiting_for(xid)
        if waiter is not None:
            waiter.bodies.append(body)
            if not more:
                self._finish(waiter)

    def on_error(self, xid: int, text: str) -> None:
        with self._lock:
            waiters = [w for w in self._waiters if xid in w.xids]
        for waiter in waiters:
            waiter.errors.append((xid, text))
            if waiter.done_xid == xid:
                self._finish(waiter)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.closed = True
            waiter.done.set()

    # --- internals -------------------------------------------------------------------------
    def _register(self, waiter: _Waiter) -> _Waiter:
        with self._lock:
            if self.closed:
                raise ChannelClosed(f"switch {self.dpid} disconnected")
            self._waiters.append(waiter)
        return waiter

    def _waiting_for(self, xid: int) -> _Waiter | None:
        with self._lock:
            return next((w for w in self._waiters if w.done_xid == xid), None)

    def _finish(self, waiter: _Waiter | None) -> None:
        if waiter is None:
            return
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        waiter.done.set()

    def _wait(self, waiter: _Waiter, timeout: float) -> _Waiter:
        if not waiter.done.wait(timeout):
            self._finish(waiter)
            raise ChannelTimeout(f"switch {self.dpid} did not answer within {timeout:.1f}s")
        if waiter.closed:
            raise ChannelClosed(f"switch {self.dpid} disconnected")
        return waiter
