"""The `external` fixture: the `external` topology against a real controller, registered through REST.

What it builds (mininet_topos/topos.py, layout `external`): s1 - s2 - s3; tenant A's networks `a` (10.0.0.0/24:
a1 on s2, a2 on s3, a3 on s1), `c` (10.0.1.0/24: c1 on s3, c2 on s2) and `d` (10.0.2.0/24: d1 on s2), tenant B's
`b` (10.0.0.0/24 again: b1 on s3, b2 on s2); every VM routes by default via its network's gateway_ip (.1). The
external network `ext` (203.0.113.0/24) has its uplink on s1, where the `upstream` host (203.0.113.1, the
network's gateway_ip, a Linux router) is plugged; beyond it, on a plain veth, `outside` (198.51.100.10).

Every VM port is put in one security group, `routed`: egress anywhere, ingress ICMP and TCP/UDP 5001-5009 from
anywhere (ALLOWED_PORTS); TCP/UDP 6000 (DENIED_PORT) is never allowed in. Wide open on purpose: what blocks a
path in these tests is isolation and routing, except where the test names DENIED_PORT.

No router exists when a test starts: `env.router(...)` makes one (REST, as API.md describes).
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from helpers import (
    Api,
    ControllerProcess,
    Registration,
    Running,
    add_router_interface,
    attach_floating_ip,
    create_floating_ip,
    create_router,
    readdress,
    register,
    run_in,
    wait_until,
)

ALLOWED_PORTS = (5001, 5009)   # ingress TCP and UDP allowed by the `routed` group
DENIED_PORT = 6000             # ingress never allowed by it


@dataclass
class ExternalEnv:
    api: Api
    controller: ControllerProcess
    run: Running
    reg: Registration
    group: str   # the `routed` security group every VM port is in

    # -- who is where ---------------------------------------------------------------------------------

    def host(self, label: str) -> Any:
        """Mininet host of a VM ("a1") or of "upstream" / "outside"."""
        return self.run.host(label)

    def ip(self, label: str) -> str:
        """A VM's fixed IP, the outside host's address, or the upstream's address on the external network."""
        ext = self.run.plan.external
        assert ext is not None
        if label == "outside":
            return ext.outside_ip
        if label == "upstream":
            return ext.upstream_ip
        return self.run.plan.vm(label).ip

    def port(self, label: str) -> str:
        return self.reg.ports[label]

    def network(self, key: str) -> str:
        """Network id of tenant network `key` ("a", "b", "c", "d") or "ext"."""
        if key == "ext":
            assert self.reg.external is not None
            return self.reg.external
        return self.reg.networks[key]

    def gateway_ip(self, key: str) -> str:
        """The gateway_ip of tenant network `key` (the router's address there, once attached)."""
        gateway = next(n.gateway_ip for n in self.run.plan.networks if n.tenant == key)
        assert gateway is not None
        return gateway

    # -- REST -----------------------------------------------------------------------------------------

    def router(self, name: str, networks: Iterable[str] = ("a",), gateway: bool = True,
               enable_snat: bool = True, ip_address: str | None = None) -> dict[str, Any]:
        """A router on tenant networks `networks` (keys), its gateway on `ext` when `gateway`; returns its view."""
        router = create_router(self.api, name, self.network("ext") if gateway else None, enable_snat, ip_address)
        for key in networks:
            router = add_router_interface(self.api, router["id"], self.network(key))
        return self.api.get(f"/routers/{router['id']}")

    def floating_ip(self, label: str | None = None, address: str | None = None) -> dict[str, Any]:
        """A floating IP on `ext`, mapped to VM `label`'s port when given."""
        return create_floating_ip(self.api, self.network("ext"), self.port(label) if label else None, address)

    def attach(self, floating_ip: dict[str, Any], label: str | None) -> dict[str, Any]:
        """Map `floating_ip` to VM `label`'s port (another one: a move; None: detach)."""
        return attach_floating_ip(self.api, floating_ip["id"], self.port(label) if label else None)

    def readdress(self, label: str, ip: str) -> None:
        """VM `label` takes address `ip` (in its host and its port) and keeps its default route via its gateway
        (replacing an address drops the routes that relied on it)."""
        readdress(self.api, self.run, self.reg, label, ip)
        vm = self.run.plan.vm(label)
        code, out = run_in(self.host(label), ["ip", "route", "replace", "default", "via", str(vm.gateway)], 5)
        assert code == 0, out
        self.run.plan = replace(self.run.plan, vms=tuple(replace(v, ip=ip) if v.label == label else v
                                                          for v in self.run.plan.vms))

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Restart the controller (same ports and DB) and wait until every switch is connected again."""
        self.controller.restart(sig)
        wait_until(lambda: all(s["connected"] for s in self.api.get("/switches")), 30, "switches to reconnect")


def make_external(api: Api, controller: ControllerProcess, net_factory: Any) -> ExternalEnv:
    run = net_factory("external")
    reg = register(api, run.plan)
    group = api.create("security-groups", {"name": "routed"})["id"]
    rules = [{"protocol": "icmp"}] + [{"protocol": proto, "port_range_min": ALLOWED_PORTS[0],
                                       "port_range_max": ALLOWED_PORTS[1]} for proto in ("tcp", "udp")]
    for rule in rules:
        api.create("security-group-rules", {"security_group_id": group, "direction": "ingress", **rule})
    for port in reg.ports.values():
        api.patch(f"/ports/{port}", {"security_group_ids": [group]})
    wait_until(lambda: sum(len(s["links"]) for s in api.get("/switches")) == 2 * len(run.plan.links), 15,
               "LLDP to find every link")
    return ExternalEnv(api, controller, run, reg, group)


@pytest.fixture
def external(api: Api, controller: ControllerProcess, net_factory: Any) -> ExternalEnv:
    """The `external` topology built, registered (networks, ports in group `routed`, the external network with
    its uplink) and its links discovered; no router yet."""
    return make_external(api, controller, net_factory)
