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

    def healthy(self) -> bool:
        try:
            return self.session.get(self.base + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False


@dataclass
class Registration:
    networks: dict[str, str] = field(default_factory=dict)   # tenant key -> network id
    ports: dict[str, str] = field(default_factory=dict)      # VM label -> port id


def register(api: Api, plan: Plan) -> Registration:
    """One network per tenant and one port per VM, bound to the VM's switch interface."""
    reg = Registration()
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
