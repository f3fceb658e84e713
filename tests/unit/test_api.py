"""The REST API over a real store, with a stand-in runtime that has no switches unless told."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from controller.api import create_app, openapi_document
from controller.runtime import Runtime
from controller.store import Store
from tests.unit.api_helpers import (
    DPID,
    TOKEN,
    ZERO,
    StubRuntime,
    assert_error,
    make_network,
    make_port,
    one_switch,
)


def test_health_counts_connected_switches(client: FlaskClient) -> None:
    assert client.get("/v1/health").json == {"status": "ok", "switches": 1, "version": "1.2.3", "failing": [],
                                              "token_required": False}


def test_network_crud(client: FlaskClient, runtime: StubRuntime) -> None:
    net = make_network(client)
    assert net["cidr"] == "10.0.0.0/24" and net["status"] == "ACTIVE"
    assert runtime.converges == 1
    assert client.get("/v1/networks").json == [net]
    assert client.get(f"/v1/networks/{net['id']}").json == net
    patched = client.patch(f"/v1/networks/{net['id']}", json={"name": "red"})
    assert patched.status_code == 200 and patched.json == {**net, "name": "red"}
    assert runtime.converges == 2
    deleted = client.delete(f"/v1/networks/{net['id']}")
    assert deleted.status_code == 204 and deleted.data == b""
    assert runtime.converges == 3
    assert_error(client.get(f"/v1/networks/{net['id']}"), 404)
    assert runtime.converges == 3  # reads never converge


def test_created_resource_has_a_location(client: FlaskClient) -> None:
    response = client.post("/v1/networks", json={"cidr": "10.0.0.0/24"})
    assert response.headers["Location"] == f"/v1/networks/{response.json['id']}"


def test_port_crud_and_status(client: FlaskClient, runtime: StubRuntime) -> None:
    net = make_network(client)
    port = make_port(client, net["id"])
    assert port["status"] == "ACTIVE"
    assert port["binding"] == {"dpid": DPID, "interface": "s1-eth1"}
    moved = client.patch(f"/v1/ports/{port['id']}", json={"binding": {"dpid": DPID, "interface": "s1-eth7"}})
    assert moved.json["status"] == "DOWN"
    runtime.switch_list[0]["ports"].append({"name": "s1-eth7", "ofport": 7, "mac": "02:00:00:00:00:07"})
    assert client.get(f"/v1/ports/{port['id']}").json["status"] == "ACTIVE"
    runtime.switch_list[0]["connected"] = False
    assert client.get("/v1/ports").json[0]["status"] == "DOWN"
    assert client.delete(f"/v1/ports/{port['id']}").status_code == 204
    assert client.get("/v1/ports").json == []


def test_ports_filter_by_network(client: FlaskClient) -> None:
    a, b = make_network(client), make_network(client)
    port = make_port(client, b["id"])
    assert client.get(f"/v1/ports?network_id={b['id']}").json == [port]
    assert client.get(f"/v1/ports?network_id={a['id']}").json == []
    assert_error(client.get("/v1/ports?network=x"), 400, "network")
    assert_error(client.get("/v1/networks?name=x"), 400, "name")


def test_validation_and_conflicts_carry_the_field(client: FlaskClient, runtime: StubRuntime) -> None:
    assert_error(client.post("/v1/networks", json={"cidr": "10.0.0.1/24"}), 400, "cidr")
    net = make_network(client, segmentation_id=9)
    assert_error(client.post("/v1/networks", json={"cidr": "10.0.0.0/24", "segmentation_id": 9}), 409,
                 "segmentation_id")
    make_port(client, net["id"])
    assert_error(client.delete(f"/v1/networks/{net['id']}"), 409)
    missing = {"network_id": "nope", "mac_address": "fa:16:3e:00:00:02", "ip_address": "10.0.0.6",
               "binding": {"dpid": DPID, "interface": "x"}}
    assert_error(client.post("/v1/ports", json=missing), 404, "network_id")
    assert runtime.converges == 2  # only the two successful creates


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("{not json", "application/json"),
        ('["a list"]', "application/json"),
        ("", "application/json"),
        ("42", "text/plain"),
        (b"\xff\xfe\x00", "application/json"),
    ],
)
def test_malformed_bodies_are_400(client: FlaskClient, data: str | bytes, content_type: str) -> None:
    assert_error(client.post("/v1/networks", data=data, content_type=content_type), 400)
    assert client.get("/v1/networks").json == []


def test_body_without_json_content_type_is_still_read(client: FlaskClient) -> None:
    response = client.post("/v1/networks", data='{"cidr": "10.0.0.0/24"}', content_type="text/plain")
    assert response.status_code == 201


def test_unknown_route_and_wrong_method_are_json(client: FlaskClient) -> None:
    assert_error(client.get("/v1/nothing"), 404)
    error = assert_error(client.delete("/v1/networks"), 405)
    assert "DELETE /v1/networks" in error["message"]
    assert set(client.delete("/v1/networks").headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_failed_convergence_is_503_and_the_change_stays(client: FlaskClient, runtime: StubRuntime) -> None:
    runtime.failures = {DPID: "barrier timeout"}
    response = client.post("/v1/networks", json={"cidr": "10.0.0.0/24"})
    error = assert_error(response, 503)
    assert error["details"] == [{"dpid": DPID, "reason": "barrier timeout"}]
    assert DPID in error["message"]
    stored = client.get("/v1/networks").json
    assert len(stored) == 1 and stored[0]["id"] in error["message"]


def test_switch_views(client: FlaskClient, runtime: StubRuntime) -> None:
    assert client.get("/v1/switches").json == runtime.switch_list
    assert client.get(f"/v1/switches/{DPID.upper()}").json == one_switch()
    assert_error(client.get("/v1/switches/00000000000000ff"), 404)
    runtime.flows[DPID] = [{"table": "classify", "priority": 100, "match": {"in_port": 1}, "actions": ["drop"]}]
    assert client.get(f"/v1/switches/{DPID}/flows").json == runtime.flows[DPID]
    assert client.get("/v1/switches/00000000000000bb/flows").json == []
    assert_error(client.get("/v1/switches/00000000000000ff/flows"), 404)


def test_token_guards_everything_but_health(store: Store, runtime: StubRuntime) -> None:
    client = create_app(store, runtime, api_token=TOKEN).test_client()
    assert client.get("/v1/health").status_code == 200
    for path in ("/v1/networks", "/v1/switches", "/metrics", "/openapi.json", "/v1/nothing"):
        response = client.get(path)
        assert_error(response, 401)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    wrong = {"Authorization": "Bearer nope"}
    assert_error(client.post("/v1/networks", json={"cidr": "10.0.0.0/24"}, headers=wrong), 401)
    assert_error(client.get("/v1/networks", headers={"Authorization": TOKEN}), 401)
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/v1/networks", json={"cidr": "10.0.0.0/24"}, headers=right).status_code == 201
    assert len(client.get("/v1/networks", headers=right).json) == 1


def test_metrics_count_requests_and_include_the_runtime(client: FlaskClient) -> None:
    make_network(client)
    client.get("/v1/networks")
    client.get("/v1/networks")
    client.get("/v1/nothing")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'sdn_api_requests_total{code="200",method="GET",route="/v1/networks"} 2.0' in text
    assert 'sdn_api_requests_total{code="201",method="POST",route="/v1/networks"} 1.0' in text
    assert 'sdn_api_requests_total{code="404",method="GET",route="unmatched"} 1.0' in text
    assert re.search(r'^sdn_api_request_duration_seconds_count\{method="GET"\} 3.0$', text, re.M)
    assert "\nsdn_switches_connected 1.0\n" in text
    assert "# TYPE sdn_api_requests_total counter" in text


def test_openapi_document_matches_the_routes(app: Flask, client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    assert client.get("/v1/openapi.json").json == document == openapi_document("1.2.3")
    assert document["openapi"].startswith("3.")
    served = {
        (re.sub(r"<(\w+)>", r"{\1}", rule.rule.removeprefix("/v1")), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/") and not rule.rule.endswith("openapi.json")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert served == documented
    refs = set(re.findall(r'"#/components/(\w+)/(\w+)"', str(document).replace("'", '"')))
    assert refs and all(name in document["components"][kind] for kind, name in refs)
    schemas = document["components"]["schemas"]
    assert schemas["NetworkCreate"]["required"] == ["cidr"]
    assert "network_id" not in schemas["PortUpdate"]["properties"]
    assert schemas["Port"]["properties"]["binding"]["required"] == ["dpid", "interface"]
    assert document["paths"]["/health"]["get"]["security"] == []


# -- security groups ---------------------------------------------------------------------------


def make_group(client: FlaskClient, name: str = "web") -> dict[str, Any]:
    response = client.post("/v1/security-groups", json={"name": name})
    assert response.status_code == 201, response.json
    return response.json


def test_security_group_crud(client: FlaskClient, runtime: StubRuntime) -> None:
    (default,) = client.get("/v1/security-groups").json
    assert default["name"] == "default" and len(default["rules"]) == 2
    response = client.post("/v1/security-groups", json={"name": "web", "description": "front"})
    group = response.json
    assert response.headers["Location"] == f"/v1/security-groups/{group['id']}"
    assert (group["name"], group["description"], group["status"]) == ("web", "front", "ACTIVE")
    (egress,) = group["rules"]
    assert (egress["direction"], egress["protocol"], egress["remote_ip_prefix"]) == ("egress", None, None)
    assert runtime.converges == 1
    assert client.get(f"/v1/security-groups/{group['id']}").json == group
    patched = client.patch(f"/v1/security-groups/{group['id']}", json={"name": "api"})
    assert patched.json == {**group, "name": "api"} and runtime.converges == 2
    assert client.delete(f"/v1/security-groups/{group['id']}").status_code == 204
    assert runtime.converges == 3
    assert [g["id"] for g in client.get("/v1/security-groups").json] == [default["id"]]


def test_security_group_rule_lifecycle(client: FlaskClient, runtime: StubRuntime) -> None:
    group = make_group(client)
    body = {"security_group_id": group["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 22,
            "remote_ip_prefix": "10.9.8.7/8"}
    response = client.post("/v1/security-group-rules", json=body)
    assert response.status_code == 201, response.json
    ssh = response.json
    assert response.headers["Location"] == f"/v1/security-group-rules/{ssh['id']}"
    assert ssh == {**body, "id": ssh["id"], "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8",
                   "remote_group_id": None, "ethertype": "IPv4", "status": "ACTIVE", "stats": ZERO}
    assert runtime.converges == 2
    assert client.get(f"/v1/security-group-rules/{ssh['id']}").json == ssh
    listed = client.get(f"/v1/security-group-rules?security_group_id={group['id']}").json
    assert listed == [{**group["rules"][0], "status": "ACTIVE"}, ssh]
    assert len(client.get("/v1/security-group-rules").json) == 4  # with the default group's two
    shown = client.get(f"/v1/security-groups/{group['id']}").json
    assert shown["rules"] == [{k: v for k, v in r.items() if k != "status"} for r in listed]
    assert_error(client.patch(f"/v1/security-group-rules/{ssh['id']}", json={"protocol": "udp"}), 405)
    assert_error(client.post("/v1/security-group-rules", json=body), 409)
    assert client.delete(f"/v1/security-group-rules/{ssh['id']}").status_code == 204
    assert_error(client.get(f"/v1/security-group-rules/{ssh['id']}"), 404)
    assert runtime.converges == 3


def test_security_group_errors_name_the_field_and_change_nothing(client: FlaskClient, runtime: StubRuntime) -> None:
    (default,) = client.get("/v1/security-groups").json
    group = make_group(client)
    rules = client.get("/v1/security-group-rules").json
    for body, code, name in [
        ({"security_group_id": group["id"], "direction": "sideways"}, 400, "direction"),
        ({"security_group_id": group["id"], "direction": "ingress", "port_range_min": 5}, 400, "port_range_min"),
        ({"security_group_id": group["id"], "direction": "ingress", "remote_group_id": default["id"],
          "remote_ip_prefix": "10.0.0.0/8"}, 400, "remote_group_id"),
        ({"security_group_id": "nope", "direction": "ingress"}, 404, "security_group_id"),
        ({"security_group_id": group["id"], "direction": "ingress", "remote_group_id": "nope"}, 404,
         "remote_group_id"),
    ]:
        assert_error(client.post("/v1/security-group-rules", json=body), code, name)
    assert client.get("/v1/security-group-rules").json == rules
    assert_error(client.get("/v1/security-group-rules?group=x"), 400, "group")
    assert_error(client.post("/v1/security-groups", json={"name": "default"}), 400, "name")
    assert_error(client.delete(f"/v1/security-groups/{default['id']}"), 409, "id")
    assert_error(client.patch(f"/v1/security-groups/{default['id']}", json={"name": "x"}), 409, "name")
    assert_error(client.get("/v1/security-groups/nope"), 404)
    assert client.get(f"/v1/security-groups/{default['id']}").json == default
    assert runtime.converges == 1  # only make_group


def test_port_security_groups_over_rest(client: FlaskClient, runtime: StubRuntime) -> None:
    (default,) = client.get("/v1/security-groups").json
    group = make_group(client)
    net = make_network(client)
    port = make_port(client, net["id"])
    assert port["security_group_ids"] == [default["id"]]
    patched = client.patch(f"/v1/ports/{port['id']}", json={"security_group_ids": [group["id"], default["id"]]})
    assert patched.json["security_group_ids"] == [group["id"], default["id"]]
    error = assert_error(client.delete(f"/v1/security-groups/{group['id']}"), 409)
    assert error["details"] == [{"field": "id", "message": f"used by port {port['id']}"}]
    assert_error(client.patch(f"/v1/ports/{port['id']}", json={"port_security_enabled": False}), 409,
                 "port_security_enabled")
    assert_error(client.patch(f"/v1/ports/{port['id']}", json={"security_group_ids": ["nope"]}), 404,
                 "security_group_ids")
    off = client.patch(f"/v1/ports/{port['id']}", json={"port_security_enabled": False, "security_group_ids": []})
    assert off.status_code == 200 and off.json["security_group_ids"] == []
    assert client.delete(f"/v1/security-groups/{group['id']}").status_code == 204


def test_openapi_documents_security_groups(client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    assert set(document["paths"]["/security-groups/{id}"]) == {"get", "patch", "delete"}
    assert set(document["paths"]["/security-group-rules/{id}"]) == {"get", "delete"}
    assert document["paths"]["/security-group-rules"]["get"]["parameters"][0]["name"] == "security_group_id"
    schemas = document["components"]["schemas"]
    rules = schemas["SecurityGroup"]["properties"]["rules"]
    assert rules["items"] == {"$ref": "#/components/schemas/SecurityGroupRule"}
    assert "SecurityGroupRuleUpdate" not in schemas
    assert schemas["SecurityGroupRuleCreate"]["required"] == ["security_group_id", "direction"]
    assert schemas["PortCreate"]["properties"]["security_group_ids"]["type"] == "array"


def test_the_real_runtime_serves_the_api_without_switches(store: Store) -> None:
    """StubRuntime (api_helpers) mirrors this interface; here the controller's own Runtime answers (no switches)."""
    runtime = Runtime(store, hold_down=0)
    client = create_app(store, runtime, version="1.2.3").test_client()
    network = make_network(client)
    port = client.post("/v1/ports", json={"network_id": network["id"], "mac_address": "fa:16:3e:00:00:01",
                                          "ip_address": "10.0.0.5",
                                          "binding": {"dpid": DPID, "interface": "s1-eth1"}})
    assert port.status_code == 201 and port.json["status"] == "DOWN"
    assert client.get("/v1/switches").json == []
    assert client.get(f"/v1/switches/{DPID}/flows").status_code == 404
    assert client.get("/v1/health").json["switches"] == 0
    text = client.get("/metrics").get_data(as_text=True)
    metrics = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(metrics["sdn_converge_passes"]) == 2  # one pass per mutation, each with nothing to program
    assert client.delete(f"/v1/ports/{port.json['id']}").status_code == 204
    # A DOWN port had no flows of its own; its group lost its last member, so that group's rule is recompiled.
    assert not any(kind.startswith("isolation") for kind in runtime.compiler.recompiled)


def test_a_groups_rules_are_replaced_in_one_call(client: FlaskClient, runtime: StubRuntime) -> None:
    group = client.post("/v1/security-groups", json={"name": "web"}).json
    converges = runtime.converges
    rules = [{"direction": "egress"}, {"direction": "ingress", "protocol": "tcp", "port_range_min": 443}]
    response = client.put(f"/v1/security-groups/{group['id']}/rules", json={"rules": rules})
    assert response.status_code == 200 and runtime.converges == converges + 1
    assert response.json["rules"][0] == group["rules"][0]  # unchanged: same id
    assert response.json["rules"][1]["port_range_max"] == 443
    assert client.get(f"/v1/security-groups/{group['id']}").json == response.json
    assert_error(client.put(f"/v1/security-groups/{group['id']}/rules", json={"rules": [{"direction": "x"}]}),
                 400, "rules[0].direction")
    assert_error(client.put("/v1/security-groups/nope/rules", json={"rules": []}), 404)
    assert client.get(f"/v1/security-groups/{group['id']}").json == response.json
