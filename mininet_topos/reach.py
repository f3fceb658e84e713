"""Reachability checks between Mininet hosts: ping, TCP and UDP through `mininet_topos.probe`.

Servers announce readiness on stdout and the checks wait for that line, never for a fixed time.
Each check has a hard deadline, so a blocked path costs at most its timeout.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mininet.node import Host

T = TypeVar("T")
PROBE = [sys.executable, "-u", "-m", "mininet_topos.probe"]


def wait_until(pred: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `pred` until it returns something truthy (returned); raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = pred()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    """Exit code and output of `proc`, killing it (our child, by PID) past the deadline."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return -9, out or ""
    return proc.returncode, out or ""


def run_in(host: Host, argv: list[str], timeout: float) -> tuple[int, str]:
    """Run argv inside `host`'s namespace; (exit code, combined output)."""
    proc = host.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return _finish(proc, timeout)


def ping(h_from: Host, ip: str, count: int = 1, timeout: float = 1.0) -> bool:
    """True when at least one of `count` echo requests is answered, each waiting up to `timeout` s."""
    argv = ["ping", "-n", "-q", "-c", str(count), "-W", f"{timeout:g}", "-i", "0.2", ip]
    code, _ = run_in(h_from, argv, timeout=count * (timeout + 0.2) + 5)
    return code == 0


class HostProcess:
    """A probe running inside a host, whose output is read line by line, each read with a deadline.

    A reader thread queues the lines: select() on a buffered pipe would miss a second line that
    arrived in the same read as the first.
    """

    proc: subprocess.Popen[str] | None = None
    _lines: queue.Queue[str | None]

    def spawn(self, host: Host, argv: list[str]) -> None:
        self.proc = host.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._lines.put(line.strip())
        self._lines.put(None)  # end of output

    def line(self, timeout: float) -> str | None:
        """The next line, or None at the deadline or the end of output."""
        try:
            return self._lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def terminate(self, timeout: float = 5) -> list[str]:
        """Stop our process (SIGTERM, then SIGKILL past `timeout`); returns the lines not read yet."""
        if self.proc is None:
            return []
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rest = []
        while (line := self.line(timeout)) is not None:
            rest.append(line)
        self.proc = None
        return rest


class EchoServer(HostProcess):
    """`with EchoServer(host, tcp=5001, udp=5001):` a probe echo server running inside `host`.

    `tag` makes replies start with "<tag>:", so a client can tell which server answered (load
    balancing).
    """

    def __init__(self, host: Host, tcp: int | None = None, udp: int | None = None,
                 tag: str | None = None, ready_timeout: float = 10, peer: bool = False) -> None:
        self.host = host
        self.argv = [*PROBE, "serve"]
        if tcp:
            self.argv += ["--tcp", str(tcp)]
        if udp:
            self.argv += ["--udp", str(udp)]
        if tag:
            self.argv += ["--tag", tag]
        if peer:  # replies start "from=IP:PORT;", and each new peer is printed (`peers()`)
            self.argv += ["--peer"]
        self.ready_timeout = ready_timeout
        self.seen_peers: list[tuple[str, str, int]] = []

    def __enter__(self) -> EchoServer:
        self.spawn(self.host, self.argv)
        line = self.line(self.ready_timeout) or "(no output within deadline)"
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"probe server on {self.host.name} did not start: {line!r}")
        return self

    def peers(self, count: int = 1, timeout: float = 10) -> list[tuple[str, str, int]]:
        """(proto, address, port) of every peer seen so far (`peer=True`), waiting until there are `count`."""
        deadline = time.monotonic() + timeout
        while True:
            wait = deadline - time.monotonic() if len(self.seen_peers) < count else 0.0
            line = self.line(wait)   # past `count`, only what is already there
            if line is None:
                break
            if line.startswith("peer "):
                _, proto, where = line.split()
                address, _, port = where.rpartition(":")
                self.seen_peers.append((proto, address, int(port)))
        return list(self.seen_peers)

    def stop(self) -> None:
        self.terminate()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def connect(h_from: Host, proto: str, ip: str, port: int, timeout: float = 1.0,
            message: str = "probe", source_port: int = 0) -> str | None:
    """The server's reply to one `proto` exchange from `h_from`, or None when none came in time."""
    argv = [*PROBE, "connect", proto, ip, str(port), "--timeout", f"{timeout:g}", "--message", message]
    if source_port:
        argv += ["--source-port", str(source_port)]
    code, out = run_in(h_from, argv, timeout=timeout + 10)
    return out.strip() if code == 0 else None


def seen_from(reply: str | None) -> tuple[str, int] | None:
    """(address, port) a `peer=True` server saw a reply's exchange come from, or None (no reply)."""
    if reply is None:
        return None
    marker = reply.find("from=")
    if marker < 0:
        raise ValueError(f"reply {reply!r} names no source: serve with peer=True")
    address, _, port = reply[marker + 5:].split(";", 1)[0].rpartition(":")
    return address, int(port)


def ping_output(h_from: Host, ip: str, count: int = 1, timeout: float = 1.0, ttl: int | None = None) -> str:
    """ping's whole output (ICMP errors such as "Time to live exceeded" show up there, with their source)."""
    argv = ["ping", "-n", "-c", str(count), "-W", f"{timeout:g}", "-i", "0.2", *(["-t", str(ttl)] if ttl else []), ip]
    return run_in(h_from, argv, timeout=count * (timeout + 0.2) + 5)[1]


def tcp_ok(h_from: Host, h_to: Host, ip: str, port: int = 5001, timeout: float = 1.0) -> bool:
    """A TCP connection from `h_from` to `ip:port` (served by `h_to`) carries an echo."""
    with EchoServer(h_to, tcp=port):
        return connect(h_from, "tcp", ip, port, timeout) is not None


def udp_ok(h_from: Host, h_to: Host, ip: str, port: int = 5001, timeout: float = 1.0) -> bool:
    """A UDP datagram from `h_from` to `ip:port` (served by `h_to`) comes back echoed."""
    with EchoServer(h_to, udp=port):
        return connect(h_from, "udp", ip, port, timeout) is not None


class Stream(HostProcess):
    """`with Stream(h, "tcp", ip, 5001) as s: ...` keeps one connection exchanging echoes (every
    `interval` s) while the test changes things; `s.stop()` returns the probe's summary:
    sent, received, longest_gap_s, broken (TCP), errors. Needs an EchoServer at ip:port."""

    def __init__(self, host: Host, proto: str, ip: str, port: int, interval: float = 0.05,
                 timeout: float = 1.0, start_timeout: float = 10, message: str = "probe",
                 source_port: int = 0) -> None:
        self.host = host
        self.argv = [*PROBE, "stream", proto, ip, str(port), "--interval", f"{interval:g}",
                     "--timeout", f"{timeout:g}", "--message", message, "--source-port", str(source_port)]
        self.start_timeout = start_timeout
        self.summary: dict[str, Any] | None = None

    def __enter__(self) -> Stream:
        """Returns once the first echo came back; raises when none did within `start_timeout`."""
        self.spawn(self.host, self.argv)
        first = self.line(self.start_timeout) or ""
        if first != "flowing":
            if first.startswith("{"):  # it gave up before the first echo and printed its summary
                self.summary = json.loads(first)
            self.stop()
            raise RuntimeError(f"stream from {self.host.name} never carried data: {first!r}, {self.summary}")
        return self

    def ended(self) -> bool:
        """The probe gave up by itself (a TCP stream breaks on the first lost echo)."""
        return self.proc is not None and self.proc.poll() is not None

    def stop(self) -> dict[str, Any]:
        if self.summary is None and self.proc:
            out = self.terminate(timeout=10)
            lines = [line for line in out if line.startswith("{")]
            self.summary = json.loads(lines[-1]) if lines else {"broken": True, "errors": out}
        return self.summary or {}

    def __exit__(self, *exc: Any) -> None:
        self.stop()


FRAMES = [sys.executable, "-u", "-m", "mininet_topos.frames"]


class Sniffer(HostProcess):
    """`with Sniffer(host, "m1", "m2") as s:` watches `host`'s interface for frames carrying the markers.

    `s.wait_for("m2")` blocks until that marker was seen (or the deadline); `s.seen` holds what came.
    """

    def __init__(self, host: Host, *markers: str, timeout: float = 15) -> None:
        self.host = host
        self.argv = [*FRAMES, "sniff", host.defaultIntf().name, *markers, "--timeout", f"{timeout:g}"]
        self.seen: set[str] = set()

    def __enter__(self) -> Sniffer:
        self.spawn(self.host, self.argv)
        first = self.line(10)
        if first != "ready":
            self.stop()
            raise RuntimeError(f"sniffer on {self.host.name} did not start: {first!r}")
        return self

    def wait_for(self, marker: str, timeout: float = 5) -> bool:
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            line = self.line(max(0.0, deadline - time.monotonic()))
            if not line:
                return False
            if line.startswith("seen "):
                self.seen.add(line.removeprefix("seen "))
        return True

    def stop(self) -> None:
        self.terminate()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def send_frame(host: Host, marker: str, **fields: Any) -> None:
    """Send a hand-made frame (see mininet_topos.frames: eth_src, eth_dst, ip_src, ip_dst, arp_op, ...)."""
    argv = [*FRAMES, "send", host.defaultIntf().name, "--marker", marker]
    for name, value in fields.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    code, out = run_in(host, argv, timeout=20)
    if code != 0:
        raise RuntimeError(f"sending a frame from {host.name} failed: {out}")


def capture_frame(host: Host, ethertype: int, timeout: float = 10) -> bytes | None:
    """The first frame of `ethertype` that `host`'s interface sees within `timeout` s, as bytes."""
    code, out = run_in(host, [*FRAMES, "capture", host.defaultIntf().name, "--ethertype", hex(ethertype),
                              "--timeout", f"{timeout:g}"], timeout=timeout + 20)
    found = [line.removeprefix("frame ") for line in out.splitlines() if line.startswith("frame ")]
    return bytes.fromhex(found[0]) if code == 0 and found else None


def send_raw(host: Host, frame: bytes, count: int = 1) -> None:
    """Send exactly `frame` out of `host`'s interface (a captured frame, replayed)."""
    code, out = run_in(host, [*FRAMES, "send-raw", host.defaultIntf().name, frame.hex(), "--count", str(count)],
                       timeout=20)
    if code != 0:
        raise RuntimeError(f"sending a raw frame from {host.name} failed: {out}")


class Flood(HostProcess):
    """`with Flood(host, frames, seconds) as flood:` `host` sends `frames` in turn as fast as it can for `seconds`
    (mininet_topos.frames flood); `flood.wait()` returns how many it sent."""

    def __init__(self, host: Host, frames: list[bytes], seconds: float) -> None:
        self.spawn(host, [*FRAMES, "flood", host.defaultIntf().name, *(f.hex() for f in frames),
                          "--seconds", f"{seconds:g}"])
        self.seconds = seconds
        if self.line(20) != "flooding":
            raise RuntimeError(f"the flood from {host.name} did not start: {self.terminate()}")

    def wait(self) -> int:
        """Wait for the flood to end; the number of frames it sent."""
        line = self.line(self.seconds + 20)
        if line is None or not line.startswith("sent "):
            raise RuntimeError(f"the flood did not finish: {line} {self.terminate()}")
        self.terminate()
        return int(line.removeprefix("sent "))

    def __enter__(self) -> Flood:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.terminate()
