"""`make demo`: tenant isolation, then routing, SNAT and a floating IP, shown in plain lines.

Starts its own sdn-controller (temporary state dir, free ports), builds the `external` topology (s1 - s2 - s3;
tenant A's networks a and c and a third, d; tenant B's b on A's 10.0.0.0/24; an external network whose uplink on
s1 leads to an `upstream` Linux router and an `outside` host beyond it), registers everything by REST, then
checks ping, TCP and UDP: within a tenant across switches they must work, between tenants they must not. Then,
all by REST: a router joining a and c with its gateway on the external network, east-west traffic through it,
SNAT to the outside host (which tells the source it saw) and a floating IP reached from outside; the networks
not on the router stay cut off. Exits non-zero when any expectation fails. `--keep` opens the Mininet CLI
afterwards; everything it created is removed on the way out.

`--topo three` (`make demo ARGS='--topo three'`) builds the smaller `three` topology (one VM of tenant A and one
of tenant B on each of s1 - s2 - s3) and shows isolation only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mininet.cli import CLI
from mininet.log import setLogLevel

from . import ovs
from .control import ControllerError, ControllerProcess
from .launcher import Running, describe, raise_on_sigterm, random_prefix, running
from .reach import EchoServer, connect, ping, seen_from, wait_until
from .rest import (
    Api,
    Registration,
    add_router_interface,
    create_floating_ip,
    create_router,
    register,
    router_gateway_ip,
)

ECHO_PORT = 5001
# Per topology: pairs within a tenant (reachable) and across tenants on the same 10.0.0.0/24 (blocked).
PAIRS = {
    "three": ((("a1", "a2"), ("a1", "a3"), ("b1", "b3"), ("b2", "b3")),
              (("a1", "b1"), ("a1", "b2"), ("b3", "a2"))),
    "external": ((("a1", "a2"), ("a1", "a3"), ("c1", "c2"), ("b1", "b2")),
                 (("a1", "b1"), ("a3", "b2"), ("b2", "a2"))),
}


@dataclass(frozen=True)
class Outcome:
    ping: bool
    tcp: bool
    udp: bool

    def line(self, expected: bool) -> str:
        def word(name: str, got: bool) -> str:
            if expected:
                return f"{name} ok" if got else f"{name} FAILED"
            return f"{name} LEAKED" if got else f"{name} blocked"
        return "  ".join(word(n, g) for n, g in (("ping", self.ping), ("tcp", self.tcp), ("udp", self.udp)))

    def met(self, expected: bool) -> bool:
        return all(g == expected for g in (self.ping, self.tcp, self.udp))


def _eventually(check: Callable[[], bool], within: float) -> bool:
    try:
        return bool(wait_until(check, within, "a path"))
    except TimeoutError:
        return False


def probe(run: Running, src: str, dst: str, within: float, timeout: float, ip: str | None = None) -> Outcome:
    """Ping, TCP echo and UDP echo from `src` to `dst` (at `ip`, default its own address), side by side; each
    waits `timeout` per attempt and retries until `within` seconds passed (0: one attempt)."""
    h_src, h_dst, ip = run.host(src), run.host(dst), ip or run.plan.vm(dst).ip
    checks: dict[str, Callable[[], bool]] = {
        "ping": lambda: ping(h_src, ip, timeout=timeout),
        "tcp": lambda: connect(h_src, "tcp", ip, ECHO_PORT, timeout) is not None,
        "udp": lambda: connect(h_src, "udp", ip, ECHO_PORT, timeout) is not None,
    }
    with EchoServer(h_dst, tcp=ECHO_PORT, udp=ECHO_PORT), ThreadPoolExecutor(len(checks)) as pool:
        futures = {name: pool.submit(_eventually, check, within) for name, check in checks.items()}
        return Outcome(**{name: f.result() for name, f in futures.items()})


def endpoint(run: Running, label: str) -> str:
    if label in ("upstream", "outside"):
        return label
    return f"{label} ({run.plan.vm(label).switch})"


def _who(run: Running, label: str) -> str:
    """"tenant A" (the `three` topology), else the VM's network ("tenant-a-2")."""
    return f"tenant {label[0].upper()}" if run.plan.layout == "three" else run.plan.vm(label).network


def show_checks(run: Running, converge_s: float) -> tuple[int, int]:
    """Print one line per check; (expectations met, checks run)."""
    same_tenant, cross_tenant = PAIRS[run.plan.layout]
    met = 0
    print("\nsame tenant, across switches (expected: reachable)")
    for src, dst in same_tenant:
        outcome = probe(run, src, dst, within=converge_s, timeout=2)
        met += outcome.met(True)
        print(f"  {_who(run, src)}: {endpoint(run, src)} -> {endpoint(run, dst)}  {outcome.line(True)}", flush=True)
    print("\ndifferent tenants, same 10.0.0.0/24 (expected: blocked)")
    for src, dst in cross_tenant:
        outcome = probe(run, src, dst, within=0, timeout=1)
        met += outcome.met(False)
        note = "(expected)" if outcome.met(False) else "(NOT EXPECTED)"
        print(f"  tenant {src[0].upper()} {endpoint(run, src)} -> tenant {dst[0].upper()} {endpoint(run, dst)}"
              f"  {outcome.line(False)}  {note}", flush=True)
    return met, len(same_tenant) + len(cross_tenant)


def _line(expected: bool, got: bool, what: str) -> str:
    if expected:
        return f"  {what}  {'ok' if got else 'FAILED'}"
    return f"  {what}  {'LEAKED (NOT EXPECTED)' if got else 'blocked (expected)'}"


def show_routing(run: Running, api: Api, reg: Registration, converge_s: float) -> tuple[int, int]:
    """The routing part (topology `external`): a router, east-west, SNAT, a floating IP. (met, checks run)."""
    ext = run.plan.external
    assert ext is not None and reg.external is not None
    # Ingress from anywhere on the VMs the routing part uses (the default group admits only its members).
    group = api.create("security-groups", {"name": "demo-routed"})["id"]
    for protocol in ("icmp", "tcp", "udp"):
        api.create("security-group-rules", {"security_group_id": group, "direction": "ingress",
                                            "protocol": protocol})
    for label in ("a1", "a2", "c1"):
        api.patch(f"/ports/{reg.ports[label]}", {"security_group_ids": [group]})
    router = create_router(api, "demo-router", reg.external)
    for key in ("a", "c"):
        router = add_router_interface(api, router["id"], reg.networks[key])
    gateway = router_gateway_ip(api.get(f"/routers/{router['id']}"))
    fip = create_floating_ip(api, reg.external, reg.ports["a2"])["floating_ip_address"]
    print(f"\nrouter demo-router on tenant-a (10.0.0.1) and tenant-a-2 (10.0.1.1), gateway {gateway} on "
          f"{ext.network} {ext.cidr} (SNAT); floating IP {fip} -> a2")
    checks: list[tuple[bool, bool, str]] = []   # expected, got, what

    east_west = probe(run, "a1", "c1", within=converge_s, timeout=2)
    for name in ("ping", "tcp", "udp"):
        checks.append((True, getattr(east_west, name),
                       f"east-west through the router: {endpoint(run, 'a1')} -> {endpoint(run, 'c1')}: {name}"))

    outside, a1, a2 = run.host("outside"), run.host("a1"), run.host("a2")

    def first_reply(src: Any, ip: str) -> str | None:
        replies: list[str] = []

        def attempt() -> bool:
            reply = connect(src, "tcp", ip, ECHO_PORT, timeout=2)
            if reply:
                replies.append(reply)
            return bool(reply)

        return replies[-1] if _eventually(attempt, converge_s) else None

    with EchoServer(outside, tcp=ECHO_PORT, peer=True), EchoServer(a2, tcp=ECHO_PORT, tag="a2", peer=True):
        snat_ping = _eventually(lambda: ping(a1, ext.outside_ip, timeout=2), converge_s)
        reply = first_reply(a1, ext.outside_ip)
        seen = seen_from(reply)
        checks.append((True, snat_ping, f"SNAT: a1 -> outside {ext.outside_ip}: ping"))
        checks.append((True, bool(seen and seen[0] == gateway),
                       f"SNAT: a1 -> outside: tcp, outside saw it from {seen[0] if seen else 'nothing'} "
                       f"(expected the router's {gateway})"))
        fip_ping = _eventually(lambda: ping(outside, fip, timeout=2), converge_s)
        checks.append((True, fip_ping, f"floating IP: outside -> {fip}: ping"))
        reply = first_reply(outside, fip)
        checks.append((True, bool(reply and reply.startswith("a2:")),
                       f"floating IP: outside -> {fip}: tcp, answered by {reply.split(':')[0] if reply else 'nobody'}"))
        reply = first_reply(a2, ext.outside_ip)
        seen = seen_from(reply)
        checks.append((True, bool(seen and seen[0] == fip),
                       f"floating IP: a2 -> outside: tcp, outside saw it from {seen[0] if seen else 'nothing'} "
                       f"(expected {fip})"))
        leak = connect(run.host("d1"), "tcp", ext.outside_ip, ECHO_PORT, timeout=1) is not None
        checks.append((False, leak, "tenant-a-3, not on the router: d1 -> outside"))
        leak = connect(run.host("b1"), "tcp", ext.outside_ip, ECHO_PORT, timeout=1) is not None
        checks.append((False, leak, "tenant-b, not on the router: b1 -> outside"))
    print("routing (expected: reachable, except where marked)")
    met = 0
    for expected, got, what in checks:
        met += got == expected
        print(_line(expected, got, what), flush=True)
    return met, len(checks)


def demo(args: argparse.Namespace, ctl: ControllerProcess) -> bool:
    prefix = args.prefix if args.prefix is not None else random_prefix()
    with running(args.topo, prefix, ctl.of_address) as run:
        print(describe(run.plan))
        api = Api(ctl.api)
        reg = register(api, run.plan)
        names = ", ".join(f"{n.name} ({n.cidr})" for n in run.plan.networks)
        if reg.external:
            names += f", external {run.plan.external.network} ({run.plan.external.cidr}) with its uplink"
        print(f"\nregistered by REST: networks {names}, {len(reg.ports)} ports")
        met, total = show_checks(run, args.converge)
        if run.plan.external is not None:
            more, checks = show_routing(run, api, reg, args.converge)
            met, total = met + more, total + checks
        ok = met == total
        print(f"\nsummary: {met}/{total} expectations met: {'OK' if ok else 'FAILED'}")
        if args.keep:
            names = ", ".join(f"{v.label}={v.host}" for v in run.plan.vms)
            print(f"\nMininet CLI; hosts {names}; REST {ctl.api}; `exit` cleans up")
            CLI(run.net)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mininet_topos.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave it running with the Mininet CLI")
    parser.add_argument("--prefix", help="switch/host name prefix (default: random, 3 characters)")
    parser.add_argument("--topo", choices=sorted(PAIRS), default="external",
                        help="three: isolation only; external: isolation, then routers, SNAT, a floating IP")
    parser.add_argument("--converge", type=float, default=15,
                        help="seconds a same-tenant path may take to come up (link discovery)")
    args = parser.parse_args(argv)
    setLogLevel("warning")
    raise_on_sigterm()
    try:
        ovs.require_running()
    except ovs.OvsNotRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = Path(tempfile.mkdtemp(prefix="sdn-demo-"))
    ctl = ControllerProcess(state, log_level="info")
    outcome = "interrupted"  # until the demo finishes or fails; then the state dir goes too
    try:
        print(f"starting sdn-controller: OpenFlow 127.0.0.1:{ctl.of_port}, REST {ctl.api}")
        ctl.start()
        outcome = "ok" if demo(args, ctl) else "failed"
    except (RuntimeError, TimeoutError) as exc:  # ControllerError, ApiError, OvsNotRunning
        outcome = "failed"
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        try:
            ctl.stop()
        except ControllerError as exc:
            print(f"warning: {exc}", file=sys.stderr)
        if outcome == "failed":
            print(f"controller log kept: {ctl.log_path}", file=sys.stderr)
        else:
            shutil.rmtree(state, ignore_errors=True)
    return 0 if outcome == "ok" else 1

if __name__ == "__main__":
    sys.exit(main())
