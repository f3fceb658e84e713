"""A small REST client for the controller's /v1 API, and registration of a topology plan.

Errors carry the response body: when a test or the demo fails on a call, the controller's own
explanation is what a person needs to read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from .topos import Plan


class ApiError(RuntimeError):
    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


class Api:
    """`Api("http://127.0.0.1:8080/v1")`; paths are relative to the base ("/networks")."""

    def __init__(self, base: str, token: str | None = None, timeout: float = 30) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, json: Any = None, expect: Iterable[int] = (200, 201, 204)) -> Any:
        """The decoded JSON body (None when empty); raises ApiError on any status not in `expect`."""
        url = self.base + path
        resp = self.session.request(method, url, json=json, timeout=self.timeout)
        if resp.status_code not in set(expect):
            raise ApiError(method, url, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any, **kw: Any) -> Any:
        return self.request("POST", path, json=json, **kw)

    def patch(self, path: str, json: Any, **kw: Any) -> Any:
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def create(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to `/<collection>` and return the created object.

        Accepts the object itself or Neutron's envelope (`{"network": {...}}`), since the contract
        does not fix one.
        """
        created = self.post(f"/{collection}", body)
        singular = collection.rstrip("s").replace("-", "_")
        if isinstance(created, dict) and "id" not in created and isinstance(created.get(singular), dict):
            return created[singular]
        return created

    def metrics(self) -> dict[str, float]:
        """GET /metrics (at the server root, Prometheus text): each sample's value by its name and labels."""
        resp = self.session.get(self.base.removesuffix("/v1") + "/metrics", timeout=self.timeout)
        resp.raise_for_status()
        return {name: float(value) for name, value in
                (line.rsplit(" ", 1) for line in resp.text.splitlines() if line and not line.startswith("#"))}

    def healthy(self) -> bool:
        try:
            return self.session.get(self.base + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False


@dataclass
class Registration:
    networks: dict[str, str] = field(default_factory=dict)   # tenant key -> network id
    ports: dict[str, str] = field(default_factory=dict)      # VM label -> port id
    external: str | None = None                              # the external network's id, if the plan has one


def register(api: Api, plan: Plan) -> Registration:
    """One network per tenant and one port per VM, bound to the VM's switch interface; with an external network
    in the plan, that network too (external, gateway_ip = the upstream, uplink = the upstream's switch port)."""
    reg = Registration()
    if plan.external is not None:
        ext = plan.external
        reg.external = api.create("networks", {"name": ext.network, "cidr": ext.cidr, "external": True,
                                               "gateway_ip": ext.upstream_ip, "uplink": ext.uplink})["id"]
    for net in plan.networks:
        reg.networks[net.tenant] = api.create("networks", {"name": net.name, "cidr": net.cidr})["id"]
    for vm in plan.vms:
        if vm.interface is None:
            raise ValueError(f"{vm.label}: plan not bound to a built network (no interface)")
        reg.ports[vm.label] = api.create("ports", {
            "network_id": reg.networks[vm.tenant], "name": vm.label,
            "mac_address": vm.mac, "ip_address": vm.ip,
            "binding": {"dpid": vm.dpid, "interface": vm.interface},
        })["id"]
    return reg


# -- routers and floating IPs (API.md: /routers, /routers/{id}/interfaces, /floating-ips) -----------------------

def create_router(api: Api, name: str, external_network_id: str | None = None, enable_snat: bool = True,
                  ip_address: str | None = None, routes: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A router, with its external gateway on `external_network_id` when given."""
    body: dict[str, Any] = {"name": name}
    if external_network_id is not None:
        body["external_gateway"] = gateway_body(external_network_id, enable_snat, ip_address)
    if routes is not None:
        body["routes"] = routes
    return api.create("routers", body)


def gateway_body(network_id: str, enable_snat: bool = True, ip_address: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"network_id": network_id, "enable_snat": enable_snat}
    if ip_address is not None:
        body["ip_address"] = ip_address
    return body


def set_external_gateway(api: Api, router_id: str, network_id: str | None, enable_snat: bool = True,
                         ip_address: str | None = None) -> dict[str, Any]:
    """Put the router's gateway on `network_id` (None: take it off)."""
    gateway = None if network_id is None else gateway_body(network_id, enable_snat, ip_address)
    return api.patch(f"/routers/{router_id}", {"external_gateway": gateway})


def add_router_interface(api: Api, router_id: str, network_id: str) -> dict[str, Any]:
    """The router joins the network at its gateway_ip; returns the router."""
    return api.post(f"/routers/{router_id}/interfaces", {"network_id": network_id})


def remove_router_interface(api: Api, router_id: str, network_id: str) -> None:
    api.delete(f"/routers/{router_id}/interfaces/{network_id}")


def router_gateway_ip(router: dict[str, Any]) -> str:
    """The router's address on its external network (where SNAT'd traffic comes from)."""
    gateway = router.get("external_gateway")
    if not gateway:
        raise ValueError(f"router {router.get('id')} has no external gateway")
    return gateway["ip_address"]


def create_floating_ip(api: Api, network_id: str, port_id: str | None = None,
                       address: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"network_id": network_id, "port_id": port_id}
    if address is not None:
        body["floating_ip_address"] = address
    return api.create("floating-ips", body)


def attach_floating_ip(api: Api, floating_ip_id: str, port_id: str | None) -> dict[str, Any]:
    """Map the floating IP to `port_id` (another port: a move; None: detach)."""
    return api.patch(f"/floating-ips/{floating_ip_id}", {"port_id": port_id})
