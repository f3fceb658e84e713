"""The REST API fuzzed from its own OpenAPI document (schemathesis): whatever a request holds, the answer is
never a 5xx, it is what the document says (status code, content type, schema), an error has the contract's
body, and a rejected request leaves nothing behind (the store's revision and snapshot are as before)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from controller.api import create_app, openapi_document
from controller.store import Store
from tests.unit.api_helpers import DPID, TOKEN, StubRuntime, make_network, make_port

EXAMPLES = 15  # per operation (47 with the unsupported methods): about 40 s here, in the pure stage


schema = schemathesis.openapi.from_dict(openapi_document())
schema.config.phases.update(phases=["examples", "fuzzing"])  # the coverage phase alone takes minutes here
schema.config.generation.update(modes=list(schemathesis.GenerationMode), max_examples=EXAMPLES)


@pytest.fixture
def app(store: Store, runtime: StubRuntime) -> Flask:
    """The document requires a bearer token: so does this app, or a request without one would be accepted."""
    return create_app(store, runtime, api_token=TOKEN)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return client


@pytest.fixture
def existing(client: FlaskClient) -> dict[str, str]:
    """Path parameter -> (first path segment ->) the id of an object that exists, so that bodies reach the
    checks behind the lookup; DELETE keeps the generated ids (404s) so the objects stay for the others."""
    network = make_network(client)
    port = make_port(client, network["id"])
    external = make_network(client, cidr="203.0.113.0/24", external=True)
    router = client.post("/v1/routers", json={"name": "r"}).json
    client.post(f"/v1/routers/{router['id']}/interfaces", json={"network_id": network["id"]})
    balancer = client.post("/v1/load-balancers", json={
        "network_id": network["id"], "protocol": "tcp", "port": 80,
        "members": [{"ip_address": port["ip_address"], "port": 80}]}).json
    ids = {
        "networks": network["id"], "ports": port["id"], "routers": router["id"],
        "security-groups": client.post("/v1/security-groups", json={"name": "web"}).json["id"],
        "floating-ips": client.post("/v1/floating-ips", json={"network_id": external["id"]}).json["id"],
        "load-balancers": balancer["id"], "member_id": balancer["members"][0]["id"],
        "network_id": network["id"], "dpid": DPID,
    }
    rule = client.post("/v1/security-group-rules", json={"security_group_id": ids["security-groups"],
                                                          "direction": "ingress"}).json
    return {**ids, "security-group-rules": rule["id"]}


@schema.parametrize()
@settings(deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_5xx_and_a_rejection_changes_nothing(
    case: Any, app: Flask, store: Store, existing: dict[str, str]
) -> None:
    if case.method != "DELETE" and case.path_parameters:
        resource = case.path.split("/")[1]
        case.path_parameters = {name: existing.get(name if name != "id" else resource, value)
                                for name, value in case.path_parameters.items()}
    revision, snapshot = store.revision(), store.snapshot()
    response = case.call(app=app, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:500])
    # Not checked: that a wrong token is refused (tests/unit/test_api.py does; schemathesis' check of it cannot
    # reach a WSGI app), and that every request the schema allows is accepted (an address outside the network's
    # cidr is not).
    case.validate_response(response, excluded_checks=[ignored_auth, positive_data_acceptance])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] == response.status_code and isinstance(error["message"], str)
        assert (store.revision(), store.snapshot()) == (revision, snapshot), (case.method, case.path, case.body)
