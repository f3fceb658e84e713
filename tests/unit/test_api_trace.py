"""POST /v1/trace through the real API and store: the stand-in runtime compiles the store's policy for its
switches, as the real one holds it, so the answers are the compiled flows' own."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from flask.testing import FlaskClient

from controller.api import openapi_document
from controller.store import Store
from tests.unit.api_helpers import StubRuntime, assert_error
from tests.unit.test_api_input import SEED, junk, leaves

S1, S2 = "000000000000000a", "000000000000000b"


def two_switches() -> list[dict[str, Any]]:
    """s1 (connected) and s2 (not), ports 1-2 for VMs, port 3 the link between them."""
    return [{"dpid": dpid, "connected": dpid == S1,
             "ports": [{"name": f"{name}-eth{n}", "ofport": n, "mac": f"02:00:00:00:{name[1]}0:0{n}"}
                       for n in (1, 2, 3)],
             "links": [{"port": 3, "peer_dpid": peer, "peer_port": 3}]}
            for dpid, name, peer in ((S1, "s1", S2), (S2, "s2", S1))]


@pytest.fixture
def runtime(store: Store) -> StubRuntime:
    return StubRuntime(store, two_switches())


def post(client: FlaskClient, path: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1{path}", json=body)
    assert response.status_code in (200, 201), response.json
    return response.json


@pytest.fixture
def net(client: FlaskClient) -> dict[str, Any]:
    """web (ingress tcp 22) on s1-eth1 and s2-eth1, a client on s1-eth2, and a port of another network on s2-eth2
    with the client's MAC and address."""
    blue = post(client, "/networks", name="blue", cidr="10.0.0.0/24")
    red = post(client, "/networks", name="red", cidr="10.0.0.0/24")
    web = post(client, "/security-groups", name="web")
    ssh = post(client, "/security-group-rules", security_group_id=web["id"], direction="ingress", protocol="tcp",
               port_range_min=22)

    def port(name: str, network: dict[str, Any], n: int, dpid: str, interface: str, groups: list[str]) -> dict:
        return post(client, "/ports", name=name, network_id=network["id"], mac_address=f"fa:16:3e:00:00:0{n}",
                    ip_address=f"10.0.0.{10 + n}", binding={"dpid": dpid, "interface": interface},
                    security_group_ids=groups)

    return {"web-1": port("web-1", blue, 1, S1, "s1-eth1", [web["id"]]),
            "web-2": port("web-2", blue, 2, S2, "s2-eth1", [web["id"]]),
            "client": port("client", blue, 3, S1, "s1-eth2", []),
            "stranger": port("stranger", red, 4, S2, "s2-eth2", [web["id"]]),
            "ssh": ssh, "web": web}


def trace(client: FlaskClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/trace", json=body)
    assert response.status_code == 200, response.json
    return response.json


def test_an_allowed_connection_is_output_at_the_server_with_the_rule_that_allowed_it(client, net):
    """web-2, on s2 (not connected), to web-1 on s1: out by the group's own egress rule, in by its tcp 22 rule."""
    told = trace(client, port_id=net["web-2"]["id"], ip_dst="10.0.0.11", protocol="tcp", tp_dst=22)
    assert told["verdict"] == "output", told
    [out] = told["output"]
    assert (out["dpid"], out["interface"], out["port"]["id"]) == (S1, "s1-eth1", net["web-1"]["id"])
    assert out["packet"]["tcp_dst"] == 22 and out["packet"]["ipv4_src"] == "10.0.0.12"
    assert [s["dpid"] for s in told["stages"]][0] == S2 and told["stages"][-1]["dpid"] == S1  # s2 is not connected
    rule = next(s for s in told["stages"] if s["owner"] and s["owner"]["kind"] == "security_group_rule")
    assert rule["table"] == "ingress_ct"
    assert rule["owner"]["id"] == net["ssh"]["id"] and rule["owner"]["name"] == "ingress tcp 22 from anywhere"
    assert rule["owner"]["security_group"] == {"id": net["web"]["id"], "name": "web"}
    assert rule["cookie"].startswith("0x03") and any(a.startswith("ct(commit") for a in rule["actions"])
    assert told["source"]["port"]["name"] == "web-2" and told["packet"]["eth_dst"] == "fa:16:3e:00:00:01"


def test_a_port_no_rule_opens_is_dropped_and_so_is_everything_from_a_port_without_groups(client, net):
    assert trace(client, port_id=net["web-2"]["id"], ip_dst="10.0.0.11", tp_dst=23)["verdict"] == "drop"
    closed = trace(client, port_id=net["client"]["id"], ip_dst="10.0.0.11", tp_dst=22)
    assert closed["verdict"] == "drop" and closed["stages"][-1]["table"] == "egress_ct"


def test_another_network_is_not_reached_whatever_the_addresses(client, net):
    told = trace(client, port_id=net["web-1"]["id"], ip_dst="10.0.0.14", eth_dst="fa:16:3e:00:00:04", tp_dst=22)
    assert told["verdict"] == "drop" and told["output"] == []


def test_the_source_by_switch_and_interface_and_the_reply_state(client, net):
    told = trace(client, dpid=S1, interface="s1-eth1", ip_dst="10.0.0.13", tp_src=22, tp_dst=40000,
                 ct_state="reply")
    assert told["verdict"] == "output" and told["output"][0]["port"]["name"] == "client"
    assert told["ct_state"] == "reply" and told["source"]["port"]["name"] == "web-1"


@pytest.mark.parametrize(("body", "field"), [
    ({"protocol": "sctp"}, "protocol"),
    ({"tp_dst": 0}, "tp_dst"),
    ({"tp_dst": "22"}, "tp_dst"),
    ({"ip_dst": "10.0.0.300"}, "ip_dst"),
    ({"eth_src": "zz:00:00:00:00:01"}, "eth_src"),
    ({"ct_state": "+est"}, "ct_state"),
    ({"ttl": 256}, "ttl"),
    ({"colour": "blue"}, "colour"),
    ({"dpid": S1, "interface": "s1-eth1"}, "port_id"),
    ({"protocol": "icmp", "tp_dst": 22}, "tp_dst"),
], ids=["protocol", "port-zero", "port-text", "address", "mac", "ct-state", "ttl", "unknown", "two-sources", "icmp"])
def test_bad_fields_are_a_400_naming_them(client, net, body, field):
    assert_error(client.post("/v1/trace", json={"port_id": net["client"]["id"], "ip_dst": "10.0.0.11", **body}),
                 400, field)


def test_an_unknown_port_switch_or_interface_is_a_404(client, net):
    assert_error(client.post("/v1/trace", json={"port_id": "nope", "ip_dst": "10.0.0.11"}), 404, "port_id")
    assert_error(client.post("/v1/trace", json={"dpid": "00000000000000ff", "interface": "x", "ip_dst": "10.0.0.11"}),
                 404, "dpid")
    assert_error(client.post("/v1/trace", json={"dpid": S1, "interface": "s1-eth9", "ip_dst": "10.0.0.11"}),
                 404, "interface")


def test_a_port_on_an_interface_no_switch_has_is_a_422(client, net):
    lost = post(client, "/ports", network_id=net["web-1"]["network_id"], mac_address="fa:16:3e:00:00:09",
                ip_address="10.0.0.19", binding={"dpid": S1, "interface": "s1-eth9"})
    assert_error(client.post("/v1/trace", json={"port_id": lost["id"], "ip_dst": "10.0.0.11"}), 422, "port_id")


def test_the_openapi_document_describes_the_request_and_the_answer(client):
    document = client.get("/v1/openapi.json").json
    operation = document["paths"]["/trace"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TraceRequest"}
    request = document["components"]["schemas"]["TraceRequest"]
    assert set(request["properties"]) == {"port_id", "dpid", "interface", "protocol", "eth_src", "eth_dst", "ip_src",
                                          "ip_dst", "tp_src", "tp_dst", "ct_state", "ttl"}
    assert request["properties"]["ct_state"]["default"] == "new"
    answer = document["components"]["schemas"]["Trace"]["properties"]
    assert answer["verdict"]["enum"] == ["output", "drop", "controller"] and "stages" in answer


def test_typed_junk_in_a_trace_is_never_a_server_error(client, net):
    """Junk of every kind in every field (as tests/unit/test_api_input.py feeds the other bodies): 200 or an error
    body, never a 5xx, and the store is left alone."""
    schema = openapi_document()["components"]["schemas"]["TraceRequest"]
    base = {"port_id": net["web-2"]["id"], "protocol": "udp", "eth_src": "fa:16:3e:00:00:02",
            "eth_dst": "fa:16:3e:00:00:01", "ip_src": "10.0.0.12", "ip_dst": "10.0.0.11", "tp_src": 5353, "tp_dst": 53,
            "ct_state": "established", "ttl": 3}
    rng = random.Random(SEED)
    before = client.get("/v1/ports").json
    outcomes: Counter[int] = Counter()
    for _ in range(120):
        field, spec = rng.choice(leaves(schema))
        response = client.post("/v1/trace", json={**base, field[0]: junk(rng, spec)})
        outcomes[response.status_code] += 1
        assert response.status_code < 500, response.get_data(as_text=True)[:500]
        if response.status_code >= 400:
            assert_error(response, response.status_code)
    assert client.get("/v1/ports").json == before
    assert outcomes[400] > 40 and outcomes[200] > 0, outcomes
