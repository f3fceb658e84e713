"""`make demo`: tenant isolation across three hypervisors, shown in plain lines.

Starts its own sdn-controller (temporary state dir, free ports), builds the `three` topology
(s1 - s2 - s3, one VM of tenant A and one of tenant B on each), registers both tenants by REST
(both on 10.0.0.0/24), then checks ping, TCP and UDP: within a tenant across switches they must
work, between tenants they must not. Exits non-zero when any expectation fails. `--keep` opens the
Mininet CLI afterwards; everything it created is removed on the way out.
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

from mininet.cli import CLI
from mininet.log import setLogLevel

from . import ovs
from .control import ControllerError, ControllerProcess
from .launcher import Running, describe, raise_on_sigterm, random_prefix, running
from .reach import EchoServer, connect, ping, wait_until
from .rest import Api, register

ECHO_PORT = 5001
SAME_TENANT = (("a1", "a2"), ("a1", "a3"), ("b1", "b3"), ("b2", "b3"))
CROSS_TENANT = (("a1", "b1"), ("a1", "b2"), ("b3", "a2"))


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


def probe(run: Running, src: str, dst: str, within: float, timeout: float) -> Outcome:
    """Ping, TCP echo and UDP echo from `src` to `dst`, side by side; each waits `timeout` per
    attempt and retries until `within` seconds passed (0: one attempt)."""
    h_src, h_dst, ip = run.host(src), run.host(dst), run.plan.vm(dst).ip
    checks: dict[str, Callable[[], bool]] = {
        "ping": lambda: ping(h_src, ip, timeout=timeout),
        "tcp": lambda: connect(h_src, "tcp", ip, ECHO_PORT, timeout) is not None,
        "udp": lambda: connect(h_src, "udp", ip, ECHO_PORT, timeout) is not None,
    }
    with EchoServer(h_dst, tcp=ECHO_PORT, udp=ECHO_PORT), ThreadPoolExecutor(len(checks)) as pool:
        futures = {name: pool.submit(_eventually, check, within) for name, check in checks.items()}
        return Outcome(**{name: f.result() for name, f in futures.items()})


def endpoint(run: Running, label: str) -> str:
    return f"{label} ({run.plan.vm(label).switch})"


def show_checks(run: Running, converge_s: float) -> tuple[int, int]:
    """Print one line per check; (expectations met, checks run)."""
    met = 0
    print("\nsame tenant, across switches (expected: reachable)")
    for src, dst in SAME_TENANT:
        outcome = probe(run, src, dst, within=converge_s, timeout=2)
        met += outcome.met(True)
        print(f"  tenant {src[0].upper()}: {endpoint(run, src)} -> {endpoint(run, dst)}  {outcome.line(True)}",
              flush=True)
    print("\ndifferent tenants, same 10.0.0.0/24 (expected: blocked)")
    for src, dst in CROSS_TENANT:
        outcome = probe(run, src, dst, within=0, timeout=1)
        met += outcome.met(False)
        note = "(expected)" if outcome.met(False) else "(NOT EXPECTED)"
        print(f"  tenant {src[0].upper()} {endpoint(run, src)} -> tenant {dst[0].upper()} {endpoint(run, dst)}"
              f"  {outcome.line(False)}  {note}", flush=True)
    return met, len(SAME_TENANT) + len(CROSS_TENANT)


def demo(args: argparse.Namespace, ctl: ControllerProcess) -> bool:
    prefix = args.prefix if args.prefix is not None else random_prefix()
    with running("three", prefix, ctl.of_address) as run:
        print(describe(run.plan))
        reg = register(Api(ctl.api), run.plan)
        print(f"\nregistered by REST: networks tenant-a, tenant-b (10.0.0.0/24 each), "
              f"{len(reg.ports)} ports")
        met, total = show_checks(run, args.converge)
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
