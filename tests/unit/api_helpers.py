"""What the REST API tests share: a stand-in runtime, one switch, request helpers and the error check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask.testing import FlaskClient
from prometheus_client.core import Metric

from apps.attachments import Attachment
from apps.compiler import Compiler
from apps.explain import Compiled
from apps.model import Policy
from apps.topology import Link, Switch, SwitchPort, Topology
from controller.errors import ChangeRefused, NotConfirmed, RefusedFlow
from controller.metrics import family
from controller.store import Store

DPID = "000000000000000a"
TOKEN = "s3cret"
ZERO = {"packets": 0, "bytes": 0}  # the stats of an object nothing counted for yet


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
        self.counted: dict[tuple[str, str], tuple[int, int]] = {}  # (kind, id) -> (packets, bytes)
        self.refreshes = 0
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

    def compiled(self) -> Compiled:
        """What the real runtime holds: the store's policy compiled for the switches (connected or not)."""
        switches = tuple(Switch(sw["dpid"], tuple(SwitchPort(p["name"], p["ofport"], p["mac"]) for p in sw["ports"]))
                         for sw in self.switch_list)
        links = tuple({Link.between(sw["dpid"], link["port"], link["peer_dpid"], link["peer_port"])
                       for sw in self.switch_list for link in sw["links"]})
        compiler = Compiler()
        compiler.load(self.store.snapshot(), Topology(switches, links))
        compiler.commit()
        return compiler.compiled(Topology(switches))

    def policy(self) -> Policy:
        return self.store.snapshot()  # no OVSDB here: every port is where its binding says

    def collect(self) -> Iterator[Metric]:
        connected = sum(sw["connected"] for sw in self.switch_list)
        yield family("sdn_switches_connected", "Switches connected now.", connected, gauge=True)

    def object_stats(self, kind: str, object_id: str) -> dict[str, int]:
        packets, octets = self.counted.get((kind, object_id), (0, 0))
        return {"packets": packets, "bytes": octets}

    def refresh_stats(self, timeout: float = 5.0) -> bool:
        self.refreshes += 1
        return True


def metric(collector: Any, name: str, **labels: str) -> float:
    """A sample's value from a prometheus_client collector such as the runtime (0 when there is none)."""
    return next((sample.value for family in collector.collect() for sample in family.samples
                 if sample.name == name and sample.labels == labels), 0.0)


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
