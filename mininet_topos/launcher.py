"""Build a topology against a controller, optionally register it through REST, and clean up.

`running()` is the one place that creates Mininet networks (the CLI below, the demo and the test
fixtures all use it). It refuses names that already exist, because Mininet's OVSSwitch.start
begins with `del-br NAME` and would silently take over another user's bridge; on exit it stops the
network and deletes exactly its own bridges, whatever happened in between.
"""

from __future__ import annotations

import argparse
import random
import signal
import string
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from mininet.cli import CLI
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import Host, OVSSwitch, RemoteController

from . import ovs
from .reach import wait_until
from .rest import Api, register
from .topos import LAYOUTS, Layout, NetdevSwitch, Plan, TenantTopo, configure_routing, plan


def random_prefix() -> str:
    """Three characters, not used by any bridge right now: short enough for interface names."""
    taken = ovs.bridges()
    while True:
        prefix = random.choice(string.ascii_lowercase) + "".join(
            random.choices(string.ascii_lowercase + string.digits, k=2))
        if not any(b.startswith(prefix) for b in taken):
            return prefix


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host, int(port)) if host else (text, default_port)


@dataclass
class Running:
    net: Mininet
    plan: Plan

    def host(self, label: str) -> Host:
        """The Mininet host of VM `label` ("a1"), or of "upstream" / "outside" (layouts with an external network)."""
        return self.net.get(self.plan.hosts[label])

    def switch(self, label: str) -> OVSSwitch:
        return self.net.get(self.plan.switch(label).name)

    def add_stray(self, label: str, switch_label: str) -> tuple[Host, str]:
        """A host plugged into a switch but registered as no port: (host, switch-side interface name).

        What a hostile or forgotten device looks like to the controller. net.stop() removes it.
        """
        switch = self.switch(switch_label)
        host = self.net.addHost(f"{self.plan.prefix}{label}")
        link = self.net.addLink(host, switch)
        switch.attach(link.intf2)
        return host, link.intf2.name

    def wait_connected(self, timeout: float = 10) -> None:
        """Block until every bridge reports its controller connection up."""
        wait_until(lambda: all(ovs.controller_connected(b) for b in self.plan.bridges),
                   timeout, f"switches {', '.join(self.plan.bridges)} to connect to the controller")


def _switch_side_interfaces(net: Mininet, p: Plan) -> dict[str, str]:
    """Host name -> name of the OVS port its link lands on (Mininet picks the numbers)."""
    found = {}
    for name in [vm.host for vm in p.vms] + ([p.external.upstream_host] if p.external else []):
        intf = net.get(name).defaultIntf()
        link = intf.link
        found[name] = (link.intf2 if link.intf1 is intf else link.intf1).name
    return found


def disable_tx_offload(net: Mininet) -> None:
    """Fallback for the netdev+veth checksum trap when vswitchd runs without userspace TSO."""
    for host in net.hosts:
        for intf in host.intfList():
            host.cmd("ethtool", "-K", intf.name, "tx", "off")


@contextmanager
def running(layout: Layout | str, prefix: str, controller: tuple[str, int],
            connect_timeout: float | None = 10) -> Iterator[Running]:
    """A started network for `layout` with switches pointing at `controller` (host, OpenFlow port).

    With `connect_timeout`, waits until every switch is connected (raises otherwise).
    """
    ovs.require_running()
    p = plan(layout, prefix)
    clash = set(p.bridges) & set(ovs.bridges())
    if clash:
        raise RuntimeError(f"bridges {sorted(clash)} already exist (someone else's?): use another prefix")
    net = Mininet(topo=TenantTopo(p), switch=NetdevSwitch, build=False, autoSetMacs=False,
                  controller=partial(RemoteController, ip=controller[0], port=controller[1]))
    try:
        net.build()
        net.start()
        if not ovs.userspace_tso_active():
            disable_tx_offload(net)
        configure_routing(net, p)
        run = Running(net, p.bound(_switch_side_interfaces(net, p)))
        if connect_timeout:
            run.wait_connected(connect_timeout)
        yield run
    finally:
        try:
            net.stop()
        finally:
            ovs.delete_bridges(p.bridges)


def describe(p: Plan) -> str:
    """The plan as a few aligned lines, for people."""
    lines = [f"topology {p.layout} (prefix {p.prefix!r})"]
    lines += [f"  switch {s.label:<3} {s.name:<8} dpid {s.dpid}" for s in p.switches]
    lines += [f"  link   {a} - {b}" for a, b in p.links]
    lines += [f"  vm     {v.label:<3} {v.host:<8} {v.network:<10} {v.ip_with_prefix:<15} {v.mac}  "
              f"on {v.switch} port {v.interface}" + (f"  via {v.gateway}" if v.gateway else "") for v in p.vms]
    ext = p.external
    if ext is not None:
        lines += [f"  ext    {ext.network} {ext.cidr}, uplink {ext.uplink_switch} port {ext.uplink_interface} "
                  f"(dpid {ext.uplink_dpid})",
                  f"  host   upstream {ext.upstream_host:<8} {ext.upstream_ip} (the external gateway_ip) and "
                  f"{ext.upstream_outside_ip}, ip_forward on",
                  f"  host   outside  {ext.outside_host:<8} {ext.outside_ip} via {ext.upstream_outside_ip}"]
    return "\n".join(lines)


def raise_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C so that the cleanup in running() always runs."""
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mininet_topos",
                                     description="Build a tenant topology against an SDN controller.")
    parser.add_argument("topology", nargs="?", choices=sorted(LAYOUTS))
    parser.add_argument("--topo", choices=sorted(LAYOUTS), help="the same as the positional TOPOLOGY")
    parser.add_argument("--controller", default="127.0.0.1:6653", help="OpenFlow HOST:PORT")
    parser.add_argument("--api", default="http://127.0.0.1:8080/v1", help="REST base URL")
    parser.add_argument("--token", help="API bearer token")
    parser.add_argument("--register", action="store_true", help="create the networks and ports by REST")
    parser.add_argument("--cli", action="store_true", help="open the Mininet CLI (else wait for Ctrl-C)")
    parser.add_argument("--prefix", help="name prefix, up to 4 letters/digits (default: random); "
                                         "'' gives plain s1, a1, ...")
    parser.add_argument("--connect-timeout", type=float, default=10,
                        help="seconds to wait for the switches to connect (0: do not wait)")
    parser.add_argument("-v", "--verbose", action="store_true", help="Mininet info logging")
    args = parser.parse_args(argv)
    if bool(args.topology) == bool(args.topo):
        parser.error("give the topology once: TOPOLOGY or --topo TOPOLOGY")
    args.topology = args.topology or args.topo
    setLogLevel("info" if args.verbose else "warning")
    raise_on_sigterm()
    prefix = random_prefix() if args.prefix is None else args.prefix
    try:
        with running(args.topology, prefix, parse_address(args.controller, 6653),
                     args.connect_timeout or None) as run:
            print(describe(run.plan), flush=True)
            if args.register:
                reg = register(Api(args.api, args.token), run.plan)
                print(f"registered networks {reg.networks} and ports {reg.ports}", flush=True)
            if args.cli:
                CLI(run.net)
            else:
                print("running; Ctrl-C to stop and clean up", flush=True)
                signal.pause()
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as exc:  # ApiError and OvsNotRunning included
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print(f"stopped; removed bridges {' '.join(plan(args.topology, prefix).bridges)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
