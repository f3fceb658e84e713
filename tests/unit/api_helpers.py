"""What the REST API tests share: a stand-in runtime, one switch, request helpers and the error check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from apps.attachments import Attachment
from controller.errors import ChangeRefused, NotConfirmed, RefusedFlow
from controller.store import Store

DPID = "000000000000000a"
TOKEN = "s3cret"


class StubRuntime:
    """The runtime interface the API uses: switches and flows as given, changes confirmed as told.

    `failures` makes every change unconfirmed on those switches (dpid -> reason); `refused` makes
    every change refused (and so undone) with those flows.
    """

    def __init__(self, store: Store, switches: list[dict[str, Any]] | None = None) -> None:
        self.store = store
        self.switch_list = switches or []
        self.flows: dict[str, list[dict[str, Any]]] = {}
        self.failures: dict[str, str] = {}
        self.refused: list[RefusedFlow] = []
        self.converges = 0
        self.gateways: dict[str, str] = {}  # router id -> gateway dpid, as the compiler would place it
        self.attachments: dict[str, Attachment] = {}  # port id -> where OVSDB attached it, as the compiler would

    def apply(self, change: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Like the real runtime: the change is made, converged, then kept or undone."""
        with self.store.staged() as stage:
            result = change()
            self.converges += 1
            if self.refused:
                stage.rollback()
                raise ChangeRefused(self.refused)
            stage.commit()
        if self.failures:
            raise NotConfirmed(result, dict(self.failures))
        return result

    def health(self) -> dict[str, Any]:
        connected = sum(sw["connected"] for sw in self.switch_list)
        return {"status": "ok", "switches": connected, "failing": []}

    def switches(self) -> list[dict[str, Any]]:
        return self.switch_list

    def switch_flows(self, dpid: str) -> list[dict[str, Any]] | None:
        if not any(sw["dpid"] == dpid for sw in self.switch_list):
            return None
        return self.flows.get(dpid, [])

    def port_attachment(self, port_id: str) -> Attachment | None:
        return self.attachments.get(port_id)

    def port_status(self, dpid: str | None, interface: str | None) -> str:
        for switch in self.switch_list:
            if switch["dpid"] == dpid and switch["connected"]:
                if any(port["name"] == interface for port in switch["ports"]):
                    return "ACTIVE"
        return "DOWN"

    def router_gateway(self, router_id: str) -> str | None:
        return self.gateways.get(router_id)

    def metrics(self) -> dict[str, float]:
        return {"sdn_switches_connected": float(sum(sw["connected"] for sw in self.switch_list))}


def one_switch(connected: bool = True) -> dict[str, Any]:
    return {
        "dpid": DPID,
        "connected": connected,
        "ports": [{"name": "s1-eth1", "ofport": 1, "mac": "02:00:00:00:00:01"}],
        "links": [],
    }


def make_network(client: FlaskClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/networks", json={"name": "blue", "cidr": "10.0.0.0/24", **body})
    assert response.status_code == 201, response.json
    return response.json


def make_port(client: FlaskClient, network_id: str, interface: str = "s1-eth1") -> dict[str, Any]:
    body = {
        "network_id": network_id,
        "mac_address": "fa:16:3e:00:00:01",
        "ip_address": "10.0.0.5",
        "binding": {"dpid": DPID, "interface": interface},
    }
    response = client.post("/v1/ports", json=body)
    assert response.status_code == 201, response.json
    return response.json


def assert_error(response: Any, code: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == code, response.get_data(as_text=True)
    error = response.json["error"]
    assert error["code"] == code and error["message"]
    assert isinstance(error["details"], list)
    if field:
        assert [d.get("field") for d in error["details"]] == [field]
    return error
