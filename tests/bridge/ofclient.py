"""A tiny blocking OpenFlow 1.3 client for tests: connect to a bridge that listens (ptcp:), send raw
bytes, read whole messages. It answers echo requests so the switch keeps the connection open.

It exists so that ofwire's bytes reach a real OVS without os-ken in between: what the switch
accepts, rejects and reads back is then attributable to our encoding alone.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import NamedTuple

from controller import ofwire

_OFPT_SET_CONFIG = 9


class Message(NamedTuple):
    type: int
    xid: int
    data: bytes  # the whole message, header included


class OFClient:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._send_lock = threading.Lock()  # a reader thread answers echoes while others send
        self._sock = self._connect(host, port)
        self._buffer = b""
        self.send(struct.pack("!BBHI", ofwire.OFP_VERSION, ofwire.OFPT_HELLO, 8, 0))
        hello = self.recv()
        if hello.type != ofwire.OFPT_HELLO:
            raise ConnectionError(f"expected HELLO, got type {hello.type}")
        # A connection the switch accepted on ptcp: is a "service" connection: it gets no packet-ins
        # until it sets a nonzero miss_send_len.
        self.send(struct.pack("!BBHIHH", ofwire.OFP_VERSION, _OFPT_SET_CONFIG, 12, 0, 0, 0xFFFF))

    def _connect(self, host: str, port: int) -> socket.socket:
        """Retry until the bridge's listener is up (it appears shortly after set-controller)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                sock = socket.create_connection((host, port), timeout=self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        """Shut down before closing: that wakes a thread blocked in recv() (it gets ConnectionError)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already disconnected
        self._sock.close()

    def send(self, data: bytes) -> None:
        with self._send_lock:
            self._sock.sendall(data)

    def recv(self) -> Message:
        """The next message that is not an echo request (those are answered here).

        Raises TimeoutError when none arrives within `timeout` (echo requests do not count).
        """
        deadline = time.monotonic() + self.timeout
        while True:
            while len(self._buffer) < 8 or len(self._buffer) < struct.unpack_from("!H", self._buffer, 2)[0]:
                self._sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = self._sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("switch closed the connection")
                self._buffer += chunk
            _, msg_type, length, xid = struct.unpack_from("!BBHI", self._buffer)
            data, self._buffer = self._buffer[:length], self._buffer[length:]
            if msg_type == ofwire.OFPT_ECHO_REQUEST:
                self.send(struct.pack("!BBHI", ofwire.OFP_VERSION, ofwire.OFPT_ECHO_REPLY, length, xid) + data[8:])
                continue
            return Message(msg_type, xid, data)

    def barrier(self, xid: int) -> list[Message]:
        """Send a barrier and return every message that arrived before its reply."""
        self.send(ofwire.barrier_request(xid))
        received = []
        while (message := self.recv()).type != ofwire.OFPT_BARRIER_REPLY or message.xid != xid:
            received.append(message)
        return received

    def flow_stats(self, xid: int, **request) -> list[Message]:
        """Every part of a flow-stats reply (the switch splits big ones with OFPMPF_REPLY_MORE)."""
        self.send(ofwire.flow_stats_request(xid, **request))
        parts = []
        while True:
            message = self.recv()
            if message.type == ofwire.OFPT_MULTIPART_REPLY and message.xid == xid:
                parts.append(message)
                if not struct.unpack_from("!H", message.data, 10)[0] & ofwire.OFPMPF_REPLY_MORE:
                    return parts
            elif message.type == ofwire.OFPT_ERROR:
                raise RuntimeError(f"flow-stats request failed: {message.data.hex()}")

    def dump_flows(self, xid: int, **request) -> list[ofwire.InstalledFlow]:
        body = b"".join(part.data[16:] for part in self.flow_stats(xid, **request))
        return ofwire.parse_flow_stats(body)


def errors_of(messages: list[Message]) -> dict[int, tuple[int, int]]:
    """xid -> (error type, code) for the OFPT_ERROR messages among `messages`."""
    return {m.xid: struct.unpack_from("!HH", m.data, 8) for m in messages if m.type == ofwire.OFPT_ERROR}
