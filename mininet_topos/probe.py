"""A tiny TCP/UDP probe to run inside Mininet hosts (`python -m mininet_topos.probe ...`).

    serve --tcp PORT --udp PORT [--tag T] [--peer]
                                              echo server; prints "ready ..." once listening; with
                                              --peer, replies start "from=IP:PORT;" (the source it
                                              saw: SNAT, floating IPs) and it prints "peer tcp|udp
                                              IP:PORT" for each connection (UDP: each new source)
    connect tcp|udp HOST PORT [--timeout S] [--source-port P]
                                              exit 0 and print the reply when the echo came back
    stream tcp|udp HOST PORT [--interval S] [--duration S] [--message M] [--source-port P]
                                              one long-lived exchange; prints "flowing" after the
                                              first echo and a JSON summary (sent, received,
                                              longest gap) at the end or on SIGTERM
    burst tcp HOST PORT --count N [--timeout S]
                                              N short connections one after another (connect, one
                                              echo, close); prints JSON: ok, failed, seconds
    first udp HOST PORT [--interval S] [--timeout S]
                                              prints "sending" once it starts, then sends a datagram
                                              every `interval` s until the first echo comes back and
                                              prints "first EPOCH" (the wall-clock time it arrived)

Plain sockets only, so it starts fast and behaves the same in every namespace.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time

BUF = 65536


def _reply(tag: str | None, data: bytes, peer: tuple[str, int] | None = None) -> bytes:
    if peer is not None:
        data = f"from={peer[0]}:{peer[1]};".encode() + data
    return data if tag is None else tag.encode() + b":" + data


_print_lock = threading.Lock()


def _announce(proto: str, peer: tuple[str, int]) -> None:
    with _print_lock:
        print(f"peer {proto} {peer[0]}:{peer[1]}", flush=True)


def _serve_tcp_conn(conn: socket.socket, tag: str | None, peer: tuple[str, int] | None) -> None:
    with conn:
        while data := conn.recv(BUF):
            conn.sendall(_reply(tag, data, peer))


def _serve_tcp(port: int, tag: str | None, show_peer: bool = False) -> socket.socket:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(128)

    def accept_loop() -> None:
        while True:
            conn, peer = srv.accept()
            if show_peer:
                _announce("tcp", peer)
            threading.Thread(target=_serve_tcp_conn, args=(conn, tag, peer if show_peer else None),
                             daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return srv


def _serve_udp(port: int, tag: str | None, show_peer: bool = False) -> socket.socket:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", port))
    seen: set[tuple[str, int]] = set()

    def loop() -> None:
        while True:
            data, peer = srv.recvfrom(BUF)
            if show_peer and peer not in seen:
                seen.add(peer)
                _announce("udp", peer)
            srv.sendto(_reply(tag, data, peer if show_peer else None), peer)

    threading.Thread(target=loop, daemon=True).start()
    return srv


def serve(args: argparse.Namespace) -> int:
    if not (args.tcp or args.udp):
        print("serve: give --tcp and/or --udp", file=sys.stderr)
        return 2
    sockets = ([_serve_tcp(args.tcp, args.tag, args.peer)] if args.tcp else []) + \
              ([_serve_udp(args.udp, args.tag, args.peer)] if args.udp else [])
    print(f"ready tcp={args.tcp or '-'} udp={args.udp or '-'}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    for s in sockets:
        s.close()
    return 0


def _exchange(sock: socket.socket, proto: str, addr: tuple[str, int], payload: bytes, timeout: float) -> bytes:
    """Send `payload` and return the first reply that ends with it; raise OSError/timeout otherwise.

    UDP resends every 0.2 s within the deadline, so one frame lost to address resolution does not
    count as a blocked path.
    """
    deadline = time.monotonic() + timeout
    if proto == "tcp":
        sock.sendall(payload)
        got = b""
        while not got.endswith(payload):
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(BUF)
            if not chunk:
                raise ConnectionError("closed before the echo arrived")
            got += chunk
        return got
    while True:
        sock.sendto(payload, addr)
        sock.settimeout(max(0.001, min(0.2, deadline - time.monotonic())))
        try:
            data, _ = sock.recvfrom(BUF)
            if data.endswith(payload):
                return data
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise


def _open(proto: str, addr: tuple[str, int], timeout: float, source_port: int = 0) -> socket.socket:
    """A TCP connection (or UDP socket) to `addr`, from `source_port` when given (0: the kernel's pick)."""
    if proto == "tcp":
        return socket.create_connection(addr, timeout=timeout, source_address=("0.0.0.0", source_port))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if source_port:
        sock.bind(("0.0.0.0", source_port))
    return sock


def connect(args: argparse.Namespace) -> int:
    addr = (args.host, args.port)
    try:
        with _open(args.proto, addr, args.timeout, args.source_port) as sock:
            reply = _exchange(sock, args.proto, addr, args.message.encode(), args.timeout)
    except OSError as exc:  # socket timeouts, refusals and resets are all OSError
        print(f"no echo: {exc}", file=sys.stderr)
        return 1
    print(reply.decode(errors="replace"))
    return 0


def stream(args: argparse.Namespace) -> int:
    """Exchange a numbered message every `interval` s over one socket; summarise the gaps."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    addr = (args.host, args.port)
    sent = received = 0
    errors: list[str] = []
    started = last_ok = time.monotonic()
    last_ok_epoch = 0.0
    longest_gap = 0.0
    try:
        sock = _open(args.proto, addr, args.timeout, args.source_port)
    except OSError as exc:
        sock, errors = None, [f"connect: {exc}"]
    end = started + args.duration if args.duration else float("inf")
    while sock and not stop.is_set() and time.monotonic() < end:
        sent += 1
        try:
            _exchange(sock, args.proto, addr, f"{args.message}:seq={sent};".encode(), args.timeout)
            received += 1
            if received == 1:
                print("flowing", flush=True)  # lets a caller wait until the path carries data
            now = time.monotonic()
            longest_gap, last_ok, last_ok_epoch = max(longest_gap, now - last_ok), now, time.time()
        except OSError as exc:
            errors.append(f"seq {sent}: {exc}")
            if args.proto == "tcp":
                break  # a broken TCP connection stays broken: that is what the caller wants to know
        stop.wait(args.interval)
    longest_gap = max(longest_gap, time.monotonic() - last_ok)
    if sock:
        sock.close()
    print(json.dumps({"sent": sent, "received": received, "longest_gap_s": round(longest_gap, 3),
                      "last_ok_epoch": last_ok_epoch,
                      "broken": bool(errors) and args.proto == "tcp", "errors": errors[:10]}), flush=True)
    return 0 if sent and received == sent else 1


def burst(args: argparse.Namespace) -> int:
    """`count` short TCP connections in a row: how many connections per second a path sets up."""
    ok = failed = 0
    errors: list[str] = []
    took: list[float] = []  # each connection's seconds: a few slow ones (a retransmitted SYN: 1 s) show here
    started = time.perf_counter()
    for i in range(args.count):
        payload = f"{args.message}-{i}".encode()
        began = time.perf_counter()
        try:
            with socket.create_connection((args.host, args.port), timeout=args.timeout) as sock:
                _exchange(sock, "tcp", (args.host, args.port), payload, args.timeout)
            ok += 1
            took.append(time.perf_counter() - began)
        except OSError as exc:
            failed += 1
            if len(errors) < 5:
                errors.append(f"connection {i}: {exc}")
    seconds = time.perf_counter() - started
    took.sort()
    spread = {f"{name}_ms": round(took[min(len(took) - 1, int(q * len(took)))] * 1000, 3) if took else None
              for name, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}
    print(json.dumps({"ok": ok, "failed": failed, "seconds": round(seconds, 4), **spread,
                      "over_200ms": sum(t > 0.2 for t in took), "errors": errors}), flush=True)
    return 0 if failed == 0 else 1


def first(args: argparse.Namespace) -> int:
    """Send a datagram every `interval` s until one is echoed; print when (epoch seconds)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(args.interval)
    addr = (args.host, args.port)
    print("sending", flush=True)
    deadline = time.monotonic() + args.timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            sock.sendto(f"{args.message}-{n}".encode(), addr)
            sock.recvfrom(BUF)
        except TimeoutError:
            continue
        except OSError:  # no ARP answer yet (EHOSTUNREACH), an ICMP error reported on the socket: keep trying
            time.sleep(args.interval)
            continue
        print(f"first {time.time():.6f} after {n} datagrams", flush=True)
        return 0
    print(f"no echo within {args.timeout:g} s ({n} datagrams)", flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mininet_topos.probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="TCP/UDP echo server")
    p.add_argument("--tcp", type=int)
    p.add_argument("--udp", type=int)
    p.add_argument("--tag", help="prefix replies with '<tag>:' (which server answered)")
    p.add_argument("--peer", action="store_true", help="replies start 'from=IP:PORT;'; print each peer")
    p.set_defaults(func=serve)
    for name, func in (("connect", connect), ("stream", stream)):
        p = sub.add_parser(name)
        p.add_argument("proto", choices=("tcp", "udp"))
        p.add_argument("host")
        p.add_argument("port", type=int)
        p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each echo")
        p.add_argument("--source-port", type=int, default=0, help="send from this port (0: any)")
        p.add_argument("--message", default="probe", help="the payload (stream: each one's prefix)")
        p.set_defaults(func=func)
    p = sub.add_parser("burst")
    p.add_argument("proto", choices=("tcp",))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per connection")
    p.add_argument("--message", default="burst")
    p.set_defaults(func=burst)
    p = sub.add_parser("first")
    p.add_argument("proto", choices=("udp",))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--interval", type=float, default=0.002)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--message", default="first")
    p.set_defaults(func=first)
    sub.choices["stream"].add_argument("--interval", type=float, default=0.05)
    sub.choices["stream"].add_argument("--duration", type=float, default=0, help="0: until SIGTERM")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
