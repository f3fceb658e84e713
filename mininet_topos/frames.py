"""Hand-made frames inside Mininet hosts, for spoofing and isolation tests (`python -m mininet_topos.frames`).

    sniff IFACE MARKER [MARKER ...] --timeout S   prints "ready", then one line per marker seen in a
                                                 frame's payload ("seen MARKER"), and exits when every
                                                 marker was seen or the timeout passed
    send IFACE --eth-src M --eth-dst M [--vlan VID] [--ip-src A --ip-dst B [--udp-sport P] [--udp-dport P]
         [--dhcp offer|ack] | --arp-op 1 --arp-spa A --arp-tpa B --arp-sha M] --marker TEXT [--count N]

    capture IFACE --ethertype 0x88cc --timeout S  prints "ready", then "frame HEX" for the first frame of
                                                 that ethertype to arrive, and exits
    send-raw IFACE HEX [--count N]                sends those exact bytes (a captured frame, replayed)
    flood IFACE HEX [HEX ...] --seconds S        prints "flooding", sends those frames in turn as fast as the
                                                 interface takes them for S seconds, then prints "sent N"

`--vlan` adds an 802.1Q tag; `--dhcp` makes the UDP payload a DHCP server's message of that type (with the
marker as its server name), whatever the ports say.

A sniffer that must *not* see a frame is proven alive by a second, legitimate frame sent after it:
the test waits for the legitimate marker, so it never sleeps and never passes because nothing ran.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections.abc import Callable

from scapy.all import (  # type: ignore[attr-defined]
    ARP,
    BOOTP,
    DHCP,
    IP,
    UDP,
    AsyncSniffer,
    Dot1Q,
    Ether,
    Raw,
    conf,
    sendp,
)


def _listen(iface: str, on_frame: Callable[[bytes], bool], timeout: float) -> int:
    """Print "ready" once capturing, then feed each frame to `on_frame` until it returns True or the
    timeout passes."""
    done = threading.Event()

    def handle(frame) -> None:
        if not done.is_set() and on_frame(bytes(frame)):
            done.set()

    started = threading.Event()
    sniffer = AsyncSniffer(iface=iface, prn=handle, store=False, started_callback=started.set)
    sniffer.start()
    if not started.wait(10):
        print("sniffer did not start", flush=True)
        return 1
    print("ready", flush=True)
    done.wait(timeout)
    sniffer.stop()
    return 0


def _sniff(iface: str, markers: list[str], timeout: float) -> int:
    pending = {m.encode() for m in markers}

    def seen(payload: bytes) -> bool:
        for marker in list(pending):
            if marker in payload:
                pending.discard(marker)
                print(f"seen {marker.decode()}", flush=True)
        return not pending

    return _listen(iface, seen, timeout)


def _capture(iface: str, ethertype: int, timeout: float) -> int:
    def first(frame: bytes) -> bool:
        if frame[12:14] != ethertype.to_bytes(2, "big"):
            return False
        print(f"frame {frame.hex()}", flush=True)
        return True

    return _listen(iface, first, timeout)


def _flood(iface: str, frames: list[bytes], seconds: float) -> int:
    """A raw socket, not scapy: tens of thousands of frames a second, what a hostile VM could send."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    print("flooding", flush=True)
    sent, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(64):
            for frame in frames:
                try:
                    sock.send(frame)
                    sent += 1
                except OSError:  # ENOBUFS: the interface's queue is full; a flood just goes on
                    pass
    print(f"sent {sent}", flush=True)
    return 0


def _frame(args: argparse.Namespace):
    ether = Ether(src=args.eth_src, dst=args.eth_dst)
    if args.vlan is not None:
        ether /= Dot1Q(vlan=args.vlan)
    if args.arp_op:
        return ether / ARP(op=args.arp_op, hwsrc=args.arp_sha or args.eth_src, psrc=args.arp_spa,
                           pdst=args.arp_tpa, hwdst=args.arp_tha) / Raw(args.marker.encode())
    if args.dhcp:
        payload = BOOTP(op=2, sname=args.marker.encode()) / DHCP(
            options=[("message-type", args.dhcp), ("server_id", args.ip_src), "end"])
    else:
        payload = Raw(args.marker.encode())
    return ether / IP(src=args.ip_src, dst=args.ip_dst) / UDP(sport=args.udp_sport, dport=args.udp_dport) / payload


def main(argv: list[str] | None = None) -> int:
    conf.verb = 0
    parser = argparse.ArgumentParser(prog="frames")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sniff = sub.add_parser("sniff")
    sniff.add_argument("iface")
    sniff.add_argument("markers", nargs="+")
    sniff.add_argument("--timeout", type=float, default=5.0)
    send = sub.add_parser("send")
    send.add_argument("iface")
    send.add_argument("--eth-src", required=True)
    send.add_argument("--eth-dst", required=True)
    send.add_argument("--ip-src")
    send.add_argument("--ip-dst")
    send.add_argument("--vlan", type=int)
    send.add_argument("--udp-sport", type=int, default=40000)
    send.add_argument("--udp-dport", type=int, default=9)
    send.add_argument("--dhcp", choices=("offer", "ack"))
    send.add_argument("--arp-op", type=int)
    send.add_argument("--arp-spa")
    send.add_argument("--arp-tpa")
    send.add_argument("--arp-sha")
    send.add_argument("--arp-tha", default="00:00:00:00:00:00")
    send.add_argument("--marker", required=True)
    send.add_argument("--count", type=int, default=3)
    capture = sub.add_parser("capture")
    capture.add_argument("iface")
    capture.add_argument("--ethertype", type=lambda text: int(text, 0), required=True)
    capture.add_argument("--timeout", type=float, default=5.0)
    raw = sub.add_parser("send-raw")
    raw.add_argument("iface")
    raw.add_argument("frame", type=bytes.fromhex)
    raw.add_argument("--count", type=int, default=1)
    flood = sub.add_parser("flood")
    flood.add_argument("iface")
    flood.add_argument("frames", type=bytes.fromhex, nargs="+")
    flood.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    if args.cmd == "flood":
        return _flood(args.iface, args.frames, args.seconds)
    if args.cmd == "sniff":
        return _sniff(args.iface, args.markers, args.timeout)
    if args.cmd == "capture":
        return _capture(args.iface, args.ethertype, args.timeout)
    if args.cmd == "send-raw":
        sendp(Raw(args.frame), iface=args.iface, count=args.count, inter=0.01)
        return 0
    sendp(_frame(args), iface=args.iface, count=args.count, inter=0.01)
    return 0


if __name__ == "__main__":
    sys.exit(main())
