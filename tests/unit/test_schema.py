"""Request bodies (controller/schema.py): pydantic's verdicts in the API's words, PATCH bodies derived from
create bodies, and defaults filled in on create only."""

from __future__ import annotations

from typing import Any

import pytest

from controller.errors import ApiError
from controller.schema import LoadBalancerCreate, NetworkCreate, PortCreate, parse_body, update_model


def problems(model: Any, body: Any, partial: bool = False) -> tuple[str, list[dict[str, str]]]:
    with pytest.raises(ApiError) as caught:
        parse_body(model, body, partial=partial)
    assert caught.value.code == 400
    return caught.value.message, caught.value.details


def test_a_create_gets_defaults_and_normalized_values_a_patch_only_what_it_names() -> None:
    body = {"network_id": "n", "mac_address": "FA-16-3E-00-00-01", "ip_address": "10.0.0.5",
            "binding": {"dpid": "000000000000000A", "interface": "e1"}}
    assert parse_body(PortCreate, body) == {
        "network_id": "n", "name": "", "mac_address": "fa:16:3e:00:00:01", "ip_address": "10.0.0.5",
        "binding": {"dpid": "000000000000000a", "interface": "e1"}, "port_security_enabled": True}
    assert parse_body(PortCreate, {"name": "x"}, partial=True) == {"name": "x"}
    assert parse_body(NetworkCreate, {"gateway_ip": None}, partial=True) == {"gateway_ip": None}


def test_every_problem_is_named_unknown_fields_first() -> None:
    message, details = problems(NetworkCreate, {"cidr": "10.0.0.1/24", "segmentation_id": True, "colour": 1,
                                                "uplink": {"dpid": "x"}, "name": None})
    assert message == "colour: unknown field (and 5 more)"
    assert details == [
        {"field": "colour", "message": "unknown field"},
        {"field": "name", "message": "must not be null"},
        {"field": "cidr", "message": "has host bits set (did you mean 10.0.0.0/24?)"},
        {"field": "segmentation_id", "message": "must be of type integer"},
        {"field": "uplink.dpid", "message": "must be a datapath id of 16 hex digits such as 0000000000000001"},
        {"field": "uplink.interface", "message": "is required"},
    ]


def test_a_patch_may_not_name_a_frozen_field_and_the_update_schema_omits_them() -> None:
    assert problems(LoadBalancerCreate, {"port": 80, "name": "x"}, partial=True)[1] == [
        {"field": "port", "message": "cannot be changed"}]
    assert set(update_model(LoadBalancerCreate).model_fields) == {"name", "algorithm", "health_monitor"}


def test_items_of_a_list_of_bodies_are_named_by_index() -> None:
    body = {"network_id": "n", "protocol": "TCP", "port": 80, "members": [{"ip_address": "10.0.0.5", "port": 80}, 7]}
    assert problems(LoadBalancerCreate, body)[1] == [{"field": "members[1]", "message": "must be a JSON object"}]
    assert parse_body(LoadBalancerCreate, {**body, "members": body["members"][:1]})["protocol"] == "tcp"
