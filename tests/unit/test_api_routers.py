"""Routers, their interfaces, floating IPs and uplinks over REST (real store, stand-in runtime)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.unit.api_helpers import DPID, ZERO, StubRuntime, assert_error, make_network, make_port


def make_router(client: FlaskClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/routers", json={"name": "r", **body})
    assert response.status_code == 201, response.json
    return response.json


def stored(client: FlaskClient) -> dict[str, Any]:
    return {path: client.get(path).json for path in ("/v1/networks", "/v1/routers")}


def test_router_crud_and_interfaces(client: FlaskClient, runtime: StubRuntime) -> None:
    ext = make_network(client, cidr="203.0.113.0/24", external=True)
    net = make_network(client)
    response = client.post("/v1/routers", json={"name": "r", "external_gateway": {"network_id": ext["id"]}})
    router = response.json
    assert response.status_code == 201 and response.headers["Location"] == f"/v1/routers/{router['id']}"
    assert router == {"id": router["id"], "name": "r", "routes": [], "interfaces": [],
                      "external_gateway": {"network_id": ext["id"], "ip_address": "203.0.113.2", "enable_snat": True},
                      "mac_address": "fa:16:3f:00:00:01", "mac_bindings": [], "gateway_dpid": None, "stats": ZERO,
                      "status": "ACTIVE"}
    added = client.post(f"/v1/routers/{router['id']}/interfaces", json={"network_id": net["id"]})
    assert added.status_code == 200
    assert added.json == {**router, "interfaces": [{"network_id": net["id"], "ip_address": "10.0.0.1"}]}
    assert client.get(f"/v1/routers/{router['id']}").json == added.json == client.get("/v1/routers").json[0]
    routes = [{"destination": "0.0.0.0/0", "nexthop": "203.0.113.1"}]
    patched = client.patch(f"/v1/routers/{router['id']}", json={"routes": routes, "name": "edge"})
    assert patched.json == {**added.json, "routes": [{**route, "stats": ZERO} for route in routes], "name": "edge"}
    assert_error(client.delete(f"/v1/routers/{router['id']}"), 409, "id")
    removed = client.delete(f"/v1/routers/{router['id']}/interfaces/{net['id']}")
    assert removed.status_code == 204 and removed.data == b""
    assert client.delete(f"/v1/routers/{router['id']}").status_code == 204
    assert client.get("/v1/routers").json == [] and runtime.converges == 7


def test_a_router_shows_its_gateway_switch_and_the_next_hops_resolved_on_its_external_network(
        client: FlaskClient, runtime: StubRuntime) -> None:
    ext = make_network(client, cidr="203.0.113.0/24", external=True)
    other = make_network(client, cidr="198.51.100.0/24", external=True)
    router, bare = make_router(client, external_gateway={"network_id": ext["id"]}), make_router(client)
    store = runtime.store
    store.put_mac_binding(ext["id"], "203.0.113.10", "02:00:00:00:00:10", at=1.0)
    store.put_mac_binding(ext["id"], "203.0.113.9", "02:00:00:00:00:09", at=1.0)
    store.put_mac_binding(other["id"], "198.51.100.1", "02:00:00:00:00:01", at=1.0)
    runtime.gateways[router["id"]] = DPID
    shown = client.get(f"/v1/routers/{router['id']}").json
    assert shown["gateway_dpid"] == DPID
    assert shown["mac_bindings"] == [{"ip_address": "203.0.113.9", "mac_address": "02:00:00:00:00:09"},
                                     {"ip_address": "203.0.113.10", "mac_address": "02:00:00:00:00:10"}]
    assert client.get("/v1/routers").json == [shown, client.get(f"/v1/routers/{bare['id']}").json]
    assert client.get(f"/v1/routers/{bare['id']}").json["mac_bindings"] == []
    assert client.get(f"/v1/routers/{bare['id']}").json["gateway_dpid"] is None
    net = make_network(client)
    added = client.post(f"/v1/routers/{router['id']}/interfaces", json={"network_id": net["id"]}).json
    assert added == {**shown, "interfaces": [{"network_id": net["id"], "ip_address": "10.0.0.1"}]}
    moved = client.patch(f"/v1/routers/{router['id']}", json={"external_gateway": {"network_id": other["id"]}}).json
    assert moved["mac_bindings"] == [{"ip_address": "198.51.100.1", "mac_address": "02:00:00:00:00:01"}]
    schema = client.get("/v1/openapi.json").json["components"]["schemas"]["Router"]["properties"]
    assert schema["gateway_dpid"]["nullable"] and schema["mac_bindings"]["items"]["$ref"].endswith("/MacBinding")


def test_router_errors_name_the_field_and_change_nothing(client: FlaskClient, runtime: StubRuntime) -> None:
    ext = make_network(client, cidr="203.0.113.0/24", external=True)
    net = make_network(client)
    router = make_router(client)
    before, converges = stored(client), runtime.converges
    for method, path, body, code, field in [
        ("POST", "/v1/routers", {"external_gateway": {"network_id": net["id"]}}, 400, "external_gateway.network_id"),
        ("POST", "/v1/routers", {"external_gateway": {"network_id": "nope"}}, 404, "external_gateway.network_id"),
        ("POST", "/v1/routers", {"routes": [{"destination": "0.0.0.0/0", "nexthop": "10.0.0.9"}]}, 400,
         "routes[0].nexthop"),
        ("PATCH", f"/v1/routers/{router['id']}", {"routes": [{"destination": "10.0.0.0", "nexthop": "10.0.0.9"}]}, 400,
         "routes[0].destination"),
        ("PATCH", f"/v1/routers/{router['id']}", {"mac_address": "fa:16:3f:00:00:09"}, 400, "mac_address"),
        ("PATCH", f"/v1/routers/{router['id']}", {"interfaces": []}, 400, "interfaces"),
        ("POST", f"/v1/routers/{router['id']}/interfaces", {"network_id": ext["id"]}, 400, "network_id"),
        ("POST", f"/v1/routers/{router['id']}/interfaces", {"network_id": "nope"}, 404, "network_id"),
        ("POST", "/v1/routers/nope/interfaces", {"network_id": net["id"]}, 404, None),
        ("DELETE", f"/v1/routers/{router['id']}/interfaces/{net['id']}", None, 404, "network_id"),
        ("GET", "/v1/routers/nope", None, 404, None),
    ]:
        assert_error(client.open(path, method=method, json=body), code, field)
    assert stored(client) == before and runtime.converges == converges


def test_a_network_on_two_routers_is_409(client: FlaskClient) -> None:
    net = make_network(client)
    first, second = make_router(client), make_router(client)
    assert client.post(f"/v1/routers/{first['id']}/interfaces", json={"network_id": net["id"]}).status_code == 200
    error = assert_error(client.post(f"/v1/routers/{second['id']}/interfaces", json={"network_id": net["id"]}), 409,
                         "network_id")
    assert first["id"] in error["message"]
    assert_error(client.patch(f"/v1/networks/{net['id']}", json={"gateway_ip": "10.0.0.254"}), 409, "gateway_ip")
    assert_error(client.delete(f"/v1/networks/{net['id']}"), 409, "id")


def test_network_uplinks(client: FlaskClient) -> None:
    uplink = {"dpid": DPID, "interface": "s1-eth9"}
    ext = make_network(client, cidr="203.0.113.0/24", external=True, uplink=uplink)
    assert ext["uplink"] == uplink and client.get(f"/v1/networks/{ext['id']}").json["uplink"] == uplink
    assert client.patch(f"/v1/networks/{ext['id']}", json={"uplink": None}).json["uplink"] is None
    assert_error(client.post("/v1/networks", json={"cidr": "10.0.0.0/24", "uplink": uplink}), 409, "uplink")
    assert_error(client.post("/v1/networks", json={"cidr": "10.0.0.0/24", "external": True,
                                                    "uplink": {"dpid": DPID}}), 400, "uplink.interface")


def test_openapi_documents_routers(client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    paths, schemas = document["paths"], document["components"]["schemas"]
    assert set(paths["/routers/{id}"]) == {"get", "patch", "delete"}
    interfaces = paths["/routers/{id}/interfaces"]["post"]
    assert interfaces["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RouterInterfaceCreate"}
    assert schemas["RouterInterfaceCreate"]["required"] == ["network_id"]
    assert set(paths["/routers/{id}/interfaces/{network_id}"]) == {"delete"}
    assert [p["name"] for p in paths["/routers/{id}/interfaces/{network_id}"]["delete"]["parameters"]] == [
        "id", "network_id"]
    router = schemas["Router"]["properties"]
    assert router["interfaces"]["items"] == {"$ref": "#/components/schemas/RouterInterface"}
    assert router["mac_address"] == {"type": "string", "readOnly": True}
    gateway = schemas["RouterCreate"]["properties"]["external_gateway"]
    assert gateway["nullable"] and gateway["required"] == ["network_id"]  # enable_snat and ip_address have defaults
    assert schemas["RouterCreate"]["properties"]["routes"]["items"]["required"] == ["destination", "nexthop"]
    assert set(schemas["RouterUpdate"]["properties"]) == {"name", "external_gateway", "routes"}
    assert schemas["NetworkCreate"]["properties"]["uplink"]["required"] == ["dpid", "interface"]


def test_floating_ip_crud(client: FlaskClient, runtime: StubRuntime) -> None:
    ext = make_network(client, cidr="203.0.113.0/24", external=True)
    net = make_network(client)
    port = make_port(client, net["id"])
    router = make_router(client, external_gateway={"network_id": ext["id"]})
    client.post(f"/v1/routers/{router['id']}/interfaces", json={"network_id": net["id"]})
    response = client.post("/v1/floating-ips", json={"network_id": ext["id"], "port_id": port["id"]})
    made = response.json
    assert response.status_code == 201 and response.headers["Location"] == f"/v1/floating-ips/{made['id']}"
    assert made == {"id": made["id"], "network_id": ext["id"], "floating_ip_address": "203.0.113.3",
                    "port_id": port["id"], "load_balancer_id": None, "fixed_ip_address": "10.0.0.5",
                    "router_id": router["id"], "stats": ZERO, "status": "ACTIVE"}
    assert client.get(f"/v1/floating-ips/{made['id']}").json == made
    assert client.get(f"/v1/floating-ips?port_id={port['id']}").json == [made]
    assert client.get(f"/v1/floating-ips?network_id={net['id']}").json == []
    assert_error(client.get("/v1/floating-ips?router_id=x"), 400, "router_id")
    detached = client.patch(f"/v1/floating-ips/{made['id']}", json={"port_id": None}).json
    assert detached == {**made, "port_id": None, "fixed_ip_address": None, "router_id": None}
    assert client.delete(f"/v1/floating-ips/{made['id']}").status_code == 204
    assert client.get("/v1/floating-ips").json == [] and runtime.converges == 8


def test_floating_ip_errors_name_the_field_and_change_nothing(client: FlaskClient, runtime: StubRuntime) -> None:
    ext = make_network(client, cidr="203.0.113.0/24", external=True)
    net = make_network(client)
    port = make_port(client, net["id"])
    made = client.post("/v1/floating-ips", json={"network_id": ext["id"]}).json
    before, converges = client.get("/v1/floating-ips").json, runtime.converges
    for method, path, body, code, field in [
        ("POST", "/v1/floating-ips", {"network_id": net["id"]}, 400, "network_id"),
        ("POST", "/v1/floating-ips", {"network_id": ext["id"], "floating_ip_address": made["floating_ip_address"]},
         409, "floating_ip_address"),
        ("POST", "/v1/floating-ips", {"network_id": ext["id"], "port_id": port["id"]}, 409, "port_id"),  # no router
        ("PATCH", f"/v1/floating-ips/{made['id']}", {"port_id": port["id"]}, 409, "port_id"),
        ("PATCH", f"/v1/floating-ips/{made['id']}", {"floating_ip_address": "203.0.113.50"}, 400,
         "floating_ip_address"),
        ("PATCH", f"/v1/floating-ips/{made['id']}", {"router_id": None}, 400, "router_id"),
        ("PATCH", "/v1/floating-ips/nope", {"port_id": None}, 404, None),
    ]:
        assert_error(client.open(path, method=method, json=body), code, field)
    assert client.get("/v1/floating-ips").json == before and runtime.converges == converges


def test_openapi_documents_floating_ips(client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    schemas = document["components"]["schemas"]
    assert [p["name"] for p in document["paths"]["/floating-ips"]["get"]["parameters"]] == \
        ["network_id", "port_id", "load_balancer_id", "refresh"]
    assert schemas["FloatingIpCreate"]["required"] == ["network_id"]
    assert set(schemas["FloatingIpUpdate"]["properties"]) == {"port_id", "load_balancer_id"}
    shown = schemas["FloatingIp"]["properties"]
    assert shown["router_id"] == {"type": "string", "nullable": True, "readOnly": True}
    assert shown["fixed_ip_address"]["nullable"] and shown["port_id"]["nullable"]
