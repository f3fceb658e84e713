"""POST /v1/trace: apps.explain's answer as JSON, its refusals as the API's errors.

Flows show as GET /v1/switches/{dpid}/flows shows installed ones (controller.ofwire's descriptions of their
encoding), packets by OpenFlow field name with MACs and addresses as text.
"""

from __future__ import annotations

from typing import Any

from apps import explain
from apps.actions import CONTROLLER
from apps.fields import FIELD, Packet, Scope
from apps.model import Policy
from apps.pipeline import PIPELINE
from controller import ofwire
from controller.errors import ApiError

TABLE_NAMES = {table.number: table.name for table in PIPELINE}


def trace(policy: Policy, compiled: explain.Compiled, values: dict[str, Any]) -> dict[str, Any]:
    """The explanation of the packet `values` (TraceRequest, parsed) describes; ApiError when it has none."""
    try:
        told = explain.explain(policy, compiled, explain.Request(**values))
    except explain.NotFound as exc:
        field = {"port": "port_id", "switch": "dpid", "interface": "interface"}[exc.kind]
        raise ApiError.not_found(exc.kind, exc.object_id, field) from None
    except explain.BadRequest as exc:
        raise ApiError.invalid(exc.field, exc.message) from None
    except explain.Untraceable as exc:
        raise ApiError(422, str(exc), [{"field": exc.field, "message": str(exc)}]) from None
    return {
        "verdict": told.verdict,
        "output": [_reached(r) for r in told.reached if r.endpoint.ofport != CONTROLLER],
        "controller": [{"dpid": r.endpoint.dpid, "packet": _packet(r.packet)} for r in told.reached
                       if r.endpoint.ofport == CONTROLLER],
        "source": _endpoint(told.source),
        "packet": _packet(told.packet),
        "ct_state": told.ct_state,
        "stages": [_stage(stage) for stage in told.stages],
    }


def _stage(stage: explain.Stage) -> dict[str, Any]:
    match, actions = ofwire.describe_flow(stage.flow, TABLE_NAMES)
    return {"dpid": stage.dpid, "table": stage.table, "priority": stage.flow.priority, "match": match,
            "actions": actions, "cookie": f"0x{stage.flow.cookie:016x}", "owner": stage.owner}


def _endpoint(endpoint: explain.Endpoint) -> dict[str, Any]:
    port, uplink = endpoint.port, endpoint.uplink_of
    return {"dpid": endpoint.dpid, "interface": endpoint.interface, "ofport": endpoint.ofport,
            "port": {"id": port.id, "name": port.name, "network_id": port.network_id} if port else None,
            "uplink_of": {"id": uplink.id, "name": uplink.name} if uplink else None}


def _reached(reached: explain.Reached) -> dict[str, Any]:
    return {**_endpoint(reached.endpoint), "packet": _packet(reached.packet)}


def _packet(pkt: Packet) -> dict[str, Any]:
    """The frame's fields (not the pipeline's registers a packet-in also carries), readable."""
    return {name: FIELD[name].text.render(value) for name, value in pkt.items()
            if FIELD[name].scope is Scope.FRAME or name == "in_port"}
