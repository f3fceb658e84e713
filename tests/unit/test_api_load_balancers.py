"""Load balancers and their members over REST (real store, stand-in runtime)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.unit.api_helpers import DPID, StubRuntime, assert_error, make_network

MONITOR = {"type": "tcp", "interval_s": 2, "timeout_s": 1, "max_retries": 3}


def make_port(client: FlaskClient, network_id: str, n: int) -> dict[str, Any]:
    body = {"network_id": network_id, "mac_address": f"fa:16:3e:00:00:{n:02x}", "ip_address": f"10.0.0.{10 + n}",
            "binding": {"dpid": DPID, "interface": f"s1-eth{n}"}}
    response = client.post("/v1/ports", json=body)
    assert response.status_code == 201, response.json
    return response.json


def stored(client: FlaskClient) -> dict[str, Any]:
    return {path: client.get(path).json for path in ("/v1/networks", "/v1/ports", "/v1/load-balancers")}


def test_load_balancer_crud_and_members(client: FlaskClient, runtime: StubRuntime) -> None:
    net = make_network(client)
    first, second = make_port(client, net["id"], 1), make_port(client, net["id"], 2)
    response = client.post("/v1/load-balancers", json={
        "name": "web", "network_id": net["id"], "vip_address": "10.0.0.100", "protocol": "tcp", "port": 80,
        "members": [{"ip_address": first["ip_address"], "port": 8080}], "health_monitor": MONITOR})
    balancer = response.json
    assert response.status_code == 201 and response.headers["Location"] == f"/v1/load-balancers/{balancer['id']}"
    (member,) = balancer["members"]
    assert balancer == {"id": balancer["id"], "name": "web", "network_id": net["id"], "vip_address": "10.0.0.100",
                        "protocol": "tcp", "port": 80, "algorithm": "source_ip_hash", "members": [member],
                        "health_monitor": {"type": "tcp", "interval_s": 2.0, "timeout_s": 1.0, "max_retries": 3},
                        "mac_address": "fa:16:3f:01:00:03", "status": "ACTIVE"}
    assert (member["status"], member["port_id"], member["weight"]) == ("ONLINE", first["id"], 1)
    assert member["status_changed_at"].endswith("+00:00")
    path = f"/v1/load-balancers/{balancer['id']}"
    assert client.get(path).json == balancer == client.get("/v1/load-balancers").json[0]
    assert client.get(f"/v1/load-balancers?network_id={net['id']}").json == [balancer]
    added = client.post(f"{path}/members", json={"ip_address": second["ip_address"], "port": 8080, "weight": 3})
    assert added.status_code == 201 and added.headers["Location"] == f"{path}/members/{added.json['id']}"
    assert client.get(f"{path}/members/{added.json['id']}").json == added.json
    assert client.get(f"{path}/members").json == [member, added.json]
    drained = client.patch(f"{path}/members/{added.json['id']}", json={"admin_state_up": False})
    assert drained.status_code == 200 and drained.json["status"] == "DRAINING"
    patched = client.patch(path, json={"name": "www", "algorithm": "hash", "health_monitor": None})
    assert patched.status_code == 200
    assert [m["status"] for m in patched.json["members"]] == ["NO_MONITOR", "DRAINING"]
    assert (patched.json["name"], patched.json["algorithm"], patched.json["health_monitor"]) == ("www", "hash", None)
    assert_error(client.delete(f"/v1/ports/{first['id']}"), 409, "id")
    removed = client.delete(f"{path}/members/{added.json['id']}")
    assert removed.status_code == 204 and removed.data == b""
    assert client.delete(path).status_code == 204
    assert client.get("/v1/load-balancers").json == [] and runtime.converges == 9
    assert client.delete(f"/v1/ports/{first['id']}").status_code == 204


def test_load_balancer_errors_name_the_field_and_change_nothing(client: FlaskClient, runtime: StubRuntime) -> None:
    net = make_network(client)
    ext = make_network(client, cidr="203.0.113.0/24", external=True)
    port = make_port(client, net["id"], 1)
    body = {"network_id": net["id"], "protocol": "tcp", "port": 80}
    made = client.post("/v1/load-balancers", json={**body, "members": [{"ip_address": port["ip_address"],
                                                                         "port": 80}]}).json
    path, member = f"/v1/load-balancers/{made['id']}", made["members"][0]["id"]
    before, converges = stored(client), runtime.converges
    for method, url, sent, code, field in [
        ("POST", "/v1/load-balancers", {**body, "protocol": "icmp"}, 400, "protocol"),
        ("POST", "/v1/load-balancers", {**body, "port": 0}, 400, "port"),
        ("POST", "/v1/load-balancers", {**body, "algorithm": "least_connections"}, 400, "algorithm"),
        ("POST", "/v1/load-balancers", {**body, "vip_address": "10.0.0.11"}, 409, "vip_address"),
        ("POST", "/v1/load-balancers", {**body, "vip_address": made["vip_address"]}, 409, "vip_address"),
        ("POST", "/v1/load-balancers", {**body, "vip_address": "10.0.0.1"}, 409, "vip_address"),
        ("POST", "/v1/load-balancers", {**body, "vip_address": "192.168.0.1"}, 400, "vip_address"),
        ("POST", "/v1/load-balancers", {**body, "network_id": "nope"}, 404, "network_id"),
        ("POST", "/v1/load-balancers", {**body, "network_id": ext["id"]}, 400, "network_id"),
        ("POST", "/v1/load-balancers", {**body, "members": [{"ip_address": "10.0.0.99", "port": 80}]}, 400,
         "members[0].ip_address"),
        ("POST", "/v1/load-balancers", {**body, "health_monitor": {**MONITOR, "max_retries": 11}}, 400,
         "health_monitor.max_retries"),
        ("PATCH", path, {"port": 81}, 400, "port"),
        ("PATCH", path, {"health_monitor": {**MONITOR, "interval_s": 0}}, 400, "health_monitor.interval_s"),
        ("POST", f"{path}/members", {"ip_address": port["ip_address"], "port": 80}, 409, "ip_address"),
        ("POST", f"{path}/members", {"ip_address": port["ip_address"], "port": 81, "weight": 300}, 400, "weight"),
        ("POST", "/v1/load-balancers/nope/members", {"ip_address": port["ip_address"], "port": 81}, 404, None),
        ("PATCH", f"{path}/members/{member}", {"port": 81}, 400, "port"),
        ("PATCH", f"{path}/members/nope", {"weight": 2}, 404, None),
        ("DELETE", f"{path}/members/nope", None, 404, None),
        ("GET", "/v1/load-balancers/nope", None, 404, None),
        ("DELETE", f"/v1/networks/{net['id']}", None, 409, None),
    ]:
        assert_error(client.open(url, method=method, json=sent), code, field)
    assert stored(client) == before and runtime.converges == converges


def test_openapi_documents_load_balancers(client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    paths, schemas = document["paths"], document["components"]["schemas"]
    assert set(paths["/load-balancers/{id}"]) == {"get", "patch", "delete"}
    assert set(paths["/load-balancers/{id}/members"]) == {"get", "post"}
    assert set(paths["/load-balancers/{id}/members/{member_id}"]) == {"get", "patch", "delete"}
    assert paths["/load-balancers/{id}/members"]["post"]["responses"]["201"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/LbMember"}
    create = schemas["LoadBalancerCreate"]
    assert create["required"] == ["network_id", "protocol", "port"]
    assert create["properties"]["members"]["items"]["required"] == ["ip_address", "port"]
    assert create["properties"]["health_monitor"]["required"] == ["type", "interval_s", "timeout_s", "max_retries"]
    assert set(schemas["LoadBalancerUpdate"]["properties"]) == {"name", "algorithm", "health_monitor"}
    shown = schemas["LoadBalancer"]["properties"]
    assert shown["members"] == {"type": "array", "items": {"$ref": "#/components/schemas/LbMember"}}
    assert schemas["LbMember"]["properties"]["status"]["enum"] == ["ONLINE", "OFFLINE", "NO_MONITOR", "DRAINING"]
    assert set(schemas["LbMemberUpdate"]["properties"]) == {"weight", "admin_state_up"}


def test_a_floating_ip_on_a_vip(client: FlaskClient) -> None:
    """A floating IP maps to a port or a VIP, never both; the VIP's network needs a router with its gateway on the
    floating IP's network; a refused request changes nothing; deleting the balancer leaves the floating IP unmapped
    (as deleting a port does), and the router cannot leave the VIP's network while it is mapped."""
    net, ext = make_network(client), make_network(client, name="ext", cidr="203.0.113.0/24", external=True)
    port = make_port(client, net["id"], 1)
    balancer = client.post("/v1/load-balancers", json={
        "name": "web", "network_id": net["id"], "vip_address": "10.0.0.100", "protocol": "tcp", "port": 80,
        "members": [{"ip_address": port["ip_address"], "port": 8080}]}).json
    before = {path: client.get(path).json for path in ("/v1/floating-ips", "/v1/load-balancers")}
    body = {"network_id": ext["id"], "load_balancer_id": balancer["id"]}
    assert_error(client.post("/v1/floating-ips", json=body), 409, "load_balancer_id")  # no router yet
    router = client.post("/v1/routers", json={"name": "r", "external_gateway": {"network_id": ext["id"]}}).json
    assert client.post(f"/v1/routers/{router['id']}/interfaces", json={"network_id": net["id"]}).status_code == 200
    assert_error(client.post("/v1/floating-ips", json={**body, "port_id": port["id"]}), 400, "load_balancer_id")
    assert_error(client.post("/v1/floating-ips", json={**body, "load_balancer_id": "nope"}), 404, "load_balancer_id")
    assert {path: client.get(path).json for path in ("/v1/floating-ips", "/v1/load-balancers")} == before
    made = client.post("/v1/floating-ips", json=body)
    assert made.status_code == 201, made.json
    floating_ip = made.json
    assert (floating_ip["load_balancer_id"], floating_ip["port_id"], floating_ip["fixed_ip_address"],
            floating_ip["router_id"]) == (balancer["id"], None, "10.0.0.100", router["id"])
    assert client.get(f"/v1/floating-ips?load_balancer_id={balancer['id']}").json == [floating_ip]
    assert_error(client.post("/v1/floating-ips", json=body), 409, "load_balancer_id")  # it has one
    assert_error(client.delete(f"/v1/routers/{router['id']}/interfaces/{net['id']}"), 409, "network_id")
    path = f"/v1/floating-ips/{floating_ip['id']}"
    moved = client.patch(path, json={"port_id": port["id"]}).json  # to a port: off the VIP
    assert (moved["port_id"], moved["load_balancer_id"], moved["fixed_ip_address"]) == (port["id"], None, "10.0.0.11")
    back = client.patch(path, json={"load_balancer_id": balancer["id"]}).json
    assert (back["port_id"], back["load_balancer_id"]) == (None, balancer["id"])
    assert client.delete(f"/v1/load-balancers/{balancer['id']}").status_code == 204
    assert client.get(path).json == {**back, "load_balancer_id": None, "fixed_ip_address": None, "router_id": None}
