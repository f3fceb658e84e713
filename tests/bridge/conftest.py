"""Real netdev bridges, and the real Channel driven over a plain socket instead of os-ken.

`Connection` plays the part of controller/ofapp.py: a reader thread hands barrier replies, errors
and multipart bodies to the Channel exactly as os-ken's event handlers do, so the Programmer and
Channel under test are the production ones, and only the transport differs.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
from ofclient import Message, OFClient

from controller import ofwire
from controller.channel import Channel
from mininet_topos import ovs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Connection:
    """One OpenFlow connection to a bridge, exposed as a Channel."""

    def __init__(self, listen_port: int, dpid: str) -> None:
        self.client = OFClient("127.0.0.1", listen_port)
        # The reader blocks until close() wakes it. recv() sets this as the socket timeout, which
        # sendall() in other threads shares: a short one could fail a big install mid-write.
        self.client.timeout = 3600.0
        self.channel = Channel(dpid, self.client.send)
        self._reader = threading.Thread(target=self._read, name=f"of-reader-{dpid}", daemon=True)
        self._reader.start()

    def close(self) -> None:
        self.client.close()
        self._reader.join(timeout=5)

    def _read(self) -> None:
        try:
            while True:
                try:
                    message = self.client.recv()  # answers echo requests itself
                except TimeoutError:
                    continue  # an idle switch is not a closed one
                self._dispatch(message)
        except OSError:  # ConnectionError included: closed by us or by the switch
            pass
        finally:
            self.channel.close()  # as ofapp does on DEAD_DISPATCHER: wakes any waiter

    def _dispatch(self, message: Message) -> None:
        if message.type == ofwire.OFPT_BARRIER_REPLY:
            self.channel.on_barrier_reply(message.xid)
        elif message.type == ofwire.OFPT_ERROR:
            error_type, code = struct.unpack_from("!HH", message.data, 8)
            self.channel.on_error(message.xid, ofwire.describe_error(error_type, code))
        elif message.type == ofwire.OFPT_MULTIPART_REPLY:
            multipart_type, flags = struct.unpack_from("!HH", message.data, 8)
            if multipart_type in (ofwire.OFPMP_FLOW, ofwire.OFPMP_GROUP_DESC):
                self.channel.on_multipart_reply(message.xid, message.data[16:],
                                                bool(flags & ofwire.OFPMPF_REPLY_MORE))


class Bridge:
    """A fresh secure-mode netdev bridge with internal ports `{name}p{n}` at OpenFlow ports 1..n_ports.

    The ports carry no traffic; they exist so that outputs and in_ports resolve in ofproto/trace.
    """

    def __init__(self, name: str, n_ports: int) -> None:
        self.name = name
        self.listen_port = free_port()
        self._connections: list[Connection] = []
        args = ["--", "--if-exists", "del-br", name,
                "--", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev", "protocols=OpenFlow13",
                "fail_mode=secure"]
        for n in range(1, n_ports + 1):
            port = f"{name}p{n}"
            args += ["--", "add-port", name, port, "--", "set", "interface", port, "type=internal",
                     f"ofport_request={n}"]
        ovs.vsctl(*args, "--", "set-controller", name, f"ptcp:{self.listen_port}:127.0.0.1")

    def connect(self, dpid: str) -> Connection:
        connection = Connection(self.listen_port, dpid)
        self._connections.append(connection)
        return connection

    def disconnect(self) -> None:
        for connection in self._connections:
            connection.close()
        self._connections.clear()

    def delete(self) -> None:
        """Close our connections and delete the bridge (its ports go with it); safe to repeat."""
        try:
            self.disconnect()
        finally:
            ovs.delete_bridges([self.name])


@pytest.fixture(scope="module")
def make_bridge() -> Iterator[Callable[[str, int], Bridge]]:
    """Bridge factory; every bridge it made is deleted when the module ends, whatever happened."""
    made: list[str] = []
    bridges: list[Bridge] = []

    def make(name: str, n_ports: int) -> Bridge:
        made.append(name)  # before creating: a half-made bridge is deleted too
        bridges.append(Bridge(name, n_ports))
        return bridges[-1]

    try:
        yield make
    finally:
        try:
            for bridge in bridges:
                bridge.disconnect()
        finally:
            ovs.delete_bridges(made)
