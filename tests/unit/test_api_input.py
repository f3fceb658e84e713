"""Junk input over REST: text a database cannot store is a 400 naming where it was, and changes nothing;
whatever still fails is a 500 that tells only its request id."""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.exceptions import InternalServerError

from controller.api import openapi_document
from controller.store import Store
from tests.unit.api_helpers import DPID, assert_error, make_network, make_port

SURROGATE, NUL = "\ud800", "\x00"


def list_paths() -> list[str]:
    """Every collection the API lists (from its OpenAPI document): together, all it stores."""
    document = openapi_document()
    return [f"/v1{path}" for path, ops in document["paths"].items() if "{" not in path and "get" in ops]


def stored(client: FlaskClient) -> dict[str, Any]:
    return {path: client.get(path).json for path in list_paths()}


@pytest.fixture
def ids(client: FlaskClient) -> dict[str, str]:
    """A network, a port on it, a security group, an external network, a router, a floating IP and a load balancer
    with the port as its member to refer to."""
    network = make_network(client)
    port = make_port(client, network["id"])
    group = client.post("/v1/security-groups", json={"name": "web"}).json
    external = make_network(client, cidr="203.0.113.0/24", external=True)
    router = client.post("/v1/routers", json={"name": "r"}).json
    floating_ip = client.post("/v1/floating-ips", json={"network_id": external["id"]}).json
    balancer = client.post("/v1/load-balancers", json={
        "network_id": network["id"], "protocol": "tcp", "port": 80,
        "members": [{"ip_address": port["ip_address"], "port": 80}]}).json
    return {"network": network["id"], "port": port["id"], "group": group["id"], "external": external["id"],
            "router": router["id"], "floating_ip": floating_ip["id"], "load_balancer": balancer["id"],
            "member": balancer["members"][0]["id"]}


def port_body(network_id: str, **fields: Any) -> dict[str, Any]:
    return {"network_id": network_id, "mac_address": "fa:16:3e:00:00:02", "ip_address": "10.0.0.6",
            "binding": {"dpid": DPID, "interface": "s1-eth2"}, **fields}


@pytest.mark.parametrize("junk", [SURROGATE, f"a{NUL}b", "\udfff", f"web{SURROGATE}"])
def test_junk_text_in_bodies_is_400_naming_the_field(client: FlaskClient, ids: dict[str, str], junk: str) -> None:
    net, port, group = ids["network"], ids["port"], ids["group"]
    cases = [
        ("POST", "/v1/networks", {"cidr": "10.1.0.0/24", "name": junk}, "name"),
        ("PATCH", f"/v1/networks/{net}", {"name": junk}, "name"),
        ("POST", "/v1/security-groups", {"name": "db", "description": junk}, "description"),
        ("PATCH", f"/v1/security-groups/{group}", {"description": junk}, "description"),
        ("POST", "/v1/ports", port_body(junk), "network_id"),
        ("POST", "/v1/ports", port_body(net, binding={"dpid": DPID, "interface": junk}), "binding.interface"),
        ("PATCH", f"/v1/ports/{port}", {"binding": {"dpid": junk, "interface": "s1-eth1"}}, "binding.dpid"),
        ("POST", "/v1/ports", port_body(net, security_group_ids=[group, junk]), "security_group_ids"),
        ("PATCH", f"/v1/ports/{port}", {"security_group_ids": [junk]}, "security_group_ids"),
        ("POST", "/v1/security-group-rules", {"security_group_id": junk, "direction": "ingress"},
         "security_group_id"),
        ("POST", "/v1/security-group-rules", {"security_group_id": group, "direction": "ingress",
                                              "remote_group_id": junk}, "remote_group_id"),
    ]
    before = stored(client)
    for method, path, body, field in cases:
        error = assert_error(client.open(path, method=method, json=body), 400, field)
        assert error["message"].startswith(f"{field}: must ")
    assert stored(client) == before


def test_junk_text_inside_a_wrong_typed_value_or_a_key_is_400(client: FlaskClient) -> None:
    before = stored(client)
    error = assert_error(client.post("/v1/networks", json={"cidr": "10.0.0.0/24", "name": [{"x": [NUL]}]}), 400,
                         "name")
    assert error["details"][0]["message"] == "must not contain NUL characters (in [0].x[0] at position 0)"
    error = assert_error(client.post("/v1/networks", json={"cidr": "10.0.0.0/24", SURROGATE: 1}), 400)
    assert error["details"] == [{"field": "\\ud800", "message": "unknown field"}]  # escaped, never echoed as is
    assert stored(client) == before


def test_a_surrogate_sent_as_raw_utf8_bytes_is_400(client: FlaskClient) -> None:
    """The JSON decoder lets UTF-8-encoded surrogates through (surrogatepass) as well as \\u escapes."""
    body = b'{"cidr": "10.0.0.0/24", "name": "\xed\xa0\x80"}'
    assert_error(client.post("/v1/networks", data=body, content_type="application/json"), 400, "name")
    assert client.get("/v1/networks").json == []


def test_json_nested_too_deeply_is_400(client: FlaskClient) -> None:
    error = assert_error(client.post("/v1/networks", data="[" * 100_000, content_type="application/json"), 400)
    assert "nested too deeply" in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/v1/ports?network_id=%00", "network_id"),
        ("GET", "/v1/security-group-rules?security_group_id=a%00", "security_group_id"),
        ("GET", "/v1/ports/%00", "id"),
        ("PATCH", "/v1/networks/x%00", "id"),
        ("DELETE", "/v1/security-groups/%00", "id"),
        ("GET", "/v1/switches/%00/flows", "dpid"),
    ],
)
def test_nul_in_query_and_path_parameters_is_400(
    client: FlaskClient, ids: dict[str, str], method: str, path: str, field: str
) -> None:
    before = stored(client)
    assert_error(client.open(path, method=method, json={"name": "x"}), 400, field)
    assert stored(client) == before


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_an_encoded_surrogate_in_a_path_is_404(client: FlaskClient, ids: dict[str, str], method: str) -> None:
    """Werkzeug decodes a path's invalid UTF-8 (such as an encoded surrogate) to U+FFFD: a well-formed unknown id."""
    before = stored(client)
    assert_error(client.open("/v1/ports/%ED%A0%80", method=method, json={"name": "x"}), 404)
    assert client.get("/v1/ports?network_id=%ED%A0%80").json == []
    assert stored(client) == before


# -- typed junk: every mutating route, one field at a time -------------------------------------

TRIES = 320
SEED = 20240611
JUNK_STRINGS = (SURROGATE, "\udfff", f"x{NUL}y", NUL, "", " ", "é", "😀" * 300, "x" * 70_000, "\u202e", "null",
                "-1", f"10.0.0.0/24{NUL}", "%00", "../../etc/passwd", "fa:16:3e:00:00:01", "default",
                "\ud83d\ude00")  # the last: a surrogate pair, so one valid character once it is JSON
JUNK_INTEGERS = (0, -1, 1, 4094, 4095, 65535, 65536, -(2**63), 2**63, 2**64 + 1, 10**100, -(10**100))
JUNK_NUMBERS = (*JUNK_INTEGERS, 0.5, -1.5, 1e-300, float("inf"), float("-inf"), float("nan"))
JUNK_OTHER = (1.5, -0.0, 1e308, True, False, None, [], {}, [[[SURROGATE]]], {"a": {"b": [NUL]}})


def body_routes(document: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, resource schema name, request schema) of every operation that takes a body and changes
    something (POST /trace changes nothing: tests/unit/test_api_trace.py feeds it junk)."""
    schemas = document["components"]["schemas"]
    routes = []
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op and path != "/trace":
                name = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                resource = name.removesuffix("Create").removesuffix("Update")
                routes.append((method.upper(), path, resource, schemas[name]))
    return routes


def leaves(schema: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """(path, schema) of every field, nested objects' fields included."""
    found = []
    for name, spec in schema["properties"].items():
        found.append(((*prefix, name), spec))
        if "properties" in spec:
            found += leaves(spec, (*prefix, name))
    return found


def random_text(rng: random.Random) -> str:
    """Any code points, surrogates and NUL included."""
    return "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(1, 12)))


def junk(rng: random.Random, spec: dict[str, Any]) -> Any:
    """A value of the field's JSON type that is likely wrong, now and then one of another type."""
    if rng.random() < 0.2:
        return rng.choice(JUNK_OTHER)
    kind = spec["type"]
    if kind == "string":
        return rng.choice((*JUNK_STRINGS, random_text(rng)))
    if kind == "integer":
        return rng.choice(JUNK_INTEGERS)
    if kind == "number":
        return rng.choice(JUNK_NUMBERS)
    if kind == "boolean":
        return rng.choice((True, False))
    if kind == "array":
        item = spec["items"]
        return rng.choice(([], [junk(rng, item)], [junk(rng, item) for _ in range(3)], ["x"] * 1000, [1], [None]))
    assert kind == "object", spec
    return rng.choice(({}, {name: junk(rng, inner) for name, inner in spec["properties"].items()},
                       {SURROGATE: 1}))


def valid_bodies(ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    """A valid create body per resource schema; an update starts from its create body's mutable fields."""
    return {
        "Network": {"name": "n", "cidr": "10.2.0.0/24", "segmentation_id": 77, "external": False},
        "Port": {**port_body(ids["network"], name="p", port_security_enabled=True),
                 "security_group_ids": [ids["group"]]},
        "SecurityGroup": {"name": "g", "description": "d"},
        "Switch": {"trunk_ports": ["s1-eth9"]},
        "SecurityGroupRules": {"rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 80}]},
        "SecurityGroupRule": {"security_group_id": ids["group"], "direction": "ingress", "protocol": "tcp",
                              "port_range_min": 80, "port_range_max": 81, "remote_ip_prefix": "10.0.0.0/8"},
        "Router": {"name": "r", "external_gateway": {"network_id": ids["external"], "enable_snat": False},
                   "routes": [{"destination": "192.168.0.0/16", "nexthop": "203.0.113.1"}]},
        "RouterInterface": {"network_id": ids["network"]},
        "FloatingIp": {"network_id": ids["external"], "port_id": None},
        "LoadBalancer": {"name": "lb", "network_id": ids["network"], "protocol": "udp", "port": 53, "algorithm": "hash",
                         "members": [{"ip_address": "10.0.0.5", "port": 53, "weight": 2, "admin_state_up": False}],
                         "health_monitor": {"type": "udp", "interval_s": 3, "timeout_s": 1.5, "max_retries": 2}},
        "LbMember": {"ip_address": "10.0.0.5", "port": 81, "weight": 2, "admin_state_up": True},
    }


def with_junk(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of `body` with `value` at `path`, the objects on the way copied (or created)."""
    changed = {**body}
    target = changed
    for name in path[:-1]:
        target[name] = {**target.get(name, {})}
        target = target[name]
    target[path[-1]] = value
    return changed


def test_typed_junk_never_fails_the_server_and_a_rejection_changes_nothing(
    client: FlaskClient, ids: dict[str, str]
) -> None:
    routes = body_routes(openapi_document())
    assert {method for method, *_ in routes} == {"POST", "PATCH", "PUT"}
    bodies = valid_bodies(ids)
    item_ids = {"Network": ids["network"], "Port": ids["port"], "SecurityGroup": ids["group"], "Switch": DPID,
                "SecurityGroupRules": ids["group"], "Router": ids["router"], "RouterInterface": ids["router"],
                "FloatingIp": ids["floating_ip"], "LoadBalancer": ids["load_balancer"],
                "LbMember": ids["load_balancer"]}
    rng = random.Random(SEED)
    before = stored(client)
    outcomes: Counter[int] = Counter()
    for attempt in range(TRIES):
        method, path, resource, schema = routes[attempt % len(routes)]
        base = {key: value for key, value in bodies[resource].items() if key in schema["properties"]}
        field, spec = rng.choice(leaves(schema))
        body = with_junk(base, field, junk(rng, spec))
        url = "/v1" + re.sub(r"{(id|dpid)}", item_ids.get(resource, ""), path).replace("{member_id}", ids["member"])
        response = client.open(url, method=method, json=body)
        outcomes[response.status_code] += 1
        assert response.status_code < 500, (method, path, body, response.get_data(as_text=True)[:500])
        if response.status_code >= 400:
            assert_error(response, response.status_code)
            assert stored(client) == before, (method, path, body)
        else:
            before = stored(client)
    assert outcomes[400] > TRIES / 2 and any(code < 300 for code in outcomes), outcomes  # both kinds were tried


# -- request ids, and what a 500 tells ---------------------------------------------------------


def test_every_response_carries_its_own_request_id(client: FlaskClient) -> None:
    responses = [
        client.get("/v1/health"),
        client.post("/v1/networks", json={"cidr": "10.0.0.0/24"}),
        client.post("/v1/networks", json={"cidr": "nope"}),
        client.get("/v1/networks/nope"),
        client.delete("/v1/networks"),
        client.get("/metrics"),
    ]
    ids = [response.headers["X-Request-Id"] for response in responses]
    assert [response.status_code for response in responses] == [200, 201, 400, 404, 405, 200]
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("failure", [RuntimeError("secret internals"), InternalServerError("secret internals")])
def test_an_unexpected_error_answers_only_its_request_id_and_logs_the_rest(
    client: FlaskClient, store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    failure: Exception,
) -> None:
    def fail(_body: dict[str, Any]) -> dict[str, Any]:
        raise failure

    monkeypatch.setattr(store, "create_network", fail)
    with caplog.at_level(logging.ERROR, logger="controller.api"):
        response = client.post("/v1/networks?x=1", json={"cidr": "10.0.0.0/24"})
    request_id = response.headers["X-Request-Id"]
    assert response.status_code == 500
    assert response.json == {"error": {"code": 500, "message": f"internal error (request id {request_id})",
                                       "details": [{"request_id": request_id}]}}
    assert "secret" not in response.get_data(as_text=True)
    (record,) = caplog.records
    assert request_id in record.getMessage() and "POST '/v1/networks'" in record.getMessage()
    assert record.exc_info and record.exc_info[1] is failure
    assert "Traceback" in caplog.text and "secret internals" in caplog.text
